"""HTTP routes only: parse the request, call the domain, shape the response.

``api/`` is the JSON API, ``pages/`` the residents' pages, ``console/`` the
editors' console, ``http/`` the plumbing they share.

Each module exposes ``ROUTES``; :data:`ROUTES` here collects them for app.py.
"""

from __future__ import annotations

from typing import Any

from newsletter.web import console
from newsletter.web.api import (
    access_log,
    bounces,
    checks,
    deliveries,
    health,
    issues,
    metrics,
    news,
    stats,
    subscribers,
)
from newsletter.web.pages import archive, assets, clicks, media, public, reconfirm

ROUTES: list[Any] = [
    *health.ROUTES,
    *public.ROUTES,
    *clicks.ROUTES,
    *reconfirm.ROUTES,
    *archive.ROUTES,
    *assets.ROUTES,
    *metrics.ROUTES,
    *console.ROUTES,
    *media.ROUTES,
    *news.ROUTES,
    *issues.ROUTES,
    *checks.ROUTES,
    *subscribers.ROUTES,
    *stats.ROUTES,
    *deliveries.ROUTES,
    *bounces.ROUTES,
    *access_log.ROUTES,
]
