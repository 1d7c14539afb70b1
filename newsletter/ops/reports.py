"""What the command line prints for people and scripts, beside the sending
issue's view (``status_view.py``): the privacy officer's access log, the
console accounts, the totals of a run."""

from __future__ import annotations

import json
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from newsletter.ops.access_log import AccessEntry
from newsletter.ops.users import User

# Subscribers named in one access-log line before the rest are counted.
NAMED_SUBSCRIBERS = 10


def access_json(entry: AccessEntry, zone: ZoneInfo) -> str:
    """One JSON object on one line, for a script."""
    return json.dumps(
        {
            "id": entry.id,
            "at": entry.occurred_at.astimezone(zone).isoformat(),
            "actor": entry.actor_ref,
            "actor_name": entry.actor_name,
            "role": entry.role,
            "ip": entry.ip,
            "action": entry.action,
            "subscriber_ids": entry.subscriber_ids,
            "query": entry.query,
            "rows": entry.rows,
        },
        ensure_ascii=False,
    )


def access_line(entry: AccessEntry, zone: ZoneInfo) -> str:
    """When, who (and in which role), from where, what was read, and whose data."""
    when = entry.occurred_at.astimezone(zone)
    whose = ", ".join(f"#{s}" for s in entry.subscriber_ids[:NAMED_SUBSCRIBERS])
    if len(entry.subscriber_ids) > NAMED_SUBSCRIBERS:
        whose += f" 외 {len(entry.subscriber_ids) - NAMED_SUBSCRIBERS}명"
    filters = " ".join(f"{k}={v}" for k, v in entry.query.items())
    return (
        f"{when:%Y-%m-%d %H:%M:%S} {when.tzname()}  {entry.actor_name} ({entry.actor_ref}, "
        f"{entry.role})  {entry.ip or '명령줄'}  {entry.described}"
        + (f"  [{filters}]" if filters else "")
        + (f"  대상 {whose}" if whose else "")
    )


def access_count(count: int) -> str:
    return f"{count}건"


def user_line(user: User) -> str:
    """Tab-separated: id, role, state, second factor, name and address."""
    state = "disabled" if user.disabled else "enabled"
    factor = "totp" if user.totp_enabled else ("totp required" if user.totp_required else "-")
    return f"#{user.id}\t{user.role}\t{state}\t{factor}\t{user.name} <{user.email}>"


def counts_line(counts: Mapping[str, int]) -> str:
    """'messages: 3, suppressed: 1, ...' in the order given."""
    return ", ".join(f"{name}: {count}" for name, count in counts.items())
