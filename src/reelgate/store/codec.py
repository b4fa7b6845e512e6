"""Job values ⇄ rows: the one place that knows how a job is laid out in the database.

The JSON columns (params, attempts, result, error) keep the key names they
have always had, so rows written by earlier versions read back unchanged.
Unknown keys are ignored (a newer version's row read by an older process).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from reelgate.job import (
    Attempt,
    AttemptOutcome,
    Job,
    JobError,
    JobParams,
    JobResult,
    JobState,
    MirrorStatus,
)

__all__ = [
    "changed_columns",
    "changed_fields",
    "decode_error",
    "decode_params",
    "decode_result",
    "encode_error",
    "encode_params",
    "encode_result",
    "job_from_row",
    "job_to_row",
]

_JOB_FIELDS = tuple(f.name for f in fields(Job))


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def encode_error(error: JobError | None) -> dict[str, Any] | None:
    if error is None:
        return None
    return _drop_none(
        {
            "code": error.code,
            "message": error.message,
            "class": error.error_class,
            "upstream_status": error.upstream_status,
            "lookup_error": error.lookup_error,
        }
    )


def decode_error(raw: Mapping[str, Any] | None) -> JobError | None:
    if not raw:
        return None
    status = raw.get("upstream_status")
    return JobError(
        code=str(raw.get("code") or "error"),
        message=str(raw.get("message") or ""),
        error_class=raw.get("class"),
        upstream_status=int(status) if status is not None else None,
        lookup_error=raw.get("lookup_error"),
    )


def encode_params(p: JobParams) -> dict[str, Any]:
    return _drop_none({f.name: getattr(p, f.name) for f in fields(JobParams)})


def decode_params(raw: Mapping[str, Any]) -> JobParams:
    seed = raw.get("seed")
    return JobParams(
        duration_seconds=int(raw["duration_seconds"]),
        resolution=str(raw["resolution"]),
        aspect_ratio=str(raw["aspect_ratio"]),
        width=int(raw["width"]),
        height=int(raw["height"]),
        negative_prompt=raw.get("negative_prompt"),
        seed=int(seed) if seed is not None else None,
        image_url=raw.get("image_url"),
        image_key=raw.get("image_key"),
        image_mime_type=raw.get("image_mime_type"),
        edit=raw.get("edit"),
        source_video_id=raw.get("source_video_id"),
        source_key=raw.get("source_key"),
        source_seconds=float(raw["source_seconds"]) if raw.get("source_seconds") else None,
        audio=raw.get("audio"),
        provider_params=raw.get("provider_params"),
    )


def _encode_attempt(a: Attempt) -> dict[str, Any]:
    return {
        "model": a.model,
        "upstream_id": a.upstream_id,
        "outcome": a.outcome.value,
        "error": encode_error(a.error),
        "started_at": a.started_at,
        "ended_at": a.ended_at,
        "create_pending": a.create_pending,
        "create_sent_at": a.create_sent_at,
        "adopted": a.adopted,
        "last_error": encode_error(a.last_error),
        "provider": a.provider,
        "route": a.route,
    }


def _decode_attempt(raw: Mapping[str, Any]) -> Attempt:
    outcome = raw.get("outcome") or "submitting"
    return Attempt(
        model=str(raw.get("model")),
        started_at=int(raw.get("started_at") or 0),
        outcome=AttemptOutcome(outcome),
        upstream_id=raw.get("upstream_id"),
        error=decode_error(raw.get("error")),
        ended_at=raw.get("ended_at"),
        # rows from before the flag existed: an open create counts as possibly sent
        create_pending=bool(raw.get("create_pending", True)),
        create_sent_at=raw.get("create_sent_at"),
        adopted=bool(raw.get("adopted", False)),
        last_error=decode_error(raw.get("last_error")),
        provider=raw.get("provider"),
        route=raw.get("route"),
    )


def encode_result(r: JobResult | None) -> dict[str, Any] | None:
    if r is None:
        return None
    out = {f.name: getattr(r, f.name) for f in fields(JobResult)}
    out["mirror_status"] = r.mirror_status.value
    return out


def decode_result(raw: Mapping[str, Any] | None) -> JobResult | None:
    if not raw:
        return None
    known = {f.name for f in fields(JobResult)}
    values = {k: v for k, v in raw.items() if k in known and v is not None}
    values["mirror_status"] = MirrorStatus(raw.get("mirror_status") or "pending")
    values["mirror_tries"] = int(raw.get("mirror_tries") or 0)
    return JobResult(**values)


_ENCODE: dict[str, Any] = {
    "state": lambda s: s.value,
    "chain": list,
    "params": encode_params,
    "metadata": dict,
    "attempts": lambda attempts: [_encode_attempt(a) for a in attempts],
    "result": encode_result,
    "error": encode_error,
}


def _column(name: str, value: Any) -> Any:
    encode = _ENCODE.get(name)
    return encode(value) if encode is not None else value


def job_to_row(job: Job) -> dict[str, Any]:
    """Every column of a new job's row."""
    return {name: _column(name, getattr(job, name)) for name in _JOB_FIELDS}


def changed_fields(before: Job, after: Job) -> dict[str, Any]:
    """The fields of ``after`` that differ from ``before`` (what a step changed)."""
    if after.id != before.id:
        raise ValueError(f"a step changed job {before.id} into {after.id}")
    return {
        name: getattr(after, name)
        for name in _JOB_FIELDS
        if getattr(after, name) != getattr(before, name)
    }


def changed_columns(before: Job, after: Job) -> dict[str, Any]:
    """The columns a step changes, encoded for the row."""
    return {name: _column(name, value) for name, value in changed_fields(before, after).items()}


def job_from_row(row: Mapping[Any, Any]) -> Job:
    return Job(
        id=row["id"],
        account_id=row["account_id"],
        source=row["source"],
        model=row["model"],
        chain=tuple(row["chain"]),
        chain_index=row["chain_index"],
        attempt_no=row["attempt_no"],
        state=JobState(row["state"]),
        prompt=row["prompt"],
        params=decode_params(row["params"]),
        deadline_at=row["deadline_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        metadata={str(k): str(v) for k, v in (row["metadata"] or {}).items()},
        progress=row["progress"],
        upstream_id=row["upstream_id"],
        running_since=row["running_since"],
        poll_count=row["poll_count"],
        retries=row["retries"],
        attempts=tuple(_decode_attempt(a) for a in row["attempts"] or ()),
        result=decode_result(row["result"]),
        error=decode_error(row["error"]),
        cancel_requested=bool(row["cancel_requested"]),
        next_run_at=row["next_run_at"],
        lease_owner=row["lease_owner"],
        lease_expires_at=row["lease_expires_at"],
        completed_at=row["completed_at"],
        hold_id=row["hold_id"],
        delivered_by=row["delivered_by"],
        units_consumed=row["units_consumed"],
        cost=row["cost"],
        event_seq=row["event_seq"] or 0,
        deleted_at=row["deleted_at"],
        active_provider=row["active_provider"],
        webhook_url=row["webhook_url"],
        pinned_at=row["pinned_at"],
        expired_at=row["expired_at"],
        purged_at=row["purged_at"],
        delivered_route=row["delivered_route"],
        upstream_cost=row["upstream_cost"],
        key_id=row["key_id"],
    )
