"""A submit in one call: each account counts its jobs in flight, and PostgreSQL gets the
whole submit as one function.

``accounts.jobs_in_flight`` / ``seconds_in_flight`` are kept by triggers on ``jobs``
(every insert, every change of ``next_run_at`` between NULL and a time, every delete),
so the submit-time caps read one locked row instead of counting the account's jobs,
and no code path can forget to keep them. ``reelgate_submit`` runs a submit's checks
and writes in a single statement (``store.submit`` calls it).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BACKFILL_PG = """
UPDATE accounts AS a SET jobs_in_flight = t.n, seconds_in_flight = t.s
FROM (SELECT account_id, count(*) AS n,
             coalesce(sum((params->>'duration_seconds')::bigint), 0) AS s
      FROM jobs WHERE next_run_at IS NOT NULL GROUP BY account_id) AS t
WHERE a.id = t.account_id
"""

_BACKFILL_SQLITE = """
UPDATE accounts SET
  jobs_in_flight = (SELECT count(*) FROM jobs
                    WHERE jobs.account_id = accounts.id AND jobs.next_run_at IS NOT NULL),
  seconds_in_flight = (SELECT coalesce(sum(json_extract(params, '$.duration_seconds')), 0)
                       FROM jobs
                       WHERE jobs.account_id = accounts.id AND jobs.next_run_at IS NOT NULL)
"""


PG_FUNCTIONS = [
    """
CREATE FUNCTION reelgate_jobs_in_flight() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    UPDATE accounts SET jobs_in_flight = jobs_in_flight - 1,
                        seconds_in_flight = seconds_in_flight
                          - coalesce((OLD.params->>'duration_seconds')::bigint, 0)
    WHERE id = OLD.account_id;
  ELSIF NEW.next_run_at IS NULL THEN
    UPDATE accounts SET jobs_in_flight = jobs_in_flight - 1,
                        seconds_in_flight = seconds_in_flight
                          - coalesce((NEW.params->>'duration_seconds')::bigint, 0)
    WHERE id = NEW.account_id;
  ELSE
    UPDATE accounts SET jobs_in_flight = jobs_in_flight + 1,
                        seconds_in_flight = seconds_in_flight
                          + coalesce((NEW.params->>'duration_seconds')::bigint, 0)
    WHERE id = NEW.account_id;
  END IF;
  RETURN NULL;
END $$
""",
    """
CREATE TRIGGER jobs_in_flight_insert AFTER INSERT ON jobs FOR EACH ROW
WHEN (NEW.next_run_at IS NOT NULL) EXECUTE FUNCTION reelgate_jobs_in_flight()
""",
    """
CREATE TRIGGER jobs_in_flight_update AFTER UPDATE OF next_run_at ON jobs FOR EACH ROW
WHEN ((OLD.next_run_at IS NULL) <> (NEW.next_run_at IS NULL))
EXECUTE FUNCTION reelgate_jobs_in_flight()
""",
    """
CREATE TRIGGER jobs_in_flight_delete AFTER DELETE ON jobs FOR EACH ROW
WHEN (OLD.next_run_at IS NOT NULL) EXECUTE FUNCTION reelgate_jobs_in_flight()
""",
    # The submit (``store.submit``): lock the account, check credits and the in-flight
    # caps, take the Idempotency-Key's answer, write the hold, its ledger line, the job
    # and its first event, and wake the workers and SSE streams at commit. The rows come
    # whole from the caller (``jsonb_populate_record``): their values are decided in
    # one place, the Python side. Refusals write nothing and say why, with the numbers.
    """
CREATE FUNCTION reelgate_submit(
  p_job jsonb, p_hold jsonb, p_ledger jsonb, p_event jsonb,
  p_max_jobs bigint, p_max_seconds bigint,
  p_idem_key text, p_idem_owner text, p_idem_status integer, p_idem_body jsonb)
RETURNS TABLE (o_outcome text, o_balance bigint, o_held bigint, o_jobs bigint, o_seconds bigint)
LANGUAGE plpgsql AS $$
DECLARE
  v_account text := p_job->>'account_id';
  v_amount bigint := (p_hold->>'amount')::bigint;
  v_seconds bigint := coalesce((p_job->'params'->>'duration_seconds')::bigint, 0);
  a record;
