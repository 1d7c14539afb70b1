"""Recording who looked at residents' personal data from the console.

Every console page that shows subscribers' addresses, names or consent
records calls :func:`record_read` once per page shown: who (the person's
account), when, from which address, and what (the page and its filter).
The entry goes to the access log (:mod:`newsletter.ops.access_log`, which the
privacy officer reads with ``newsletter access-log`` and keeps at least a
year) and, as before, to the audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from litestar import Request

from newsletter.core.db import Database
from newsletter.ops import access_log, audit
from newsletter.web.console.gate import client_ip, session_of


async def record_read(
    request: Request[Any, Any, Any],
    db: Database,
    what: str,
    target: str,
    *,
    subscriber_ids: Sequence[int] = (),
    **details: Any,
) -> None:
    """``subscriber_ids``: whose data a page of several people showed (a
    ``subscriber:<id>`` target names its one person itself)."""
    session = session_of(request)
    shown = {k: v for k, v in details.items() if v is not None}
    subject, _, number = target.partition(":")
    whose = [int(number)] if subject == "subscriber" and number.isdigit() else []
    whose += subscriber_ids
    async with db.transaction() as conn:
        await access_log.record_read(
            conn,
            session.user.actor,
            client_ip(request),
            what,
            subscriber_ids=[i for i in whose if i <= 2**63 - 1],
            query={k: v for k, v in shown.items() if k != "shown"},
            rows=shown.get("shown") if isinstance(shown.get("shown"), int) else None,
        )
        await audit.record(
            conn,
            session.user.actor,
            f"personal_data.read.{what}",
            target,
            ip=client_ip(request),
            **shown,
        )
