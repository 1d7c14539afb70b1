"""The residents' page shell: language, the city's identity, onward links.

Every public page is rendered through :func:`page`, which adds what
``templates/pages/base.html`` needs: the reader's language and its ``_``
(gettext), the city (from settings), the link to the other language and
``link()``, which keeps an explicit language choice on the links a page offers.
"""

from __future__ import annotations

import gettext
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from litestar import Request
from litestar.response import Template

from newsletter.core import i18n
from newsletter.core.settings import Settings

Link = dict[str, str]


@dataclass(frozen=True, slots=True)
class Reader:
    """Who is reading: their language, and whether they chose it themselves
    (then links carry ``?lang=``; otherwise the browser's choice keeps applying)."""

    language: str
    explicit: bool

    @property
    def translations(self) -> gettext.NullTranslations:
        return i18n.gettext_for(self.language)

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def link(self, path: str) -> str:
        if not self.explicit:
            return path
        return f"{path}{'&' if '?' in path else '?'}lang={self.language}"


def reader(request: Request[Any, Any, Any], fields: dict[str, Any] | None = None) -> Reader:
    """The reader's language: a form's ``lang`` field or ``?lang=``, else
    ``Accept-Language``, else Korean. Remembered for the rest of the request."""
    explicit = None
    if fields is not None and isinstance(fields.get("lang"), str):
        explicit = fields["lang"]
    explicit = explicit or request.query_params.get("lang")
    chosen = explicit if explicit in i18n.LANGUAGES else None
    found = Reader(
        i18n.pick(chosen, request.headers.get("accept-language")), explicit=chosen is not None
    )
    state = request.state  # a new wrapper of the scope's dict at each access
    if fields is not None or "reader" not in state:
        state.reader = found
    result: Reader = state.reader
    return result


def _switch(request: Request[Any, Any, Any], current: Reader) -> Link:
    other = "en" if current.language == "ko" else "ko"
    if request.method in ("GET", "HEAD"):
        query = [(k, v) for k, v in request.query_params.items() if k != "lang"]
        path = request.url.path
    else:  # a POST's answer cannot be asked for again; offer the archive instead
        query, path = [], "/archive"
    href = f"{path}?{urlencode([*query, ('lang', other)])}"
    return {"href": href, "label": i18n.NAMES[other], "lang": other}


def context(request: Request[Any, Any, Any], **values: Any) -> dict[str, Any]:
    settings: Settings = request.app.state.settings
    current: Reader = request.state.reader if "reader" in request.state else reader(request)
    translations = current.translations
    city = settings.city
    return {
        "lang": current.language,
        "_": translations.gettext,
        "gettext": translations.gettext,
        "ngettext": translations.ngettext,
        "city": city,
        "t": city.text(current.language),
        # Relative on pages (the mails use the absolute form).
        "logo_url": city.logo_url(""),
        "base_url": settings.base_url,
        "switch": _switch(request, current),
        "link": current.link,
        "embedded": False,
        "error": None,
        **values,
    }


def page(
    request: Request[Any, Any, Any], template: str, status: int = 200, **values: Any
) -> Template:
    return Template(template_name=template, context=context(request, **values), status_code=status)


def onward_links(request: Request[Any, Any, Any], *extra: Link) -> list[Link]:
    """Where a result page sends people next: what fits this result, then the
    archive and the city homepage."""
    current: Reader = request.state.reader if "reader" in request.state else reader(request)
    settings: Settings = request.app.state.settings
    _ = current.gettext
    name = settings.city.text(current.language).name
    return [
        *extra,
        {"href": current.link("/archive"), "label": _("지난 뉴스레터 보기")},
        {"href": settings.city.homepage, "label": _("%(city)s 누리집으로") % {"city": name}},
    ]


def message(
    request: Request[Any, Any, Any],
    heading: str,
    *paragraphs: str,
    status: int = 200,
    action: Link | None = None,
    onward: Sequence[Link] | None = None,
    embedded: bool = False,
) -> Template:
    """A result page: what happened, one main action if any, and onward links."""
    return page(
        request,
        "message.html",
        status,
        heading=heading,
        paragraphs=paragraphs,
        action=action,
        onward=list(onward) if onward is not None else onward_links(request),
        embedded=embedded,
    )
