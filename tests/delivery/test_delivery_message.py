"""The per-issue render plan gives the same mail as encoding each message whole.

No database, no server: ``IssueMessage.render`` (the fast :class:`Plan`) is
checked against ``IssueMessage.assemble`` + ``dot_stuff`` (the reference) by
un-stuffing and parsing both with the ``email`` package.
"""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

import pytest

from newsletter.core.settings import Settings
from newsletter.core.signing import message_id_for
from newsletter.delivery.message import IssueMessage, Plan, Recipient, dot_stuff
from newsletter.editorial.rendering import RECIPIENT_NAME, UNSUBSCRIBE_URL
from tests.conftest import TEST_SECRET_KEY

SETTINGS = Settings.from_env(
    {
        "NEWSLETTER_DATABASE_URL": "postgresql://127.0.0.1/unused",
        "NEWSLETTER_SECRET_KEY": TEST_SECRET_KEY,
        "NEWSLETTER_BASE_URL": "https://newsletter.gimpo.go.kr",
        "NEWSLETTER_BOUNCE_ADDRESS": "bounce@gimpo.go.kr",
    }
)
LONG_LINE = "<table><tr><td>" + "김포시 소식 " * 2000 + "</td></tr></table>"


def unstuff(data: bytes) -> bytes:
    assert not data.startswith(b".") or data.startswith(b"..")
    undone = data.replace(b"\r\n..", b"\r\n.")
    return undone[1:] if undone.startswith(b"..") else undone


def stuffed_correctly(data: bytes) -> bool:
    """Every line that starts with '.' starts with '..' (the server drops one)."""
    return all(not line.startswith(b".") or line.startswith(b"..") for line in data.split(b"\r\n"))


def parts(data: bytes) -> tuple[dict[str, str], list[tuple[str, str]]]:
    message = email.message_from_bytes(unstuff(data), policy=policy.default)
    assert isinstance(message, EmailMessage)
    headers = {k: str(v) for k, v in message.items()}
    bodies = []
    for part in message.iter_parts():
        assert isinstance(part, EmailMessage)
        bodies.append((part.get_content_type(), part.get_content()))
    return headers, bodies


def longest_line(data: bytes) -> int:
    return max(len(line) for line in data.split(b"\r\n"))


CASES = {
    "short lines": (
        f"안녕하세요 {RECIPIENT_NAME}님.\n.starts with a dot\n\n끝: {UNSUBSCRIBE_URL}\n",
        f"<p>{RECIPIENT_NAME}</p>\n.dot\n<a href='{UNSUBSCRIBE_URL}'>수신 거부</a>\n",
    ),
    "long html line": (
        f"{RECIPIENT_NAME}\n{UNSUBSCRIBE_URL}",
        f"<p>{RECIPIENT_NAME} </p>" + LONG_LINE + f"<a href='{UNSUBSCRIBE_URL}'>x</a>",
    ),
    "holes at line starts": (
        f"{RECIPIENT_NAME}\n\n{UNSUBSCRIBE_URL}\n.{RECIPIENT_NAME}.\n",
        f"{RECIPIENT_NAME}{RECIPIENT_NAME}\n{RECIPIENT_NAME}\n" + LONG_LINE,
    ),
}
NAMES = [None, "", "김포 시민", ".점으로 시작", "..", "a" * 100, "박" * 100, "<b>&amp;</b> =20"]


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("eight_bit", [True, False])
def test_plan_matches_whole_message_encoding(case: str, eight_bit: bool) -> None:
    text, html = CASES[case]
    message = IssueMessage(
        SETTINGS, issue_id=7, subject="11월 소식", html_body=html, text_body=text
    )
    for n, name in enumerate(NAMES, start=1):
        recipient = Recipient(n, n, f"{n:016x}", f"r{n}@example.com", name)
        token = f"tok{n}.abc"
        fast = message.render(recipient, token, eight_bit=eight_bit)
        slow = dot_stuff(message.assemble(message.values(recipient, token), eight_bit))
        assert stuffed_correctly(fast)
        assert longest_line(fast) <= 998
        assert parts(fast) == parts(slow)
        if eight_bit and all(p.eight_bit_ok for p in message.parts):
            assert fast == slow  # no quoted-printable part: byte for byte
        elif not eight_bit:
            # Quoted-printable lines stay within RFC 2045's 76 characters (+ "=").
            assert longest_line(fast.split(b"\r\n\r\n", 1)[1]) <= 77


def test_message_id_is_the_one_bounces_match() -> None:
    message = IssueMessage(SETTINGS, issue_id=7, subject="s", html_body="h", text_body="t")
    for delivery_id in (1, 42, 10**9):
        assert message.message_id(delivery_id) == message_id_for(SETTINGS, 7, delivery_id)


def test_plan_falls_back_when_a_value_breaks_a_line() -> None:
    plan = Plan([b"a\r\n", ("x", False), b"b"])
    assert plan.fill({"x": b".y"}) == b"a\r\n..yb"
    assert plan.fill({"x": b""}) == b"a\r\nb"
    assert plan.fill({"x": b"y\r\n.z"}) is None
    assert Plan([b"a\r\n", ("x", False), b".b"]).fill({"x": b""}) == b"a\r\n..b"
