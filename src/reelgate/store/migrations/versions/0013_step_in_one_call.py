"""A step's write in one call: PostgreSQL gets the fenced update of a job, its event and
its hold's settlement as one function (``store.step`` calls it). SQLite needs nothing:
its writer thread runs the same writes in Python.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PG_FUNCTIONS = [
    # ``billing.pricing.format_credits`` in SQL: an exact decimal string of millicredits
    """
CREATE FUNCTION reelgate_credits(m bigint) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN m < 0 THEN '-' ELSE '' END || (abs(m) / 1000)::text || '.'
         || lpad((abs(m) % 1000)::text, 3, '0')
$$
""",
    # The step (``store.step``). ``p_set`` holds the job's changed columns, whole values
    # decided on the Python side; only those are written (``jsonb_populate_record`` fills
    # them, typed by the table), and only while ``p_worker`` holds the lease: false means
    # the fence stopped the write and nothing at all was written. A later ``next_run_at``
    # never overwrites an earlier one someone else set while the step ran (the job's
    # ``next_run_at`` is not what the step read, ``p_before_next``). The hold's
    # settlement is ``ledger._resolve``'s: closed once (``status = 'open'``), the account
    # moved by the lines' deltas, the lines' notes as ``store.step.settlement_lines``
    # words them.
    """
CREATE FUNCTION reelgate_step(
  p_id text, p_worker text, p_set jsonb, p_before_next bigint, p_event jsonb,
  p_hold text, p_capture bigint, p_ledger_ids text[], p_now bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
  v_next bigint := (p_set->>'next_run_at')::bigint;
  v_cols text;
  v_sql text;
  v_rows integer;
  h record;
  v_captured bigint;
BEGIN
  IF v_next IS NOT NULL THEN
    SELECT string_agg(quote_ident(k), ', ') INTO v_cols
      FROM jsonb_object_keys(p_set - 'next_run_at') AS k;
    v_sql := format(
      'UPDATE jobs AS j SET (%1$s) = (SELECT %1$s FROM jsonb_populate_record(NULL::jobs, $1)), '
      'next_run_at = CASE WHEN j.next_run_at IS NOT NULL AND j.next_run_at IS DISTINCT FROM $4 '
      'AND j.next_run_at < $5 THEN j.next_run_at ELSE $5 END '
      'WHERE j.id = $2 AND j.lease_owner = $3', v_cols);
  ELSE
    SELECT string_agg(quote_ident(k), ', ') INTO v_cols FROM jsonb_object_keys(p_set) AS k;
    v_sql := format(
      'UPDATE jobs AS j SET (%1$s) = (SELECT %1$s FROM jsonb_populate_record(NULL::jobs, $1)) '
      'WHERE j.id = $2 AND j.lease_owner = $3', v_cols);
  END IF;
  EXECUTE v_sql USING p_set, p_id, p_worker, p_before_next, v_next;
  GET DIAGNOSTICS v_rows = ROW_COUNT;
  IF v_rows = 0 THEN
    RETURN false;
  END IF;
  IF p_event IS NOT NULL THEN
    INSERT INTO job_events SELECT * FROM jsonb_populate_record(NULL::job_events, p_event);
    PERFORM pg_notify('reelgate_events', p_id);
  END IF;
  IF p_hold IS NOT NULL THEN
    UPDATE holds AS ho
       SET status = CASE WHEN p_capture > 0 THEN 'captured' ELSE 'released' END,
           captured = least(p_capture, ho.amount), resolved_at = p_now
     WHERE ho.id = p_hold AND ho.status = 'open'
     RETURNING ho.amount, ho.account_id, ho.job_id INTO h;
    IF FOUND THEN
      v_captured := least(p_capture, h.amount);
      UPDATE accounts AS ac SET balance = ac.balance - v_captured, held = ac.held - h.amount
       WHERE ac.id = h.account_id;
      IF v_captured > 0 THEN
        INSERT INTO ledger (id, account_id, kind, balance_delta, held_delta, hold_id, job_id,
                            note, created_at)
        VALUES (p_ledger_ids[1], h.account_id, 'capture', -v_captured, -h.amount, p_hold,
                h.job_id, 'charge for delivered video', p_now);
        IF v_captured < h.amount THEN
          INSERT INTO ledger (id, account_id, kind, balance_delta, held_delta, hold_id,
                              job_id, note, created_at)
          VALUES (p_ledger_ids[2], h.account_id, 'release', 0, 0, p_hold, h.job_id,
                  'unused hold: ' || reelgate_credits(h.amount - v_captured), p_now);
        END IF;
      ELSE
        INSERT INTO ledger (id, account_id, kind, balance_delta, held_delta, hold_id, job_id,
                            note, created_at)
        VALUES (p_ledger_ids[1], h.account_id, 'release', 0, -h.amount, p_hold, h.job_id,
                'job not completed: nothing charged', p_now);
      END IF;
    END IF;
  END IF;
  RETURN true;
END $$
""",
]

PG_DROP = ["DROP FUNCTION reelgate_step", "DROP FUNCTION reelgate_credits"]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_FUNCTIONS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in PG_DROP:
            op.execute(statement)
