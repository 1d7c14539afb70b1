"""``GET /media/<key>``: uploaded images, for mail clients and the archive.

Public on purpose (a mail client fetches them without logging in), keyed by
the hash of the bytes so the URL never serves different content: cached for
a year. The headers keep a browser from treating an image as anything else.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get
from litestar.params import FromPath

from newsletter.core.errors import NotFound
from newsletter.editorial import media
from newsletter.web.http.deps import DB

CACHE = "public, max-age=31536000, immutable"


@get("/media/{key:str}", include_in_schema=False)
async def media_file(
    request: Request[Any, Any, Any], db: DB, key: FromPath[str]
) -> Response[bytes]:
    etag = f'"{key.split(".")[0]}"'
    try:
        data, content_type = await media.fetch(db, key)
    except NotFound:
        return Response(b"not found", status_code=404, media_type=MediaType.TEXT)
    headers = {
        "Cache-Control": CACHE,
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f'inline; filename="{key}"',
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    if request.headers.get("if-none-match") == etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(data, media_type=content_type, headers=headers)


ROUTES = [media_file]
