"""The audit trail: every state change says who, when, what.

A person in the console is named by their account (``user_id``), a script by
its API key (``api_key_id``), the command line and background jobs by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newsletter.core.db import QUERIES, Connection


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a person's account, an API key, or an operator at the
    command line."""

    name: str
    api_key_id: int | None = None
    role: str = "admin"
    user_id: int | None = None


CLI_ACTOR = Actor(name="cli")


async def record(
    conn: Connection, actor: Actor, action: str, target: str | None, **details: Any
) -> None:
    await conn.execute(
        QUERIES.insert_audit, actor.api_key_id, actor.name, action, target, details, actor.user_id
    )
