"""How ``newsletter --dev COMMAND`` reaches the ``newsletter dev`` running in this checkout.

Once it is up, the dev server writes ``<DEV_DIR>/server.env``: the settings a
command needs to talk to it (the embedded database's URL, the capture SMTP
port, the base URL) and its pid. It removes the file when it stops. The file is
also a shell env file: ``set -a; . .dev/server.env`` then ``psql
"$NEWSLETTER_DATABASE_URL"``.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

FILE_NAME = "server.env"
PID = "NEWSLETTER_DEV_PID"


class NoDevServer(Exception):
    """No ``newsletter dev`` is running for this dev directory."""


def path(dev_dir: Path) -> Path:
    return dev_dir / FILE_NAME


def write(dev_dir: Path, values: Mapping[str, str]) -> Path:
    """Record how to reach this process; only its owner may read it (it may hold a secret)."""
    target = path(dev_dir)
    lines = [
        "# Written by `newsletter dev` while it runs; read by `newsletter --dev COMMAND`.",
        *(f"{name}={shlex.quote(value)}" for name, value in values.items()),
        f"{PID}={os.getpid()}",
    ]
    temporary = target.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
    temporary.chmod(0o600)
    temporary.replace(target)
    return target


def remove(dev_dir: Path) -> None:
    """Remove the file if this process wrote it (a second dev server's stays)."""
    try:
        if _parse(path(dev_dir)).get(PID) == str(os.getpid()):
            path(dev_dir).unlink()
    except (OSError, ValueError):
        pass


def read(dev_dir: Path) -> dict[str, str]:
    """The settings of the running dev server, or :class:`NoDevServer` saying why not."""
    target = path(dev_dir)
    try:
        values = _parse(target)
    except FileNotFoundError:
        raise NoDevServer(
            f"no dev server is running here ({target} not found); start one with `make dev`"
        ) from None
    except (OSError, ValueError) as exc:
        raise NoDevServer(f"cannot read {target}: {exc}") from None
    pid = values.pop(PID, "")
    if not pid.isdigit() or not _alive(int(pid)):
        raise NoDevServer(
            f"the dev server that wrote {target} (pid {pid or '?'}) has stopped; "
            "start one with `make dev`"
        )
    return values


def _parse(target: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in target.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, separator, value = line.partition("=")
        if not separator:
            raise ValueError(f"not NAME=value: {line!r}")
        words = shlex.split(value)
        if len(words) > 1:
            raise ValueError(f"one value per line: {line!r}")
        values[name.strip()] = words[0] if words else ""
    return values


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but alive
    return True
