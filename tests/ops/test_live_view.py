"""One view of a live send: `newsletter status` in the terminal and the
console's live panel say the same things with the same labels, because both
draw ops/live_view.py. Checked on a real process and a real page over HTTP."""

from __future__ import annotations

import html
import re

import httpx

from newsletter.core.db import Database
from tests.ops.test_status_cli import run_cli
from tests.support.console import login, make_user
from tests.support.ops_seed import seed_issue

TAG = re.compile(r"<[^>]+>")


def squeezed(text: str) -> str:
    """Without whitespace: the terminal wraps long cells onto the next line."""
    return re.sub(r"\s+", "", text)


def texts(page: str, pattern: str) -> list[str]:
    return [html.unescape(TAG.sub("", m)).strip() for m in re.findall(pattern, page, re.S)]


async def test_status_cli_and_console_show_the_same_labels(
    database_url: str, db: Database, client: httpx.AsyncClient
) -> None:
    seeded = await seed_issue(db, queued=40, sending=2, sent=50, failed=5, bounced=1, retrying=2)
    ops = await make_user(db, "ops")
    await login(client, ops.email)
    panel = await client.get(f"/admin/issues/{seeded.issue_id}/live")
    assert panel.status_code == 200
    page = panel.text
    code, terminal = await run_cli(database_url, "status")
    assert code == 0, terminal
    flat = squeezed(terminal)

    # Every figure's label, every table's title and column, in both.
    labels = texts(page, r"<dt>(.*?)</dt>")
    headers = texts(page, r'<th scope="col"[^>]*>(.*?)</th>')
    titles = texts(page, r'<h3 id="[a-z-]+-heading">(.*?)</h3>')
    assert {"발송 속도", "남은 시간", "시작", "문제", "시도"} <= set(labels)
    assert {"결과", "메일 수", "뜻", "메일 서버 응답"} <= set(headers)
    assert {"결과", "보내지 못한 이유"} <= set(titles)
    for said in labels + headers + titles:
        assert squeezed(said) in flat, f"the console says {said!r}, the terminal does not"

    # The state is explained with the same sentence.
    hint = texts(page, r'id="issue-status">[^<]*</span>\s*<span class="muted">(.*?)</span>')
    assert hint == ["구독자에게 보내는 중입니다."]
    assert "발송 중 — 구독자에게 보내는 중입니다." in terminal

    # The same words for the figures that do not move between the two looks.
    for key in ("started", "problems", "attempts"):
        [said] = re.findall(
            rf'<dd id="{key}">([^<]*)(?:<span class="muted">(.*?)</span>)?</dd>', page
        )
        value, note = (html.unescape(part) for part in said)
        assert squeezed(value + (f"—{note}" if note else "")) in flat, key
    for line in texts(page, r'<tr data-(?:result|code)="[^"]+"[^>]*>(.*?)</tr>'):
        cells = [c for c in (line.split("\n")) if c.strip()]
        assert all(squeezed(c) in flat for c in cells), line
    assert texts(page, r'id="progress-words">(.*?)</p>') == ["100통 중 56통 처리"]
    assert "100통 중 56통 처리" in terminal


async def test_status_says_what_the_issue_allows_now(database_url: str, db: Database) -> None:
    seeded = await seed_issue(db, queued=5, sent=5)
    code, sending = await run_cli(database_url, "status")
    assert code == 0, sending
    assert re.search(r"할 수 있는 일 +일시 정지 · 취소", sending)
    await db.pool.execute(
        "UPDATE issues SET status = 'sent', finished_at = now() WHERE id = $1", seeded.issue_id
    )
    code, sent = await run_cli(database_url, "status")
    assert code == 0, sent
    assert re.search(r"할 수 있는 일 +재발송", sent)
    assert "일시 정지 ·" not in sent
