"""``ETag`` out, ``If-Match`` in: the API's side of draft versions
(:mod:`newsletter.editorial.versions`)."""

from __future__ import annotations

from typing import Annotated

from litestar.params import HeaderParameter

from newsletter.core.db import Record
from newsletter.editorial.versions import version_of

IfMatch = Annotated[
    str | None,
    HeaderParameter(
        name="If-Match",
        description="the ETag of the version you read; a stale one gets 412 and changes nothing",
        max_length=2000,
        required=False,
    ),
]


def etag(row: Record) -> dict[str, str]:
    """The response header naming the row's version (a strong entity tag)."""
    return {"ETag": f'"{version_of(row)}"'}


def expected_versions(if_match: str | None) -> set[str] | None:
    """The versions an ``If-Match`` accepts; None: any (no header, or ``*``).

    If-Match compares strongly (RFC 9110 13.1.1): a weak tag (W/"…") never
    matches, so a header of only weak tags accepts nothing."""
    if if_match is None or if_match.strip() == "*":
        return None
    tags = (tag.strip() for tag in if_match.split(","))
    return {tag[1:-1] for tag in tags if len(tag) >= 2 and tag[0] == tag[-1] == '"'}
