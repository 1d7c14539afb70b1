"""What an SMTP reply means, decided once.

Every reply the service meets -- a relay's answer to RCPT or DATA, a refusal
at the greeting, the status and diagnostic of a delivery status notification
-- goes through :func:`parse`, which gives its reply code, its enhanced status
code (RFC 3463), what kind of answer it is and, for a refusal, the reason
code the delivery record puts into words (``ops.words.DELIVERY_REASON``). The
sender (``delivery/smtp.py``: push-back or not), the bounce policy
(``audience/bounces.py``: hard or soft) and the delivery record
(``ops/delivery_record.py``: which reason) all ask the same object, and the
enhanced code is stored in its own column (``deliveries.enhanced_code``,
``outbox.enhanced_code``) so SQL never digs it out of the text.

A reply quotes whatever the relay likes, often the recipient's address
(``450 4.2.0 <kim@example.org>: Recipient address rejected: Greylisted``).
Replies are kept and shown to ops and editors, who must not see residents'
addresses, so :func:`mask` masks every address (as the logs do) before a
reply is stored anywhere (the parsed text is masked already); the delivery
record still tells admins whose delivery it was, by its subscriber.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple

from newsletter.core.logs import mask_emails

# RFC 3463: class.subject.detail; the class says as much as the reply code.
# Not a piece of a longer dotted number (an IP address in the text).
_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")

# A 4xx that says "slow down / come back later" (rate limits, greylisting,
# policy: enhanced status 4.7.x) is the relay pushing back on our pace, not a
# problem with the recipient.
_PUSH_BACK = re.compile(r"\b4\.7\.\d{1,3}\b|too many|rate limit|greylist", re.IGNORECASE)
# Of those, the relay that is only full: it holds too many connections.
_TOO_MANY = re.compile(r"too many", re.IGNORECASE)

# Permanent refusals that mean "no such address" without an enhanced code.
_UNKNOWN_CODES = (550, 551, 553)

Kind = Literal[
    "accepted",  # 2xx, 3xx
    "no_reply",  # the connection failed or timed out: no reply at all
    "push_back",  # 421, or a 4xx asking us to slow down
    "mailbox_full",  # the recipient's mailbox is full (x.2.2, 452, 552)
    "temporary",  # any other 4xx
    "hard",  # a permanent refusal: the address does not exist
    "soft",  # a permanent refusal of a mailbox that exists (policy, size ...)
]
Bounce = Literal["hard", "soft"]


class Enhanced(NamedTuple):
    """An enhanced status code (RFC 3463), e.g. 5.1.1."""

    klass: int
    subject: int
    detail: int

    def __str__(self) -> str:
        return f"{self.klass}.{self.subject}.{self.detail}"

    @classmethod
    def of(cls, text: str | None) -> Enhanced | None:
        """The first enhanced status code in ``text`` (a reply, a stored column)."""
        match = _ENHANCED.search(text or "")
        if match is None:
            return None
        klass, subject, detail = match.groups()
        return cls(int(klass), int(subject), int(detail))


def mask(text: str) -> str:
    """``text`` with every e-mail address masked as the logs mask them
    (``h***@example.com``): the domain stays, for ops, the person does not."""
    return mask_emails(text) if "@" in text else text


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply (or DSN status), parsed. ``text`` is masked."""

    code: int | None
    enhanced: Enhanced | None
    text: str

    @property
    def enhanced_code(self) -> str | None:
        """The enhanced code as stored in its column ("5.1.1"), or None."""
        return None if self.enhanced is None else str(self.enhanced)

    @property
    def pushes_back(self) -> bool:
        """The relay asks us to slow down (421, 4.7.x, too many, greylisting)."""
        if self.code == 421:
            return True
        temporary = self.code is not None and 400 <= self.code < 500
        return temporary and bool(_PUSH_BACK.search(self.text))

    @property
    def relay_full(self) -> bool:
        """The relay says it holds too many connections: up, only full."""
        return bool(_TOO_MANY.search(self.text))

    @property
    def mailbox_full(self) -> bool:
        """The recipient's mailbox is full. A permanent refusal goes by its
        enhanced code when it has one; a temporary one is full when either
        code says so (452 "insufficient storage" is usually the mailbox)."""
        full = self.enhanced is not None and self.enhanced[1:] == (2, 2)
        if self.enhanced is not None and self.enhanced.klass == 5:
            return full
        return full or self.code in (452, 552)

    @property
    def bounce(self) -> Bounce:
        """Hard or soft, for the bounce policy.

        Enhanced status codes decide when present: 5.1.x (bad address) and
        5.2.1 (mailbox disabled) are hard; mailbox full, message too big,
        system, network and policy/spam refusals (5.7.x) are soft -- the
        address exists. 5.0.0 says nothing: the reply code decides. Without
        one: 550/551/553 hard, anything else soft.
        """
        enhanced = self.enhanced
        if enhanced is None:
            return "hard" if self.code in _UNKNOWN_CODES else "soft"
        klass, subject, detail = enhanced
        if klass != 5:
            return "soft"
        if subject == 1 or (subject, detail) == (2, 1):
            return "hard"
        if subject == 0:
            return "hard" if self.code is None or self.code in _UNKNOWN_CODES else "soft"
        return "soft"

    @property
    def refusal(self) -> str:
        """The reason code of a permanent refusal (a key of
        ``ops.words.DELIVERY_REASON``), RFC 3463 subjects first."""
        enhanced = self.enhanced
        if enhanced is not None and enhanced.klass == 5:
            _, subject, detail = enhanced
            if subject == 1 or (subject, detail) == (2, 1):
                return "mailbox_unknown"
            if (subject, detail) == (2, 2):
                return "mailbox_full"
            if (subject, detail) in ((3, 4), (2, 3)):
                return "message_too_big"
            if subject == 7:
                return "refused_policy"
            return "refused"
        if self.code in _UNKNOWN_CODES:
            return "mailbox_unknown"
        if self.code == 552:
            return "mailbox_full"
        return "refused"

    @property
    def kind(self) -> Kind:
        """What kind of answer this is, in the order the sender decides."""
        code = self.code
        if code is None or code < 200:
            return "no_reply"
        if code < 400:
            return "accepted"
        if self.pushes_back:
            return "push_back"
        if self.mailbox_full:
            return "mailbox_full"
        if code < 500:
            return "temporary"
        return self.bounce


def parse(code: int | None, text: str = "") -> Reply:
    """Read one reply: its code (None: no reply), ``text`` as the server gave it.
    The enhanced code is read after masking, so no address can pose as one."""
    masked = mask(text)
    return Reply(code, Enhanced.of(masked), masked)


def stored(code: int | None, enhanced_code: str | None) -> Reply:
    """A reply as the database keeps it: its code and the enhanced-code column."""
    return Reply(code, Enhanced.of(enhanced_code), "")
