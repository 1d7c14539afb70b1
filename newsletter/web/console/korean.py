"""Domain errors in Korean for the console.

News items and issues raise English messages (the JSON API's clients read
them); the console shows people the same facts in Korean. Messages the table
does not know keep a Korean lead-in with the original detail.
"""

from __future__ import annotations

import re

from newsletter.core.errors import Conflict, DomainError, InvalidInput, NotFound
from newsletter.ops import words

FIELDS = {
    "title": "제목",
    "summary": "요약",
    "body": "본문",
    "link": "링크",
    "image_url": "이미지 주소",
    "category": "분류",
    "published_at": "게시 일시",
    "intro": "머리말",
    "news_item_ids": "뉴스 항목",
    "send_at": "발송 일시",
    "addresses": "받는 주소",
    "url": "피드 주소",
    "feed": "피드",
    "file": "파일",
    "email": "이메일",
    "source": "동의 출처",
}

ACTIONS = {
    "update": "수정",
    "delete": "삭제",
    "schedule": "예약",
    "send": "발송",
    "pause": "일시 정지",
    "resume": "재개",
    "cancel": "취소",
    "unschedule": "예약 해제",
}

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^(\w+) must not be empty$"), "{field}을(를) 입력해 주세요."),
    (
        re.compile(r"^(\w+) is longer than (\d+) characters$"),
        "{field}은(는) {1}자 이하로 써 주세요.",
    ),
    (
        re.compile(r"^(\w+) contains control characters$"),
        "{field}에 쓸 수 없는 제어 문자가 있습니다.",
    ),
    (
        re.compile(r"^(\w+) must be an absolute http:// or https:// URL$"),
        "{field}은(는) http:// 또는 https://로 시작하는 전체 주소여야 합니다.",
    ),
    (re.compile(r"^(\w+) is not a valid URL$"), "{field}이(가) 올바른 주소가 아닙니다."),
    (
        re.compile(r"^(\w+) must not contain spaces or control characters$"),
        "{field}에 빈칸이나 제어 문자가 있으면 안 됩니다.",
    ),
    (
        re.compile(r"^send_at is in the past$"),
        "발송 일시가 이미 지났습니다. 앞으로의 시각을 골라 주세요.",
    ),
    (re.compile(r"^send_at is more than a year ahead$"), "발송 일시는 1년 안이어야 합니다."),
    (re.compile(r"^send_at needs a time of day"), "발송 날짜와 시각을 함께 골라 주세요."),
    (
        re.compile(r"^send_at must be an ISO 8601"),
        "발송 일시를 달력에서 골라 주세요 (예: 2026-03-02 09:00).",
    ),
    (
        re.compile(r"^issue \d+ has no news items yet"),
        "아직 뉴스 항목이 없습니다. 항목을 하나 이상 넣은 뒤 발송해 주세요.",
    ),
    (
        re.compile(r"^issue \d+ was sent and can no longer be changed$"),
        "이미 발송한 호는 바꿀 수 없습니다.",
    ),
    (
        re.compile(r"^cannot (\w+) issue \d+: it is (\w+); only a (.+) issue can be .+$"),
        "지금은 {action}할 수 없습니다. 이 호는 '{status}' 상태이고, "
        "{allowed} 상태인 호만 {action}할 수 있습니다.",
    ),
    (
        re.compile(r"^issue \d+ is still (\w+) \(round (\d+)\); a resend can start"),
        "아직 {1}차 발송이 끝나지 않았습니다 ('{status}'). 모든 메일의 결과가 나온 뒤에 "
        "다시 보낼 수 있습니다.",
    ),
    (
        re.compile(r"^cannot resend issue \d+: it is (\w+);"),
        "'{status}' 상태인 호는 다시 보낼 수 없습니다. 발송을 마친 호만 다시 보낼 수 있습니다.",
    ),
    (
        re.compile(r"^nothing to resend"),
        "다시 보낼 메일이 없습니다. 받는 사람 탓이 아닌 이유로 실패한 메일만 다시 보내며, "
        "반송·수신 거부·발송 제외된 주소에는 보내지 않습니다.",
    ),
    (
        re.compile(r"^news item \d+ is part of unsent issue\(s\) ([\d, ]+); remove it first$"),
        "아직 발송하지 않은 호(번호 {0})에 들어 있는 항목입니다. 그 호에서 먼저 빼 주세요.",
    ),
    (
        re.compile(r"^a news item with link (.+) already exists$"),
        "같은 링크의 뉴스 항목이 이미 있습니다: {0}",
    ),
    (
        re.compile(r"^another news item already has link (.+)$"),
        "같은 링크의 다른 뉴스 항목이 있습니다: {0}",
    ),
    (re.compile(r"^unknown news item id\(s\): (.+)$"), "없는 뉴스 항목입니다: {0}"),
    (
        re.compile(r"^an issue holds at most (\d+) news items$"),
        "한 호에는 뉴스 항목을 {0}개까지 넣을 수 있습니다.",
    ),
    (
        re.compile(r"^news_item_ids lists an item twice$"),
        "같은 뉴스 항목을 두 번 넣을 수 없습니다.",
    ),
    (re.compile(r"^could not fetch the feed"), "피드를 가져오지 못했습니다. 주소를 확인해 주세요."),
    (re.compile(r"^the feed is larger than (\d+) MB$"), "피드가 {0} MB보다 큽니다."),
    (re.compile(r"^the feed is empty$"), "피드가 비어 있습니다."),
    (
        re.compile(r"^this is not a readable RSS or Atom feed$"),
        "RSS나 Atom 피드로 읽을 수 없는 내용입니다.",
    ),
    (re.compile(r"^the feed has more than (\d+) entries$"), "피드의 항목이 {0}개를 넘습니다."),
    (
        re.compile(r"^the feed redirected to a non-http\(s\) URL$"),
        "피드 주소가 http(s)가 아닌 곳으로 넘어갑니다.",
    ),
    (
        re.compile(r"^entry has no link to de-duplicate by$"),
        "링크가 없는 항목이라 중복을 가릴 수 없어 건너뜁니다.",
    ),
    (
        re.compile(r"^the header row has no e-mail column"),
        "머리글 줄에 이메일 열이 없습니다. 첫 줄에 ‘email’ 또는 ‘이메일’ 열을 넣어 주세요.",
    ),
    (re.compile(r"^the file is empty$"), "빈 파일입니다."),
    (
        re.compile(r"^this is a spreadsheet file"),
        "엑셀 같은 스프레드시트 파일입니다. 엑셀에서 ‘CSV UTF-8’로 저장한 파일을 올려 주세요.",
    ),
    (
        re.compile(r"^no (issue|news item) (\d+)$"),
        "해당 항목이 없습니다. 이미 지워졌을 수 있습니다.",
    ),
    (
        re.compile(r"^test-send goes to at most (\d+) addresses$"),
        "테스트 메일은 {0}곳까지 보낼 수 있습니다.",
    ),
]


