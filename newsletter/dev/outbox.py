"""``/dev/outbox``: the mail the capture server kept (dev mode only)."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from litestar import MediaType, Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from newsletter.core.clock import city_zone, clock
from newsletter.core.settings import Settings
from newsletter.dev.capture import open_maildir
from newsletter.web.http.deps import Config
from newsletter.web.pages.shell import page

LINK_RE = re.compile(r"https?://[^\s<>\"]+")


def _messages(settings: Settings) -> list[tuple[str, float, EmailMessage]]:
    directory = settings.dev_dir / "mail"
    box = open_maildir(directory)
    parser = BytesParser(policy=policy.default)
    found = []
    for key in box.iterkeys():
        path = directory / ("new" if (directory / "new" / key).exists() else "cur") / key
        message = parser.parsebytes(box.get_bytes(key))
        assert isinstance(message, EmailMessage)
        found.append((key, path.stat().st_mtime if path.exists() else 0.0, message))
    found.sort(key=lambda item: item[1], reverse=True)
    return found


def _sent_at(message: EmailMessage, settings: Settings) -> str:
    header = message["Date"]
    moment = getattr(header, "datetime", None)
    return clock(moment, city_zone(settings)) if moment is not None else str(header or "")


@get("/dev/outbox", media_type=MediaType.HTML, include_in_schema=False)
async def outbox_list(request: Request[Any, Any, Any], settings: Config) -> Template:
    rows = [
        {
            "key": key,
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "date": _sent_at(message, settings),
        }
        for key, _, message in _messages(settings)
    ]
    return page(request, "dev_outbox.html", rows=rows)


@get("/dev/outbox/{key:str}", media_type=MediaType.HTML, include_in_schema=False)
async def outbox_show(
    request: Request[Any, Any, Any], settings: Config, key: FromPath[str]
) -> Template:
    for found_key, _, message in _messages(settings):
        if found_key == key:
            html_part = message.get_body(preferencelist=("html",))
            text_part = message.get_body(preferencelist=("plain",))
            text = text_part.get_content() if text_part is not None else None
            return page(
                request,
                "dev_message.html",
                headers=list(message.items()),
                html=html_part.get_content() if html_part is not None else None,
                text=text,
                links=sorted(set(LINK_RE.findall(text or ""))),
            )
    raise NotFoundException("no such captured message")


ROUTES = [outbox_list, outbox_show]
