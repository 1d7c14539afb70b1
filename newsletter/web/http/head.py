"""HEAD wherever GET: the same status and headers, no body (RFC 9110 §9.3.2).

Uptime monitors and link checkers ask with HEAD; Litestar routes HEAD only to
handlers that declare it. :class:`AnsweringHead` keeps one declaration per
route: every GET handler registered on the app (pages, API, the console's
router, the static files, Litestar's own API documentation) that does not
answer HEAD itself gets a twin for HEAD, left out of the OpenAPI document
(which would otherwise list every GET twice and rename its operation ids).
:func:`drop_head_body`, a ``before_send`` hook, lets no answer to a HEAD
leave the app with a body. A route that must tell HEAD from GET (the click
redirect, which does not count a HEAD) declares both methods itself.

A HEAD runs the GET handler, so it does what a GET does (a read of personal
data is recorded in the access log) and nothing a GET would not. A handler
whose answer is personal data made as it streams (the roster export) asks
:func:`asks_headers_only` and answers a HEAD with the headers alone: no
row is read, so no export is recorded.
"""

from __future__ import annotations

from copy import copy, deepcopy
from typing import Any

from litestar import Litestar, Request
from litestar.enums import HttpMethod
from litestar.handlers import HTTPRouteHandler
from litestar.router import Router
from litestar.routes import HTTPRoute
from litestar.types import ControllerRouterHandler, Message, Scope


def _wants_twin(handler: HTTPRouteHandler, head_paths: set[str]) -> bool:
    return HttpMethod.GET in handler.http_methods and not head_paths & set(handler.paths)


def _head_twin(handler: HTTPRouteHandler) -> HTTPRouteHandler:
    twin = copy(handler)
    twin.http_methods = {HttpMethod.HEAD}
    twin.include_in_schema = False
    return twin


def _router_with_twins(router: Router) -> Router:
    # A copy: the module's router is shared by every app built in this process.
    answering = deepcopy(router)
    # A handler with several paths sits in several routes: one twin each.
    handlers = {
        id(handler): handler
        for route in answering.routes
        if isinstance(route, HTTPRoute)
        for handler in route.route_handlers
    }.values()
    head_paths = {
        path
        for handler in handlers
        if HttpMethod.HEAD in handler.http_methods
        for path in handler.paths
    }
    for handler in handlers:
        if _wants_twin(handler, head_paths):
            answering.register(_head_twin(handler))
    return answering


def asks_headers_only(request: Request[Any, Any, Any]) -> bool:
    """A HEAD: the answer's body will be dropped, so it need not be made."""
    return request.method == HttpMethod.HEAD


async def drop_head_body(message: Message, scope: Scope) -> None:
    """A ``before_send`` hook: an answer to HEAD keeps its headers (its
    Content-Length says what a GET would get) and sends no body."""
    if message["type"] == "http.response.body" and scope.get("method") == HttpMethod.HEAD:
        message["body"] = b""


class AnsweringHead(Litestar):
    """Litestar, where every route registered with GET answers HEAD too."""

    def register(self, value: ControllerRouterHandler) -> None:  # type: ignore[override]
        if isinstance(value, Router):
            value = _router_with_twins(value)
        super().register(value)
        if isinstance(value, HTTPRouteHandler):
            declared = self.route_handler_method_map
            head_paths = {path for path in value.paths if HttpMethod.HEAD in declared.get(path, {})}
            if _wants_twin(value, head_paths):
                super().register(_head_twin(value))
