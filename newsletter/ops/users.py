"""People's accounts for the console: passwords (argon2id), TOTP, roles.

API keys stay for scripts; a person logs in with an account of their own so
that every change in the audit trail carries their name. Passwords are hashed
with argon2id (argon2-cffi's RFC 9106 parameters) in a worker thread, since
one hash takes tens of milliseconds of CPU and the event loop serves others
meanwhile. An unknown address costs the same hash as a wrong password, so
login timing does not tell which addresses have accounts.

Messages are Korean: the console and the command line are their only readers.
"""

from __future__ import annotations

import asyncio
import hmac
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from newsletter.core.addresses import normalise_email
from newsletter.core.db import QUERIES, Connection, Record
from newsletter.core.errors import Conflict, InvalidInput, NotFound
from newsletter.core.i18n import N_
from newsletter.core.kinds import MAX_ID, ROLES, role_allows
from newsletter.ops.audit import Actor, record

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 256  # argon2 takes any length; a cap keeps a request's work bounded
MAX_NAME_LENGTH = 100
NO_USER = N_("계정 #%(id)s이(가) 없습니다.")
WRONG_CODE = N_("인증 코드가 맞지 않습니다. 앱에 지금 보이는 6자리 숫자를 입력해 주세요.")
# zxcvbn's score 3: more than 10^8 guesses even for an attacker who starts
# with the 30,000 most common leaked passwords, words, names, keyboard walks,
# dates and their l33t and reversed forms (zxcvbn ships those lists; nothing
# is asked of a remote service). That is what a stolen argon2 hash needs; the
# login throttle alone would accept far weaker ones.
MIN_PASSWORD_SCORE = 3
# zxcvbn's matching grows with the square of the length; its own limit.
PASSWORD_JUDGED_CHARACTERS = 72
# Words an attacker of this service tries first, beside the person's own.
_SERVICE_WORDS = ("gimpo", "김포", "김포시", "newsletter", "뉴스레터", "admin", "console")
TOTP_ISSUER = "김포시 뉴스레터"
# Accept the code of the previous and the next 30-second step as well: phone
# clocks drift and people type slowly.
TOTP_WINDOW_STEPS = 1
# Generated passwords: groups of an alphabet without look-alikes (0/O, 1/l/I),
# 4 x 5 characters from 55 symbols = about 115 bits.
_ALPHABET = "23456789abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ"

_BASE32_SECRET = re.compile(r"[A-Z2-7]{32}")  # what new_totp_secret() makes

_hasher = PasswordHasher()  # argon2id, RFC 9106 "low memory" profile


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    name: str
    role: str
    must_change_password: bool
    totp_enabled: bool
    totp_required: bool
    disabled: bool
    has_password: bool
    sso_linked: bool
    last_login_at: datetime | None
    created_at: datetime

    def allows(self, role: str) -> bool:
        return role_allows(self.role, role)

    @property
    def actor(self) -> Actor:
        """How this person appears in the audit trail."""
        return Actor(name=f"{self.name} <{self.email}>", role=self.role, user_id=self.id)

    @property
    def needs_totp_enrolment(self) -> bool:
        return self.totp_required and not self.totp_enabled


def user_of(row: Record) -> User:
    return User(
        id=row["id"],
        email=row["email"],
        name=row["name"],
        role=row["role"],
        must_change_password=row["must_change_password"],
        totp_enabled=row["totp_secret"] is not None,
        totp_required=row["totp_required"],
        disabled=row["disabled_at"] is not None,
        has_password=row["password_hash"] is not None,
        sso_linked=row["oidc_subject"] is not None,
        last_login_at=row["last_login_at"],
        created_at=row["created_at"],
    )


# --- passwords ----------------------------------------------------------------


def generate_password() -> str:
    groups = ("".join(secrets.choice(_ALPHABET) for _ in range(5)) for _ in range(4))
    return "-".join(groups)


