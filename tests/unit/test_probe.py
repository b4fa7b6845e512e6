"""probe_video accepts real videos and turns everything else into NotAVideo."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from reelgate.errors import NotAVideo
from reelgate.media.probe import probe_video
from reelgate.media.render import RenderSpec, render_video


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("probe") / "video.mp4"
    render_video(RenderSpec("probe me", seed=1, duration_seconds=1, width=320, height=180), out)
    return out.read_bytes()


def _silent_video(path: Path, container_format: str, *, faststart: bool = False) -> None:
    """A video-only file, written directly with PyAV (not by our renderer)."""
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", format=container_format, options=options) as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 20, np.uint8))
            frame.pts, frame.time_base = index, Fraction(1, 10)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def test_probe_describes_a_rendered_video(tmp_path: Path, rendered: bytes) -> None:
    path = tmp_path / "video"  # no extension: mirrored files have none
    path.write_bytes(rendered)
    info = probe_video(path)
    assert info.container == "mp4"
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height) == (320, 180)
    assert info.duration_seconds == pytest.approx(1.0, abs=0.05)
    assert info.size_bytes == len(rendered)


def test_probe_reports_no_audio_and_the_container_of_other_files(tmp_path: Path) -> None:
    path = tmp_path / "clip.mkv"
    _silent_video(path, "matroska")
    info = probe_video(path)
    assert (info.container, info.video_codec, info.audio_codec) == ("matroska", "h264", None)
    assert (info.width, info.height) == (64, 48)
    assert info.duration_seconds == pytest.approx(1.0, abs=0.15)


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.mp4", lambda video: b""),
        ("notes.txt", lambda video: b"this is not a video\n" * 20),
        ("error.mp4", lambda video: b"<html><body>502 Bad Gateway</body></html>"),
        ("image.png", lambda video: _png()),
        ("image_named.mp4", lambda video: _png()),
        ("half.mp4", lambda video: video[: len(video) // 2]),
        ("last_byte_missing.mp4", lambda video: video[:-1]),
        ("header_only.mp4", lambda video: video[:300]),
    ],
)
def test_probe_rejects_what_is_not_a_whole_video(
    tmp_path: Path, rendered: bytes, name: str, content: object
) -> None:
    path = tmp_path / name
    path.write_bytes(content(rendered))  # type: ignore[operator]
    with pytest.raises(NotAVideo) as caught:
        probe_video(path)
    assert caught.value.code == "not_a_video"
    assert name in caught.value.message


def test_probe_rejects_a_truncated_mp4_whose_index_is_at_the_end(tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    _silent_video(whole, "mp4")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[:-200])
    assert probe_video(whole).audio_codec is None
    with pytest.raises(NotAVideo):
        probe_video(cut)


def test_probe_of_a_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "missing.mp4")


def test_a_whole_mp4_is_described_from_its_index_without_a_decode(
    tmp_path: Path, rendered: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker probes every result: an MP4 whose boxes are whole and whose index names
    a sized picture is read, not decoded (a decode is ~10 ms CPU at 720p). Any other
    container is still decoded."""
    from reelgate.media import probe

    decoded: list[str] = []
    real = probe._first_frame

    def counting(container: object, video: object, path: Path) -> object:
        decoded.append(path.name)
        return real(container, video, path)  # type: ignore[arg-type]

    monkeypatch.setattr(probe, "_first_frame", counting)
    mp4 = tmp_path / "result"
    mp4.write_bytes(rendered)
    assert probe_video(mp4).width > 0
    assert decoded == []
    mkv = tmp_path / "result.mkv"
    _silent_video(mkv, "matroska")
    assert probe_video(mkv).width == 64
    assert decoded == ["result.mkv"]
