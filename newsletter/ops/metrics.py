"""Prometheus metrics: what comes from the database, and what each process counts.

Two kinds of figures, kept apart on purpose:

* **From the database** (:func:`database_exposition`): delivery results by
  issue and SMTP code, queue depth, send rate, worker heartbeats. Read at scrape
  time in one snapshot, so they are identical whichever web process answers and
  however many workers run — scrape any one web process for them.
* **Per process** (:data:`REGISTRY`): HTTP requests of this web process; SMTP
  latency and rate-limit waits of this worker. A worker exports its own with
  :func:`serve_worker_metrics` on ``NEWSLETTER_METRICS_HOST:NEWSLETTER_METRICS_PORT``
  (loopback unless told otherwise); scrape every worker, and let Prometheus
  sum across instances.

The figures move with every signup (a confirmation mail queued is one more in
the outbox depth), so they are never served to the public: web processes
answer ``/metrics`` on the internal port or to an ops key only.

This module never touches the web framework or the SMTP client, so both the
web layer and the delivery loop can import it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from newsletter.ops.stats import MetricsSnapshot

__all__ = [
    "CLICKS_NOT_COUNTED",
    "CONTENT_TYPE_LATEST",
    "HTTP_REQUESTS",
    "HTTP_SECONDS",
    "RATE_LIMIT_WAIT_SECONDS",
    "REGISTRY",
    "SMTP_SECONDS",
    "WORKER_MESSAGES",
    "click_not_counted",
    "database_exposition",
    "process_exposition",
    "rate_limit_waited",
    "serve_worker_metrics",
    "smtp_observed",
    "smtp_timer",
]

# Our own registry rather than the global default: importing this module twice
# (tests, the dev server running web and worker together) never registers twice.
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

# --- web process -------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "newsletter_http_requests",
    "HTTP requests answered by this web process, by route template and status.",
    ["method", "route", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "newsletter_http_request_duration_seconds",
    "Time to answer an HTTP request in this web process, by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)

CLICKS_NOT_COUNTED = Counter(
    "newsletter_clicks_not_counted",
    "Click redirects this web process answered without counting them, by why: "
    "head, prefetch, bot (link scanners, crawlers, no User-Agent), before_send, "
    "repeat (one client address, one link, past the hourly few).",
    ["reason"],
    registry=REGISTRY,
)


def click_not_counted(reason: str) -> None:
    CLICKS_NOT_COUNTED.labels(reason).inc()


# --- worker process ------------------------------------------------------------

SMTP_SECONDS = Histogram(
    "newsletter_smtp_send_seconds",
    "Time to hand one message to the SMTP server (this worker), by outcome.",
    ["outcome"],  # ok, transient, permanent, refused (the relay turned us away)
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
RATE_LIMIT_WAITS = Counter(
    "newsletter_rate_limit_waits",
    "Times this worker had to wait for the global rate limit.",
    registry=REGISTRY,
)
RATE_LIMIT_WAIT_SECONDS = Counter(
    "newsletter_rate_limit_wait_seconds",
    "Seconds this worker spent waiting for the global rate limit.",
    registry=REGISTRY,
)
WORKER_MESSAGES = Counter(
    "newsletter_worker_messages",
    "Messages this worker handed to SMTP, by kind (issue, outbox) and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)
WORKER_HEARTBEAT = Gauge(
    "newsletter_worker_heartbeat_timestamp_seconds",
    "Unix time of this worker's last loop iteration.",
    registry=REGISTRY,
)


EFFECTIVE_RATE = Gauge(
    "newsletter_effective_rate_per_second",
    "The global send rate this worker last saw: RATE_PER_SECOND, or lower while "
    "the relay pushes back (learned, shared by all workers through the database).",
    registry=REGISTRY,
)
RATE_CEILING = Gauge(
    "newsletter_rate_ceiling_per_second",
    "RATE_PER_SECOND as this worker is configured: the ceiling of the learned rate.",
    registry=REGISTRY,
)
RATE_DECREASES = Counter(
    "newsletter_rate_decreases",
    "Times a push-back reported by this worker halved the global rate.",
    registry=REGISTRY,
)
RELAY_MESSAGES = Counter(
    "newsletter_relay_messages",
    "Messages this worker handed to each relay, by outcome: sent, pushed_back "
    "(the relay asked us to slow down), other (any other refusal or error).",
    ["relay", "outcome"],
    registry=REGISTRY,
)
RELAY_CONNECTS = Counter(
    "newsletter_relay_connections",
    "Connections this worker tried to open to each relay, by outcome: opened, "
    "pushed_back (421 too many connections), refused (failed or refused otherwise).",
    ["relay", "outcome"],
    registry=REGISTRY,
)
RELAY_STATE = Gauge(
    "newsletter_relay_circuit_open",
    "1 while this worker's circuit breaker for the relay is open or half-open "
    "(no connection, one probe at a time), 0 while it is closed.",
    ["relay"],
    registry=REGISTRY,
)
RELAY_CONNECTIONS_ALLOWED = Gauge(
    "newsletter_relay_connections_allowed",
    "Connections this worker allows itself to the relay: SMTP_CONNECTIONS, fewer "
    "after the relay refused more.",
    ["relay"],
    registry=REGISTRY,
)


def effective_rate(rate: float, ceiling: float) -> None:
    EFFECTIVE_RATE.set(rate)
    RATE_CEILING.set(ceiling)


def rate_decreased() -> None:
    RATE_DECREASES.inc()


def relay_message(relay: str, outcome: str) -> None:
    """``relay`` is host:port, never a URL: no credentials in a label."""
    RELAY_MESSAGES.labels(relay, outcome).inc()


def relay_connect(relay: str, outcome: str) -> None:
    RELAY_CONNECTS.labels(relay, outcome).inc()


def relay_state(relay: str, circuit_open: bool, allowed: int) -> None:
    RELAY_STATE.labels(relay).set(1 if circuit_open else 0)
    RELAY_CONNECTIONS_ALLOWED.labels(relay).set(allowed)


@contextmanager
def smtp_timer(kind: str = "issue") -> Iterator[dict[str, str]]:
    """Time one SMTP hand-over; set ``outcome`` in the yielded dict on failure.

    ``with smtp_timer() as m: ...; m["outcome"] = "transient"``. An exception
    escaping the block counts as ``error``.
    """
    result = {"outcome": "ok"}
    started = time.perf_counter()
    try:
        yield result
    except BaseException:
        result["outcome"] = "error"
        raise
    finally:
        SMTP_SECONDS.labels(result["outcome"]).observe(time.perf_counter() - started)
        WORKER_MESSAGES.labels(kind, result["outcome"]).inc()


def rate_limit_waited(seconds: float) -> None:
    """Record one wait for the global rate limit (call it after the sleep)."""
    if seconds > 0:
        RATE_LIMIT_WAITS.inc()
        RATE_LIMIT_WAIT_SECONDS.inc(seconds)


def heartbeat() -> None:
    WORKER_HEARTBEAT.set_to_current_time()


def serve_worker_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Export this worker's own metrics over HTTP (a daemon thread). Loopback
    unless ``addr`` says otherwise: a scraper on another host is a choice
    (``NEWSLETTER_METRICS_HOST``), not the default."""
    start_http_server(port, addr=addr, registry=REGISTRY)


