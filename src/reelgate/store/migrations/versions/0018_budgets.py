"""Budgets: daily and monthly spend caps per account and per API key.

A job counts against the budgets of the UTC day and month it was submitted in, for its
account and for the key that submitted it (``jobs.key_id``, ``holds.key_id``).
``budget_spend`` keeps, per scope and period, what the scope's jobs were charged
(``spent``) and what their open holds reserve (``held``); a row exists only for a scope
with a budget (it is filled from the holds when the budget is set, ``store.budgets``).

- The submit checks every budget of the account and the key under the account's lock,
  and refuses (``over_budget``) a job whose hold would take ``spent + held`` past a cap;
  an accepted job adds its hold to ``held``. PostgreSQL: ``reelgate_submit`` (replaced
  here, one more output column with the refusal's numbers); SQLite: ``store.submit``.
- A trigger on ``holds`` moves a settled hold out of ``held`` and its capture into
  ``spent`` on every path that settles one (a step, a cancel, ``reelgate_step``).
- Reaching 80 % and 100 % of a cap (or a first refusal) queues a ``budget.warning`` /
  ``budget.exceeded`` event in ``webhook_outbox`` (new ``account_id`` and ``payload``
  columns: an account's event, not a job's), once per budget and period (``notified``).
  So a budget refusal writes its mark and its event; other refusals still write nothing.
- The trigger takes the account's row before ``budget_spend``'s, as the submit does.

Plain ADD COLUMNs (no batch rebuild on SQLite): the in-flight triggers of 0012 stay.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# What a submit does with the budgets, between the in-flight caps and the
# Idempotency-Key. Periods are UTC: "day:YYYY-MM-DD" and "month:YYYY-MM".
_PG_SUBMIT = """
CREATE FUNCTION reelgate_submit(
  p_job jsonb, p_hold jsonb, p_ledger jsonb, p_event jsonb,
  p_max_jobs bigint, p_max_seconds bigint,
  p_idem_key text, p_idem_owner text, p_idem_status integer, p_idem_body jsonb)
RETURNS TABLE (o_outcome text, o_balance bigint, o_held bigint, o_jobs bigint,
               o_seconds bigint, o_budget jsonb)
LANGUAGE plpgsql AS $$
DECLARE
  v_account text := p_job->>'account_id';
  v_key text := coalesce(p_hold->>'key_id', '');
  v_amount bigint := (p_hold->>'amount')::bigint;
  v_seconds bigint := coalesce((p_job->'params'->>'duration_seconds')::bigint, 0);
  v_now bigint := (p_hold->>'created_at')::bigint;
  v_at timestamp := to_timestamp(v_now / 1000.0) AT TIME ZONE 'UTC';
  v_period text;
  v_spent bigint;
  v_held bigint;
  v_notified integer;
  v_level integer;
  v_budget jsonb;
  v_listened boolean;  -- whether the account has a live webhook endpoint (asked once, if needed)
  v_bound boolean := false;  -- whether any budget binds this submit
  a record;
  b record;
