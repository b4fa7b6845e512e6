"""Deterministic synthetic videos: what the built-in ``local`` model "generates".

The picture and the sound are pure functions of the :class:`RenderSpec`, so the
same request always yields the same frames. That makes the local provider a
real, offline upstream for demos and tests (results can be cached and
compared), while still exercising everything downstream of a provider: a true
H.264/AAC MP4 that browsers play, probing, mirroring and range requests.

Rendering is frame by frame with constant memory, and the output only appears
at ``out_path`` once complete (temp file plus ``os.replace``), so a reader never
sees half a video. This module never touches the network or the database.
"""

from __future__ import annotations

import colorsys
import hashlib
import io
import math
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont, ImageOps

from reelgate.media.files import written_atomically

__all__ = ["RENDERER_VERSION", "RenderSpec", "render_video"]

RENDERER_VERSION = 3
"""Bump whenever the output for a given spec changes: render caches key on it."""

SAMPLE_RATE = 48_000
_X264_OPTIONS = {
    "preset": "veryfast",
    "crf": "28",
    # One encoder thread: byte-identical output for identical specs is what lets
    # callers cache renders, and x264 with frame threads (or sliced threads) gave
    # different bytes for one spec now and then (1 in 8 renders, measured); renders
    # run in a process pool, so jobs still use every core.
    "threads": "1",
}
_MAX_SIDE = 3840
_MAX_DURATION = 600
_KEN_BURNS_ZOOM = 1.12
_PROGRESS_STEP = 5


@dataclass(frozen=True)
class RenderSpec:
    """Everything that determines a rendered video; equal specs give equal frames."""

    prompt: str
    seed: int
    duration_seconds: int
    width: int
    height: int
    fps: int = 24
    image: bytes | None = None
    """Encoded image (any format Pillow reads) used as the animated background."""

    def __post_init__(self) -> None:
        if not 1 <= self.duration_seconds <= _MAX_DURATION:
            raise ValueError(f"duration_seconds must be 1..{_MAX_DURATION}")
        for name, side in (("width", self.width), ("height", self.height)):
            # yuv420p subsamples chroma by two in each direction.
            if side < 16 or side > _MAX_SIDE or side % 2:
                raise ValueError(f"{name} must be an even number in 16..{_MAX_SIDE}")
        if not 1 <= self.fps <= 120:
            raise ValueError("fps must be 1..120")


class _HashStream:
    """Floats in [0, 1) from SHA-256 in counter mode.

    Stable across Python and numpy versions (unlike ``random`` or numpy's
    ``Generator`` methods), which a content cache keyed on the spec relies on.
    """

    def __init__(self, *parts: bytes) -> None:
        self._key = hashlib.sha256(b"\0".join(parts)).digest()
        self._counter = 0

    def uniform(self, low: float = 0.0, high: float = 1.0) -> float:
        block = hashlib.sha256(self._key + self._counter.to_bytes(8, "big")).digest()
        self._counter += 1
        return low + (high - low) * (int.from_bytes(block[:8], "big") / 2.0**64)

    def choice(self, count: int) -> int:
        return min(int(self.uniform() * count), count - 1)


def _rgb(hue: float, sat: float, val: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, sat, val)
    return round(r * 255), round(g * 255), round(b * 255)


@dataclass(frozen=True)
class _Shape:
    is_circle: bool
    colour: tuple[int, int, int]
    size: float
    centre: tuple[float, float]
    amplitude: tuple[float, float]
    cycles: tuple[int, int]
    phase: tuple[float, float]

    def box(self, progress: float, width: int, height: int) -> tuple[int, int, int, int]:
        """Where the shape is at ``progress`` (0..1): whole cycles, so the motion loops."""
        x = self.centre[0] + self.amplitude[0] * math.sin(
            2 * math.pi * self.cycles[0] * progress + self.phase[0]
        )
        y = self.centre[1] + self.amplitude[1] * math.sin(
            2 * math.pi * self.cycles[1] * progress + self.phase[1]
        )
        half = self.size * min(width, height) / 2
        cx, cy = x * width, y * height
        return round(cx - half), round(cy - half), round(cx + half), round(cy + half)