def process_exposition() -> bytes:
    return generate_latest(REGISTRY)


# --- from the database ---------------------------------------------------------


class _DatabaseFigures(Collector):
    """A one-shot collector over a snapshot already read from PostgreSQL."""

    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        snap = self.snapshot
        yield GaugeMetricFamily(
            "newsletter_database_up", "1 if the database answered this scrape.", value=1
        )
        messages = CounterMetricFamily(
            "newsletter_messages",
            "Issue messages by final result, from the database (all workers). "
            "result=sent counts every message the SMTP server accepted, later bounces "
            "included, so it never goes down; failed and bounced carry the SMTP code "
            "(code=dsn: accepted, then bounced by a delivery status notification).",
            labels=["issue_id", "result", "code"],
        )
        deliveries = GaugeMetricFamily(
            "newsletter_deliveries",
            "Issue deliveries by current status, from the database.",
            labels=["issue_id", "status"],
        )
        depth = GaugeMetricFamily(
            "newsletter_queue_depth",
            "Messages not yet handed to SMTP (queued + in flight), from the database.",
            labels=["queue"],
        )
        rate = GaugeMetricFamily(
            "newsletter_send_rate_per_second",
            "Messages accepted by SMTP per second over the last minute, per issue.",
            labels=["issue_id"],
        )
        sent: dict[int, int] = {}
        by_status: dict[tuple[int, str], int] = {}
        issue_depth = 0
        for r in snap.results:
            by_status[(r.issue_id, r.status)] = by_status.get((r.issue_id, r.status), 0) + r.count
            if r.status in ("sent", "bounced"):
                sent[r.issue_id] = sent.get(r.issue_id, 0) + r.count
            if r.status in ("failed", "bounced"):
                code = str(r.smtp_code) if r.smtp_code is not None else "none"
                if r.smtp_code is not None and r.smtp_code < 400:
                    code = "dsn"  # accepted at send time (2xx), bounced later by DSN
                messages.add_metric([str(r.issue_id), r.status, code], r.count)
            if r.status in ("queued", "sending"):
                issue_depth += r.count
        for issue_id, count in sent.items():
            messages.add_metric([str(issue_id), "sent", "2xx"], count)
        for (issue_id, status), count in sorted(by_status.items()):
            deliveries.add_metric([str(issue_id), status], count)
        depth.add_metric(["issues"], issue_depth)
        depth.add_metric(["outbox"], snap.outbox_queued + snap.outbox_sending)
        for issue_id, value in snap.rates.items():
            rate.add_metric([str(issue_id)], value)
        clicks = CounterMetricFamily(
            "newsletter_clicks",
            "Counted clicks on each news item's link, per issue, from the database "
            "(every web process together; nothing about who clicked).",
            labels=["issue_id", "news_item_id"],
        )
        for (issue_id, item_id), count in sorted(snap.clicks.items()):
            clicks.add_metric([str(issue_id), str(item_id)], count)
        yield from (messages, deliveries, depth, rate, clicks)
        if snap.pace is not None:
            yield from _pace_figures(snap)
        if snap.workers is not None:
            alive = GaugeMetricFamily(
                "newsletter_workers_alive",
                "Workers whose heartbeat is younger than a minute, from the database.",
            )
            alive.add_metric([], sum(1 for w in snap.workers if w.alive))
            seen = GaugeMetricFamily(
                "newsletter_worker_last_seen_timestamp_seconds",
                "Unix time of each worker's last heartbeat, from the database.",
                labels=["worker_id"],
            )
            for w in snap.workers:
                seen.add_metric([w.worker_id], w.last_seen_at.timestamp())
            yield from (alive, seen)


