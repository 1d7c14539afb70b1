"""Console sessions: server-side, revocable, with a CSRF token each.

The browser keeps a random token in an HttpOnly cookie; the database keeps
its SHA-256 with the account, the stage (password checked, or fully logged
in after the second factor), a CSRF token and the times that end it: idle
for ``session_idle_seconds`` or older than ``session_max_seconds``. Logging
out deletes the row, so a copied cookie is worthless from that moment;
disabling an account or resetting its password deletes all of them.

Logins are throttled per client address, per account from that address and
per account from anywhere (a browser the owner has logged in with has its
own bucket instead, and an account with a second factor has no account-wide
password limit, so guessers from many addresses cannot lock the owner out);
second-factor codes count apart from passwords. Each attempt is
counted before it is checked, in one statement per bucket
(``login_attempts``), so concurrent guesses cannot slip past the limit.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from itsdangerous import BadSignature, URLSafeTimedSerializer

from newsletter.core.buckets import ip_bucket
from newsletter.core.db import QUERIES, Connection, Database
from newsletter.core.settings import Settings
from newsletter.ops.users import User, user_of

STAGES = ("password", "full")
# Failed logins allowed in the window before further attempts get 429: enough
# for a person who mistypes, far too few to guess a password.
ACCOUNT_FAILURES = 10
ADDRESS_FAILURES = 30
FAILURE_WINDOW_SECONDS = 15 * 60
DEVICE_COOKIE = "nl_device"
DEVICE_MAX_AGE_SECONDS = 365 * 24 * 3600
MAX_USER_AGENT = 300


@dataclass(frozen=True, slots=True)
class Session:
    token_hash: bytes
    user: User
    stage: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    flash: str | None
    totp_pending: str | None = None

    @property
    def complete(self) -> bool:
        """Logged in: password and (where the account has one) second factor."""
        return self.stage == "full"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def start(
    conn: Connection,
    settings: Settings,
    user: User,
    *,
    stage: str,
    ip: str | None,
    user_agent: str | None,
) -> str:
    """A new session; returns the token for the cookie (never stored as is)."""
    assert stage in STAGES
    token = secrets.token_urlsafe(32)
    await conn.execute(
        QUERIES.insert_session,
        token_hash(token),
        user.id,
        stage,
        secrets.token_urlsafe(32),
        settings.session_max_seconds,
        ip,
        (user_agent or "")[:MAX_USER_AGENT] or None,
    )
    await conn.execute(QUERIES.prune_sessions)
    return token


async def load(
    db: Database, settings: Settings, token: str, *, touch: bool = True
) -> Session | None:
    """The live session for a cookie value, else None. ``touch=False`` for
    automatic page updates, which must not keep an unattended console open."""
    if not token or len(token) > 100:
        return None
    digest = token_hash(token)
    async with db.pool.acquire() as conn:
        row = await conn.fetchrow(QUERIES.load_session, digest, settings.session_idle_seconds)
        if row is None:
            return None
        if touch:
            await conn.execute(QUERIES.touch_session, digest)
    return Session(
        token_hash=digest,
        user=user_of(row),
        stage=row["stage"],
        csrf_token=row["csrf_token"],
        created_at=row["created_at"],
        last_seen_at=row["last_seen_at"],
        expires_at=row["expires_at"],
        flash=row["flash"],
        totp_pending=row["totp_pending"],
    )


async def end(conn: Connection, session: Session) -> None:
    await conn.execute(QUERIES.delete_session, session.token_hash)


async def end_others(conn: Connection, session: Session) -> None:
    await conn.execute(QUERIES.delete_user_sessions, session.user.id, session.token_hash)


async def set_flash(db: Database, session: Session, text: str) -> None:
    await db.execute("set_session_flash", session.token_hash, text)


async def clear_flash(db: Database, session: Session) -> None:
    await db.execute("pop_session_flash", session.token_hash)


async def pending_totp_secret(conn: Connection, session: Session, fresh: str) -> str:
    """The secret this session's enrolment shows and checks, kept here and
    never taken from the form (``fresh`` if none is kept yet)."""
    kept: str = await conn.fetchval(QUERIES.keep_totp_pending, session.token_hash, fresh)
    return kept


async def clear_totp_secret(conn: Connection, session: Session) -> None:
    await conn.execute(QUERIES.clear_totp_pending, session.token_hash)


# --- throttling ---------------------------------------------------------------


def account_bucket(email: str) -> str:
    # Hashed: the log is about attempts, not about who the addresses are.
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


# --- trusted browsers ---------------------------------------------------------
#
# A browser that has logged in to an account keeps a signed cookie naming
# the account (hashed) and a random id of its own. Guessing from many
# addresses fills the account's bucket; that browser counts in a bucket of
# its own instead, so the owner still gets in (the "device cookie" of
# OWASP's authentication guidance). A stolen cookie is worth ten guesses.


def _device_serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        settings.secret_key, salt="console-device", signer_kwargs={"digest_method": hashlib.sha256}
    )


def device_cookie_value(settings: Settings, email: str, current: str | None = None) -> str:
    """The cookie for a browser that just logged in to ``email``'s account:
    the one it has (renewed) if that already names the account, else a new one."""
    kept = _device_id(settings, current or "", email)
    device = kept or secrets.token_urlsafe(16)
    return _device_serializer(settings).dumps({"a": account_bucket(email), "d": device})


def _device_id(settings: Settings, value: str, email: str) -> str | None:
    if not value or len(value) > 300:
        return None
    try:
        data = _device_serializer(settings).loads(value, max_age=DEVICE_MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or data.get("a") != account_bucket(email):
        return None
    device = data.get("d")
    return device if isinstance(device, str) else None


# --- throttling ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attempt:
    """An attempt counted in its buckets; forgiven when it turns out right."""

    taken: tuple[tuple[str, datetime], ...]


def _buckets(
    settings: Settings,
    kind: str,
    email: str | None,
    ip: str | None,
    device_cookie: str | None,
    second_factor: bool,
) -> list[tuple[str, int]]:
    """Where one attempt counts, each with its limit in the window.

    The address bucket stops one machine guessing across accounts; the
    account-from-this-address bucket stops it on one account; the account
    bucket stops many machines on one account. Two ways past that last one
    are left for the owner: a browser they logged in with counts in a
    bucket of its own, and a password of an account with a second factor
    enrolled is still checked (it opens nothing without the code, whose
    buckets are apart), so guessers cannot lock the owner out.
    """
    address = ip_bucket(ip)
    found = [(f"{kind}:{address}", ADDRESS_FAILURES)]
    if email:
        account = account_bucket(email)
        found.append((f"{kind}:{account}|{address}", ACCOUNT_FAILURES))
        device = _device_id(settings, device_cookie or "", email)
        if device is not None:
            found.append((f"{kind}:device:{device}", ACCOUNT_FAILURES))
        elif not (kind == "password" and second_factor):
            found.append((f"{kind}:{account}", ACCOUNT_FAILURES))
    return found


async def _wait(conn: Connection, bucket: str, limit: int) -> int:
    row = await conn.fetchrow(QUERIES.login_attempts_within, bucket, FAILURE_WINDOW_SECONDS)
    recent: list[datetime] = list(row["recent"]) if row is not None else []
    if len(recent) < limit or row is None:
        return 1
    freed = (recent[len(recent) - limit] - row["now"]).total_seconds() + FAILURE_WINDOW_SECONDS
    return max(int(freed) + 1, 1)


async def take_attempt(
    conn: Connection,
    settings: Settings,
    *,
    kind: str,
    email: str | None,
    ip: str | None,
    device_cookie: str | None = None,
    second_factor: bool = False,
) -> Attempt | int:
    """Count one attempt (``kind``: "password" or "code", apart) before it is
    checked: the Attempt to forgive if it proves right, or the seconds to wait.
    ``second_factor``: the account has one enrolled (see :func:`_buckets`).

    Each bucket is counted and written in one statement under its row's
    lock, in one transaction (buckets in a fixed order, so two requests
    never wait on each other crosswise): concurrent guesses queue, and no
    more than the limit are ever checked. A full bucket rolls back the
    others, so a refused attempt costs nobody anything.
    """
    buckets = sorted(_buckets(settings, kind, email, ip, device_cookie, second_factor))
    taken: list[tuple[str, datetime]] = []
    wait: int | None = None
    tx = conn.transaction()
    await tx.start()
    try:
        for bucket, limit in buckets:
            row = await conn.fetchrow(
                QUERIES.take_login_attempt, bucket, FAILURE_WINDOW_SECONDS, limit
            )
            if row is None:
                wait = await _wait(conn, bucket, limit)
                break
            taken.append((bucket, row["taken"]))
    except BaseException:
        await tx.rollback()
        raise
    if wait is not None:
        await tx.rollback()
        return wait
    await tx.commit()
    if secrets.randbelow(50) == 0:  # now and then is enough for a daily prune
        await conn.execute(QUERIES.prune_login_attempts)
    return Attempt(taken=tuple(taken))


async def forgive(conn: Connection, attempt: Attempt) -> None:
    """The attempt was right: it no longer counts in any of its buckets."""
    for bucket, at in attempt.taken:
        await conn.execute(QUERIES.forgive_login_attempt, bucket, at)


async def record_failure(conn: Connection, *, email: str | None, ip: str | None) -> None:
    """Count a failed login that was refused before any check (bad input)."""
    address = ip_bucket(ip)
    await conn.execute(QUERIES.add_login_failure, f"password:{address}")
    if email:
        account = account_bucket(email)
        await conn.execute(QUERIES.add_login_failure, f"password:{account}|{address}")