def check_password(password: str, *, email: str, name: str) -> str:
    """The password as it will be hashed (NFC), or InvalidInput saying why not."""
    text = unicodedata.normalize("NFC", password)
    if len(text) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            N_("비밀번호는 %(min)s자 이상이어야 합니다."), field="password", min=MIN_PASSWORD_LENGTH
        )
    if len(text) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(
            N_("비밀번호는 %(max)s자 이하여야 합니다."), field="password", max=MAX_PASSWORD_LENGTH
        )
    lowered = text.lower()
    local = email.split("@", 1)[0].lower()
    if lowered in (email.lower(), local, name.lower()) or len(set(text)) < 5:
        raise InvalidInput(
            N_("추측하기 쉬운 비밀번호입니다. 이메일이나 이름, 같은 글자의 반복은 피해 주세요."),
            field="password",
        )
    local_words = [w for w in local.replace("-", ".").replace("_", ".").split(".") if w]
    judged = zxcvbn(
        text[:PASSWORD_JUDGED_CHARACTERS],
        user_inputs=[email.lower(), local, *local_words, *name.split(), *_SERVICE_WORDS],
    )
    if judged["score"] < MIN_PASSWORD_SCORE:
        raise InvalidInput(
            N_(
                "흔히 쓰이거나 쉽게 추측되는 비밀번호입니다(예: password1234, 유출된 "
                "비밀번호, 단어와 숫자의 뻔한 조합). 서로 관계없는 단어 서너 개를 이어 쓰는 "
                "식으로 정해 주세요."
            ),
            field="password",
        )
    return text


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


def _verify(encoded: str, password: str) -> bool:
    try:
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    """A hash nobody knows the password of, for unknown addresses (same cost)."""
    return _hasher.hash(secrets.token_urlsafe(24))


async def verify_login(conn: Connection, email: str, password: str) -> User | None:
    """The enabled account with this address and password, else None.

    Whether the address is unknown, the account is disabled or SSO-only, or
    the password is wrong, the same argon2 work is done and the same None
    comes back.
    """
    text = unicodedata.normalize("NFC", password)[:MAX_PASSWORD_LENGTH]
    row = await conn.fetchrow(QUERIES.user_by_email, email.strip())
    encoded = row["password_hash"] if row is not None else None
    if encoded is None:
        await asyncio.to_thread(_verify, await asyncio.to_thread(_dummy_hash), text)
        return None
    if not await asyncio.to_thread(_verify, encoded, text):
        return None
    assert row is not None
    if row["disabled_at"] is not None:
        return None
    if _hasher.check_needs_rehash(encoded):
        await conn.execute(QUERIES.rehash_user_password, row["id"], await hash_password(text))
    return user_of(row)


# --- accounts -----------------------------------------------------------------


def _clean_name(name: str) -> str:
    text = " ".join(unicodedata.normalize("NFC", name).split())
    if not text:
        raise InvalidInput(N_("이름을 입력해 주세요."), field="name")
    if len(text) > MAX_NAME_LENGTH:
        raise InvalidInput(
            N_("이름은 %(max)s자 이하로 입력해 주세요."), field="name", max=MAX_NAME_LENGTH
        )
    return text


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput.one_of("role", ROLES)
    return role


async def create_user(
    conn: Connection,
    actor: Actor,
    *,
    email: str,
    name: str,
    role: str,
    password: str | None = None,
    totp_required: bool = False,
) -> tuple[User, str | None]:
    """Create an account. Without ``password`` one is generated and returned
    (shown once); the person must then choose their own at the first login."""
    try:
        address = normalise_email(email)
    except InvalidInput:
        raise InvalidInput(N_("올바른 이메일 주소가 아닙니다."), field="email") from None
    clean = _clean_name(name)
    generated = password is None
    chosen = generate_password() if password is None else password
    checked = check_password(chosen, email=address, name=clean)
    if await conn.fetchrow(QUERIES.user_by_email, address) is not None:
        raise Conflict(N_("%(email)s 계정이 이미 있습니다."), email=address)
    row = await conn.fetchrow(
        QUERIES.insert_user,
        address,
        clean,
        _check_role(role),
        await hash_password(checked),
        generated,
        totp_required,
    )
    assert row is not None
    user = user_of(row)
    await record(
        conn, actor, "user.create", f"user:{user.id}", email=address, role=role, name=clean
    )
    return user, chosen if generated else None