BEGIN
  SELECT ac.balance, ac.held, ac.jobs_in_flight, ac.seconds_in_flight INTO a
    FROM accounts AS ac WHERE ac.id = v_account FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'no_account', 0::bigint, 0::bigint, 0::bigint, 0::bigint,
                        NULL::jsonb;
    RETURN;
  END IF;
  IF a.balance - a.held < v_amount THEN
    o_outcome := 'not_enough';
  ELSIF a.jobs_in_flight + 1 > p_max_jobs THEN
    o_outcome := 'too_many_jobs';
  ELSIF a.seconds_in_flight + v_seconds > p_max_seconds THEN
    o_outcome := 'too_many_seconds';
  ELSIF p_idem_key IS NOT NULL THEN
    -- the key's lease first: a handler whose lease was taken over writes nothing
    PERFORM 1 FROM idempotency_keys AS k
     WHERE k.account_id = v_account AND k.key = p_idem_key AND k.owner = p_idem_owner
       AND k.state = 'in_flight'
       FOR UPDATE;
    IF NOT FOUND THEN
      o_outcome := 'key_taken';
    END IF;
  END IF;
  IF o_outcome IS NULL THEN
    -- the key's budgets first, then the account's; a day before a month
    FOR b IN SELECT bu.key_id, bu.period, bu.cap FROM budgets AS bu
              WHERE bu.account_id = v_account AND bu.key_id IN ('', v_key)
              ORDER BY bu.key_id DESC, bu.period LOOP
      v_bound := true;
      v_period := b.period || ':' ||
        to_char(v_at, CASE WHEN b.period = 'day' THEN 'YYYY-MM-DD' ELSE 'YYYY-MM' END);
      SELECT coalesce(max(sp.spent), 0), coalesce(max(sp.held), 0),
             coalesce(max(sp.notified), 0)
        INTO v_spent, v_held, v_notified
        FROM budget_spend AS sp
       WHERE sp.account_id = v_account AND sp.key_id = b.key_id AND sp.period_key = v_period;
      IF v_spent + v_held + v_amount > b.cap THEN
        o_outcome := 'over_budget';
        v_budget := jsonb_build_object('key_id', b.key_id, 'period', b.period,
          'period_key', v_period, 'cap', b.cap, 'spent', v_spent, 'held', v_held,
          'price', v_amount, 'threshold', 100, 'reason', 'refused');
        IF v_notified < 100 THEN
          INSERT INTO budget_spend (account_id, key_id, period_key, spent, held, notified)
          VALUES (v_account, b.key_id, v_period, 0, 0, 100)
          ON CONFLICT (account_id, key_id, period_key) DO UPDATE SET notified = 100;
          v_listened := coalesce(v_listened, EXISTS (SELECT 1 FROM webhook_endpoints AS e
                                 WHERE e.account_id = v_account AND e.disabled_at IS NULL));
          IF v_listened THEN
            -- no job: the refused one was never written
            INSERT INTO webhook_outbox (job_id, seq, type, created_at, account_id, payload)
            VALUES ('', 0, 'budget.exceeded', v_now, v_account, v_budget::text);
          END IF;
        END IF;
        EXIT;
      END IF;
    END LOOP;
  END IF;
  IF o_outcome IS NULL AND p_idem_key IS NOT NULL THEN
    UPDATE idempotency_keys AS k
       SET state = 'done', response_status = p_idem_status, response_body = p_idem_body,
           owner = NULL, lease_expires_at = NULL
     WHERE k.account_id = v_account AND k.key = p_idem_key AND k.owner = p_idem_owner
       AND k.state = 'in_flight';
  END IF;
  IF o_outcome IS NOT NULL THEN
    RETURN QUERY SELECT o_outcome, a.balance, a.held, a.jobs_in_flight, a.seconds_in_flight,
                        v_budget;
    RETURN;
  END IF;
  INSERT INTO holds SELECT * FROM jsonb_populate_record(NULL::holds, p_hold);
  UPDATE accounts AS ac SET held = ac.held + v_amount WHERE ac.id = v_account;
  INSERT INTO ledger SELECT * FROM jsonb_populate_record(NULL::ledger, p_ledger);
  INSERT INTO jobs SELECT * FROM jsonb_populate_record(NULL::jobs, p_job);
  INSERT INTO job_events SELECT * FROM jsonb_populate_record(NULL::job_events, p_event);
  IF v_bound THEN
    FOR b IN SELECT bu.key_id, bu.period, bu.cap FROM budgets AS bu
              WHERE bu.account_id = v_account AND bu.key_id IN ('', v_key) LOOP
      v_period := b.period || ':' ||
        to_char(v_at, CASE WHEN b.period = 'day' THEN 'YYYY-MM-DD' ELSE 'YYYY-MM' END);
      INSERT INTO budget_spend AS sp (account_id, key_id, period_key, spent, held, notified)
      VALUES (v_account, b.key_id, v_period, 0, v_amount, 0)
      ON CONFLICT (account_id, key_id, period_key) DO UPDATE SET held = sp.held + v_amount
      RETURNING sp.spent, sp.held, sp.notified INTO v_spent, v_held, v_notified;
      v_level := CASE WHEN v_spent + v_held >= b.cap THEN 100
                      WHEN (v_spent + v_held) * 5 >= b.cap * 4 THEN 80 ELSE 0 END;
      IF v_level > v_notified THEN
        UPDATE budget_spend AS sp SET notified = v_level
         WHERE sp.account_id = v_account AND sp.key_id = b.key_id AND sp.period_key = v_period;
        v_listened := coalesce(v_listened, EXISTS (SELECT 1 FROM webhook_endpoints AS e
                               WHERE e.account_id = v_account AND e.disabled_at IS NULL));
        IF v_listened THEN
          INSERT INTO webhook_outbox (job_id, seq, type, created_at, account_id, payload)
          VALUES (p_job->>'id', 0,
                  CASE WHEN v_level = 100 THEN 'budget.exceeded' ELSE 'budget.warning' END,
                  v_now, v_account,
                  jsonb_build_object('key_id', b.key_id, 'period', b.period,
                    'period_key', v_period, 'cap', b.cap, 'spent', v_spent, 'held', v_held,
                    'price', v_amount, 'threshold', v_level, 'reason', 'reached')::text);
        END IF;
      END IF;
    END LOOP;
  END IF;
  PERFORM pg_notify('reelgate_events', p_job->>'id');
  PERFORM pg_notify('reelgate_jobs', p_job->>'id');
  RETURN QUERY SELECT 'ok', a.balance, a.held + v_amount, a.jobs_in_flight + 1,
                      a.seconds_in_flight + v_seconds, NULL::jsonb;
