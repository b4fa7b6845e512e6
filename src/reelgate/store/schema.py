"""The one schema, for SQLite and PostgreSQL alike (Alembic migrations build it).

Times are integers: milliseconds since the Unix epoch, UTC. They compare and
index the same way on both databases and never lose a time zone.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
    }
)

Json = sa.JSON().with_variant(JSONB(), "postgresql")

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("flags", Json, nullable=False, default=dict),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # Millicredits. ``held`` is the sum of open holds; available = balance - held.
    sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
    # The account's unfinished jobs (``next_run_at`` set) and their seconds of video, for
    # the submit-time caps. Kept by triggers on ``jobs`` (migration 0012), never by code.
    sa.Column("jobs_in_flight", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("seconds_in_flight", sa.BigInteger, nullable=False, server_default="0"),
    sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
    sa.CheckConstraint("held >= 0", name="held_not_negative"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False, default=""),
    # The first characters of the key, shown in listings so a person can tell keys apart.
    sa.Column("prefix", sa.String(16), nullable=False),
    # sha256 of the whole key: keys are long random strings, so a fast hash is enough.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=True),
    sa.Column("revoked_at", sa.BigInteger, nullable=True),
)

_KEPT = "completed_at IS NOT NULL AND expired_at IS NULL AND pinned_at IS NULL"
_UNPURGED = "expired_at IS NOT NULL AND purged_at IS NULL"

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("source", sa.String(32), nullable=False, default="native"),
    sa.Column("model", sa.String(64), nullable=False),
    # The models to try in order: the requested one, then its fallbacks.
    sa.Column("chain", Json, nullable=False),
    sa.Column("chain_index", sa.Integer, nullable=False, default=0),
    # Counts every upstream create across the chain; part of the idempotency key.
    sa.Column("attempt_no", sa.Integer, nullable=False, default=0),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("prompt", sa.Text, nullable=False),
    sa.Column("params", Json, nullable=False),
    sa.Column("metadata", Json, nullable=False, default=dict),
    sa.Column("progress", sa.SmallInteger, nullable=False, default=0),
    sa.Column("upstream_id", sa.String(256), nullable=True),
    sa.Column("running_since", sa.BigInteger, nullable=True),
    sa.Column("poll_count", sa.Integer, nullable=False, default=0),
    sa.Column("retries", sa.Integer, nullable=False, default=0),
    sa.Column("attempts", Json, nullable=False),
    sa.Column("result", Json, nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("next_run_at", sa.BigInteger, nullable=True),
    sa.Column("deadline_at", sa.BigInteger, nullable=False),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("completed_at", sa.BigInteger, nullable=True),
    # billing: the hold placed at submit, and what completion charged
    sa.Column("hold_id", sa.String(48), nullable=True),
    sa.Column("delivered_by", sa.String(64), nullable=True),
    sa.Column("units_consumed", sa.Integer, nullable=True),
    sa.Column("cost", sa.BigInteger, nullable=True),
    # how many events the job has had (the last job_events.seq)
    sa.Column("event_seq", sa.Integer, nullable=False, server_default="0"),
    # DELETE /v1/videos/{id}: file removed, job hidden; kept for usage and ledger
    sa.Column("deleted_at", sa.BigInteger, nullable=True),
    # the provider kind this job occupies while submitted upstream (submitting,
    # running): per-deployment concurrency caps count these
    sa.Column("active_provider", sa.String(32), nullable=True),
    # the request's own webhook_url (``webhooks``): its events are delivered there too
    sa.Column("webhook_url", sa.String(2048), nullable=True),
    # retention (``engine.retention``): a pinned video is never swept; a swept one's
    # job stays (bill, usage) and says when its video went
    sa.Column("pinned_at", sa.BigInteger, nullable=True),
    sa.Column("expired_at", sa.BigInteger, nullable=True),
    # when its files were deleted (after expired_at: a failed delete is tried again)
    sa.Column("purged_at", sa.BigInteger, nullable=True),
    # what the delivering route cost upstream (millicredits), and which route it was
    sa.Column("delivered_route", sa.String(64), nullable=True),
    sa.Column("upstream_cost", sa.BigInteger, nullable=True),
    # the API key that submitted it (NULL: made before 0018, or by an operator)
    sa.Column("key_id", sa.String(40), nullable=True),
    # The claim query reads only jobs with a wake-up; finished jobs have none,
    # so this index stays the size of the work in flight.
    sa.Index(
        "ix_jobs_due",
        "next_run_at",
        postgresql_where=sa.text("next_run_at IS NOT NULL"),
        sqlite_where=sa.text("next_run_at IS NOT NULL"),
    ),
    sa.Index("ix_jobs_account_id_id", "account_id", "id"),
    # the sweeper's look-up: delivered videos still kept, oldest first
    sa.Index(
        "ix_jobs_retention",
        "completed_at",
        postgresql_where=sa.text(_KEPT),
        sqlite_where=sa.text(_KEPT),
    ),
    # expired videos whose files are still to be deleted
    sa.Index(
        "ix_jobs_unpurged",
        "expired_at",
        postgresql_where=sa.text(_UNPURGED),
        sqlite_where=sa.text(_UNPURGED),
    ),
    sa.Index(
        "ix_jobs_active_provider",
        "active_provider",
        postgresql_where=sa.text("active_provider IS NOT NULL"),
        sqlite_where=sa.text("active_provider IS NOT NULL"),
    ),
    # is an upstream job already some job's? (a lost create is never adopted twice)
    sa.Index(
        "ix_jobs_upstream_id",
        "upstream_id",
        postgresql_where=sa.text("upstream_id IS NOT NULL"),
        sqlite_where=sa.text("upstream_id IS NOT NULL"),
    ),
)

# A deployment (provider kind + upstream model) that answered "quota" is
# skipped by new submissions until ``until_at``; stored so every worker agrees.
provider_cooldowns = sa.Table(
    "provider_cooldowns",
    metadata,
    sa.Column("deployment", sa.String(200), primary_key=True),
    sa.Column("until_at", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# A model its provider said it no longer serves on a route (``errors.ModelGone``):
# the engine skips it and /v1/models shows it unavailable until ``until_at``.
unavailable_models = sa.Table(
    "unavailable_models",
    metadata,
    sa.Column("deployment", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    sa.Column("marked_at", sa.BigInteger, nullable=False),
    sa.Column("until_at", sa.BigInteger, nullable=False),
)

# Provider webhooks acted on, kept while a replay of them could still pass the
# timestamp check (``store.hooks``), so a replayed call changes nothing.
inbound_deliveries = sa.Table(
    "inbound_deliveries",
    metadata,
    sa.Column("delivery_id", sa.String(200), primary_key=True),
    sa.Column("provider", sa.String(32), nullable=False),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("received_at", sa.BigInteger, nullable=False),
    sa.Index("ix_inbound_deliveries_received_at", "received_at"),
)

# One per job: the most the job may cost, reserved at submit and resolved exactly
# once (captured on completion, released otherwise).
holds = sa.Table(
    "holds",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("job_id", sa.String(48), nullable=False, unique=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("captured", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("resolved_at", sa.BigInteger, nullable=True),
    # the submitting key: which key budgets the hold counts against (migration 0018)
    sa.Column("key_id", sa.String(40), nullable=True),
    sa.CheckConstraint("amount >= 0", name="amount_not_negative"),
)

# Spend caps (``store.budgets``): per account (``key_id`` '') or per API key, per UTC
# day or month, in millicredits.
budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("cap", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.CheckConstraint("cap >= 0", name="cap_not_negative"),
    sa.CheckConstraint("period IN ('day', 'month')", name="period"),
)

# What a budgeted scope's jobs of one period ("day:2026-12-03", "month:2026-12") were
# charged and still hold: kept by the submit and by a trigger on ``holds`` (0018), never
# by code; ``notified`` is the highest threshold announced (0, 80, 100).
budget_spend = sa.Table(
    "budget_spend",
    metadata,
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("period_key", sa.String(20), primary_key=True),
    sa.Column("spent", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("held", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("notified", sa.SmallInteger, nullable=False, server_default="0"),
)

# Every movement of credits, never updated or deleted. Summed per account,
# balance_delta gives the balance and held_delta the open holds.
ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("balance_delta", sa.BigInteger, nullable=False),
    sa.Column("held_delta", sa.BigInteger, nullable=False),
    sa.Column("hold_id", sa.String(48), nullable=True),
    sa.Column("job_id", sa.String(48), nullable=True),
    sa.Column("note", sa.String(500), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_ledger_account_id_id", "account_id", "id"),
)

# Idempotency-Key records, per account, kept 24 h.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("account_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("response_status", sa.Integer, nullable=True),
    sa.Column("response_body", Json, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    # while in flight: the handler's token (the fence) and when a retry may take over
    sa.Column("owner", sa.String(32), nullable=True),
    sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
    sa.Index("ix_idempotency_keys_created_at", "created_at"),
)

# Every public state change and progress step of a job, numbered from 1, so
# a client can replay from Last-Event-ID. Written in the same transaction as
# the change itself.
job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", sa.String(48), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("progress", sa.SmallInteger, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# Upstream creates reelgate could not settle: the answer was lost and the provider
# can neither dedupe a re-send nor be searched for the job, or a search found more
# than one candidate. Each may be a video the operator pays for; an operator checks
# the provider's console and marks the row resolved.
ambiguous_creates = sa.Table(
    "ambiguous_creates",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("job_id", sa.String(48), nullable=False),
    sa.Column("attempt_no", sa.Integer, nullable=False),
    sa.Column("model", sa.String(64), nullable=False),
    sa.Column("provider", sa.String(32), nullable=False),
    # known when a search found the upstream job (a duplicate), else NULL
    sa.Column("upstream_id", sa.String(256), nullable=True),
    sa.Column("sent_at", sa.BigInteger, nullable=True),
    # unknown: nothing found out; duplicate_canceled / duplicate_running: a second
    # upstream job found by a search, canceled or left to run (no cancel upstream)
    sa.Column("outcome", sa.String(32), nullable=False),
    sa.Column("note", sa.String(500), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("resolved_at", sa.BigInteger, nullable=True),
    sa.Column("resolution", sa.String(500), nullable=True),
    sa.Index(
        "ix_ambiguous_creates_open",
        "id",
        postgresql_where=sa.text("resolved_at IS NULL"),
        sqlite_where=sa.text("resolved_at IS NULL"),
    ),
)


# ── outbound webhooks (``reelgate.webhooks``) ──

# An account's endpoints: every event of its jobs (or those in ``events``) is delivered
# to each enabled one, signed with its secret (Standard Webhooks). After a rotation the
# previous secret also signs until ``previous_until``.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("description", sa.String(500), nullable=False, server_default=""),
    # event types to deliver; empty: all of them
    sa.Column("events", Json, nullable=False),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("previous_secret", sa.String(128), nullable=True),
    sa.Column("previous_until", sa.BigInteger, nullable=True),
    sa.Column("disabled_at", sa.BigInteger, nullable=True),
    sa.Column("disabled_reason", sa.String(500), nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Index("ix_webhook_endpoints_account_id", "account_id"),
)

# The secret that signs deliveries to a request's own ``webhook_url`` (one per account,
# as Replicate's "default" webhook secret: ``GET /v1/webhooks/default/secret``).
webhook_secrets = sa.Table(
    "webhook_secrets",
    metadata,
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("previous_secret", sa.String(128), nullable=True),
    sa.Column("previous_until", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# The outbox: a row per job event that someone may want delivered, written by a trigger
# on ``job_events`` (migration 0014) in the transaction of the change itself, so no
# change commits without its webhook and none is sent for a change that rolled back.
# The workers turn each into deliveries (one per target) and delete it.
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
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
    # an account's event (a budget's threshold, 0018): its account and its data; the
    # job is the one whose submit crossed the threshold
    sa.Column("account_id", sa.String(40), nullable=True),
    sa.Column("payload", sa.Text, nullable=True),
)

# One event to one target, delivered at least once: the same ``id`` (the
# ``webhook-id`` header) and the same body on every attempt. ``next_attempt_at`` is
# set while it is pending (a claimed one's is its lease), NULL once settled.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("account_id", sa.String(40), nullable=False),
    sa.Column("job_id", sa.String(48), nullable=False),
    sa.Column("event_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(32), nullable=False),
    sa.Column("event_seq", sa.Integer, nullable=False),
    # NULL: the request's own webhook_url, signed with the account's default secret
    sa.Column("endpoint_id", sa.String(48), nullable=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    # pending, delivered, failed (out of attempts), gone (410), disabled (endpoint off)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.BigInteger, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(500), nullable=True),
    sa.Column("history", Json, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("delivered_at", sa.BigInteger, nullable=True),
    sa.Index("ix_webhook_deliveries_job_id", "job_id"),
    sa.Index(
        "ix_webhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=sa.text("next_attempt_at IS NOT NULL"),
        sqlite_where=sa.text("next_attempt_at IS NOT NULL"),
    ),
)

# A storyboard: shots run as ordinary jobs (their ids in ``shots``), then joined into one
# video (``storyboards/``). Leased by a worker while it advances it, like a job.
storyboards = sa.Table(
    "storyboards",
    metadata,
    sa.Column("id", sa.String(48), primary_key=True),
    sa.Column("account_id", sa.String(40), sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("key_id", sa.String(48), nullable=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("progress", sa.SmallInteger, nullable=False, default=0),
    # the request: the shots' fields and the options (continue, crossfade)
    sa.Column("spec", Json, nullable=False),
    # per shot: its current job and the jobs tried before
    sa.Column("shots", Json, nullable=False),
    sa.Column("result", Json, nullable=True),
    sa.Column("error", Json, nullable=True),
    sa.Column("metadata", Json, nullable=False),
    sa.Column("next_run_at", sa.BigInteger, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_expires_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.Column("completed_at", sa.BigInteger, nullable=True),
    # POST /v1/storyboards/{id}/cancel: a column of its own, which no step rewrites
    sa.Column("cancel_requested_at", sa.BigInteger, nullable=True),
    # retention, as for a job's video: marked expired, then its files deleted
    sa.Column("expired_at", sa.BigInteger, nullable=True),
    sa.Column("purged_at", sa.BigInteger, nullable=True),
    sa.Index("ix_storyboards_account_id_id", "account_id", "id"),
    sa.Index(
        "ix_storyboards_due",
        "next_run_at",
        postgresql_where=sa.text("next_run_at IS NOT NULL"),
        sqlite_where=sa.text("next_run_at IS NOT NULL"),
    ),
)

# A model the catalog sync found at fal or Replicate (``catalog/synced/``): its input
# schema as fetched, its hash, and its life: ``active``, or ``retired`` once a sync no
# longer finds it upstream (kept, so jobs and usage still name it).
synced_models = sa.Table(
    "synced_models",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("upstream_id", sa.String(200), nullable=False),
    sa.Column("category", sa.String(32), nullable=False),
    sa.Column("display_name", sa.String(200), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    # {"document": <the provider's document>, "pointer": <JSON pointer to the input>}
    sa.Column("input_schema", Json, nullable=False),
    sa.Column("schema_hash", sa.String(64), nullable=False),
    sa.Column("version", sa.String(80), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    # the mapping found at the last sync: {"status", "problems"}
    sa.Column("mapping", Json, nullable=False),
    sa.Column("source", sa.String(400), nullable=False),
    sa.Column("first_seen_at", sa.BigInteger, nullable=False),
    sa.Column("fetched_at", sa.BigInteger, nullable=False),
    sa.Column("changed_at", sa.BigInteger, nullable=False),
    sa.Column("retired_at", sa.BigInteger, nullable=True),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)
