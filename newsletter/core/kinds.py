"""The closed lists and bounds the whole service shares, each written once.

The roles people and API keys hold, the states a subscriber can be in, and
the largest row id. The schema's CHECK constraints say the same about roles
and statuses; ``tests/core/test_kinds.py`` keeps the two in step.
"""

from __future__ import annotations

from typing import Literal, get_args

Role = Literal["editor", "ops", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)

SubscriberStatus = Literal["pending", "active", "unsubscribed", "suppressed", "lapsed"]
SUBSCRIBER_STATUSES: tuple[SubscriberStatus, ...] = get_args(SubscriberStatus)

# Ids are bigint: a larger number cannot name a row, and asyncpg would
# overflow sending it, so every parameter and check bounds ids by this.
MAX_ID = 2**63 - 1


def role_allows(held: str, needed: str) -> bool:
    """Admins may do everything; editors and ops only their own role's work."""
    return held == "admin" or held == needed
