"""Signed tokens for links in mail: one salt per purpose.

A token names a subscriber by their opaque public id (16 random hex digits,
``subscribers.public_id``), never by the row id: row ids are sequential and
would tell anyone holding one link how many people signed up, and when. The
token is ``<public id>.<signature>`` (``.<timestamp>`` before the signature
for the links that expire): 60 to 67 characters, under the ~75 that keep a
``List-Unsubscribe`` header from folding.

Links mailed before public ids existed carry the row id in the older
serialised form; they still read (their signatures are ours), as a
:class:`SubscriberRef` holding the row id, so an unsubscribe link in last
year's issue keeps working. Nothing mints that form any more.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from itsdangerous import (
    BadSignature,
    SignatureExpired,
    Signer,
    TimestampSigner,
    URLSafeSerializer,
    URLSafeTimedSerializer,
)

from newsletter.core.kinds import MAX_ID

PUBLIC_ID = re.compile(r"[0-9a-f]{16}")


class InvalidToken(ValueError):
    """The token was tampered with, is for another purpose, or is malformed."""


class ExpiredToken(InvalidToken):
    """The token was genuine but is too old."""


@dataclass(frozen=True, slots=True)
class SubscriberRef:
    """Whom a signed link or address names: a public id (everything minted
    now) or, for links mailed before public ids, a row id."""

    public_id: str | None = None
    row_id: int | None = None

    @classmethod
    def public(cls, value: str) -> SubscriberRef:
        if not PUBLIC_ID.fullmatch(value):
            raise InvalidToken("token does not name a subscriber")
        return cls(public_id=value)

    @classmethod
    def legacy(cls, value: object) -> SubscriberRef:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_ID:
            raise InvalidToken("token does not name a subscriber")
        return cls(row_id=value)


@dataclass(frozen=True)
class Tokens:
    secret_key: str
    confirm_max_age_seconds: int = 3 * 24 * 3600

    def confirm(self, public_id: str) -> str:
        return _timed_signer(self.secret_key, "confirm").sign(public_id).decode("ascii")

    def read_confirm(self, token: str) -> tuple[SubscriberRef, datetime]:
        """Whom the link names and when it was made (aware, UTC)."""
        return self._read_timed(token, "confirm", self.confirm_max_age_seconds, "confirmation link")

    def reconfirm(self, public_id: str) -> str:
        """Link in the re-confirmation mail (see audience.lifecycle); timed by the caller."""
        return _timed_signer(self.secret_key, "reconfirm").sign(public_id).decode("ascii")

    def read_reconfirm(self, token: str, max_age_seconds: int) -> tuple[SubscriberRef, datetime]:
        return self._read_timed(token, "reconfirm", max_age_seconds, "re-confirmation link")

    def unsubscribe(self, public_id: str) -> str:
        return _signer(self.secret_key, "unsubscribe").sign(public_id).decode("ascii")

    def read_unsubscribe(self, token: str) -> SubscriberRef:
        try:
            value = _signer(self.secret_key, "unsubscribe").unsign(token).decode("ascii")
        except (BadSignature, UnicodeError):
            pass
        else:
            return SubscriberRef.public(value)
        try:
            legacy = _legacy_serializer(self.secret_key, "unsubscribe").loads(token)
        except BadSignature:
            raise InvalidToken("unsubscribe link is not valid") from None
        return SubscriberRef.legacy(legacy)

    def _read_timed(
        self, token: str, purpose: str, max_age: int, what: str
    ) -> tuple[SubscriberRef, datetime]:
        try:
            raw, issued = _timed_signer(self.secret_key, purpose).unsign(
                token, max_age=max_age, return_timestamp=True
            )
        except SignatureExpired:
            raise ExpiredToken(f"{what} expired") from None
        except (BadSignature, UnicodeError):
            pass
        else:
            return SubscriberRef.public(raw.decode("ascii", "replace")), _utc(issued)
        try:
            value, issued = _legacy_timed_serializer(self.secret_key, purpose).loads(
                token, max_age=max_age, return_timestamp=True
            )
        except SignatureExpired:
            raise ExpiredToken(f"{what} expired") from None
        except BadSignature:
            raise InvalidToken(f"{what} is not valid") from None
        return SubscriberRef.legacy(value), _utc(issued)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# Signers are immutable once built; building one per token cost about a
# tenth of a worker's CPU per bulk message (each needs an unsubscribe token).
@lru_cache(maxsize=64)
def _signer(secret_key: str, purpose: str) -> Signer:
    return Signer(secret_key, salt=f"{purpose}:public-id", digest_method=hashlib.sha256)


@lru_cache(maxsize=64)
def _timed_signer(secret_key: str, purpose: str) -> TimestampSigner:
    return TimestampSigner(secret_key, salt=f"{purpose}:public-id", digest_method=hashlib.sha256)


# The forms mailed before public ids: read, never minted.
@lru_cache(maxsize=64)
def _legacy_timed_serializer(secret_key: str, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(
        secret_key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256}
    )


@lru_cache(maxsize=64)
def _legacy_serializer(secret_key: str, salt: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=salt, signer_kwargs={"digest_method": hashlib.sha256})
