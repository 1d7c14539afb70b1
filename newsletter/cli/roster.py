"""Who gets the newsletter: roster import and export, erasure, bounce mailboxes."""

from __future__ import annotations

import argparse
import contextlib
import sys

from newsletter.cli.command import arg, command, one_of, open_database
from newsletter.core.kinds import SUBSCRIBER_STATUSES
from newsletter.core.settings import Settings
from newsletter.ops.audit import CLI_ACTOR


@command(
    "import",
    "import subscribers from a CSV (email,name,subscribed_at,source; UTF-8 or CP949)",
    arg("file", help="the CSV file (Excel's CSV export is fine)"),
    arg(
        "--mode",
        choices=["confirmed", "invite"],
        default="confirmed",
        help="confirmed: consent already given (needs --source); invite: mail a confirmation",
    ),
    arg("--source", help="where and how these people consented"),
)
async def import_roster(args: argparse.Namespace, settings: Settings) -> int:
    from datetime import UTC, datetime

    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    from newsletter.audience.roster import import_csv

    columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn())
    async with open_database(settings) as database:
        try:
            with (
                open(args.file, "rb") as binary,  # noqa: ASYNC230 - a CLI, the loop has nothing else to do
                Progress(*columns, TimeRemainingColumn(), transient=True) as bar,
            ):
                task = bar.add_task("reading", total=None)
                report = await import_csv(
                    database,
                    settings,
                    binary,
                    mode=args.mode,
                    source=args.source,
                    actor=CLI_ACTOR,
                    now=datetime.now(UTC),
                    progress=lambda done, total: bar.update(
                        task,
                        completed=done,
                        total=total,
                        description="reading" if done < total else "merging",
                    ),
                )
        except OSError as exc:
            print(f"newsletter: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
    for item in report.errors:
        print(f"line {item.line}: {item.reason}", file=sys.stderr)
    for item in report.skipped_rows:
        print(f"line {item.line}: skipped: {item.reason}", file=sys.stderr)
    print(
        f"{report.rows} rows ({report.encoding}): {report.inserted} inserted, "
        f"{report.updated} updated, {report.unchanged} unchanged, {report.duplicates} duplicates, "
        f"{report.skipped} skipped, {report.invalid} invalid, {report.invited} invited"
    )
    return 0 if report.invalid == 0 else 1


@command(
    "export",
    "export subscribers as CSV (UTF-8)",
    arg("--bom", action="store_true", help="add a BOM for Korean Excel"),
    arg("-o", "--output", help="file to write (default: standard output)"),
    arg("--status", choices=SUBSCRIBER_STATUSES, help="only subscribers with this status"),
    arg("--reason", help="why the list is taken out (kept in the access log)"),
)
async def export_roster(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.audience import personal_data

    async with open_database(settings) as database:
        chunks = await personal_data.export(
            database,
            settings,
            personal_data.Reader.command_line(),
            status=args.status,
            reason=args.reason,
            bom=args.bom,
        )
        with contextlib.ExitStack() as stack:
            out = stack.enter_context(open(args.output, "wb")) if args.output else sys.stdout.buffer  # noqa: ASYNC230
            async for chunk in chunks:
                out.write(chunk)
            out.flush()
    return 0


@command(
    "erase",
    "erase a person (PIPA): delete their data, keep a salted hash out",
    arg("email", help="the address to erase"),
)
async def erase(args: argparse.Namespace, settings: Settings) -> int:
    from newsletter.audience.lifecycle import erase_address

    async with open_database(settings) as database:
        erased = await erase_address(database, settings, email=args.email, actor=CLI_ACTOR)
    if erased.subscriber_id is None:
        print("not on the list; the address is now suppressed so it is never imported or mailed")
    else:
        print(f"erased subscriber #{erased.subscriber_id}; only a salted hash remains")
    return 0


@command(
    "bounces",
    "apply bounce messages (DSNs) from an mbox file or a Maildir",
    one_of(
        arg("--mbox", metavar="FILE", help="an mbox file of bounce messages"),
        arg("--maildir", metavar="DIR", help="a Maildir of bounce messages"),
        required=True,
    ),
)
async def apply_bounces(args: argparse.Namespace, settings: Settings) -> int:
    import mailbox

    from newsletter.audience import bounces
    from newsletter.ops.reports import counts_line

    box: mailbox.Mailbox
    try:
        if args.mbox:
            box = mailbox.mbox(args.mbox, create=False)
        else:
            box = mailbox.Maildir(args.maildir, create=False)
    except (OSError, mailbox.NoSuchMailboxError) as exc:
        print(f"newsletter: cannot open {args.mbox or args.maildir}: {exc}", file=sys.stderr)
        return 2
    totals = {
        "messages": 0,
        "suppressed": 0,
        "counted": 0,
        "unsubscribed": 0,
        "unverified": 0,
        "unmatched": 0,
        "ignored": 0,
        "duplicate": 0,
        "too large": 0,
    }
    try:
        async with open_database(settings) as db:
            for key in box.iterkeys():
                raw = box.get_bytes(key)
                totals["messages"] += 1
                if len(raw) > settings.bounce_max_bytes:  # untrusted mail: refused unread
                    totals["too large"] += 1
                    continue
                result = await bounces.process(db, settings, raw)
                for applied in result.applied:  # every action is told, new ones included
                    totals[applied.action] = totals.get(applied.action, 0) + 1
                totals["unsubscribed"] += len(result.unsubscribed)
                totals["unmatched"] += len(result.unmatched)
                totals["ignored"] += 1 if result.ignored else 0
                totals["duplicate"] += 1 if result.duplicate else 0
    finally:
        box.close()
    print(counts_line(totals))
    return 0
