"""The ``newsletter`` command: entry points only, the work happens elsewhere.

Every command reads its settings from ``NEWSLETTER_*`` environment variables;
a bad value stops it with one line naming the variable.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from newsletter.core.settings import Settings, SettingsError, is_loopback
from newsletter.dev import connection
from newsletter.dev.connection import NoDevServer

Command = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
COMMANDS: dict[str, Command] = {}


def command(name: str) -> Callable[[Command], Command]:
    def register(function: Command) -> Command:
        COMMANDS[name] = function
        return function

    return register


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="newsletter",
        description="김포시 뉴스레터 service. Settings come from NEWSLETTER_* environment "
        "variables (see README.md).",
    )
    parser.add_argument(
        "--dev",
        action="store_true",
        help="talk to the `newsletter dev` (make dev) running in this checkout: "
        "its database, capture SMTP and base URL, read from .dev/server.env",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser(
        "dev",
        help="run everything locally: embedded PostgreSQL, capture SMTP, web and worker",
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    dev.add_argument("--port", type=int, default=8000, help="web port (8000)")
    dev.add_argument("--smtp-port", type=int, default=2525, help="capture SMTP port (2525)")

    serve = sub.add_parser("serve", help="run the web application (HTTP)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (8000)")

    worker = sub.add_parser(
        "worker",
        help="send queued mail; run as many as you like, on any host "
        "(SIGTERM: finish the messages in flight, give the rest back, exit)",
    )
    worker.add_argument(
        "--lease-seconds",
        type=float,
        default=60.0,
        help="how long claimed mail stays ours without a heartbeat (60); a killed "
        "worker's mail is taken over within seconds, the lease is for a worker "
        "cut off from the database",
    )
    bounce = sub.add_parser(
        "bounces", help="apply bounce messages (DSNs) from an mbox file or a Maildir"
    )
    source = bounce.add_mutually_exclusive_group(required=True)
    source.add_argument("--mbox", metavar="FILE", help="an mbox file of bounce messages")
    source.add_argument("--maildir", metavar="DIR", help="a Maildir of bounce messages")
    sub.add_parser("migrate", help="apply pending database migrations (safe to run concurrently)")

    create_key = sub.add_parser(
        "create-api-key", help="create an API key; the key is printed once, on the last line"
    )
    create_key.add_argument("--role", required=True, choices=["editor", "ops", "admin"])
    create_key.add_argument("--name", required=True, help="who or what uses the key")

    create_user = sub.add_parser(
        "create-user",
        help="create a console account for a person (without --password-stdin a password "
        "is generated and printed once, on the last line)",
    )
    create_user.add_argument("email", help="the person's e-mail address (their login)")
    create_user.add_argument("--role", required=True, choices=["editor", "ops", "admin"])
    create_user.add_argument(
        "--name", required=True, help="the person's name, as the audit shows it"
    )
    create_user.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from standard input (first line) instead of generating one",
    )
    create_user.add_argument(
        "--require-totp",
        action="store_true",
        help="the person must set up an authenticator app at the first login",
    )
    for verb, text in (
        ("disable-user", "disable a console account; its sessions end at once"),
        ("enable-user", "enable a disabled console account again"),
    ):
        toggle = sub.add_parser(verb, help=text)
        toggle.add_argument("user", help="the account's e-mail address or numeric id")
    reset = sub.add_parser(
        "reset-password",
        help="set a new password for a console account (generated and printed once unless "
        "--password-stdin); its sessions end and the person must choose their own at next login",
    )
    reset.add_argument("user", help="the account's e-mail address or numeric id")
    reset.add_argument("--password-stdin", action="store_true", help="read it from standard input")
    sub.add_parser("list-users", help="list console accounts with their role and state")

    revoke = sub.add_parser("revoke-api-key", help="revoke an API key by id or by its value")
    revoke.add_argument("key", help="the key's numeric id or the key itself")

    roster_import = sub.add_parser(
        "import",
        help="import subscribers from a CSV (email,name,subscribed_at,source; UTF-8 or CP949)",
    )
    roster_import.add_argument("file", help="the CSV file (Excel's CSV export is fine)")
    roster_import.add_argument(
        "--mode",
        choices=["confirmed", "invite"],
        default="confirmed",
        help="confirmed: consent already given (needs --source); invite: mail a confirmation",
    )
    roster_import.add_argument("--source", help="where and how these people consented")
    roster_export = sub.add_parser("export", help="export subscribers as CSV (UTF-8)")
    roster_export.add_argument("--bom", action="store_true", help="add a BOM for Korean Excel")
    roster_export.add_argument("-o", "--output", help="file to write (default: standard output)")
    roster_export.add_argument("--status", help="only subscribers with this status")
    roster_export.add_argument(
        "--reason", help="why the list is taken out (kept in the access log)"
    )
    erase = sub.add_parser(
        "erase", help="erase a person (PIPA): delete their data, keep a salted hash out"
    )
    erase.add_argument("email", help="the address to erase")

    access = sub.add_parser(
        "access-log",
        help="who read which personal data, when and from where (for the privacy officer)",
    )
    access.add_argument("--since", help="from this date or time on (KST unless an offset is given)")
    access.add_argument("--until", help="before this date or time")
    access.add_argument("--actor", help="a key's or person's name, or a reference like api_key:3")
    access.add_argument("--subscriber", type=int, help="only reads of this subscriber's data (id)")
    access.add_argument("--action", help="e.g. subscriber.get, subscribers.export")
    access.add_argument("--limit", type=int, default=200, help="at most this many entries (200)")
    access.add_argument("--json", action="store_true", help="one JSON object per line")

    status = sub.add_parser(
        "status", help="how the sending issue is doing: progress, speed, time left, failures"
    )
    status.add_argument(
        "--watch", action="store_true", help="keep the view updated until the send finishes"
    )
    status.add_argument(
        "--issue", type=int, help="issue id (default: the one sending now, else the latest)"
    )
    status.add_argument(
        "--interval", type=float, default=2.0, help="seconds between updates with --watch (2)"
    )

    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.dev and args.command == "dev":
        parser.error("--dev is for the other commands: it points them at a running `dev`")
    try:
        environ = dev_environment() if args.dev else os.environ
        settings = Settings.from_env(environ, dev=args.command == "dev" or args.dev)
    except SettingsError as exc:
        print(f"newsletter: configuration error: {exc}", file=sys.stderr)
        return 2
    except NoDevServer as exc:
        print(f"newsletter: {exc}", file=sys.stderr)
        return 2
    from newsletter.core.logs import configure_logging

    # A person watches `dev`; everything else may be shipped to a log store.
    configure_logging(settings, human=args.command == "dev")
    import asyncpg

    try:
        return run(COMMANDS[args.command](args, settings))
    except KeyboardInterrupt:
        return 130
    except asyncpg.UndefinedTableError as exc:
        # A database nobody migrated yet (or an older schema): say what to do.
        print(
            f"newsletter: the database is not migrated ({exc}); run 'newsletter migrate' first",
            file=sys.stderr,
        )
        return 2


def dev_environment() -> dict[str, str]:
    """This process's environment plus the settings of the running ``newsletter dev``."""
    dev_dir = Settings.from_env(dev=True).dev_dir
    return {**os.environ, **connection.read(dev_dir)}


