"""Bounces: reading DSNs, matching them to deliveries, and the bounce policy.

Two ways a bounce reaches us, one policy for both:

- at send time, a 5xx reply to RCPT or DATA (the worker calls :func:`apply`);
- later, a delivery status notification (RFC 3464) or an MTA's home-made
  bounce, posted to ``/api/v1/bounces`` or read by ``newsletter bounces``
  (:func:`process`). Parsing uses flufl.bounce, which knows the DSN format
  and a dozen vendor formats; the RFC 3464 fields, when present, tell a hard
  failure from a soft one.

Anyone can put a message in the bounce mailbox, so only a match proven by our
own signature changes a subscriber: the VERP envelope sender the bounce was
sent to (``bounce+<delivery>-<sig>@…``) or our Message-ID quoted in it
(``<nl.<issue>.<delivery>.<sig>@…>``). Transactional mail carries its outbox
row's own signed pair (``bounce+o<outbox>-<sig>@…``, ``<nl.tx.<outbox>.<sig>@…>``):
such a bounce marks that row failed and applies the policy to its subscriber
while they are pending or active; someone who has left (unsubscribed,
lapsed) is not mailed anyway and is left as they are, and a test copy to an
editor names no subscriber: both are recorded only. A bounce that only names
a failed address is recorded as *unverified* (ops see them) and never suppresses.
Each report is applied once, known by its Message-ID or else a hash of its
bytes (a cron job re-reading a mailbox changes nothing), and one delivery
counts at most one soft bounce however many reports name it.

The message is untrusted input of any size and shape, so reading it is
bounded (:func:`read`): the size is capped by the caller (``BOUNCE_MAX_BYTES``),
our own patterns are linear (a literal first, bounded repeats), the format
detectors see only the report's first :data:`HEAD_BYTES` with lines cut to
RFC 5322's 998 octets (some of their patterns are quadratic in a line's
length), and the work runs in a thread of its own, off the event loop.

Policy: a hard bounce (the address does not exist) suppresses the subscriber
at once; soft bounces (mailbox full, policy refusals, gave up after 4xx) are
counted and suppress after :data:`SOFT_BOUNCE_LIMIT`. Delay notices and
auto-replies are not bounces and change nothing.
"""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import logging
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message
from typing import Literal

from flufl.bounce import all_failures

from newsletter.audience import mailto, subscribers
from newsletter.core import replies
from newsletter.core.db import QUERIES, Connection, Database
from newsletter.core.errors import DomainError
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings
from newsletter.core.signing import OUTBOX_MSGID_PURPOSE, OUTBOX_VERP_PURPOSE, signature
from newsletter.core.tokens import SubscriberRef

log = logging.getLogger("newsletter.bounces")

Kind = replies.Bounce
SOFT_BOUNCE_LIMIT = 3
HEAD_BYTES = 128 * 1024  # the human-readable report and the DSN fields come first
MAX_LINE = 998  # RFC 5322 2.1.1
SCAN_CHUNK = 64 * 1024  # the signed-id scan releases the GIL between chunks
SCAN_OVERLAP = 64  # longer than any signed id, so none is cut in two

# A literal first and only bounded repeats: linear however the input looks.
_VERP = re.compile(rb"\+(\d{1,18})-([a-z2-7]{8})@", re.ASCII | re.IGNORECASE)
_MESSAGE_ID = re.compile(rb"<nl\.(\d{1,18})\.(\d{1,18})\.([a-z2-7]{8})@", re.ASCII)
_OUTBOX_VERP = re.compile(rb"\+o(\d{1,18})-([a-z2-7]{8})@", re.ASCII | re.IGNORECASE)
_OUTBOX_MESSAGE_ID = re.compile(rb"<nl\.tx\.(\d{1,18})\.([a-z2-7]{8})@", re.ASCII)

# Parsing competes with nothing else for threads: a burst of bounce reports
# cannot take the default executor that other off-loop work uses.
_READERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bounce-reader")


