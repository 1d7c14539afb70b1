"""Every answer carries CSP, nosniff, Referrer-Policy and frame-ancestors
'none'; one route can let named origins frame it; and the real pages, in a
real browser, break none of the policy's rules."""

from __future__ import annotations

import httpx
from litestar import MediaType, get

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.core.tokens import Tokens
from newsletter.web.http.headers import PAGE_POLICY, framable_by
from tests.conftest import bearer
from tests.support.browser import CHROMIUM_ARGS, chromium  # noqa: F401 - the fixture
from tests.support.delivery import add_subscribers, start_issue
from tests.support.processes import serving

Client = httpx.AsyncClient


def assert_protected(response: httpx.Response, ancestors: str = "'none'") -> None:
    headers = response.headers
    where = f"{response.request.method} {response.request.url.path} {response.status_code}"
    assert headers["x-content-type-options"] == "nosniff", where
    assert headers["referrer-policy"] == "strict-origin-when-cross-origin", where
    policy = headers["content-security-policy"]
    assert f"frame-ancestors {ancestors}" in policy, where
    assert "script-src 'self'" in policy and "object-src 'none'" in policy, where


async def test_every_kind_of_answer_carries_the_headers(client: Client, db: Database) -> None:
    answers = [
        await client.get("/subscribe"),
        await client.post("/subscribe", data={"email": "bad", "consent": "on"}),
        await client.get("/confirm?token=garbage"),
        await client.get("/archive"),
        await client.get("/healthz"),
        await client.get("/api/v1/stats"),  # 401, JSON
        await client.get("/api/v1/stats", headers=await bearer(db, "ops")),
        await client.get("/no/such/page"),  # 404 before any route matched
        await client.delete("/subscribe"),  # 405
        await client.get("/metrics"),
        await client.get("/ops"),
    ]
    assert {r.status_code for r in answers} >= {200, 400, 401, 404, 405, 422}
    for response in answers:
        assert_protected(response)
        assert response.headers["x-frame-options"] == "DENY"
    assert answers[0].headers["content-security-policy"] == PAGE_POLICY
    docs = await client.get("/api/docs")
    assert (
        docs.status_code == 200
        and "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    )


@get(
    "/embed/test-form",
    media_type=MediaType.HTML,
    opt=framable_by(lambda settings: ["https://www.gimpo.go.kr", "https://news.gimpo.go.kr"]),
)
async def embeddable() -> str:
    return "<p>form</p>"


async def test_one_route_can_be_framed_by_named_origins(settings: Settings, db: Database) -> None:
    app = create_app(settings, db, extra_routes=[embeddable])
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://x") as http:
        framed = await http.get("/embed/test-form")
        assert_protected(framed, "https://www.gimpo.go.kr https://news.gimpo.go.kr")
        assert "x-frame-options" not in framed.headers
        other = await http.get("/subscribe")
        assert_protected(other)


async def test_pages_break_no_rule_of_the_policy_in_chromium(
    chromium: str,  # noqa: F811 - the fixture imported above
    database_url: str,
    db: Database,
    settings: Settings,
) -> None:
    from playwright.async_api import async_playwright

    await add_subscribers(db, 1)
    public_id = await db.pool.fetchval("SELECT public_id FROM subscribers LIMIT 1")
    await start_issue(
        db,
        settings,
        body='<p>사진 <img src="https://www.gimpo.go.kr/img/1.png" alt="축제"></p>',
    )
    tokens = Tokens(settings.secret_key)
    paths = [
        "/subscribe",
        "/subscribe?lang=en",
        "/embed/subscribe",
        f"/confirm?token={tokens.confirm(public_id)}",
        f"/unsubscribe?token={tokens.unsubscribe(public_id)}",
        "/confirm?token=tampered",
        "/archive",
        "/archive/1",
        "/no/such/page",
        "/admin/login",  # the console sets a stricter policy of its own
    ]
    async with serving(database_url) as served, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(locale="ko-KR")
            # Record every violation the page reports, from the first byte on.
            await context.add_init_script(
                "window.__csp = [];"
                "document.addEventListener('securitypolicyviolation', e =>"
                " window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
            )
            page = await context.new_page()
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            for path in paths:
                response = await page.goto(served.base_url + path)
                assert response is not None and response.status < 500, path
                assert "content-security-policy" in response.headers, path
                violations = await page.evaluate("window.__csp")
                assert violations == [], (path, violations)
            # The form still posts (form-action 'self') and shows its Korean error.
            await page.goto(served.base_url + "/subscribe")
            await page.fill("#email", "not-an-address")
            await page.check("input[name=consent]")
            # The proof-of-work widget (our script, its worker, our endpoint) solves
            # within the policy too.
            await page.wait_for_function(
                "() => { const f = document.querySelector('input[name=altcha]');"
                " return f && f.value.length > 100; }",
                timeout=60_000,
            )
            assert await page.evaluate("window.__csp") == []
            await page.click("button[type=submit]")
            await page.wait_for_load_state()
            assert "이메일" in await page.content()
            assert await page.evaluate("window.__csp") == []
        finally:
            await browser.close()
    assert not [m for m in console if "Content Security Policy" in m], console
