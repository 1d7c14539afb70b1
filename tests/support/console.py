"""Console test helpers: accounts, logging in through the real form, CSRF tokens."""

from __future__ import annotations

import re

import httpx

from newsletter.core.db import Database
from newsletter.ops.audit import CLI_ACTOR
from newsletter.ops.users import User, create_user

PASSWORD = "correct-horse-battery-staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def make_user(
    db: Database,
    role: str = "editor",
    *,
    email: str | None = None,
    name: str | None = None,
    password: str = PASSWORD,
    totp_required: bool = False,
) -> User:
    async with db.transaction() as conn:
        user, _ = await create_user(
            conn,
            CLI_ACTOR,
            email=email or f"{role}@gimpo.go.kr",
            name=name or {"editor": "김편집", "ops": "박운영", "admin": "이관리"}[role],
            role=role,
            password=password,
            totp_required=totp_required,
        )
    return user


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, "page has no CSRF token"
    return match.group(1)


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, next_path: str = "/admin"
) -> httpx.Response:
    """Log in through the form as a browser does; returns the answer to the POST."""
    page = await client.get("/admin/login")
    assert page.status_code == 200, page.text
    return await client.post(
        "/admin/login",
        data={
            "email": email,
            "password": password,
            "next": next_path,
            "csrf_token": csrf_of(page.text),
        },
    )


async def page_csrf(client: httpx.AsyncClient, path: str = "/admin") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
