"""The caller's money and history: balance, the recent-requests log, a daily summary,
and the usage lines as CSV."""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from reelgate.api.auth import require_admin, require_read, runtime
from reelgate.api.charts import range_bars, stacked_bars
from reelgate.billing import format_credits
from reelgate.billing.money import CreditValue
from reelgate.errors import ValidationFailed
from reelgate.job import Job, PublicStatus
from reelgate.runtime import Runtime
from reelgate.store.accounts import KeyInfo
from reelgate.store.db import reading
from reelgate.store.jobs import now_ms
from reelgate.store.usage import (
    DAY_MS,
    UsageDay,
    UsageLoss,
    chart_jobs,
    daily_usage,
    loss_usage,
)

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
    """Seconds delivered and credits charged per delivering model per UTC day; for keys
    with the ``admin`` scope (or with ``usage_shows_upstream_cost``) also per route, with
    upstream cost, margin and the failures a provider billed anyway (losses)."""
    if end < start:
        raise ValidationFailed("end must not be before start.", param="end")
    if (end - start).days > 366:
        raise ValidationFailed("A summary covers at most 366 days.", param="end")
    async with rt.store.reading() as tx:
        rows = await tx.daily_usage(
            key.account_id, _day_ms(start), _day_ms(end + timedelta(days=1))
        )
    async with reading(rt.db) as conn:
        losses = await loss_usage(
            conn, key.account_id, _day_ms(start), _day_ms(end + timedelta(days=1))
        )
    body = _summary("usage_summary", start, end, rows, losses, rt.settings.credit())
    if rt.settings.usage_shows_upstream_cost or "admin" in key.scopes:
        return body
    return _customer_view(body, rows, rt.settings.credit())


def _customer_view(
    body: dict[str, Any], rows: list[UsageDay], credit: CreditValue
) -> dict[str, Any]:
    """The summary without the operator's figures (routes, upstream cost, margin,
    losses): one row per day and model."""
    merged: dict[tuple[int, str | None], list[int]] = {}
    for r in rows:
        totals = merged.setdefault((r.day, r.model), [0, 0, 0])
        totals[0] += r.jobs
        totals[1] += r.seconds
        totals[2] += r.cost
    hidden = ("losses", "total_upstream_cost_money", "total_loss_money", "total_margin_money")
    return {
        **{k: v for k, v in body.items() if k not in hidden},
        "data": [
            {
                "date": _date(day),
                "model": model,
                "jobs": jobs,
                "seconds": seconds,
                "cost": format_credits(cost),
                "cost_millicredits": cost,
                "cost_money": credit.wire(cost),
            }
            for (day, model), (jobs, seconds, cost) in merged.items()
        ],
    }


def _date(day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=day)).isoformat()


def _summary(
    kind: str,
    start: date,
    end: date,
    rows: list[UsageDay],
    losses: list[UsageLoss],
    credit: CreditValue,
) -> dict[str, Any]:
    """Revenue, upstream cost and margin by day, model and route (and account in the
    operator's report), with the billed failures as losses."""
    data = [
        {
            "date": _date(r.day),
            **({"account_id": r.account_id} if kind == "usage_report" else {}),
            "model": r.model,
            "jobs": r.jobs,
            "seconds": r.seconds,
            "cost": format_credits(r.cost),
            "cost_millicredits": r.cost,
            "cost_money": credit.wire(r.cost),
            "route": r.route,
            # what the routes cost upstream (the provider's own figure, else list cost x
            # reported seconds) and what is left, over the jobs whose upstream cost is
            # known (costed_jobs of jobs)
            "upstream_cost_millicredits": r.upstream_cost,
            "upstream_cost_money": credit.wire(r.upstream_cost),
            "costed_jobs": r.costed,
            "margin_millicredits": r.margin,
            "margin_money": credit.wire(r.margin),
        }
        for r in rows
    ]
    lost = [
        {
            "date": _date(x.day),
            **({"account_id": x.account_id} if kind == "usage_report" else {}),
            "model": x.model,
            "route": x.route,
            "jobs": x.jobs,
            "upstream_cost_millicredits": x.upstream_cost,
            "upstream_cost_money": credit.wire(x.upstream_cost),
        }
        for x in losses
    ]
    total_cost = sum(r.cost for r in rows)
    total_loss = sum(x.upstream_cost for x in losses)
    return {
        "object": kind,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "data": data,
        # failed or canceled jobs the provider billed anyway (never charged to the user)
        "losses": lost,
        "total_seconds": sum(r.seconds for r in rows),
        "total_cost": format_credits(total_cost),
        "total_money": credit.wire(total_cost),
        "total_upstream_cost_money": credit.wire(sum(r.upstream_cost for r in rows) + total_loss),
        "total_loss_money": credit.wire(total_loss),
        "total_margin_money": credit.wire(sum(r.margin for r in rows) - total_loss),
    }


