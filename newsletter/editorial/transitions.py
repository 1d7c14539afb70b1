"""An issue's life cycle in one table: what can be done from which state,
what the issue becomes, and why not.

    draft ──schedule──▶ scheduled ──(due / send-now)──▶ sending ──▶ sent
      │   ◀─unschedule─    │                            │  ▲        │
      └──send-now──────────┼───────────────────────────▶│  │resume  │resend
                           │                          pause│        ▼
                           ▼                            ▼  │   sending, round 2
                       cancelled ◀──────cancel────── paused      (cancel: sent)

The domain functions (:mod:`newsletter.editorial.issues`) refuse through
:func:`refusal` under the issue's row lock; the API, the console and the
command line ask :func:`offers` which actions an issue has now, and show the
same reasons, so a button is never offered that the domain would refuse for
its state. A draft is deleted, not cancelled: there is no send to cancel yet.

A reason is a :class:`~newsletter.core.errors.Conflict` carrying a catalog
message id: Korean in the console, English in the API and the terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from newsletter.core.errors import Conflict
from newsletter.core.i18n import N_, Term
from newsletter.ops import words

STATUSES = ("draft", "scheduled", "sending", "paused", "sent", "cancelled")
# States with send figures to show (recipients were snapshot, or it was cancelled).
STARTED = ("sending", "paused", "sent", "cancelled")
# States an issue may leave while someone watches it (the scheduler starts a
# scheduled issue, workers finish a sending one, another editor resumes a
# paused one): pages showing one keep themselves up to date.
MOVING = ("scheduled", "sending", "paused")

SENT_IS_FINAL = N_("이미 발송한 호(#%(id)s)는 바꿀 수 없습니다.")
WRONG_STATE = N_(
    "이 호(#%(id)s)는 지금 '%(status)s' 상태라서 %(doing)s할 수 없습니다. "
    "%(allowed)s 상태인 호만 %(done)s 수 있습니다."
)
NO_ITEMS = N_("아직 뉴스 항목이 없습니다 (#%(id)s). 항목을 하나 이상 넣은 뒤 발송해 주세요.")
ROUND_NOT_OVER = N_(
    "아직 %(round)s차 발송이 끝나지 않았습니다 ('%(status)s', #%(id)s). "
    "모든 메일의 결과가 나온 뒤에 다시 보낼 수 있습니다."
)
ONLY_SENT_RESENDS = N_(
    "'%(status)s' 상태인 호는 다시 보낼 수 없습니다 (#%(id)s). "
    "발송을 마친 호만 다시 보낼 수 있습니다."
)


# Why an action is refused in a state: "sent" (a sent issue is final), "state"
# (the general sentence naming the states that allow it), or a special one.
Reason = Literal["sent", "state", "round_not_over", "only_sent_resends"]


@dataclass(frozen=True)
class Transition:
    """One action: the states it is allowed from and the state it leads to."""

    action: str
    allowed_from: tuple[str, ...]
    to: str | None  # None: the issue is gone
    doing: Term  # the action in a sentence: "일시 정지할 수 없습니다" / "cannot pause"
    done: Term  # "... 상태인 호만 일시 정지할 수 있습니다" / "can be paused"
    needs_items: bool = False  # refused while the issue has no news items
    # A resend round (round > 1) ends elsewhere: a cancelled round leaves the issue sent.
    later_round_to: str | None = None
    # The reason in a given state, where the general one would mislead.
    reasons: dict[str, Reason] = field(default_factory=dict)


def _t(
    action: str,
    allowed_from: tuple[str, ...],
    to: str | None,
    ko: str,
    en: tuple[str, str],
    **more: Any,
) -> Transition:
    """``ko``: the action's Korean noun; ``en``: its English verb and participle."""
    doing, done = en
    return Transition(
        action, allowed_from, to, Term(ko=ko, en=doing), Term(ko=f"{ko}할", en=done), **more
    )


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        _t("update", ("draft",), "draft", "수정", ("update", "updated")),
        _t("delete", ("draft",), None, "삭제", ("delete", "deleted")),
        _t(
            "schedule",
            ("draft", "scheduled"),
            "scheduled",
            "예약",
            ("schedule", "scheduled"),
            needs_items=True,
        ),
        _t(
            "unschedule",
            ("scheduled",),
            "draft",
            "예약 해제",
            ("unschedule", "turned back into a draft"),
        ),
        _t(
            "send-now",
            ("draft", "scheduled"),
            "sending",
            "발송",
            ("send", "sent now"),
            needs_items=True,
        ),
        _t("pause", ("sending",), "paused", "일시 정지", ("pause", "paused")),
        _t("resume", ("paused",), "sending", "재개", ("resume", "resumed")),
        _t(
            "cancel",
            ("scheduled", "sending", "paused"),
            "cancelled",
            "취소",
            ("cancel", "cancelled"),
            later_round_to="sent",
        ),
        _t(
            "resend",
            ("sent",),
            "sending",
            "재발송",
            ("resend", "sent again"),
            reasons={
                "sending": "round_not_over",
                "paused": "round_not_over",
                "draft": "only_sent_resends",
                "scheduled": "only_sent_resends",
                "cancelled": "only_sent_resends",
            },
        ),
    )
}
ACTIONS = tuple(TRANSITIONS)


