"""The pre-send check's speed: a 10-item issue with 40 links and 10 images
against slow local web servers (every answer takes 1 s), then the same check
again (answered from the kept result).

    .venv/bin/python bench/checks.py [--delay 1.0] [--hosts 8]

Reference, computed in the same run: the least time the rules allow --
every request waits ``--delay``, at most 8 at a time (``linkcheck.AT_ONCE``),
so ``ceil(requests / 8) × delay``. The goal: under 10 s for the first check.
Needs PostgreSQL (NEWSLETTER_BENCH_DATABASE_URL, default the local server).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import math
import time
import uuid

import httpx
from common import drop_database, fresh_database

from newsletter.app import create_app
from newsletter.core.db import Database
from newsletter.core.settings import Settings
from newsletter.editorial import linkcheck
from newsletter.editorial.feeds import FeedFetchPolicy
from newsletter.ops.apikeys import create_key
from tests.support.dkim import DOMAIN, SELECTOR, session_key
from tests.support.dns import dns_server
from tests.support.websites import Website, website

ITEMS = 10
LINKS_PER_ITEM = 4  # the item's own link and three in its body


async def measure(url: str, sites: list[Website], dns_port: int) -> tuple[float, float, int, int]:
    settings = Settings.from_env(
        {
            "NEWSLETTER_DATABASE_URL": url,
            "NEWSLETTER_SECRET_KEY": "bench-Qz7vR2kLp9XwN4tB6yHc3mJ8",
            "NEWSLETTER_BASE_URL": sites[0].url(""),
            "NEWSLETTER_DNS_RESOLVER": f"127.0.0.1:{dns_port}",
            "NEWSLETTER_DKIM_SELECTOR": SELECTOR,
            "NEWSLETTER_DKIM_PRIVATE_KEY": session_key().private_pem,
        }
    )
    policy = FeedFetchPolicy(frozenset(ipaddress.ip_address(s.host) for s in sites))
    db = await Database.connect(url, min_size=1, max_size=4)
    try:
        async with db.transaction() as conn:
            _, key = await create_key(conn, role="editor", name="bench")
            await conn.execute(
                "INSERT INTO subscribers (email, status) VALUES ('a@b.kr', 'active')"
            )
        headers = {"Authorization": f"Bearer {key}"}
        app = create_app(settings, db, feed_policy=policy)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="https://b.test") as http:
            ids = []
            for n in range(ITEMS):
                site = sites[n % len(sites)]
                links = [sites[(n + k) % len(sites)].url(f"/page/{n}/{k}") for k in range(1, 4)]
                body = "".join(
                    f'<p><a href="{link}">소식 {n}-{k}</a></p>' for k, link in enumerate(links)
                )
                answer = await http.post(
                    "/api/v1/news-items",
                    json={
                        "title": f"김포 소식 {n}",
                        "body": body,
                        "link": site.url(f"/news/{n}"),
                        "image_url": site.url(f"/photo-{n}.png"),
                        "image_alt": f"김포 소식 {n} 사진",
                    },
                    headers=headers,
                )
                ids.append(answer.json()["id"])
            created = await http.post(
                "/api/v1/issues",
                json={"title": "12월 김포 소식", "intro": "올해 마지막 소식", "news_item_ids": ids},
                headers=headers,
            )
            path = f"/api/v1/issues/{created.json()['id']}/checks"
            started = time.perf_counter()
            first = await http.get(path, headers=headers, timeout=120)
            cold = time.perf_counter() - started
            requests = sum(len(site.requests) for site in sites)
            started = time.perf_counter()
            second = await http.get(path, headers=headers, timeout=120)
            kept = time.perf_counter() - started
            assert first.status_code == second.status_code == 200, first.text
            again = sum(len(site.requests) for site in sites) - requests
            return cold, kept, requests, again
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each answer takes")
    parser.add_argument("--hosts", type=int, default=8, help="web servers (127.0.0.1 …)")
    args = parser.parse_args()
    name = f"nl_bench_checks_{uuid.uuid4().hex[:6]}"
    url = asyncio.run(fresh_database(name))
    try:
        with contextlib.ExitStack() as stack:
            sites = [
                stack.enter_context(website(f"127.0.0.{n + 1}", delay=args.delay))
                for n in range(args.hosts)
            ]
            records = {f"{SELECTOR}._domainkey.{DOMAIN}": session_key().record}
            dns = stack.enter_context(dns_server(records))
            cold, kept, requests, again = asyncio.run(measure(url, sites, dns.port))
    finally:
        asyncio.run(drop_database(name))
    ideal = math.ceil(requests / linkcheck.AT_ONCE) * args.delay
    urls = ITEMS * (LINKS_PER_ITEM + 1) + 2
    print(f"{ITEMS} items, {ITEMS * LINKS_PER_ITEM} links + {ITEMS} images + archive and")
    print(f"unsubscribe = {urls} addresses on {args.hosts} hosts, {args.delay:g} s an answer")
    print(f"{'case':<28}{'s':>8}{'requests':>10}{'ideal s':>9}{'ratio':>7}")
    print(f"{'first check':<28}{cold:>8.2f}{requests:>10}{ideal:>9.1f}{cold / ideal:>7.2f}")
    print(f"{'same content again (kept)':<28}{kept:>8.3f}{again:>10}{'':>9}{kept / cold:>7.3f}")


if __name__ == "__main__":
    main()
