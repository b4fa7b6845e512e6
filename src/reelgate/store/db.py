"""Database engines for both backends, chosen by URL, and what an outage looks like.

SQLite runs in WAL mode with a busy timeout so the API and several worker
processes can share one file; writers that claim jobs use ``BEGIN IMMEDIATE``
(see ``store.jobs``). PostgreSQL runs on asyncpg.

Every wait on the database is bounded (``timeout``): a connect, a statement,
a lock, a pool checkout. A database that is down, cut or frozen therefore
turns into an exception within seconds, never a request or a worker step
hanging forever; ``is_unavailable`` tells such an outage from a bug, so the
API can answer 503 and the workers can back off and resume.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import sqlalchemy.exc as sa_exc
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from reelgate.errors import DatabaseUnavailable
from reelgate.store.sqlite_writer import SqliteWriter

T = TypeVar("T")

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "async_url",
    "create_engine",
    "is_postgres",
    "is_sqlite",
    "is_unavailable",
    "one_call",
    "reading",
    "sqlite_writer",
]

DEFAULT_TIMEOUT_SECONDS = 15.0
"""The longest any one wait on the database may take before it counts as an outage."""


def async_url(url: str) -> str:
    """Accept plain ``postgresql://`` and ``sqlite:///`` URLs and pick the async driver."""
    u = make_url(url)
    if u.drivername in ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2"):
        u = u.set(drivername="postgresql+asyncpg")
    elif u.drivername == "sqlite":
        u = u.set(drivername="sqlite+aiosqlite")
    return u.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def is_postgres(url: str) -> bool:
    return make_url(url).get_backend_name() == "postgresql"


def _sqlite_pragmas(busy_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Leave transaction control to us: aiosqlite's default would open
        # transactions implicitly and BEGIN IMMEDIATE could not be issued.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        # a writer waits this long for the lock, then "database is locked" (an outage)
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return on_connect


def _sqlite_begin(conn: Any) -> None:
    # Write transactions take the write lock up front: a deferred transaction
    # that reads then writes can fail with SQLITE_BUSY instead of waiting, which
    # would turn a contended claim into an error. Reads (``reading()``) begin
    # deferred, so in WAL mode they run beside the writer instead of queueing.
    if conn.get_execution_options().get(_READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_READ_ONLY = "reelgate_read_only"


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads only: never takes SQLite's write lock."""
    async with engine.connect() as conn:
        await conn.execution_options(**{_READ_ONLY: True})
        yield conn


def create_engine(
    url: str, *, pool_size: int = 10, timeout: float | None = DEFAULT_TIMEOUT_SECONDS
) -> AsyncEngine:
    """``timeout`` bounds every wait (None: unbounded, for migrations that may run long)."""
    url = async_url(url)
    pool_timeout = timeout if timeout is not None else 30.0
    if is_sqlite(url):
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=pool_timeout,
            hide_parameters=True,  # errors (and so logs) never carry prompts or key hashes
        )
        busy_ms = int((timeout if timeout is not None else 60.0) * 1000)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas(busy_ms))
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            _WRITER_SETTINGS[engine.sync_engine] = (database, busy_ms)
            event.listen(engine.sync_engine, "engine_disposed", _close_writer)
        return engine
    connect_args: dict[str, Any] = {}
    if timeout is not None:
        connect_args = {
            "timeout": timeout,  # connecting
            "command_timeout": timeout,  # each statement, commit included
            # A client that froze mid-transaction must not hold row locks for
            # ever: the server ends such a session (and its locks) on its own.
            "server_settings": {
                "idle_in_transaction_session_timeout": str(int(timeout * 2000)),
            },
        }
    pg = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No ping at checkout (SQLAlchemy's asyncpg ping is three round trips: BEGIN,
        # a query, ROLLBACK, on every request). A connection that died with its server
        # fails its next statement instead; that error invalidates the whole pool, so
        # an outage costs each process one failed request (a 503) and no more.
        pool_pre_ping=False,
        pool_timeout=pool_timeout,
        connect_args=connect_args,
        hide_parameters=True,
    )
    _ONE_CALL_SETTINGS[pg.sync_engine] = (connect_args, pool_size, pool_timeout)
    event.listen(pg.sync_engine, "engine_disposed", _close_one_calls)
    return pg


_WRITER_SETTINGS: weakref.WeakKeyDictionary[Engine, tuple[str, int]] = weakref.WeakKeyDictionary()
_WRITERS: weakref.WeakKeyDictionary[Engine, SqliteWriter] = weakref.WeakKeyDictionary()