class BounceTooLarge(DomainError):
    code = "payload_too_large"
    status = 413


TOO_LARGE = N_("반송 메일이 NEWSLETTER_BOUNCE_MAX_BYTES(%(limit)s바이트)보다 큽니다.")


@dataclass(frozen=True)
class FailedRecipient:
    address: str
    kind: Kind
    detail: str


@dataclass
class ParsedBounce:
    """What a bounce message says, before we look anything up."""

    failed: list[FailedRecipient] = field(default_factory=list)
    delayed: list[str] = field(default_factory=list)
    delivery_ids: list[int] = field(default_factory=list)  # signed VERP or Message-ID
    outbox_ids: list[int] = field(default_factory=list)  # the same, of transactional mail
    matched_by: str = "message-id"  # how the signed ids were found: "verp" or "message-id"


@dataclass(frozen=True)
class Reading:
    """One untrusted message, read (off the event loop) but not yet acted on."""

    key: str  # the same report again has the same key
    unsubscribe: SubscriberRef | None  # it was sent to a List-Unsubscribe mailto
    bounce: ParsedBounce


@dataclass(frozen=True)
class AppliedBounce:
    subscriber_id: int | None
    delivery_id: int | None
    kind: Kind
    # "suppressed", "counted", "already counted", "already suppressed", "erased",
    # "unverified" (matched by address only: recorded, nothing changed) or
    # "recorded" (transactional mail to nobody we still mail: recorded on its row)
    action: str
    matched_by: str  # "verp", "message-id", "address"
    outbox_id: int | None = None  # transactional mail, when that is what bounced


