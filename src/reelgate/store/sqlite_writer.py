"""One thread that writes to a SQLite file: whole transactions in one hop, and concurrent
ones committed together.

Through SQLAlchemy and aiosqlite every statement is a trip to the connection's thread
and back (a queue put, a wake-up of the event loop, a greenlet switch); a submit of
seven statements made seven. Here a caller hands over a *function* that runs all its
statements on a plain ``sqlite3`` connection, and waits once.

Calls that arrive while a transaction is running wait for it and then run together in
the next one, each inside its own SAVEPOINT: one call's failure rolls back only its own
writes, and the group commits once (a group commit: under load, the commit's cost and
the write lock's hand-over are shared). A caller hears back only after the COMMIT, so an
answer never promises what was not written; a failed COMMIT fails the whole group.

The thread exits after ``IDLE_SECONDS`` without work (closing its connection) and starts
again on the next call, so an engine that is never disposed leaks nothing for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

__all__ = ["SqliteWriter", "column_encoder", "decoded_rows", "insert_row"]

T = TypeVar("T")

IDLE_SECONDS = 5.0
MAX_GROUP = 64
"""The most calls one transaction carries (bounds the time the write lock is held)."""


@dataclass
class _Call:
    fn: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    ok: bool = False
    value: Any = None


def _settle(calls: list[_Call]) -> None:
    """On the caller's loop: hand each waiting caller its outcome."""
    for call in calls:
        if call.future.done():
            continue  # the caller gave up (cancelled); the outcome stands regardless
        if call.ok:
            call.future.set_result(call.value)
        else:
            call.future.set_exception(call.value)


class SqliteWriter:
    def __init__(self, path: str, *, busy_ms: int) -> None:
        self.path = path
        self.busy_ms = busy_ms
        self._queue: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.transactions = 0
        """Transactions committed or rolled back so far (the group size is calls / this)."""
        self.calls = 0

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` inside a write transaction (``BEGIN IMMEDIATE``) and return its value
        once that transaction has committed. ``fn`` runs on the writer's thread: it must
        only use the connection it is given, and never block on anything else."""
        if self._closed:
            raise RuntimeError("the SQLite writer is closed")
        loop = asyncio.get_running_loop()
        call = _Call(fn, loop, loop.create_future())
        self._queue.put(call)
        self._ensure_thread()
        result: T = await call.future
        return result

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._serve, name="reelgate-sqlite-writer", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the thread (no new calls are taken)."""
        self._closed = True
        with self._lock:
            thread = self._thread
        if thread is not None and thread.is_alive():
            self._queue.put(None)
            thread.join(timeout=30)

    # -- the thread ---------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,  # we say BEGIN and COMMIT ourselves
            check_same_thread=False,
            timeout=self.busy_ms / 1000,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA busy_timeout={int(self.busy_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                try:
                    first = self._queue.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():
                            self._thread = None
                            return
                    continue
                if first is None:
                    return
                group = [first]
                stop = False
                while len(group) < MAX_GROUP:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is None:
                        stop = True
                        break
                    group.append(more)
                if conn is None:
                    try:
                        conn = self._connect()
                    except sqlite3.Error as exc:
                        self._fail(group, exc)
                        continue
                self._transaction(conn, group)
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()

    def _transaction(self, conn: sqlite3.Connection, group: list[_Call]) -> None:
        self.transactions += 1
        self.calls += len(group)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._fail(group, exc)
            return
        try:
            for call in group:
                conn.execute("SAVEPOINT call")
                try:
                    call.value = call.fn(conn)
                    call.ok = True
                except Exception as exc:
                    conn.execute("ROLLBACK TO call")
                    call.value = exc
                conn.execute("RELEASE call")
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # the savepoint bookkeeping or the COMMIT failed: nothing of the group stands
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._fail(group, exc)
            return
        self._deliver(group)

    def _fail(self, group: list[_Call], exc: BaseException) -> None:
        for call in group:
            call.ok, call.value = False, exc
        self._deliver(group)

    @staticmethod
    def _deliver(group: list[_Call]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Call]] = {}
        for call in group:
            by_loop.setdefault(call.loop, []).append(call)
        for loop, calls in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, calls)


# -- rows for the writer's plain sqlite3 connection ------------------------------------

_DIALECT = sqlite_dialect.dialect(paramstyle="qmark")


@cache
def _processors(table: sa.Table) -> dict[str, Any]:
    """Each column's bind processor: values are encoded exactly as SQLAlchemy would
    (JSON as text, booleans as 0/1)."""
    return {c.name: c.type.dialect_impl(_DIALECT).bind_processor(_DIALECT) for c in table.c}


@cache
def _insert_sql(table: sa.Table) -> str:
    return str(table.insert().compile(dialect=_DIALECT))  # every column, in table order


@cache
def column_encoder(table: sa.Table) -> Callable[[str, Any], Any]:
    """``encode(column, value)``: a value as ``table``'s column stores it in SQLite."""
    procs = _processors(table)

    def encode(name: str, value: Any) -> Any:
        proc = procs[name]
        return proc(value) if proc is not None else value

    return encode


def insert_row(conn: sqlite3.Connection, table: sa.Table, row: Mapping[str, Any]) -> None:
    """``INSERT`` one row (every column of ``table``) on a plain sqlite3 connection."""
    encode = column_encoder(table)
    conn.execute(_insert_sql(table), tuple(encode(c.name, row[c.name]) for c in table.c))


@cache
def _decoders(table: sa.Table) -> dict[str, Any]:
    return {c.name: c.type.dialect_impl(_DIALECT).result_processor(_DIALECT, None) for c in table.c}


def decoded_rows(cursor: sqlite3.Cursor, table: sa.Table) -> list[dict[str, Any]]:
    """A cursor's rows of ``table``'s columns, decoded as SQLAlchemy would read them."""
    decoders = _decoders(table)
    names = [d[0] for d in cursor.description]
    procs = [decoders[name] for name in names]
    return [
        {
            name: proc(v) if proc is not None else v
            for name, proc, v in zip(names, procs, row, strict=True)
        }
        for row in cursor.fetchall()
    ]
