"""Languages for residents: Korean first, English for those who read it better.

Messages are written in Korean in the code and templates (the message ids)
and translated in gettext catalogs under ``newsletter/locale/<lang>/LC_MESSAGES``
(``make messages`` extracts and updates them with Babel). The ``.po`` files
are the only thing committed: each is compiled in memory when first needed,
so a fresh clone, the image and the tests never see a stale ``.mo``.

What the city says to residents is translated (pages and transactional
mail), and the domain's error messages (``core.errors``), which the console
shows in Korean and the JSON API in English. An issue goes out in the
editors' language.
"""

from __future__ import annotations

import gettext
import io
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

DEFAULT = "ko"
LANGUAGES = ("ko", "en")
NAMES = {"ko": "한국어", "en": "English"}
LOCALE_DIR = Path(__file__).resolve().parents[1] / "locale"


def N_(message: str) -> str:
    """Mark a message for the catalogs where it is made; translated where shown."""
    return message


@dataclass(frozen=True)
class Term:
    """A value put into a message that is said differently in each language:
    a field is ``title`` to the API's clients and 제목 to the console."""

    ko: str
    en: str

    def said_in(self, language: str) -> str:
        return self.en if language == "en" else self.ko


Value = str | int | Term


@cache
def translations(language: str) -> gettext.NullTranslations:
    if language == DEFAULT or language not in LANGUAGES:
        return gettext.NullTranslations()
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    with po.open("rb") as source:
        catalog = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def gettext_for(language: str) -> gettext.NullTranslations:
    return translations(language if language in LANGUAGES else DEFAULT)


def say(message: str, language: str, values: Mapping[str, Value]) -> str:
    """A message id in ``language`` (``ko``, ``en``), its values filled in."""
    said = gettext_for(language).gettext(message)
    if not values:
        return said
    return said % {
        name: value.said_in(language) if isinstance(value, Term) else value
        for name, value in values.items()
    }


def pick(explicit: str | None, accept_language: str | None) -> str:
    """The reader's language: an explicit choice (the language link, a form's
    hidden field) wins, else the browser's ``Accept-Language`` by its q-values,
    else Korean."""
    if explicit in LANGUAGES:
        return explicit
    best, best_q = DEFAULT, 0.0
    for position, entry in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = entry.strip().partition(";")
        primary = tag.strip().lower().split("-")[0]
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        # Earlier entries win ties, as the header's order means preference too.
        q -= position * 1e-6
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best
