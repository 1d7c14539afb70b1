"""Debian packages a test or bench needs (Postfix, socat), installed on first use.

The project's own files install what its tests need: a fresh machine has
neither. One attempt per package per process; a failure says why, so the
caller can skip with that reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

APT_LOCK_WAIT = "DPkg::Lock::Timeout=300"  # another run may be installing right now


class PackageUnavailable(RuntimeError):
    """A package is missing and cannot be installed on this machine."""


@functools.cache
def ensure_package(package: str, program: str, debconf: str | None = None) -> None:
    """Install ``package`` unless ``program`` is already on the machine.

    ``debconf`` is a ``debconf-set-selections`` line answered before the
    install (so it never asks). Raises :class:`PackageUnavailable` with the
    reason when it cannot be done (not root, no apt-get, the install fails).
    """
    if shutil.which(program) or os.path.exists(program):
        return
    if os.geteuid() != 0:
        raise PackageUnavailable(f"{package} is not installed and only root can install it")
    if not shutil.which("apt-get"):
        raise PackageUnavailable(f"{package} is not installed and this machine has no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if debconf is not None:
        subprocess.run(["debconf-set-selections"], input=debconf.encode(), check=True, env=env)
    install = ["apt-get", "install", "-y", "-q", "-o", APT_LOCK_WAIT, package]
    done = subprocess.run(install, env=env, capture_output=True, check=False)
    if done.returncode != 0:  # a fresh machine may not have read the package lists yet
        update = ["apt-get", "update", "-q", "-o", APT_LOCK_WAIT]
        subprocess.run(update, env=env, capture_output=True, check=False)
        done = subprocess.run(install, env=env, capture_output=True, check=False)
    if done.returncode != 0 or not (shutil.which(program) or os.path.exists(program)):
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        raise PackageUnavailable(f"apt-get install {package} failed: {' | '.join(tail)}")
