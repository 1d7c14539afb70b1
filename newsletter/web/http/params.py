"""Parameter types every route shares, bounded to what PostgreSQL can hold.

An id beyond bigint or a NUL character (PostgreSQL refuses it in text) would
otherwise reach asyncpg and come back as a 500; declared here, Litestar turns
them into our 422 before a handler runs, and the OpenAPI document states the
limits for clients and the schemathesis test.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.params import PathParameter, QueryParameter

from newsletter.core.kinds import MAX_ID

NO_NUL = "^[^\\x00]*$"  # ECMA and Python regex alike: any text without NUL

RowId = Annotated[int, PathParameter(ge=1, le=MAX_ID, description="row id")]
AfterId = Annotated[
    int, QueryParameter(ge=0, le=MAX_ID, description="the previous page's next_after")
]

BeforeId = Annotated[
    int, QueryParameter(ge=1, le=MAX_ID, description="the previous page's next_before")
]
ChosenId = Annotated[int | None, QueryParameter(ge=1, le=MAX_ID, description="row id")]
PageNumber = Annotated[int, QueryParameter(ge=1, le=10_000, description="page, from 1")]

QueryText = Annotated[str | None, QueryParameter(pattern=NO_NUL, max_length=500)]


def form_id(value: object) -> int | None:
    """A row id from a form field (forms are not typed parameters), or None.

    ASCII digits only: ``str.isdigit`` also accepts "²", which ``int`` refuses.
    """
    if not isinstance(value, str) or not (value.isascii() and value.isdigit()) or len(value) > 19:
        return None
    number = int(value)
    return number if 1 <= number <= MAX_ID else None


def body_text(max_length: int, description: str | None = None) -> msgspec.Meta:
    """The constraint for a text field of a JSON body: bounded, no NUL."""
    return msgspec.Meta(max_length=max_length, pattern=NO_NUL, description=description)
