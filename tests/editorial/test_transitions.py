"""The issue's life cycle table: every state × every action, as the product
contract draws it (draft → scheduled → sending → sent, or paused, cancelled),
and the API refusing exactly what the table refuses, with the same reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from newsletter.core.db import Database
from newsletter.core.errors import Conflict
from newsletter.editorial import issues, transitions
from newsletter.ops import words
from newsletter.ops.audit import Actor
from tests.conftest import bearer

# Where each action is allowed from, and what the issue is afterwards (None:
# gone), written from the contract rather than read from the table.
CONTRACT: dict[str, dict[str, str | None]] = {
    "update": {"draft": "draft"},
    "delete": {"draft": None},
    "schedule": {"draft": "scheduled", "scheduled": "scheduled"},
    "unschedule": {"scheduled": "draft"},
    "send-now": {"draft": "sending", "scheduled": "sending"},
    "pause": {"sending": "paused"},
    "resume": {"paused": "sending"},
    "cancel": {"scheduled": "cancelled", "sending": "cancelled", "paused": "cancelled"},
    "resend": {"sent": "sending"},
}
SOON = (datetime.now(UTC) + timedelta(days=30)).isoformat()
STATES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")


def issue(status: str, *, items: tuple[int, ...] = (7,), round: int = 1) -> dict[str, Any]:
    return {"id": 42, "status": status, "round": round, "news_item_ids": list(items)}


def test_the_table_has_exactly_the_contracts_actions_and_states() -> None:
    assert set(transitions.ACTIONS) == set(CONTRACT)
    assert set(transitions.STATUSES) == set(STATES)


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(CONTRACT))
def test_every_state_and_action(state: str, action: str) -> None:
    why = transitions.refusal(action, issue(state))
    if state in CONTRACT[action]:
        assert why is None, why
        assert transitions.result(action, issue(state)) == CONTRACT[action][state]
        return
    assert isinstance(why, Conflict) and why.status == 409
    korean, english = why.text("ko"), why.detail
    assert "#42" in korean and "42" in english
    if state == "sent":  # a sent issue is final (only a new round may go out)
        assert korean == "이미 발송한 호(#42)는 바꿀 수 없습니다."
        assert english == "issue 42 was sent and can no longer be changed"
    elif action == "resend":
        assert f"'{words.issue_status(state)}'" in korean and "다시 보낼 수 있습니다" in korean
        assert "resend" in english and state in english
    else:
        # Says which state the issue is in and which states would allow it, in both languages.
        assert f"'{words.issue_status(state)}' 상태라서" in korean
        allowed = "·".join(f"'{words.issue_status(s)}'" for s in CONTRACT[action])
        assert f"{allowed} 상태인 호만" in korean
        assert f"it is {state}; only a {' or '.join(CONTRACT[action])} issue" in english


@pytest.mark.parametrize("state", STATES)
def test_an_issue_offers_the_actions_its_state_allows(state: str) -> None:
    offered = [o.action for o in transitions.offers(issue(state))]
    assert offered == [a for a in transitions.ACTIONS if state in CONTRACT[a]]
    assert all(o.possible for o in transitions.offers(issue(state)))


def test_a_draft_is_deleted_not_cancelled() -> None:
    offered = {o.action for o in transitions.offers(issue("draft"))}
    assert "cancel" not in offered and "delete" in offered


def test_without_news_items_the_send_actions_are_offered_but_refused() -> None:
    for state in ("draft", "scheduled"):
        refused = {
            o.action: o.refusal.text("ko")
            for o in transitions.offers(issue(state, items=()))
            if o.refusal is not None
        }
        assert set(refused) == {"schedule", "send-now"}
        assert all("아직 뉴스 항목이 없습니다 (#42)" in r for r in refused.values())


def test_cancelling_a_resend_round_leaves_the_issue_sent() -> None:
    assert transitions.result("cancel", issue("sending", round=2)) == "sent"
    assert transitions.result("cancel", issue("sending", round=1)) == "cancelled"


def test_a_round_still_going_cannot_be_resent() -> None:
    why = transitions.refusal("resend", issue("paused", round=2))
    assert why is not None and "아직 2차 발송이 끝나지 않았습니다" in why.text("ko")


# --- the domain and the API follow the table -----------------------------------------

ROUTES: dict[str, tuple[str, str, dict[str, Any] | None]] = {
    "update": ("PUT", "", {"title": "고친 제목"}),
    "delete": ("DELETE", "", None),
    "schedule": ("POST", "/schedule", {"send_at": SOON}),
    "send-now": ("POST", "/send-now", None),
    "pause": ("POST", "/pause", None),
    "resume": ("POST", "/resume", None),
    "cancel": ("POST", "/cancel", None),
    "resend": ("POST", "/resend", None),
}


async def seeded(db: Database, state: str, item: int) -> int:
    issue_id: int = await db.pool.fetchval(
        "INSERT INTO issues (title, news_item_ids, status, send_at) "
        "VALUES ('표 시험', $1, $2, CASE WHEN $2 = 'scheduled' THEN now() + interval '1 day' END)"
        " RETURNING id",
        [item],
        state,
    )
    return issue_id


async def test_the_api_refuses_exactly_what_the_table_refuses(
    client: httpx.AsyncClient, db: Database
) -> None:
    headers = await bearer(db)
    item = await db.pool.fetchval(
        "INSERT INTO news_items (title, link) VALUES ('소식', 'https://www.gimpo.go.kr/n/1') "
        "RETURNING id"
    )
    for state in STATES:
        for action in CONTRACT:
            issue_id = await seeded(db, state, item)
            base = f"/api/v1/issues/{issue_id}"
            said = {
                a["action"]: a
                for a in (await client.get(f"{base}/actions", headers=headers)).json()
            }
            assert set(said) == set(CONTRACT)
            assert said[action]["allowed"] is (state in CONTRACT[action]), (state, action)
            if action == "unschedule":  # no route of its own in the API: the domain
                try:
                    await issues.unschedule(db, Actor(name="test", role="editor"), issue_id)
                    refused: str | None = None
                except Conflict as exc:
                    refused = exc.detail
                assert refused == said[action]["reason"], (state, action)
                continue
            method, suffix, body = ROUTES[action]
            if state in CONTRACT[action] and action in ("schedule", "send-now"):
                # Offline the pre-send check cannot reach the item's link: a
                # problem, sent despite it. A refused action is asked without,
                # so the table's reason is seen to come before the check.
                body = {**(body or {}), "despite_problems": True}
            answer = await client.request(method, base + suffix, json=body, headers=headers)
            if state not in CONTRACT[action]:
                assert answer.status_code == 409, (state, action, answer.text)
                assert answer.json()["detail"] == said[action]["reason"]
                assert (
                    await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id)
                    == state
                )
            elif action == "resend":  # allowed, but this issue has no failed mail to send again
                assert answer.status_code == 409 and "nothing to resend" in answer.text
            else:
                assert answer.status_code in (200, 204), (state, action, answer.text)
                after = await db.pool.fetchval("SELECT status FROM issues WHERE id = $1", issue_id)
                assert after == said[action]["leads_to"] == CONTRACT[action][state]