@dataclass
class BounceResult:
    applied: list[AppliedBounce] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    unsubscribed: list[int] = field(default_factory=list)  # mail to a List-Unsubscribe mailto
    ignored: str | None = None  # why nothing was done (delay notice, not a bounce)
    duplicate: bool = False  # this very report was processed before

    @property
    def status(self) -> str:
        """One word for the whole report."""
        if self.duplicate:
            return "duplicate"
        if self.unsubscribed:
            return "unsubscribed"
        if any(a.action != "unverified" for a in self.applied):
            return "applied"
        if self.applied:
            return "unverified"
        return "ignored" if self.ignored else "unmatched"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _decode(value: object) -> str:
    """Text from a hostile message, fit to store (PostgreSQL refuses NUL)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return _CONTROL.sub("", text)


def _dsn_fields(message: Message) -> dict[str, tuple[str, str, str]]:
    """RFC 3464 per-recipient fields: address → (action, status, diagnostic)."""
    found: dict[str, tuple[str, str, str]] = {}
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = payload if isinstance(payload, list) else []
        for block in blocks:
            if not isinstance(block, Message):
                continue
            recipient = block.get("Final-Recipient") or block.get("Original-Recipient")
            if not recipient:
                continue
            address = _decode(recipient).partition(";")[2].strip().strip("<>").lower()
            found[address] = (
                _decode(block.get("Action", "")).strip().lower(),
                _decode(block.get("Status", "")).strip(),
                " ".join(_decode(block.get("Diagnostic-Code", "")).split())[:500],
            )
    return found


def _scan(raw: bytes, pattern: re.Pattern[bytes]) -> Iterator[re.Match[bytes]]:
    """``pattern.finditer(raw)`` in chunks: each C call is short, so a thread
    scanning megabytes never holds the GIL long enough to stall the event loop."""
    for start in range(0, len(raw), SCAN_CHUNK):
        window = raw[start : start + SCAN_CHUNK + SCAN_OVERLAP]
        for match in pattern.finditer(window):
            if match.start() < SCAN_CHUNK:  # later ones belong to the next chunk
                yield match


def _verified_ids(raw: bytes, secret: str) -> tuple[list[int], list[int], str]:
    """(delivery ids, outbox ids, "verp" or "message-id") our signatures prove."""
    ids: list[int] = []
    outbox: list[int] = []
    how = "message-id"
    for match in _scan(raw, _VERP):
        delivery_id = int(match.group(1))
        if hmac.compare_digest(
            match.group(2).decode().lower(), signature(secret, "verp", delivery_id)
        ):
            ids.append(delivery_id)
            how = "verp"
    for match in _scan(raw, _OUTBOX_VERP):
        outbox_id = int(match.group(1))
        if hmac.compare_digest(
            match.group(2).decode().lower(), signature(secret, OUTBOX_VERP_PURPOSE, outbox_id)
        ):
            outbox.append(outbox_id)
            how = "verp"
    for match in _scan(raw, _MESSAGE_ID):
        delivery_id = int(match.group(2))
        if hmac.compare_digest(match.group(3).decode(), signature(secret, "msgid", delivery_id)):
            ids.append(delivery_id)
    for match in _scan(raw, _OUTBOX_MESSAGE_ID):
        outbox_id = int(match.group(1))
        if hmac.compare_digest(
            match.group(2).decode(), signature(secret, OUTBOX_MSGID_PURPOSE, outbox_id)
        ):
            outbox.append(outbox_id)
    return list(dict.fromkeys(ids)), list(dict.fromkeys(outbox)), how


def head(raw: bytes) -> bytes:
    """What the format detectors may read: the first :data:`HEAD_BYTES`, each
    line cut to :data:`MAX_LINE` octets (none is longer in a well-formed message)."""
    return b"\n".join(line[:MAX_LINE] for line in raw[:HEAD_BYTES].split(b"\n"))


def _parse_head(message: Message) -> ParsedBounce:
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector choking on a malformed message is no reason to fail
        log.warning("bounce parser failed on a message", exc_info=True)
        temporary, permanent = frozenset(), frozenset()
    fields = _dsn_fields(message)
    parsed = ParsedBounce()
    hard = {_decode(a).strip().lower() for a in permanent}
    for address in sorted(hard | {_decode(a).strip().lower() for a in temporary}):
        action, status, diagnostic = fields.get(address, ("", "", ""))
        detail = _detail(status, diagnostic)
        if address in hard:
            kind = _kind(status, diagnostic) if (status or diagnostic) else "hard"
            parsed.failed.append(FailedRecipient(address, kind, detail))
        elif action == "failed":  # gave up after 4xx retries: the address exists
            parsed.failed.append(FailedRecipient(address, "soft", detail))
        else:
            parsed.delayed.append(address)
    # DSN fields flufl.bounce did not report (it stops at the first detector).
    reported = {f.address for f in parsed.failed} | set(parsed.delayed)
    for address, (action, status, diagnostic) in fields.items():
        if address not in reported and action == "failed":
            parsed.failed.append(
                FailedRecipient(address, _kind(status, diagnostic), _detail(status, diagnostic))
            )
    return parsed


def _kind(status: str, diagnostic: str) -> Kind:
    """Hard or soft, from the DSN's Status field (or else its diagnostic)."""
    return replies.parse(None, status or diagnostic).bounce


def _detail(status: str, diagnostic: str) -> str:
    """What is kept of a DSN's reason: its status and the diagnostic, masked
    (the remote server's words often quote the address)."""
    return replies.mask(" ".join(x for x in (status, diagnostic) if x)) or "bounced"


def parse(raw: bytes, secret: str) -> ParsedBounce:
    """Read one bounce message (any common format), in time linear in its size."""
    return read(raw, secret).bounce


def read(raw: bytes, secret: str) -> Reading:
    """Everything :func:`process` needs from one message; CPU only, no I/O."""
    message = email.message_from_bytes(head(raw))
    parsed = _parse_head(message)
    parsed.delivery_ids, parsed.outbox_ids, parsed.matched_by = _verified_ids(raw, secret)
    # Hashed either way: a fixed-size key, whatever bytes the header holds.
    message_id = " ".join(str(message.get("Message-ID", "")).split())
    if message_id:
        key = "message-id:" + hashlib.sha256(message_id.encode("utf-8", "replace")).hexdigest()
    else:
        key = "sha256:" + hashlib.sha256(raw).hexdigest()
    return Reading(
        key=key, unsubscribe=mailto.subscriber_in_headers(message, secret), bounce=parsed
    )


