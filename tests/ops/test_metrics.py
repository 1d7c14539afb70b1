"""/metrics parses as Prometheus text and its delivery counters match the database."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from newsletter.core.db import Database
from newsletter.ops import metrics
from tests.conftest import ROOT, SmtpServer, bearer, free_port
from tests.support.ops_seed import seed_issue
from tests.support.processes import serve_env, serving

Client = httpx.AsyncClient


async def scrape(client: Client, db: Database) -> dict[str, list[Sample]]:
    response = await client.get("/metrics", headers=await bearer(db, "ops"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = text_string_to_metric_families(response.text)
    return {family.name: family.samples for family in families}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


async def test_delivery_counters_match_the_database(client: Client, db: Database) -> None:
    seeded = await seed_issue(db, queued=4, sending=1, sent=12, failed=3, bounced=2, retrying=2)
    other = await seed_issue(db, sent=5, status="sent")
    await db.pool.execute(
        "INSERT INTO workers (worker_id, host, pid) VALUES ('w1', 'h', 1), ('w2', 'h', 2)"
    )
    await db.pool.execute(
        "UPDATE workers SET last_seen_at = now() - interval '10 minutes' WHERE worker_id = 'w2'"
    )
    families = await scrape(client, db)
    issue = str(seeded.issue_id)

    messages = families["newsletter_messages"]
    db_rows = await db.pool.fetch(
        "SELECT issue_id, status, smtp_code, count(*) AS n FROM deliveries "
        "WHERE status IN ('failed', 'bounced') GROUP BY 1, 2, 3"
    )
    for row in db_rows:
        labels = {"issue_id": str(row["issue_id"]), "result": row["status"]}
        assert (
            value(messages, "newsletter_messages_total", **labels, code=str(row["smtp_code"]))
            == row["n"]
        )
    # sent counts every message SMTP accepted, the later-bounced ones included.
    assert (
        value(messages, "newsletter_messages_total", issue_id=issue, result="sent", code="2xx")
        == 14
    )
    assert (
        value(
            messages,
            "newsletter_messages_total",
            issue_id=str(other.issue_id),
            result="sent",
            code="2xx",
        )
        == 5
    )

    deliveries = families["newsletter_deliveries"]
    for status, expected in {
        "queued": 6,
        "sending": 1,
        "sent": 12,
        "failed": 3,
        "bounced": 2,
    }.items():
        assert value(deliveries, "newsletter_deliveries", issue_id=issue, status=status) == expected
    depth = families["newsletter_queue_depth"]
    assert value(depth, "newsletter_queue_depth", queue="issues") == 7
    assert value(depth, "newsletter_queue_depth", queue="outbox") == 0
    assert value(families["newsletter_workers_alive"], "newsletter_workers_alive") == 1
    assert value(families["newsletter_database_up"], "newsletter_database_up") == 1
    rate = value(
        families["newsletter_send_rate_per_second"],
        "newsletter_send_rate_per_second",
        issue_id=issue,
    )
    assert rate == pass_rate(14)


def pass_rate(sent_last_minute: int) -> float:
    return sent_last_minute / 60


async def test_counters_only_grow_while_a_send_moves_on(client: Client, db: Database) -> None:
    seeded = await seed_issue(db, queued=10)
    issue = str(seeded.issue_id)
    before = await scrape(client, db)
    assert not [s for s in before["newsletter_messages"] if s.labels.get("issue_id") == issue]
    await db.pool.execute(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), smtp_code = 250 "
        "WHERE id IN (SELECT id FROM deliveries WHERE issue_id = $1 ORDER BY id LIMIT 6)",
        seeded.issue_id,
    )
    middle = await scrape(client, db)
    assert (
        value(
            middle["newsletter_messages"],
            "newsletter_messages_total",
            issue_id=issue,
            result="sent",
            code="2xx",
        )
        == 6
    )
    # A DSN arriving later turns one sent message into a bounce: sent must not drop.
    await db.pool.execute(
        "UPDATE deliveries SET status = 'bounced', smtp_code = 550 WHERE id = "
        "(SELECT min(id) FROM deliveries WHERE issue_id = $1)",
        seeded.issue_id,
    )
    after = await scrape(client, db)
    samples = after["newsletter_messages"]
    assert (
        value(samples, "newsletter_messages_total", issue_id=issue, result="sent", code="2xx") == 6
    )
    assert (
        value(samples, "newsletter_messages_total", issue_id=issue, result="bounced", code="550")
        == 1
    )


async def test_http_requests_are_counted_by_route_and_status(client: Client, db: Database) -> None:
    await client.get("/healthz")
    await client.get("/api/v1/stats")  # no key: 401
    await client.get("/api/v1/issues/12345/stats")  # no key: 401, one route for every id
    families = await scrape(client, db)
    requests = families["newsletter_http_requests"]
    assert (
        value(
            requests, "newsletter_http_requests_total", method="GET", route="/healthz", status="200"
        )
        >= 1
    )
    assert (
        value(
            requests,
            "newsletter_http_requests_total",
            method="GET",
            route="/api/v1/stats",
            status="401",
        )
        >= 1
    )
    assert (
        value(
            requests,
            "newsletter_http_requests_total",
            method="GET",
            route="/api/v1/issues/{issue_id}/stats",
            status="401",
        )
        >= 1
    )
    assert not [s for s in requests if "12345" in s.labels.get("route", "")]


def test_worker_side_metrics_record_latency_and_waits() -> None:
    before = (
        metrics.REGISTRY.get_sample_value(
            "newsletter_smtp_send_seconds_count", {"outcome": "transient"}
        )
        or 0.0
    )
    with metrics.smtp_timer() as outcome:
        outcome["outcome"] = "transient"
    waits = metrics.REGISTRY.get_sample_value("newsletter_rate_limit_waits_total") or 0.0
    metrics.rate_limit_waited(0.25)
    metrics.rate_limit_waited(0.0)  # no wait, not counted
    assert (
        metrics.REGISTRY.get_sample_value(
            "newsletter_smtp_send_seconds_count", {"outcome": "transient"}
        )
        == before + 1
    )
    assert metrics.REGISTRY.get_sample_value("newsletter_rate_limit_waits_total") == waits + 1
    text = metrics.process_exposition().decode()
    families = {f.name for f in text_string_to_metric_families(text)}
    assert {"newsletter_smtp_send_seconds", "newsletter_rate_limit_wait_seconds"} <= families


def test_database_down_still_answers() -> None:
    text = metrics.database_exposition(None).decode()
    [family] = list(text_string_to_metric_families(text))
    assert family.name == "newsletter_database_up" and family.samples[0].value == 0


PUBLIC_PAGES = ("/metrics", "/healthz", "/readyz", "/subscribe", "/archive")


async def test_nothing_public_moves_when_someone_signs_up(client: Client, db: Database) -> None:
    """The outbox depth rises by one per confirmation queued: served to the
    public it would tell whether an address was new. Without an ops key
    /metrics answers 401, and no public answer changes with a signup."""
    before = [(await client.get(path)).content for path in PUBLIC_PAGES]
    unauthorized = await client.get("/metrics")
    assert unauthorized.status_code == 401 and "newsletter_queue_depth" not in unauthorized.text
    signup = await client.post(
        "/subscribe", data={"email": "someone-new@example.com", "consent": "on"}
    )
    assert signup.status_code == 200
    assert await db.pool.fetchval("SELECT count(*) FROM outbox") == 1
    after = [(await client.get(path)).content for path in PUBLIC_PAGES]
    assert after == before
    # With an ops key the figures are there (Prometheus sends it as a bearer token).
    with_key = await client.get("/metrics", headers=await bearer(db, "ops"))
    assert (
        with_key.status_code == 200
        and 'newsletter_queue_depth{queue="outbox"} 1.0' in with_key.text
    )
    editor = await client.get("/metrics", headers=await bearer(db, "editor"))
    assert editor.status_code == 403


def listening_address(pid: int, port: int) -> str | None:
    for conn in psutil.Process(pid).net_connections(kind="inet"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
            return str(conn.laddr.ip)
    return None


async def wait_listening(pid: int, port: int) -> str:
    for _ in range(150):
        found = listening_address(pid, port)
        if found is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


async def test_metrics_port_is_internal_and_on_loopback_by_default(
    database_url: str, db: Database
) -> None:
    metrics_port = free_port()
    async with serving(database_url, METRICS_PORT=str(metrics_port)) as served:
        assert await wait_listening(served.process.pid, metrics_port) == "127.0.0.1"
        async with httpx.AsyncClient() as http:
            internal = await http.get(f"http://127.0.0.1:{metrics_port}/metrics")
            assert internal.status_code == 200
            assert "newsletter_queue_depth" in internal.text
            public = await http.get(f"{served.base_url}/metrics")
            assert public.status_code == 401
            # The internal port serves metrics and nothing else.
            for other in ("/api/v1/subscribers", "/subscribe"):
                answer = await http.get(f"http://127.0.0.1:{metrics_port}{other}")
                assert answer.status_code == 404 and answer.json()["error"] == "not_found"


async def test_a_workers_own_metrics_listen_on_loopback_by_default(
    database_url: str, smtp_server: SmtpServer
) -> None:
    port = free_port()
    env = serve_env(
        database_url, METRICS_PORT=str(port), SMTP_URL=f"smtp://127.0.0.1:{smtp_server.port}"
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "newsletter", "worker"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert await wait_listening(worker.pid, port) == "127.0.0.1"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
