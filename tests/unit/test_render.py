"""The local renderer: real H.264/AAC MP4s, exactly as long as asked, deterministic."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelgate.media.probe import probe_video
from reelgate.media.render import RenderSpec, render_video


def _spec(**overrides: object) -> RenderSpec:
    fields: dict[str, object] = {
        "prompt": "a lighthouse in a storm, waves crashing",
        "seed": 11,
        "duration_seconds": 1,
        "width": 320,
        "height": 180,
    }
    fields.update(overrides)
    return RenderSpec(**fields)  # type: ignore[arg-type]


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.mark.parametrize(
    ("width", "height", "seconds"),
    [(320, 180, 2), (180, 320, 1), (240, 240, 1)],
    ids=["16:9", "9:16", "1:1"],
)
def test_render_writes_h264_with_aac_of_the_exact_size_and_duration(
    tmp_path: Path, width: int, height: int, seconds: int
) -> None:
    out = tmp_path / "out.mp4"
    render_video(_spec(width=width, height=height, duration_seconds=seconds), out)

    info = probe_video(out)
    assert (info.container, info.video_codec, info.audio_codec) == ("mp4", "h264", "aac")
    assert (info.width, info.height) == (width, height)
    assert abs(info.duration_seconds - seconds) <= 0.05
    assert len(_frames(out)) == seconds * 24


def test_the_audio_track_is_stereo_48k_covers_the_video_and_is_not_silent(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    render_video(_spec(duration_seconds=2), out)
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.channels) == (48_000, 2)
        samples = np.concatenate([frame.to_ndarray() for frame in container.decode(stream)], axis=1)
    assert abs(samples.shape[1] - 2 * 48_000) <= 2048  # AAC pads its last frame
    assert float(np.sqrt(np.mean(samples**2))) > 0.01


def test_the_same_spec_renders_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    paths = [tmp_path / "a.mp4", tmp_path / "b.mp4", tmp_path / "c.mp4"]
    render_video(_spec(), paths[0])
    render_video(_spec(), paths[1])
    render_video(_spec(seed=12), paths[2])
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in paths]
    assert digests[0] == digests[1]
    assert digests[0] != digests[2]
    assert not np.array_equal(_frames(paths[0])[0], _frames(paths[2])[0])


def test_frames_move_over_time(tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    render_video(_spec(), out)
    frames = _frames(out)
    difference = np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean()
    assert difference > 5


def test_image_to_video_animates_the_given_image(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (800, 600), (220, 20, 20)).save(buffer, "PNG")
    out = tmp_path / "out.mp4"
    render_video(_spec(image=buffer.getvalue()), out)
    for frame in _frames(out)[::6]:
        red, green, blue = frame.reshape(-1, 3).mean(axis=0)
        assert red > 150
        assert red > 2 * green
        assert red > 2 * blue


def test_progress_rises_from_0_to_100_in_a_few_steps(tmp_path: Path) -> None:
    seen: list[int] = []
    render_video(_spec(duration_seconds=2), tmp_path / "out.mp4", seen.append)
    assert seen[0] == 0
    assert seen[-1] == 100
    assert seen == sorted(set(seen))
    assert 5 <= len(seen) <= 25


def test_an_error_raised_by_on_progress_aborts_and_leaves_no_file(tmp_path: Path) -> None:
    def stop_midway(percent: int) -> None:
        if percent >= 50:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_video(_spec(), tmp_path / "out.mp4", stop_midway)
    assert list(tmp_path.iterdir()) == []


def test_an_undecodable_image_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image"):
        render_video(_spec(image=b"not an image"), tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "overrides",
    [{"width": 321}, {"height": 0}, {"duration_seconds": 0}, {"fps": 0}],
)
def test_impossible_specs_are_rejected(overrides: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        _spec(**overrides)
