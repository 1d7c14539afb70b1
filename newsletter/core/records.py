"""Rows by id: the two checks every domain module makes the same way."""

from __future__ import annotations

from typing import Any

from newsletter.core.db import Connection, Record
from newsletter.core.errors import NotFound
from newsletter.core.i18n import N_, Term
from newsletter.core.kinds import MAX_ID

KINDS = {"issue": "호", "news item": "뉴스 항목", "subscriber": "구독자", "import": "명단 가져오기"}


async def one(conn: Connection, query: str, *args: Any) -> Record:
    """The single row a RETURNING or locked statement is certain to give."""
    row: Record | None = await conn.fetchrow(query, *args)
    if row is None:  # pragma: no cover - callers checked existence under a lock
        raise NotFound(N_("바꾸는 사이에 항목이 없어졌습니다. 다시 열어 주세요."))
    return row


def check_id(row_id: int, what: str) -> None:
    """Ids beyond bigint cannot exist: answer 404 instead of overflowing."""
    if not 1 <= row_id <= MAX_ID:
        raise missing(what, row_id)


def missing(what: str, row_id: int) -> NotFound:
    """No ``what`` (a key of :data:`KINDS`) has the id ``row_id``."""
    return NotFound(
        N_("%(what)s #%(id)s이(가) 없습니다. 이미 지워졌을 수 있습니다."),
        what=Term(ko=KINDS.get(what, what), en=what),
        id=row_id,
    )
