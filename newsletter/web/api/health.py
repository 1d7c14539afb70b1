"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import MediaType, Response, get

from newsletter.core.db import pending_migrations
from newsletter.ops.stats import worker_problems
from newsletter.web.http.deps import DB


@get("/healthz", media_type=MediaType.JSON, include_in_schema=True, tags=["ops"])
async def healthz() -> dict[str, str]:
    """The process is up and answering."""
    return {"status": "ok"}


@get("/readyz", media_type=MediaType.JSON, tags=["ops"])
async def readyz(db: DB) -> Response[dict[str, Any]]:
    """Ready to serve: database reachable, every migration applied, and, while an
    issue is sending, at least one worker heartbeat in the last minute."""
    problems: list[str] = []
    try:
        async with db.pool.acquire(timeout=2) as conn:
            pending = await pending_migrations(conn)
            if pending:
                problems.append(f"migrations not applied: {', '.join(pending)}")
            else:  # the heartbeat table exists only once migrations ran
                problems.extend(await worker_problems(conn))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        problems.append(f"database unreachable: {type(exc).__name__}")
    if problems:
        return Response({"status": "unavailable", "problems": problems}, status_code=503)
    return Response({"status": "ok", "problems": []}, status_code=200)


ROUTES = [healthz, readyz]
