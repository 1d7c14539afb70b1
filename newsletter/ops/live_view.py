"""One view of a live send, in labelled rows and tables, for every screen.

``newsletter status`` (:mod:`newsletter.ops.status_view`, drawn with rich)
and the console's live pages (``templates/pages/console/issue_live.html``,
``ops_live.html``, drawn with Jinja) both draw a :class:`LiveView`: the
sentences, table headers, units and the meaning of each state are written
here once, so a person on duty reads the same words in the terminal and in
the browser. Each screen decides only how a row looks (a grid line, a
``<dt>``/``<dd>``, red or a notice box).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from newsletter.core.clock import clock
from newsletter.ops import stats, words
from newsletter.ops.stats import IssueStats, Pace, RelayStats, WorkerBeat

UNITS = ("시간", "분", "초", "알 수 없음")
NO_ISSUE = "아직 발송을 시작한 호가 없습니다."


def count(n: int) -> str:
    return f"{n:,}통"


def per_second(rate: float) -> str:
    return f"{rate:g}통/초"


@dataclass(frozen=True)
class Row:
    """One labelled fact: ``key`` names it for pages (element ids) and tests."""

    key: str
    label: str
    value: str
    note: str = ""  # what the value means, or the detail behind it
    alarm: bool = False  # something a person on duty should act on


@dataclass(frozen=True)
class Column:
    label: str
    numeric: bool = False
    cell_id: str = ""  # pages: the cells of this column get the id cell_id + the line's key
    badge: bool = False  # pages: the cell is a state, drawn as its coloured badge


@dataclass(frozen=True)
class Line:
    """A table's row: ``key`` identifies it (a delivery status, a relay),
    ``state`` says how it stands where that matters (a relay's breaker)."""

    key: str
    cells: tuple[str, ...]
    state: str = ""
    alarm: bool = False


@dataclass(frozen=True)
class Table:
    key: str  # "results", "rounds", "error-codes", "relays", "clicks"
    title: str
    columns: tuple[Column, ...]
    lines: list[Line]
    row_name: str = "row"  # what each line is (a page's data-<row_name> attribute)
    empty: str = ""  # what to say when there are no lines ("": show nothing)


@dataclass(frozen=True)
class LiveView:
    issue: IssueStats
    heading: str  # 제3호 “3월 김포 소식”
    status: str  # the database value
    status_words: str  # 발송 중
    status_hint: str  # what the state means for whoever looks
    progress: str  # 100통 중 56통 처리
    rows: list[Row]
    tables: list[Table] = field(default_factory=list)

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)

    def table(self, key: str) -> Table | None:
        return next((t for t in self.tables if t.key == key), None)


# --- the pieces -------------------------------------------------------------------


def pace_row(effective: float, reason: str | None, since: datetime | None, zone: ZoneInfo) -> Row:
    """The rate the relays allow now, and why when it is below the ceiling."""
    if reason:
        when = clock(since, zone) if since is not None else ""
        return Row(
            "allowed-rate",
            "허용 속도",
            per_second(effective),
            f"{words.RATE_LOWERED}: {reason}" + (f" ({when})" if when else ""),
            alarm=True,
        )
    return Row("allowed-rate", "허용 속도", per_second(effective), words.RATE_AT_CEILING)


def workers_row(workers: Sequence[WorkerBeat], *, sending: bool) -> Row:
    alive = sum(1 for w in workers if w.alive)
    if alive:
        return Row("workers", "작업자", f"살아 있는 작업자 {alive}개", "최근 1분 안에 신호")
    return Row(
        "workers",
        "작업자",
        "살아 있는 작업자 없음",
        "`newsletter worker`를 시작하세요",
        alarm=sending,
    )


def relay_table(relays: Sequence[RelayStats], zone: ZoneInfo, key: str = "relays") -> Table:
    columns = (
        Column("서버"),
        Column("상태"),
        Column("보냄", numeric=True),
        Column("늦추라는 응답", numeric=True),
        Column("연결 거부", numeric=True),
        Column("마지막 오류"),
    )
    lines = [
        Line(
            r.relay,
            (
                r.relay,
                words.relay_state(r.state),
                f"{r.sent:,}",
                f"{r.pushed_back:,}",
                f"{r.refused:,}",
                f"{r.last_error} ({clock(r.last_error_at, zone)})" if r.last_error else "—",
            ),
            state=r.state,
            alarm=r.state != "closed",
        )
        for r in relays
    ]
    return Table(key, "메일 서버 (릴레이)", columns, lines, row_name="relay")


def pace_view(pace: Pace, zone: ZoneInfo) -> tuple[Row, Table]:
    """The service's pace (the ops page): the allowed rate and each relay."""
    row = pace_row(pace.effective_per_second, pace.reason, pace.since, zone)
    note = f"설정한 한도 {per_second(pace.configured_per_second)} — {row.note}"
    return Row(row.key, row.label, row.value, note, row.alarm), relay_table(
        pace.relays, zone, key="relay-table"
    )


def _results(issue: IssueStats) -> Table:
    figures = {
        "sent": issue.sent,
        "failed": issue.failed,
        "bounced": issue.bounced,
        "skipped": issue.skipped,
        "queued": issue.queued,
        "sending": issue.sending,
    }
    return Table(
        "results",
        "결과",
        (
            Column("결과", badge=True),
            Column("메일 수", numeric=True, cell_id="count-"),
            Column("뜻"),
        ),
        [
            Line(
                status,
                (words.delivery_status(status), f"{n:,}", words.DELIVERY_STATUS_HINT[status]),
                state=status,
                alarm=status in ("failed", "bounced") and n > 0,
            )
            for status, n in figures.items()
        ],
        row_name="result",
    )


