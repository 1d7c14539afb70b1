"""Rows by id: the two checks every domain module makes the same way."""

from __future__ import annotations

from typing import Any

from newsletter.core.db import Connection, Record
from newsletter.core.errors import NotFound
from newsletter.core.i18n import N_, Term
from newsletter.core.kinds import MAX_ID

KINDS = {"issue": "호", "news item": "뉴스 항목", "subscriber": "구독자"}


async def one(conn: Connection, query: str, *args: Any) -> Record:
    """The single row a RETURNING or locked statement is certain to give."""
    row: Record | None = await conn.fetchrow(query, *args)
    if row is None:  # pragma: no cover - callers checked existence under a lock
        raise NotFound("the row vanished while being changed")
    return row


def check_id(row_id: int, what: str) -> None:
    """Ids beyond bigint cannot exist: answer 404 instead of overflowing."""
    if not 1 <= row_id <= MAX_ID:
        raise NotFound(
            N_("%(what)s #%(id)s이(가) 없습니다. 이미 지워졌을 수 있습니다."),
            what=Term(ko=KINDS.get(what, what), en=what),
            id=row_id,
        )
