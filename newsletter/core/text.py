"""Text every store and format we use can carry.

PostgreSQL refuses NUL in text; an XML parser (mjml-python's among them)
refuses the other C0 controls but tab, newline and carriage return, and the
non-characters U+FFFE and U+FFFF; UTF-8 cannot encode a lone surrogate. Any
of them in a title or a name once made an issue unsendable, so every text
input is checked (or cleaned, where the text comes from a feed or a
sanitiser that decodes ``&#xFFFF;``) with this one definition.
"""

from __future__ import annotations

import re

# What XML 1.0 refuses (C0 controls but tab, LF and CR; surrogates; U+FFFE,
# U+FFFF) and the other non-characters of Unicode (U+FDD0..U+FDEF and the
# last two code points of each plane).
_UNFIT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufdd0-\ufdef"
    + "".join(
        f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
    )
    + "]"
)


def is_fit(value: str) -> bool:
    """True when ``value`` has no NUL (nor other C0 control but tab, LF, CR),
    surrogate or non-character."""
    return _UNFIT.search(value) is None


def without_unfit(value: str) -> str:
    """``value`` without any of what :func:`is_fit` refuses."""
    return _UNFIT.sub("", value)
