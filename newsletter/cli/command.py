"""How a command is declared, and what every command shares.

A command is a coroutine with its name, its help and its arguments written
on it (:func:`command`), so what it takes sits beside what it does; the
parser is built from them (``cli/__init__.py``). A domain error ends any
command the same way, in :func:`newsletter.cli.main`: one line on stderr,
exit 2. Commands open the database one way, :func:`open_database`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from newsletter.core.settings import Settings, is_loopback

if TYPE_CHECKING:
    from newsletter.core.db import Database

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument, as ``ArgumentParser.add_argument`` takes it."""

    flags: tuple[str, ...]
    options: dict[str, Any]


def arg(*flags: str, **options: Any) -> Arg:
    return Arg(flags, options)


@dataclass(frozen=True, slots=True)
class OneOf:
    """Arguments of which at most one (exactly one if ``required``) is given."""

    choices: tuple[Arg, ...]
    required: bool = False


def one_of(*choices: Arg, required: bool = False) -> OneOf:
    return OneOf(choices, required)


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    summary: str
    arguments: tuple[Arg | OneOf, ...]
    handler: Handler

    def add_to(self, commands: Any) -> None:
        """Add this command's parser to ``commands`` (``add_subparsers()``'s answer)."""
        parser = commands.add_parser(self.name, help=self.summary)
        for argument in self.arguments:
            if isinstance(argument, OneOf):
                group = parser.add_mutually_exclusive_group(required=argument.required)
                for choice in argument.choices:
                    group.add_argument(*choice.flags, **choice.options)
            else:
                parser.add_argument(*argument.flags, **argument.options)


COMMANDS: dict[str, Command] = {}


def command(name: str, summary: str, *arguments: Arg | OneOf) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as ``newsletter <name>``; it returns the exit code."""

    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, summary, arguments, handler)
        return handler

    return register


def require_database_url(settings: Settings) -> str:
    if settings.database_url is None:
        raise SystemExit("newsletter: configuration error: NEWSLETTER_DATABASE_URL is not set")
    return settings.database_url


@contextlib.asynccontextmanager
async def open_database(settings: Settings, *, service: bool = False) -> AsyncIterator[Database]:
    """The database, closed on the way out; one line and exit 1 if it cannot be reached.

    A service (``serve``, ``worker``) gets a full pool and every named query
    prepared first, so a broken one stops it at start rather than at 3 a.m.;
    a one-off command two connections and no check.
    """
    import asyncpg

    from newsletter.core.db import Database

    url = require_database_url(settings)
    try:
        if service:
            database = await Database.connect(url)
        else:
            database = await Database.connect(url, min_size=1, max_size=2, check_queries=False)
    except asyncpg.UndefinedTableError:
        raise  # not migrated yet: main() says what to do
    except (OSError, asyncpg.PostgresError) as exc:
        raise SystemExit(f"newsletter: cannot reach the database: {exc}") from None
    try:
        yield database
    finally:
        await database.close()


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT/SIGTERM, for graceful shutdown."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


def refuse_dev_off_loopback(settings: Settings, host: str, what: str) -> None:
    """Dev mode shows every captured mail and signs with a key kept in .dev/:
    it must never be reachable from another machine."""
    if settings.dev and not is_loopback(host):
        raise SystemExit(
            f"newsletter: configuration error: NEWSLETTER_DEV=true: {what} in dev mode listens "
            f"on loopback only (127.0.0.1 or ::1), not {host!r}; unset NEWSLETTER_DEV in "
            "production"
        )


def password_from_stdin() -> str:
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise SystemExit("newsletter: no password on standard input")
    return line
