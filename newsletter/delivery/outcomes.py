"""Writing down a failed send: one way for both queues.

Issue deliveries (``claim.py``) and transactional mail (``outbox.py``) meet
the same SMTP failures. :func:`failures.verdict` says what a failure means;
:func:`record_failure` carries that out with the queue's own statements,
named in its :class:`Queue`. Waiting (retry, defer, push-back) is written
the same way for both, so the statements share their parameters
(``deliveries.sql``, ``outbox.sql``); only "failed for good" differs (a
delivery meets the bounce policy, a transactional mail does not).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import NamedTuple

from newsletter.core.db import Database
from newsletter.core.queries import QueryName
from newsletter.delivery import failures
from newsletter.delivery.failures import Decision, Verdict
from newsletter.delivery.smtp import SendError

log = logging.getLogger("newsletter.outcomes")


class Failure(NamedTuple):
    """A send that failed, with what the verdict needs to know about the row."""

    row_id: int
    subscriber_id: int | None
    attempts: int
    deferrals: int
    error: SendError
    pushbacks: int = 0


@dataclass(frozen=True, slots=True)
class Queue:
    """One queue's statements for each verdict.

    ``retry``: (id, delay, error, code, worker, enhanced code). ``defer``:
    (id, delay, error, code, max age, deferrals added, worker, push-backs
    added, enhanced code),
    returning the row's status ('failed' once past the max age). ``fail``
    writes a mail failed for good (BOUNCE, GIVE_UP) as the queue must.
    """

    name: str  # in the log: "delivery", "outbox"
    retry: QueryName
    defer: QueryName
    fail: Callable[[Database, Failure, Decision], Awaitable[None]]


async def record_failure(
    db: Database,
    queue: Queue,
    failure: Failure,
    *,
    max_attempts: int,
    waits: failures.Waits,
    worker_id: str,
) -> None:
    """Carry out the verdict on one failed send. Putting the row back in the
    queue is written only while ``worker_id`` still holds it."""
    exc = failure.error
    decision = failures.verdict(exc, failure.attempts, max_attempts)
    delay = waits.delay(decision, failure.attempts, failure.deferrals, failure.pushbacks)
    verdict = decision.verdict
    if verdict is Verdict.PUSH_BACK or verdict is Verdict.DEFER:
        # Not an attempt, however long it lasts; failed (not bounced) once
        # the mail is older than the queue's maximum age.
        status = await db.fetchval(
            queue.defer,
            failure.row_id,
            delay,
            str(exc),
            exc.code,
            waits.max_age,
            1 if verdict is Verdict.DEFER else 0,
            worker_id,
            1 if verdict is Verdict.PUSH_BACK else 0,
            exc.reply.enhanced_code,
        )
        if status == "failed":
            log.warning(
                "%s %s failed: server trouble past its maximum age", queue.name, failure.row_id
            )
    elif verdict is Verdict.RETRY:
        await db.execute(
            queue.retry,
            failure.row_id,
            delay,
            str(exc),
            exc.code,
            worker_id,
            exc.reply.enhanced_code,
        )
    else:
        await queue.fail(db, failure, decision)
