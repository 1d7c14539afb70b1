"""The audit trail: every state change through the API says who, when, what."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from newsletter.core.db import QUERIES, Connection


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: an API key, or an operator at the command line."""

    name: str
    api_key_id: int | None = None
    role: str = "admin"


CLI_ACTOR = Actor(name="cli")


async def record(
    conn: Connection, actor: Actor, action: str, target: str | None, **details: Any
) -> None:
    await conn.execute(QUERIES.insert_audit, actor.api_key_id, actor.name, action, target, details)