async def apply(
    conn: Connection,
    *,
    subscriber_id: int | None,
    delivery_id: int | None,
    kind: Kind,
    source: Literal["smtp", "dsn"],
    code: int | None,
    detail: str,
    outbox_id: int | None = None,
) -> str:
    """The bounce policy, inside the caller's transaction, for a bounce we know
    is genuine (our own SMTP reply, or a report carrying our signature).
    Returns what it did."""
    reply = replies.parse(code, detail)
    detail = reply.text[:1000]
    # However many reports name one delivery, it is one soft bounce.
    if (
        kind == "soft"
        and delivery_id is not None
        and await conn.fetchval(QUERIES.delivery_bounce_counted, delivery_id)
    ):
        return "already counted"
    await conn.execute(
        QUERIES.insert_bounce_event,
        delivery_id,
        subscriber_id,
        kind,
        source,
        code,
        detail,
        True,
        outbox_id,
    )
    if delivery_id is not None and source == "dsn":
        await conn.execute(
            QUERIES.mark_delivery_bounced,
            delivery_id,
            f"bounce: {detail}",
            kind,
            reply.enhanced_code,
        )
    if subscriber_id is None:
        return "erased"
    if kind == "soft":
        row = await conn.fetchrow(QUERIES.count_soft_bounce, subscriber_id)
        if row is None:
            return "erased"
        if row["soft_bounces"] < SOFT_BOUNCE_LIMIT:
            return "counted"
        reason = f"{row['soft_bounces']} soft bounces, last: {detail}"
    else:
        reason = f"hard bounce: {detail}"
    suppressed = await conn.fetchval(QUERIES.suppress_subscriber, subscriber_id, reason[:500])
    if suppressed is None:
        return "already suppressed"
    # Nothing further to this address: queued bulk and transactional mail go.
    await conn.execute(
        QUERIES.skip_queued_deliveries, subscriber_id, "suppressed: bounce", "suppressed"
    )
    await conn.execute(QUERIES.cancel_queued_outbox, subscriber_id)
    log.info("subscriber %s suppressed: %s", subscriber_id, reason)
    return "suppressed"


def _worst(failed: list[FailedRecipient]) -> FailedRecipient | None:
    if not failed:
        return None
    return next((f for f in failed if f.kind == "hard"), failed[0])


async def read_off_loop(raw: bytes, settings: Settings) -> Reading:
    """:func:`read` in the bounce readers' threads, with the size cap enforced."""
    if len(raw) > settings.bounce_max_bytes:
        raise BounceTooLarge(TOO_LARGE, limit=settings.bounce_max_bytes)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_READERS, read, raw, settings.secret_key)


async def process(db: Database, settings: Settings, raw: bytes) -> BounceResult:
    """Read one bounce message, match it, apply the policy (one transaction).

    A message sent to a subscriber's List-Unsubscribe mailto address is an
    opt-out, not a bounce: it unsubscribes that person.
    """
    reading = await read_off_loop(raw, settings)
    result = BounceResult()
    parsed = reading.bounce
    async with db.transaction() as conn:
        if not await conn.fetchval(QUERIES.claim_bounce_report, reading.key):
            result.duplicate = True
            return result
        if reading.unsubscribe is not None:
            evidence = subscribers.Evidence(None, None, "mailto", settings.consent_version)
            subscriber_id = await subscribers.unsubscribe_in(conn, reading.unsubscribe, evidence)
            if subscriber_id is not None:
                result.unsubscribed.append(subscriber_id)
            await conn.execute(QUERIES.note_bounce_report, reading.key, result.status)
            return result
        if not parsed.failed:
            result.ignored = (
                "delay notice, not a bounce" if parsed.delayed else "no failed recipient found"
            )
        elif parsed.delivery_ids or parsed.outbox_ids:
            await _apply_signed(conn, parsed, result)
        else:
            await _record_unverified(conn, parsed, result)
        await conn.execute(QUERIES.note_bounce_report, reading.key, result.status)
    return result


