"""The ``newsletter`` command: entry points only, the work happens elsewhere.

Every command reads its settings from ``NEWSLETTER_*`` environment variables;
a bad value stops it with one line naming the variable. Each command lives
with its arguments in the module of its topic (``services``, ``accounts``,
``roster``, ``reports``), declared with :func:`command.command`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from newsletter.cli import accounts, reports, roster, services
from newsletter.cli.command import COMMANDS
from newsletter.core.errors import DomainError
from newsletter.core.settings import Settings, SettingsError
from newsletter.dev import connection
from newsletter.dev.connection import NoDevServer

# The topics, in the order --help lists their commands.
TOPICS = (services, accounts, roster, reports)


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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    order = [topic.__name__ for topic in TOPICS]
    for declared in sorted(COMMANDS.values(), key=lambda c: order.index(c.handler.__module__)):
        declared.add_to(commands)
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
        return run(COMMANDS[args.command].handler(args, settings))
    except KeyboardInterrupt:
        return 130
    except DomainError as exc:
        # What the domain refuses (a duplicate account, an unknown key...): one line, exit 2.
        print(f"newsletter: {exc.detail}", file=sys.stderr)
        return 2
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
