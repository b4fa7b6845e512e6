"""Is this file a real, playable video, and what is in it?

Used before a result is published: upstreams do return HTML error pages,
JSON, thumbnails and cut-off downloads with a 200, and a user must never be
handed one of those as their video. ``probe_video`` checks an MP4's top-level
boxes are all present (a cut-off download ends inside one) and reads its index
(``media.mp4``): when that names a known video codec, a sized picture, a duration
and a first sample inside the media data, that is the answer, without FFmpeg (the
usual case: microseconds). Anything else is opened with FFmpeg (PyAV, about 2 ms),
checked to be a video container rather than a still image, and either its first
video sample is read (an MP4 whose index names a sized picture) or its first frame
is decoded (anything else: about 10 ms at 720p).

It reads only headers and the first sample or frame, so it is cheap on large files.
It never modifies the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import av

from reelgate.errors import NotAVideo
from reelgate.media.mp4 import Box, read_index

__all__ = ["VideoInfo", "probe_video"]

# FFmpeg demuxers that open still images (and animated image formats) as a
# one-stream "video". A picture is not a video, whatever FFmpeg makes of it.
_IMAGE_DEMUXERS = frozenset({"image2", "gif", "apng", "webp", "ico", "tiff", "bmp"})
_ISO_BMFF = "mov,mp4,m4a,3gp,3g2,mj2"


@dataclass(frozen=True)
class VideoInfo:
    container: str
    """Short container name: "mp4", "mov", "matroska", "webm", "avi", ..."""
    duration_seconds: float
    width: int
    height: int
    video_codec: str
    audio_codec: str | None
    size_bytes: int


def probe_video(path: Path) -> VideoInfo:
    """Describe the video at ``path``; raise ``NotAVideo`` if it is not one.

    Blocking (file I/O and a decode): call it from a thread in async code.
    A missing file raises ``FileNotFoundError``, not ``NotAVideo``.
    """
    size = path.stat().st_size
    if size == 0:
        raise NotAVideo(f"{path.name} is empty", path=str(path))
    with path.open("rb") as raw:
        if raw.read(8)[4:8] == b"ftyp":
            # an MP4: its own index is read first (``media.mp4``); FFmpeg only when
            # that index is not plain enough to trust
            index = read_index(raw, _check_boxes(raw, size, path), size)
            if index is not None:
                return VideoInfo(
                    container="mov" if index.brand == "qt" else "mp4",
                    duration_seconds=index.duration_seconds,
                    width=index.width,
                    height=index.height,
                    video_codec=index.video_codec,
                    audio_codec=index.audio_codec,
                    size_bytes=size,
                )
    try:
        container = av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise NotAVideo(
            f"{path.name} is not a readable media container: {_reason(exc)}", path=str(path)
        ) from exc
    with container:
        return _describe(container, path, size)


def _describe(container: av.container.InputContainer, path: Path, size: int) -> VideoInfo:
    fmt = container.format.name
    if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
        raise NotAVideo(f"{path.name} is an image ({fmt}), not a video", path=str(path))
    if fmt == _ISO_BMFF:
        with path.open("rb") as raw:
            _check_boxes(raw, size, path)
    if not container.streams.video:
        raise NotAVideo(f"{path.name} has no video stream", path=str(path))
    video = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    duration = _duration(container, video)
    if duration <= 0:
        raise NotAVideo(f"{path.name} has no duration", path=str(path))
    width, height = video.codec_context.width, video.codec_context.height
    if not (fmt == _ISO_BMFF and width and height and _first_packet(container, video, path)):
        # Not a whole MP4 whose index names a sized picture and whose first sample is
        # there: only decoding the first frame tells whether it plays.
        frame = _first_frame(container, video, path)
        width, height = width or frame.width, height or frame.height
    return VideoInfo(
        container=_short_name(fmt, container, video.codec_context.name),
        duration_seconds=duration,
        width=width,
        height=height,
        video_codec=video.codec_context.name,
        audio_codec=audio.codec_context.name if audio is not None else None,
        size_bytes=size,
    )


def _first_packet(
    container: av.container.InputContainer, video: av.VideoStream, path: Path
) -> bool:
    """Whether the video stream's first sample reads as a non-empty packet (a demux,
    no decode: what the MP4 index promises, the box walk has already found whole)."""
    try:
        for packet in container.demux(video):
            if packet.size:
                container.seek(0)
                return True
            if packet.pts is not None:
                break
    except av.FFmpegError:
        return False
    container.seek(0)
    return False


def _first_frame(
    container: av.container.InputContainer, video: av.VideoStream, path: Path
) -> av.VideoFrame:
    try:
        frame = next(iter(container.decode(video)), None)
    except av.FFmpegError as exc:
        raise NotAVideo(
            f"{path.name}: the first frame does not decode: {_reason(exc)}", path=str(path)
        ) from exc
    if frame is None:
        raise NotAVideo(f"{path.name} has no decodable video frame", path=str(path))
    return frame


def _duration(container: av.container.InputContainer, video: av.VideoStream) -> float:
    """The container's duration, else the video stream's, else the last packet's end."""
    if container.duration is not None and container.duration > 0:
        return float(container.duration / av.time_base)
    if video.duration is not None and video.time_base is not None and video.duration > 0:
        return float(video.duration * video.time_base)
    end = 0.0
    for packet in container.demux(video):
        if packet.pts is not None and packet.time_base is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    container.seek(0)
    return end


def _check_boxes(raw: BinaryIO, size: int, path: Path) -> list[Box]:
    """Walk an MP4's top-level boxes: a cut-off download ends inside one.

    FFmpeg happily opens a faststart MP4 whose media data was truncated (the
    index is at the front), and a player then stalls part-way through.
    """
    offset, seen = 0, []
    while offset < size:
        raw.seek(offset)
        header = raw.read(16)
        if len(header) < 8:
            raise NotAVideo(f"{path.name} is truncated (partial box header)", path=str(path))
        box_size, box_type = struct.unpack(">I4s", header[:8])
        if box_size == 1:
            if len(header) < 16:
                raise NotAVideo(f"{path.name} is truncated (partial box header)", path=str(path))
            (box_size,) = struct.unpack(">Q", header[8:16])
        elif box_size == 0:
            box_size = size - offset  # "extends to the end of the file"
        if box_size < 8:
            raise NotAVideo(f"{path.name} has a malformed box at byte {offset}", path=str(path))
        if offset + box_size > size:
            kind = box_type.decode("latin-1")
            raise NotAVideo(
                f"{path.name} is truncated: the '{kind}' box needs {offset + box_size} bytes, "
                f"the file has {size}",
                path=str(path),
            )
        seen.append(Box(box_type, offset, box_size))
        offset += box_size
    if not any(box.kind == b"moov" for box in seen):
        raise NotAVideo(f"{path.name} has no 'moov' box", path=str(path))
    return seen


def _short_name(fmt: str, container: av.container.InputContainer, video_codec: str) -> str:
    """FFmpeg names demuxers by family ("mov,mp4,..."); callers want the file's kind."""
    if fmt == _ISO_BMFF:
        brand = str(container.metadata.get("major_brand", "")).strip()
        return "mov" if brand == "qt" else "mp4"
    if fmt == "matroska,webm":
        return "webm" if video_codec in {"vp8", "vp9", "av1"} else "matroska"
    return fmt.split(",")[0]


def _reason(exc: av.FFmpegError) -> str:
    """FFmpeg's own words, without the absolute path PyAV appends."""
    return str(exc.strerror or exc)
