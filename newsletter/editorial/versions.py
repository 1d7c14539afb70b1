"""Versions of what editors write (drafts and news items), so two people on
one draft never overwrite each other silently.

A version names one state of a row: it changes with every update (the row's
``updated_at``, which every UPDATE of issues and news items sets). The API
hands it out as an ``ETag`` and takes it back in ``If-Match``; the console
keeps it in a hidden field of its edit forms. A change made against an older
version is refused (:class:`~newsletter.core.errors.Stale`, 412) with who
changed the row last and when, read from the audit trail, and nothing is
written.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime
from zoneinfo import ZoneInfo

from newsletter.core.clock import clock
from newsletter.core.db import QUERIES, Connection, Record
from newsletter.core.errors import Stale
from newsletter.core.i18n import N_, Term

CHANGED = N_(
    "%(what)s을(를) 연 뒤에 %(who)s 님이 %(when)s에 바꿨습니다. 내가 쓴 내용은 아직 저장하지 "
    "않았습니다. 지금 저장된 내용을 확인한 뒤 다시 저장해 주세요."
)


def version_of(row: Record) -> str:
    """The row's current version: short, opaque, different after every update."""
    material = f"{row['id']}|{row['updated_at'].isoformat()}".encode()
    return hashlib.sha256(material).hexdigest()[:24]


async def require(
    conn: Connection,
    row: Record,
    expected: Collection[str] | None,
    *,
    target: str,
    what: Term,
    zone: ZoneInfo,
) -> None:
    """Refuse a change made against another version than ``row``'s (read under
    the row's lock). ``None``: the writer named no version (no precondition)."""
    if expected is None or version_of(row) in expected:
        return
    last = await conn.fetchrow(QUERIES.last_change_of, target)
    # Rows changed outside the audit trail (none today) still name a time.
    who: str = last["actor"] if last is not None else ""
    when: datetime = last["occurred_at"] if last is not None else row["updated_at"]
    raise Stale(
        CHANGED,
        what=what,
        who=who or Term(ko="다른 사람", en="someone"),
        when=clock(when, zone),
        changed_by=who,
        changed_at=when,
        current=version_of(row),
    )
