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
    return create_async_engine(
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
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        try:
            return await on_postgres(raw.driver_connection)
        except Exception as exc:
            if is_unavailable(exc):
                # SQLAlchemy did not see this error: tell its pool the connection
                # (and any other made before the outage) is not to be used again
                await conn.invalidate(exc)
            raise


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
