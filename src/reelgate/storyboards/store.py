"""The ``storyboards`` table (``store.schema``). Every function takes the connection of a
transaction its caller holds. A worker leases a storyboard while it advances it; its
writes are fenced by the lease (``save``), as a job's steps are."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from reelgate.store.schema import storyboards
from reelgate.storyboards.model import Shot, ShotRun, Storyboard, StoryboardState

__all__ = [
    "claim_due",
    "expire_due",
    "get",
    "insert",
    "list_for",
    "mark_purged",
    "next_due",
    "purge_expired",
    "request_cancel",
    "restart_shot",
    "save",
]


def _from_row(row: Any) -> Storyboard:
    spec = row["spec"]
    return Storyboard(
        id=row["id"],
        account_id=row["account_id"],
        key_id=row["key_id"],
        state=StoryboardState(row["state"]),
        progress=int(row["progress"]),
        shots=tuple(Shot.from_row(s) for s in spec["shots"]),
        runs=tuple(ShotRun.from_row(r) for r in row["shots"]),
        continue_from_previous=bool(spec.get("continue_from_previous")),
        crossfade_seconds=float(spec.get("crossfade_seconds") or 0.0),
        cancel_requested=row["cancel_requested_at"] is not None,
        result=row["result"],
        error=row["error"],
        metadata=dict(row["metadata"] or {}),
        next_run_at=row["next_run_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
        expired_at=row["expired_at"],
    )


def _progress_columns(sb: Storyboard) -> dict[str, Any]:
    """What a worker's step writes (never ``spec``: a cancel is written there)."""
    return {
        "state": sb.state.value,
        "progress": sb.progress,
        "shots": [r.to_row() for r in sb.runs],
        "result": dict(sb.result) if sb.result is not None else None,
        "error": dict(sb.error) if sb.error is not None else None,
        "next_run_at": sb.next_run_at,
        "updated_at": sb.updated_at,
        "completed_at": sb.completed_at,
    }


async def insert(conn: AsyncConnection, sb: Storyboard) -> None:
    await conn.execute(
        storyboards.insert().values(
            id=sb.id,
            account_id=sb.account_id,
            key_id=sb.key_id,
            spec=sb.spec_row(),
            metadata=dict(sb.metadata),
            created_at=sb.created_at,
            **_progress_columns(sb),
        )
    )


async def get(conn: AsyncConnection, storyboard_id: str, account_id: str) -> Storyboard | None:
    row = (
        (
            await conn.execute(
                sa.select(storyboards).where(
                    storyboards.c.id == storyboard_id, storyboards.c.account_id == account_id
                )
            )
        )
        .mappings()
        .first()
    )
    return _from_row(row) if row is not None else None


async def list_for(
    conn: AsyncConnection, account_id: str, *, limit: int, after: str | None = None
) -> list[Storyboard]:
    """Newest first; ``after`` is the last id of the previous page."""
    query = sa.select(storyboards).where(storyboards.c.account_id == account_id)
    if after:
        query = query.where(storyboards.c.id < after)
    rows = (await conn.execute(query.order_by(storyboards.c.id.desc()).limit(limit))).mappings()
    return [_from_row(r) for r in rows]


async def claim_due(
    conn: AsyncConnection, owner: str, now: int, lease_ms: int, limit: int
) -> list[Storyboard]:
    """Lease up to ``limit`` storyboards that are due and held by nobody (or by a worker
    whose lease ran out). Each is taken by a conditional UPDATE, so two workers never
    hold one at once (the same on SQLite and PostgreSQL); taken in id order."""
    free = sa.or_(storyboards.c.lease_owner.is_(None), storyboards.c.lease_expires_at < now)
    due = sa.and_(storyboards.c.next_run_at.is_not(None), storyboards.c.next_run_at <= now)
    ids = (
        await conn.execute(
            sa.select(storyboards.c.id)
            .where(due, free)
            .order_by(storyboards.c.next_run_at, storyboards.c.id)
            .limit(limit)
        )
    ).scalars()
    taken = []
    for storyboard_id in sorted(ids):
        done = await conn.execute(
            storyboards.update()
            .where(storyboards.c.id == storyboard_id, due, free)
            .values(lease_owner=owner, lease_expires_at=now + lease_ms)
        )
        if done.rowcount == 1:
            taken.append(storyboard_id)
    if not taken:
        return []
    rows = (
        await conn.execute(sa.select(storyboards).where(storyboards.c.id.in_(taken)))
    ).mappings()
    return [_from_row(r) for r in rows]


