"""Bounces: reading DSNs, matching them to deliveries, and the bounce policy.

Two ways a bounce reaches us, one policy for both:

- at send time, a 5xx reply to RCPT or DATA (the worker calls :func:`apply`);
- later, a delivery status notification (RFC 3464) or an MTA's home-made
  bounce, posted to ``/api/v1/bounces`` or read by ``newsletter bounces``
  (:func:`process`). Parsing uses flufl.bounce, which knows the DSN format
  and a dozen vendor formats; the RFC 3464 fields, when present, tell a hard
  failure from a soft one.

Matching, most precise first: the VERP envelope sender the bounce was sent
to (``bounce+<delivery>-<sig>@…``), our Message-ID quoted in the bounce
(``<nl.<issue>.<delivery>.<sig>@…>``), both signed so a forged bounce cannot
suppress somebody else; failing those, the failed address itself.

Policy: a hard bounce (the address does not exist) suppresses the subscriber
at once; soft bounces (mailbox full, policy refusals, gave up after 4xx) are
counted and suppress after :data:`SOFT_BOUNCE_LIMIT`. Delay notices and
auto-replies are not bounces and change nothing.
"""

from __future__ import annotations

import email
import hmac
import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from typing import Literal

from flufl.bounce import all_failures

from newsletter.audience import mailto, subscribers
from newsletter.core.db import QUERIES, Connection, Database
from newsletter.core.settings import Settings
from newsletter.core.signing import signature

log = logging.getLogger("newsletter.bounces")

Kind = Literal["hard", "soft"]
SOFT_BOUNCE_LIMIT = 3
MAX_BOUNCE_BYTES = 10 * 1024 * 1024

_VERP = re.compile(rb"[A-Za-z0-9._%=-]+\+(\d{1,18})-([a-z2-7]{8})@", re.ASCII)
_MESSAGE_ID = re.compile(rb"<nl\.(\d{1,18})\.(\d{1,18})\.([a-z2-7]{8})@", re.ASCII)
_ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def classify(code: int | None, text: str = "") -> Kind:
    """Hard or soft, from an SMTP reply or a DSN status.

    Enhanced status codes (RFC 3463) decide when present: 5.1.x (bad
    address) and the few mailbox-gone codes are hard; mailbox full, message
    too big, system, network and policy/spam refusals (5.7.x) are soft — the
    address exists. Without one: 550/551/553 hard, anything else soft.
    """
    match = _ENHANCED.search(text)
    if match:
        klass, subject, detail = match.groups()
        if klass != "5":
            return "soft"
        if subject == "1" or (subject == "2" and detail == "1"):
            return "hard"
        if subject == "0":
            return "hard" if code in (None, 550, 551, 553) else "soft"
        return "soft"
    return "hard" if code in (550, 551, 553) else "soft"


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


@dataclass(frozen=True)
class AppliedBounce:
    subscriber_id: int | None
    delivery_id: int | None
    kind: Kind
    action: str  # "suppressed", "counted", "already suppressed"
    matched_by: str  # "verp", "message-id", "address"


@dataclass
class BounceResult:
    applied: list[AppliedBounce] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    unsubscribed: list[int] = field(default_factory=list)  # mail to a List-Unsubscribe mailto
    ignored: str | None = None  # why nothing was done (delay notice, not a bounce)


