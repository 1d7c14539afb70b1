"""Consent over time (PIPA / 정보통신망법): erasure, re-confirmation, lapse, retention.

- Erasure deletes the person's row (consent events go with it, deliveries keep
  their counts with a NULL subscriber) and keeps only a keyed hash in
  ``suppressions`` so the address is never mailed or imported again.
- Every ``reconfirm_after_days`` an active subscriber is asked to confirm
  again; no answer within ``reconfirm_grace_days`` and the subscription lapses.
- ``retention_days`` after someone leaves, their personal data is destroyed.

Functions that depend on the time take ``now`` from the caller: tests move
the clock with time-machine, which PostgreSQL's ``now()`` would not follow.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.audience.subscribers import Evidence, address_key, resolve, suppression_hash
from newsletter.core.addresses import normalise_email
from newsletter.core.db import QUERIES, Connection, Database
from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_
from newsletter.core.records import missing
from newsletter.core.settings import Settings
from newsletter.core.tokens import SubscriberRef
from newsletter.mail import outbox
from newsletter.ops import access_log, audit

log = logging.getLogger("newsletter.lifecycle")

DAILY_JOB = "lifecycle"
LIFECYCLE_ACTOR = audit.Actor(name="lifecycle")
RECONFIRM_PRIORITY = 3  # bulk-like transactional mail: after signups and notices
# Pending addresses (never confirmed) hold personal data without consent:
# they go this many days after the confirmation link expired, at the latest.
PENDING_GRACE_DAYS = 30


@dataclass(frozen=True, slots=True)
class Erased:
    subscriber_id: int | None  # None: the address was unknown, only suppressed


async def _erase_locked(
    conn: Connection, settings: Settings, *, subscriber_id: int | None, email: str
) -> None:
    await conn.execute(
        QUERIES.suppress_hash, suppression_hash(await address_key(conn), email), "erased"
    )
    if subscriber_id is not None:
        await conn.execute(QUERIES.erase_personal_data, subscriber_id, email)


class NotTheAddress(InvalidInput):
    """The address typed to confirm an erasure is not the subscriber's."""


NOT_THE_ADDRESS = N_("입력한 주소가 이 구독자의 주소와 다릅니다.")


def _same_address(typed: str, stored: str) -> bool:
    try:
        return normalise_email(typed).lower() == stored.lower()
    except InvalidInput:
        return False