async def _apply_signed(conn: Connection, parsed: ParsedBounce, result: BounceResult) -> None:
    """One message went to one recipient: the signed id names the delivery."""
    worst = _worst(parsed.failed)
    assert worst is not None
    for delivery_id in parsed.delivery_ids:
        row = await conn.fetchrow(QUERIES.delivery_for_bounce, delivery_id)
        if row is None:
            result.unmatched.append(f"delivery {delivery_id}")
            continue
        action = await apply(
            conn,
            subscriber_id=row["subscriber_id"],
            delivery_id=delivery_id,
            kind=worst.kind,
            source="dsn",
            code=None,
            detail=worst.detail,
        )
        result.applied.append(
            AppliedBounce(row["subscriber_id"], delivery_id, worst.kind, action, parsed.matched_by)
        )
    for outbox_id in parsed.outbox_ids:
        applied = await _apply_outbox(conn, outbox_id, worst, parsed.matched_by)
        if applied is None:
            result.unmatched.append(f"outbox {outbox_id}")
        else:
            result.applied.append(applied)


# Whom a bounced transactional mail still concerns: people we mail or are
# about to (a confirmation that bounces hard is an address that does not exist).
MAILED_STATUSES = ("pending", "active")


async def _apply_outbox(
    conn: Connection, outbox_id: int, worst: FailedRecipient, matched_by: str
) -> AppliedBounce | None:
    """A signed bounce of one transactional mail: its row says so, then the policy."""
    row = await conn.fetchrow(QUERIES.outbox_for_bounce, outbox_id)
    if row is None:  # purged with its subscriber, or never ours
        return None
    subscriber_id: int | None = row["subscriber_id"]

    def applied(action: str) -> AppliedBounce:
        return AppliedBounce(subscriber_id, None, worst.kind, action, matched_by, outbox_id)

    # However many reports name one mail, it is one soft bounce.
    if worst.kind == "soft" and row["bounced"]:
        return applied("already counted")
    reply = replies.parse(None, worst.detail)
    detail = reply.text[:1000]
    await conn.execute(
        QUERIES.mark_outbox_bounced,
        outbox_id,
        f"bounced ({worst.kind}): {detail}",
        reply.enhanced_code,
    )
    if subscriber_id is not None and row["subscriber_status"] in MAILED_STATUSES:
        action = await apply(
            conn,
            subscriber_id=subscriber_id,
            delivery_id=None,
            kind=worst.kind,
            source="dsn",
            code=None,
            detail=detail,
            outbox_id=outbox_id,
        )
        return applied(action)
    await conn.execute(
        QUERIES.insert_bounce_event,
        None,
        subscriber_id,
        worst.kind,
        "dsn",
        None,
        detail,
        True,
        outbox_id,
    )
    if row["subscriber_status"] == "suppressed":
        return applied("already suppressed")
    return applied("recorded")


async def _record_unverified(conn: Connection, parsed: ParsedBounce, result: BounceResult) -> None:
    """No signature: anyone could have written this. Keep it for ops to look
    at, change nobody."""
    for failed in parsed.failed:
        row = await conn.fetchrow(QUERIES.latest_delivery_for_email, failed.address)
        if row is None:
            result.unmatched.append(failed.address)
            continue
        await conn.execute(
            QUERIES.insert_bounce_event,
            row["delivery_id"],
            row["subscriber_id"],
            failed.kind,
            "dsn",
            None,
            replies.mask(failed.detail)[:1000],
            False,
            None,
        )
        result.applied.append(
            AppliedBounce(
                row["subscriber_id"], row["delivery_id"], failed.kind, "unverified", "address"
            )
        )
