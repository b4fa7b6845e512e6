"""Outbound webhooks: endpoints, the default secret, the outbox and the deliveries.

The outbox is filled by a trigger on ``job_events``: every event row is written in the
transaction of the change it reports (the submit, a step, a cancel), so a trigger there
puts the webhook in the same transaction without touching any of those code paths (nor
``reelgate_submit``/``reelgate_step``). It writes a row only for a job that has a
``webhook_url`` or whose account has an enabled endpoint: jobs nobody listens to cost
one indexed look-up per event and nothing more.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")

_LISTENED = """
  FROM jobs AS j
  WHERE j.id = NEW.job_id
    AND (j.webhook_url IS NOT NULL
         OR EXISTS (SELECT 1 FROM webhook_endpoints AS e
                    WHERE e.account_id = j.account_id AND e.disabled_at IS NULL))
"""

PG_TRIGGER = [
    f"""
CREATE FUNCTION reelgate_webhook_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO webhook_outbox (job_id, seq, type, created_at)
  SELECT NEW.job_id, NEW.seq, NEW.type, NEW.created_at {_LISTENED};
  RETURN NULL;
END $$
""",
    """
CREATE TRIGGER job_events_webhook_outbox AFTER INSERT ON job_events FOR EACH ROW
EXECUTE FUNCTION reelgate_webhook_outbox()
""",
]

PG_DROP = [
    "DROP TRIGGER job_events_webhook_outbox ON job_events",
    "DROP FUNCTION reelgate_webhook_outbox",
]

SQLITE_TRIGGER = [
    f"""
CREATE TRIGGER job_events_webhook_outbox AFTER INSERT ON job_events
BEGIN
  INSERT INTO webhook_outbox (job_id, seq, type, created_at)
  SELECT NEW.job_id, NEW.seq, NEW.type, NEW.created_at {_LISTENED};
END
""",
]

SQLITE_DROP = ["DROP TRIGGER job_events_webhook_outbox"]


def upgrade() -> None:
    # a plain ADD COLUMN (no batch rebuild): the in-flight triggers of 0012 stay
    op.add_column("jobs", sa.Column("webhook_url", sa.String(2048), nullable=True))
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("description", sa.String(500), nullable=False, server_default=""),
        sa.Column("events", Json, nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_until", sa.BigInteger, nullable=True),
        sa.Column("disabled_at", sa.BigInteger, nullable=True),
        sa.Column("disabled_reason", sa.String(500), nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_webhook_endpoints_account_id", "webhook_endpoints", ["account_id"])
    op.create_table(
        "webhook_secrets",
        sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("previous_secret", sa.String(128), nullable=True),
        sa.Column("previous_until", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhook_outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("job_id", sa.String(48), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.String(48), primary_key=True),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(48), nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("event_seq", sa.Integer, nullable=False),
        sa.Column("endpoint_id", sa.String(48), nullable=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=True),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(500), nullable=True),
        sa.Column("history", Json, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("delivered_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_webhook_deliveries_job_id", "webhook_deliveries", ["job_id"])
    op.create_index(
        "ix_webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_TRIGGER if postgres else SQLITE_TRIGGER:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in PG_DROP if postgres else SQLITE_DROP:
        op.execute(statement)
    op.drop_index("ix_webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_job_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_outbox")
    op.drop_table("webhook_secrets")
    op.drop_index("ix_webhook_endpoints_account_id", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
    with op.batch_alter_table("jobs", recreate="never") as batch:
        batch.drop_column("webhook_url")
