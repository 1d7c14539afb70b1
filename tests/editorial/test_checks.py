"""The pre-send check, as an editor meets it through the API: against a real
local web server (links that work, are gone, redirect, lead inside the city's
network; images that are and are not images) and a real local DNS server
(SPF, DMARC, the published DKIM key)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from litestar import Litestar

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import linkcheck
from newsletter.editorial.feeds import FeedFetchPolicy
from tests.conftest import SmtpServer, bearer, free_port, make_settings
from tests.support.dkim import DOMAIN, SELECTOR, session_key
from tests.support.dns import DnsServer, dns_server
from tests.support.websites import Website, website

Client = httpx.AsyncClient
KEY_NAME = f"{SELECTOR}._domainkey.{DOMAIN}"
LOOPBACK = FeedFetchPolicy(frozenset({ipaddress.ip_address("127.0.0.1")}))


@pytest.fixture
def site() -> Iterator[Website]:
    with website() as running:
        yield running


def domain_records(**changes: bytes | None) -> dict[str, bytes]:
    records: dict[str, bytes | None] = {
        DOMAIN: b"v=spf1 include:_spf.gimpo.go.kr -all",
        f"_dmarc.{DOMAIN}": b"v=DMARC1; p=quarantine; rua=mailto:dmarc@gimpo.go.kr",
        f"{SELECTOR}._domainkey.{DOMAIN}": session_key().record,
    }
    records.update(changes)
    return {name: value for name, value in records.items() if value is not None}


@pytest.fixture
def dns() -> Iterator[DnsServer]:
    with dns_server(domain_records()) as running:
        yield running


def checked_settings(
    database_url: str, smtp: SmtpServer, site: Website, dns_port: int, **overrides: Any
) -> Settings:
    return make_settings(
        database_url,
        smtp.target,
        base_url=site.url(""),
        dns_resolver=f"127.0.0.1:{dns_port}",
        dkim_selector=SELECTOR,
        dkim_private_key=session_key().private_pem,
        **overrides,
    )


@pytest.fixture
def settings(database_url: str, smtp_server: SmtpServer, site: Website, dns: DnsServer) -> Settings:
    return checked_settings(database_url, smtp_server, site, dns.port)


@pytest.fixture
def app(settings: Settings, db: Database) -> Litestar:
    return create_app(settings, db, feed_policy=LOOPBACK)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[Client]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://newsletter.test") as http:
        yield http


async def add_residents(db: Database, active: int, pending: int = 0) -> None:
    for status, count in (("active", active), ("pending", pending)):
        await db.pool.execute(
            "INSERT INTO subscribers (email, status, name) "
            "SELECT $2 || g || '@example.com', $2, '김포시민' FROM generate_series(1, $1) g",
            count,
            status,
        )


async def item(client: Client, headers: dict[str, str], **fields: Any) -> int:
    body = {"title": "한강신도시 도시철도 개통", "summary": "요약", "body": "<p>본문</p>"} | fields
    response = await client.post("/api/v1/news-items", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def issue(client: Client, headers: dict[str, str], ids: list[int], **fields: Any) -> int:
    body = {"title": "12월 김포 소식", "intro": "올해 마지막 소식입니다.", "news_item_ids": ids}
    response = await client.post("/api/v1/issues", json=body | fields, headers=headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def checks_of(client: Client, headers: dict[str, str], issue_id: int, **query: Any) -> Any:
    response = await client.get(f"/api/v1/issues/{issue_id}/checks", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def by_url(report: Any, check: str) -> dict[str, dict[str, Any]]:
    return {c["where"]["url"]: c for c in report["checks"] if c["id"] == check}


def one(report: Any, check: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in report["checks"] if c["id"] == check]
    assert len(found) == 1, found
    return found[0]


async def test_links_and_images_answer_or_are_reported_with_where_they_are(
    client: Client, db: Database, site: Website
) -> None:
    headers = await bearer(db)
    await add_residents(db, 3)
    body = (
        f'<p>자세히는 <a href="{site.url("/redirect/2")}">김포시 공지</a>와 '
        f'<a href="{site.url("/to-internal")}">내부 자료</a>, '
        f'<a href="{site.url("/no-head")}">행사 안내</a>를 보세요.</p>'
    )
    good = await item(
        client,
        headers,
        link=site.url("/ok"),
        image_url=site.url("/photo.png"),
        image_alt="행사장 사진",
    )
    bad = await item(
        client, headers, title="없는 글", link=site.url("/missing"), body=body,
        image_url=site.url("/not-image.png"), image_alt="사진",
    )  # fmt: skip
    looping = await item(client, headers, title="도는 글", link=site.url("/loop"))
    members = await item(client, headers, title="회원 글", link=site.url("/members"))
    report = await checks_of(
        client, headers, await issue(client, headers, [good, bad, looping, members])
    )

    links = by_url(report, "link")
    assert links[site.url("/ok")]["status"] == "ok"
    assert links[site.url("/missing")]["status"] == "problem"
    assert links[site.url("/missing")]["where"]["http_status"] == 404
    assert links[site.url("/missing")]["where"]["news_item_id"] == bad
    assert "404" in links[site.url("/missing")]["detail"]
    redirected = links[site.url("/redirect/2")]
    assert redirected["status"] == "ok"
    assert redirected["where"]["final_url"] == site.url("/ok")
    internal = links[site.url("/to-internal")]
    assert internal["status"] == "problem"
    assert "internal address" in internal["detail"]
    assert not any(path.startswith("/intranet") for _, path, _ in site.requests)
    assert links[site.url("/no-head")]["status"] == "ok"  # HEAD refused, GET answered
    assert links[site.url("/loop")]["status"] == "problem"  # more than five redirects
    assert links[site.url("/members")]["status"] == "warning"  # the site would not say
    # The archive and unsubscribe links residents get are checked too.
    assert links[site.url("/archive")]["status"] == "ok"
    assert any("/unsubscribe" in url for url in links)

    images = by_url(report, "image")
    photo = images[site.url("/photo.png")]
    assert photo["status"] == "ok"
    assert (photo["where"]["width"], photo["where"]["height"]) == (640, 360)
    assert images[site.url("/not-image.png")]["status"] == "problem"
    assert report["problems"] == sum(c["status"] == "problem" for c in report["checks"])


async def test_a_kept_result_answers_at_once_until_the_content_changes(
    client: Client, db: Database, site: Website
) -> None:
    headers = await bearer(db)
    await add_residents(db, 1)
    news_id = await item(client, headers, link=site.url("/ok"))
    issue_id = await issue(client, headers, [news_id])
    first = await checks_of(client, headers, issue_id)
    asked = len(site.requests)
    again = await checks_of(client, headers, issue_id)
    assert again["checked_at"] == first["checked_at"]
    assert again["content_version"] == first["content_version"]
    assert len(site.requests) == asked, "the kept result fetched the links again"

    changed = await client.put(
        f"/api/v1/news-items/{news_id}",
        json={
            "title": "바뀐 제목",
            "summary": "요약",
            "body": "<p>본문</p>",
            "link": site.url("/missing"),
        },
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    after = await checks_of(client, headers, issue_id)
    assert after["content_version"] != first["content_version"]
    assert by_url(after, "link")[site.url("/missing")]["status"] == "problem"
    rerun = await checks_of(client, headers, issue_id, again="true")
    assert rerun["checked_at"] > after["checked_at"]


async def test_a_host_that_does_not_answer_in_time_is_a_problem_and_does_not_hold_the_check(
    client: Client, db: Database, site: Website
) -> None:
    """A host slower than the check's limit (5 s a request) is reported as not
    answering; the check ends on time instead of waiting for it."""
    headers = await bearer(db)
    await add_residents(db, 1)
    with website(delay=linkcheck.SECONDS + 2) as slow:
        news_id = await item(client, headers, link=slow.url("/ok"))
        issue_id = await issue(client, headers, [news_id])
        started = time.monotonic()
        report = await checks_of(client, headers, issue_id)
        took = time.monotonic() - started
    link = by_url(report, "link")[slow.url("/ok")]
    assert link["status"] == "problem"
    assert "does not answer" in link["detail"]
    # HEAD and then GET, each given up at the limit: never the host's own 7 s twice.
    assert took < 2 * (linkcheck.SECONDS + 2), took


async def test_the_check_changes_nothing_and_needs_an_editor(
    client: Client, db: Database, site: Website
) -> None:
    headers = await bearer(db)
    issue_id = await issue(client, headers, [await item(client, headers)])
    before = (await client.get(f"/api/v1/issues/{issue_id}", headers=headers)).json()
    await checks_of(client, headers, issue_id)
    assert (await client.get(f"/api/v1/issues/{issue_id}", headers=headers)).json() == before
    assert (await client.get(f"/api/v1/issues/{issue_id}/checks")).status_code == 401
    ops = await bearer(db, "ops")
    assert (await client.get(f"/api/v1/issues/{issue_id}/checks", headers=ops)).status_code == 403
    assert (await client.get("/api/v1/issues/999999/checks", headers=headers)).status_code == 404


async def test_gmail_clipping_limit_on_a_long_issue(client: Client, db: Database) -> None:
    headers = await bearer(db)
    await add_residents(db, 1)
    paragraph = "<p>" + "김포시 한강신도시 도시철도 개통 소식입니다. " * 40 + "</p>"
    short = [await item(client, headers, title=f"소식 {n}", body=paragraph) for n in range(2)]
    fine = one(await checks_of(client, headers, await issue(client, headers, short)), "size")
    assert fine["status"] == "ok"
    long = [
        await item(client, headers, title=f"긴 소식 {n}", body=paragraph * 3) for n in range(12)
    ]
    clipped = one(await checks_of(client, headers, await issue(client, headers, long)), "size")
    assert clipped["status"] == "problem"
    assert "102" in clipped["detail"]


async def test_reading_subject_and_preview_text(client: Client, db: Database) -> None:
    headers = await bearer(db)
    await add_residents(db, 1)
    vague = await item(
        client, headers, body='<p>신청은 <a href="https://www.gimpo.go.kr/a">여기</a></p>'
    )
    report = await checks_of(client, headers, await issue(client, headers, [vague]))
    assert one(report, "reading_lang")["status"] == "ok"
    assert one(report, "reading_title")["status"] == "ok"
    assert one(report, "reading_contrast")["status"] == "ok", report  # our template reads well
    texts = [c for c in report["checks"] if c["id"] == "reading_link_text"]
    assert [c["where"]["text"] for c in texts] == ["여기"]
    assert texts[0]["status"] == "warning"
    assert one(report, "subject")["status"] == "ok"
    assert one(report, "preheader")["status"] == "ok"

    long_title = "김포시 " * 15
    bare = await issue(client, headers, [vague], title=long_title.strip(), intro="")
    report = await checks_of(client, headers, bare)
    assert one(report, "subject")["status"] == "warning"
    assert one(report, "preheader")["status"] == "warning"

    typed_ad = await issue(client, headers, [vague], title="(광고) 김포 특산물 장터")
    assert one(await checks_of(client, headers, typed_ad), "advertising")["status"] == "problem"
    marked = await issue(client, headers, [vague], title="김포 특산물 장터", is_advertisement=True)
    assert one(await checks_of(client, headers, marked), "advertising")["status"] == "ok"


async def test_recipients_none_is_a_problem_and_the_others_are_counted(
    client: Client, db: Database
) -> None:
    headers = await bearer(db)
    issue_id = await issue(client, headers, [await item(client, headers)])
    assert one(await checks_of(client, headers, issue_id), "recipients")["status"] == "problem"
    await add_residents(db, 4, pending=2)
    counted = one(await checks_of(client, headers, issue_id, again="true"), "recipients")
    assert counted["status"] == "ok"
    assert "4" in counted["detail"] and "2" in counted["detail"]
    empty = await issue(client, headers, [])
    assert one(await checks_of(client, headers, empty), "items")["status"] == "problem"


async def test_sending_domain_spf_dmarc_and_the_published_dkim_key(
    client: Client, db: Database
) -> None:
    headers = await bearer(db)
    issue_id = await issue(client, headers, [await item(client, headers)])
    report = await checks_of(client, headers, issue_id)
    assert one(report, "domain_spf")["status"] == "ok"
    assert one(report, "domain_dmarc")["status"] == "ok"
    assert one(report, "domain_dkim")["status"] == "ok"


@pytest.mark.parametrize(
    ("records", "check", "status"),
    [
        ({KEY_NAME: b"v=DKIM1; k=rsa; p=AAAAB3Nza"}, "domain_dkim", "problem"),
        ({KEY_NAME: None}, "domain_dkim", "problem"),
        ({DOMAIN: None}, "domain_spf", "warning"),
        ({f"_dmarc.{DOMAIN}": None}, "domain_dmarc", "warning"),
    ],
)  # fmt: skip
async def test_a_wrong_or_missing_record_is_reported(
    database_url: str,
    smtp_server: SmtpServer,
    site: Website,
    db: Database,
    records: dict[str, bytes | None],
    check: str,
    status: str,
) -> None:
    with dns_server(domain_records(**records)) as other:
        settings = checked_settings(database_url, smtp_server, site, other.port)
        app = create_app(settings, db, feed_policy=LOOPBACK)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="https://n.test") as http:
            headers = await bearer(db)
            issue_id = await issue(http, headers, [await item(http, headers)])
            assert one(await checks_of(http, headers, issue_id), check)["status"] == status


async def test_a_resolver_that_does_not_answer_is_a_warning_not_a_pass(
    database_url: str, smtp_server: SmtpServer, site: Website, db: Database
) -> None:
    settings = checked_settings(database_url, smtp_server, site, free_port())  # nobody there
    app = create_app(settings, db, feed_policy=LOOPBACK)
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="https://n.test") as http:
        headers = await bearer(db)
        issue_id = await issue(http, headers, [await item(http, headers)])
        report = await checks_of(http, headers, issue_id)
    assert one(report, "domain_dns")["status"] == "warning"
    assert not [c for c in report["checks"] if c["id"] in ("domain_spf", "domain_dkim")]


def test_the_reading_check_fails_what_a_reader_cannot_read() -> None:
    """The rules themselves, on mail HTML written to break each one."""
    from newsletter.editorial.checks import _reading

    bad = (
        "<html><body><h1>김포 소식</h1><h3>교통</h3>"
        '<div style="background-color:#ffffff"><p style="color:#aaaaaa">흐린 글씨</p>'
        '<div style="display:none;color:#ffffff">숨은 미리 보기 글</div>'
        '<a href="https://www.gimpo.go.kr/x"></a><a href="https://a.kr/b">https://a.kr/b</a>'
        '<img src="https://a.kr/c.png"></div></body></html>'
    )
    found = {(f.id, f.status) for f in _reading(bad)}
    assert ("reading_lang", "problem") in found
    assert ("reading_title", "problem") in found
    assert ("reading_headings", "warning") in found
    assert ("reading_link_text", "problem") in found  # the empty link
    assert ("reading_link_text", "warning") in found  # the bare address
    assert ("reading_alt", "problem") in found
    contrast = [f for f in _reading(bad) if f.id == "reading_contrast"]
    assert [(f.status, f.values["fg"]) for f in contrast] == [("problem", "#aaaaaa")]


def tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


async def test_schedule_and_send_now_refuse_open_problems_unless_told_despite(
    client: Client, db: Database, site: Website
) -> None:
    headers = await bearer(db)
    await add_residents(db, 2)
    gone = await item(client, headers, title="없어진 공지", link=site.url("/missing"))
    issue_id = await issue(client, headers, [gone])
    base = f"/api/v1/issues/{issue_id}"

    # Never checked: scheduling runs the check first, so it cannot be skipped.
    refused = await client.post(f"{base}/schedule", json={"send_at": tomorrow()}, headers=headers)
    assert refused.status_code == 409, refused.text
    answer = refused.json()
    assert answer["error"] == "open_problems"
    named = [p for p in answer["problems"] if p["id"] == "link"]
    assert [p["where"]["url"] for p in named] == [site.url("/missing")]
    assert "404" in named[0]["detail"] and "없어진 공지" in answer["detail"]
    assert all(p["id"] != "subject" for p in answer["problems"])  # only problems are named
    assert (await client.get(base, headers=headers)).json()["status"] == "draft"
    kept = await checks_of(client, headers, issue_id)
    assert kept["problems"] == len(answer["problems"])

    sent = await client.post(f"{base}/send-now", headers=headers)
    assert sent.status_code == 409 and sent.json()["error"] == "open_problems"
    told = await client.post(f"{base}/send-now", json={"despite_problems": False}, headers=headers)
    assert told.status_code == 409

    scheduled = await client.post(
        f"{base}/schedule", json={"send_at": tomorrow(), "despite_problems": True}, headers=headers
    )
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    started = await client.post(
        f"{base}/send-now", json={"despite_problems": True}, headers=headers
    )
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "sending"
    queued = await db.pool.fetchval("SELECT count(*) FROM deliveries WHERE issue_id = $1", issue_id)
    assert queued == 2
    # Who sent despite the check is on the record.
    said = await db.pool.fetch(
        "SELECT action, details->>'despite_problems' AS despite FROM audit_log"
        " WHERE action IN ('issue.schedule', 'issue.send_now') ORDER BY id"
    )
    assert [(r["action"], r["despite"]) for r in said] == [
        ("issue.schedule", "true"),
        ("issue.send_now", "true"),
    ]


async def test_a_fixed_problem_no_longer_blocks_and_warnings_never_do(
    client: Client, db: Database, site: Website
) -> None:
    headers = await bearer(db)
    news_id = await item(client, headers, link=site.url("/ok"))
    # A subject too long for a phone and no preview text: warnings only.
    issue_id = await issue(client, headers, [news_id], title="김포시 " * 15, intro="")
    base = f"/api/v1/issues/{issue_id}"
    refused = await client.post(f"{base}/send-now", headers=headers)
    assert [p["id"] for p in refused.json()["problems"]] == ["recipients"]  # nobody subscribed

    await add_residents(db, 3)
    report = await checks_of(client, headers, issue_id, again="true")
    assert report["problems"] == 0, report
    assert {"subject", "preheader"} <= {
        c["id"] for c in report["checks"] if c["status"] == "warning"
    }
    started = await client.post(f"{base}/send-now", headers=headers)
    assert started.status_code == 200, started.text
    assert started.json()["status"] == "sending"
    despite = await db.pool.fetchval(
        "SELECT details->>'despite_problems' FROM audit_log WHERE action = 'issue.send_now'"
    )
    assert despite is None  # nothing to send despite


async def test_the_state_and_the_time_are_refused_before_any_check(
    client: Client, db: Database, site: Website
) -> None:
    headers = await bearer(db)
    issue_id = await issue(
        client, headers, [await item(client, headers, link=site.url("/missing"))]
    )
    base = f"/api/v1/issues/{issue_id}"
    past = await client.post(
        f"{base}/schedule", json={"send_at": "2020-01-01T09:00:00"}, headers=headers
    )
    assert past.status_code == 422
    unknown = await client.post(f"{base}/send-now", json={"despite": True}, headers=headers)
    assert unknown.status_code in (400, 422)
    assert not site.requests, "a refused request ran the check"
    await client.post(f"{base}/send-now", json={"despite_problems": True}, headers=headers)
    again = await client.post(f"{base}/send-now", headers=headers)
    assert again.status_code == 409 and again.json()["error"] == "conflict"  # already sending
