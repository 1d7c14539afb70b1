"""Helpers shared by the roster, lifecycle and subscribers-API tests."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from newsletter.audience import roster
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops.apikeys import create_key
from newsletter.ops.audit import Actor

ADMIN = Actor(name="test admin", role="admin")


async def auth(db: Database, role: str) -> dict[str, str]:
    async with db.transaction() as conn:
        _, key = await create_key(conn, role=role, name=f"roster {role}")
    return {"Authorization": f"Bearer {key}"}


async def import_text(
    db: Database,
    settings: Settings,
    content: str | bytes,
    *,
    mode: str = "confirmed",
    source: str | None = "2023 시민 설문 동의서",
    now: datetime | None = None,
) -> roster.ImportReport:
    data = content.encode() if isinstance(content, str) else content
    return await roster.import_csv(
        db,
        settings,
        io.BytesIO(data),
        mode=mode,
        source=source,
        actor=ADMIN,
        now=now or datetime.now(UTC),
    )


async def status_of(db: Database, email: str) -> str | None:
    row = await db.fetchrow("get_subscriber_by_email", email)
    return None if row is None else str(row["status"])
