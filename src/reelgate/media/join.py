"""Join clips into one MP4 (H.264 + AAC) with PyAV, in bounded memory; and a clip's last
frame, for continuing a shot from where the previous one ended.

Clips from different models differ in codec, frame rate, size and whether they have
sound. The join re-encodes them all to one of each:

- **size and rate**: those of the first clip unless given; a clip of another shape is
  scaled to fit and padded with black (never stretched); its frames are re-timed onto
  the output's clock (repeated or dropped by their presentation time), so each clip
  keeps its own length to within a frame;
- **sound**: 48 kHz stereo throughout; a silent clip gets silence for its length, so
  the sound never drifts from the picture at a join; each clip's sound is cut or padded
  to its picture's length;
- **crossfades** (optional): the last ``crossfade_seconds`` of a clip are blended with
  the first of the next (picture and sound), which makes the whole shorter by that much
  per join. Without, the length is the sum of the clips' lengths.

Memory holds one decoded frame per input, the encoder's lookahead, and a crossfade's
frames and samples: not the clips. Blocking and CPU-bound: run it in a thread.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image

from reelgate.media.files import written_atomically

__all__ = ["JoinResult", "JoinSpec", "join_clips", "last_frame_png"]

SAMPLE_RATE = 48_000
_AUDIO_FRAME = 1024
_X264_OPTIONS = {"preset": "veryfast", "crf": "23"}
_MAX_CROSSFADE_SECONDS = 2.0


@dataclass(frozen=True)
class JoinSpec:
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    crossfade_seconds: float = 0.0
    """0: straight cuts. Otherwise at most 2 s and less than any clip's length."""


@dataclass(frozen=True)
class JoinResult:
    path: Path
    width: int
    height: int
    fps: int
    frames: int
    seconds: float
    clip_frames: tuple[int, ...]
    """Output frames each clip gave (before crossfades took their share)."""
    joins_at: tuple[float, ...]
    """Where in the output each clip after the first starts, in seconds."""