BEGIN
  SELECT ac.balance, ac.held, ac.jobs_in_flight, ac.seconds_in_flight INTO a
    FROM accounts AS ac WHERE ac.id = v_account FOR UPDATE;
  IF NOT FOUND THEN
    RETURN QUERY SELECT 'no_account', 0::bigint, 0::bigint, 0::bigint, 0::bigint;
    RETURN;
  END IF;
  IF a.balance - a.held < v_amount THEN
    o_outcome := 'not_enough';
  ELSIF a.jobs_in_flight + 1 > p_max_jobs THEN
    o_outcome := 'too_many_jobs';
  ELSIF a.seconds_in_flight + v_seconds > p_max_seconds THEN
    o_outcome := 'too_many_seconds';
  ELSIF p_idem_key IS NOT NULL THEN
    UPDATE idempotency_keys AS k
       SET state = 'done', response_status = p_idem_status, response_body = p_idem_body,
           owner = NULL, lease_expires_at = NULL
     WHERE k.account_id = v_account AND k.key = p_idem_key AND k.owner = p_idem_owner
       AND k.state = 'in_flight';
    IF NOT FOUND THEN
      o_outcome := 'key_taken';
    END IF;
  END IF;
  IF o_outcome IS NOT NULL THEN
    RETURN QUERY SELECT o_outcome, a.balance, a.held, a.jobs_in_flight, a.seconds_in_flight;
    RETURN;
  END IF;
  INSERT INTO holds SELECT * FROM jsonb_populate_record(NULL::holds, p_hold);
  UPDATE accounts AS ac SET held = ac.held + v_amount WHERE ac.id = v_account;
  INSERT INTO ledger SELECT * FROM jsonb_populate_record(NULL::ledger, p_ledger);
  INSERT INTO jobs SELECT * FROM jsonb_populate_record(NULL::jobs, p_job);
  INSERT INTO job_events SELECT * FROM jsonb_populate_record(NULL::job_events, p_event);
  PERFORM pg_notify('reelgate_events', p_job->>'id');
  PERFORM pg_notify('reelgate_jobs', p_job->>'id');
  RETURN QUERY SELECT 'ok', a.balance, a.held + v_amount, a.jobs_in_flight + 1,
                      a.seconds_in_flight + v_seconds;
END $$
""",
]

PG_DROP = [
    "DROP FUNCTION reelgate_submit",
    "DROP TRIGGER jobs_in_flight_delete ON jobs",
    "DROP TRIGGER jobs_in_flight_update ON jobs",
    "DROP TRIGGER jobs_in_flight_insert ON jobs",
    "DROP FUNCTION reelgate_jobs_in_flight",
]

# SQLite drops a table's triggers when a batch migration rebuilds it: a later migration
# that batch-alters ``jobs`` must create these again.
SQLITE_TRIGGERS = [
    """
CREATE TRIGGER jobs_in_flight_insert AFTER INSERT ON jobs
WHEN NEW.next_run_at IS NOT NULL
BEGIN
  UPDATE accounts SET jobs_in_flight = jobs_in_flight + 1,
                      seconds_in_flight = seconds_in_flight
                        + coalesce(json_extract(NEW.params, '$.duration_seconds'), 0)
  WHERE id = NEW.account_id;
END
""",
    """
CREATE TRIGGER jobs_in_flight_update AFTER UPDATE OF next_run_at ON jobs
WHEN (OLD.next_run_at IS NULL) <> (NEW.next_run_at IS NULL)
BEGIN
  UPDATE accounts SET
    jobs_in_flight = jobs_in_flight + (CASE WHEN NEW.next_run_at IS NULL THEN -1 ELSE 1 END),
    seconds_in_flight = seconds_in_flight
      + (CASE WHEN NEW.next_run_at IS NULL THEN -1 ELSE 1 END)
        * coalesce(json_extract(NEW.params, '$.duration_seconds'), 0)
  WHERE id = NEW.account_id;
END
""",
    """
CREATE TRIGGER jobs_in_flight_delete AFTER DELETE ON jobs
WHEN OLD.next_run_at IS NOT NULL
BEGIN
  UPDATE accounts SET jobs_in_flight = jobs_in_flight - 1,
                      seconds_in_flight = seconds_in_flight
                        - coalesce(json_extract(OLD.params, '$.duration_seconds'), 0)
  WHERE id = OLD.account_id;
END
""",
]

SQLITE_DROP = [
    "DROP TRIGGER jobs_in_flight_delete",
    "DROP TRIGGER jobs_in_flight_update",
    "DROP TRIGGER jobs_in_flight_insert",
]


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("jobs_in_flight", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("seconds_in_flight", sa.BigInteger, nullable=False, server_default="0")
        )
    postgres = op.get_bind().dialect.name == "postgresql"
    op.execute(_BACKFILL_PG if postgres else _BACKFILL_SQLITE)
    # the caps no longer count jobs: the index that served the count goes
    op.drop_index("ix_jobs_active_account", table_name="jobs")
    for statement in PG_FUNCTIONS if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_DROP if postgres else SQLITE_DROP:
        op.execute(statement)
    op.create_index(
        "ix_jobs_active_account",
        "jobs",
        ["account_id"],
        postgresql_where=sa.text("next_run_at IS NOT NULL"),
        sqlite_where=sa.text("next_run_at IS NOT NULL"),
    )
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("seconds_in_flight")
        batch.drop_column("jobs_in_flight")