async def get_user(conn: Connection, user_id: int) -> User:
    row = await conn.fetchrow(QUERIES.user_by_id, user_id) if 1 <= user_id <= MAX_ID else None
    if row is None:
        raise NotFound(NO_USER, id=user_id)
    return user_of(row)


async def find_user(conn: Connection, email_or_id: str) -> User:
    """By address or by numeric id (the command line takes either)."""
    text = email_or_id.strip()
    if text.isdigit():
        return await get_user(conn, int(text))
    row = await conn.fetchrow(QUERIES.user_by_email, text)
    if row is None:
        raise NotFound(N_("%(who)s 계정이 없습니다."), who=text)
    return user_of(row)


async def list_users(conn: Connection) -> list[User]:
    return [user_of(r) for r in await conn.fetch(QUERIES.list_users)]


async def _keep_an_admin(conn: Connection, user: User) -> None:
    """Never disable or demote the last enabled admin: nobody could undo it."""
    if user.role == "admin" and not user.disabled:
        admins: int = await conn.fetchval(QUERIES.count_active_admins)
        if admins <= 1:
            raise Conflict(N_("마지막 관리자 계정은 비활성화하거나 역할을 바꿀 수 없습니다."))


async def set_disabled(conn: Connection, actor: Actor, user_id: int, disabled: bool) -> User:
    """Disabling ends every session of the account at once."""
    user = await get_user(conn, user_id)
    if disabled:
        await _keep_an_admin(conn, user)
    row = await conn.fetchrow(QUERIES.set_user_disabled, user_id, disabled)
    assert row is not None
    if disabled:
        await conn.execute(QUERIES.delete_user_sessions, user_id, None)
    await record(conn, actor, "user.disable" if disabled else "user.enable", f"user:{user_id}")
    return user_of(row)


async def set_role(conn: Connection, actor: Actor, user_id: int, role: str) -> User:
    user = await get_user(conn, user_id)
    if user.role == role:
        return user
    if role != "admin":
        await _keep_an_admin(conn, user)
    row = await conn.fetchrow(QUERIES.set_user_role, user_id, _check_role(role))
    assert row is not None
    await record(conn, actor, "user.role", f"user:{user_id}", role=role, was=user.role)
    return user_of(row)


async def set_totp_required(conn: Connection, actor: Actor, user_id: int, required: bool) -> User:
    row = await conn.fetchrow(QUERIES.set_user_totp_required, user_id, required)
    if row is None:
        raise NotFound(NO_USER, id=user_id)
    await record(conn, actor, "user.totp_required", f"user:{user_id}", required=required)
    return user_of(row)


async def reset_password(
    conn: Connection, actor: Actor, user_id: int, password: str | None = None
) -> str:
    """An admin's reset: a new password (generated unless given), every session
    of the account ended, and a new password of their own due at next login."""
    user = await get_user(conn, user_id)
    chosen = generate_password() if password is None else password
    checked = check_password(chosen, email=user.email, name=user.name)
    await conn.execute(QUERIES.set_user_password, user_id, await hash_password(checked), True)
    await conn.execute(QUERIES.delete_user_sessions, user_id, None)
    await record(conn, actor, "user.password_reset", f"user:{user_id}")
    return chosen