def _decode(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


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
            address = str(recipient).partition(";")[2].strip().strip("<>").lower()
            found[address] = (
                str(block.get("Action", "")).strip().lower(),
                str(block.get("Status", "")).strip(),
                " ".join(str(block.get("Diagnostic-Code", "")).split())[:500],
            )
    return found


def _verified_ids(raw: bytes, secret: str) -> list[int]:
    ids: list[int] = []
    for match in _VERP.finditer(raw):
        delivery_id = int(match.group(1))
        if hmac.compare_digest(match.group(2).decode(), signature(secret, "verp", delivery_id)):
            ids.append(delivery_id)
    for match in _MESSAGE_ID.finditer(raw):
        delivery_id = int(match.group(2))
        if hmac.compare_digest(match.group(3).decode(), signature(secret, "msgid", delivery_id)):
            ids.append(delivery_id)
    return list(dict.fromkeys(ids))


def parse(raw: bytes, secret: str) -> ParsedBounce:
    """Read one bounce message (any common format)."""
    message = email.message_from_bytes(raw)
    try:
        temporary, permanent = all_failures(message)
    except Exception:  # a detector choking on a malformed message is no reason to fail
        log.warning("bounce parser failed on a message", exc_info=True)
        temporary, permanent = frozenset(), frozenset()
    fields = _dsn_fields(message)
    parsed = ParsedBounce(delivery_ids=_verified_ids(raw, secret))
    for address in sorted({_decode(a).strip().lower() for a in permanent | temporary}):
        action, status, diagnostic = fields.get(address, ("", "", ""))
        detail = " ".join(x for x in (status, diagnostic) if x) or "bounced"
        if address in {_decode(a).strip().lower() for a in permanent}:
            kind = classify(None, status or diagnostic) if (status or diagnostic) else "hard"
            parsed.failed.append(FailedRecipient(address, kind, detail))
        elif action == "failed":  # gave up after 4xx retries: the address exists
            parsed.failed.append(FailedRecipient(address, "soft", detail))
        else:
            parsed.delayed.append(address)
    # DSN fields flufl.bounce did not report (it stops at the first detector).
    reported = {f.address for f in parsed.failed} | set(parsed.delayed)
    for address, (action, status, diagnostic) in fields.items():
        if address not in reported and action == "failed":
            detail = " ".join(x for x in (status, diagnostic) if x) or "bounced"
            parsed.failed.append(
                FailedRecipient(address, classify(None, status or diagnostic), detail)
            )
    return parsed


async def apply(
    conn: Connection,
    *,
    subscriber_id: int | None,
    delivery_id: int | None,
    kind: Kind,
    source: Literal["smtp", "dsn"],
    code: int | None,
    detail: str,
) -> str:
    """The bounce policy, inside the caller's transaction. Returns what it did."""
    detail = detail[:1000]
    await conn.execute(
        QUERIES.insert_bounce_event, delivery_id, subscriber_id, kind, source, code, detail
    )
    if delivery_id is not None and source == "dsn":
        await conn.execute(QUERIES.mark_delivery_bounced, delivery_id, f"bounce: {detail}", kind)
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


async def process(db: Database, settings: Settings, raw: bytes) -> BounceResult:
    """Parse one bounce message, match it, apply the policy (one transaction).

    A message sent to a subscriber's List-Unsubscribe mailto address is an
    opt-out, not a bounce: it unsubscribes that person.
    """
    result = BounceResult()
    subscriber_id = mailto.subscriber_in_headers(email.message_from_bytes(raw), settings.secret_key)
    if subscriber_id is not None:
        evidence = subscribers.Evidence(None, None, "mailto", settings.consent_version)
        await subscribers.unsubscribe(db, subscriber_id=subscriber_id, evidence=evidence)
        result.unsubscribed.append(subscriber_id)
        return result
    parsed = parse(raw, settings.secret_key)
    if not parsed.failed:
        result.ignored = (
            "delay notice, not a bounce" if parsed.delayed else "no failed recipient found"
        )
        return result
    async with db.transaction() as conn:
        if parsed.delivery_ids:
            # One message went to one recipient: the signed id names the delivery.
            worst = _worst(parsed.failed)
            assert worst is not None
            how = "verp" if _VERP.search(raw) else "message-id"
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
                    AppliedBounce(row["subscriber_id"], delivery_id, worst.kind, action, how)
                )
            return result
        for failed in parsed.failed:
            row = await conn.fetchrow(QUERIES.latest_delivery_for_email, failed.address)
            if row is None:
                result.unmatched.append(failed.address)
                continue
            action = await apply(
                conn,
                subscriber_id=row["subscriber_id"],
                delivery_id=row["delivery_id"],
                kind=failed.kind,
                source="dsn",
                code=None,
                detail=failed.detail,
            )
            result.applied.append(
                AppliedBounce(
                    row["subscriber_id"], row["delivery_id"], failed.kind, action, "address"
                )
            )
    return result
