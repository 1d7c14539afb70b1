"""Domain exceptions. The web layer maps each to one HTTP answer (see app.py).

A message is written in Korean where it is raised and marked there with
``N_`` (``newsletter.core.i18n``): it is the catalogs' message id, as on the
residents' pages, and ``make messages`` collects it. Values go in as
``%(name)s`` placeholders, never formatted into the id; a value said
differently in each language (a field's name) is a
:class:`~newsletter.core.i18n.Term`. The console shows :meth:`DomainError.text` in
Korean; the JSON API and the command line say :attr:`DomainError.detail`,
the English catalog's wording. A message nobody has translated yet (written
in Korean without ``N_``) reads the same in both.
"""

from __future__ import annotations

from newsletter.core import i18n

Value = str | int | i18n.Term

# What the console calls the fields the API names (a message's %(field)s).
FIELD_NAMES = {
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
        translations = i18n.gettext_for(language)
        said = translations.gettext(self.message)
        if not self.values:
            return said
        return said % {
            name: value.said_in(language) if isinstance(value, i18n.Term) else value
            for name, value in self.values.items()
        }

    @property
    def detail(self) -> str:
        return self.text("en")

    def __str__(self) -> str:
        return self.detail


class InvalidInput(DomainError):
    code = "invalid_input"
    status = 422

    def __init__(self, message: str, /, *, field: str | None = None, **values: Value) -> None:
        super().__init__(message, **values)
        self.field = field


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
