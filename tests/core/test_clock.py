"""Times shown to people are the city's and name their zone."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from newsletter.core.clock import clock, korean_date, korean_time

SEOUL = ZoneInfo("Asia/Seoul")
MIDNIGHT_UTC = datetime(2026, 3, 1, 15, 30, 5, tzinfo=UTC)  # 00:30 next day in Seoul


def test_ops_clock_names_the_zone() -> None:
    assert clock(MIDNIGHT_UTC, SEOUL) == "2026-03-02 00:30:05 KST"
    assert clock(MIDNIGHT_UTC, SEOUL, with_date=False) == "00:30:05 KST"
    assert clock(MIDNIGHT_UTC, ZoneInfo("Europe/Berlin")) == "2026-03-01 16:30:05 CET"
    assert clock(None, SEOUL) == "—"


def test_korean_time_for_residents() -> None:
    assert korean_time(MIDNIGHT_UTC, SEOUL) == "2026년 03월 02일 00:30 (KST)"
    assert korean_date(MIDNIGHT_UTC, SEOUL) == "2026년 3월 2일"  # the city's day, not UTC's
