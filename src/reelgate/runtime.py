"""Everything a reelgate process holds: built once from settings, passed in, closed once."""

from __future__ import annotations

import gc
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from reelgate import metrics
from reelgate.accounts.keycache import KeyCache
from reelgate.catalog import Catalog, load_catalog
from reelgate.catalog.lifecycle import Unavailable
from reelgate.catalog.synced.store import load_into
from reelgate.config import Settings, with_config_file
from reelgate.engine.events import EventHub
from reelgate.limits import RateLimiter
from reelgate.providers.registry import ProviderRegistry, build_registry
from reelgate.storage import Storage, open_storage
from reelgate.store.base import Store
from reelgate.store.db import create_engine, is_postgres
from reelgate.store.recent import Recent
from reelgate.store.sql import SqlStore
from reelgate.store.wakeup import InProcessWakeup, PostgresWakeup, Wakeup

__all__ = ["Runtime", "build_runtime", "freeze_startup_heap", "load_signing_secret"]


@dataclass
class Runtime:
    settings: Settings
    catalog: Catalog
    db: AsyncEngine
    storage: Storage
    providers: ProviderRegistry
    wakeup: Wakeup
    signing_secret: bytes
    public_url: str
    rate_limiter: RateLimiter | None = None
    events: EventHub = field(default_factory=EventHub)
    keys: KeyCache = field(default_factory=KeyCache)
    """Valid API keys, remembered a second (``accounts.keycache``)."""
    flags: Recent[str, dict[str, Any]] = field(default_factory=Recent)
    """Accounts' flags, remembered a second (``store.recent``)."""
    gone: Recent[str, list[Unavailable]] = field(default_factory=Recent)
    """The models providers said are gone, remembered a second (``store.recent``)."""
    store: Store = field(init=False)
    """The engine's store over ``db`` (``store.base``)."""
    worker_heartbeat: Callable[[], float | None] | None = None
    """Seconds since the worker in this process last reached the database (None: it has
    not yet); set by ``reelgate serve``, None where no worker runs (``api.health``)."""

    def __post_init__(self) -> None:
        self.store = SqlStore(self.db)

    async def aclose(self) -> None:
        await self.wakeup.stop()
        if self.rate_limiter is not None:
            await self.rate_limiter.aclose()
        await self.providers.aclose()
        await self.db.dispose()


def freeze_startup_heap() -> None:
    """Call once a long-running process has built everything it keeps (runtime, app,
    catalog): ``gc.freeze()`` moves those objects out of the collector's generations, so
    a full collection no longer walks the startup heap. Measured in the submit benchmark:
    the first full collection of an API process took 80-110 ms, every request in flight
    waiting behind it; after a freeze it walks only what requests have left behind."""
    gc.collect()
    gc.freeze()


def load_signing_secret(settings: Settings) -> bytes:
    """The HMAC key for signed file URLs: from settings, else a file kept in the data dir
    so that URLs stay valid across restarts and across processes sharing the data dir."""
    if settings.signing_secret is not None:
        return settings.signing_secret.get_secret_value().encode()
    path: Path = settings.data_dir / "signing.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("x") as fh:
            fh.write(secrets.token_hex(32))
        path.chmod(0o600)
    except FileExistsError:
        pass
    return path.read_text().strip().encode()


async def build_runtime(
    settings: Settings,
    *,
    public_url: str,
    listen: bool = True,
    emulated: frozenset[str] = frozenset(),
) -> Runtime:
    """``listen``: start the cross-process wake-up listener (workers and SSE need it)."""
    settings = with_config_file(settings)
    if settings.metrics != "off":
        metrics.enable(settings.resolved_metrics_dir())
    db_url = settings.resolved_database_url()
    secret = load_signing_secret(settings)
    limiter = None
    if settings.rate_limit:
        limiter = RateLimiter.from_url(settings.redis_url or None, settings.rate_limit)
        await limiter.check()  # a wrong Redis URL stops startup with a clear error
    hub = EventHub()
    wakeup: Wakeup = (
        PostgresWakeup(db_url, on_event=hub.notify)
        if is_postgres(db_url) and listen
        else InProcessWakeup()
    )
    await wakeup.start()
    rt = Runtime(
        settings=settings,
        catalog=load_catalog(settings.config_file),
        db=create_engine(db_url, timeout=settings.database_timeout_seconds),
        storage=open_storage(
            settings.resolved_storage_url(),
            public_base_url=public_url,
            signing_secret=secret,
            options=settings.storage_options,
        ),
        providers=build_registry(settings, emulated=emulated),
        wakeup=wakeup,
        signing_secret=secret,
        public_url=public_url,
        rate_limiter=limiter,
        events=hub,
    )
    await load_into(rt.catalog, rt.db)  # the synced models (``reelgate catalog sync``)
    return rt
