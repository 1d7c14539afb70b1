"""The audit trail: every state change says who, when, what.

A person in the console is named by their account (``user_id``), a script by
its API key (``api_key_id``), the command line and background jobs by name.
"""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass
from typing import Any, Literal

from newsletter.core.db import QUERIES, Connection

ActorKind = Literal["api_key", "user", "cli"]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a person's account, an API key, or an operator at the
    command line."""

    name: str
    api_key_id: int | None = None
    role: str = "admin"
    user_id: int | None = None

    @property
    def kind(self) -> ActorKind:
        if self.user_id is not None:
            return "user"
        if self.api_key_id is not None:
            return "api_key"
        return "cli"

    @property
    def reference(self) -> str:
        """``user:5``, ``api_key:3`` or ``cli``: stable where a name may change."""
        if self.user_id is not None:
            return f"user:{self.user_id}"
        if self.api_key_id is not None:
            return f"api_key:{self.api_key_id}"
        return "cli"


CLI_ACTOR = Actor(name="cli")


def command_line_actor() -> Actor:
    """The operator at this terminal: their system account and this host, which
    is what "who, and from where" means at a command line."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return Actor(name=f"{user}@{socket.gethostname()}")


async def record(
    conn: Connection, actor: Actor, action: str, target: str | None, **details: Any
) -> None:
    await conn.execute(
        QUERIES.insert_audit, actor.api_key_id, actor.name, action, target, details, actor.user_id
    )