def _status_term(status: str) -> Term:
    return Term(ko=words.issue_status(status), en=status)


def refusal(action: str, issue: Any) -> Conflict | None:
    """Why ``action`` cannot be done to ``issue`` now (a row with ``id``,
    ``status``, ``round`` and ``news_item_ids``), or ``None`` when it can."""
    transition = TRANSITIONS[action]
    status: str = issue["status"]
    if status not in transition.allowed_from:
        return _refused(transition, issue)
    if transition.needs_items and not issue["news_item_ids"]:
        return Conflict(NO_ITEMS, id=issue["id"])
    return None


def _refused(transition: Transition, issue: Any) -> Conflict:
    status: str = issue["status"]
    reason = transition.reasons.get(status, "sent" if status == "sent" else "state")
    said = _status_term(status)
    if reason == "sent":
        return Conflict(SENT_IS_FINAL, id=issue["id"])
    if reason == "round_not_over":
        return Conflict(ROUND_NOT_OVER, id=issue["id"], status=said, round=issue["round"])
    if reason == "only_sent_resends":
        return Conflict(ONLY_SENT_RESENDS, id=issue["id"], status=said)
    allowed = transition.allowed_from
    return Conflict(
        WRONG_STATE,
        id=issue["id"],
        status=said,
        doing=transition.doing,
        done=transition.done,
        allowed=Term(
            ko="·".join(f"'{words.issue_status(s)}'" for s in allowed), en=" or ".join(allowed)
        ),
    )


def result(action: str, issue: Any) -> str | None:
    """The state ``action`` leaves ``issue`` in (``None``: the issue is deleted)."""
    transition = TRANSITIONS[action]
    if transition.later_round_to is not None and issue["round"] > 1:
        return transition.later_round_to
    return transition.to


@dataclass(frozen=True)
class Offer:
    """An action the issue's state allows; ``refusal`` says why it still
    cannot be done now (no news items yet), ``None`` when it can."""

    action: str
    refusal: Conflict | None

    @property
    def possible(self) -> bool:
        return self.refusal is None


def allowed_from(status: str) -> tuple[str, ...]:
    """The actions a ``status`` allows, before looking at the issue's content."""
    return tuple(a for a, t in TRANSITIONS.items() if status in t.allowed_from)


def every_action(issue: Any) -> list[Offer]:
    """Every action in the table, each with why it cannot be done now (or ``None``)."""
    return [Offer(a, refusal(a, issue)) for a in ACTIONS]


def offers(issue: Any) -> list[Offer]:
    """Every action the issue's state allows, in the table's order."""
    return [Offer(a, refusal(a, issue)) for a in allowed_from(issue["status"])]
