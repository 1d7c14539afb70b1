"""Who may use the service: API keys and console accounts."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Coroutine
from typing import Any

from newsletter.cli.command import arg, command, open_database, password_from_stdin
from newsletter.core.kinds import ROLES
from newsletter.core.settings import Settings
from newsletter.ops import apikeys, audit
from newsletter.ops.audit import CLI_ACTOR

USER = arg("user", help="the account's e-mail address or numeric id")


@command(
    "create-api-key",
    "create an API key; the key is printed once, on the last line",
    arg("--role", required=True, choices=ROLES),
    arg("--name", required=True, help="who or what uses the key"),
)
async def create_api_key(args: argparse.Namespace, settings: Settings) -> int:
    async with open_database(settings) as db, db.transaction() as conn:
        key_id, key = await apikeys.create_key(conn, role=args.role, name=args.name)
        await audit.record(conn, CLI_ACTOR, "api_key.create", f"api_key:{key_id}", role=args.role)
    print(f"created {args.role} key #{key_id} for {args.name!r}; it is shown only now:")
    print(key)
    return 0


@command(
    "revoke-api-key",
    "revoke an API key by id or by its value",
    arg("key", help="the key's numeric id or the key itself"),
)
async def revoke_api_key(args: argparse.Namespace, settings: Settings) -> int:
    async with open_database(settings) as db, db.transaction() as conn:
        key_id = await apikeys.revoke_key(conn, args.key)
        await audit.record(conn, CLI_ACTOR, "api_key.revoke", f"api_key:{key_id}")
    print(f"revoked key #{key_id}")
    return 0


@command(
    "create-user",
    "create a console account for a person (without --password-stdin a password "
    "is generated and printed once, on the last line)",
    arg("email", help="the person's e-mail address (their login)"),
    arg("--role", required=True, choices=ROLES),
    arg("--name", required=True, help="the person's name, as the audit shows it"),
    arg(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (first line) instead of generating one",
    ),
    arg(
        "--require-totp",
        action="store_true",
        help="the person must set up an authenticator app at the first login",
    ),
)
async def create_user(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops import users

    password = password_from_stdin() if args.password_stdin else None
    async with open_database(settings) as db, db.transaction() as conn:
        user, generated = await users.create_user(
            conn,
            CLI_ACTOR,
            email=args.email,
            name=args.name,
            role=args.role,
            password=password,
            totp_required=args.require_totp,
        )
    print(f"created {user.role} account #{user.id} for {user.name} <{user.email}>")
    if generated is not None:
        print("password (shown only now; they choose their own at the first login):")
        print(generated)
    return 0


Change = Callable[[Any, Any], Coroutine[Any, Any, str]]


async def _change_user(settings: Settings, who: str, change: Change) -> int:
    """Find the account, change it and print what ``change`` says, in one transaction."""
    from newsletter.ops import users

    async with open_database(settings) as db, db.transaction() as conn:
        user = await users.find_user(conn, who)
        message = await change(conn, user)
    print(message)
    return 0


# Decorators apply bottom up: disable-user is listed first.
@command("enable-user", "enable a disabled console account again", USER)
@command("disable-user", "disable a console account; its sessions end at once", USER)
async def set_disabled(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops import users

    disabled = args.command == "disable-user"

    async def change(conn: Any, user: Any) -> str:
        await users.set_disabled(conn, CLI_ACTOR, user.id, disabled)
        if disabled:
            return f"disabled account #{user.id} ({user.email}); its sessions have ended"
        return f"enabled account #{user.id} ({user.email})"

    return await _change_user(settings, args.user, change)


@command(
    "reset-password",
    "set a new password for a console account (generated and printed once unless "
    "--password-stdin); its sessions end and the person must choose their own at next login",
    USER,
    arg("--password-stdin", action="store_true", help="read it from standard input"),
)
async def reset_password(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops import users

    given = password_from_stdin() if args.password_stdin else None

    async def change(conn: Any, user: Any) -> str:
        password = await users.reset_password(conn, CLI_ACTOR, user.id, given)
        done = f"new password set for #{user.id} ({user.email}); their sessions have ended"
        return done if given is not None else f"{done}; shown only now:\n{password}"

    return await _change_user(settings, args.user, change)


@command("list-users", "list console accounts with their role and state")
async def list_users(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops import reports, users

    async with open_database(settings) as db, db.transaction() as conn:
        people = await users.list_users(conn)
    for user in people:
        print(reports.user_line(user))
    return 0
