"""What the service did: the access log for the privacy officer, the sending issue."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from newsletter.cli.command import arg, command, open_database, require_database_url
from newsletter.core.settings import Settings


def _moment(text: str | None, zone_name: str, option: str) -> datetime | None:
    """A ``--since``/``--until`` value: a date (midnight) or a date and time,
    in the installation's zone unless it carries an offset."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(
            f"newsletter: {option}: expected a date like 2026-11-03, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone_name))


@command(
    "access-log",
    "who read which personal data, when and from where (for the privacy officer)",
    arg("--since", help="from this date or time on (KST unless an offset is given)"),
    arg("--until", help="before this date or time"),
    arg("--actor", help="a key's or person's name, or a reference like api_key:3"),
    arg("--subscriber", type=int, help="only reads of this subscriber's data (id)"),
    arg("--action", help="e.g. subscriber.get, subscribers.export"),
    arg("--limit", type=int, default=200, help="at most this many entries (200)"),
    arg("--json", action="store_true", help="one JSON object per line"),
)
async def access_log(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops import reports
    from newsletter.ops.access_log import AccessFilter, read_entries
    from newsletter.ops.audit import command_line_actor

    wanted = AccessFilter(
        since=_moment(args.since, settings.timezone, "--since"),
        until=_moment(args.until, settings.timezone, "--until"),
        actor=args.actor,
        subscriber_id=args.subscriber,
        action=args.action,
        limit=max(1, min(args.limit, 100_000)),
    )
    async with open_database(settings) as db, db.transaction() as conn:
        found = await read_entries(conn, command_line_actor(), None, wanted)
    zone = ZoneInfo(settings.timezone)
    for entry in found:
        print(reports.access_json(entry, zone) if args.json else reports.access_line(entry, zone))
    if not args.json:
        print(reports.access_count(len(found)), file=sys.stderr)
    return 0


@command(
    "status",
    "how the sending issue is doing: progress, speed, time left, failures",
    arg("--watch", action="store_true", help="keep the view updated until the send finishes"),
    arg("--issue", type=int, help="issue id (default: the one sending now, else the latest)"),
    arg("--interval", type=float, default=2.0, help="seconds between updates with --watch (2)"),
)
async def status(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.editorial import transitions
    from newsletter.ops.status_view import run_status

    def actions(issue: Any) -> list[str]:
        """What the issue's state allows now, in the words of the domain's table."""
        return [transitions.TRANSITIONS[a].doing.ko for a in transitions.allowed_from(issue.status)]

    return await run_status(
        settings,
        require_database_url(settings),
        issue_id=args.issue,
        watch=args.watch,
        interval=max(args.interval, 0.1),
        actions=actions,
    )
