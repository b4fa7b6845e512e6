"""The ``reelgate`` command: serve, api, worker, db, the admin commands, and the client
commands of ``reelgate-client`` (generate, models, jobs, job, usage, cancel, balance)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

import typer
import uvicorn

from reelgate.cli.admin import accounts_app, ambiguous_app, credits_app, keys_app
from reelgate.cli.budgets import budgets_app
from reelgate.cli.catalog import catalog_app
from reelgate.cli.providers import providers_app
from reelgate.cli.webhooks import webhooks_app
from reelgate.config import Settings
from reelgate.logs import LogFormat, configure
from reelgate.store import migrate
from reelgate.store.db import is_unavailable
from reelgate_client.cli import register_client_commands

if TYPE_CHECKING:
    from reelgate.engine.worker import Worker
    from reelgate.runtime import Runtime

app = typer.Typer(no_args_is_help=True, add_completion=False, help="reelgate: AI video gateway.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
app.add_typer(db_app, name="db")
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(credits_app, name="credits")
app.add_typer(ambiguous_app, name="ambiguous")
app.add_typer(providers_app, name="providers")
app.add_typer(webhooks_app, name="webhooks")
app.add_typer(budgets_app, name="budgets")
app.add_typer(catalog_app, name="catalog")
register_client_commands(app)

log = logging.getLogger("reelgate.cli")
T = TypeVar("T")
_MAX_WAIT_SECONDS = 15.0


class _NoQueryStrings(logging.Filter):
    """Access-log lines without their query strings: signed links and provider callback
    URLs carry their signature there, and a log is no place for a capability."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            path, sep, _ = args[2].partition("?")
            if sep:
                record.args = (*args[:2], f"{path}?…", *args[3:])
        return True


def _logging(level: str, fmt: LogFormat = "text") -> None:
    configure(level, fmt)
    # httpx logs every request's full URL at INFO: signed result links and the
    # callback URLs sent to providers included
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("uvicorn.access").addFilter(_NoQueryStrings())


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the CLI owns SIGTERM/SIGINT so
    it can stop the API and the worker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _on_signals(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)


def _migrate_when_available(url: str) -> None:
    """Apply migrations, waiting for the database if it is not reachable yet (a
    process started before its database, or during an outage, waits instead of dying)."""
    delay = 0.5
    while True:
        try:
            migrate.upgrade(url)
            return
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning("database unavailable (%s); retrying in %.0fs", type(exc).__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, _MAX_WAIT_SECONDS)


async def _when_available(what: str, work: Callable[[], Awaitable[T]]) -> T:
    delay = 0.5
    while True:
        try:
            return await work()
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            log.warning(
                "%s: database unavailable (%s); retrying in %.0fs", what, type(exc).__name__, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_WAIT_SECONDS)


class _SupervisedWorker:
    """A worker that is started again should its loop ever end with an error (its loop
    already rides out database outages; this is the last line of defence)."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.current: Worker | None = None
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True
        if self.current is not None:
            self.current.stop()

    def heartbeat_age(self) -> float | None:
        return None if self.current is None else self.current.heartbeat_age()

    async def run(self) -> None:
        from reelgate.engine.worker import Worker

        failures = 0
        while not self.stopping:
            self.current = Worker.from_runtime(self.rt)
            try:
                await self.current.run()
                return
            except Exception:
                failures += 1
                delay = min(30.0, 2.0**failures)
                log.exception("worker failed; starting a new one in %.0fs", delay)
                await asyncio.sleep(delay)


def _banner(public_url: str, key: str) -> str:
    return f"""
reelgate is running at {public_url}   (API reference: {public_url}/docs)
dev API key: {key}
Open the studio: {public_url}/?key={key}

Submit a job:
  curl -s {public_url}/v1/videos -H "Authorization: Bearer {key}" \\
       -H "Content-Type: application/json" \\
       -d '{{"model": "local", "prompt": "a red fox running through snow",
            "duration_seconds": 4, "aspect_ratio": "16:9"}}'
Poll it (use the id from the answer):
  curl -s {public_url}/v1/videos/<id> -H "Authorization: Bearer {key}"