async def erase(
    db: Database,
    settings: Settings,
    *,
    subscriber_id: int,
    actor: audit.Actor,
    typed: str | None = None,
) -> Erased:
    """Erase one subscriber by id. Raises NotFound for unknown ids and, when
    the person confirming typed the address (``typed``, the console), raises
    NotTheAddress unless it is this subscriber's -- compared here, so the
    check reveals nothing but "no"."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES.roster_lock_by_id, subscriber_id)
        if row is None:
            raise missing("subscriber", subscriber_id)
        if typed is not None and not _same_address(typed, row["email"]):
            raise NotTheAddress(NOT_THE_ADDRESS, field="typed")
        await _erase_locked(conn, settings, subscriber_id=subscriber_id, email=row["email"])
        # The audit keeps who and when and the id, never the address.
        await audit.record(conn, actor, "subscriber.erase", f"subscriber:{subscriber_id}")
    return Erased(subscriber_id)


async def erase_address(
    db: Database, settings: Settings, *, email: str, actor: audit.Actor
) -> Erased:
    """Erase by address (``newsletter erase EMAIL``). An unknown address is
    still suppressed: the person asked never to be mailed."""
    address = normalise_email(email)
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES.roster_lock_by_email, address)
        subscriber_id: int | None = row["id"] if row else None
        await _erase_locked(
            conn, settings, subscriber_id=subscriber_id, email=row["email"] if row else address
        )
        await audit.record(
            conn,
            actor,
            "subscriber.erase",
            f"subscriber:{subscriber_id}" if subscriber_id else "suppression",
        )
    return Erased(subscriber_id)


async def reconfirm(db: Database, *, ref: SubscriberRef, evidence: Evidence, now: datetime) -> bool:
    """The resident answered the re-confirmation mail. The link acts once:
    posting it again answers the same (True) and records and mails nothing.

    Returns False when there is nothing to re-confirm any more (erased,
    lapsed, unsubscribed): they must subscribe again.
    """
    async with db.transaction() as conn:
        subscriber_id = await resolve(conn, ref)
        row = (
            await conn.fetchrow(QUERIES.lock_subscriber, subscriber_id)
            if subscriber_id is not None
            else None
        )
        if subscriber_id is None or row is None or row["status"] != "active":
            return False
        if await conn.fetchval(QUERIES.reconfirm_subscriber, subscriber_id, now) is None:
            return True  # already answered: the row lock made any replay wait for that
        await conn.execute(
            QUERIES.insert_consent_event_at,
            subscriber_id,
            "reconfirm",
            now,
            evidence.ip,
            evidence.user_agent,
            evidence.source,
            evidence.consent_version,
            None,
        )
        await outbox.enqueue_notice(
            conn,
            "reconfirm_notice",
            row["email"],
            {
                "subscriber_id": subscriber_id,
                "name": row["name"],
                "at": now.isoformat(),
                "result": "confirmed",
                "language": row["language"],
            },
            subscriber_id=subscriber_id,
        )
        return True


# --- the daily job ----------------------------------------------------------------


async def send_reconfirmations(conn: Connection, settings: Settings, now: datetime) -> int:
    rows = await conn.fetch(
        QUERIES.lifecycle_reconfirm_due,
        now,
        settings.reconfirm_after_days,
        RECONFIRM_PRIORITY,
        settings.reconfirm_grace_days,
    )
    return len(rows)


async def lapse_unconfirmed(conn: Connection, settings: Settings, now: datetime) -> int:
    rows = await conn.fetch(
        QUERIES.lifecycle_lapse, now, settings.reconfirm_grace_days, outbox.PRIORITY_NOTICE
    )
    return len(rows)


async def purge_departed(conn: Connection, settings: Settings, now: datetime) -> int:
    """Destroy leavers' data after the retention period; keep only keyed hashes."""
    pending_days = settings.confirm_max_age_seconds // 86400 + PENDING_GRACE_DAYS
    rows = await conn.fetch(QUERIES.lifecycle_purge, now, settings.retention_days, pending_days)
    departed = []
    key = await address_key(conn) if rows else ""
    for row in rows:
        digest = suppression_hash(key, row["email"])
        if row["status"] == "suppressed":
            await conn.execute(
                QUERIES.suppress_hash_keep, digest, row["suppressed_reason"] or "suppressed"
            )
        elif row["status"] in ("unsubscribed", "lapsed"):
            departed.append(digest)
    if departed:
        await conn.execute(QUERIES.remember_departed, departed, "retention")
    return len(rows)


def local_date(settings: Settings, now: datetime) -> Any:
    return now.astimezone(ZoneInfo(settings.timezone)).date()


async def run_daily_jobs(db: Database, settings: Settings, now: datetime) -> dict[str, int]:
    """Lapse, re-confirm and purge, once per (local) day across all workers.

    Returns what was done, or an empty dict when another worker (or an
    earlier tick) already ran today. Everything, the claim included, is one
    transaction: a failure leaves the day unclaimed for the next attempt.
    """
    async with db.transaction() as conn:
        claimed = await conn.fetchval(
            QUERIES.claim_daily_job, DAILY_JOB, local_date(settings, now), now
        )
        if claimed is None:
            return {}
        # Lapse before sending new requests, so nobody lapses on the day they are asked.
        result = {
            "lapsed": await lapse_unconfirmed(conn, settings, now),
            "reconfirm_sent": await send_reconfirmations(conn, settings, now),
            "purged": await purge_departed(conn, settings, now),
            "access_log_purged": await access_log.purge(conn, settings.access_log_retention_days),
        }
        await conn.execute(QUERIES.finish_daily_job, DAILY_JOB, result)
        await audit.record(conn, LIFECYCLE_ACTOR, "lifecycle.daily", None, **result)
    log.info("daily lifecycle jobs: %s", result)
    return result
