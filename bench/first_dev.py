"""A newcomer's first `make dev`: fresh clone to a page answering /healthz.

    python3 bench/first_dev.py [--cold] [--source REPO]

Clones REPO (default: this checkout's committed HEAD) into a temporary
directory, runs `make dev PORT=<free> SMTP_PORT=<free>` there and times it
until GET /healthz answers 200: the uv bootstrap, `uv sync` of uv.lock, the
embedded PostgreSQL's initdb, migrations and the demo data all count. Then it
stops the server as Ctrl-C would and times a second `make dev` in the same
clone (nothing left to install, the database exists) as the reference.

`--cold` gives pip and uv empty download caches of their own, as on a machine
that never installed these packages; without it their usual caches are used,
as for anyone who has run the project before.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT_SECONDS = 180.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
            return bool(answer.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def time_make_dev(clone: Path, env: dict[str, str], log: Path) -> float:
    """Seconds from `make dev` to the first 200 from /healthz; the server is stopped after."""
    port, smtp_port = free_port(), free_port()
    started = time.perf_counter()
    with log.open("ab") as out:
        process = subprocess.Popen(
            ["make", "dev", f"PORT={port}", f"SMTP_PORT={smtp_port}"],
            cwd=clone,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            while not healthy(port):
                if process.poll() is not None:
                    raise SystemExit(f"make dev exited with {process.returncode}; see {log}")
                if time.perf_counter() - started > LIMIT_SECONDS:
                    raise SystemExit(f"no answer from /healthz after {LIMIT_SECONDS:.0f} s")
                time.sleep(0.05)
            elapsed = time.perf_counter() - started
        finally:
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="empty pip and uv download caches")
    parser.add_argument("--source", default=str(ROOT), help="repository to clone (this one)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and its log")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="first-dev-"))
    clone = work / "clone"
    log = work / "make-dev.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEWSLETTER_", "VIRTUAL_ENV"))}
    if args.cold:
        env["UV_CACHE_DIR"] = str(work / "uv-cache")
        env["PIP_CACHE_DIR"] = str(work / "pip-cache")
    try:
        started = time.perf_counter()
        subprocess.run(["git", "clone", "--quiet", args.source, str(clone)], check=True)
        cloned = time.perf_counter() - started
        first = time_make_dev(clone, env, log)
        again = time_make_dev(clone, env, log)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(work)], check=False)
    caches = "cold caches" if args.cold else "warm download caches"
    print(f"git clone             {cloned:6.1f} s")
    print(f"first make dev        {first:6.1f} s to /healthz ({caches})")
    print(f"second make dev       {again:6.1f} s to /healthz (reference: all installed)")
    print(f"ratio first/second    {first / again:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
