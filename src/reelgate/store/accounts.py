"""Accounts and API keys: creation, lookup by key, the embedded default's dev account.

Keys are ``rg_`` + 40 random url-safe characters, shown once and stored only
as a sha256 hash.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.ids import new_id
from reelgate.store.jobs import now_ms
from reelgate.store.schema import accounts, api_keys

__all__ = [
    "ALL_SCOPES",
    "DEV_ACCOUNT_ID",
    "KeyInfo",
    "KeyRow",
    "account_exists",
    "create_account",
    "create_key",
    "ensure_account",
    "ensure_key",
    "get_flags",
    "hash_key",
    "key_row",
    "key_rows",
    "lookup_key",
    "new_key",
    "revoke",
    "set_flags",
]

DEV_ACCOUNT_ID = "acct_dev"
ALL_SCOPES = ("jobs:write", "jobs:read", "admin")


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    account_id: str
    scopes: tuple[str, ...]
    expires_at: int | None = None


def new_key() -> str:
    return "rg_" + secrets.token_urlsafe(30)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_account(conn: AsyncConnection, name: str, account_id: str | None = None) -> str:
    account_id = account_id or new_id("acct")
    await conn.execute(
        accounts.insert().values(id=account_id, name=name, flags={}, created_at=now_ms())
    )
    return account_id


async def ensure_account(conn: AsyncConnection, account_id: str, name: str) -> bool:
    """Create the account if missing; True if it was created now."""
    exists = await conn.scalar(sa.select(accounts.c.id).where(accounts.c.id == account_id))
    if exists is None:
        await create_account(conn, name, account_id)
        return True
    return False


async def create_key(
    conn: AsyncConnection,
    account_id: str,
    *,
    key: str | None = None,
    scopes: Sequence[str] = ALL_SCOPES,
    name: str = "",
    expires_at: int | None = None,
) -> str:
    """Store a key (a new random one unless given) and return it: the only time it is seen."""
    key = key or new_key()
    await conn.execute(
        api_keys.insert().values(
            id=new_id("key"),
            account_id=account_id,
            name=name,
            prefix=key[:10],
            key_hash=hash_key(key),
            scopes=list(scopes),
            created_at=now_ms(),
            expires_at=expires_at,
        )
    )
    return key


async def ensure_key(conn: AsyncConnection, account_id: str, key: str, name: str) -> None:
    found = await conn.scalar(sa.select(api_keys.c.id).where(api_keys.c.key_hash == hash_key(key)))
    if found is None:
        await create_key(conn, account_id, key=key, name=name)


async def get_flags(conn: AsyncConnection, account_id: str) -> dict[str, Any]:
    flags = await conn.scalar(sa.select(accounts.c.flags).where(accounts.c.id == account_id))
    return dict(flags or {})


async def set_flags(conn: AsyncConnection, account_id: str, **flags: Any) -> dict[str, Any]:
    """Merge ``flags`` into the account's flags (e.g. allowed_models, prc_opt_in)."""
    merged = {**await get_flags(conn, account_id), **flags}
    await conn.execute(accounts.update().where(accounts.c.id == account_id).values(flags=merged))
    return merged


async def lookup_key(conn: AsyncConnection, key: str, now: int) -> KeyInfo | None:
    """The key's account and scopes, or None if unknown, revoked or expired by ``now``."""
    row = (
        (await conn.execute(sa.select(api_keys).where(api_keys.c.key_hash == hash_key(key))))
        .mappings()
        .first()
    )
    if row is None or row["revoked_at"] is not None:
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    return KeyInfo(
        key_id=row["id"],
        account_id=row["account_id"],
        scopes=tuple(row["scopes"]),
        expires_at=row["expires_at"],
    )


@dataclass(frozen=True)
class KeyRow:
    id: str
    account_id: str
    name: str
    prefix: str
    scopes: list[str]
    created_at: int
    expires_at: int | None
    revoked_at: int | None

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "account_id": self.account_id,
            "name": self.name,
            "prefix": self.prefix,
            "scopes": self.scopes,
            "created_at": self.created_at // 1000,
            "expires_at": self.expires_at // 1000 if self.expires_at else None,
            "revoked_at": self.revoked_at // 1000 if self.revoked_at else None,
        }


_KEY_COLUMNS = [api_keys.c[f] for f in KeyRow.__dataclass_fields__]


async def account_exists(conn: AsyncConnection, account_id: str) -> bool:
    found = await conn.scalar(sa.select(accounts.c.id).where(accounts.c.id == account_id))
    return found is not None


async def key_row(conn: AsyncConnection, key: str) -> KeyRow:
    """The listing row of ``key`` (found by its hash)."""
    query = sa.select(*_KEY_COLUMNS).where(api_keys.c.key_hash == hash_key(key))
    return KeyRow(**dict((await conn.execute(query)).mappings().one()))


async def key_rows(conn: AsyncConnection, account_id: str) -> list[KeyRow]:
    query = (
        sa.select(*_KEY_COLUMNS)
        .where(api_keys.c.account_id == account_id)
        .order_by(api_keys.c.created_at, api_keys.c.id)
    )
    return [KeyRow(**dict(r)) for r in (await conn.execute(query)).mappings().all()]


async def revoke(
    conn: AsyncConnection, key_id: str, account_id: str | None, now: int
) -> bool | None:
    """Revoke a key (only ``account_id``'s, when given). True: revoked now; False: it
    was already revoked (or another account's); None: no such key."""
    query = api_keys.update().where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
    if account_id is not None:
        query = query.where(api_keys.c.account_id == account_id)
    result = await conn.execute(query.values(revoked_at=now))
    if result.rowcount == 1:
        return True
    exists = await conn.scalar(sa.select(api_keys.c.id).where(api_keys.c.id == key_id))
    return None if exists is None else False