def run(main_coroutine: Coroutine[Any, Any, int]) -> int:
    """Run on uvloop where available: asyncpg and uvicorn are markedly faster on it."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency via uvicorn[standard]
        return asyncio.run(main_coroutine)
    return uvloop.run(main_coroutine)


def require_database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise SystemExit("newsletter: configuration error: NEWSLETTER_DATABASE_URL is not set")
    return settings.database_url


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM, for graceful shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


@command("migrate")
async def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.core.db import migrate

    applied = await migrate(require_database_url(settings))
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def refuse_dev_off_loopback(settings: Settings, host: str, what: str) -> None:
    """Dev mode shows every captured mail and signs with a key kept in .dev/:
    it must never be reachable from another machine."""
    if settings.dev and not is_loopback(host):
        raise SystemExit(
            f"newsletter: configuration error: NEWSLETTER_DEV=true: {what} in dev mode listens "
            f"on loopback only (127.0.0.1 or ::1), not {host!r}; unset NEWSLETTER_DEV in "
            "production"
        )


@command("serve")
async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg
    import uvicorn

    from newsletter.app import create_app, create_metrics_app
    from newsletter.core.db import Database
    from newsletter.web.http import server

    refuse_dev_off_loopback(settings, args.host, "`newsletter serve`")
    try:
        database = await Database.connect(require_database_url(settings))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"newsletter: cannot reach the database: {exc}", file=sys.stderr)
        return 1
    try:
        public = uvicorn.Server(
            server.config(
                create_app(settings, database),
                settings,
                host=args.host,
                port=args.port,
                proxy_headers=True,
                forwarded_allow_ips=settings.trusted_proxies,
            )
        )
        if settings.metrics_port is None:
            await public.serve()
            return 0
        # Prometheus scrapes this one; the public port answers /metrics to ops keys only.
        internal = server.CompanionServer(
            server.config(
                create_metrics_app(settings, database),
                settings,
                host=settings.metrics_host,
                port=settings.metrics_port,
            )
        )
        companion = asyncio.create_task(internal.serve())
        try:
            await public.serve()
        finally:
            internal.should_exit = True
            await companion
    finally:
        await database.close()
    return 0


@command("worker")
async def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.delivery.worker import run_worker
    from newsletter.ops.metrics import serve_worker_metrics

    require_database_url(settings)
    if settings.dev and not (
        all(is_loopback(relay.host) for relay in settings.smtp_relays)
        and is_loopback(settings.metrics_host)
    ):
        raise SystemExit(
            "newsletter: configuration error: NEWSLETTER_DEV=true: a dev-mode worker sends only "
            "to an SMTP server on loopback and exports metrics on loopback only; unset "
            "NEWSLETTER_DEV in production"
        )
    if settings.metrics_port is not None:
        try:  # this worker's own SMTP latency and rate-limit waits, for Prometheus
            serve_worker_metrics(settings.metrics_port, settings.metrics_host)
        except OSError as exc:
            print(
                f"newsletter: cannot export metrics on "
                f"{settings.metrics_host}:{settings.metrics_port}: {exc}",
                file=sys.stderr,
            )
            return 2
    await run_worker(settings, stop=stop_on_signals(), lease_seconds=args.lease_seconds)
    return 0


@command("create-api-key")
async def _create_api_key(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.core.db import connect
    from newsletter.core.errors import DomainError
    from newsletter.ops.apikeys import create_key
    from newsletter.ops.audit import CLI_ACTOR, record

    conn = await connect(require_database_url(settings))
    try:
        async with conn.transaction():
            key_id, key = await create_key(conn, role=args.role, name=args.name)
            await record(conn, CLI_ACTOR, "api_key.create", f"api_key:{key_id}", role=args.role)
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    print(f"created {args.role} key #{key_id} for {args.name!r}; it is shown only now:")
    print(key)
    return 0


@command("revoke-api-key")
async def _revoke_api_key(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.core.db import connect
    from newsletter.core.errors import DomainError
    from newsletter.ops.apikeys import revoke_key
    from newsletter.ops.audit import CLI_ACTOR, record

    conn = await connect(require_database_url(settings))
    try:
        async with conn.transaction():
            key_id = await revoke_key(conn, args.key)
            await record(conn, CLI_ACTOR, "api_key.revoke", f"api_key:{key_id}")
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        await conn.close()
    print(f"revoked key #{key_id}")
    return 0


def _password_from_stdin() -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise SystemExit("newsletter: no password on standard input")
    return line


@command("create-user")
async def _create_user(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.core.db import connect
    from newsletter.core.errors import DomainError
    from newsletter.ops.audit import CLI_ACTOR
    from newsletter.ops.users import create_user

    password = _password_from_stdin() if args.password_stdin else None
    conn = await connect(require_database_url(settings))
    try:
        async with conn.transaction():
            user, generated = await create_user(
                conn,
                CLI_ACTOR,
                email=args.email,
                name=args.name,
                role=args.role,
                password=password,
                totp_required=args.require_totp,
            )
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    print(f"created {user.role} account #{user.id} for {user.name} <{user.email}>")
    if generated is not None:
        print("password (shown only now; they choose their own at the first login):")
        print(generated)
    return 0


async def _with_user(
    settings: Settings, who: str, change: Callable[[Any, Any], Coroutine[Any, Any, str]]
) -> int:
    from newsletter.core.db import connect
    from newsletter.core.errors import DomainError
    from newsletter.ops.users import find_user

    conn = await connect(require_database_url(settings))
    try:
        async with conn.transaction():
            user = await find_user(conn, who)
            message = await change(conn, user)
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        await conn.close()
    print(message)
    return 0


@command("disable-user")
async def _disable_user(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops.audit import CLI_ACTOR
    from newsletter.ops.users import set_disabled

    async def change(conn: Any, user: Any) -> str:
        await set_disabled(conn, CLI_ACTOR, user.id, True)
        return f"disabled account #{user.id} ({user.email}); its sessions have ended"

    return await _with_user(settings, args.user, change)


@command("enable-user")
async def _enable_user(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops.audit import CLI_ACTOR
    from newsletter.ops.users import set_disabled

    async def change(conn: Any, user: Any) -> str:
        await set_disabled(conn, CLI_ACTOR, user.id, False)
        return f"enabled account #{user.id} ({user.email})"

    return await _with_user(settings, args.user, change)


@command("reset-password")
async def _reset_password(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.ops.audit import CLI_ACTOR
    from newsletter.ops.users import reset_password

    given = _password_from_stdin() if args.password_stdin else None

    async def change(conn: Any, user: Any) -> str:
        password = await reset_password(conn, CLI_ACTOR, user.id, given)
        done = f"new password set for #{user.id} ({user.email}); their sessions have ended"
        return done if given is not None else f"{done}; shown only now:\n{password}"

    return await _with_user(settings, args.user, change)


@command("list-users")
async def _list_users(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.core.db import connect
    from newsletter.ops.users import list_users

    conn = await connect(require_database_url(settings))
    try:
        people = await list_users(conn)
    finally:
        await conn.close()
    for user in people:
        state = "disabled" if user.disabled else "enabled"
        factor = "totp" if user.totp_enabled else ("totp required" if user.totp_required else "-")
        print(f"#{user.id}\t{user.role}\t{state}\t{factor}\t{user.name} <{user.email}>")
    return 0


@command("dev")
async def _dev(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.dev.server import run_dev

    refuse_dev_off_loopback(settings, args.host, "`newsletter dev`")
    return await run_dev(settings, host=args.host, port=args.port, smtp_port=args.smtp_port)


@command("import")
async def _import(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from newsletter.audience.roster import import_csv
    from newsletter.core.db import Database
    from newsletter.core.errors import DomainError
    from newsletter.ops.audit import CLI_ACTOR

    database = await Database.connect(require_database_url(settings), min_size=1, max_size=2)
    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn())
    try:
        with (
            open(args.file, "rb") as binary,  # noqa: ASYNC230 - a CLI, the loop has nothing else to do
            Progress(*columns, TimeRemainingColumn(), transient=True) as bar,
        ):
            task = bar.add_task("reading", total=None)
            report = await import_csv(
                database,
                settings,
                binary,
                mode=args.mode,
                source=args.source,
                actor=CLI_ACTOR,
                now=datetime.now(UTC),
                progress=lambda done, total: bar.update(
                    task,
                    completed=done,
                    total=total,
                    description="reading" if done < total else "merging",
                ),
            )
    except OSError as exc:
        print(f"newsletter: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        await database.close()
    for item in report.errors:
        print(f"line {item.line}: {item.reason}", file=sys.stderr)
    for item in report.skipped_rows:
        print(f"line {item.line}: skipped: {item.reason}", file=sys.stderr)
    print(
        f"{report.rows} rows ({report.encoding}): {report.inserted} inserted, "
        f"{report.updated} updated, {report.unchanged} unchanged, {report.duplicates} duplicates, "
        f"{report.skipped} skipped, {report.invalid} invalid, {report.invited} invited"
    )
    return 0 if report.invalid == 0 else 1


@command("export")
async def _export(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.audience.roster import STATUSES, export_csv
    from newsletter.core.db import Database
    from newsletter.core.errors import DomainError
    from newsletter.ops.access_log import record_read
    from newsletter.ops.audit import CLI_ACTOR, command_line_actor, record

    if args.status is not None and args.status not in STATUSES:
        print(f"newsletter: --status must be one of {', '.join(STATUSES)}", file=sys.stderr)
        return 2
    database = await Database.connect(require_database_url(settings), min_size=1, max_size=2)
    try:
        async with database.transaction() as conn:
            query = {k: v for k, v in (("status", args.status), ("reason", args.reason)) if v}
            await record_read(conn, command_line_actor(), None, "subscribers.export", query=query)
            await record(conn, CLI_ACTOR, "subscribers.export", "subscribers", status=args.status)
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer  # noqa: ASYNC230
            async for chunk in export_csv(database, settings, bom=args.bom, status=args.status):
                out.write(chunk)
            out.flush()
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        await database.close()
    return 0


@command("erase")
async def _erase(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.audience.lifecycle import erase_address
    from newsletter.core.db import Database
    from newsletter.core.errors import DomainError
    from newsletter.ops.audit import CLI_ACTOR

    database = await Database.connect(require_database_url(settings), min_size=1, max_size=2)
    try:
        erased = await erase_address(database, settings, email=args.email, actor=CLI_ACTOR)
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
    finally:
        await database.close()
    if erased.subscriber_id is None:
        print("not on the list; the address is now suppressed so it is never imported or mailed")
    else:
        print(f"erased subscriber #{erased.subscriber_id}; only a salted hash remains")
    return 0


@command("bounces")
async def _bounces(args: argparse.Namespace, settings: Settings) -> int:
    import mailbox

    from newsletter.audience import bounces
    from newsletter.core.db import Database

    box: mailbox.Mailbox
    try:
        if args.mbox:
            box = mailbox.mbox(args.mbox, create=False)
        else:
            box = mailbox.Maildir(args.maildir, create=False)
    except (OSError, mailbox.NoSuchMailboxError) as exc:
        print(f"newsletter: cannot open {args.mbox or args.maildir}: {exc}", file=sys.stderr)
        return 2
    db = await Database.connect(require_database_url(settings), min_size=1, max_size=2)
    totals = {
        "messages": 0,
        "suppressed": 0,
        "counted": 0,
        "unsubscribed": 0,
        "unverified": 0,
        "unmatched": 0,
        "ignored": 0,
        "duplicate": 0,
        "too large": 0,
    }
    try:
        for key in box.iterkeys():
            raw = box.get_bytes(key)
            totals["messages"] += 1
            if len(raw) > settings.bounce_max_bytes:  # untrusted mail: refused unread
                totals["too large"] += 1
                continue
            result = await bounces.process(db, settings, raw)
            for applied in result.applied:  # every action is told, new ones included
                totals[applied.action] = totals.get(applied.action, 0) + 1
            totals["unsubscribed"] += len(result.unsubscribed)
            totals["unmatched"] += len(result.unmatched)
            totals["ignored"] += 1 if result.ignored else 0
            totals["duplicate"] += 1 if result.duplicate else 0
    finally:
        await db.close()
        box.close()
    print(", ".join(f"{name}: {count}" for name, count in totals.items()))
    return 0


def _moment(text: str | None, zone_name: str, option: str) -> Any:
    """A ``--since``/``--until`` value: a date (midnight) or a date and time,
    in the installation's zone unless it carries an offset."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(
            f"newsletter: {option}: expected a date like 2026-11-03, got {text!r}"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone_name))


