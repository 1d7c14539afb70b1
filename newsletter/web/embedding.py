"""The signup form on the city homepage: framing and cross-origin posts, for
the origins in NEWSLETTER_EMBED_ORIGINS only.

Two small ASGI wrappers, set per route:

- :class:`FrameableByEmbedOrigins` on ``/embed/subscribe`` (GET and POST):
  a Content-Security-Policy whose ``frame-ancestors`` lists those origins
  (``'none'`` when there are none), so only the city's pages can show it in
  a frame. Every other page keeps ``frame-ancestors 'none'`` from the
  app-wide security headers.
- :class:`SignupCors` on ``POST /subscribe``: ``Access-Control-Allow-Origin``
  for those origins (their page's script may read the answer, errors
  included); any other origin gets no CORS header, so a browser hides the
  answer from it. The preflight is answered in ``web/public.py``.
"""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from newsletter.core.settings import Settings

# What the embedded pages load: our own files only (styles, the widget's
# script and worker, the challenge it fetches), nothing inline.
_EMBED_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; worker-src 'self'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'; frame-ancestors {ancestors}"
)
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Content-Type, Accept, Accept-Language",
    "Access-Control-Max-Age": "600",
}


def allowed_origin(origin: str | None, settings: Settings) -> str | None:
    """``origin`` if it may use the signup cross-origin, else None."""
    if not origin:
        return None
    normalised = origin.strip().rstrip("/").lower()
    return normalised if normalised in settings.embed_origins else None


def embed_policy(settings: Settings) -> str:
    return _EMBED_POLICY.format(ancestors=" ".join(settings.embed_origins) or "'none'")


def _settings(scope: Scope) -> Settings:
    settings: Settings = scope["litestar_app"].state.settings
    return settings


def _headers_of(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _replace(message: HTTPResponseStartEvent, extra: dict[str, str]) -> None:
    """Set ``extra`` on a response start message, replacing any same-named header."""
    names = {name.lower().encode("latin-1") for name in extra}
    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
    message["headers"] = [
        *kept,
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
    ]


class _ResponseHeaders:
    """Add headers (computed per request) to whatever the route answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def headers_for(self, scope: Scope) -> dict[str, str]:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope["type"]) != "http":
            await self.app(scope, receive, send)
            return
        extra = self.headers_for(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _replace(message, extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)


class FrameableByEmbedOrigins(_ResponseHeaders):
    def headers_for(self, scope: Scope) -> dict[str, str]:
        return {"Content-Security-Policy": embed_policy(_settings(scope))}


class SignupCors(_ResponseHeaders):
    def headers_for(self, scope: Scope) -> dict[str, str]:
        headers: dict[str, Any] = {"Vary": "Origin"}
        origin = allowed_origin(_headers_of(scope).get("origin"), _settings(scope))
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
        return headers
