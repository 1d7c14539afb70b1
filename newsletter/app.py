"""The one place that wires Litestar: routes, dependencies, error mapping, lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from litestar import Litestar, MediaType, Request, Response
from litestar.datastructures import CacheControlHeader, State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Template
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.template.config import TemplateConfig

from newsletter.audience import signup_batch
from newsletter.audience.challenge import ChallengeKeys
from newsletter.core import paths
from newsletter.core.db import Database
from newsletter.core.errors import DomainError
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.editorial import clicks
from newsletter.editorial.feeds import PUBLIC_ONLY, FeedFetchPolicy
from newsletter.web import ROUTES, console
from newsletter.web.api.metrics import internal_metrics_endpoint
from newsletter.web.console import filters as console_filters
from newsletter.web.http.forms import MAX_FORM_FIELDS, BoundedRequest
from newsletter.web.http.head import AnsweringHead, drop_head_body
from newsletter.web.http.headers import add_security_headers
from newsletter.web.http.request_metrics import RequestMetrics
from newsletter.web.pages.shell import message, reader

log = logging.getLogger("newsletter.web")

PAGES_DIR = paths.TEMPLATES_DIR / "pages"
MAX_BODY_BYTES = 1024 * 1024  # per-route overrides allow larger CSV imports


def _error(status: int, code: str, detail: Any) -> Response[dict[str, Any]]:
    return Response(
        {"error": code, "detail": detail}, status_code=status, media_type=MediaType.JSON
    )


def _domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    # The API's clients read English; a resident's page asking for JSON
    # (``POST /subscribe``) reads the resident's language, as the page would.
    language = "en" if _is_api(request.url.path) else reader(request).language
    return Response(
        {"error": exc.code, "detail": exc.text(language), **exc.more(language)},
        status_code=exc.status,
        media_type=MediaType.JSON,
    )


def _validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    detail: Any = exc.extra if exc.extra else exc.detail
    if isinstance(detail, list):
        detail = [_plain_message(item) for item in detail]
    # Malformed JSON is a 400; well-formed but wrong values are a 422.
    status = (
        400 if "decode" in str(exc.detail).lower() or "json" in str(exc.detail).lower() else 422
    )
    return _error(status, "invalid_input" if status == 422 else "bad_request", detail)


def _plain_message(item: Any) -> Any:
    """Say what the no-NUL pattern (web/http/params.py) means instead of quoting it."""
    if isinstance(item, dict) and "\\x00" in str(item.get("message", "")):
        return {**item, "message": "must not contain NUL (\\u0000) characters"}
    return item


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def _mistake_page(request: Request[Any, Any, Any], status: int) -> Template:
    """A mistyped address (404), or a button's address opened as a link (405)."""
    who = reader(request)
    _ = who.gettext
    if status == 404:
        heading = _("페이지를 찾을 수 없습니다")
        text = _("주소가 바뀌었거나 없는 페이지입니다. 주소를 다시 확인해 주세요.")
    else:
        heading = _("이 방법으로는 열 수 없는 주소입니다")
        text = _("메일이나 페이지에 있는 링크와 단추로 다시 시도해 주세요.")
    return message(
        request,
        heading,
        text,
        status=status,
        action={"href": who.link("/subscribe"), "label": _("뉴스레터 구독 페이지로 가기")},
    )


