"""A hypothesis state machine drives the ledger with random grants, holds, captures,
releases and double-settlement attempts, checking the invariants after every step:
balance never negative, the ledger sums to the balance and the holds, no hold
resolves twice. Runs on a real SQLite database (the same SQL as PostgreSQL's)."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from reelgate.errors import PaymentRequired
from reelgate.store import migrate
from reelgate.store.accounts import create_account
from reelgate.store.db import create_engine
from reelgate.store.ledger import capture_hold, get_balance, grant, place_hold, release_hold
from reelgate.store.schema import holds, ledger


class LedgerMachine(RuleBasedStateMachine):
    holds_ = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        url = f"sqlite:///{Path(self.tmp.name) / 'ledger.db'}"
        migrate.upgrade(url)
        self.db = create_engine(url, pool_size=1)
        self.account = self.run(self._create())
        # the model: what the books must say
        self.balance = 0
        self.open: dict[str, int] = {}
        self.resolved: set[str] = set()
        self.jobs = 0

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    async def _create(self) -> str:
        async with self.db.begin() as conn:
            return await create_account(conn, "prop")

    def teardown(self) -> None:
        self.run(self.db.dispose())
        self.loop.close()
        self.tmp.cleanup()

    @rule(amount=st.integers(-5_000, 20_000))
    def grant_credits(self, amount: int) -> None:
        async def go() -> None:
            async with self.db.begin() as conn:
                await grant(conn, self.account, amount)

        try:
            self.run(go())
        except PaymentRequired:
            assert self.balance + amount < sum(self.open.values())
            return
        self.balance += amount

    @rule(target=holds_, amount=st.integers(0, 8_000))
    def hold(self, amount: int) -> str:
        self.jobs += 1
        job = f"job{self.jobs}"

        async def go() -> str:
            async with self.db.begin() as conn:
                return await place_hold(conn, self.account, job, amount)

        try:
            hold_id = self.run(go())
        except PaymentRequired:
            assert self.balance - sum(self.open.values()) < amount
            return "refused"
        self.open[hold_id] = amount
        return hold_id

    @rule(hold_id=holds_, charge=st.integers(0, 10_000), capture=st.booleans())
    def settle(self, hold_id: str, charge: int, capture: bool) -> None:
        if hold_id == "refused":
            return

        async def go() -> bool:
            async with self.db.begin() as conn:
                if capture and charge:
                    return await capture_hold(conn, hold_id, charge)
                return await release_hold(conn, hold_id)

        done = self.run(go())
        if hold_id in self.resolved:
            assert done is False, "a hold resolved twice"
            return
        assert done is True
        amount = self.open.pop(hold_id)
        self.resolved.add(hold_id)
        if capture and charge:
            self.balance -= min(charge, amount)

    @invariant()
    def books_balance(self) -> None:
        async def read() -> tuple[int, int, int, int, int]:
            async with self.db.connect() as conn:
                bal = await get_balance(conn, self.account)
                led_bal, led_held = (
                    await conn.execute(
                        sa.select(
                            sa.func.coalesce(sa.func.sum(ledger.c.balance_delta), 0),
                            sa.func.coalesce(sa.func.sum(ledger.c.held_delta), 0),
                        )
                    )
                ).one()
                open_sum = await conn.scalar(
                    sa.select(sa.func.coalesce(sa.func.sum(holds.c.amount), 0)).where(
                        holds.c.status == "open"
                    )
                )
                return bal.balance, bal.held, int(led_bal), int(led_held), int(open_sum or 0)

        balance, held, led_bal, led_held, open_sum = self.run(read())
        assert balance >= 0 and held >= 0
        assert balance == led_bal == self.balance
        assert held == led_held == open_sum == sum(self.open.values())


LedgerMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_invariants_hold_under_any_sequence = LedgerMachine.TestCase