@command("access-log")
async def _access_log(args: argparse.Namespace, settings: Settings) -> int:
    import json
    from zoneinfo import ZoneInfo

    from newsletter.core.db import connect
    from newsletter.ops.access_log import AccessFilter, read_entries
    from newsletter.ops.audit import command_line_actor

    wanted = AccessFilter(
        since=_moment(args.since, settings.timezone, "--since"),
        until=_moment(args.until, settings.timezone, "--until"),
        actor=args.actor,
        subscriber_id=args.subscriber,
        action=args.action,
        limit=max(1, min(args.limit, 100_000)),
    )
    conn = await connect(require_database_url(settings))
    try:
        async with conn.transaction():
            found = await read_entries(conn, command_line_actor(), None, wanted)
    finally:
        await conn.close()
    zone = ZoneInfo(settings.timezone)
    for entry in found:
        when = entry.occurred_at.astimezone(zone)
        if args.json:
            print(
                json.dumps(
                    {
                        "id": entry.id,
                        "at": when.isoformat(),
                        "actor": entry.actor_ref,
                        "actor_name": entry.actor_name,
                        "role": entry.role,
                        "ip": entry.ip,
                        "action": entry.action,
                        "subscriber_ids": entry.subscriber_ids,
                        "query": entry.query,
                        "rows": entry.rows,
                    },
                    ensure_ascii=False,
                )
            )
            continue
        whose = ", ".join(f"#{s}" for s in entry.subscriber_ids[:10])
        if len(entry.subscriber_ids) > 10:
            whose += f" 외 {len(entry.subscriber_ids) - 10}명"
        filters = " ".join(f"{k}={v}" for k, v in entry.query.items())
        print(
            f"{when:%Y-%m-%d %H:%M:%S} {when.tzname()}  {entry.actor_name} ({entry.actor_ref}, "
            f"{entry.role})  {entry.ip or '명령줄'}  {entry.described}"
            + (f"  [{filters}]" if filters else "")
            + (f"  대상 {whose}" if whose else "")
        )
    if not args.json:
        print(f"{len(found)}건", file=sys.stderr)
    return 0


@command("status")
async def _status(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.core.errors import DomainError
    from newsletter.editorial import transitions
    from newsletter.ops.status_view import run_status

    def actions(issue: Any) -> list[str]:
        """What the issue's state allows now, in the words of the domain's table."""
        return [transitions.TRANSITIONS[a].doing.ko for a in transitions.allowed_from(issue.status)]

    try:
        return await run_status(
            settings,
            require_database_url(settings),
            issue_id=args.issue,
            watch=args.watch,
            interval=max(args.interval, 0.1),
            actions=actions,
        )
    except DomainError as exc:
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
