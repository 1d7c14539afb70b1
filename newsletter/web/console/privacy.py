"""Recording who looked at residents' personal data from the console.

Every console page that shows subscribers' addresses, names or consent
records calls :func:`record_read` once per page shown: who (the person's
account), when, from which address, and what (the page and its filter).
The entry goes to the audit trail, which keeps it as long as the database.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from newsletter.core.db import Database
from newsletter.ops import audit
from newsletter.web.console.gate import client_ip, session_of


async def record_read(
    request: Request[Any, Any, Any], db: Database, what: str, target: str, **details: Any
) -> None:
    session = session_of(request)
    async with db.transaction() as conn:
        await audit.record(
            conn,
            session.user.actor,
            f"personal_data.read.{what}",
            target,
            ip=client_ip(request),
            **{k: v for k, v in details.items() if v is not None},
        )
