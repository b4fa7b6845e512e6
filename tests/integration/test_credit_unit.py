"""One unit of money: a credit is one US cent by default. Both product documents'
price examples come out of one catalog in that unit, the API shows credits and the
money beside them, and migration 0016 converts stored amounts so nobody's money
changes."""

from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa

from reelgate.accounts.dev import ensure_dev_account
from reelgate.api.app import create_app
from reelgate.billing.money import CreditValue
from reelgate.catalog import load_catalog
from reelgate.config import Settings
from reelgate.runtime import build_runtime
from reelgate.store import migrate
from reelgate.store.db import create_engine
from tests.conftest import TEST_KEY


def test_both_documents_prices_in_one_unit() -> None:
    catalog = load_catalog()
    credit = CreditValue()

    def clip(model: str, seconds: int = 4, resolution: str = "720p") -> int:
        return catalog.get(model).price_for(resolution) * seconds

    # the model guide: credits per 4-second 720p clip, "as given"
    assert clip("veo-3-1-fast") == 80_000  # ~80 credits
    assert clip("veo-3-1") == 180_000  # ~180
    assert clip("sora-2") == 200_000  # ~200
    assert clip("wan-2-1") == 40_000  # ~40
    # the media-video-from-text service: $1.50 per second, token_cost 6.0 for 4 s
    assert catalog.get("veo (Audio)").price_per_second == 150_000  # 150 credits/s
    assert catalog.get("veo fast (Audio)").price_per_second == 150_000
    assert credit.text(clip("veo (Audio)", 4, "1080p")) == "6.00"
    # and the guide's credits are about a US cent, as public list prices say
    assert credit.text(catalog.get("veo-3-1").price_per_second) == "0.45"  # list: $0.40/s
    assert credit.text(catalog.get("veo-3-1-fast").price_per_second) == "0.20"  # $0.10-0.20
    assert credit.text(catalog.get("wan-2-1").price_per_second) == "0.10"  # $0.10/s


async def test_models_and_balance_show_credits_and_money(client: httpx.AsyncClient) -> None:
    models = {m["id"]: m for m in (await client.get("/v1/models")).json()["data"]}
    fast = models["veo fast (Audio)"]["price"]
    assert fast["credits_per_second"] == "150.000"
    assert fast["money_per_second"] == {"amount": "1.50", "currency": "USD"}
    assert models["veo-3-1-fast"]["price"]["money_per_second"]["amount"] == "0.20"
    balance = (await client.get("/v1/balance")).json()
    assert balance["money"]["currency"] == "USD"
    assert balance["money"]["balance"] == CreditValue().text(balance["millicredits"]["balance"])


async def test_another_credit_value_changes_the_money_not_the_credits(
    settings: Settings,
) -> None:
    rt = await build_runtime(
        settings.updated(credit_value="0.001", currency="EUR"), public_url="http://t"
    )
    try:
        await ensure_dev_account(rt)
        transport = httpx.ASGITransport(app=create_app(rt))
        headers = {"Authorization": f"Bearer {TEST_KEY}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            listed = (await c.get("/v1/models", headers=headers)).json()["data"]
        body = next(m for m in listed if m["id"] == "veo-3-1-fast")
        assert body["price"]["credits_per_second"] == "20.000"
        assert body["price"]["money_per_second"] == {"amount": "0.02", "currency": "EUR"}
    finally:
        await rt.aclose()


async def test_migration_0016_keeps_everyones_money(sqlite_url: str) -> None:
    await asyncio.to_thread(migrate.downgrade, sqlite_url, "0015")
    engine = create_engine(sqlite_url, pool_size=1)
    try:
        async with engine.begin() as conn:
            # before: a credit was a dollar; 12.5 credits held back 2 for a running job
            await conn.execute(
                sa.text(
                    "INSERT INTO accounts (id, name, flags, created_at, balance, held) "
                    "VALUES ('acct_m', 'm', '{}', 0, 12500, 2000)"
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO ledger (id, account_id, kind, balance_delta, held_delta, "
                    "note, created_at) VALUES ('l1', 'acct_m', 'grant', 12500, 0, 'g', 0), "
                    "('l2', 'acct_m', 'hold', 0, 2000, 'h', 0)"
                )
            )
            await conn.execute(
                sa.text(
                    "INSERT INTO holds (id, account_id, job_id, amount, status, created_at) "
                    "VALUES ('h1', 'acct_m', 'job_m', 2000, 'open', 0)"
                )
            )
        await migrate.upgrade_async(sqlite_url)
        async with engine.connect() as conn:
            balance, held = (
                await conn.execute(sa.text("SELECT balance, held FROM accounts WHERE id='acct_m'"))
            ).one()
            ledger = (
                await conn.execute(
                    sa.text(
                        "SELECT sum(balance_delta), sum(held_delta) FROM ledger "
                        "WHERE account_id = 'acct_m'"
                    )
                )
            ).one()
            hold = (await conn.execute(sa.text("SELECT amount FROM holds"))).scalar_one()
    finally:
        await engine.dispose()
    assert (balance, held) == (1_250_000, 200_000)  # 1,250 credits: still $12.50
    assert CreditValue().text(balance) == "12.50" and CreditValue().text(held) == "2.00"
    assert tuple(ledger) == (balance, held) and hold == held  # the books still balance