def sqlite_writer(engine: AsyncEngine) -> SqliteWriter | None:
    """The writer thread of a SQLite file's engine (``store.sqlite_writer``), made on first
    use and closed when the engine is disposed; None for PostgreSQL or an in-memory
    database (whose connections would each see a different database)."""
    sync = engine.sync_engine
    writer = _WRITERS.get(sync)
    if writer is None:
        found = _WRITER_SETTINGS.get(sync)
        if found is None:
            return None
        writer = _WRITERS[sync] = SqliteWriter(found[0], busy_ms=found[1])
    return writer


async def one_call(
    engine: AsyncEngine,
    on_sqlite: Callable[[sqlite3.Connection], T],
    on_postgres: Callable[[Any], Awaitable[T]],
) -> T:
    """A whole transaction sent as one call: ``on_sqlite(connection)`` on the SQLite
    file's writer thread, or ``on_postgres(connection)`` on a pooled asyncpg connection
    itself, outside SQLAlchemy's transaction, so that in autocommit its one statement
    (or one function) is the whole transaction, sent in one trip instead of three
    (BEGIN, the statement, COMMIT). The submit, a step's write and a claim use it."""
    writer = sqlite_writer(engine)
    if writer is not None:
        return await writer.run(on_sqlite)
    if engine.dialect.name != "postgresql":
        raise RuntimeError(
            f"no one-call writes for {engine.dialect.name}: SQLite must be a file database"
        )
    return await _one_calls(engine).run(on_postgres)