def _shapes(stream: _HashStream) -> list[_Shape]:
    shapes = []
    for _ in range(5 + stream.choice(4)):
        shapes.append(
            _Shape(
                is_circle=stream.uniform() < 0.6,
                colour=_rgb(stream.uniform(), stream.uniform(0.5, 0.9), stream.uniform(0.75, 1)),
                size=stream.uniform(0.08, 0.24),
                centre=(stream.uniform(0.25, 0.75), stream.uniform(0.25, 0.75)),
                amplitude=(stream.uniform(0.05, 0.3), stream.uniform(0.05, 0.25)),
                cycles=(1 + stream.choice(2), 1 + stream.choice(2)),
                phase=(stream.uniform(0, 2 * math.pi), stream.uniform(0, 2 * math.pi)),
            )
        )
    return shapes


def _gradient(stream: _HashStream, width: int, height: int) -> Image.Image:
    """A texture twice as wide as the frame, periodic in x, so a sliding crop drifts.

    Computed at an eighth of the size and scaled up: it is smooth, and full
    size costs half a second at 1080p.
    """
    hue = stream.uniform()
    first = np.array(_rgb(hue, 0.65, 0.35), dtype=np.float32)
    second = np.array(_rgb(hue + stream.uniform(0.2, 0.5), 0.7, 0.75), dtype=np.float32)
    small_w, small_h = max(2 * width // 8, 2), max(height // 8, 2)
    across = 0.5 + 0.5 * np.cos(2 * np.pi * 2 * np.arange(small_w, dtype=np.float32) / small_w)
    down = np.linspace(0.0, 1.0, small_h, dtype=np.float32)
    mix = 0.6 * across[np.newaxis, :] + 0.4 * down[:, np.newaxis]
    pixels = first + (second - first) * mix[:, :, np.newaxis]
    small = Image.fromarray(pixels.astype(np.uint8), "RGB")
    return small.resize((2 * width, height), Image.Resampling.BILINEAR)


def _fit_image(data: bytes, width: int, height: int) -> Image.Image:
    """Decode, orient and cover-crop the input image, a little larger than the frame."""
    size = (round(width * _KEN_BURNS_ZOOM), round(height * _KEN_BURNS_ZOOM))
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.draft("RGB", size)  # JPEG: decode at reduced scale when much larger
            oriented = ImageOps.exif_transpose(opened).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"the input image cannot be decoded: {exc}") from exc
    return ImageOps.fit(oriented, size, Image.Resampling.LANCZOS)


