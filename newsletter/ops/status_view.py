"""``newsletter status [--watch]``: the sending issue at a glance, in plain words.

Written for whoever is on duty, not for the person who built it: a progress
bar, how fast mail is going out against the limit, when it will be done, and
what went wrong in words (``550`` becomes "없는 메일 주소", as in the delivery
record). It draws the same view as the console's live pages
(:mod:`newsletter.ops.live_view`: rows, tables, words), with rich; figures
come from :mod:`newsletter.ops.stats`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.ops import live_view, stats, words
from newsletter.ops.live_view import Row
from newsletter.ops.live_view import Table as LiveTable
from newsletter.ops.stats import IssueStats, WorkerBeat

# What can be done to an issue now, in words (the CLI asks the domain's table).
Actions = Callable[[IssueStats], Sequence[str]]


def explain_code(code: int | None) -> str:
    """An SMTP code as the error table says it (the delivery record's words)."""
    return words.explain_code(code)


def _line(row: Row) -> Text:
    said = row.value + (f" — {row.note}" if row.note else "")
    return Text(said, style="bold red" if row.alarm else "")


def _table(table: LiveTable) -> RenderableType:
    if not table.lines:
        return Text.assemble((table.title, "italic"), "\n", table.empty)
    drawn = Table(title=table.title, title_justify="left", box=None)
    for column in table.columns:
        drawn.add_column(column.label, justify="right" if column.numeric else "left")
    for line in table.lines:
        drawn.add_row(*line.cells, style="red" if line.alarm else "")
    return drawn


def render(
    issue: IssueStats | None,
    workers: list[WorkerBeat],
    zone: ZoneInfo,
    actions: Sequence[str] = (),
) -> RenderableType:
    if issue is None:
        return Text(live_view.NO_ISSUE)
    view = live_view.build(issue, zone, workers, actions)
    title = Text.assemble(
        ("뉴스레터 ", "bold"),
        (view.heading, "bold cyan"),
        f"  (issue id {issue.id}) — ",
        (view.status_words, "bold"),
        f" — {view.status_hint}" if view.status_hint else "",
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(issue.recipients, 1), completed=issue.done, width=40),
        Text(f"{issue.percent:5.1f} %", style="bold"),
        Text(view.progress),
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    # Korean wraps inside long notes; folding keeps every character (no "…").
    facts.add_column(overflow="fold")
    for row in view.rows:
        facts.add_row(row.label, _line(row))
    parts: list[RenderableType] = [title, bar, facts]
    parts.extend(_table(t) for t in view.tables if t.lines or t.empty)
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
    actions: Actions | None = None,
) -> int:
    out = console or Console()
    zone = ZoneInfo(settings.timezone)

    def draw(issue: IssueStats | None, workers: list[WorkerBeat]) -> RenderableType:
        offered = actions(issue) if actions is not None and issue is not None else ()
        return render(issue, workers, zone, offered)

    db = await Database.connect(database_url, min_size=1, max_size=2, check_queries=False)
    try:
        issue, workers = await _read(db, settings, issue_id)
        if not watch:
            out.print(draw(issue, workers))
            return 0
        if not out.is_terminal:  # a log or a pipe: one block per refresh
            while True:
                out.print(draw(issue, workers))
                if _finished(issue):
                    return 0
                await asyncio.sleep(interval)
                issue, workers = await _read(db, settings, issue_id)
                out.rule()
        with Live(draw(issue, workers), console=out, auto_refresh=False) as live:
            while not _finished(issue):
                await asyncio.sleep(interval)
                issue, workers = await _read(db, settings, issue_id)
                live.update(draw(issue, workers), refresh=True)
        return 0
    finally:
        await db.close()
