"""The resident's lifecycle: sign up, confirm (double opt-in), unsubscribe.

Every decision is recorded as consent evidence, and every result notice goes
through the outbox, never inline.

Whoever types an address into the public form need not own it, so a signup
never changes anything stored for an address already known (name, source,
status), and a name typed at signup is only a suggestion: the confirmation
page (reached from the owner's mailbox) shows it in an editable field, and
what the owner posts there becomes the name the mails use. The city's mail
never carries a stranger's words to someone else's inbox.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime

from newsletter.audience.signup_batch import Signup, SignupBatcher, run
from newsletter.core.addresses import normalise_email
from newsletter.core.buckets import ip_bucket
from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.errors import InvalidInput, RateLimited
from newsletter.core.i18n import DEFAULT as DEFAULT_LANGUAGE
from newsletter.core.i18n import LANGUAGES, N_
from newsletter.core.settings import Settings
from newsletter.core.tokens import SubscriberRef
from newsletter.mail import outbox

MAX_NAME_LENGTH = 50
# Besides letters, marks and spaces, what names are written with: 김 O'Neil,
# Jean-Luc, J. R., 제임스·딘 (middle dots, ASCII and Hangul).
NAME_PUNCTUATION = frozenset(".-'’·ㆍ")


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
    """A person's name as plain text: letters, marks, single spaces and the few
    punctuation marks names use; no digits, brackets, URLs or markup."""
    if raw is None:
        return None
    name = " ".join(unicodedata.normalize("NFC", raw).split())
    if not name:
        return None
    if len(name) > MAX_NAME_LENGTH:
        # The catalog's message id is the literal text, so the number is spelled out.
        raise InvalidInput(N_("이름은 50자 이내로 입력해 주세요."), field="name")
    if not all(_name_character(c) for c in name):
        raise InvalidInput(
            N_("이름에는 글자와 띄어쓰기만 쓸 수 있습니다 (숫자, 기호, 주소는 쓸 수 없습니다)."),
            field="name",
        )
    return name


def _name_character(c: str) -> bool:
    return c == " " or c in NAME_PUNCTUATION or unicodedata.category(c)[0] in ("L", "M")


def suppression_hash(key: str, email: str) -> str:
    """A keyed hash of an address: lets us refuse it again without storing it.

    ``key`` is the installation's address key (``Database.address_key`` or
    :func:`address_key`), never SECRET_KEY, so rotating that cannot lift a
    suppression.
    """
    keyed = _keyed_hmac(key).copy()
    keyed.update(email.lower().encode())
    return keyed.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed_hmac(key: str) -> hmac.HMAC:
    """The HMAC with ``key`` already set up, to copy: OpenSSL's set-up took
    twice as long as hashing an address (every signup hashes one)."""
    return hmac.new(key.encode(), digestmod=hashlib.sha256)


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
        ip_bucket=ip_bucket(evidence.ip),
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
        email_bucket=f"addr:{address_hash}",  # the limit log never holds a readable address
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


async def _lock(conn: Connection, ref: SubscriberRef) -> Record | None:
    if ref.public_id is not None:
        return await conn.fetchrow(QUERIES.lock_subscriber_by_public_id, ref.public_id)
    return await conn.fetchrow(QUERIES.lock_subscriber, ref.row_id)


async def resolve(conn: Connection, ref: SubscriberRef) -> int | None:
    """The row id a link names, or None when nobody (any more) has it."""
    if ref.public_id is not None:
        found: int | None = await conn.fetchval(QUERIES.subscriber_id_by_public_id, ref.public_id)
        return found
    return ref.row_id


async def _field_of(db: Database, ref: SubscriberRef, query: str) -> str | None:
    """One text field of the subscriber a signed link names (None: erased)."""
    async with db.pool.acquire() as conn:
        subscriber_id = await resolve(conn, ref)
        if subscriber_id is None:
            return None
        value: str | None = await conn.fetchval(query, subscriber_id)
    return value


async def suggested_name(db: Database, ref: SubscriberRef) -> str | None:
    """The name typed at signup, for the confirmation page to offer."""
    return await _field_of(db, ref, QUERIES.subscriber_name)


async def confirm(
    db: Database,
    *,
    ref: SubscriberRef,
    issued_at: datetime,
    evidence: Evidence,
    name: str | None,
) -> bool:
    """Activate a subscriber from a confirmation link. Idempotent.

    ``name`` is what the address's owner posted on the confirmation page; it
    replaces whatever was typed at signup (no name posted: no name kept).
    Returns True when the subscription is (now or already) active. Raises
    :class:`LinkNoLongerValid` when the person opted out after the link was sent.
    """
    display_name = clean_name(name)
    async with db.transaction() as conn:
        row = await _lock(conn, ref)
        if row is None or row["status"] == "suppressed":
            return False
        if row["status"] == "active":
            return True
        left_at = row["unsubscribed_at"]
        if left_at is not None and left_at > issued_at:
            raise LinkNoLongerValid("opted out after this link was sent")
        subscriber_id = row["id"]
        now = await conn.fetchval(QUERIES.activate_subscriber, subscriber_id, display_name)
        await _record(conn, subscriber_id, "confirm", evidence)
        await outbox.enqueue_notice(
            conn,
            "opt_in_notice",
            row["email"],
            {
                "subscriber_id": subscriber_id,
                "name": display_name,
                "at": now.isoformat(),
                "language": row["language"],
            },
            subscriber_id=subscriber_id,
        )
        return True


async def unsubscribe(db: Database, *, ref: SubscriberRef, evidence: Evidence) -> None:
    """Opt out at once. Idempotent; unknown (erased) ids are already out."""
    async with db.transaction() as conn:
        await unsubscribe_in(conn, ref, evidence)


async def unsubscribe_in(conn: Connection, ref: SubscriberRef, evidence: Evidence) -> int | None:
    """:func:`unsubscribe` inside the caller's transaction; the subscriber's
    row id, or None when the link names nobody."""
    row = await _lock(conn, ref)
    if row is None:
        return None
    subscriber_id: int = row["id"]
    if row["status"] in ("unsubscribed", "suppressed"):
        return subscriber_id
    was_active = row["status"] == "active"
    now = await conn.fetchval(QUERIES.deactivate_subscriber, subscriber_id)
    # Queued bulk mail for this person is dropped now, not at some later batch.
    await conn.execute(
        QUERIES.skip_queued_deliveries, subscriber_id, "unsubscribed", "unsubscribed"
    )
    await conn.execute(QUERIES.cancel_queued_outbox, subscriber_id)
    await _record(conn, subscriber_id, "unsubscribe", evidence)
    if was_active:
        await outbox.enqueue_notice(
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
    return subscriber_id


async def status_of(db: Database, ref: SubscriberRef) -> str | None:
    """The subscription's state for its own signed link's page (None: erased)."""
    return await _field_of(db, ref, QUERIES.subscriber_status)


def token_time(timestamp: datetime | int | float) -> datetime:
    if isinstance(timestamp, datetime):
        return timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return datetime.fromtimestamp(timestamp, UTC)
