"""``newsletter status [--watch]``: the sending issue at a glance, in plain words.

Written for whoever is on duty, not for the person who built it: a progress
bar, how fast mail is going out against the limit, when it will be done, and
what went wrong in words (``550`` becomes "refused for good by the receiving
server"). Figures come from :mod:`newsletter.stats`, the same as ``/ops``.
"""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from newsletter.core.clock import clock
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops import stats
from newsletter.ops.stats import IssueStats, WorkerBeat

ENGLISH_UNITS = (" h", " min", " s", "unknown")

STATUS_WORDS = {
    "sending": "sending",
    "paused": "paused — nothing goes out until someone resumes it",
    "sent": "finished",
    "cancelled": "cancelled — the rest will not be sent",
    "scheduled": "scheduled, not started yet",
    "draft": "draft, not started",
}


def explain_code(code: int | None) -> str:
    if code is None:
        return "could not talk to the mail server (connection failed or timed out)"
    if 400 <= code < 500:
        return "temporary refusal; retried automatically"
    if code in (550, 551, 553):
        return "refused for good: mailbox unknown or not accepted"
    if code == 552:
        return "refused for good: mailbox full or message too big"
    if 500 <= code < 600:
        return "refused for good by the receiving server"
    return "unexpected reply"


def render(issue: IssueStats | None, workers: list[WorkerBeat], zone: ZoneInfo) -> RenderableType:
    if issue is None:
        return Text("No issue has started sending yet.")
    name = f"No. {issue.number} " if issue.number else ""
    title = Text.assemble(
        ("Newsletter ", "bold"),
        (f"{name}“{issue.title}”", "bold cyan"),
        f"  (issue id {issue.id}) — ",
        (STATUS_WORDS.get(issue.status, issue.status), "bold"),
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(issue.recipients, 1), completed=issue.done, width=40),
        Text(f"{issue.percent:5.1f} %", style="bold"),
        Text(f"{issue.done:,} of {issue.recipients:,} handled"),
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row(
        "Speed",
        f"{issue.rate_per_second:.1f} messages/s over the last minute "
        f"(limit {issue.rate_limit_per_second:g}/s)",
    )
    if issue.status == "sending" and issue.remaining:
        facts.add_row(
            "Time left",
            f"about {stats.format_duration(issue.eta_seconds, ENGLISH_UNITS)}"
            f" (done near {clock(issue.eta_at, zone, with_date=False)})",
        )
    facts.add_row(
        "Started",
        clock(issue.started_at, zone) + f"   Finished {clock(issue.finished_at, zone)}",
    )
    facts.add_row(
        "Delivered",
        f"{issue.sent:,} accepted by the mail servers",
    )
    facts.add_row(
        "Waiting",
        f"{issue.queued:,} in the queue, {issue.sending:,} being handed over right now",
    )
    problems = issue.failed + issue.bounced
    facts.add_row(
        "Problems",
        Text(
            f"{issue.failed:,} failed, {issue.bounced:,} bounced back later, "
            f"{issue.skipped:,} skipped (unsubscribed or suppressed meanwhile)",
            style="red" if problems else "",
        ),
    )
    alive = [w for w in workers if w.alive]
    facts.add_row(
        "Workers",
        Text(
            f"{len(alive)} sending" if alive else "none alive — start `newsletter worker`",
            style="" if alive or issue.status != "sending" else "bold red",
        ),
    )
    parts: list[RenderableType] = [title, bar, facts]
    if issue.error_codes:
        errors = Table(title="Why messages did not go", title_justify="left", box=None)
        errors.add_column("SMTP code", justify="right")
        errors.add_column("messages", justify="right")
        errors.add_column("meaning")
        for e in issue.error_codes:
            errors.add_row(
                str(e.code) if e.code is not None else "—", f"{e.count:,}", explain_code(e.code)
            )
        parts.append(errors)
    return Group(*parts)


async def _read(
    db: Database, settings: Settings, issue_id: int | None
) -> tuple[IssueStats | None, list[WorkerBeat]]:
    if issue_id is None:
        issue = await stats.current_issue(db, settings)
    else:
        issue = await stats.issue_stats(db, settings, issue_id)
    async with stats.snapshot(db) as conn:
        workers = await stats.workers(conn)
    return issue, workers


def _finished(issue: IssueStats | None) -> bool:
    return issue is not None and issue.status in ("sent", "cancelled") and issue.remaining == 0


async def run_status(
    settings: Settings,
    database_url: str,
    *,
    issue_id: int | None = None,
    watch: bool = False,
    interval: float = 2.0,
    console: Console | None = None,
) -> int:
    out = console or Console()
    zone = ZoneInfo(settings.timezone)
    db = await Database.connect(database_url, min_size=1, max_size=2, check_queries=False)
    try:
        issue, workers = await _read(db, settings, issue_id)
        if not watch:
            out.print(render(issue, workers, zone))
            return 0
        if not out.is_terminal:  # a log or a pipe: one block per refresh
            while True:
                out.print(render(issue, workers, zone))
                if _finished(issue):
                    return 0
                await asyncio.sleep(interval)
                issue, workers = await _read(db, settings, issue_id)
                out.rule()
        with Live(render(issue, workers, zone), console=out, auto_refresh=False) as live:
            while not _finished(issue):
                await asyncio.sleep(interval)
                issue, workers = await _read(db, settings, issue_id)
                live.update(render(issue, workers, zone), refresh=True)
        return 0
    finally:
        await db.close()
