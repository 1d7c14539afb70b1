"""CSV import speed and memory: our import vs a plain COPY of the same file.

    .venv/bin/python bench/import.py [--rows 20000 1000000]

Uses $NEWSLETTER_BENCH_DATABASE_URL (or $NEWSLETTER_TEST_DATABASE_URL, else
postgresql://postgres@127.0.0.1:5432/postgres) to create a scratch database,
migrates it, and for each size:

- writes a realistic CSV (Korean names, a few big domains, dates, sources;
  UTF-8 with header) under a temporary directory;
- reference: ``COPY ref FROM STDIN (FORMAT csv, HEADER)`` of that file into an
  empty four-text-column table (no validation, no indexes, no merge);
- ours: ``newsletter.roster.import_csv`` (mode confirmed) into an empty roster:
  decode, validate every address, hash, COPY to staging, merge with consent
  evidence, all in one transaction;
- peak RSS of this process during the import (sampled every 20 ms), as the
  increase over the RSS before it: flat means it does not grow with the file.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.audience.roster import import_csv
from newsletter.core.db import Database, migrate
from newsletter.core.settings import Settings
from newsletter.ops.audit import Actor

DOMAINS = (
    ["naver.com"] * 8
    + ["gmail.com"] * 5
    + ["daum.net"] * 3
    + [
        "hanmail.net",
        "nate.com",
        "kakao.com",
        "gimpo.go.kr",
        "korea.kr",
    ]
)
SURNAMES = "김이박최정강조윤장임한오서신권황안송류홍"
GIVEN = "민서준지현우수영도윤하은재연성호예진"


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "subscribed_at", "source"])
        for i in range(rows):
            domain = rng.choice(DOMAINS) if i % 50 else f"corp{i % 997}.co.kr"
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            day = f"20{rng.randint(18, 25)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
            writer.writerow([f"user{i}.{rng.randint(0, 99)}@{domain}", name, day, "시청 홈페이지"])


class PeakRss:
    """Samples this process's RSS in a thread; reports the peak over a baseline."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.stop = threading.Event()
        self.baseline = self.peak = self.process.memory_info().rss

    def __enter__(self) -> PeakRss:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.baseline) / 2**20


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def run(sizes: list[int]) -> None:
    admin_url = (
        os.environ.get("NEWSLETTER_BENCH_DATABASE_URL")
        or os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    name = f"nl_bench_import_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin_url, name)
    try:
        await migrate(url)
        settings = Settings.from_env(
            {
                "NEWSLETTER_DATABASE_URL": url,
                "NEWSLETTER_SECRET_KEY": "bench-Qz7vR2kLp9XwN4tB6yHc3mJ8",
            }
        )
        db = await Database.connect(url, min_size=1, max_size=2)
        actor = Actor(name="bench")
        print(
            f"{'rows':>9} {'MB':>6} {'COPY ref s':>10} {'import s':>9} {'ratio':>6} "
            f"{'rows/s':>9} {'peak RSS +MB':>12}"
        )
        with tempfile.TemporaryDirectory() as tmp:
            for rows in sizes:
                path = Path(tmp) / f"subscribers_{rows}.csv"
                write_csv(path, rows)
                async with db.pool.acquire() as conn:
                    await conn.execute("TRUNCATE subscribers, suppressions CASCADE")
                    await conn.execute("DROP TABLE IF EXISTS ref")
                    await conn.execute(
                        "CREATE TABLE ref (email text, name text, subscribed_at text, source text)"
                    )
                    await conn.execute("CHECKPOINT")
                    started = time.perf_counter()
                    await conn.copy_to_table("ref", source=path, format="csv", header=True)
                    reference = time.perf_counter() - started
                    await conn.execute("DROP TABLE ref")
                    await conn.execute("CHECKPOINT")
                with PeakRss() as memory, path.open("rb") as binary:
                    started = time.perf_counter()
                    report = await import_csv(
                        db,
                        settings,
                        binary,
                        mode="confirmed",
                        source="bench",
                        actor=actor,
                        now=datetime.now(UTC),
                    )
                    ours = time.perf_counter() - started
                assert report.inserted + report.duplicates == rows, report.as_dict()
                size_mb = path.stat().st_size / 2**20
                print(
                    f"{rows:>9,} {size_mb:>6.1f} {reference:>10.2f} {ours:>9.2f} "
                    f"{ours / reference:>6.1f} {rows / ours:>9,.0f} {memory.growth_mb:>12.1f}"
                )
                path.unlink()
        await db.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[20_000, 1_000_000])
    asyncio.run(run(parser.parse_args().rows))


if __name__ == "__main__":
    main()