async def change_own_password(
    conn: Connection,
    user: User,
    *,
    current: str | None,
    new: str,
    keep_session: bytes | None,
) -> User:
    """The person's own change. ``current`` is checked unless the account has
    no password yet or an admin's reset is being replaced right after login.
    Other sessions of the account end; the one in use stays."""
    row = await conn.fetchrow(QUERIES.user_by_id, user.id)
    if row is None:
        raise NotFound(N_("계정이 없습니다."))
    encoded = row["password_hash"]
    if (
        current is not None
        and encoded is not None
        and not await asyncio.to_thread(_verify, encoded, unicodedata.normalize("NFC", current))
    ):
        raise InvalidInput(N_("현재 비밀번호가 맞지 않습니다."), field="current_password")
    checked = check_password(new, email=user.email, name=user.name)
    if encoded is not None and await asyncio.to_thread(_verify, encoded, checked):
        raise InvalidInput(N_("지금과 다른 비밀번호를 정해 주세요."), field="password")
    updated = await conn.fetchrow(
        QUERIES.set_user_password, user.id, await hash_password(checked), False
    )
    assert updated is not None
    await conn.execute(QUERIES.delete_user_sessions, user.id, keep_session)
    await record(conn, user.actor, "user.password_change", f"user:{user.id}")
    return user_of(updated)


# --- second factor (TOTP, RFC 6238) ---------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    """The otpauth:// address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


def _matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    # Full-width digits (a Korean keyboard in full-width mode) are the same
    # code; any other script's digits are not a code (and compare_digest
    # refuses non-ASCII text: a 500, not a wrong code).
    digits = "".join(unicodedata.normalize("NFKC", code).split())
    if len(digits) != 6 or not (digits.isascii() and digits.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = int((now if now is not None else time.time()) // totp.interval)
    for step in range(current - TOTP_WINDOW_STEPS, current + TOTP_WINDOW_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), digits):
            return step
    return None


async def enrol_totp(conn: Connection, user: User, secret: str, code: str) -> User:
    """Store the second factor once the person proves their app shows its codes.
    ``secret`` is the one we generated and kept for the session, never one
    the browser sent: a secret the person chose could be all zeros."""
    if not _BASE32_SECRET.fullmatch(secret):
        raise InvalidInput(
            N_("등록 정보가 올바르지 않습니다. 처음부터 다시 해 주세요."), field="code"
        )
    step = _matching_step(secret, code)
    if step is None:
        raise InvalidInput(WRONG_CODE, field="code")
    row = await conn.fetchrow(QUERIES.set_user_totp, user.id, secret, step)
    assert row is not None
    await record(conn, user.actor, "user.totp_enrol", f"user:{user.id}")
    return user_of(row)


async def remove_totp(conn: Connection, actor: Actor, user_id: int) -> User:
    """Remove a lost phone's factor (an admin, or the person themselves)."""
    row = await conn.fetchrow(QUERIES.set_user_totp, user_id, None, None)
    if row is None:
        raise NotFound(NO_USER, id=user_id)
    await record(conn, actor, "user.totp_remove", f"user:{user_id}")
    return user_of(row)


async def has_second_factor(conn: Connection, email: str) -> bool:
    """Whether the account with this address has a second factor enrolled
    (the login throttle gives such an account's owner a way past guessers)."""
    row = await conn.fetchrow(QUERIES.user_by_email, email.strip())
    return row is not None and row["totp_secret"] is not None and row["disabled_at"] is None


async def check_totp(conn: Connection, user_id: int, code: str) -> bool:
    """Whether ``code`` is a current code of the account, never used before."""
    row = await conn.fetchrow(QUERIES.user_by_id, user_id)
    if row is None or row["totp_secret"] is None:
        return False
    step = _matching_step(row["totp_secret"], code)
    if step is None:
        return False
    used = await conn.fetchval(QUERIES.use_totp_step, user_id, step)
    return used is not None


async def link_sso(conn: Connection, user: User, subject: str) -> None:
    await conn.execute(QUERIES.set_user_oidc_subject, user.id, subject)
    await record(conn, user.actor, "user.sso_link", f"user:{user.id}")
