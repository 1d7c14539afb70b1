"""API keys for editors, ops and admins: shown once, stored as a hash, revocable."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from newsletter.core.db import QUERIES, Connection
from newsletter.core.errors import InvalidInput, NotFound, field_name
from newsletter.core.i18n import N_
from newsletter.core.kinds import ROLES, role_allows

KEY_PREFIX = "nl_"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    name: str
    role: str

    def allows(self, role: str) -> bool:
        return role_allows(self.role, role)


def _digest(key: str) -> bytes:
    # Keys are 256 random bits, so a plain SHA-256 is enough: no dictionary to attack.
    return hashlib.sha256(key.encode()).digest()


async def create_key(conn: Connection, *, role: str, name: str) -> tuple[int, str]:
    if role not in ROLES:
        raise InvalidInput.one_of("role", ROLES)
    if not name.strip():
        raise InvalidInput(
            N_("%(name)s을(를) 입력해 주세요."), field="name", name=field_name("name")
        )
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id: int = await conn.fetchval(
        QUERIES.insert_api_key, name.strip(), role, key[:10], _digest(key)
    )
    return key_id, key


async def authenticate(conn: Connection, key: str) -> ApiKey | None:
    row = await conn.fetchrow(QUERIES.use_api_key, _digest(key))
    if row is None:
        return None
    return ApiKey(id=row["id"], name=row["name"], role=row["role"])


async def revoke_key(conn: Connection, key_id_or_prefix: str) -> int:
    if key_id_or_prefix.isdigit():
        row = await conn.fetchrow(QUERIES.revoke_api_key_by_id, int(key_id_or_prefix))
    else:
        row = await conn.fetchrow(QUERIES.revoke_api_key_by_key, _digest(key_id_or_prefix))
    if row is None:
        raise NotFound(N_("그런 번호나 값의 사용 중인 API 키가 없습니다."))
    key_id: int = row["id"]
    return key_id
