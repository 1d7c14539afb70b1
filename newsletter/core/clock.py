"""The city's clock: times people type are in the city's zone (``TIMEZONE``)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from newsletter.core.errors import InvalidInput
from newsletter.core.settings import Settings


def aware(moment: datetime, settings: Settings, name: str) -> datetime:
    """Naive times are local city time (``settings.timezone``)."""
    if not 2000 <= moment.year <= 2199:
        raise InvalidInput(f"{name} must be between the years 2000 and 2199", field=name)
    if moment.tzinfo is None or moment.utcoffset() is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment.astimezone(UTC)