async def save(
    conn: AsyncConnection,
    sb: Storyboard,
    owner: str,
    now: int,
    *,
    keep_lease_ms: int | None = None,
) -> bool:
    """Write a worker's step, fenced by its lease: nothing is written (False) once the
    lease ran out or was taken (by another worker, or a retry of a shot). The lease is
    dropped, or kept ``keep_lease_ms`` from ``now``."""
    lease: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
    if keep_lease_ms is not None:
        lease = {"lease_owner": owner, "lease_expires_at": now + keep_lease_ms}
    done = await conn.execute(
        storyboards.update()
        .where(
            storyboards.c.id == sb.id,
            storyboards.c.lease_owner == owner,
            storyboards.c.lease_expires_at >= now,
        )
        .values(**_progress_columns(sb), **lease)
    )
    return done.rowcount == 1


async def next_due(conn: AsyncConnection) -> int | None:
    query = sa.select(sa.func.min(storyboards.c.next_run_at)).where(
        storyboards.c.next_run_at.is_not(None)  # the partial index ix_storyboards_due
    )
    due = (await conn.execute(query)).scalar()
    return int(due) if due is not None else None


async def request_cancel(conn: AsyncConnection, sb: Storyboard, now: int) -> bool:
    """Mark it to be canceled (its own column: no step or retry rewrites it); the worker
    that advances it next cancels its shots. False when it has ended meanwhile."""
    done = await conn.execute(
        storyboards.update()
        .where(
            storyboards.c.id == sb.id,
            storyboards.c.state.not_in(
                [StoryboardState.COMPLETED.value, StoryboardState.CANCELED.value]
            ),
        )
        .values(cancel_requested_at=sa.func.coalesce(storyboards.c.cancel_requested_at, now))
        .values(next_run_at=now)
    )
    return done.rowcount == 1


async def restart_shot(
    conn: AsyncConnection,
    sb: Storyboard,
    index: int,
    shot: Shot,
    now: int,
    progress: int,
) -> bool:
    """Retry shot ``index`` of a failed storyboard as ``shot`` (the same, or changed): its
    job is put aside and the storyboard runs again. Compare-and-swap on ``updated_at``:
    False when the storyboard changed since ``sb`` was read, or a worker holds it now
    (read it again and retry). A lease that ran out is taken from its worker, whose
    late write is then refused."""
    run = sb.runs[index]
    runs = list(sb.runs)
    runs[index] = ShotRun(job_id=None, tried=(*run.tried, *([run.job_id] if run.job_id else [])))
    shots = list(sb.shots)
    shots[index] = shot
    spec = replace(sb, shots=tuple(shots)).spec_row()
    done = await conn.execute(
        storyboards.update()
        .where(
            storyboards.c.id == sb.id,
            storyboards.c.updated_at == sb.updated_at,
            storyboards.c.state == StoryboardState.FAILED.value,
            storyboards.c.cancel_requested_at.is_(None),
            sa.or_(storyboards.c.lease_owner.is_(None), storyboards.c.lease_expires_at < now),
        )
        .values(
            state=StoryboardState.RUNNING.value,
            progress=progress,
            spec=spec,
            shots=[r.to_row() for r in runs],
            error=None,
            next_run_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return done.rowcount == 1


async def expire_due(conn: AsyncConnection, before: int, now: int, limit: int) -> int:
    """Mark completed storyboards finished before ``before`` as expired (their files go
    next, in ``purge_expired``); how many."""
    ids = (
        await conn.execute(
            sa.select(storyboards.c.id)
            .where(
                storyboards.c.state == StoryboardState.COMPLETED.value,
                storyboards.c.completed_at < before,
                storyboards.c.expired_at.is_(None),
            )
            .order_by(storyboards.c.completed_at)
            .limit(limit)
        )
    ).scalars()
    wanted = list(ids)
    if not wanted:
        return 0
    done = await conn.execute(
        storyboards.update()
        .where(storyboards.c.id.in_(wanted), storyboards.c.expired_at.is_(None))
        .values(expired_at=now, updated_at=now)
    )
    return int(done.rowcount)


async def purge_expired(conn: AsyncConnection, limit: int) -> list[tuple[str, list[str]]]:
    """Expired storyboards whose files are not deleted yet: (id, storage keys: the video,
    its poster and sprite sheet, the shots' inline start images)."""
    rows = (
        await conn.execute(
            sa.select(storyboards.c.id, storyboards.c.result, storyboards.c.spec)
            .where(storyboards.c.expired_at.is_not(None), storyboards.c.purged_at.is_(None))
            .order_by(storyboards.c.expired_at)
            .limit(limit)
        )
    ).all()
    out = []
    for row in rows:
        result = row.result or {}
        keys = [result.get(k) for k in ("key", "poster_key", "sprite_key")]
        keys += [shot.get("image_key") for shot in (row.spec or {}).get("shots", [])]
        out.append((row.id, [k for k in keys if k]))
    return out


async def mark_purged(conn: AsyncConnection, ids: list[str], now: int) -> None:
    await conn.execute(storyboards.update().where(storyboards.c.id.in_(ids)).values(purged_at=now))
