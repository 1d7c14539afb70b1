"""The city logo named in the city settings, served from this origin (pages
and mails link to it; /static, set up in app.py, holds everything else)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from litestar import Request, Response, get

from newsletter.core.city import LOGO_TYPES
from newsletter.core.errors import NotFound
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings

CACHE_A_DAY = "public, max-age=86400"


@cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


@get("/city/logo", include_in_schema=False)
async def city_logo(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The logo file named in the city settings (mails link here too)."""
    settings: Settings = request.app.state.settings
    logo = settings.city.logo_file
    if logo is None:
        raise NotFound(N_("시의 로고는 바깥 주소에 있습니다."))
    return Response(
        _read(logo),
        media_type=LOGO_TYPES[logo.suffix.lower()],
        headers={"Cache-Control": CACHE_A_DAY},
    )


ROUTES = [city_logo]
