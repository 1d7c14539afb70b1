"""What the forms share: the bounds every form is read within (size, number
of fields, large ones parsed off the event loop), reading public form or
JSON bodies, consent evidence, the one-button POST route (the page shells
are in ``web/pages/shell.py``)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from string import hexdigits
from typing import Annotated, Any
from urllib.parse import parse_qsl, unquote_plus

import msgspec
from litestar import MediaType, Request, post
from litestar.datastructures import FormMultiDict
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, HTTPException
from litestar.params import QueryParameter
from litestar.types import Empty

from newsletter.audience.subscribers import Evidence
from newsletter.core.errors import InvalidInput, field_name
from newsletter.core.i18n import N_
from newsletter.core.settings import Settings

PUBLIC_BODY_LIMIT = 16 * 1024  # a signup form is a few hundred bytes
TRUE_VALUES = {"1", "true", "on", "yes", "y"}
MAX_TOKEN_LENGTH = 200  # ours are under 75 characters; anything far longer is not one
# The longest form of ours (a news item, an issue picking its items) has a few
# dozen fields; counting is one C pass over the bytes, parsing millions of
# empty fields took seconds of the event loop.
MAX_FORM_FIELDS = 1000
PARSE_IN_THREAD_BYTES = 64 * 1024  # a bigger form is parsed off the event loop

# The ``?token=`` of a link in mail. Deliberately unbounded here: a mangled
# link of any length gets the Korean "not a valid link" page, not a JSON 400.
LinkToken = Annotated[str, QueryParameter(description="the signed token from the mail")]


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    """The client's IP address, or None when what we were told is not one.

    Behind a trusted proxy uvicorn takes the address from X-Forwarded-For as
    written; a proxy that passes on garbage must not turn a signup into a
    database error (the consent record's column is ``inet``).
    """
    host = request.client.host if request.client else None
    if not host:
        return None
    try:
        # The usual case, an IPv4 address already written canonically, in C:
        # ipaddress took a tenth of the signup handler's time.
        if socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, host)) == host:
            return host
    except OSError:
        pass  # IPv6, or not canonical: ipaddress decides
    try:
        return str(ipaddress.ip_address(host.strip("[]").split("%")[0]))
    except ValueError:
        return None


def check_field_count(encoded: bytes | str) -> None:
    """Refuse (413) an urlencoded form with more fields than any of ours has."""
    separators = encoded.count(b"&") if isinstance(encoded, bytes) else encoded.count("&")
    if separators >= MAX_FORM_FIELDS:
        raise HTTPException(
            status_code=413, detail=f"a form may have at most {MAX_FORM_FIELDS} fields"
        )


def _parse_urlencoded(body: bytes) -> dict[str, str | list[str]]:
    """As Litestar parses it: a list where a name repeats, else the value."""
    fields: dict[str, list[str]] = {}
    for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="utf-8"):
        fields.setdefault(key, []).append(value)
    return {key: values if len(values) > 1 else values[0] for key, values in fields.items()}


class BoundedRequest(Request[Any, Any, Any]):
    """Litestar's request whose ``form()`` keeps every form within bounds:
    its size is the route's ``request_max_body_size`` (413), its fields are
    counted before anything is parsed (413; multipart parts by the app's
    ``multipart_form_part_limit``), and a large urlencoded form is parsed in a
    thread, so no form holds the event loop. Handlers keep calling
    ``request.form()``."""

    async def form(self) -> FormMultiDict:
        if (
            self._form is Empty
            and self._connection_state.form is Empty
            and self.content_type[0] == RequestEncodingType.URL_ENCODED
        ):
            body = await self.body()
            check_field_count(body)
            if len(body) > PARSE_IN_THREAD_BYTES:
                parsed = await asyncio.to_thread(_parse_urlencoded, body)
            else:
                parsed = _parse_urlencoded(body)
            # Where Litestar keeps a parsed form for the rest of the request.
            self._connection_state.form = parsed  # type: ignore[assignment]
        return await super().form()


def evidence(request: Request[Any, Any, Any], settings: Settings, source: str) -> Evidence:
    user_agent = request.headers.get("user-agent")
    return Evidence(
        ip=client_ip(request),
        user_agent=user_agent[:500] if user_agent else None,
        source=source[:500],
        consent_version=settings.consent_version,
    )


def wants_json(request: Request[Any, Any, Any]) -> bool:
    return _media_type(request) == "application/json"


async def form_fields(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """Form (urlencoded or multipart) or JSON body as a flat dict."""
    media_type = _media_type(request)
    if media_type == "application/json":
        body = await request.body()
        try:
            data = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError:
            raise ClientException("request body is not valid JSON") from None
        except RecursionError:  # nested deeper than the stack: nobody's signup
            raise ClientException("the JSON document is nested too deeply") from None
        if not isinstance(data, dict):
            raise ClientException("JSON body must be an object")
        return data
    if media_type == "application/x-www-form-urlencoded":
        # The signup form's own encoding: parsed directly (first value wins,
        # as with the multipart path), without building Litestar's multi-dict.
        encoded = (await request.body()).decode("utf-8", errors="replace")
        check_field_count(encoded)
        return urlencoded_fields(encoded)
    form: FormMultiDict = await request.form()
    return {key: form.get(key) for key in form}


def urlencoded_fields(encoded: str) -> dict[str, str]:
    """An urlencoded form's fields, the first value of each name, as
    ``parse_qsl(encoded, keep_blank_values=True)`` reads them (``+`` is a
    space, a name without ``=`` has an empty value, empty pairs are skipped)
    in a third of its time: the busiest form is three short fields."""
    fields: dict[str, str] = {}
    for pair in encoded.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        name = _unquoted(name)
        if name not in fields:
            fields[name] = _unquoted(value)
    return fields


# Each %XX urllib decodes, as bytes (its own table has the same keys).
_PERCENT = {f"{a}{b}": bytes.fromhex(f"{a}{b}") for a in hexdigits for b in hexdigits}


def _unquoted(text: str) -> str:
    """``unquote_plus(text)``, faster for the ASCII a browser sends: a Korean
    name arrives as a run of %XX, which urllib decodes in Python piece by piece."""
    if "+" in text:
        text = text.replace("+", " ")
    if "%" not in text:
        return text
    if not text.isascii():
        return unquote_plus(text)
    head, *parts = text.split("%")
    decoded = bytearray(head.encode())
    for part in parts:
        byte = _PERCENT.get(part[:2])
        if byte is None:  # not an escape: kept as written, as urllib does
            decoded += b"%"
            decoded += part.encode()
        else:
            decoded += byte
            decoded += part[2:].encode()
    return decoded.decode("utf-8", errors="replace")


def _media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def text_field(fields: dict[str, Any], key: str) -> str | None:
    value = fields.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    raise InvalidInput(N_("%(name)s은(는) 글자여야 합니다."), field=key, name=field_name(key))


def truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return isinstance(value, str | int) and str(value).strip().lower() in TRUE_VALUES


async def posted_token(request: Request[Any, Any, Any]) -> tuple[str, dict[str, Any]]:
    """The link token a confirm/unsubscribe/reconfirm POST carries (the form's
    ``token`` field, else the ``?token=`` the page, or an RFC 8058 one-click
    POST to the List-Unsubscribe URL, was addressed with), and all the fields."""
    fields = await form_fields(request)
    token = text_field(fields, "token") or request.query_params.get("token") or ""
    return token[: MAX_TOKEN_LENGTH + 1], fields


def page_post(path: str) -> post:
    """The route for a public page's one-button form: HTML answer, 200 (RFC
    8058 wants no redirect), small body; in the OpenAPI document under
    ``public`` so the fuzzing test reaches it too."""
    return post(
        path,
        request_max_body_size=PUBLIC_BODY_LIMIT,
        media_type=MediaType.HTML,
        tags=["public"],
        status_code=200,
    )
