"""Helpers an app keeps in its state: one per app, made on first use.

Tests build many apps, each with its own state; a helper made at import time
would be shared by all of them (and bound to another event loop), and one
made in the lifespan would be missing in apps that are never started.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any, Protocol, TypeVar


class Closable(Protocol):
    async def close(self) -> None: ...


T = TypeVar("T", bound=Closable)


def kept(state: MutableMapping[str, Any], key: str, make: Callable[[], T]) -> T:
    """The app's helper under ``key``, made by ``make`` the first time."""
    found: T | None = state.get(key)
    if found is None:
        found = make()
        state[key] = found
    return found


async def close_kept(state: MutableMapping[str, Any], key: str) -> None:
    """Close the helper under ``key`` if this app ever made one."""
    found: Closable | None = state.get(key)
    if found is not None:
        await found.close()