"""


async def _run(
    settings: Settings,
    host: str,
    port: int,
    *,
    api: bool,
    worker: bool,
    log_level: str,
    emulated: frozenset[str] = frozenset(),
) -> None:
    from reelgate.accounts.dev import ensure_dev_account
    from reelgate.api.app import create_app
    from reelgate.runtime import build_runtime, freeze_startup_heap
    from reelgate.store.accounts import DEV_ACCOUNT_ID

    public_url = settings.public_url or f"http://{host}:{port}"
    rt = await build_runtime(settings, public_url=public_url, emulated=emulated)
    tasks: list[asyncio.Task[None]] = []
    try:
        server: _Server | None = None
        wk: _SupervisedWorker | None = None
        if api:
            key = await _when_available("dev account", lambda: ensure_dev_account(rt))

            async def allow_emulated() -> None:
                # offline trial: let the dev account use every emulated model
                async with rt.store.begin() as tx:
                    flags = {"allowed_models": rt.catalog.ids(), "prc_opt_in": True}
                    await tx.set_flags(DEV_ACCOUNT_ID, flags)

            if emulated:
                await _when_available("dev account", allow_emulated)
            config = uvicorn.Config(
                create_app(rt),
                host=host,
                port=port,
                log_level=log_level,
                lifespan="off",
                log_config=None,  # uvicorn's lines go through ours (format, context, filters)
            )
            server = _Server(config)
            if settings.log_format == "json":
                # a log collector is no place for a key: where to find it instead
                log.info(
                    "reelgate is running at %s (the dev API key: REELGATE_DEV_API_KEY, or %s)",
                    public_url,
                    settings.data_dir / "dev-api-key",
                )
            else:
                typer.echo(_banner(public_url, key))
            tasks.append(asyncio.create_task(server.serve(), name="api"))
        if worker:
            wk = _SupervisedWorker(rt)
            rt.worker_heartbeat = wk.heartbeat_age
            tasks.append(asyncio.create_task(wk.run(), name="worker"))

        freeze_startup_heap()

        def stop() -> None:
            if server is not None:
                server.should_exit = True
            if wk is not None:
                wk.stop()

        _on_signals(stop)
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop()
        await asyncio.gather(*tasks)
    finally:
        await rt.aclose()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", envvar="REELGATE_HOST", help="Address to listen on."),
    port: int = typer.Option(8000, envvar="REELGATE_PORT", help="Port to listen on."),
    log_level: str = typer.Option("info"),
    emulators: bool = typer.Option(
        False, "--emulators", help="Also start every provider's emulator and use them (offline)."
    ),
    emulator_job_seconds: float = typer.Option(
        8.0, help="With --emulators: how long each emulated generation takes."
    ),
) -> None:
    """API, worker and web page in one process: the embedded default."""
    settings = Settings()
    _logging(log_level, settings.log_format)
    _migrate_when_available(settings.resolved_database_url())
    if not emulators:
        asyncio.run(_run(settings, host, port, api=True, worker=True, log_level=log_level))
        return
    from reelgate.emulators.wiring import emulated_settings, running_emulators

    with running_emulators(
        settings.data_dir / "emulator-videos", job_seconds=emulator_job_seconds
    ) as servers:
        for kind, srv in servers.items():
            if settings.log_format == "json":
                log.info("emulator %s on %s", kind, srv.url)
            else:
                typer.echo(f"emulator {kind:<14} {srv.url}")
        if not settings.public_url:
            # the emulators run here, so they can call this gateway back on loopback
            settings = settings.updated(public_url=f"http://{host}:{port}")
        asyncio.run(
            _run(
                emulated_settings(settings, servers),
                host,
                port,
                api=True,
                worker=True,
                log_level=log_level,
                emulated=frozenset(servers),
            )
        )


@app.command()
def emulate(
    provider: str = typer.Argument(
        ..., help="veo, sora, wan, grok, video_gateway, fal or replicate."
    ),
    port: int = typer.Option(0, help="Port (0: any free one)."),
    api_key: str = typer.Option("emulator-key", help="The key the emulator accepts."),
    job_seconds: float = typer.Option(8.0, help="How long each emulated job takes."),
) -> None:
    """Run one provider's emulator on loopback (its real wire format, faults by keyword)."""
    import signal as signals
    import threading

    from reelgate.emulators import emulated_kinds
    from reelgate.emulators.base import EmulatorConfig, run_emulator
    from reelgate.emulators.wiring import settings_for

    if provider not in emulated_kinds():
        raise typer.BadParameter(f"choose one of {sorted(emulated_kinds())}", param_hint="provider")
    config = EmulatorConfig(
        api_key=api_key, job_seconds=job_seconds, video_dir=Settings().data_dir / "emulator-videos"
    )
    done = threading.Event()
    for sig in (signals.SIGINT, signals.SIGTERM):
        signals.signal(sig, lambda *_: done.set())
    with run_emulator(provider, config, port) as srv:
        typer.echo(f"{provider} emulator on {srv.url} (key {api_key!r}); point reelgate at it:")
        for name, value in settings_for(provider, srv.url, api_key).items():
            typer.echo(f"  REELGATE_{name.upper()}={value}")
        done.wait()


@app.command()
def api(
    host: str = typer.Option("127.0.0.1", envvar="REELGATE_HOST"),
    port: int = typer.Option(8000, envvar="REELGATE_PORT"),
    log_level: str = typer.Option("info"),
) -> None:
    """The HTTP API alone (run workers with `reelgate worker`)."""
    settings = Settings()
    _logging(log_level, settings.log_format)
    asyncio.run(_run(settings, host, port, api=True, worker=False, log_level=log_level))


@app.command()
def worker(
    concurrency: int = typer.Option(0, help="Steps in flight at once (0: the setting)."),
    burst: bool = typer.Option(False, help="Exit when no job is left in flight."),
    log_level: str = typer.Option("info"),
) -> None:
    """A job worker: claims due jobs and advances them."""
    from reelgate.engine.worker import Worker
    from reelgate.runtime import build_runtime, freeze_startup_heap

    settings = Settings()
    _logging(log_level, settings.log_format)

    async def main() -> None:
        rt = await build_runtime(
            settings, public_url=settings.public_url or "http://127.0.0.1:8000"
        )
        try:
            wk = Worker.from_runtime(rt, concurrency=concurrency or None)
            freeze_startup_heap()
            _on_signals(wk.stop)
            await wk.run(burst=burst)
        finally:
            await rt.aclose()

    asyncio.run(main())


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations (creates the SQLite file and data folder if needed)."""
    settings = Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.resolved_database_url(), revision)
    typer.echo(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument("base")) -> None:
    """Revert migrations (to `base` by default: drops every table)."""
    migrate.downgrade(Settings().resolved_database_url(), revision)
    typer.echo(f"database at {revision}")


if __name__ == "__main__":
    app()
