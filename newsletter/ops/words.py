"""The Korean words people read for the service's states and codes.

One table per kind of state, used by the console pages and by ``newsletter
status`` alike, so an issue is "발송 중" wherever someone on duty looks at it.
The English database values stay in the API (clients are written against
them); these are for people.
"""

from __future__ import annotations

from newsletter.core import replies
from newsletter.ops import access_log

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
    "sent": "받는 쪽 메일 서버가 받아 감",
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

# How long server trouble may last before a delivery is failed, as people say
# it (delivery.claim.DELIVERY_MAX_AGE_SECONDS; a test keeps the two in step).
MAX_AGE_WORDS = "3일"

# Why a delivery did not arrive, or not yet: the delivery record's reason
# codes (ops.delivery_record decides which one a delivery has; a refusal's is
# core.replies.Reply.refusal).
DELIVERY_REASON: dict[str, str] = {
    # failed: the recipient's server said no (5xx to RCPT or DATA)
    "mailbox_unknown": "없는 메일 주소 (받는 서버가 모르는 주소라고 답함)",
    "mailbox_full": "받는 사람의 메일함이 가득 참",
    "refused_policy": "받는 서버가 정책상 거절 (스팸 차단 등)",
    "message_too_big": "메일이 받는 서버의 크기 제한을 넘음",
    "refused": "받는 서버가 메일을 거절함",
    # failed: temporary refusals until MAX_ATTEMPTS
    "temporary_refusals": "일시 거절이 계속되어 정해진 횟수만큼 시도한 뒤 포기",
    # failed, not the recipient's doing (resendable)
    "sender_refused": "중계 서버가 우리 발신 주소를 거절 (우리 쪽 설정 문제)",
    "relay_unreachable": f"중계 서버에 연결하지 못한 채 {MAX_AGE_WORDS}이 지나 포기",
    "relay_refused": f"중계 서버가 우리를 거절(인증·EHLO)한 채 {MAX_AGE_WORDS}이 지나 포기",
    "relay_busy": f"중계 서버의 지연·속도 제한이 {MAX_AGE_WORDS} 동안 계속되어 포기",
    # bounced: accepted, then a delivery status notification came back
    "bounced_unknown": "보낸 뒤 반송됨: 없는 메일 주소",
    "bounced_soft": "보낸 뒤 반송됨: 일시적 문제 (메일함 가득 참 등)",
    # skipped: never handed to SMTP
    "unsubscribed": "발송 중에 수신 거부함",
    "suppressed": "반송이 거듭되어 수신이 중지된 주소",
    "erased": "개인정보 삭제 요청으로 지워진 구독자",
    "lapsed": "재동의가 없어 구독이 만료됨",
    "pending": "구독 확인 전인 주소",
    "cancelled": "발송이 취소되어 보내지 않음",
    # deferred: waiting to be tried again
    "waiting_relay": "중계 서버 문제로 미뤄 둠 (받는 사람의 시도 횟수에는 넣지 않음)",
    "waiting_retry": "일시 거절되어 다시 시도할 때를 기다림",
    "unknown": "사유가 기록되지 않음",
}

# What each audit trail entry records (the console's 변경 기록 page).
AUDIT_ACTION = {
    "api_key.create": "API 키 만들기",
    "api_key.revoke": "API 키 폐기",
    "bounce.apply": "반송 처리",
    "deliveries.export": "발송 기록 내려받기",
    "deliveries.read": "발송 기록 열람 (API)",
    "issue.create": "호 만들기",
    "issue.update": "호 고치기",
    "issue.delete": "초안 지우기",
    "issue.test_send": "테스트 발송",
    "issue.schedule": "발송 예약",
    "issue.unschedule": "예약 해제",
    "issue.send_now": "지금 발송",
    "issue.start": "예약 발송 시작",
    "issue.start_failed": "예약 발송을 시작하지 못해 초안으로 되돌림",
    "issue.pause": "발송 일시 정지",
    "issue.resume": "발송 재개",
    "issue.cancel": "발송 취소",
    "issue.resend": "다시 보내기",
    "lifecycle.daily": "매일 동의 관리 (만료·재확인·파기)",
    "media.upload": "이미지 올리기",
    "news_item.create": "뉴스 항목 쓰기",
    "news_item.update": "뉴스 항목 고치기",
    "news_item.delete": "뉴스 항목 지우기",
    "news_item.import_feed": "피드에서 뉴스 가져오기",
    "subscriber.erase": "구독자 개인정보 삭제",
    "subscribers.export": "구독자 명단 내려받기",
    "subscribers.import.confirmed": "구독자 명단 가져오기 (동의 확인됨)",
    "subscribers.import.invite": "구독자 명단 가져오기 (확인 메일 발송)",
    "unsubscribe.mailto": "메일로 수신 거부",
    "user.create": "계정 만들기",
    "user.disable": "계정 사용 중지",
    "user.enable": "계정 다시 사용",
    "user.login": "로그인",
    "user.logout": "로그아웃",
    "user.password_change": "비밀번호 바꾸기",
    "user.password_reset": "비밀번호 초기화",
    "user.role": "역할 바꾸기",
    "user.sso_link": "SSO 계정 연결",
    "user.totp_enrol": "2단계 인증 등록",
    "user.totp_remove": "2단계 인증 해제",
    "user.totp_required": "2단계 인증 요구 변경",
}

# "시도" on the ops pages: what the figure counts, said once where it is shown.
ATTEMPTS_HINT = (
    "메일 서버에 전달을 시도한 횟수의 합계입니다. 일시적인 오류로 다시 보낸 횟수가 "
    "포함되므로 수신자 수보다 클 수 있습니다."
)


# A relay's circuit breaker, as the console and `newsletter status` say it.
RELAY_STATE = {
    "closed": "정상 — 메일을 받아 감",
    "open": "연결 거부 — 잠시 뒤 한 번씩 다시 시도",
    "half-open": "다시 시도하는 중",
}

# Why the send rate is below RATE_PER_SECOND (the relay's own words follow, in English).
RATE_LOWERED = "메일 서버가 속도를 늦추라고 해서 낮춤 (받아 주는 동안 조금씩 다시 올림)"
RATE_AT_CEILING = "설정한 한도 그대로"


def relay_state(state: str) -> str:
    return RELAY_STATE.get(state, state)


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


def audit_action(action: str) -> str:
    """An audit entry's action for people; one not in the tables keeps its code."""
    what = action.removeprefix("personal_data.read.")
    if what != action:  # the access log's own words for what was read
        return f"개인정보 열람: {access_log.ACTIONS.get(what, what)}"
    return AUDIT_ACTION.get(action, action)


def explain_code(code: int | None) -> str:
    """An SMTP reply code alone in words (``newsletter status`` groups by code);
    a permanent refusal says what the delivery record says of it."""
    if code is None:
        return "메일 서버와 연결하지 못함 (연결 실패 또는 시간 초과)"
    if 400 <= code < 500:
        return "일시적인 거절 — 자동으로 다시 보냅니다"
    if 500 <= code < 600:
        return DELIVERY_REASON[replies.parse(code).refusal]
    return "예상하지 못한 응답"
