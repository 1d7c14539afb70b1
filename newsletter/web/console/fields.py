"""Reading console form fields: text bounded in size, checkboxes, KST times."""

from __future__ import annotations

import html
import re
from datetime import date, datetime
from typing import Any

from litestar.datastructures import UploadFile

from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_

_TAG = re.compile(r"<[a-zA-Z/!]")


def text(form: Any, name: str, limit: int = 10_000) -> str:
    """A text field (the first one if repeated), cut to ``limit`` characters;
    the domain rejects what is really too long, this only bounds the work."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.replace("\x00", "")[: limit + 1]


def checked(form: Any, name: str) -> bool:
    return text(form, name, 10).lower() in ("on", "1", "true", "yes")


def upload(form: Any, name: str) -> UploadFile | None:
    value = form.get(name)
    if isinstance(value, UploadFile) and value.filename:
        return value
    return None


def local_datetime(value: str, field: str, *, required: bool = False) -> datetime | None:
    """A ``datetime-local`` field's value: naive, meaning the city's time zone."""
    cleaned = value.strip()
    if not cleaned:
        if required:
            raise InvalidInput(N_("날짜와 시각을 골라 주세요."), field=field)
        return None
    try:
        moment = datetime.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            N_("날짜와 시각을 달력에서 골라 주세요 (예: 2026-03-02 09:00)."), field=field
        ) from None
    if "T" not in cleaned and " " not in cleaned:
        raise InvalidInput(N_("날짜와 시각을 함께 골라 주세요."), field=field)
    return moment


def local_date(value: str, field: str) -> date | None:
    cleaned = value.strip()
    if not cleaned:
        return None
    try:
        return date.fromisoformat(cleaned)
    except ValueError:
        raise InvalidInput(
            N_("날짜를 달력에서 골라 주세요 (예: 2026-03-02)."), field=field
        ) from None


def body_html(value: str) -> str:
    """An editor's body as HTML: typed HTML as is (the sanitiser decides what
    stays), plain text as paragraphs, a single line break kept as <br>."""
    stripped = value.strip()
    if not stripped or _TAG.search(stripped):
        return stripped
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", stripped.replace("\r\n", "\n"))]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
        if p
    )
