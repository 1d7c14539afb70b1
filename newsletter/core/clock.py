"""The city's clock: times people type are in the city's zone (``TIMEZONE``),
and every time shown to a person names its zone (``09:00 KST``)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from newsletter.core.errors import InvalidInput, field_name
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings

NO_TIME = "—"


def aware(moment: datetime, settings: Settings, name: str) -> datetime:
    """Naive times are local city time (``settings.timezone``)."""
    if not 2000 <= moment.year <= 2199:
        raise InvalidInput(
            N_("%(name)s은(는) 2000년부터 2199년 사이여야 합니다."),
            field=name,
            name=field_name(name),
        )
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment.astimezone(UTC)


def city_zone(settings: Settings) -> ZoneInfo:
    return ZoneInfo(settings.timezone)


def clock(moment: datetime | None, zone: ZoneInfo, *, with_date: bool = True) -> str:
    """``2026-03-02 09:00:05 KST`` (or ``09:00:05 KST``): for ops, the CLI and dev pages."""
    if moment is None:
        return NO_TIME
    local = moment.astimezone(zone)
    shown = local.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")
    return f"{shown} {local.tzname()}"


def korean_time(moment: datetime | None, zone: ZoneInfo) -> str:
    """``2026년 03월 02일 09:00 (KST)``: for residents, in mail and on pages."""
    if moment is None:
        return NO_TIME
    local = moment.astimezone(zone)
    return f"{local.strftime('%Y년 %m월 %d일 %H:%M')} ({local.tzname()})"


def korean_date(moment: datetime, zone: ZoneInfo) -> str:
    """``2026년 3월 2일``: a day needs no zone, but it is the city's day."""
    local = moment.astimezone(zone) if moment.tzinfo else moment
    return f"{local.year}년 {local.month}월 {local.day}일"
