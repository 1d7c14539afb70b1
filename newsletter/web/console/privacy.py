"""Who is reading, as :mod:`newsletter.audience.personal_data` records it.

Console pages that show residents' addresses, names or consent records read
them through that module with this page's :func:`reader` (the person's
account and the client's address); it records each read in the access log
(which the privacy officer reads with ``newsletter access-log``, kept at
least a year) and the audit trail, in the read's own transaction.
"""

from __future__ import annotations

from typing import Any

from litestar import Request

from newsletter.audience.personal_data import Reader
from newsletter.web.console.gate import client_ip, session_of


def reader(request: Request[Any, Any, Any]) -> Reader:
    return Reader(session_of(request).user.actor, client_ip(request))
