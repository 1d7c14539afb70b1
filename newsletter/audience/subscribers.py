"""The resident's lifecycle: sign up, confirm (double opt-in), unsubscribe.

Every decision is recorded as consent evidence, and every result notice goes
through the outbox, never inline.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.audience.signup_batch import Signup, SignupBatcher, run
from newsletter.core.addresses import normalise_email
from newsletter.core.db import QUERIES, Connection, Database
from newsletter.core.errors import InvalidInput, RateLimited
from newsletter.core.i18n import DEFAULT as DEFAULT_LANGUAGE
from newsletter.core.i18n import LANGUAGES, N_
from newsletter.core.settings import Settings
from newsletter.mail import outbox

MAX_NAME_LENGTH = 100


class LinkNoLongerValid(ValueError):
    """A genuine confirmation link that a later opt-out has superseded."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a consent decision came from (PIPA asks us to be able to show it)."""

    ip: str | None
    user_agent: str | None
    source: str | None
    consent_version: str


def clean_name(raw: str | None) -> str | None:
    if raw is None:
        return None
    name = unicodedata.normalize("NFC", raw.strip())
    if not name:
        return None
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(N_("이름은 100자 이내로 입력해 주세요."), field="name")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        raise InvalidInput(N_("이름에 사용할 수 없는 문자가 있습니다."), field="name")
    return name


def suppression_hash(key: str, email: str) -> str:
    """A keyed hash of an address: lets us refuse it again without storing it.

    ``key`` is the installation's address key (``Database.address_key`` or
    :func:`address_key`), never SECRET_KEY, so rotating that cannot lift a
    suppression.
    """
    return hmac.new(key.encode(), email.lower().encode(), hashlib.sha256).hexdigest()


async def address_key(conn: Connection) -> str:
    key: str = await conn.fetchval(QUERIES.address_hash_key)
    return key


async def sign_up(
    db: Database,
    settings: Settings,
    *,
    email: str,
    name: str | None,
    consent: bool,
    evidence: Evidence,
    language: str = "ko",
    solved_challenge: bool = True,
    batcher: SignupBatcher | None = None,
) -> None:
    """Handle a signup. Returns nothing on purpose: the caller must answer the
    same way whether the address was new, pending, active or suppressed.

    Over the per-address daily limit the answer stays the same too; only the
    extra confirmation mails are not sent (against list bombing). A signup
    without the form's proof-of-work answer (``solved_challenge=False``: no
    JavaScript, or a script posting directly) is taken only while its IP is
    under the smaller no-challenge limit.
    """
    address = normalise_email(email)
    display_name = clean_name(name)
    if not consent:
        raise InvalidInput(
            N_("개인정보 수집·이용에 동의하셔야 구독하실 수 있습니다."), field="consent"
        )
    address_hash = suppression_hash(db.address_key, address)
    signup = Signup(
        ip_bucket=f"ip:{evidence.ip or 'unknown'}",
        ip_limit=(
            settings.signup_limit_per_ip_per_hour
            if solved_challenge
            else min(
                settings.signup_limit_per_ip_per_hour,
                settings.signup_limit_without_challenge_per_ip_per_hour,
            )
        ),
        email_hash=address_hash,
        email=address,
        name=display_name,
        source=evidence.source,
        address_bucket=f"addr:{address_hash}",  # the limit log never holds a readable address
        address_limit=settings.signup_limit_per_address_per_day,
        ip=evidence.ip,
        user_agent=evidence.user_agent,
        consent_version=evidence.consent_version,
        language=language if language in LANGUAGES else DEFAULT_LANGUAGE,
    )
    # Under load the app's batcher shares one statement and commit among
    # concurrent signups; either way this returns only after the commit.
    ip_ok = await batcher.submit(signup) if batcher is not None else (await run(db, [signup]))[0]
    if not ip_ok:
        raise RateLimited(N_("요청이 너무 많습니다. 잠시 후 다시 시도해 주세요."))


async def _record(conn: Connection, subscriber_id: int, kind: str, evidence: Evidence) -> None:
    await conn.execute(
        QUERIES.insert_consent_event,
        subscriber_id,
        kind,
        evidence.ip,
        evidence.user_agent,
        evidence.source,
        evidence.consent_version,
    )


async def confirm(
    db: Database, *, subscriber_id: int, issued_at: datetime, evidence: Evidence
) -> bool:
    """Activate a subscriber from a confirmation link. Idempotent.

    Returns True when the subscription is (now or already) active. Raises
    :class:`LinkNoLongerValid` when the person opted out after the link was sent.
    """
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES.lock_subscriber, subscriber_id)
        if row is None or row["status"] == "suppressed":
            return False
        if row["status"] == "active":
            return True
        left_at = row["unsubscribed_at"]
        if left_at is not None and left_at > issued_at:
            raise LinkNoLongerValid("opted out after this link was sent")
        now = await conn.fetchval(QUERIES.activate_subscriber, subscriber_id)
        await _record(conn, subscriber_id, "confirm", evidence)
        await outbox.enqueue(
            conn,
            "opt_in_notice",
            row["email"],
            {
                "subscriber_id": subscriber_id,
                "name": row["name"],
                "at": now.isoformat(),
                "language": row["language"],
            },
            subscriber_id=subscriber_id,
        )
        return True


async def unsubscribe(db: Database, *, subscriber_id: int, evidence: Evidence) -> None:
    """Opt out at once. Idempotent; unknown (erased) ids are already out."""
    async with db.transaction() as conn:
        row = await conn.fetchrow(QUERIES.lock_subscriber, subscriber_id)
        if row is None or row["status"] in ("unsubscribed", "suppressed"):
            return
        was_active = row["status"] == "active"
        now = await conn.fetchval(QUERIES.deactivate_subscriber, subscriber_id)
        # Queued bulk mail for this person is dropped now, not at some later batch.
        await conn.execute(
            QUERIES.skip_queued_deliveries, subscriber_id, "unsubscribed", "unsubscribed"
        )
        await conn.execute(QUERIES.cancel_queued_outbox, subscriber_id)
        await _record(conn, subscriber_id, "unsubscribe", evidence)
        if was_active:
            await outbox.enqueue(
                conn,
                "opt_out_notice",
                row["email"],
                {
                    "subscriber_id": subscriber_id,
                    "name": row["name"],
                    "at": now.isoformat(),
                    "language": row["language"],
                },
                subscriber_id=subscriber_id,
            )


async def status_of(db: Database, subscriber_id: int) -> str | None:
    """The subscription's state for its own signed link's page (None: erased)."""
    status: str | None = await db.fetchval("subscriber_status", subscriber_id)
    return status


def token_time(timestamp: datetime | int | float) -> datetime:
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return datetime.fromtimestamp(timestamp, UTC)
