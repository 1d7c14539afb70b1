"""Who sends the newsletter: the city's public identity, shown on every page and mail.

Residents decide whether a page or a mail is really from their city by what
it shows: name, logo, department, address, phone, the privacy policy. None of
that is written into templates; it comes from here. The defaults are Gimpo's
public details; another city points ``NEWSLETTER_CITY_FILE`` at a TOML file
(see README) with its own, in Korean and, under ``[en]``, in English.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from newsletter.core import paths

# The image formats a mail client shows; SVG is left out on purpose (Gmail and
# Outlook drop it), so a city's logo file is one of these.
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif"}
MAX_LOGO_BYTES = 512 * 1024
DEFAULT_LOGO = paths.STATIC_DIR / "city" / "logo.png"


class CityFileError(ValueError):
    """The city file is unreadable or names something that cannot be used."""


@dataclass(frozen=True, slots=True)
class CityText:
    """The words that change with the reader's language."""

    name: str
    newsletter: str  # what the newsletter is called, e.g. "김포시 뉴스레터"
    department: str
    address: str
    logo_alt: str
    collection_refusal: str  # the e-mail collection refusal notice (이메일무단수집거부)


@dataclass(frozen=True, slots=True)
class City:
    homepage: str
    phone: str
    privacy_url: str
    # A file (served by us at /city/logo) or an https URL; see ``logo_url``.
    logo: str
    ko: CityText
    en: CityText
    logo_file: Path | None = field(default=None, compare=False)

    def text(self, language: str) -> CityText:
        return self.en if language == "en" else self.ko

    def logo_url(self, base_url: str) -> str:
        """Absolute, so it works in a mail as well as on a page."""
        return f"{base_url}/city/logo" if self.logo_file is not None else self.logo


GIMPO = City(
    homepage="https://www.gimpo.go.kr",
    phone="031-980-2114",
    # Set the exact 개인정보처리방침 page with NEWSLETTER_CITY_FILE; the
    # homepage links it from every page footer.
    privacy_url="https://www.gimpo.go.kr",
    logo=str(DEFAULT_LOGO),
    logo_file=DEFAULT_LOGO,
    ko=CityText(
        name="김포시",
        newsletter="김포시 뉴스레터",
        department="김포시청 공보담당관실",
        address="(10099) 경기도 김포시 사우중로 1",
        logo_alt="김포시",
        collection_refusal=(
            "이 누리집과 메일에 적힌 이메일 주소를 전자우편 수집 프로그램이나 그 밖의 기술적 "
            "장치로 무단 수집하는 것을 거부하며, 이를 어기면 「정보통신망법」에 따라 처벌받을 "
            "수 있습니다."
        ),
    ),
    en=CityText(
        name="Gimpo City",
        newsletter="Gimpo City Newsletter",
        department="Public Relations Office, Gimpo City Hall",
        address="1 Saujung-ro, Gimpo-si, Gyeonggi-do 10099, Republic of Korea",
        logo_alt="Gimpo City",
        collection_refusal=(
            "We refuse the unauthorised collection of the e-mail addresses on this site and in "
            "this mail by harvesting programs or other technical means; doing so is punishable "
            "under Korea's Network Act."
        ),
    ),
)


def load(path: Path) -> City:
    """The city as ``path`` describes it; anything left out keeps Gimpo's value
    only where it is not identifying (a city must give its own name, homepage,
    phone, privacy policy and logo)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CityFileError(f"cannot read {path}: {exc}") from None
    for key in ("name", "homepage", "phone", "privacy_url", "logo", "department", "address"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise CityFileError(f"{path}: '{key}' is required (text)")
    for key in ("homepage", "privacy_url"):
        _check_url(path, key, data[key])
    logo, logo_file = _logo(path, data["logo"])
    english: dict[str, Any] = data.get("en", {})
    if not isinstance(english, dict):
        raise CityFileError(f"{path}: [en] must be a table")
    ko = CityText(
        name=data["name"],
        newsletter=data.get("newsletter") or f"{data['name']} 뉴스레터",
        department=data["department"],
        address=data["address"],
        logo_alt=data.get("logo_alt") or data["name"],
        collection_refusal=data.get("collection_refusal") or GIMPO.ko.collection_refusal,
    )
    en = dataclasses.replace(
        ko,
        **{k: v for k, v in english.items() if k in CityText.__slots__ and isinstance(v, str)},
    )
    if "newsletter" not in english and "name" in english:
        en = dataclasses.replace(en, newsletter=f"{english['name']} Newsletter")
    if "collection_refusal" not in english:
        en = dataclasses.replace(en, collection_refusal=GIMPO.en.collection_refusal)
    return City(
        homepage=data["homepage"].rstrip("/"),
        phone=data["phone"],
        privacy_url=data["privacy_url"],
        logo=logo,
        logo_file=logo_file,
        ko=ko,
        en=en,
    )


def _check_url(path: Path, key: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CityFileError(f"{path}: '{key}' must be an http(s) URL, got {value!r}")


def _logo(path: Path, value: str) -> tuple[str, Path | None]:
    if value.startswith(("http://", "https://")):
        _check_url(path, "logo", value)
        return value, None
    logo = (path.parent / value).resolve()
    if logo.suffix.lower() not in LOGO_TYPES:
        raise CityFileError(f"{path}: logo must be PNG, JPEG or GIF (mail clients drop SVG)")
    if not logo.is_file():
        raise CityFileError(f"{path}: logo file {logo} does not exist")
    if logo.stat().st_size > MAX_LOGO_BYTES:
        raise CityFileError(f"{path}: logo file is over {MAX_LOGO_BYTES // 1024} KB")
    return str(logo), logo