def _rounds(issue: IssueStats, zone: ZoneInfo) -> Table:
    return Table(
        "rounds",
        "발송 회차",
        (
            Column("회차"),
            Column("시작"),
            Column("보낼 메일", numeric=True),
            Column("보냄", numeric=True),
            Column("실패", numeric=True),
            Column("요청한 사람"),
        ),
        [
            Line(
                str(r.round),
                (
                    f"{r.round}차" + (" (다시 보내기)" if r.round > 1 else ""),
                    clock(r.started_at, zone),
                    f"{r.deliveries:,}",
                    f"{r.sent:,}",
                    f"{r.failed:,}",
                    r.requested_by or "—",
                ),
            )
            for r in issue.rounds
        ],
        row_name="round",
    )


def _error_codes(issue: IssueStats) -> Table:
    return Table(
        "error-codes",
        "보내지 못한 이유",
        (Column("메일 서버 응답", numeric=True), Column("메일 수", numeric=True), Column("뜻")),
        [
            Line(
                str(e.code) if e.code is not None else "none",
                (
                    str(e.code) if e.code is not None else "응답 없음",
                    f"{e.count:,}",
                    words.explain_code(e.code),
                ),
            )
            for e in issue.error_codes
        ],
        row_name="code",
    )


def _clicks(issue: IssueStats) -> Table:
    return Table(
        "clicks",
        "항목별 클릭",
        (Column("뉴스 항목"), Column("클릭", numeric=True)),
        [Line(str(c.news_item_id), (c.title, f"{c.clicks:,}")) for c in issue.clicks],
        row_name="item",
        empty="이 호의 링크 클릭 집계가 아직 없습니다.",
    )


def _eta(issue: IssueStats, zone: ZoneInfo) -> Row:
    if issue.status == "sending" and issue.remaining:
        return Row(
            "eta",
            "남은 시간",
            f"약 {stats.format_duration(issue.eta_seconds, UNITS)}",
            f"완료 예상 {clock(issue.eta_at, zone, with_date=False)}",
        )
    if issue.remaining:
        return Row("eta", "남은 시간", "—", words.issue_status(issue.status))
    return Row("eta", "남은 시간", "끝남")


def _figures(issue: IssueStats, zone: ZoneInfo) -> list[Row]:
    rows = [
        Row(
            "rate",
            "발송 속도",
            per_second(round(issue.rate_per_second, 1)),
            f"최근 1분 · 한도 {per_second(issue.rate_limit_per_second)}",
        ),
        pace_row(
            issue.effective_rate_per_second,
            issue.effective_rate_reason,
            issue.effective_rate_since,
            zone,
        ),
        _eta(issue, zone),
        Row("started", "시작", clock(issue.started_at, zone)),
        Row("finished", "완료", clock(issue.finished_at, zone)),
        Row(
            "problems",
            "문제",
            f"실패 {count(issue.failed)}, 나중에 반송 {count(issue.bounced)}, "
            f"건너뜀 {count(issue.skipped)} (그사이 수신 거부·발송 제외)",
            alarm=bool(issue.failed + issue.bounced),
        ),
        Row("attempts", "시도", f"{issue.attempts:,}회", words.ATTEMPTS_HINT),
    ]
    if issue.round > 1:
        rows.append(
            Row(
                "round",
                "발송 차수",
                f"{issue.round}차",
                "받는 사람 탓이 아닌 이유로 실패한 메일을 다시 보냄",
            )
        )
    if issue.clicks:
        top = sorted(issue.clicks, key=lambda c: -c.clicks)[:3]
        rows.append(
            Row(
                "clicks-total",
                "클릭",
                f"뉴스 링크 {issue.clicks_total:,}회",
                ", ".join(f"“{c.title}” {c.clicks:,}회" for c in top)
                + " — 누가 눌렀는지는 기록하지 않음",
            )
        )
    return rows


def build(
    issue: IssueStats,
    zone: ZoneInfo,
    workers: Sequence[WorkerBeat] | None = None,
    actions: Sequence[str] = (),
) -> LiveView:
    """The view of one issue's send; ``workers`` adds whether anyone is sending
    it, ``actions`` what can be done to it now (in words; the console draws
    its buttons instead)."""
    rows = _figures(issue, zone)
    if workers is not None:
        rows.append(workers_row(workers, sending=issue.status == "sending"))
    if actions:
        rows.append(
            Row(
                "actions",
                "할 수 있는 일",
                " · ".join(actions),
                f"콘솔의 이 호 화면(/admin/issues/{issue.id})에서",
            )
        )
    tables = [_results(issue)]
    if issue.rounds:
        tables.append(_rounds(issue, zone))
    if issue.error_codes:
        tables.append(_error_codes(issue))
    if issue.relays:
        tables.append(relay_table(issue.relays, zone))
    tables.append(_clicks(issue))
    number = f"제{issue.number}호 " if issue.number else ""
    return LiveView(
        issue=issue,
        heading=f"{number}“{issue.title}”",
        status=issue.status,
        status_words=words.issue_status(issue.status),
        status_hint=words.ISSUE_STATUS_HINT.get(issue.status, ""),
        progress=f"{count(issue.recipients)} 중 {count(issue.done)} 처리",
        rows=rows,
        tables=tables,
    )
