"""Log lines are JSON, carry context fields, mask addresses and never hold secrets."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import pytest

from newsletter.core.db import Database
from newsletter.core.logs import (
    HumanFormatter,
    JsonFormatter,
    log_context,
    mask_email,
    secrets_of,
    wants_colour,
)
from newsletter.core.settings import Settings, SmtpTarget
from tests.conftest import SmtpServer, drain, make_settings

API_KEY = "nl_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v"


def record(level: int, message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("newsletter.test", level, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def secret_settings() -> Settings:
    smtp = SmtpTarget(host="127.0.0.1", port=25, username="mailer", password="smtp-pass-1234")
    settings = make_settings("postgresql://app:db-pass-9876@127.0.0.1:5432/news", smtp)
    return settings.replace(smtp=smtp)


def test_addresses_are_masked_at_info_but_kept_at_debug() -> None:
    formatter = JsonFormatter()
    info = json.loads(
        formatter.format(
            record(logging.INFO, "sent to %s", "hong.gildong@example.com", recipient="kim@gimpo.kr")
        )
    )
    assert info["message"] == "sent to h***@example.com"
    assert info["recipient"] == "k***@gimpo.kr"
    warning = json.loads(
        formatter.format(record(logging.WARNING, "550 <lee@example.org> user unknown"))
    )
    assert warning["message"] == "550 <l***@example.org> user unknown"
    debug = json.loads(formatter.format(record(logging.DEBUG, "to hong@example.com")))
    assert debug["message"] == "to hong@example.com"
    assert mask_email("a@b.kr") == "a***@b.kr"


def test_secrets_never_appear_at_any_level() -> None:
    settings = secret_settings()
    formatter = JsonFormatter(secrets_of(settings))
    for level in (logging.DEBUG, logging.INFO, logging.ERROR):
        line = formatter.format(
            record(
                level,
                "key=%s smtp=%s url=%s api=%s",
                settings.secret_key,
                "smtp-pass-1234",
                "smtp://mailer:other-pw@mail.example.com:587",
                API_KEY,
                password="hunter2-long",
                authorization=f"Bearer {API_KEY}",
            )
        )
        for secret in (settings.secret_key, "smtp-pass-1234", "other-pw", API_KEY, "hunter2"):
            assert secret not in line
        assert "db-pass-9876" not in formatter.format(record(level, settings.database_url or ""))
        entry = json.loads(line)
        assert entry["password"] == "[redacted]"
        assert "smtp://mailer:[redacted]@mail.example.com:587" in entry["message"]


def test_exceptions_are_cleaned_too() -> None:
    formatter = JsonFormatter(secrets_of(secret_settings()))
    try:
        raise RuntimeError("cannot log in as mailer/smtp-pass-1234 for park@example.com")
    except RuntimeError:
        rec = logging.LogRecord(
            "newsletter.test", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )
    entry = json.loads(formatter.format(rec))
    assert "smtp-pass-1234" not in entry["exception"]
    assert "p***@example.com" in entry["exception"]


def test_context_fields_are_on_every_line() -> None:
    formatter = JsonFormatter()
    with log_context(worker_id="host:42", issue_id=7):
        with log_context(delivery_id=1001):
            inner = json.loads(formatter.format(record(logging.INFO, "sent", smtp_code=250)))
        outer = json.loads(formatter.format(record(logging.INFO, "batch done")))
    after = json.loads(formatter.format(record(logging.INFO, "idle")))
    assert inner["worker_id"] == "host:42" and inner["issue_id"] == 7
    assert inner["delivery_id"] == 1001 and inner["smtp_code"] == 250
    assert "delivery_id" not in outer and outer["issue_id"] == 7
    assert "issue_id" not in after


@pytest.fixture
def captured_logs(settings: Settings) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(secrets_of(settings)))
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_a_real_refused_recipient_is_logged_masked(
    client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    smtp_server: SmtpServer,
    captured_logs: io.StringIO,
) -> None:
    address = "refused.resident@example.com"
    smtp_server.handler.rcpt_reply[address] = f"550 5.1.1 <{address}>: mailbox unavailable"
    response = await client.post("/subscribe", data={"email": address, "consent": "on"})
    assert response.status_code == 200
    await drain(settings, db)
    lines = [json.loads(line) for line in captured_logs.getvalue().splitlines()]
    assert lines, "the worker logged nothing about the refused mail"
    text = captured_logs.getvalue()
    assert address not in text
    assert "r***@example.com" in text
    assert settings.secret_key not in text


def test_dev_lines_are_short_coloured_and_as_safe_as_json() -> None:
    settings = secret_settings()
    zone = ZoneInfo("Asia/Seoul")
    plain = HumanFormatter(secrets_of(settings), zone=zone)
    access = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/subscribe?x=1", "1.1", 404), None,
    )  # fmt: skip
    access.created = datetime(2026, 3, 2, 0, 0, 5, tzinfo=UTC).timestamp()
    assert plain.format(access) == "09:00:05 web       GET /subscribe?x=1 404"

    captured = record(logging.INFO, "captured %s → %s", "구독 확인", "hong@example.com")
    captured.name = "newsletter.dev.capture"
    assert plain.format(captured).endswith("mail      captured 구독 확인 → h***@example.com")

    leaky = record(logging.WARNING, "smtp=%s key=%s", "smtp-pass-1234", API_KEY, issue_id=7)
    line = plain.format(leaky)
    assert "smtp-pass-1234" not in line and API_KEY not in line
    assert "warning:" in line and line.endswith("issue_id=7")
    assert "\x1b[" not in line

    coloured = HumanFormatter(zone=zone, colour=True)
    painted = coloured.format(access)
    assert "\x1b[36mweb" in painted  # who, in its colour
    assert "\x1b[33m404\x1b[0m" in painted  # a 4xx stands out
    assert re.sub(r"\x1b\[\d+m", "", painted) == "09:00:05 web       GET /subscribe?x=1 404"


def test_colour_follows_the_terminal_and_no_color() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert wants_colour(Terminal(), {})
    assert not wants_colour(Terminal(), {"NO_COLOR": "1"})
    assert not wants_colour(io.StringIO(), {})
    assert wants_colour(io.StringIO(), {"FORCE_COLOR": "1"})


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("o'r@example.com", "o***@example.com"),
        ("first.last+tag@mail.example.co.kr", "f***@mail.example.co.kr"),
        ("a!#$%&'*+/=?^_`{|}~-z@example.com", "a***@example.com"),
        ('"hong gildong"@example.com', '"***"@example.com'),
        ('"quoted\\"at@sign"@example.com', '"***"@example.com'),
        ("user@[192.0.2.1]", "u***@[192.0.2.1]"),
        ("user@[IPv6:2001:db8::1]", "u***@[IPv6:2001:db8::1]"),
        ("홍길동@김포.한국", "홍***@김포.한국"),
        ("kim@xn--3e0b707e.xn--3e0b707e", "k***@xn--3e0b707e.xn--3e0b707e"),
    ],
)
def test_every_address_rfc_5322_allows_is_masked(address: str, masked: str) -> None:
    line = json.loads(
        JsonFormatter().format(record(logging.WARNING, "bounce for <%s> seen", address))
    )
    assert line["message"] == f"bounce for <{masked}> seen"
    local = address.rpartition("@")[0]
    assert local not in line["message"]
