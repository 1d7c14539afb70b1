"""Domain errors and import reports in Korean for the console.

A domain error carries its Korean message (core/errors.py), which the console
shows as it is; the JSON API says the same fact in English.
"""

from __future__ import annotations

import re

from newsletter.core.errors import DomainError


def explain(exc: DomainError) -> str:
    """The Korean sentence for a domain error: its message as raised (the
    catalogs' Korean id, see core/errors.py)."""
    return exc.text("ko")


def in_korean(detail: str) -> str:
    """A domain message kept for later as English text (an import job's
    failure): shown as kept, after a Korean lead-in unless already Korean."""
    if re.search(r"[가-힣]", detail) and not re.match(r"^[a-z]", detail):
        return detail
    return f"처리할 수 없습니다: {detail}"


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
