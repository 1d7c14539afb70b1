"""Residents' English: every message has a translation, with the same placeholders."""

from __future__ import annotations

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from newsletter.core import i18n
from tests.conftest import ROOT

METHODS = [
    ("newsletter/**.py", "python"),
    ("templates/pages/**.html", "jinja2"),
    ("templates/email/_layout.*", "jinja2"),
    ("templates/email/confirm.*", "jinja2"),
    ("templates/email/notice.*", "jinja2"),
    ("templates/email/reconfirm.*", "jinja2"),
]


def english_catalog() -> Catalog:
    with (i18n.LOCALE_DIR / "en" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        return read_po(po, locale="en")


def test_every_message_is_translated_with_the_same_placeholders() -> None:
    found = {
        message
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT,
            METHODS,
            options_map={"templates/**": {"extensions": "jinja2.ext.i18n"}},
        )
        if isinstance(message, str)
    }
    assert len(found) > 100
    catalog = english_catalog()
    missing = sorted(m for m in found if not getattr(catalog.get(m), "string", None))
    assert missing == [], "run `make messages` and translate these:\n" + "\n".join(missing)
    problems = [(message.id, errors) for message, errors in catalog.check() if errors]
    assert problems == []
    stale = sorted(m.id for m in catalog if m.id and m.id not in found)
    assert stale == [], "no longer used; `make messages` marks them obsolete"


def test_the_language_a_reader_gets() -> None:
    assert i18n.pick(None, None) == "ko"
    assert i18n.pick(None, "en-US,en;q=0.9,ko;q=0.8") == "en"
    assert i18n.pick(None, "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7") == "ko"
    assert i18n.pick(None, "fr-FR,fr;q=0.9,en;q=0.5") == "en"
    assert i18n.pick(None, "fr, de") == "ko"  # neither: the city's language
    assert i18n.pick("en", "ko") == "en" and i18n.pick("ko", "en") == "ko"
    assert i18n.pick("xx", "en;q=bad, en-GB;q=0.3") == "en"
    assert i18n.gettext_for("en").gettext("구독 신청") == "Subscribe"
    assert i18n.gettext_for("ko").gettext("구독 신청") == "구독 신청"