def _status_list(text: str) -> str:
    names = [words.issue_status(s.strip()) for s in text.split(" or ")]
    return "·".join(f"'{n}'" for n in names)


def translate(detail: str) -> str | None:
    for pattern, template in _PATTERNS:
        match = pattern.match(detail)
        if match is None:
            continue
        groups = match.groups()
        field = FIELDS.get(groups[0], groups[0]) if groups else ""
        if "{action}" in template:
            return template.format(
                action=ACTIONS.get(groups[0], groups[0]),
                status=words.issue_status(groups[1]),
                allowed=_status_list(groups[2]),
            )
        status = words.issue_status(groups[0]) if "{status}" in template else ""
        return template.format(*groups, field=field, status=status)
    return None


def explain(exc: DomainError) -> str:
    """The Korean sentence for a domain error (its own text if already Korean)."""
    lead = {
        InvalidInput: "입력값을 확인해 주세요",
        NotFound: "찾을 수 없습니다",
        Conflict: "지금 상태에서는 할 수 없습니다",
    }.get(type(exc), "처리할 수 없습니다")
    return in_korean(exc.detail, lead)


def in_korean(detail: str, lead: str = "처리할 수 없습니다") -> str:
    """A domain message kept for later (an import job's failure) in Korean."""
    if re.search(r"[가-힣]", detail) and not re.match(r"^[a-z]", detail):
        return detail
    known = translate(detail)
    if known is not None:
        return known
    return f"{lead}: {detail}"


def feed_reason(reason: str) -> str:
    """Why a feed entry cannot be imported, in Korean (the feed reader says it in English)."""
    return translate(reason) or f"가져올 수 없는 항목입니다: {reason}"


_IMPORT_REASONS = [
    (
        "address is on the suppression list",
        "발송 제외 목록에 있는 주소입니다 (삭제·반송·신고). 가져오기로 되살릴 수 없습니다.",
    ),
    (
        "this resident left and their data was destroyed",
        "탈퇴 후 개인정보를 파기한 주민입니다. 본인만 다시 구독할 수 있습니다.",
    ),
    ("this resident unsubscribed", "수신을 거부한 주민입니다. 본인만 다시 구독할 수 있습니다."),
    (
        "subscription lapsed",
        "동의를 다시 확인하지 않아 만료된 구독입니다. 본인만 되살릴 수 있습니다.",
    ),
    ("line longer than", "줄이 너무 깁니다."),
    ("malformed CSV", "CSV 형식이 깨진 줄입니다."),
    ("missing columns", "열 수가 머리글과 다릅니다."),
    ("characters that are not valid", "글자 인코딩이 맞지 않는 줄입니다."),
]


def import_reason(reason: str) -> str:
    """A line of the import report in Korean (already-Korean reasons pass through)."""
    if reason.startswith("invalid e-mail address: "):
        return "잘못된 이메일 주소: " + reason.removeprefix("invalid e-mail address: ")
    unclosed = re.match(r"unclosed quote: lines (\d+) to (\d+)", reason)
    if unclosed:
        return (
            f'따옴표(")가 닫히지 않아 {unclosed[1]}번째 줄부터 {unclosed[2]}번째 줄까지가 '
            "한 줄로 읽혔습니다. 따옴표를 고친 뒤 다시 가져오세요 (이미 들어간 주소는 "
            "그대로 둡니다)."
        )
    for prefix, korean in _IMPORT_REASONS:
        if reason.startswith(prefix):
            return korean
    return reason
