"""Mirroring memory: peak RSS growth while ``mirror_result`` copies a large file.

Each measurement runs in a fresh process (``python -m benchmarks.mirror``)
whose allocator has seen nothing but mirroring. The child first mirrors a
small file (imports, thread pools, PyAV and obstore's runtime are then paid
for), resets its peak RSS (``/proc/self/clear_refs``), mirrors the large file
into ``file://`` storage, and reports how far the peak (``VmHWM``) rose above
the RSS at the reset. Not ``ru_maxrss``: Linux carries the parent's peak
across fork and exec into it, so a child of a large parent would report 0.

Two allocator settings, because glibc's malloc blurs the question:
- *live*: ``MALLOC_MMAP_THRESHOLD_`` pinned at 1 MiB, so every large buffer is
  its own mapping and is returned when freed. RSS then follows the bytes
  actually held, the same for every run, and the ratio between two file sizes
  says whether memory follows the file (a leak) or not.
- *default*: glibc as deployed. Its mmap threshold rises after the first large
  free, so later buffers come from arenas that keep their pages: the growth
  is larger and varies between runs, but it is what a worker's RSS shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.common import Section, fmt, ratio
from benchmarks.provider import InstantProvider, tiny_clip
from reelgate.engine.mirror import mirror_result
from reelgate.providers.base import ResultLocation
from reelgate.storage import open_storage

__all__ = ["MIB", "MirrorRun", "mirror_section", "run_mirror"]

MIB = 1024 * 1024
CHUNK = 64 * 1024
_REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MirrorRun:
    allocator: str
    """"live" (mmap threshold pinned) or "default" (glibc as deployed)."""
    file_bytes: int
    rss_growth_bytes: int
    seconds: float

    @property
    def mib_per_second(self) -> float:
        return self.file_bytes / MIB / self.seconds if self.seconds else float("nan")

    @property
    def growth_mib(self) -> float:
        return self.rss_growth_bytes / MIB


def _status_bytes(field: str) -> int | None:
    """A ``VmXXX`` line of /proc/self/status in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak() -> int:
    """Start a new peak-RSS window; returns the baseline to measure growth from."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # 5: reset the peak RSS (VmHWM) to the current RSS
        rss = _status_bytes("VmRSS")
        if rss is not None:
            return rss
    except OSError:
        pass
    return _peak_rss_bytes()


def _peak_rss_bytes() -> int:
    peak = _status_bytes("VmHWM")
    if peak is not None:
        return peak
    # Not Linux: only a bound (see the module docstring). macOS counts bytes, others KiB.
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024


async def _mirror_once(provider: InstantProvider, directory: Path, key: str) -> float:
    storage = open_storage(
        (directory / "videos").as_uri(),
        public_base_url="http://127.0.0.1",
        signing_secret=b"bench-signing-secret-0123456789abcdef",
    )
    start = time.perf_counter()
    result = await mirror_result(
        provider.download(ResultLocation(url="https://upstream.invalid/big.mp4")),
        storage,
        key,
        max_bytes=provider.total_bytes + 1,
    )
    seconds = time.perf_counter() - start
    if result.bytes != provider.total_bytes:
        raise RuntimeError(f"stored {result.bytes} bytes, expected {provider.total_bytes}")
    await storage.delete(key)  # the disk holds one copy at a time
    return seconds


async def _measure(padding_bytes: int, directory: Path, allocator: str) -> MirrorRun:
    clip = tiny_clip(directory)
    warm = InstantProvider(clip=clip, padding_bytes=4 * MIB, chunk_bytes=CHUNK)
    await _mirror_once(warm, directory, "videos/warm.mp4")
    big = InstantProvider(clip=clip, padding_bytes=padding_bytes, chunk_bytes=CHUNK)
    before = _reset_peak()
    seconds = await _mirror_once(big, directory, "videos/big.mp4")
    return MirrorRun(allocator, big.total_bytes, _peak_rss_bytes() - before, seconds)


def _child_once(size_mib: int, directory: Path, allocator: str) -> tuple[MirrorRun | None, str]:
    """One child run: its result (None if it reported none) and, if it failed, why."""
    for leftover in directory.iterdir():
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
    env = dict(os.environ)
    env.pop("MALLOC_MMAP_THRESHOLD_", None)
    if allocator == "live":
        env["MALLOC_MMAP_THRESHOLD_"] = str(MIB)
    env["LIBC_FATAL_STDERR_"] = "1"  # glibc's fatal messages to stderr, not the tty
    cmd = [sys.executable, "-X", "faulthandler", "-m", "benchmarks.mirror"]
    cmd += [str(size_mib), str(directory), allocator]
    done = subprocess.run(  # noqa: S603 (our own interpreter and module, fixed arguments)
        cmd, cwd=_REPO, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    run = None
    lines = done.stdout.strip().splitlines()
    if lines and lines[-1].startswith("{"):
        run = MirrorRun(**json.loads(lines[-1]))
    problem = ""
    if done.returncode != 0:
        problem = f"exit status {done.returncode}; stderr: {done.stderr[-1500:].strip() or '-'}"
    return run, problem


def measure_in_child(size_mib: int, directory: Path, allocator: str) -> MirrorRun:
    """A fresh child measures; a child that dies is reported and tried once more."""
    for attempt in (1, 2):
        run, problem = _child_once(size_mib, directory, allocator)
        if problem:
            what = "after reporting its figures" if run else "without figures"
            print(f"warning: mirror child ({size_mib} MiB, {allocator}) failed {what}: {problem}")
        if run is not None:
            return run
        if attempt == 1:
            print("warning: retrying that mirror run once")
    raise RuntimeError(f"the mirror child ({size_mib} MiB, {allocator}) failed twice")


async def run_mirror(scratch_dir: Path, sizes_mib: tuple[int, int]) -> list[MirrorRun]:
    """Live memory at both sizes, then the default allocator at the larger one."""
    plan = [(sizes_mib[0], "live"), (sizes_mib[1], "live"), (sizes_mib[1], "default")]
    runs = []
    for i, (size, allocator) in enumerate(plan):
        directory = scratch_dir / f"{i}-{allocator}-{size}"
        directory.mkdir(parents=True)
        runs.append(await asyncio.to_thread(measure_in_child, size, directory, allocator))
    return runs


def live_growth_ratio(runs: list[MirrorRun]) -> tuple[float | None, float | None]:
    """(growth ratio, file size ratio) between the largest and smallest live runs."""
    live = sorted((r for r in runs if r.allocator == "live"), key=lambda r: r.file_bytes)
    if len(live) < 2:
        return None, None
    small, large = live[0], live[-1]
    growth = ratio(large.rss_growth_bytes, max(small.rss_growth_bytes, MIB))
    return growth, ratio(large.file_bytes, small.file_bytes)


def mirror_section(runs: list[MirrorRun]) -> Section:
    section = Section(
        "3. Mirroring memory (mirror_result -> file:// storage, 64 KiB upstream chunks)",
        ["figure", "value"],
    )
    for run in runs:
        name = f"{run.file_bytes / MIB:.0f} MiB file, {run.allocator} allocator"
        section.row(f"{name}: peak RSS growth (MiB)", fmt(run.growth_mib))
        section.row(f"{name}: growth / file size", fmt(run.rss_growth_bytes / run.file_bytes, 3))
        section.row(f"{name}: mirror rate (MiB/s)", fmt(run.mib_per_second))
    growth, files = live_growth_ratio(runs)
    section.row("live growth ratio, large / small file", fmt(growth))
    section.row("file size ratio, large / small file", fmt(files))
    section.notes.append(
        "each run in a fresh process after a 4 MiB warm-up mirror, growth = peak RSS (VmHWM) "
        "over the RSS when the peak was reset; 'live' pins glibc's mmap "
        "threshold at 1 MiB so RSS follows the bytes held; the file is a real MP4 (a rendered "
        "clip plus a 'free' box), so every byte is spooled, hashed, probed past and uploaded"
    )
    return section


def _child_main(argv: list[str]) -> None:
    size_mib, directory, allocator = int(argv[0]), Path(argv[1]), argv[2]
    # mirror_result spools to the system temp dir; keep the spool in our scratch dir.
    tempfile.tempdir = str(directory)
    run = asyncio.run(_measure(size_mib * MIB, directory, allocator))
    print(json.dumps(asdict(run)))


if __name__ == "__main__":
    _child_main(sys.argv[1:])
