"""The transactional outbox: confirmation mails, result notices, test sends.

Web requests only insert a row here; a worker renders and sends it. Lower
priority numbers go first, and the worker sends this queue ahead of bulk
issue deliveries (while the issue keeps its share: delivery/worker.py).

Notices are capped per address (:data:`NOTICES_PER_ADDRESS_PER_DAY`): however
often a link is replayed or a flow repeated, one mailbox gets a few mails a
day, and the queue cannot fill with mail for one person.
"""

from __future__ import annotations

import logging
from typing import Any

from newsletter.core.db import QUERIES, Connection

PRIORITY_CONFIRM = 0
PRIORITY_NOTICE = 1
PRIORITY_TEST = 2
# Confirmations, opt-in/opt-out/re-confirmation notices: a person acting
# normally needs two or three a day; the rest of a flood is dropped.
NOTICES_PER_ADDRESS_PER_DAY = 5

log = logging.getLogger("newsletter.outbox")


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


async def enqueue_notice(
    conn: Connection,
    kind: str,
    recipient: str,
    payload: dict[str, Any],
    *,
    subscriber_id: int | None = None,
    priority: int = PRIORITY_NOTICE,
) -> int | None:
    """Queue a notice to a resident; None (and a log line) when the address
    already had its day's share of transactional mail. Call it inside the
    transaction that made the change the notice reports."""
    await conn.execute(QUERIES.lock_outbox_recipient, recipient)
    outbox_id: int | None = await conn.fetchval(
        QUERIES.enqueue_notice_capped,
        kind,
        priority,
        recipient,
        subscriber_id,
        payload,
        NOTICES_PER_ADDRESS_PER_DAY,
        PRIORITY_TEST,
    )
    if outbox_id is None:
        # The subscriber id, never the address: logs are read by ops.
        log.warning(
            "%s for subscriber %s dropped: %s mails to that address in a day already",
            kind,
            subscriber_id,
            NOTICES_PER_ADDRESS_PER_DAY,
        )
    return outbox_id