def last_frame_png(video: Path, max_width: int = 1920) -> bytes:
    """The final decoded frame of ``video`` as a PNG (at most ``max_width`` wide): the
    start image that continues a shot from where it ended."""
    last: av.VideoFrame | None = None
    with av.open(str(video)) as container:
        for frame in container.decode(container.streams.video[0]):
            last = frame
    if last is None:
        raise ValueError(f"{video.name}: no video frame")
    image: Image.Image = last.to_image()  # type: ignore[no-untyped-call]
    if image.width > max_width:
        height = max(2, round(image.height * max_width / image.width) // 2 * 2)
        image = image.resize((max_width, height), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()


def _probe(path: Path) -> tuple[int, int, float, float]:
    """Width, height, frame rate and length in seconds of a clip's picture."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 24)
        seconds = 0.0
        if stream.duration is not None and stream.time_base is not None:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            seconds = container.duration / av.time_base
        width, height = stream.codec_context.width, stream.codec_context.height
    if seconds <= 0:
        seconds = _count_seconds(path, rate)
    return width, height, rate, seconds


def _count_seconds(path: Path, rate: float) -> float:
    frames = 0
    with av.open(str(path)) as container:
        for _ in container.decode(container.streams.video[0]):
            frames += 1
    return frames / rate


def join_clips(
    clips: Sequence[Path],
    out_path: Path,
    spec: JoinSpec = JoinSpec(),
    on_progress: Callable[[int], None] | None = None,
) -> JoinResult:
    """Join ``clips`` in order into ``out_path`` (written atomically)."""
    if not clips:
        raise ValueError("nothing to join")
    probes = [_probe(p) for p in clips]
    width = spec.width or probes[0][0]
    height = spec.height or probes[0][1]
    width, height = width // 2 * 2, height // 2 * 2
    fps = spec.fps or max(1, round(probes[0][2]))
    lengths = [round(seconds * fps) for _, _, _, seconds in probes]
    fade = round(spec.crossfade_seconds * fps)
    if spec.crossfade_seconds < 0 or spec.crossfade_seconds > _MAX_CROSSFADE_SECONDS:
        raise ValueError(f"crossfade_seconds must be 0..{_MAX_CROSSFADE_SECONDS:g}")
    if fade and len(clips) > 1 and fade >= min(lengths):
        raise ValueError("a crossfade must be shorter than every clip")
    total = sum(lengths) - fade * (len(clips) - 1)
    report = on_progress or (lambda _: None)
    with written_atomically(out_path) as tmp:
        joins = _write(clips, lengths, tmp, width, height, fps, fade, total, report)
    report(100)
    return JoinResult(
        path=out_path,
        width=width,
        height=height,
        fps=fps,
        frames=total,
        seconds=total / fps,
        clip_frames=tuple(lengths),
        joins_at=tuple(j / fps for j in joins),
    )


def _write(
    clips: Sequence[Path],
    lengths: Sequence[int],
    path: str,
    width: int,
    height: int,
    fps: int,
    fade: int,
    total: int,
    report: Callable[[int], None],
) -> list[int]:
    joins: list[int] = []
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream("libx264", rate=fps, options=dict(_X264_OPTIONS))
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.gop_size = fps * 2
        audio = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        audio.bit_rate = 128_000
        writer = _Writer(out, video, audio, fps, fade, total, report)
        for index, (clip, frames) in enumerate(zip(clips, lengths, strict=True)):
            if index:
                joins.append(writer.frames_out)
            writer.clip(clip, frames, last=index == len(clips) - 1)
        writer.close()
    return joins


def _samples_at(frame_index: int, fps: int) -> int:
    return frame_index * SAMPLE_RATE // fps


class _Writer:
    """Takes each clip's frames and sound in output order, holds the last ``fade`` frames
    (and their sound) of a clip to blend with the next one's first, and encodes."""

    def __init__(
        self,
        out: av.container.OutputContainer,
        video: av.VideoStream,
        audio: av.AudioStream,
        fps: int,
        fade: int,
        total: int,
        report: Callable[[int], None],
    ) -> None:
        self.out, self.video, self.audio = out, video, audio
        self.fps, self.fade, self.total, self.report = fps, fade, total, report
        self.frames_out = 0  # frames handed to the encoder
        self.samples_out = 0  # samples handed to the encoder
        self.held: deque[npt.NDArray[np.uint8]] = deque()  # a crossfade's frames (RGB)
        self.held_sound = np.zeros((2, 0), dtype=np.float32)
        self.pending_sound = np.zeros((2, 0), dtype=np.float32)
        self.last_report = 0

    def clip(self, path: Path, frames: int, *, last: bool) -> None:
        fade_in = self.held
        self.held = deque()
        fade_sound, self.held_sound = self.held_sound, np.zeros((2, 0), dtype=np.float32)
        keep_back = 0 if last else self.fade
        sound = _sound(path, frames * SAMPLE_RATE // self.fps)
        clip_samples = 0
        pictures = _pictures(path, frames, self.fps, self.video.width, self.video.height)
        for i, rgb in enumerate(pictures):
            # this frame's share of the clip's sound, on the clip's own clock
            want = (i + 1) * SAMPLE_RATE // self.fps - clip_samples
            chunk = sound.take(want)
            clip_samples += want
            if fade_in:
                weight = (i + 1) / (self.fade + 1)
                rgb = _blend(fade_in.popleft(), rgb, weight)
                chunk = _mix(fade_sound[:, : chunk.shape[1]], chunk, i, self.fade)
                fade_sound = fade_sound[:, chunk.shape[1] :]
            if i >= frames - keep_back:
                self.held.append(rgb)
                self.held_sound = np.concatenate([self.held_sound, chunk], axis=1)
                continue
            self._emit(rgb, chunk)

    def _emit(self, rgb: npt.NDArray[np.uint8], sound: npt.NDArray[np.float32]) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts, frame.time_base = self.frames_out, Fraction(1, self.fps)
        self.out.mux(self.video.encode(frame))
        self.frames_out += 1
        self.pending_sound = np.concatenate([self.pending_sound, sound], axis=1)
        while self.pending_sound.shape[1] >= _AUDIO_FRAME:
            self._emit_sound(self.pending_sound[:, :_AUDIO_FRAME])
            self.pending_sound = self.pending_sound[:, _AUDIO_FRAME:]
        percent = min(self.frames_out * 100 // max(1, self.total), 99)
        if percent >= self.last_report + 5:
            self.last_report = percent
            self.report(percent)

    def _emit_sound(self, samples: npt.NDArray[np.float32]) -> None:
        chunk = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(samples), format="fltp", layout="stereo"
        )
        chunk.sample_rate, chunk.pts = SAMPLE_RATE, self.samples_out
        chunk.time_base = Fraction(1, SAMPLE_RATE)
        self.out.mux(self.audio.encode(chunk))
        self.samples_out += samples.shape[1]

    def close(self) -> None:
        if self.pending_sound.shape[1]:
            self._emit_sound(self.pending_sound)
        self.out.mux(self.video.encode(None))
        self.out.mux(self.audio.encode(None))


def _blend(
    a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8], weight: float
) -> npt.NDArray[np.uint8]:
    w = round(weight * 256)  # integer weights: two 16-bit copies, not float frames
    mixed = a.astype(np.uint16) * (256 - w) + b.astype(np.uint16) * w + 128
    return (mixed >> 8).astype(np.uint8)


def _mix(
    tail: npt.NDArray[np.float32], head: npt.NDArray[np.float32], index: int, fade: int
) -> npt.NDArray[np.float32]:
    """An equal-gain fade across one frame's samples of a crossfade."""
    n = head.shape[1]
    if tail.shape[1] < n:
        tail = np.pad(tail, ((0, 0), (0, n - tail.shape[1])))
    start, stop = index / (fade + 1), (index + 1) / (fade + 1)
    ramp = np.linspace(start, stop, n, endpoint=False, dtype=np.float32)
    out: npt.NDArray[np.float32] = tail * (1.0 - ramp) + head * ramp
    return out


def _pictures(
    path: Path, frames: int, fps: int, width: int, height: int
) -> Iterator[npt.NDArray[np.uint8]]:
    """Exactly ``frames`` RGB frames of ``width`` x ``height`` on the output clock: output
    frame *k* shows the clip's latest frame whose time is at or before ``k / fps`` (a
    quarter frame of slack for rounded timestamps); the last one fills a short clip."""
    emitted = 0
    previous: npt.NDArray[np.uint8] | None = None
    slack = 0.25 / fps
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start: float | None = None
        for frame in container.decode(stream):
            at = frame.time if frame.time is not None else 0.0
            if start is None:
                start = at
            while previous is not None and emitted < frames and emitted / fps + slack < at - start:
                yield previous
                emitted += 1
            if emitted >= frames:
                return
            previous = _fit(frame, width, height)
    if previous is None:
        raise ValueError(f"{path.name}: no video frame")
    while emitted < frames:
        yield previous
        emitted += 1


def _fit(frame: av.VideoFrame, width: int, height: int) -> npt.NDArray[np.uint8]:
    """The frame scaled to fit ``width`` x ``height``, padded with black, as RGB."""
    fw, fh = frame.width, frame.height
    if fw * height == fh * width:
        return np.asarray(frame.to_ndarray(width=width, height=height, format="rgb24"), np.uint8)
    scale = min(width / fw, height / fh)
    w, h = max(2, round(fw * scale) // 2 * 2), max(2, round(fh * scale) // 2 * 2)
    inner = frame.to_ndarray(width=w, height=h, format="rgb24")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    top, left = (height - h) // 2, (width - w) // 2
    canvas[top : top + h, left : left + w] = inner
    return canvas


class _Sound:
    """A clip's sound as 48 kHz stereo float, taken in order, exactly ``samples`` long:
    silence where the clip has none or runs short."""

    def __init__(self, chunks: Iterator[npt.NDArray[np.float32]], samples: int) -> None:
        self.chunks, self.left = chunks, samples
        self.buffer = np.zeros((2, 0), dtype=np.float32)

    def take(self, n: int) -> npt.NDArray[np.float32]:
        n = max(0, min(n, self.left))
        while self.buffer.shape[1] < n:
            nxt = next(self.chunks, None)
            if nxt is None:
                pad = np.zeros((2, n - self.buffer.shape[1]), dtype=np.float32)
                self.buffer = np.concatenate([self.buffer, pad], axis=1)
                break
            self.buffer = np.concatenate([self.buffer, nxt], axis=1)
        out, self.buffer = self.buffer[:, :n], self.buffer[:, n:]
        self.left -= n
        return out


def _sound(path: Path, samples: int) -> _Sound:
    return _Sound(_sound_chunks(path), samples)


def _sound_chunks(path: Path) -> Iterator[npt.NDArray[np.float32]]:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().astype(np.float32, copy=False)
        for out in resampler.resample(None):
            yield out.to_ndarray().astype(np.float32, copy=False)
