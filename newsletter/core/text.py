"""Text every store and format we use can carry.

PostgreSQL refuses NUL in text; an XML parser (mjml-python's among them)
refuses the non-characters U+FFFE and U+FFFF; UTF-8 cannot encode a lone
surrogate. Any of them in a title or a name once made an issue unsendable, so
every text input is checked (or cleaned, where the text comes from a feed)
with this one definition.
"""

from __future__ import annotations

import re

# NUL, the surrogates, and the 66 non-characters of Unicode (U+FDD0..U+FDEF
# and the last two code points of each of the 17 planes).
_UNFIT = re.compile(
    "[\x00\ud800-\udfff\ufdd0-\ufdef"
    + "".join(
        f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
    )
    + "]"
)
# The same rule for a JSON Schema / OpenAPI ``pattern`` (ECMA and Python regex
# alike; ECMA without the u flag sees UTF-16 units, so the BMP part is what it
# can state; the domain's check covers the other planes).
FIT_PATTERN = "^[^\\x00\\uD800-\\uDFFF\\uFDD0-\\uFDEF\\uFFFE\\uFFFF]*$"


def is_fit(value: str) -> bool:
    """True when ``value`` has no NUL, surrogate or non-character."""
    return _UNFIT.search(value) is None


def without_unfit(value: str) -> str:
    """``value`` with every NUL, surrogate and non-character removed."""
    return _UNFIT.sub("", value)
