"""The signup form on the city homepage: cross-origin posts, for the origins
in NEWSLETTER_EMBED_ORIGINS only.

Framing is the security headers' business: ``/embed/subscribe`` (GET and
POST) declares ``opt=framable_by(lambda s: s.embed_origins)`` (web/headers.py),
so its ``frame-ancestors`` lists those origins (``'none'`` when there are
none) and every other page keeps ``frame-ancestors 'none'``.

:class:`SignupCors`, a small ASGI wrapper on ``POST /subscribe``, adds
``Access-Control-Allow-Origin`` for those origins (their page's script may
read the answer, errors included); any other origin gets no CORS header, so a
browser hides the answer from it. The preflight is answered in ``web/public.py``.
"""

from __future__ import annotations

from litestar.types import ASGIApp, HTTPResponseStartEvent, Message, Receive, Scope, Send

from newsletter.core.settings import Settings

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


def _settings(scope: Scope) -> Settings:
    settings: Settings = scope["litestar_app"].state.settings
    return settings


def _origin_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"origin":  # ASGI header names arrive lower-cased
            return value.decode("latin-1")
    return None


def _replace(message: HTTPResponseStartEvent, extra: dict[str, str]) -> None:
    """Set ``extra`` on a response start message, replacing any same-named header."""
    names = {name.lower().encode("latin-1") for name in extra}
    kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
    message["headers"] = [
        *kept,
        *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()),
    ]


class SignupCors:
    """CORS headers, computed per request, on whatever the signup route answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def headers_for(scope: Scope) -> dict[str, str] | None:
        settings = _settings(scope)
        if not settings.embed_origins:
            return None  # no origin is ever allowed, so the answer never varies by it
        origin = allowed_origin(_origin_of(scope), settings)
        if origin is None:
            return {"Vary": "Origin"}
        return {"Vary": "Origin", "Access-Control-Allow-Origin": origin}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        extra = self.headers_for(scope) if str(scope["type"]) == "http" else None
        if not extra:  # the busy signup route pays nothing when there is nothing to add
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _replace(message, extra)
            await send(message)

        await self.app(scope, receive, send_with_headers)
