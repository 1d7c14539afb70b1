"""The Korean words people read for the service's states and codes.

One table per kind of state, used by the console pages and by ``newsletter
status`` alike, so an issue is "발송 중" wherever someone on duty looks at it.
The English database values stay in the API (clients are written against
them); these are for people.
"""

from __future__ import annotations

ISSUE_STATUS = {
    "draft": "초안",
    "scheduled": "예약됨",
    "sending": "발송 중",
    "paused": "일시 정지",
    "sent": "발송 완료",
    "cancelled": "취소됨",
}

# What each issue state means for the person looking at it.
ISSUE_STATUS_HINT = {
    "draft": "아직 발송하지 않았습니다. 내용을 고칠 수 있습니다.",
    "scheduled": "예약한 시각에 자동으로 발송을 시작합니다.",
    "sending": "구독자에게 보내는 중입니다.",
    "paused": "발송을 멈췄습니다. 재개할 때까지 아무것도 나가지 않습니다.",
    "sent": "모두 처리했습니다. 발송한 호는 바꿀 수 없습니다.",
    "cancelled": "취소했습니다. 남은 메일은 보내지 않습니다.",
}

DELIVERY_STATUS = {
    "queued": "대기",
    "sending": "전송 중",
    "sent": "보냄",
    "failed": "실패",
    "bounced": "반송",
    "skipped": "건너뜀",
}

DELIVERY_STATUS_HINT = {
    "queued": "아직 보내지 않았거나, 일시적인 오류 뒤 다시 보내려고 기다리는 메일",
    "sending": "작업자가 지금 메일 서버에 넘기고 있는 메일",
    "sent": "받는 쪽 메일 서버가 받아 간 메일",
    "failed": "받는 쪽 서버가 거절했거나 재시도 횟수를 다 쓴 메일",
    "bounced": "받아 간 뒤에 반송 통지(DSN)가 돌아온 메일",
    "skipped": "그사이 수신 거부, 삭제, 발송 제외되었거나 발송 취소로 보내지 않은 메일",
}

SUBSCRIBER_STATUS = {
    "pending": "확인 대기",
    "active": "구독 중",
    "unsubscribed": "수신 거부",
    "suppressed": "발송 제외",
    "lapsed": "동의 만료",
}

CONSENT_KIND = {
    "signup": "구독 신청",
    "confirm": "수신 동의 확인",
    "unsubscribe": "수신 거부",
    "import": "명단 가져오기 (동의 확인됨)",
    "invite": "명단 가져오기 (확인 메일 발송)",
    "reconfirm": "수신 동의 재확인",
    "lapse": "동의 만료 (재확인 없음)",
}

ROLE = {"editor": "편집자", "ops": "운영 담당", "admin": "관리자"}

# "시도" on the ops pages: what the figure counts, said once where it is shown.
ATTEMPTS_HINT = (
    "메일 서버에 전달을 시도한 횟수의 합계입니다. 일시적인 오류로 다시 보낸 횟수가 "
    "포함되므로 수신자 수보다 클 수 있습니다."
)


def issue_status(status: str) -> str:
    return ISSUE_STATUS.get(status, status)


def delivery_status(status: str) -> str:
    return DELIVERY_STATUS.get(status, status)


def subscriber_status(status: str) -> str:
    return SUBSCRIBER_STATUS.get(status, status)


def consent_kind(kind: str) -> str:
    return CONSENT_KIND.get(kind, kind)


def role(name: str) -> str:
    return ROLE.get(name, name)


def explain_code(code: int | None) -> str:
    """An SMTP reply code in words for whoever is on duty."""
    if code is None:
        return "메일 서버와 연결하지 못함 (연결 실패 또는 시간 초과)"
    if 400 <= code < 500:
        return "일시적인 거절 — 자동으로 다시 보냅니다"
    if code in (550, 551, 553):
        return "영구 거절 — 없는 주소이거나 받지 않는 주소"
    if code == 552:
        return "영구 거절 — 받은편지함이 가득 찼거나 메일이 너무 큼"
    if 500 <= code < 600:
        return "받는 쪽 서버의 영구 거절"
    return "예상하지 못한 응답"
