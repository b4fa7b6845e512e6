"""A worker killed (SIGKILL) while a create is in flight, after earlier creates failed.

The old bug: two creates answered 503, the third was accepted upstream, the
worker died before its answer arrived; the next worker saw "an earlier error
was recorded" and sent the create again, so the operator paid twice. Here the
emulators take the third create and hold its answer back; the worker is
killed meanwhile; a new worker must find the upstream job (Sora: its video
list) or, where the provider cannot be searched (Veo), never re-send, fall
back and list the create for operators. Each prompt ends with exactly one
upstream job.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from reelgate.config import Settings
from reelgate.emulators.base import EmulatorConfig, EmulatorServer, run_emulator
from reelgate.emulators.wiring import settings_for
from reelgate.engine.commands import submit_job
from reelgate.runtime import build_runtime
from reelgate.store.accounts import DEV_ACCOUNT_ID, ensure_account
from reelgate.store.ambiguous import list_ambiguous
from reelgate.store.ledger import grant
from reelgate.store.schema import jobs
from tests.acceptance.conftest import Procs, process_env
from tests.conftest import small_job
from tests.values import local_work_dir

pytestmark = pytest.mark.slow

FAULTS = "[fault:5xx][fault:slow-create]"


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[dict[str, EmulatorServer]]:
    servers = {}
    contexts = []
    for kind in ("sora", "veo"):
        config = EmulatorConfig(
            api_key=f"emulator-{kind}",
            job_seconds=0.5,
            video_dir=tmp_path / "emulated",
            slow_create_seconds=8,
        )
        ctx = run_emulator(kind, config)
        servers[kind] = ctx.__enter__()
        contexts.append(ctx)
    yield servers
    for ctx in contexts:
        ctx.__exit__(None, None, None)


def _prompts(kind: str, server: EmulatorServer) -> list[str]:
    state = server.app.state
    if kind == "sora":
        return [v.prompt for v in state.sora.videos.values()]
    return [j.prompt for j in state.veo.jobs.values()]


def _env(settings: Settings, servers: dict[str, EmulatorServer], timeout: float) -> dict[str, str]:
    extra: dict[str, str] = {}
    for kind, server in servers.items():
        extra |= {k: str(v) for k, v in settings_for(kind, server.url, f"emulator-{kind}").items()}
    return process_env(
        data_dir=str(settings.data_dir),
        database_url=settings.resolved_database_url(),
        storage_url=settings.resolved_storage_url(),
        local_work_dir=str(local_work_dir(settings)),
        lease_seconds="3",
        idle_poll_seconds="0.5",
        provider_timeout_seconds=str(timeout),
        lost_create_settle_seconds="0.5",
        fetch_allow_private='["127.0.0.0/8"]',
        fetch_allow_ports="[" + ",".join(str(s.port) for s in servers.values()) + "]",
        **extra,
    )


async def test_a_worker_killed_inside_the_create_window_never_creates_twice(
    db_url: str, tmp_path: Path, procs: Procs, emulators: dict[str, EmulatorServer]
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=db_url,
        storage_url=(tmp_path / "videos").as_uri(),
        local_work_dir=tmp_path / "renders",
    )
    rt = await build_runtime(settings, public_url="http://127.0.0.1:9", listen=False)
    try:
        async with rt.db.begin() as conn:
            await ensure_account(conn, DEV_ACCOUNT_ID, "dev")
            await grant(conn, DEV_ACCOUNT_ID, 10_000_000)
        sora_prompt = f"sora: a harbour at night {FAULTS}"
        veo_prompt = f"veo: a harbour at night {FAULTS}"
        specs = {
            "sora": small_job(sora_prompt, chain=("sora-2",)),
            "veo": small_job(veo_prompt, chain=("veo-3-1-fast", "local")),
        }
        shape = {"duration_seconds": 4, "resolution": "720p", "width": 1280, "height": 720}
        ids = {}
        for kind, spec in specs.items():
            params = dataclasses.replace(spec.params, **shape, seed=None)  # Sora takes no seed
            job = await submit_job(rt, dataclasses.replace(spec, params=params))
            ids[kind] = job.id

        # A worker patient enough to wait out the held-back answers, killed while waiting.
        procs.env = _env(settings, emulators, timeout=120)
        victim = procs.start("worker", name="w0")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sora_prompt in _prompts("sora", emulators["sora"]) and veo_prompt in _prompts(
                "veo", emulators["veo"]
            ):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the third creates never arrived:\n{procs.log('w0')}")
        await asyncio.sleep(0.3)  # the creates are accepted; their answers are held back
        victim.send_signal(signal.SIGKILL)
        victim.wait()

        procs.env = _env(settings, emulators, timeout=2)
        procs.start("worker", name="w1")
        states: dict[str, str] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            async with rt.db.connect() as conn:
                rows = (await conn.execute(sa.select(jobs.c.id, jobs.c.state))).all()
            states = {job_id: state for job_id, state in rows}
            if all(s in ("completed", "failed") for s in states.values()):
                break
            await asyncio.sleep(0.5)
        assert states == {ids["sora"]: "completed", ids["veo"]: "completed"}, procs.log("w1")
        assert _prompts("sora", emulators["sora"]).count(sora_prompt) == 1
        assert _prompts("veo", emulators["veo"]).count(veo_prompt) == 1
        async with rt.db.connect() as conn:
            attempts = dict((await conn.execute(sa.select(jobs.c.id, jobs.c.attempts))).all())
            listed = await list_ambiguous(conn)
        assert attempts[ids["sora"]][0]["adopted"] is True
        assert [a["outcome"] for a in attempts[ids["veo"]]] == ["ambiguous", "completed"]
        assert [(row.job_id, row.provider) for row in listed] == [(ids["veo"], "veo")]
    finally:
        await rt.aclose()
