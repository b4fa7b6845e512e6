"""Operator actions (accounts/admin.py) on the in-memory store: no database needed,
because every action goes through the store interface (held to one contract in
tests/integration/test_store_contract.py)."""

from __future__ import annotations

from typing import Any

import pytest

from reelgate.accounts import admin
from reelgate.errors import NotFound, ValidationFailed
from reelgate.store.base import Tx
from reelgate.store.ledger import Balance
from reelgate.store.memory import MemoryStore
from tests.values import Clock


async def test_an_account_key_and_grant_from_creation_to_revocation() -> None:
    store = MemoryStore(Clock())
    seen: list[Any] = []

    async def then(tx: Tx, result: Any) -> None:
        # runs inside the action's transaction: it sees the new account
        seen.append((result, await tx.account_exists(result[0])))

    account_id, balance = await admin.create_account_with(
        store, "studio", credits=admin.parse_credits("12.5"), flags={"prc_opt_in": True}, then=then
    )
    assert balance == Balance(12_500, 0) and seen == [((account_id, balance), True)]
    assert await admin.update_flags(store, account_id, allowed_models=["local"]) == {
        "prc_opt_in": True,
        "allowed_models": ["local"],
    }
    assert await admin.grant_credits(store, account_id, -2_500, "") == Balance(10_000, 0)

    key, row = await admin.issue_key(store, account_id, scopes=["jobs:read"], name="ci")
    assert [r.id for r in await admin.list_keys(store, account_id)] == [row.id]
    async with store.reading() as tx:
        assert await tx.lookup_key(key, store.clock()) is not None
    await admin.revoke_key(store, row.id)
    async with store.reading() as tx:
        assert await tx.lookup_key(key, store.clock()) is None


async def test_actions_on_what_does_not_exist_say_so_and_change_nothing() -> None:
    store = MemoryStore(Clock())
    with pytest.raises(NotFound):
        await admin.update_flags(store, "acct_nobody", prc_opt_in=True)
    with pytest.raises(NotFound):
        await admin.issue_key(store, "acct_nobody")
    with pytest.raises(NotFound):
        await admin.revoke_key(store, "key_nothing")
    with pytest.raises(NotFound):
        await admin.resolve_ambiguous_create(store, "amb_nothing", "checked")
    with pytest.raises(ValidationFailed):
        await admin.issue_key(store, "acct_nobody", scopes=["root"])
    assert store.state.accounts == {} and store.state.keys == {}
