"""CSV imports started from the console: run in the background, with progress.

An upload of a city-wide list takes longer than a person wants to stare at
a spinning browser tab. The console hands the spooled file to :func:`run`,
which runs :func:`roster.import_csv` as an asyncio task in the web process
and keeps a ``roster_imports`` row up to date (bytes read, then the report
or the error), which the page polls for its progress bar. The import is one
transaction either way: a process that dies mid-way leaves no half import,
and its row stops moving, which the page reports.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import IO

from newsletter.audience import roster
from newsletter.core.db import Database, Record
from newsletter.core.errors import DomainError
from newsletter.core.kinds import MAX_ID
from newsletter.core.records import missing
from newsletter.core.settings import Settings
from newsletter.ops.audit import Actor

log = logging.getLogger("newsletter.import_jobs")
PROGRESS_EVERY_SECONDS = 0.5


async def create(
    db: Database,
    *,
    user_id: int | None,
    mode: str,
    source: str | None,
    filename: str | None,
    total_bytes: int,
) -> int:
    job_id: int = await db.fetchval(
        "insert_import_job", user_id, mode, source, (filename or "")[:200] or None, total_bytes
    )
    return job_id


async def run(
    db: Database,
    settings: Settings,
    job_id: int,
    spool: IO[bytes],
    *,
    mode: str,
    source: str | None,
    actor: Actor,
) -> None:
    """Import the file, recording progress and the outcome on the job's row.
    Closes ``spool`` when done."""
    latest = {"done": 0, "total": 0}

    def progress(done: int, total: int) -> None:
        latest["done"], latest["total"] = done, total

    async def report_progress() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_SECONDS)
            await db.execute("import_job_progress", job_id, latest["done"], latest["total"])

    ticker = asyncio.create_task(report_progress())
    try:
        report = await roster.import_csv(
            db,
            settings,
            spool,
            mode=mode,
            source=source,
            actor=actor,
            now=datetime.now(UTC),
            progress=progress,
        )
    except DomainError as exc:
        await db.execute("finish_import_job", job_id, "failed", None, exc.text("ko"))
    except asyncio.CancelledError:
        await asyncio.shield(
            db.execute("finish_import_job", job_id, "failed", None, "서버가 멈춰 중단되었습니다.")
        )
        raise
    except Exception:
        log.exception("import job %s failed", job_id)
        await db.execute(
            "finish_import_job", job_id, "failed", None, "예상하지 못한 오류로 중단되었습니다."
        )
    else:
        # Kept in Korean, like the failure above: the console is the only reader.
        await db.execute("finish_import_job", job_id, "done", report.as_dict("ko"), None)
    finally:
        ticker.cancel()
        spool.close()


async def get(db: Database, job_id: int) -> Record:
    row = await db.fetchrow("get_import_job", job_id) if 1 <= job_id <= MAX_ID else None
    if row is None:
        raise missing("import", job_id)
    return row


async def recent(db: Database, limit: int = 10) -> list[Record]:
    return await db.fetch("recent_import_jobs", limit)
