"""``newsletter status [--watch]``: the sending issue at a glance, in plain words.

Written for whoever is on duty, not for the person who built it: a progress
bar, how fast mail is going out against the limit, when it will be done, and
what went wrong in words (``550`` becomes "없는 메일 주소", as in the delivery
record). In Korean, with the same words as the console (:mod:`newsletter.ops.words`);
figures come from :mod:`newsletter.ops.stats`, the same as the console's ops page.
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
from newsletter.ops import stats, words
from newsletter.ops.stats import IssueStats, WorkerBeat

KOREAN_UNITS = ("시간", "분", "초", "알 수 없음")

# What each state means for whoever is on duty, after its Korean word.
STATUS_NOTES = {
    "sending": "",
    "paused": " — 누군가 재개할 때까지 아무것도 나가지 않습니다",
    "sent": "",
    "cancelled": " — 남은 메일은 보내지 않습니다",
    "scheduled": " — 아직 시작하지 않았습니다",
    "draft": " — 아직 시작하지 않았습니다",
}


def status_words(status: str) -> str:
    return words.issue_status(status) + STATUS_NOTES.get(status, "")


def explain_code(code: int | None) -> str:
    return words.explain_code(code)


def render(issue: IssueStats | None, workers: list[WorkerBeat], zone: ZoneInfo) -> RenderableType:
    if issue is None:
        return Text("아직 발송을 시작한 호가 없습니다.")
    name = f"제{issue.number}호 " if issue.number else ""
    title = Text.assemble(
        ("뉴스레터 ", "bold"),
        (f"{name}“{issue.title}”", "bold cyan"),
        f"  (issue id {issue.id}) — ",
        (status_words(issue.status), "bold"),
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(issue.recipients, 1), completed=issue.done, width=40),
        Text(f"{issue.percent:5.1f} %", style="bold"),
        Text(f"{issue.recipients:,}통 중 {issue.done:,}통 처리"),
    )
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row(
        "속도",
        f"최근 1분 {issue.rate_per_second:.1f}통/초 (한도 {issue.rate_limit_per_second:g}통/초)",
    )
    if issue.effective_rate_reason:
        facts.add_row(
            "허용 속도",
            Text(
                f"{issue.effective_rate_per_second:g}통/초 — {words.RATE_LOWERED}: "
                f"{issue.effective_rate_reason}"
                f" ({clock(issue.effective_rate_since, zone)})",
                style="yellow",
            ),
        )
    else:
        facts.add_row(
            "허용 속도", f"{issue.effective_rate_per_second:g}통/초 — {words.RATE_AT_CEILING}"
        )
    if issue.status == "sending" and issue.remaining:
        facts.add_row(
            "남은 시간",
            f"약 {stats.format_duration(issue.eta_seconds, KOREAN_UNITS)}"
            f" (완료 예상 {clock(issue.eta_at, zone, with_date=False)})",
        )
    facts.add_row(
        "시작",
        clock(issue.started_at, zone) + f"   완료 {clock(issue.finished_at, zone)}",
    )
    facts.add_row("보냄", f"{issue.sent:,}통 — 받는 쪽 메일 서버가 받아 감")
    facts.add_row(
        "대기",
        f"대기열 {issue.queued:,}통, 지금 넘기는 중 {issue.sending:,}통",
    )
    problems = issue.failed + issue.bounced
    facts.add_row(
        "문제",
        Text(
            f"실패 {issue.failed:,}통, 나중에 반송 {issue.bounced:,}통, "
            f"건너뜀 {issue.skipped:,}통 (그사이 수신 거부·발송 제외)",
            style="red" if problems else "",
        ),
    )
    facts.add_row("시도", f"{issue.attempts:,}회 — {words.ATTEMPTS_HINT}")
    if issue.round > 1:
        facts.add_row(
            "발송 차수",
            f"{issue.round}차 — 받는 사람 탓이 아닌 이유로 실패한 메일을 다시 보냄",
        )
    if issue.clicks:
        top = sorted(issue.clicks, key=lambda c: -c.clicks)[:3]
        facts.add_row(
            "클릭",
            f"뉴스 링크 {issue.clicks_total:,}회 ("
            + ", ".join(f"“{c.title}” {c.clicks:,}회" for c in top)
            + ") — 누가 눌렀는지는 기록하지 않음",
        )
    alive = [w for w in workers if w.alive]
    facts.add_row(
        "작업자",
        Text(
            f"살아 있는 작업자 {len(alive)}개 (최근 1분 안에 신호)"
            if alive
            else "살아 있는 작업자 없음 — `newsletter worker`를 시작하세요",
            style="" if alive or issue.status != "sending" else "bold red",
        ),
    )
    parts: list[RenderableType] = [title, bar, facts]
    if issue.relays:
        relays = Table(title="메일 서버 (릴레이)", title_justify="left", box=None)
        for column in ("서버", "상태", "보냄", "늦추라는 응답", "연결 거부", "마지막 오류"):
            relays.add_column(column, justify="right" if column in ("보냄",) else "left")
        for r in issue.relays:
            relays.add_row(
                r.relay,
                Text(words.relay_state(r.state), style="" if r.state == "closed" else "bold red"),
                f"{r.sent:,}",
                f"{r.pushed_back:,}",
                f"{r.refused:,}",
                r.last_error or "—",
            )
        parts.append(relays)
    if issue.error_codes:
        errors = Table(title="보내지 못한 이유", title_justify="left", box=None)
        errors.add_column("SMTP 코드", justify="right")
        errors.add_column("메일 수", justify="right")
        errors.add_column("뜻")
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
