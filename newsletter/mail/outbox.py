"""The transactional outbox: confirmation mails, result notices, test sends.

Web requests only insert a row here; a worker renders and sends it. Lower
priority numbers go first, and the worker drains this queue ahead of bulk
issue deliveries.
"""

from __future__ import annotations

from typing import Any

from newsletter.core.db import QUERIES, Connection

PRIORITY_CONFIRM = 0
PRIORITY_NOTICE = 1
PRIORITY_TEST = 2


async def enqueue(
    conn: Connection,
    kind: str,
    recipient: str,
    payload: dict[str, Any],
    *,
    subscriber_id: int | None = None,
    priority: int = PRIORITY_NOTICE,
) -> int:
    outbox_id: int = await conn.fetchval(
        QUERIES.enqueue_outbox, kind, priority, recipient, subscriber_id, payload
    )
    return outbox_id
