"""Console sessions: server-side, revocable, with a CSRF token each.

The browser keeps a random token in an HttpOnly cookie; the database keeps
its SHA-256 with the account, the stage (password checked, or fully logged
in after the second factor), a CSRF token and the times that end it: idle
for ``session_idle_seconds`` or older than ``session_max_seconds``. Logging
out deletes the row, so a copied cookie is worthless from that moment;
disabling an account or resetting its password deletes all of them.

Failed logins are throttled per account and per client address with a
sliding log (``login_failures``), the way signups are.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

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
    )


async def end(conn: Connection, session: Session) -> None:
    await conn.execute(QUERIES.delete_session, session.token_hash)


async def end_others(conn: Connection, session: Session) -> None:
    await conn.execute(QUERIES.delete_user_sessions, session.user.id, session.token_hash)


async def set_flash(db: Database, session: Session, text: str) -> None:
    await db.execute("set_session_flash", session.token_hash, text)


async def clear_flash(db: Database, session: Session) -> None:
    await db.execute("pop_session_flash", session.token_hash)


# --- throttling ---------------------------------------------------------------


def account_bucket(email: str) -> str:
    # Hashed: the log is about attempts, not about who the addresses are.
    return "account:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


async def _wait(conn: Connection, bucket: str, limit: int) -> int | None:
    row = await conn.fetchrow(QUERIES.recent_login_failures, bucket, FAILURE_WINDOW_SECONDS, limit)
    assert row is not None
    if row["failures"] < limit:
        return None
    freed = (row["oldest"] - row["now"]).total_seconds() + FAILURE_WINDOW_SECONDS
    return max(int(freed) + 1, 1)


async def throttled(conn: Connection, *, email: str | None, ip: str | None) -> int | None:
    """Seconds to wait before another attempt, or None if one may be made now."""
    waits = [await _wait(conn, ip_bucket(ip), ADDRESS_FAILURES)]
    if email:
        waits.append(await _wait(conn, account_bucket(email), ACCOUNT_FAILURES))
    found = [w for w in waits if w is not None]
    return max(found) if found else None


async def record_failure(conn: Connection, *, email: str | None, ip: str | None) -> None:
    await conn.execute(QUERIES.insert_login_failure, ip_bucket(ip))
    if email:
        await conn.execute(QUERIES.insert_login_failure, account_bucket(email))
    await conn.execute(QUERIES.prune_login_failures)
