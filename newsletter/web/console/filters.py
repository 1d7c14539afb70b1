"""Jinja filters for the console pages: times in the city's zone with the zone
named, numbers with separators, states in Korean words."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.core.settings import Settings
from newsletter.ops import live_view, words

# The zone's name in words beside its abbreviation, where we know it.
ZONE_NAMES = {"Asia/Seoul": "한국 표준시"}


def zone_label(zone: ZoneInfo) -> str:
    """'KST' for Asia/Seoul; otherwise the zone's own abbreviation."""
    return datetime.now(zone).tzname() or str(zone)


def filters(settings: Settings) -> dict[str, Any]:
    zone = ZoneInfo(settings.timezone)
    label = zone_label(zone)

    def when(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        """'2026-03-02 09:00 KST'; a dash for no time."""
        if moment is None:
            return "—"
        return f"{moment.astimezone(zone).strftime(fmt)} {label}"

    def when_seconds(moment: datetime | None) -> str:
        return when(moment, "%Y-%m-%d %H:%M:%S")

    def day(moment: datetime | None) -> str:
        if moment is None:
            return "—"
        local = moment.astimezone(zone)
        return f"{local.year}년 {local.month}월 {local.day}일"

    def local_input(moment: datetime | None) -> str:
        """The value of a datetime-local field, in the city's zone."""
        return moment.astimezone(zone).strftime("%Y-%m-%dT%H:%M") if moment else ""

    def iso(moment: datetime | None) -> str:
        return moment.isoformat() if moment else ""

    def number(value: int | float | None) -> str:
        if value is None:
            return "—"
        if isinstance(value, float) and not value.is_integer():
            return f"{value:,.1f}"
        return f"{int(value):,}"

    return {
        "when": when,
        "when_seconds": when_seconds,
        "day": day,
        "local_input": local_input,
        "iso": iso,
        "number": number,
        "issue_status": words.issue_status,
        "subscriber_status": words.subscriber_status,
        "consent_kind": words.consent_kind,
        "role_name": words.role,
        "audit_action": words.audit_action,
    }


def install(engine: Any, settings: Settings) -> None:
    """The TemplateConfig callback: add the filters, the zone's label and what
    the console's base shows from settings (the city, the session's idle time)."""
    env = engine.engine
    env.filters.update(filters(settings))
    env.globals["zone_label"] = zone_label(ZoneInfo(settings.timezone))
    env.globals["zone_name"] = ZONE_NAMES.get(settings.timezone)
    # The console is in Korean: the city's Korean identity, as the residents' base shows it.
    env.globals["office"] = settings.city.text("ko")
    env.globals["session_idle_minutes"] = max(1, round(settings.session_idle_seconds / 60))
    env.globals["issue_status_hint"] = words.ISSUE_STATUS_HINT
    # The live pages draw the same view as `newsletter status` (ops/live_view.py).
    zone = ZoneInfo(settings.timezone)
    env.globals["live_view"] = lambda issue: live_view.build(issue, zone)
    env.globals["pace_view"] = lambda pace: live_view.pace_view(pace, zone)
    env.globals["workers_row"] = lambda workers: live_view.workers_row(workers, sending=False)
