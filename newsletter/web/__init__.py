"""HTTP routes only: parse the request, call the domain, shape the response.

Each module exposes ``ROUTES``; :data:`ROUTES` here collects them for app.py.
"""

from __future__ import annotations

from typing import Any

from newsletter.web import (
    api_access_log,
    api_bounces,
    api_deliveries,
    api_issues,
    api_news,
    api_stats,
    api_subscribers,
    archive,
    assets,
    clicks,
    console,
    health,
    media,
    ops,
    public,
    reconfirm,
)

ROUTES: list[Any] = [
    *health.ROUTES,
    *public.ROUTES,
    *clicks.ROUTES,
    *reconfirm.ROUTES,
    *archive.ROUTES,
    *assets.ROUTES,
    *ops.ROUTES,
    *console.ROUTES,
    *media.ROUTES,
    *api_news.ROUTES,
    *api_issues.ROUTES,
    *api_subscribers.ROUTES,
    *api_stats.ROUTES,
    *api_deliveries.ROUTES,
    *api_bounces.ROUTES,
    *api_access_log.ROUTES,
]
