"""HEAD answers as GET does, without the body (RFC 9110 §9.3.2): uptime
monitors and link checkers ask with HEAD. The app is called as an ASGI
application directly, because both httpx and uvicorn drop a HEAD answer's
body on their own and would hide one the app sent."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar
from litestar.routes import HTTPRoute

from newsletter.app import create_app, create_metrics_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from tests.conftest import bearer
from tests.support.console import login, make_user


class Answer:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""


async def ask(app: Litestar, method: str, path: str, headers: dict[str, str]) -> Answer:
    """One request straight into the app; what it sent, body chunks joined."""
    answer = Answer()
    target, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "path": target,
        "raw_path": target.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [
            (b"host", b"newsletter.gimpo.go.kr"),
            *((k.lower().encode(), v.encode()) for k, v in headers.items()),
        ],
        "client": ("203.0.113.7", 50000),
        "server": ("newsletter.gimpo.go.kr", 443),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")

    await app(scope, receive, send)  # type: ignore[arg-type]
    return answer


async def test_every_get_route_also_answers_head(settings: Settings, db: Database) -> None:
    # The route table itself: a route added tomorrow is covered without a test edit.
    for app in (create_app(settings, db), create_metrics_app(settings, db)):
        routes = [r for r in app.routes if isinstance(r, HTTPRoute) and "GET" in r.methods]
        assert len(routes) > (30 if app.openapi_config else 0)
        without = sorted(r.path for r in routes if "HEAD" not in r.methods)
        assert without == [], f"GET routes that refuse HEAD: {without}"


async def test_head_stays_out_of_the_api_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/api/docs/openapi.json")).json()
    operations = [(path, m) for path, item in document["paths"].items() for m in item]
    assert ("/api/v1/news-items", "get") in operations
    assert [op for op in operations if op[1] == "head"] == []
    ids = {item["get"]["operationId"] for item in document["paths"].values() if "get" in item}
    assert "ApiV1NewsItemsListNewsItems" in ids  # the ids clients were generated with


async def test_head_of_pages_api_and_console_matches_get_without_a_body(
    app: Litestar, client: httpx.AsyncClient, db: Database
) -> None:
    editor = await make_user(db, "editor")
    await login(client, editor.email)
    session = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    api = await bearer(db, "editor")
    cases: list[tuple[str, dict[str, str]]] = [
        ("/subscribe", {"Accept-Language": "ko"}),
        ("/subscribe?lang=en", {}),
        ("/archive", {}),
        ("/archive/feed.xml", {}),
        ("/confirm?token=tampered", {}),
        ("/no-such-page", {}),
        ("/healthz", {}),
        ("/readyz", {}),
        ("/api/v1/news-items", api),
        ("/api/v1/issues", {}),  # no key: the 401 too
        ("/admin", {"Cookie": session}),
        ("/admin/news", {"Cookie": session}),
        ("/admin/login", {}),
    ]
    for path, headers in cases:
        got = await ask(app, "GET", path, headers)
        head = await ask(app, "HEAD", path, headers)
        assert got.body, path
        assert (head.status, head.body) == (got.status, b""), path
        for name in ("content-type", "content-length", "content-security-policy"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    # Litestar's static files declare their own HEAD: the same length, no body
    # (and, Litestar's choice, no Content-Type).
    got = await ask(app, "GET", "/static/console/console.css", {})
    head = await ask(app, "HEAD", "/static/console/console.css", {})
    assert (head.status, head.body) == (got.status, b"") == (200, b"")
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.body))
    statuses = {path: (await ask(app, "HEAD", path, h)).status for path, h in cases}
    assert statuses["/subscribe"] == statuses["/admin/news"] == 200
    assert statuses["/api/v1/issues"] == 401 and statuses["/no-such-page"] == 404


async def test_head_of_a_post_only_route_is_refused_without_a_body(app: Litestar) -> None:
    head = await ask(app, "HEAD", "/api/v1/bounces", {})
    assert head.status == 405 and head.body == b""


async def test_head_of_the_roster_export_records_no_export(
    client: httpx.AsyncClient, db: Database
) -> None:
    """A link checker's HEAD gets the export's headers, but nobody's address
    left the database: the audit trail and the access log say no export happened."""

    async def trail() -> tuple[int, int]:
        audit_rows = await db.pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'subscribers.export'"
        )
        reads = await db.pool.fetchval(
            "SELECT count(*) FROM access_log WHERE action = 'subscribers.export'"
        )
        return audit_rows, reads

    await db.pool.execute(
        "INSERT INTO subscribers (email, status) VALUES ('kim@example.com', 'active')"
    )
    admin = await make_user(db, "admin")
    await login(client, admin.email)
    api = await bearer(db, "admin")
    for path, headers in (
        ("/api/v1/subscribers/export", api),
        ("/admin/subscribers/export.csv", {}),
    ):
        before = await trail()
        head = await client.head(path, headers=headers)
        assert head.status_code == 200, path
        assert head.headers["content-type"].startswith("text/csv"), path
        assert head.headers["content-disposition"].startswith("attachment;"), path
        assert await trail() == before, path
        got = await client.get(path, headers=headers)
        assert "kim@example.com" in got.text
        assert await trail() > before, path
