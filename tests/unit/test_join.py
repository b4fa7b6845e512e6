"""media/join.py: clips of different rates, sizes and sound joined into one MP4, probed
frame by frame at the joins, and a clip's last frame for continuing a shot."""

from __future__ import annotations

import io
import itertools
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelgate.media.join import SAMPLE_RATE, JoinSpec, join_clips, last_frame_png
from reelgate.media.render import RenderSpec, render_video


def _render(tmp: Path, name: str, prompt: str, seconds: int, w: int, h: int, fps: int) -> Path:
    out = tmp / name
    render_video(
        RenderSpec(prompt=prompt, seed=7, duration_seconds=seconds, width=w, height=h, fps=fps), out
    )
    return out


def _silent(tmp: Path, name: str, seconds: int, w: int, h: int, fps: int, color: int) -> Path:
    """A clip with no sound at all, a flat colour (as some models deliver)."""
    out = tmp / name
    with av.open(str(out), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(seconds * fps):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), color, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return out


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]


def _sound(path: Path) -> np.ndarray:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return np.zeros((2, 0), np.float32)
        parts = [f.to_ndarray() for f in c.decode(c.streams.audio[0])]
    return np.concatenate(parts, axis=1)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_three_clips_of_different_rate_size_and_sound_join_at_the_sum_of_their_lengths(
    tmp_path: Path,
) -> None:
    a = _render(tmp_path, "a.mp4", "a red fox runs", 2, 320, 180, 24)
    b = _render(tmp_path, "b.mp4", "blue waves roll in", 3, 640, 360, 30)  # other size, rate
    c = _silent(tmp_path, "c.mp4", 2, 180, 320, 24, color=200)  # portrait, no sound
    out = tmp_path / "joined.mp4"
    result = join_clips([a, b, c], out)

    assert (result.width, result.height, result.fps) == (320, 180, 24)
    assert result.clip_frames == (48, 72, 48)
    assert result.frames == 168 and result.seconds == pytest.approx(7.0)
    assert result.joins_at == (pytest.approx(2.0), pytest.approx(5.0))

    frames = _frames(out)
    assert len(frames) == 168  # the sum of the shots, to the frame
    assert all(f.shape == (180, 320, 3) for f in frames)
    with av.open(str(out)) as probe:
        assert probe.streams.video[0].codec_context.name == "h264"
        assert probe.streams.audio[0].codec_context.name == "aac"
        assert probe.streams.audio[0].rate == SAMPLE_RATE

    # at each join, the frame before is the previous clip's last and the one after is
    # the next clip's first (re-encoding costs a little, a cut costs a lot)
    src_a, src_b = _frames(a), _frames(b)
    small_b = [np.asarray(Image.fromarray(f).resize((320, 180))) for f in (src_b[0], src_b[-1])]
    assert _diff(frames[47], src_a[-1]) < 6 < _diff(frames[48], src_a[-1])
    assert _diff(frames[48], small_b[0]) < 6 < _diff(frames[47], small_b[0])
    assert _diff(frames[119], small_b[1]) < 6
    # the portrait clip is fitted, not stretched: black bars left and right, grey middle
    last = frames[120]
    assert last[:, :100].mean() < 20 and last[:, 150:170].mean() > 150

    # sound throughout, as long as the picture; silence where the clip had none
    sound = _sound(out)
    assert sound.shape[1] == pytest.approx(7 * SAMPLE_RATE, abs=2048)
    loud_a = np.abs(sound[:, : 2 * SAMPLE_RATE]).mean()
    loud_b = np.abs(sound[:, 2 * SAMPLE_RATE + 2048 : 5 * SAMPLE_RATE - 2048]).mean()
    quiet_c = np.abs(sound[:, 5 * SAMPLE_RATE + 2048 :]).mean()
    assert loud_a > 0.01 and loud_b > 0.01 and quiet_c < 0.001


def test_a_crossfade_blends_the_clips_and_shortens_each_join(tmp_path: Path) -> None:
    a = _silent(tmp_path, "a.mp4", 2, 160, 96, 24, color=0)
    b = _silent(tmp_path, "b.mp4", 2, 160, 96, 24, color=240)
    out = tmp_path / "x.mp4"
    result = join_clips([a, b], out, JoinSpec(crossfade_seconds=0.5))
    assert result.frames == 96 - 12
    frames = _frames(out)
    assert len(frames) == 84
    levels = [float(f.mean()) for f in frames[34:52]]
    assert levels[0] < 10 and levels[-1] > 225
    assert all(x <= y + 2 for x, y in itertools.pairwise(levels))  # a ramp up
    assert 60 < float(frames[42].mean()) < 180  # the middle of the fade is a blend


def test_bad_crossfades_are_refused(tmp_path: Path) -> None:
    a = _silent(tmp_path, "a.mp4", 1, 64, 64, 24, color=0)
    with pytest.raises(ValueError, match="shorter than every clip"):
        join_clips([a, a], tmp_path / "o.mp4", JoinSpec(crossfade_seconds=1.0))
    with pytest.raises(ValueError, match="crossfade_seconds"):
        join_clips([a, a], tmp_path / "o.mp4", JoinSpec(crossfade_seconds=3))
    with pytest.raises(ValueError, match="nothing to join"):
        join_clips([], tmp_path / "o.mp4")
    assert not (tmp_path / "o.mp4").exists()


def test_the_last_frame_is_the_clip_s_final_picture(tmp_path: Path) -> None:
    a = _render(tmp_path, "a.mp4", "a lighthouse at dusk", 2, 320, 180, 24)
    png = last_frame_png(a)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    frames = _frames(a)
    assert image.shape == (180, 320, 3)
    assert _diff(image, frames[-1]) < 1 < _diff(image, frames[0])
