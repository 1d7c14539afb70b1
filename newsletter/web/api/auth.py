"""Bearer-key authentication and role guards for ``/api/v1``.

Use ``guards=[requires("editor")]`` on a handler or router and take
``actor: Actor`` as a parameter to know who is acting (for the audit trail).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from newsletter.core.db import Database
from newsletter.ops.apikeys import ApiKey, authenticate
from newsletter.ops.audit import Actor

Guard = Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]


async def _api_key(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiKey:
    cached = connection.scope.get("state", {}).get("api_key")
    if isinstance(cached, ApiKey):
        return cached
    header = connection.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException(
            "missing API key: send 'Authorization: Bearer <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    db: Database = connection.app.state.db
    async with db.pool.acquire() as conn:
        api_key = await authenticate(conn, key.strip())
    if api_key is None:
        raise NotAuthorizedException(
            "invalid or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    connection.scope.setdefault("state", {})["api_key"] = api_key
    return api_key


def requires(*roles: str) -> Guard:
    """A guard admitting keys of any of ``roles`` (and admins)."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        api_key = await _api_key(connection)
        if not any(api_key.allows(role) for role in roles):
            raise PermissionDeniedException(
                f"this needs the {' or '.join(roles)} role; your key is {api_key.role}"
            )

    return guard


async def _provide_actor(request: Request[Any, Any, Any]) -> Actor:
    api_key = await _api_key(request)
    return Actor(name=api_key.name, api_key_id=api_key.id, role=api_key.role)


provide_actor = Provide(_provide_actor)
SECURITY: list[dict[str, list[str]]] = [{"BearerToken": []}]
