"""Who may look at the /ops page: a signed, short-lived cookie naming an API key.

The cookie holds the key's id, never the key itself, and is re-checked against
the database on every page load, so revoking the key logs the browser out.
"""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, URLSafeTimedSerializer

from newsletter.core.db import QUERIES, Connection
from newsletter.ops.apikeys import ApiKey

SESSION_SALT = "ops-session"
SESSION_MAX_AGE_SECONDS = 12 * 3600  # one working day; then the key is asked for again


def _serializer(secret_key: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret_key, salt=SESSION_SALT, signer_kwargs={"digest_method": hashlib.sha256}
    )


def sign_session(secret_key: str, key_id: int) -> str:
    return _serializer(secret_key).dumps(key_id)


def read_session(secret_key: str, token: str) -> int | None:
    """The key id in a genuine, unexpired cookie; None for anything else."""
    try:
        value = _serializer(secret_key).loads(token, max_age=SESSION_MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


async def session_key(conn: Connection, key_id: int) -> ApiKey | None:
    row = await conn.fetchrow(QUERIES.ops_session_key, key_id)
    if row is None:
        return None
    return ApiKey(id=row["id"], name=row["name"], role=row["role"])
