"""probe_video accepts real videos and turns everything else into NotAVideo."""

from __future__ import annotations

import io
from dataclasses import replace
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


def _by_ffmpeg(path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    """probe_video as it was before the index was read: FFmpeg for every file."""
    from reelgate.media import probe

    with monkeypatch.context() as m:
        m.setattr(probe, "read_index", lambda raw, boxes, size: None)
        return probe_video(path)


@pytest.mark.parametrize("kind", ["rendered", "silent", "silent_faststart"])
def test_an_mp4_index_says_what_ffmpeg_says(
    tmp_path: Path, rendered: bytes, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = tmp_path / "video"
    if kind == "rendered":
        path.write_bytes(rendered)
    else:
        _silent_video(path, "mp4", faststart=kind == "silent_faststart")
    from reelgate.media import probe

    def no_ffmpeg(*args: object, **kwargs: object) -> None:
        raise AssertionError("FFmpeg was asked about a plain MP4")

    with monkeypatch.context() as m:
        m.setattr(probe.av, "open", no_ffmpeg)
        from_index = probe_video(path)
    by_ffmpeg = _by_ffmpeg(path, monkeypatch)
    assert from_index == replace(
        by_ffmpeg,  # type: ignore[type-var]
        duration_seconds=pytest.approx(by_ffmpeg.duration_seconds, abs=1e-6),  # type: ignore[attr-defined]
    )


def _patched(video: bytes, old: bytes, new: bytes) -> bytes:
    at = video.index(old, video.index(b"stsd"))  # the sample entry, not a brand in ftyp
    return video[:at] + new + video[at + len(old) :]


@pytest.mark.parametrize(
    ("case", "patch"),
    [
        # an unknown codec in the sample entry: FFmpeg decides
        ("unknown_codec", lambda v: _patched(v, b"avc1", b"zzz1")),
        # a fragmented file's samples are indexed in moof boxes: FFmpeg decides
        ("fragmented", lambda v: v + b"\x00\x00\x00\x08moof"),
    ],
)
def test_an_index_it_does_not_plainly_understand_is_left_to_ffmpeg(
    tmp_path: Path, rendered: bytes, case: str, patch: object
) -> None:
    from reelgate.media.mp4 import read_index
    from reelgate.media.probe import _check_boxes

    path = tmp_path / case
    path.write_bytes(patch(rendered))  # type: ignore[operator]
    with path.open("rb") as raw:
        boxes = _check_boxes(raw, path.stat().st_size, path)
        assert read_index(raw, boxes, path.stat().st_size) is None


def test_an_index_whose_first_sample_is_outside_the_media_is_not_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index of a whole file points its first sample past the media data (a
    broken muxer): the index is not enough, FFmpeg reads the sample and rejects it."""
    import struct

    whole = tmp_path / "whole.mp4"
    _silent_video(whole, "mp4", faststart=True)
    data = whole.read_bytes()
    at = data.index(b"stco") + 12  # version/flags, entry count, then the first offset
    broken = data[:at] + struct.pack(">I", len(data) + 4096) + data[at + 4 :]
    path = tmp_path / "broken.mp4"
    path.write_bytes(broken)
    from reelgate.media import probe

    asked: list[str] = []
    real_open = probe.av.open

    def counting(*args: object, **kwargs: object) -> object:
        asked.append("ffmpeg")
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(probe.av, "open", counting)
    with pytest.raises(NotAVideo):
        probe_video(path)
    assert asked == ["ffmpeg"]
