"""The signup form's proof-of-work (ALTCHA), self-hosted: no third party sees residents.

The browser's widget fetches a challenge, spends about a second of CPU on it
and posts the answer with the form. That costs a person nothing and a bot
that signs up thousands of strangers a great deal. The challenge is signed
with a key derived from SECRET_KEY (no state until it is answered); an answer
is accepted once (``spent_challenges``) and only before its challenge expires.

A form posted without an answer (no JavaScript) is still taken, under a
smaller per-IP limit (see ``subscribers.sign_up``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import altcha

from newsletter.core.db import Database
from newsletter.core.errors import InvalidInput
from newsletter.core.i18n import N_

ALGORITHM = "PBKDF2/SHA-256"
# About 256 tries of 10,000 PBKDF2 rounds: well under a second in a browser's
# workers; checking an answer is one derivation (a few milliseconds).
COST = 10_000
LIFETIME = timedelta(minutes=20)  # long enough to fill in the form slowly
MAX_ANSWER_LENGTH = 4096  # a real answer is about 600 characters


@dataclass(frozen=True, slots=True)
class ChallengeKeys:
    """The key that signs challenges, derived from SECRET_KEY for this purpose alone."""

    challenge: bytes

    @classmethod
    def from_secret(cls, secret_key: str) -> ChallengeKeys:
        return cls(hmac.new(secret_key.encode(), b"altcha challenge", hashlib.sha256).digest())


def new_challenge(keys: ChallengeKeys, now: datetime | None = None) -> dict[str, Any]:
    """A fresh challenge as the widget expects it (JSON)."""
    expires = (now or datetime.now(UTC)) + LIFETIME
    challenge = altcha.create_challenge(
        ALGORITHM,
        COST,
        expires_at=int(expires.timestamp()),
        hmac_secret=keys.challenge,
    )
    result: dict[str, Any] = challenge.to_dict()
    return result


class ChallengeFailed(InvalidInput):
    """The form carried an answer that is wrong, expired or already used."""

    def __init__(self) -> None:
        super().__init__(
            N_("자동 입력 방지 확인에 실패했습니다. 확인란을 다시 눌러 주세요."), field="altcha"
        )


async def spend(db: Database, keys: ChallengeKeys, answer: str) -> None:
    """Accept ``answer`` once, or raise :class:`ChallengeFailed`."""
    if len(answer) > MAX_ANSWER_LENGTH:
        raise ChallengeFailed()
    # Checking re-derives the key (10,000 PBKDF2 rounds): off the event loop.
    result = await asyncio.to_thread(altcha.verify_solution, answer, keys.challenge)
    if not result.verified:
        raise ChallengeFailed()
    payload = altcha.Payload.from_base64(answer)
    expires_at = payload.challenge.parameters.expires_at
    if not isinstance(expires_at, int):  # we always set one; the signature vouches for it
        raise ChallengeFailed()
    spent = await db.fetchval(
        "spend_challenge",
        payload.challenge.signature,
        datetime.fromtimestamp(expires_at, UTC),
    )
    if spent is None:
        raise ChallengeFailed()
