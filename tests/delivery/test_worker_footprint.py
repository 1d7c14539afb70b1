"""A sending worker carries only what sending needs (issue 23.4: peak RSS)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

# What `newsletter worker` loads before its loop, without a DKIM key: the
# word lists of the key check (zxcvbn) and the signer's libraries must not be
# among them.
PROBE = """
import sys
from newsletter.cli import build_parser
from newsletter.core.dkim import signer_for
from newsletter.core.settings import Settings
from newsletter.delivery import worker
settings = Settings.from_env({
    "NEWSLETTER_DATABASE_URL": "postgresql://x@127.0.0.1/y",
    "NEWSLETTER_SECRET_KEY": sys.argv[1],
})
assert signer_for(settings) is None
print(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
"""


def run_probe(key: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, key],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_an_unsigned_worker_does_not_load_the_key_checker_or_the_signer() -> None:
    probe = run_probe("worker-Qz7vR2kLp9XwN4tB6yHc3mJ8")
    assert probe.returncode == 0, probe.stderr
    loaded = set(probe.stdout.split())
    assert "newsletter" in loaded and "asyncpg" in loaded
    assert loaded.isdisjoint({"zxcvbn", "dkim", "dns", "cryptography", "litestar"})


def test_a_worker_with_a_guessable_key_still_refuses_to_start() -> None:
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": "postgresql://x@127.0.0.1:1/y",
        "NEWSLETTER_SECRET_KEY": "password12345678password",
    }
    env.pop("NEWSLETTER_DEV", None)
    started = subprocess.run(
        [sys.executable, "-m", "newsletter", "worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert started.returncode == 2
    assert "NEWSLETTER_SECRET_KEY: too easy to guess" in started.stderr