def _text_layer(prompt: str, width: int, height: int) -> tuple[Image.Image, tuple[int, int]]:
    """The prompt, wrapped and outlined, drawn once and pasted on every frame."""
    size = max(10, height // 14)
    font = ImageFont.load_default(size)
    columns = max(8, int(width * 0.8 / (size * 0.55)))
    lines = textwrap.wrap(prompt, columns) or ["(no prompt)"]
    if len(lines) > 4:
        lines = [*lines[:3], lines[3][: columns - 1].rstrip() + "…"]
    text = "\n".join(lines)
    stroke = max(1, size // 12)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    bbox = probe.multiline_textbbox((0, 0), text, font=font, stroke_width=stroke, align="center")
    left, top = math.floor(bbox[0]), math.floor(bbox[1])
    right, bottom = math.ceil(bbox[2]), math.ceil(bbox[3])
    layer = Image.new("RGBA", (right - left + 2, bottom - top + 2), (0, 0, 0, 0))
    ImageDraw.Draw(layer).multiline_text(
        (-left + 1, -top + 1),
        text,
        font=font,
        fill=(255, 255, 255, 255),
        stroke_width=stroke,
        stroke_fill=(0, 0, 0, 255),
        align="center",
    )
    origin = ((width - layer.width) // 2, round(height * 0.72) - layer.height // 2)
    return layer, origin


class _Scene:
    """The per-spec drawing state; ``frame(i)`` is a pure function of ``i``."""

    def __init__(self, spec: RenderSpec) -> None:
        self.spec = spec
        self.frames = spec.duration_seconds * spec.fps
        stream = _HashStream(b"picture", str(spec.seed).encode(), spec.prompt.encode())
        self.shapes = _shapes(stream)
        self.image = (
            _fit_image(spec.image, spec.width, spec.height) if spec.image is not None else None
        )
        self.gradient = _gradient(stream, spec.width, spec.height)
        self.drift = stream.uniform(0.5, 1.0)
        self.pan_to = (stream.uniform(0.3, 0.7), stream.uniform(0.3, 0.7))
        self.text, self.text_origin = _text_layer(spec.prompt, spec.width, spec.height)
        self.small_font = ImageFont.load_default(max(8, spec.height // 30))

    def _background(self, progress: float) -> Image.Image:
        width, height = self.spec.width, self.spec.height
        if self.image is None:
            offset = round(self.drift * progress * width) % width
            return self.gradient.crop((offset, 0, offset + width, height))
        # Ken Burns: zoom from the whole fitted image to a frame-sized window,
        # easing towards a point chosen by the hash.
        eased = 0.5 - 0.5 * math.cos(math.pi * progress)
        zoom = 1 + (_KEN_BURNS_ZOOM - 1) * eased
        box_w, box_h = self.image.width / zoom, self.image.height / zoom
        cx = self.image.width * (0.5 + (self.pan_to[0] - 0.5) * eased * (1 - 1 / zoom))
        cy = self.image.height * (0.5 + (self.pan_to[1] - 0.5) * eased * (1 - 1 / zoom))
        box = (cx - box_w / 2, cy - box_h / 2, cx + box_w / 2, cy + box_h / 2)
        return self.image.resize((width, height), Image.Resampling.BILINEAR, box=box)

    def frame(self, index: int) -> Image.Image:
        width, height = self.spec.width, self.spec.height
        progress = index / self.frames
        picture = self._background(progress)
        draw = ImageDraw.Draw(picture)
        outline = max(2, min(width, height) // 120)
        for shape in self.shapes:
            box = shape.box(progress, width, height)
            # Over an input image only outlines, so the image stays the subject.
            fill = None if self.image is not None else shape.colour
            line = shape.colour if self.image is not None else (255, 255, 255)
            if shape.is_circle:
                draw.ellipse(box, fill=fill, outline=line, width=outline)
            else:
                draw.rectangle(box, fill=fill, outline=line, width=outline)
        bob = round(math.sin(2 * math.pi * progress) * height / 90)
        x, y = self.text_origin
        picture.paste(self.text, (x, y + bob), self.text)
        seconds = index / self.spec.fps
        stamp = f"{seconds:05.2f}s  #{index + 1:04d}/{self.frames:04d}"
        margin = max(4, height // 60)
        draw.text(
            (width - margin, height - margin),
            stamp,
            font=self.small_font,
            fill=(255, 255, 255),
            anchor="rd",
            stroke_width=1,
            stroke_fill=(0, 0, 0),
        )
        return picture


class _Soundtrack:
    """A chord sequence: three pentatonic notes per chord, panned, plucked envelope."""

    _SCALE = (0, 2, 4, 7, 9, 12, 14, 16)

    def __init__(self, spec: RenderSpec) -> None:
        stream = _HashStream(b"sound", str(spec.seed).encode(), spec.prompt.encode())
        self.chord_samples = SAMPLE_RATE * (1 + stream.choice(2)) // 2
        self.total = spec.duration_seconds * SAMPLE_RATE
        chords = -(-self.total // self.chord_samples)
        base = 220.0 * 2 ** (stream.choice(7) / 12)
        table = []
        for _ in range(chords):
            root = stream.choice(4)
            steps = (root, root + 2, root + 3 + stream.choice(2))
            table.append([base * 2 ** (self._SCALE[s] / 12) for s in steps])
        self.freqs = np.array(table, dtype=np.float64)
        self.pans = np.array([stream.uniform(0.2, 0.8) for _ in range(3)], dtype=np.float64)

    def samples(self, start: int, stop: int) -> npt.NDArray[np.float32]:
        """Planar stereo float samples ``[start, stop)``: shape (2, stop - start)."""
        n = np.arange(start, stop, dtype=np.int64)
        chord = n // self.chord_samples
        tau = (n - chord * self.chord_samples) / SAMPLE_RATE
        freqs = self.freqs[chord]  # (N, 3)
        phase = 2 * np.pi * freqs * tau[:, np.newaxis]
        voices = np.sin(phase) + 0.25 * np.sin(2 * phase)
        envelope = np.minimum(tau / 0.01, 1.0) * np.exp(-2.5 * tau)
        voices *= (0.18 * envelope)[:, np.newaxis]
        left = voices @ (1 - self.pans)
        right = voices @ self.pans
        # Short fades at both ends so the track starts and stops without a click.
        edge = np.minimum(n, self.total - n) / (0.02 * SAMPLE_RATE)
        fade = np.clip(edge, 0.0, 1.0)
        return np.stack([left * fade, right * fade]).astype(np.float32)


def render_video(
    spec: RenderSpec,
    out_path: Path,
    on_progress: Callable[[int], None] | None = None,
) -> None:
    """Render ``spec`` to an MP4 (H.264 + AAC, faststart) at ``out_path``, atomically.

    CPU-bound and synchronous: run it in a thread or process. ``on_progress``
    gets 0, then roughly every 5 %, then 100 once the file is in place; an
    exception it raises (e.g. to cancel) aborts the render and leaves no file.
    Raises ``ValueError`` when the input image cannot be decoded.
    """
    report = on_progress or (lambda _: None)
    report(0)
    with written_atomically(out_path) as tmp_name:
        _encode(spec, tmp_name, report)
    report(100)


def _encode(spec: RenderSpec, path: str, report: Callable[[int], None]) -> None:
    """Encode frame by frame, muxing the audio that covers each frame right after it."""
    scene = _Scene(spec)
    sound = _Soundtrack(spec)
    video_base, audio_base = Fraction(1, spec.fps), Fraction(1, SAMPLE_RATE)
    done_samples, last_report = 0, 0
    with av.open(path, mode="w", format="mp4", options={"movflags": "+faststart"}) as out:
        # Without it the muxer stamps the wall clock into the file, and two renders of
        # one spec a second apart differ (the render cache relies on identical bytes).
        out.metadata["creation_time"] = "1970-01-01T00:00:00.000000Z"
        video = out.add_stream("libx264", rate=spec.fps, options=dict(_X264_OPTIONS))
        video.width, video.height, video.pix_fmt = spec.width, spec.height, "yuv420p"
        video.codec_context.gop_size = spec.fps * 2
        audio = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        audio.bit_rate = 128_000
        for index in range(scene.frames):
            frame = av.VideoFrame.from_ndarray(np.asarray(scene.frame(index)), format="rgb24")
            frame.pts, frame.time_base = index, video_base
            out.mux(video.encode(frame))
            until = (index + 1) * SAMPLE_RATE // spec.fps
            chunk = av.AudioFrame.from_ndarray(
                sound.samples(done_samples, until), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = SAMPLE_RATE, done_samples, audio_base
            out.mux(audio.encode(chunk))
            done_samples = until
            percent = min((index + 1) * 100 // scene.frames, 99)
            if percent >= last_report + _PROGRESS_STEP:
                last_report = percent
                report(percent)
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
