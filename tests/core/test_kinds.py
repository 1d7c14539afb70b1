"""The shared lists agree with what the database accepts and what people read."""

from __future__ import annotations

import re

from newsletter.core.db import Database
from newsletter.core.kinds import MAX_ID, ROLES, SUBSCRIBER_STATUSES, role_allows
from newsletter.ops import words


async def _allowed(db: Database, constraint: str) -> tuple[str, ...]:
    definition: str = await db.pool.fetchval(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1", constraint
    )
    return tuple(re.findall(r"'([^']+)'::text", definition))


async def test_roles_and_statuses_are_what_the_schema_accepts(db: Database) -> None:
    assert await _allowed(db, "users_role_check") == ROLES
    assert await _allowed(db, "api_keys_role_check") == ROLES
    assert await _allowed(db, "subscribers_status_check") == SUBSCRIBER_STATUSES
    # Every role and status has its Korean words.
    assert set(words.ROLE) == set(ROLES)
    assert set(words.SUBSCRIBER_STATUS) == set(SUBSCRIBER_STATUSES)


async def test_the_largest_id_is_the_largest_bigint(db: Database) -> None:
    assert await db.pool.fetchval("SELECT $1::bigint", MAX_ID) == MAX_ID
    assert await db.pool.fetchval("SELECT $1::numeric > 9223372036854775807", MAX_ID + 1)


def test_admins_pass_every_role_and_the_others_only_their_own() -> None:
    assert all(role_allows("admin", role) for role in ROLES)
    assert role_allows("editor", "editor") and not role_allows("editor", "ops")
    assert not role_allows("ops", "admin")
