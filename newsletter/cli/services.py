"""The long-running commands (``dev``, ``serve``, ``worker``) and ``migrate``."""

from __future__ import annotations

import argparse
import asyncio
import sys

from newsletter.cli.command import (
    arg,
    command,
    open_database,
    refuse_dev_off_loopback,
    require_database_url,
    stop_on_signals,
)
from newsletter.core.settings import Settings, is_loopback


@command(
    "dev",
    "run everything locally: embedded PostgreSQL, capture SMTP, web and worker",
    arg("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)"),
    arg("--port", type=int, default=8000, help="web port (8000)"),
    arg("--smtp-port", type=int, default=2525, help="capture SMTP port (2525)"),
)
async def dev(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.dev.server import run_dev

    refuse_dev_off_loopback(settings, args.host, "`newsletter dev`")
    return await run_dev(settings, host=args.host, port=args.port, smtp_port=args.smtp_port)


@command(
    "serve",
    "run the web application (HTTP)",
    arg("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)"),
    arg("--port", type=int, default=8000, help="port to listen on (8000)"),
)
async def serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from newsletter.app import create_app, create_metrics_app
    from newsletter.web.http import server

    refuse_dev_off_loopback(settings, args.host, "`newsletter serve`")
    async with open_database(settings, service=True) as database:
        public = uvicorn.Server(
            server.config(
                create_app(settings, database),
                settings,
                host=args.host,
                port=args.port,
                proxy_headers=True,
                forwarded_allow_ips=settings.trusted_proxies,
            )
        )
        if settings.metrics_port is None:
            await public.serve()
            return 0
        # Prometheus scrapes this one; the public port answers /metrics to ops keys only.
        internal = server.CompanionServer(
            server.config(
                create_metrics_app(settings, database),
                settings,
                host=settings.metrics_host,
                port=settings.metrics_port,
            )
        )
        companion = asyncio.create_task(internal.serve())
        try:
            await public.serve()
        finally:
            internal.should_exit = True
            await companion
    return 0


@command(
    "worker",
    "send queued mail; run as many as you like, on any host "
    "(SIGTERM: finish the messages in flight, give the rest back, exit)",
    arg(
        "--lease-seconds",
        type=float,
        default=60.0,
        help="how long claimed mail stays ours without a heartbeat (60); a killed "
        "worker's mail is taken over within seconds, the lease is for a worker "
        "cut off from the database",
    ),
)
async def worker(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.delivery.worker import run_worker
    from newsletter.ops.metrics import serve_worker_metrics

    require_database_url(settings)
    if settings.dev and not (
        all(is_loopback(relay.host) for relay in settings.smtp_relays)
        and is_loopback(settings.metrics_host)
    ):
        raise SystemExit(
            "newsletter: configuration error: NEWSLETTER_DEV=true: a dev-mode worker sends only "
            "to an SMTP server on loopback and exports metrics on loopback only; unset "
            "NEWSLETTER_DEV in production"
        )
    if settings.metrics_port is not None:
        try:  # this worker's own SMTP latency and rate-limit waits, for Prometheus
            serve_worker_metrics(settings.metrics_port, settings.metrics_host)
        except OSError as exc:
            print(
                f"newsletter: cannot export metrics on "
                f"{settings.metrics_host}:{settings.metrics_port}: {exc}",
                file=sys.stderr,
            )
            return 2
    stop = stop_on_signals()
    async with open_database(settings, service=True) as database:
        await run_worker(settings, database=database, stop=stop, lease_seconds=args.lease_seconds)
    return 0


@command("migrate", "apply pending database migrations (safe to run concurrently)")
async def apply_migrations(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.core.db import migrate

    # Its own connection, not a pool: migrations take an advisory lock on it.
    applied = await migrate(require_database_url(settings))
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0