class _PgOneCalls:
    """asyncpg connections for one-call writes, beside SQLAlchemy's pool rather than
    through it: a checkout there (greenlet, pool events, connection wrappers) cost
    ~0.2 ms of CPU per call, more than the call's own work, and a worker makes four
    or five per job. Connected as SQLAlchemy connects (the URL's arguments, the
    engine's timeouts, the same JSON codecs), at most ``size`` at once, made as needed
    and kept while idle.

    An outage is handled as SQLAlchemy's pool handles it after ``invalidate``: the
    connection that met it and every idle one (made before the outage) are closed,
    so an outage costs a process one failed call and no more; waiting longer than
    the pool timeout for a free connection is an outage too."""

    def __init__(
        self, engine: AsyncEngine, connect_args: dict[str, Any], size: int, wait_seconds: float
    ) -> None:
        args, params = engine.dialect.create_connect_args(engine.url)
        self._args = list(args)
        self._params = {**params, **connect_args}
        self._wait_seconds = wait_seconds
        self._idle: list[asyncpg.Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._closed = False
        self._loop = asyncio.get_running_loop()

    async def run(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait_seconds)
        except TimeoutError:
            raise sa_exc.TimeoutError(
                f"no PostgreSQL connection for a one-call write within {self._wait_seconds:g} s"
            ) from None
        conn: asyncpg.Connection | None = None
        try:
            conn = await self._take()
            return await fn(conn)
        except BaseException as exc:
            if conn is not None and (is_unavailable(exc) or not isinstance(exc, Exception)):
                # an outage, or a call cancelled mid-statement: not to be used again
                conn.terminate()
                conn = None
                if is_unavailable(exc):
                    self._drop_idle()
            raise
        finally:
            if conn is not None:
                self._give_back(conn)
            self._slots.release()

    async def _take(self) -> asyncpg.Connection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
        conn = await asyncpg.connect(*self._args, **self._params)
        try:
            await conn.set_type_codec(
                "json",
                encoder=str.encode,
                decoder=_json_from_bytes,
                schema="pg_catalog",
                format="binary",
            )
            await conn.set_type_codec(
                "jsonb",
                encoder=_jsonb_to_bytes,
                decoder=_json_from_jsonb,
                schema="pg_catalog",
                format="binary",
            )
        except BaseException:
            conn.terminate()
            raise
        return conn

    def _give_back(self, conn: asyncpg.Connection) -> None:
        if self._closed or conn.is_closed() or conn.is_in_transaction():
            conn.terminate()
        else:
            self._idle.append(conn)

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.terminate()

    def close(self) -> None:
        self._closed = True
        if self._loop.is_closed():
            self._idle.clear()  # their sockets closed with their loop
        else:
            self._drop_idle()


# The JSON codecs SQLAlchemy's asyncpg dialect installs (``setup_asyncpg_json_codec``):
# parameters go in as JSON text, values come out decoded.
def _json_from_bytes(value: bytes) -> Any:
    return json.loads(value.decode())


def _jsonb_to_bytes(value: str) -> bytes:
    return b"\x01" + value.encode()  # jsonb's binary format: a version byte, then the text


def _json_from_jsonb(value: bytes) -> Any:
    return json.loads(value[1:].decode())


_ONE_CALL_SETTINGS: weakref.WeakKeyDictionary[Engine, tuple[dict[str, Any], int, float]] = (
    weakref.WeakKeyDictionary()
)
# per engine, per event loop (an asyncpg connection belongs to the loop that made it)
_ONE_CALLS: weakref.WeakKeyDictionary[Engine, dict[asyncio.AbstractEventLoop, _PgOneCalls]] = (
    weakref.WeakKeyDictionary()
)


def _one_calls(engine: AsyncEngine) -> _PgOneCalls:
    sync, loop = engine.sync_engine, asyncio.get_running_loop()
    by_loop = _ONE_CALLS.setdefault(sync, {})
    calls = by_loop.get(loop)
    if calls is None:
        for old in [old for old in by_loop if old.is_closed()]:
            del by_loop[old]  # its connections went with it
        connect_args, size, wait_seconds = _ONE_CALL_SETTINGS.get(sync, ({}, 5, 30.0))
        calls = by_loop[loop] = _PgOneCalls(engine, connect_args, size, wait_seconds)
    return calls


def _close_one_calls(engine: Engine) -> None:
    for calls in _ONE_CALLS.pop(engine, {}).values():
        calls.close()


def _close_writer(engine: Engine) -> None:
    writer = _WRITERS.pop(engine, None)
    if writer is not None:
        writer.close()


_DRIVER_MODULES = ("asyncpg", "aiosqlite", "sqlite3", "sqlalchemy")

# asyncpg's errors that mean "no usable server": connection lost or refused,
# server shutting down or starting, out of connections, session ended by timeout
_ASYNCPG_OUTAGES = (
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
)


# SQLITE_BUSY, _LOCKED, _NOMEM, _IOERR, _CORRUPT (a torn read), _FULL, _CANTOPEN,
# _PROTOCOL (https://www.sqlite.org/rescode.html; primary codes, the low byte)
_SQLITE_OUTAGES = frozenset({5, 6, 7, 10, 11, 13, 14, 15})


def _raised_by_driver(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.split(".", 1)[0] in _DRIVER_MODULES:
            return True
        tb = tb.tb_next
    return False


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 8:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


DB_RETRY_AFTER_SECONDS = 2


def database_unavailable() -> DatabaseUnavailable:
    """The 503 a client gets while the database is unreachable."""
    return DatabaseUnavailable(
        "The database is unavailable right now; nothing was changed by this request unless "
        "it already succeeded. Retry in a few seconds (with the same Idempotency-Key, if "
        "you sent one).",
        retry_after=DB_RETRY_AFTER_SECONDS,
    )


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` means the database could not be reached or answered in time
    (refused, reset, frozen, locked, shut down), as opposed to a bug in a statement.

    asyncpg raises connect failures and statement timeouts as plain ``OSError`` /
    ``TimeoutError``; those count only when they came out of a database driver, so
    a storage or network error elsewhere is never mistaken for a database outage.
    """
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "sqlite_errorcode", None)
        if isinstance(code, int):
            # SQLite says what went wrong: busy, locked, I/O, cannot open, full... are
            # outages; "no such column" and friends are bugs (PostgreSQL calls those
            # ProgrammingError), and must not look like a database that went away.
            return code & 0xFF in _SQLITE_OUTAGES
        if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            return True
        return any(isinstance(e, _ASYNCPG_OUTAGES) for e in _chain(exc))
    if isinstance(exc, sqlite3.Error):  # raised by the writer thread's own connection
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_OUTAGES
    if isinstance(exc, (sa_exc.TimeoutError, sa_exc.DisconnectionError)):
        return True  # the pool waited too long, or could not (re)connect
    if isinstance(exc, sa_exc.PendingRollbackError):
        return True  # the connection was invalidated under an open transaction
    if isinstance(exc, _ASYNCPG_OUTAGES):
        return True
    if isinstance(exc, OSError):  # ConnectionRefusedError, TimeoutError, resets
        return _raised_by_driver(exc)
    return False
