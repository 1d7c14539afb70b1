"""Domain exceptions. The web layer maps each to one HTTP answer (see app.py).

A message is written in Korean where it is raised and marked there with
``N_`` (``newsletter.core.i18n``): it is the catalogs' message id, as on the
residents' pages, and ``make messages`` collects it. Values go in as
``%(name)s`` placeholders, never formatted into the id; a value said
differently in each language (a field's name) is a
:class:`~newsletter.core.i18n.Term`. The console shows :meth:`DomainError.text` in
Korean; the JSON API and the command line say :attr:`DomainError.detail`,
the English catalog's wording. tests/core/test_error_messages.py fails on a
domain error raised with anything but an ``N_`` mark (or a constant made by
one), so no bare Korean or English reaches the wrong reader.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from newsletter.core import i18n
from newsletter.core.i18n import N_

Value = i18n.Value

# What the console calls the fields the API names (a message's %(field)s).
FIELD_NAMES = {
    "title": "제목",
    "summary": "요약",
    "body": "본문",
    "link": "링크",
    "image_url": "이미지 주소",
    "image_alt": "이미지 대체 텍스트",
    "image_caption": "이미지 설명",
    "greeting": "인사말",
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
    "status": "상태",
    "role": "역할",
    "mode": "방식",
    "name": "이름",
    "limit": "개수",
    "per_page": "쪽당 개수",
    "page": "쪽 번호",
    "after": "시작 번호",
    "email_prefix": "주소 앞부분",
}


def field_name(field: str) -> i18n.Term:
    return i18n.Term(ko=FIELD_NAMES.get(field, field), en=field)


class DomainError(Exception):
    """Base: ``code`` is the machine-readable error, ``detail`` the English text."""

    code = "error"
    status = 400

    def __init__(self, message: str, /, **values: Value) -> None:
        super().__init__(message)
        self.message = message
        self.values = values

    def text(self, language: str) -> str:
        """The message in ``language`` (``ko``, ``en``), its values filled in."""
        return i18n.say(self.message, language, self.values)

    @property
    def detail(self) -> str:
        return self.text("en")

    def more(self, language: str) -> dict[str, Any]:
        """Fields the JSON answer carries beside ``error`` and ``detail``."""
        return {}

    def __str__(self) -> str:
        return self.detail


class InvalidInput(DomainError):
    code = "invalid_input"
    status = 422

    def __init__(self, message: str, /, *, field: str | None = None, **values: Value) -> None:
        super().__init__(message, **values)
        self.field = field

    @classmethod
    def one_of(cls, field: str, choices: Iterable[str]) -> InvalidInput:
        """``field`` is none of the values it can take."""
        return cls(
            N_("%(name)s은(는) %(choices)s 중 하나여야 합니다."),
            field=field,
            name=field_name(field),
            choices=", ".join(choices),
        )

    @classmethod
    def out_of_range(cls, field: str, low: int, high: int) -> InvalidInput:
        return cls(
            N_("%(name)s은(는) %(low)s부터 %(high)s까지의 수여야 합니다."),
            field=field,
            name=field_name(field),
            low=low,
            high=high,
        )


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


@dataclass(frozen=True)
class Named:
    """One thing an error names: its id, its sentence in each language, where."""

    id: str
    sentence: i18n.Term
    where: Mapping[str, Any] | None = None


class OpenProblems(Conflict):
    """Schedule or send-now refused: the pre-send check has problems open.
    The JSON answer lists them (``problems``: id, detail, where)."""

    code = "open_problems"

    def __init__(self, message: str, /, *, named: Sequence[Named], **values: Value) -> None:
        super().__init__(message, **values)
        self.named = list(named)

    def more(self, language: str) -> dict[str, Any]:
        return {
            "problems": [
                {"id": p.id, "detail": p.sentence.said_in(language), "where": p.where}
                for p in self.named
            ]
        }


class Stale(DomainError):
    """Someone else changed it since the writer read it (an ``If-Match`` or
    the console form's version no longer matches); nothing was written."""

    code = "precondition_failed"
    status = 412

    def __init__(
        self,
        message: str,
        /,
        *,
        changed_by: str,
        changed_at: datetime,
        current: str,
        **values: Value,
    ) -> None:
        super().__init__(message, **values)
        self.changed_by = changed_by
        self.changed_at = changed_at
        self.current = current  # the version the row has now


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
