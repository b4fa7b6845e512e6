"""The caller's money and history: balance, the recent-requests log, a daily summary."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query

from reelgate.api.auth import require_read, runtime
from reelgate.billing import format_credits
from reelgate.billing.money import CreditValue
from reelgate.errors import ValidationFailed
from reelgate.job import Job, PublicStatus
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["usage"])


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _usage_row(job: Job, credit: CreditValue) -> dict[str, Any]:
    status = job.status
    final = status.is_final
    return {
        "job_id": job.id,
        "model": job.model,
        "delivered_by": job.delivered_by,
        "status": status.value,
        "seconds": job.units_consumed if final else None,
        "requested_seconds": job.params.duration_seconds,
        "cost": format_credits(job.cost) if final and job.cost is not None else None,
        "cost_millicredits": job.cost if final else None,
        "cost_money": credit.wire(job.cost) if final and job.cost is not None else None,
        "created_at": _iso(job.created_at),
        "completed_at": _iso(job.completed_at) if final else None,
        "latency_seconds": round((job.completed_at - job.created_at) / 1000, 3)
        if final and job.completed_at
        else None,
        "error_code": job.error.code
        if status is PublicStatus.FAILED and job.error is not None
        else None,
        "attempts": len(job.attempts),
    }


@router.get("/balance")
async def balance(
    key: KeyInfo = Depends(require_read), rt: Runtime = Depends(runtime)
) -> dict[str, Any]:
    async with rt.store.reading() as tx:
        current = await tx.get_balance(key.account_id)
    return {
        "object": "balance",
        "account_id": key.account_id,
        **current.to_wire(rt.settings.credit()),
    }


@router.get("/usage/recent")
async def recent(
    limit: int = Query(20, ge=1, le=100),
    after: str | None = Query(None, description="Cursor: the last job_id of the previous page."),
    status: Literal["queued", "in_progress", "completed", "failed", "canceled"] | None = None,
    model: str | None = Query(None, description="Requested or delivering model id."),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Settings → Usage → Recent requests: newest first."""
    async with rt.store.reading() as tx:
        rows = await tx.list_jobs(
            key.account_id,
            limit=limit + 1,
            after=after,
            status=PublicStatus(status) if status else None,
            model=model,
            include_deleted=True,
        )
    page = rows[:limit]
    return {
        "object": "list",
        "data": [_usage_row(j, rt.settings.credit()) for j in page],
        "has_more": len(rows) > limit,
        "last_id": page[-1].id if page else None,
    }


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


@router.get("/usage/summary")
async def summary(
    start: date = Query(..., description="First day (UTC), YYYY-MM-DD."),
    end: date = Query(..., description="Last day (UTC), inclusive."),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Seconds delivered and credits charged per delivering model per UTC day."""
    if end < start:
        raise ValidationFailed("end must not be before start.", param="end")
    if (end - start).days > 366:
        raise ValidationFailed("A summary covers at most 366 days.", param="end")
    async with rt.store.reading() as tx:
        rows = await tx.daily_usage(
            key.account_id, _day_ms(start), _day_ms(end + timedelta(days=1))
        )
    credit = rt.settings.credit()
    data = [
        {
            "date": (date(1970, 1, 1) + timedelta(days=r.day)).isoformat(),
            "model": r.model,
            "jobs": r.jobs,
            "seconds": r.seconds,
            "cost": format_credits(r.cost),
            "cost_millicredits": r.cost,
            "cost_money": credit.wire(r.cost),
        }
        for r in rows
    ]
    total_cost = sum(r.cost for r in rows)
    total_seconds = sum(r.seconds for r in rows)
    return {
        "object": "usage_summary",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "data": data,
        "total_seconds": total_seconds,
        "total_cost": format_credits(total_cost),
        "total_money": credit.wire(total_cost),
    }