@router.get("/admin/usage/report", tags=["admin"])
async def usage_report(
    start: date = Query(..., description="First day (UTC), YYYY-MM-DD."),
    end: date = Query(..., description="Last day (UTC), inclusive."),
    account_id: str | None = Query(None, description="One account only."),
    _key: KeyInfo = Depends(require_admin),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """(Admin) Revenue, upstream cost and margin across every account, by day, account,
    model and route, with billed failures as losses."""
    if end < start:
        raise ValidationFailed("end must not be before start.", param="end")
    if (end - start).days > 366:
        raise ValidationFailed("A report covers at most 366 days.", param="end")
    first, last = _day_ms(start), _day_ms(end + timedelta(days=1))
    async with reading(rt.db) as conn:
        rows = await daily_usage(conn, None, first, last)
        losses = await loss_usage(conn, None, first, last)
    if account_id is not None:
        rows = [r for r in rows if r.account_id == account_id]
        losses = [x for x in losses if x.account_id == account_id]
    return _summary("usage_report", start, end, rows, losses, rt.settings.credit())


EXPORT_COLUMNS = (
    "job_id",
    "created_at",
    "completed_at",
    "status",
    "model",
    "delivered_by",
    "requested_seconds",
    "seconds",
    "cost_credits",
    "cost_millicredits",
    "cost_money",
    "currency",
    "latency_seconds",
    "error_code",
    "attempts",
)
EXPORT_PAGE = 500


def _cell(value: Any) -> str:
    """A CSV cell; text a spreadsheet would run as a formula is quoted with '."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _NUMBER.match(text) else text


_NUMBER = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")


_DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


def _day(text: str | None, param: str) -> date | None:
    """A YYYY-MM-DD day (FastAPI's ``date`` would also take a Unix time, like ``0``)."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationFailed(
            f"{param} is not a day: {text!r} (YYYY-MM-DD).", param=param
        ) from None


def _csv_line(values: list[Any]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([_cell(v) for v in values])
    return out.getvalue()


def _export_line(job: Job, credit: CreditValue) -> str:
    row = _usage_row(job, credit)
    money = row["cost_money"]
    return _csv_line(
        [
            row["job_id"],
            row["created_at"],
            row["completed_at"],
            row["status"],
            row["model"],
            row["delivered_by"],
            row["requested_seconds"],
            row["seconds"],
            row["cost"],
            row["cost_millicredits"],
            money["amount"] if money else None,
            money["currency"] if money else None,
            row["latency_seconds"],
            row["error_code"],
            row["attempts"],
        ]
    )


@router.get(
    "/usage/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "One line per job."}},
)
async def export_csv(
    start: str | None = Query(
        None, pattern=_DAY, description="First UTC day, YYYY-MM-DD (default: 29 days before end)."
    ),
    end: str | None = Query(
        None, pattern=_DAY, description="Last UTC day, YYYY-MM-DD, included (default: today)."
    ),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> StreamingResponse:
    """Your usage lines as CSV, newest first: every job created in the days asked for,
    what it was charged in credits and money. Streamed a page at a time, so an export
    of a busy year never sits whole in memory."""
    last = _day(end, "end") or datetime.now(UTC).date()
    first = _day(start, "start") or last - timedelta(days=29)
    if last < first:
        raise ValidationFailed("end must not be before start.", param="end")
    if (last - first).days > 366:
        raise ValidationFailed("An export covers at most 366 days.", param="end")
    start_ms, end_ms = _day_ms(first), _day_ms(last + timedelta(days=1))
    credit = rt.settings.credit()

    async def page(after: str | None) -> list[Job]:
        async with rt.store.reading() as tx:
            return await tx.list_jobs(
                key.account_id, limit=EXPORT_PAGE, after=after, include_deleted=True
            )

    first_page = await page(None)  # a database error here is still a JSON answer

    async def lines() -> AsyncIterator[str]:
        yield _csv_line(list(EXPORT_COLUMNS))
        jobs_page = first_page
        while True:
            for job in jobs_page:
                if job.created_at >= end_ms:
                    continue
                if job.created_at < start_ms:
                    return  # ids are in creation order: nothing older is wanted
                yield _export_line(job, credit)
            if len(jobs_page) < EXPORT_PAGE:
                return
            jobs_page = await page(jobs_page[-1].id)

    name = f"reelgate-usage-{first.isoformat()}-{last.isoformat()}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


CHART_DAYS = (7, 30, 90)
CHART_SAMPLE = 50_000
"""Jobs the charts read at most (the newest): a bounded query however busy the account."""
CHART_MODELS = 7
"""Models drawn on their own in the spend chart; the rest are summed as "other"."""
OUTCOMES = ("completed", "failed", "canceled", "in_progress")
OUTCOME_COLORS = ("#009E73", "#D55E00", "#999999", "#56B4E9")


def _percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    return values[max(0, math.ceil(p / 100 * len(values)) - 1)]


def _short(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


@router.get("/usage/charts")
async def charts(
    days: int = Query(
        30,
        description="The period: 7, 30 or 90 days, today included.",
        json_schema_extra={"enum": list(CHART_DAYS)},
    ),
    key: KeyInfo = Depends(require_read),
    rt: Runtime = Depends(runtime),
) -> dict[str, Any]:
    """Spend per day by model (stacked), jobs per day by outcome, and time to video per
    model (p50/p95), each as an SVG drawn here and as the numbers behind it."""
    if days not in CHART_DAYS:
        raise ValidationFailed(
            f"days must be one of {', '.join(map(str, CHART_DAYS))}.",
            param="days",
            allowed=list(CHART_DAYS),
        )
    today = now_ms() // DAY_MS
    first = today - days + 1
    start, end = first * DAY_MS, (today + 1) * DAY_MS
    async with reading(rt.db) as conn:
        rows = await chart_jobs(conn, key.account_id, start, end, CHART_SAMPLE)
    labels = [(date(1970, 1, 1) + timedelta(days=d)).isoformat() for d in range(first, today + 1)]
    spend: dict[str, list[int]] = {}
    outcomes = {name: [0] * days for name in OUTCOMES}
    waits: dict[str, list[float]] = {}
    for job in rows:
        made = job.created_at // DAY_MS - first
        if 0 <= made < days:
            outcome = job.status.value if job.status.is_final else "in_progress"
            outcomes[outcome if outcome in outcomes else "in_progress"][made] += 1
        if job.status is not PublicStatus.COMPLETED or job.completed_at is None:
            continue
        done = job.completed_at // DAY_MS - first
        if 0 <= done < days:
            spend.setdefault(job.model, [0] * days)[done] += job.cost
            waits.setdefault(job.model, []).append((job.completed_at - job.created_at) / 1000)
    ranked = sorted(spend.items(), key=lambda item: (-sum(item[1]), item[0]))
    shown = ranked[:CHART_MODELS]
    if len(ranked) > CHART_MODELS:
        rest = [sum(values[i] for _, values in ranked[CHART_MODELS:]) for i in range(days)]
        shown.append(("other", rest))
    credit = rt.settings.credit()

    def tip(value: float) -> str:
        return f"{format_credits(int(value))} credits ({credit.currency} {credit.text(int(value))})"

    times = []
    for model, seconds in sorted(waits.items()):
        seconds.sort()
        times.append((model, _percentile(seconds, 50), _percentile(seconds, 95), len(seconds)))
    total = sum(sum(values) for _, values in ranked)
    return {
        "object": "usage.charts",
        "days": days,
        "start": labels[0],
        "end": labels[-1],
        "sampled": len(rows) >= CHART_SAMPLE,
        "spend": {
            "svg": stacked_bars(
                f"Spend per day by model, last {days} days",
                labels,
                shown,
                lambda v: _short(v / 1000),
                tip=tip,
                width=1100,
                plot_height=180,
            ),
            "total": format_credits(total),
            "total_money": credit.wire(total),
            "by_model": [
                {
                    "model": model,
                    "millicredits": sum(values),
                    "credits": format_credits(sum(values)),
                    "money": credit.wire(sum(values)),
                }
                for model, values in ranked
            ],
        },
        "outcomes": {
            "svg": stacked_bars(
                f"Jobs per day by outcome, last {days} days",
                labels,
                [(name.replace("_", " "), values) for name, values in outcomes.items()],
                _short,
                tip=lambda v: f"{v:g} jobs",
                colors=OUTCOME_COLORS,
                width=540,
                plot_height=160,
            ),
            "counts": {name: sum(values) for name, values in outcomes.items()},
        },
        "time_to_video": {
            "svg": range_bars(
                f"Time to video per model (p50 / p95), last {days} days", times, width=540
            ),
            "models": [
                {"model": m, "p50_seconds": round(p50, 3), "p95_seconds": round(p95, 3), "jobs": n}
                for m, p50, p95, n in times
            ],
        },
    }
