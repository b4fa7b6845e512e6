"""The local renderer: CPU seconds per second of 720p video.

Renders in a fresh child process and counts that process's CPU time (all
threads: x264 encodes on several) around ``render_video`` alone, so imports
and the other sections do not count. CPU time, unlike wall time, hardly
moves when the machine is busy, which makes it the figure to hold a target to.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from benchmarks.common import Section, fmt
from reelgate.media.join import join_clips
from reelgate.media.previews import make_previews
from reelgate.media.render import RenderSpec, render_video

__all__ = ["RenderRun", "render_section", "run_render"]

PROMPT = "a red fox running through snow, cinematic, golden hour"


@dataclass(frozen=True)
class RenderRun:
    label: str
    width: int
    height: int
    video_seconds: int
    cpu_seconds: float
    wall_seconds: float
    file_bytes: int
    previews_cpu_seconds: float = 0.0
    """Making the clip's poster and sprite sheet (``media.previews``)."""
    previews_peak_mib: float = 0.0
    """Peak RSS growth while making them."""
    join_cpu_seconds: float = 0.0
    """Joining three copies of the clip into one video (``media.join``), as a
    storyboard's last step does."""
    join_wall_seconds: float = 0.0
    join_peak_mib: float = 0.0

    @property
    def join_cpu_per_video_second(self) -> float:
        return self.join_cpu_seconds / (3 * self.video_seconds)

    @property
    def previews_cpu_per_video_second(self) -> float:
        return self.previews_cpu_seconds / self.video_seconds

    @property
    def cpu_per_video_second(self) -> float:
        return self.cpu_seconds / self.video_seconds

    @property
    def wall_per_video_second(self) -> float:
        return self.wall_seconds / self.video_seconds


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _render(label: str, width: int, height: int, seconds: int, out_dir: str) -> RenderRun:
    # Warm-up: the first frame pays for fonts, codecs and numpy.
    render_video(RenderSpec(PROMPT, 0, 1, 160, 90), Path(out_dir) / "warm.mp4")
    path = Path(out_dir) / f"{label}.mp4"
    spec = RenderSpec(PROMPT, seed=7, duration_seconds=seconds, width=width, height=height)
    cpu, wall = _cpu(), time.perf_counter()
    render_video(spec, path)
    wall, cpu = time.perf_counter() - wall, _cpu() - cpu
    make_previews(path, Path(out_dir) / "warm-previews", float(seconds))  # imports, codecs
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM)
    before, start = _rss_mib(), _cpu()
    make_previews(path, Path(out_dir) / f"{label}-previews", float(seconds))
    previews_cpu, peak = _cpu() - start, _hwm_mib() - before
    join_clips([path, path], Path(out_dir) / "warm-join.mp4")  # the join's own warm-up
    Path("/proc/self/clear_refs").write_text("5")
    before, start, began = _rss_mib(), _cpu(), time.perf_counter()
    join_clips([path, path, path], Path(out_dir) / f"{label}-joined.mp4")
    join_cpu, join_wall = _cpu() - start, time.perf_counter() - began
    join_peak = _hwm_mib() - before
    return RenderRun(
        label,
        width,
        height,
        seconds,
        cpu,
        wall,
        path.stat().st_size,
        previews_cpu,
        peak,
        join_cpu,
        join_wall,
        join_peak,
    )


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rss_mib() -> float:
    return _status_mib("VmRSS")


def _hwm_mib() -> float:
    return _status_mib("VmHWM")


def _child(args: tuple[str, int, int, int, str], out: Connection) -> None:
    try:
        out.send(_render(*args))
    except BaseException as exc:
        out.send(RuntimeError(f"{type(exc).__name__}: {exc}"))
        raise


def _in_child(args: tuple[str, int, int, int, str]) -> RenderRun:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    process = ctx.Process(target=_child, args=(args, child), name="bench-render")
    process.start()
    child.close()
    try:
        if not parent.poll(600):
            raise RuntimeError("the render child did not answer within 600 s")
        answer = parent.recv()
    except EOFError as exc:
        raise RuntimeError(f"the render child died (exit code {process.exitcode})") from exc
    finally:
        process.join(30)
        if process.is_alive():
            process.kill()
            process.join()
    if isinstance(answer, BaseException):
        raise answer
    assert isinstance(answer, RenderRun)
    return answer


async def run_render(out_dir: Path, seconds: int) -> list[RenderRun]:
    runs = []
    for label, width, height in (("720p", 1280, 720), ("360p", 640, 360)):
        args = (label, width, height, seconds, str(out_dir))
        runs.append(await asyncio.to_thread(_in_child, args))
    return runs


def render_section(runs: list[RenderRun]) -> Section:
    section = Section(
        "4. Local renderer (media.render: H.264 veryfast crf 28 + AAC, 24 fps)", ["figure", "value"]
    )
    for run in runs:
        name = f"{run.label} {run.width}x{run.height}"
        section.row(f"{name}: CPU s per video s", fmt(run.cpu_per_video_second))
        section.row(f"{name}: wall s per video s", fmt(run.wall_per_video_second))
        section.row(
            f"{name}: frames per wall second", fmt(run.video_seconds * 24 / run.wall_seconds)
        )
        section.row(
            f"{name}: file size (KiB per video s)", fmt(run.file_bytes / 1024 / run.video_seconds)
        )
        section.row(
            f"{name}: poster + sprite sheet CPU s per video s",
            fmt(run.previews_cpu_per_video_second),
        )
        section.row(
            f"{name}: poster + sprite sheet peak RSS growth (MiB)", fmt(run.previews_peak_mib)
        )
        section.row(
            f"{name}: join of 3 clips CPU s per video s", fmt(run.join_cpu_per_video_second)
        )
        section.row(f"{name}: join of 3 clips wall s", fmt(run.join_wall_seconds))
        section.row(f"{name}: join peak RSS growth (MiB)", fmt(run.join_peak_mib))
    if runs:
        section.notes.append(
            f"{runs[0].video_seconds} s clips, each in a fresh process after a 1 s warm-up; "
            "CPU counts every thread of the rendering process; the poster and sprite sheet "
            "are made from the rendered clip in the same process after a warm-up run, and three "
            "copies of it are joined into one video (a storyboard's join) after a warm-up join"
        )
    return section
