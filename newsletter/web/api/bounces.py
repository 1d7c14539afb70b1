"""Ops API: hand in a bounce (DSN or an MTA's own format) as a raw message,
and see the reports that named an address without our signature."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Router, get, post
from litestar.exceptions import ClientException, HTTPException
from litestar.params import QueryParameter

from newsletter.audience import bounces
from newsletter.core.kinds import MAX_ID
from newsletter.core.logs import mask_emails
from newsletter.ops.audit import record
from newsletter.web.api.auth import SECURITY, provide_actor, requires
from newsletter.web.http.deps import DB, Config, Who

RAW_TYPES = ("message/rfc822", "message/delivery-status", "text/plain", "application/octet-stream")


class AppliedOut(msgspec.Struct):
    subscriber_id: int | None
    delivery_id: int | None
    kind: str
    action: str
    matched_by: str
    outbox_id: int | None = None  # a bounced transactional mail (confirmation, notice, test copy)


class BounceOut(msgspec.Struct):
    # "applied", "unverified", "unsubscribed", "unmatched", "ignored" or "duplicate"
    status: str
    applied: list[AppliedOut]
    unmatched: list[str]
    detail: str | None = None
    unsubscribed: list[int] = []


class UnverifiedOut(msgspec.Struct):
    id: int
    received_at: datetime
    subscriber_id: int | None
    delivery_id: int | None
    kind: str
    detail: str | None  # addresses masked


class UnverifiedPage(msgspec.Struct):
    items: list[UnverifiedOut]
    next_before: int | None


async def _read_capped(request: Request[Any, Any, Any], limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise bounces.BounceTooLarge(bounces.TOO_LARGE, limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise bounces.BounceTooLarge(bounces.TOO_LARGE, limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


@post(
    "/bounces",
    summary="Process one bounce message",
    status_code=200,
    request_max_body_size=None,  # capped by NEWSLETTER_BOUNCE_MAX_BYTES while reading
)
async def post_bounce(
    request: Request[Any, Any, Any], db: DB, settings: Config, actor: Who
) -> BounceOut:
    """The body is one raw RFC 5322 message (`Content-Type: message/rfc822`): an
    RFC 3464 delivery status notification or any common MTA bounce, at most
    `NEWSLETTER_BOUNCE_MAX_BYTES` (1 MB by default; larger ones get 413). Only a
    match proven by our signature (VERP return path, our Message-ID) applies the
    bounce policy: hard bounce → suppressed at once; soft bounces counted once
    per delivery, suppressed after a threshold. A report naming only an address
    is recorded as `unverified` and changes nobody. The same report twice is a
    `duplicate`. Delay notices and auto-replies change nothing."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in RAW_TYPES:
        raise HTTPException(
            status_code=415,
            detail="send the bounce as the raw message, Content-Type: message/rfc822",
        )
    raw = await _read_capped(request, settings.bounce_max_bytes)
    if not raw.strip():
        raise ClientException("empty body: send the raw bounce message")
    result = await bounces.process(db, settings, raw)
    applied = [
        AppliedOut(a.subscriber_id, a.delivery_id, a.kind, a.action, a.matched_by, a.outbox_id)
        for a in result.applied
    ]
    changed = [a for a in applied if a.action != "unverified"]
    if changed:
        async with db.transaction() as conn:
            await record(
                conn,
                actor,
                "bounce.apply",
                ",".join(f"subscriber:{a.subscriber_id}" for a in changed)[:500],
                actions=[a.action for a in changed],
            )
    if result.unsubscribed:
        async with db.transaction() as conn:
            await record(
                conn,
                actor,
                "unsubscribe.mailto",
                ",".join(f"subscriber:{s}" for s in result.unsubscribed),
            )
        return BounceOut(result.status, [], [], None, result.unsubscribed)
    return BounceOut(result.status, applied, result.unmatched, result.ignored)


@get("/bounces/unverified", summary="Bounce reports that matched by address only")
async def unverified_bounces(
    db: DB,
    before: Annotated[int, QueryParameter(ge=1, le=MAX_ID)] = MAX_ID,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> UnverifiedPage:
    """Newest first. Each named a subscriber's address without our signature,
    so none changed anybody; a burst of them is worth a look (someone forging
    bounces, or a relay that strips VERP). Pass `next_before` as `before` for
    the next page. Addresses in the details are masked."""
    rows = await db.fetch("unverified_bounces", before, limit)
    items = [
        UnverifiedOut(
            r["id"],
            r["received_at"],
            r["subscriber_id"],
            r["delivery_id"],
            r["kind"],
            mask_emails(r["detail"]) if r["detail"] else None,
        )
        for r in rows
    ]
    return UnverifiedPage(items, rows[-1]["id"] if len(rows) == limit else None)


ROUTES = [
    Router(
        "/api/v1",
        route_handlers=[post_bounce, unverified_bounces],
        guards=[requires("ops")],
        dependencies={"actor": provide_actor},
        security=SECURITY,
        tags=["ops"],
    )
]
