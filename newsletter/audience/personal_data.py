"""Reading residents' personal data: every read and its record, in one place.

Whoever shows a person -- the API, the console, the command line -- reads
through these functions, and each one records the read (who, from which
address, what, whose) in the access log in the same transaction as the read
itself, with a matching line in the audit trail. So no reader can show an
address without its record, and no record claims a read that did not
happen. A page of several people records every one of their ids, so "who
looked at resident X" finds list and search pages too.

Two reads are recorded beside the read rather than inside it: the exports
stream (their read is recorded, and committed, before the first byte goes
out, so an export cut short is still on record), and an issue's delivery
record is read by :mod:`newsletter.ops.delivery_record` on its own
connections (recorded right after, before the page leaves).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from newsletter.audience import roster
from newsletter.core.db import QUERIES, Connection, Database, Record
from newsletter.core.records import check_id, missing
from newsletter.core.settings import Settings
from newsletter.ops import access_log, audit, delivery_record
from newsletter.ops.audit import Actor


@dataclass(frozen=True, slots=True)
class Reader:
    """Who reads and from where: the client's IP address, or None at the
    command line (whose actor names the host)."""

    actor: Actor
    address: str | None

    @classmethod
    def command_line(cls) -> Reader:
        return cls(audit.command_line_actor(), None)


@dataclass(frozen=True, slots=True)
class Person:
    """One subscriber as an admin sees them, with their consent history."""

    row: Record
    consent_events: list[Record]


async def _record(
    conn: Connection,
    reader: Reader,
    action: str,
    target: str,
    *,
    subscriber_ids: Sequence[int] = (),
    query: Mapping[str, Any] | None = None,
    rows: int | None = None,
    audit_action: str | None = None,
) -> None:
    shown = {key: value for key, value in (query or {}).items() if value is not None}
    await access_log.record_read(
        conn,
        reader.actor,
        reader.address,
        action,
        subscriber_ids=subscriber_ids,
        query=shown,
        rows=rows,
    )
    await audit.record(
        conn,
        reader.actor,
        audit_action or f"personal_data.read.{action}",
        target,
        ip=reader.address,
        **({"rows": rows} if rows is not None else {}),
        **shown,
    )


async def _subscriber(conn: Connection, subscriber_id: int) -> Record:
    check_id(subscriber_id, "subscriber")
    row: Record | None = await conn.fetchrow(QUERIES.roster_get, subscriber_id)
    if row is None:
        raise missing("subscriber", subscriber_id)
    return row


async def person(db: Database, reader: Reader, subscriber_id: int) -> Person:
    """One subscriber and their consent history. Raises NotFound."""
    async with db.transaction() as conn:
        row = await _subscriber(conn, subscriber_id)
        events = await conn.fetch(QUERIES.roster_consent_events, subscriber_id)
        await _record(
            conn,
            reader,
            "subscriber.get",
            f"subscriber:{subscriber_id}",
            subscriber_ids=[subscriber_id],
            query={"consent_history": True},
            rows=1,
        )
    return Person(row, list(events))


async def erasure_preview(db: Database, reader: Reader, subscriber_id: int) -> Record:
    """The subscriber an erasure would remove, for the page that asks "are you
    sure?" and shows their address. Raises NotFound."""
    async with db.transaction() as conn:
        row = await _subscriber(conn, subscriber_id)
        await _record(
            conn,
            reader,
            "subscriber.erase_confirm",
            f"subscriber:{subscriber_id}",
            subscriber_ids=[subscriber_id],
            rows=1,
        )
    return row


async def page(
    db: Database,
    reader: Reader,
    *,
    after: int = 0,
    limit: int = 100,
    status: str | None = None,
    email_prefix: str | None = None,
) -> list[Record]:
    """One keyset page of the roster (a search when ``email_prefix`` is given)."""
    async with db.transaction() as conn:
        rows = await roster.page(
            conn, after=after, limit=limit, status=status, email_prefix=email_prefix
        )
        query = {
            key: value
            for key, value in (("status", status), ("email_prefix", email_prefix), ("after", after))
            if value
        }
        await _record(
            conn,
            reader,
            "subscribers.search" if email_prefix else "subscribers.list",
            "subscribers",
            subscriber_ids=[row["id"] for row in rows],
            query=query,
            rows=len(rows),
        )
    return rows


async def export(
    db: Database,
    settings: Settings,
    reader: Reader,
    *,
    status: str | None = None,
    reason: str | None = None,
    bom: bool = False,
) -> AsyncIterator[bytes]:
    """The roster as CSV. The read is on record before this returns, so
    before the caller sends the first byte (``reason``: why it was taken).
    Raises InvalidInput for an unknown status, before recording anything."""
    roster.check_status(status)
    async with db.transaction() as conn:
        query = {key: value for key, value in (("status", status), ("reason", reason)) if value}
        # Everybody's address leaves at once: the audit trail names it as an
        # export, as it always has, not as one more read.
        await _record(
            conn,
            reader,
            "subscribers.export",
            "subscribers",
            query=query,
            audit_action="subscribers.export",
        )
    return roster.export_csv(db, settings, bom=bom, status=status)


async def deliveries(
    db: Database,
    reader: Reader,
    issue_id: int,
    status: str,
    *,
    after: int = 0,
    limit: int = 100,
) -> delivery_record.DeliveryPage:
    """An issue's delivery record with the recipients' addresses (admins);
    a page that shows nobody records nothing."""
    record = await delivery_record.page(
        db, issue_id, status, after=after, limit=limit, with_addresses=True
    )
    if record.items:
        async with db.transaction() as conn:
            await _record(
                conn,
                reader,
                "deliveries.addresses",
                f"issue:{issue_id}",
                subscriber_ids=[e.subscriber_id for e in record.items if e.subscriber_id],
                query={"issue_id": issue_id, "status": status, "after": after},
                rows=len(record.items),
            )
    return record


async def delivery_export(
    db: Database, reader: Reader, issue_id: int, status: str | None
) -> AsyncIterator[list[delivery_record.DeliveryEntry]]:
    """Every delivery of the issue (of ``status``, or all four) with addresses,
    in pages, for the CSV. Raises NotFound for an unknown issue before
    recording; the read is on record before this returns."""
    wanted = delivery_record.statuses(status)
    await delivery_record.require_issue(db, issue_id)
    async with db.transaction() as conn:
        await _record(
            conn,
            reader,
            "deliveries.export",
            f"issue:{issue_id}",
            query={"issue_id": issue_id, "status": status},
            audit_action="deliveries.export",
        )
    return delivery_record.entries(db, issue_id, wanted)
