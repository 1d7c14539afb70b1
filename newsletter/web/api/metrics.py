"""Ops HTTP surface: ``GET /metrics``, and ``/ops`` pointing at the console's
ops page (``/admin/ops``, for people with an ops or admin account).

``/metrics`` on the public port answers an ops key only (Prometheus sends it
as a bearer token): its figures move with every signup, so served to anyone
they would tell whether an address was new. Without a key, scrape the
internal port (``NEWSLETTER_METRICS_PORT``, see app.create_metrics_app).
"""

from __future__ import annotations

import asyncpg
from litestar import Response, get
from litestar.response import Redirect

from newsletter.ops import metrics, stats
from newsletter.web.api.auth import SECURITY, requires
from newsletter.web.http.deps import DB, Config

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


# --- /metrics ----------------------------------------------------------------


async def metrics_response(db: DB, settings: Config) -> Response[bytes]:
    """Prometheus text format. Delivery figures come from the database (the same
    whichever process answers); HTTP figures are this process's own."""
    snapshot: stats.MetricsSnapshot | None
    try:
        snapshot = await stats.metrics_snapshot(db, settings)
    except DB_ERRORS:
        snapshot = None  # still answer: process metrics plus newsletter_database_up 0
    body = metrics.process_exposition() + metrics.database_exposition(snapshot)
    return Response(body, media_type=metrics.CONTENT_TYPE_LATEST)


metrics_endpoint = get(
    "/metrics",
    media_type=metrics.CONTENT_TYPE_LATEST,
    tags=["ops"],
    guards=[requires("ops")],
    security=SECURITY,
    summary="Prometheus metrics (ops key; or the internal metrics port without one)",
)(metrics_response)
internal_metrics_endpoint = get(
    "/metrics", media_type=metrics.CONTENT_TYPE_LATEST, include_in_schema=False
)(metrics_response)


# --- the ops page ------------------------------------------------------------------


@get("/ops", tags=["ops"])
async def ops_page() -> Redirect:
    """The ops page lives in the console now (people log in with their own
    accounts); old bookmarks land there. Scripts read /api/v1/stats."""
    return Redirect(path="/admin/ops", status_code=301)


ROUTES = [metrics_endpoint, ops_page]