def _is_console(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


def _http_error(
    request: Request[Any, Any, Any], exc: HTTPException
) -> Response[dict[str, Any]] | Template:
    # A person who mistyped an address, or whose browser opened a button's
    # address, gets a page; programs under /api keep the JSON shape.
    path = request.url.path
    if _is_console(path):
        return console.http_error_page(request, exc)
    if exc.status_code in (404, 405) and not _is_api(path):
        return _mistake_page(request, exc.status_code)
    return _json_http_error(request, exc)


def _json_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    code = {
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        409: "conflict",
        413: "payload_too_large",
        415: "unsupported_media_type",
        429: "rate_limited",
    }.get(exc.status_code, "bad_request" if exc.status_code < 500 else "server_error")
    response = _error(exc.status_code, code, exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def _recursion_error(
    request: Request[Any, Any, Any], exc: RecursionError
) -> Response[dict[str, Any]]:
    """msgspec gives up on JSON nested deeper than Python's stack allows (about
    a thousand levels) with a RecursionError: that is the client's document,
    not our bug. Any other RecursionError stays a 500."""
    if "deserializ" in str(exc):
        return _error(400, "bad_request", "the JSON document is nested too deeply")
    return _unexpected_error(request, exc)


def _unexpected_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(HTTP_500_INTERNAL_SERVER_ERROR, "server_error", "internal error; see server logs")


def _template_setup(engine: Any, settings: Settings) -> None:
    console_filters.install(engine, settings)
    engine.engine.add_extension("jinja2.ext.i18n")


async def stop_background_work(app: Litestar) -> None:
    """What the app runs besides requests, stopped before the pool closes."""
    await signup_batch.close(app.state)  # answer queued signups first
    await console.stop_background_work(app.state)
    await clicks.close(app.state)  # and store the clicks counted so far


def _lifespan(
    settings: Settings, database: Database | None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """The pool for the app's life: its own, or ``database`` shared by the caller."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if database is not None:  # shared pool, owned by the caller
            try:
                yield
            finally:
                await stop_background_work(app)
            return
        if settings.database_url is None:
            raise RuntimeError("NEWSLETTER_DATABASE_URL is not set")
        app.state.db = await Database.connect(settings.database_url)
        try:
            yield
        finally:
            await stop_background_work(app)
            await app.state.db.close()

    return lifespan


def _static_files() -> Any:
    return create_static_files_router(
        path="/static",
        directories=[paths.STATIC_DIR],
        # File names change with their content's version (vendor/<lib>-<version>/),
        # our own two files are small: an hour keeps deploys visible quickly.
        cache_control=CacheControlHeader(max_age=3600, public=True),
        include_in_schema=False,
    )


def _templates(settings: Settings) -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(
        directory=PAGES_DIR,
        engine=JinjaTemplateEngine,
        # The console's filters, and {% trans %} blocks for the residents'
        # pages (their shell passes each reader's gettext in).
        engine_callback=lambda engine: _template_setup(engine, settings),
    )


OPENAPI = OpenAPIConfig(
    title="김포시 뉴스레터 API",
    version="1.0.0",
    path="/api/docs",
    render_plugins=[SwaggerRenderPlugin(path="/")],
    components=Components(
        security_schemes={
            "BearerToken": SecurityScheme(
                type="http",
                scheme="bearer",
                description="API key from `newsletter create-api-key`",
            )
        }
    ),
)


def create_app(
    settings: Settings,
    database: Database | None = None,
    *,
    extra_routes: Sequence[Any] = (),
    feed_policy: FeedFetchPolicy = PUBLIC_ONLY,
) -> Litestar:
    """Build the application. Pass ``database`` to share a pool (tests, ``dev``);
    ``extra_routes`` are added by ``newsletter dev`` (the captured-mail pages);
    ``feed_policy`` says which private addresses feed imports may reach (none)."""

    tokens = Tokens(settings.secret_key, settings.confirm_max_age_seconds)

    def provide_db(request: Request[Any, Any, Any]) -> Database:
        db: Database = request.app.state.db
        return db

    return AnsweringHead(
        route_handlers=[*ROUTES, _static_files(), *extra_routes],
        lifespan=[_lifespan(settings, database)],
        state=State(
            {
                "db": database,
                "settings": settings,
                "feed_policy": feed_policy,
                "challenge_keys": ChallengeKeys.from_secret(settings.secret_key),
            }
        ),
        dependencies={
            "db": Provide(provide_db, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False, use_cache=True),
            "tokens": Provide(lambda: tokens, sync_to_thread=False, use_cache=True),
        },
        exception_handlers={
            DomainError: _domain_error,
            ValidationException: _validation_error,
            HTTPException: _http_error,
            RecursionError: _recursion_error,
            Exception: _unexpected_error,
        },
        template_config=_templates(settings),
        openapi_config=OPENAPI,
        request_max_body_size=MAX_BODY_BYTES,
        request_class=BoundedRequest,  # forms: bounded in fields too, large ones off the loop
        multipart_form_part_limit=MAX_FORM_FIELDS,
        middleware=[RequestMetrics()],  # HTTP requests by route and status, for /metrics
        # CSP, nosniff, ... on every answer; no body in an answer to HEAD.
        before_send=[add_security_headers, drop_head_body],
        debug=False,
        logging_config=None,  # keep the JSON logging set up by newsletter.logs
    )


def create_metrics_app(settings: Settings, database: Database) -> Litestar:
    """``GET /metrics`` alone, without a key: for the internal port
    (``NEWSLETTER_METRICS_HOST:NEWSLETTER_METRICS_PORT``), which the public
    never reaches. Shares the public app's pool."""
    return AnsweringHead(
        route_handlers=[internal_metrics_endpoint],
        state=State({"db": database, "settings": settings}),
        dependencies={
            "db": Provide(lambda: database, sync_to_thread=False, use_cache=True),
            "settings": Provide(lambda: settings, sync_to_thread=False, use_cache=True),
        },
        exception_handlers={HTTPException: _json_http_error, Exception: _unexpected_error},
        openapi_config=None,
        before_send=[add_security_headers, drop_head_body],
        debug=False,
        logging_config=None,
    )
