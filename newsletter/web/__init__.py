"""HTTP routes only: parse the request, call the domain, shape the response.

Each module exposes ``ROUTES``; :func:`routes` collects them for app.py.
"""

from __future__ import annotations

from typing import Any

from newsletter.settings import Settings


def routes(settings: Settings) -> list[Any]:
    from newsletter.web import api_stats, health, ops, public

    handlers: list[Any] = [*health.ROUTES, *public.ROUTES, *api_stats.ROUTES, *ops.ROUTES]
    from newsletter.web import api_issues, api_news, archive

    handlers.extend([*api_news.ROUTES, *api_issues.ROUTES, *archive.ROUTES])
    from newsletter.web import api_subscribers, reconfirm

    handlers.extend([*api_subscribers.ROUTES, *reconfirm.ROUTES])
    from newsletter.web import api_bounces

    handlers.extend(api_bounces.ROUTES)
    if settings.dev:
        from newsletter.web import dev_outbox

        handlers.extend(dev_outbox.ROUTES)
    return handlers
