"""/metrics parses as Prometheus text and its delivery counters match the database."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from newsletter.core.db import Database
from newsletter.ops import metrics
from tests.support.ops_seed import seed_issue

Client = httpx.AsyncClient


async def scrape(client: Client) -> dict[str, list[Sample]]:
    response = await client.get("/metrics")
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
    families = await scrape(client)
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
    before = await scrape(client)
    assert not [s for s in before["newsletter_messages"] if s.labels.get("issue_id") == issue]
    await db.pool.execute(
        "UPDATE deliveries SET status = 'sent', sent_at = now(), smtp_code = 250 "
        "WHERE id IN (SELECT id FROM deliveries WHERE issue_id = $1 ORDER BY id LIMIT 6)",
        seeded.issue_id,
    )
    middle = await scrape(client)
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
    after = await scrape(client)
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
    families = await scrape(client)
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
