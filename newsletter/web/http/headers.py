"""Security headers on every answer: pages, API, errors, even unmatched URLs.

One hook (:func:`add_security_headers`, installed by app.py as a Litestar
``before_send`` hook, so it sees every response the app sends, 404s for
unknown paths included) adds:

- ``Content-Security-Policy`` (:data:`PAGE_POLICY`): scripts only from our own
  origin (a later ``<script src="/static/...">`` works, inline script does
  not), styles from our origin plus inline ``style`` (the pages and the
  MJML-rendered archive use them), images from us, ``data:`` and https (news
  item pictures in the archive), forms post only to us, no plugins, no
  ``<base>``, and ``frame-ancestors 'none'``: no other site may frame a page;
- ``X-Frame-Options: DENY`` for browsers older than ``frame-ancestors``;
- ``X-Content-Type-Options: nosniff``;
- ``Referrer-Policy: strict-origin-when-cross-origin``: a token in one of our
  URLs never reaches another site.

A route that other sites may frame says so in its ``opt`` with
:func:`framable_by`; only its ``frame-ancestors`` (and ``X-Frame-Options``)
change::

    @get("/embed/subscribe", opt=framable_by(lambda s: s.embed_origins))

A response that sets its own ``Content-Security-Policy`` keeps it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from newsletter.core.settings import Settings

FRAME_ANCESTORS = "frame_ancestors"  # the route ``opt`` key framable_by sets

_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; font-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors {ancestors}"
)
PAGE_POLICY = _POLICY.format(ancestors="'none'")
# The interactive API documentation (Litestar's Swagger UI) loads its script
# and style from a CDN and starts with an inline script. It holds no personal
# data and is the only page that needs either.
DOCS_PATH = "/api/docs"
DOCS_CDN = "https://cdn.jsdelivr.net"
DOCS_POLICY = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {DOCS_CDN}; "
    f"style-src 'self' 'unsafe-inline' {DOCS_CDN}; img-src 'self' data: https:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors 'none'"
)
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}

Origins = Callable[[Settings], Sequence[str]]


def framable_by(origins: Origins) -> dict[str, Any]:
    """``opt=`` for a route the given origins may frame (``https://www.gimpo.go.kr``);
    ``origins`` reads them from the settings at answer time."""
    return {FRAME_ANCESTORS: origins}


def _ancestors(scope: Scope) -> str | None:
    """This route's ``frame-ancestors`` sources, or None for the default ``'none'``."""
    handler = scope.get("route_handler")
    origins: Origins | None = getattr(handler, "opt", {}).get(FRAME_ANCESTORS)
    if origins is None:
        return None
    settings: Settings = scope["app"].state.settings
    allowed = [o for o in origins(settings) if o and not any(c in o for c in " ;,'\"")]
    return " ".join(allowed) if allowed else "'none'"


async def add_security_headers(message: Message, scope: Scope) -> None:
    if message["type"] != "http.response.start":
        return
    headers = MutableScopeHeaders.from_message(message)
    for name, value in ALWAYS.items():
        if name not in headers:
            headers[name] = value
    if "Content-Security-Policy" in headers:
        return
    if scope.get("path", "").startswith(DOCS_PATH):
        headers["Content-Security-Policy"] = DOCS_POLICY
        headers["X-Frame-Options"] = "DENY"
        return
    ancestors = _ancestors(scope)
    if ancestors is None:
        headers["Content-Security-Policy"] = PAGE_POLICY
        headers["X-Frame-Options"] = "DENY"
    else:
        headers["Content-Security-Policy"] = _POLICY.format(ancestors=ancestors)
