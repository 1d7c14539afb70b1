"""Who read which personal data, when and from where.

PIPA's safeguards (개인정보의 안전성 확보조치 기준, art. 8) ask for a record of
every access to personal data -- the account, the time, where from, whose
data and what was done -- kept at least a year and protected from change.
Every read of subscribers' data (list, search, one subscriber with their
consent history, the erasure page, export, delivery addresses) by the API,
the console or the command line goes through
:mod:`newsletter.audience.personal_data`, which calls :func:`record_read` in
the read's own transaction, so a read without its record cannot happen. The table refuses
updates and the deletion of any entry younger than a year (a trigger, see
migration 0012); the daily job removes entries older than
``ACCESS_LOG_RETENTION_DAYS``.

The privacy officer reads it with ``newsletter access-log`` or
``GET /api/v1/access-log`` (admin); those reads are recorded too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newsletter.core.db import QUERIES, Connection
from newsletter.ops.audit import Actor

# What was read, in words the privacy officer's report uses.
ACTIONS = {
    "subscribers.list": "구독자 목록 조회",
    "subscribers.search": "구독자 검색",
    "subscriber.get": "구독자 상세 조회 (동의 이력 포함)",
    # The console's name for "subscriber.get" until both read through one
    # function (issue 19); kept so older entries still read in words.
    "subscriber.consent_history": "구독자 상세와 동의 이력 조회 (콘솔)",
    "subscriber.erase_confirm": "구독자 삭제 확인 화면 (주소 표시)",
    "subscribers.export": "구독자 명단 내려받기",
    "deliveries.addresses": "발송 기록의 주소 조회",
    "deliveries.export": "발송 기록 내려받기 (주소 포함)",
    "access_log.read": "접속 기록 조회",
}


@dataclass(frozen=True, slots=True)
class AccessEntry:
    id: int
    occurred_at: datetime
    actor_kind: str
    actor_ref: str
    actor_name: str
    role: str
    ip: str | None
    action: str
    subscriber_ids: list[int]
    query: dict[str, Any]
    rows: int | None

    @property
    def described(self) -> str:
        return ACTIONS.get(self.action, self.action)


async def record_read(
    conn: Connection,
    actor: Actor,
    address: str | None,
    action: str,
    *,
    subscriber_ids: Sequence[int] = (),
    query: Mapping[str, Any] | None = None,
    rows: int | None = None,
) -> None:
    """Note one read of personal data, in the caller's transaction.

    ``address`` is the client's IP address (None at the command line, whose
    actor names the host); ``action`` one of :data:`ACTIONS` (or a new
    ``area.verb`` name); ``subscriber_ids`` whose data was shown, ``query``
    the filters that chose them, ``rows`` how many records came back.
    """
    await conn.execute(
        QUERIES.insert_access_log,
        actor.kind,
        actor.reference,
        actor.name,
        actor.role,
        address,
        action,
        list(subscriber_ids),
        dict(query or {}),
        rows,
    )


@dataclass(frozen=True, slots=True)
class AccessFilter:
    since: datetime | None = None
    until: datetime | None = None
    actor: str | None = None  # a name or a reference (api_key:3)
    subscriber_id: int | None = None
    action: str | None = None
    before: int | None = None  # keyset paging: entries with a smaller id
    limit: int = 100


async def entries(conn: Connection, wanted: AccessFilter) -> list[AccessEntry]:
    """Newest first, filtered."""
    rows = await conn.fetch(
        QUERIES.access_log_entries,
        wanted.since,
        wanted.until,
        wanted.actor,
        wanted.subscriber_id,
        wanted.action,
        wanted.before,
        wanted.limit,
    )
    return [
        AccessEntry(
            id=r["id"],
            occurred_at=r["occurred_at"],
            actor_kind=r["actor_kind"],
            actor_ref=r["actor_ref"],
            actor_name=r["actor_name"],
            role=r["role"],
            ip=r["ip"],
            action=r["action"],
            subscriber_ids=list(r["subscriber_ids"]),
            query=dict(r["query"]),
            rows=r["row_count"],
        )
        for r in rows
    ]


async def read_entries(
    conn: Connection, actor: Actor, address: str | None, wanted: AccessFilter
) -> list[AccessEntry]:
    """:func:`entries`, itself recorded: who looked at the access log is access too."""
    found = await entries(conn, wanted)
    query = {
        key: value
        for key, value in (
            ("since", wanted.since.isoformat() if wanted.since else None),
            ("until", wanted.until.isoformat() if wanted.until else None),
            ("actor", wanted.actor),
            ("subscriber_id", wanted.subscriber_id),
            ("action", wanted.action),
        )
        if value is not None
    }
    await record_read(conn, actor, address, "access_log.read", query=query, rows=len(found))
    return found


async def purge(conn: Connection, retention_days: int) -> int:
    """Drop entries past their retention (never less than a year: the table refuses)."""
    deleted: int = await conn.fetchval(QUERIES.purge_access_log, retention_days)
    return deleted
