"""A large file upload streamed to disk as it arrives, with the form's small
fields beside it: the roster CSV through the API and through the console.

``request.form()`` would hold the whole file in memory first; a million-row
list is some 70 MB, so the multipart body is parsed chunk by chunk and the
file part written to a spooled temporary file (memory stays flat).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from typing import IO, Any

from litestar import Request
from python_multipart import MultipartParser
from python_multipart.multipart import parse_options_header

from newsletter.web.http.forms import MAX_FORM_FIELDS

SPOOL_IN_MEMORY = 8 * 1024 * 1024  # bigger uploads spill to a temporary file
FIELD_LIMIT = 4096  # each small field (mode, source, token): more is cut off


class MalformedUpload(ValueError):
    """The multipart body cannot be read (no boundary, broken framing)."""


@dataclass
class Upload:
    """The streamed file (at its start) and the small fields, first value each."""

    file: IO[bytes]
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None  # None: the body had no part for the file
    size: int = 0


def spool() -> IO[bytes]:
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)


def content_type(request: Request[Any, Any, Any]) -> tuple[bytes, dict[bytes, bytes]]:
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    return kind, options


async def stream_multipart(request: Request[Any, Any, Any], file_field: str = "file") -> Upload:
    """Read a ``multipart/form-data`` body: the first ``file_field`` part goes to
    a spooled file, every other part is kept as a short text field. The caller
    closes ``Upload.file``; on an error it is closed here."""
    kind, options = content_type(request)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise MalformedUpload("not a multipart/form-data body with a boundary")
    upload = Upload(spool())
    wanted = file_field.encode()
    part: dict[str, Any] = {"header": b"", "value": b"", "name": b"", "filename": b"", "buf": b""}

    def on_part_begin() -> None:
        part.update(name=b"", filename=b"", buf=b"", count=part.get("count", 0) + 1)
        if part["count"] > MAX_FORM_FIELDS:
            raise MalformedUpload(f"a form may have at most {MAX_FORM_FIELDS} parts")

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part["header"] += data[start:end]
        if len(part["header"]) > FIELD_LIMIT:
            raise MalformedUpload("a part's header is too long")

    def on_header_value(data: bytes, start: int, end: int) -> None:
        part["value"] += data[start:end]
        if len(part["value"]) > FIELD_LIMIT:
            raise MalformedUpload("a part's header is too long")

    def on_header_end() -> None:
        if part["header"].lower() == b"content-disposition":
            _, params = parse_options_header(part["value"])
            part["name"] = params.get(b"name", b"")
            part["filename"] = params.get(b"filename", b"")
        part["header"] = part["value"] = b""

    def in_file() -> bool:
        return bool(part["name"] == wanted and upload.filename is None)

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if in_file():
            upload.file.write(data[start:end])
        elif len(part["buf"]) < FIELD_LIMIT:
            part["buf"] += data[start:end]

    def on_part_end() -> None:
        if in_file():
            upload.filename = part["filename"].decode(errors="replace")
        elif part["name"] and part["name"] != wanted:
            name = part["name"].decode(errors="replace")
            upload.fields.setdefault(name, part["buf"][:FIELD_LIMIT].decode(errors="replace"))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except ValueError as exc:  # python-multipart's MultipartParseError
        upload.file.close()
        raise MalformedUpload(str(exc)) from None
    except BaseException:
        upload.file.close()
        raise
    upload.size = upload.file.tell()
    upload.file.seek(0)
    return upload