END $$
"""

PG_FUNCTIONS = [
    "DROP FUNCTION reelgate_submit",
    _PG_SUBMIT,
    """
CREATE FUNCTION reelgate_budget_settle() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  v_at timestamp := to_timestamp(OLD.created_at / 1000.0) AT TIME ZONE 'UTC';
BEGIN
  -- the account's row before the counters, in the submit's order (no deadlock), and
  -- so that a budget being set (which holds it while it counts the holds) is waited for
  PERFORM 1 FROM accounts WHERE id = OLD.account_id FOR UPDATE;
  UPDATE budget_spend AS sp
     SET held = sp.held - OLD.amount, spent = sp.spent + coalesce(NEW.captured, 0)
   WHERE sp.account_id = OLD.account_id AND sp.key_id IN ('', coalesce(OLD.key_id, ''))
     AND sp.period_key IN ('day:' || to_char(v_at, 'YYYY-MM-DD'),
                           'month:' || to_char(v_at, 'YYYY-MM'));
  RETURN NULL;
END $$
""",
    """
CREATE TRIGGER holds_budget_settle AFTER UPDATE OF status ON holds FOR EACH ROW
WHEN (OLD.status = 'open' AND NEW.status <> 'open')
EXECUTE FUNCTION reelgate_budget_settle()
""",
]

PG_DROP = [
    "DROP TRIGGER holds_budget_settle ON holds",
    "DROP FUNCTION reelgate_budget_settle",
    "DROP FUNCTION reelgate_submit",
]

SQLITE_TRIGGERS = [
    """
CREATE TRIGGER holds_budget_settle AFTER UPDATE OF status ON holds
WHEN OLD.status = 'open' AND NEW.status <> 'open'
BEGIN
  UPDATE budget_spend
     SET held = held - OLD.amount, spent = spent + coalesce(NEW.captured, 0)
   WHERE account_id = OLD.account_id AND key_id IN ('', coalesce(OLD.key_id, ''))
     AND period_key IN ('day:' || strftime('%Y-%m-%d', OLD.created_at / 1000, 'unixepoch'),
                        'month:' || strftime('%Y-%m', OLD.created_at / 1000, 'unixepoch'));
END
""",
]

SQLITE_DROP = ["DROP TRIGGER holds_budget_settle"]


def upgrade() -> None:
    op.add_column("jobs", sa.Column("key_id", sa.String(40), nullable=True))
    op.add_column("holds", sa.Column("key_id", sa.String(40), nullable=True))
    op.add_column("webhook_outbox", sa.Column("account_id", sa.String(40), nullable=True))
    op.add_column("webhook_outbox", sa.Column("payload", sa.Text, nullable=True))
    op.create_table(
        "budgets",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("cap", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "key_id", "period", name="pk_budgets"),
        sa.CheckConstraint("cap >= 0", name="ck_budgets_cap_not_negative"),
        sa.CheckConstraint("period IN ('day', 'month')", name="ck_budgets_period"),
    )
    op.create_table(
        "budget_spend",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_id", sa.String(40), nullable=False),
        sa.Column("period_key", sa.String(20), nullable=False),
        sa.Column("spent", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("notified", sa.SmallInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("account_id", "key_id", "period_key", name="pk_budget_spend"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_FUNCTIONS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    # budget events would reach the old fan-out as job events
    op.execute("DELETE FROM webhook_outbox WHERE payload IS NOT NULL")
    for statement in PG_DROP if postgres else SQLITE_DROP:
        op.execute(statement)
    if postgres:  # the submit of 0012 again
        previous = importlib.import_module(
            "reelgate.store.migrations.versions.0012_submit_in_one_call"
        )
        op.execute(previous.PG_FUNCTIONS[-1])
    op.drop_table("budget_spend")
    op.drop_table("budgets")
    for table, column in (
        ("webhook_outbox", "payload"),
        ("webhook_outbox", "account_id"),
        ("holds", "key_id"),
        ("jobs", "key_id"),
    ):
        with op.batch_alter_table(table, recreate="never") as batch:
            batch.drop_column(column)