def _pace_figures(snap: MetricsSnapshot) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    pace = snap.pace
    assert pace is not None
    yield GaugeMetricFamily(
        "newsletter_global_rate_per_second",
        "The send rate all workers share now, from the database: RATE_PER_SECOND, "
        "or lower after the relay pushed back (it climbs back while mail is accepted).",
        value=pace.effective_per_second,
    )
    yield GaugeMetricFamily(
        "newsletter_global_rate_lowered",
        "1 while push-back keeps the shared rate below RATE_PER_SECOND.",
        value=1 if pace.reason else 0,
    )
    per_relay = CounterMetricFamily(
        "newsletter_relay_results",
        "Per relay (host:port), every worker together, from the database: messages "
        "sent, messages pushed back, connections refused.",
        labels=["relay", "result"],
    )
    state = GaugeMetricFamily(
        "newsletter_relay_circuit_state",
        "Per relay, as the last worker to report saw it: 0 closed (delivering), "
        "1 half-open (one probe), 2 open (not tried until its next probe).",
        labels=["relay"],
    )
    states = {"closed": 0, "half-open": 1, "open": 2}
    for r in pace.relays:
        per_relay.add_metric([r.relay, "sent"], r.sent)
        per_relay.add_metric([r.relay, "pushed_back"], r.pushed_back)
        per_relay.add_metric([r.relay, "refused"], r.refused)
        state.add_metric([r.relay], states.get(r.state, 0))
    yield from (per_relay, state)


class _DatabaseDown(Collector):
    def collect(self) -> Iterable[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "newsletter_database_up", "1 if the database answered this scrape.", value=0
        )


def database_exposition(snapshot: MetricsSnapshot | None) -> bytes:
    """The database figures as Prometheus text; ``None`` when it did not answer."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_DatabaseFigures(snapshot) if snapshot is not None else _DatabaseDown())
    return generate_latest(registry)


def smtp_observed(seconds: float, outcome: str, kind: str = "issue") -> None:
    """Record one SMTP hand-over that took ``seconds``: ok, transient, permanent or refused."""
    SMTP_SECONDS.labels(outcome).observe(seconds)
    WORKER_MESSAGES.labels(kind, outcome).inc()
