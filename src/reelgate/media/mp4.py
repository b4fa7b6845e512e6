"""An MP4's own index, read without FFmpeg.

Almost every provider returns an MP4 (ISO base media file, ISO/IEC 14496-12). Its
``moov`` box already says what ``probe_video`` wants to know: the duration
(``mvhd``), each track's kind (``hdlr``) and codec and picture size (``stsd``), and
where the first video sample lies and how big it is (``stsz``, ``stco``/``co64``).
Opening the file with FFmpeg to learn the same costs about 2 ms of CPU even for a
25 KiB clip (it initialises a decoder per stream and decodes a frame of each); reading
the boxes costs a few microseconds.

``read_index`` understands the common case only and says None for anything else (a
fragmented MP4, an unknown codec, a QuickTime sound description, a sample outside the
file's media data): the caller then asks FFmpeg, as before. It never guesses.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["Box", "Mp4Index", "read_index"]

MAX_MOOV_BYTES = 16 * 1024 * 1024
"""A larger index (hours of video) is left to FFmpeg rather than read into memory."""

# sample entry four-character codes → FFmpeg's codec names (what PyAV reports)
_VIDEO_CODECS = {
    b"avc1": "h264",
    b"avc3": "h264",
    b"hvc1": "hevc",
    b"hev1": "hevc",
    b"av01": "av1",
    b"vp09": "vp9",
}
_AUDIO_CODECS = {b"ac-3": "ac3", b"ec-3": "eac3", b"Opus": "opus", b"fLaC": "flac"}
# ``mp4a`` says "MPEG-4 systems audio": its esds names the codec (ISO/IEC 14496-1 OTI)
_MP4A_OBJECT_TYPES = {0x40: "aac", 0x66: "aac", 0x67: "aac", 0x68: "aac", 0x69: "mp3", 0x6B: "mp3"}


@dataclass(frozen=True)
class Box:
    """A top-level box: its type and where it lies in the file."""

    kind: bytes
    offset: int
    size: int


@dataclass(frozen=True)
class Mp4Index:
    brand: str
    """The ``ftyp`` major brand, spaces stripped ("isom", "mp42", "qt")."""
    duration_seconds: float
    width: int
    height: int
    video_codec: str
    audio_codec: str | None


@dataclass(frozen=True)
class _Track:
    handler: bytes
    entry: bytes
    """The first sample entry's four-character code."""
    entry_body: bytes
    first_sample: tuple[int, int] | None
    """(offset, size) of the first sample, when the tables say."""


def _children(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, body end) of each box in ``buf[start:end]``; stops at a
    malformed one (the caller then finds what it needs missing)."""
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack_from(">I4s", buf, offset)
        header = 8
        if size == 1:
            if offset + 16 > end:
                return
            (size,) = struct.unpack_from(">Q", buf, offset + 8)
            header = 16
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            return
        yield kind, offset + header, offset + size
        offset += size


def _child(buf: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, body, stop in _children(buf, start, end):
        if found == kind:
            return body, stop
    return None


def _path(buf: bytes, start: int, end: int, *kinds: bytes) -> tuple[int, int] | None:
    span: tuple[int, int] | None = (start, end)
    for kind in kinds:
        if span is None:
            return None
        span = _child(buf, span[0], span[1], kind)
    return span


def _timed(buf: bytes, body: int, stop: int) -> tuple[int, int] | None:
    """(timescale, duration) of an ``mvhd`` or ``mdhd`` body (versions 0 and 1)."""
    if stop - body < 4:
        return None
    version = buf[body]
    if version == 0 and stop - body >= 20:
        timescale, duration = struct.unpack_from(">II", buf, body + 12)
    elif version == 1 and stop - body >= 32:
        timescale, duration = struct.unpack_from(">IQ", buf, body + 20)
    else:
        return None
    return int(timescale), int(duration)


def _first_sample(buf: bytes, stbl: tuple[int, int]) -> tuple[int, int] | None:
    stsz = _child(buf, *stbl, b"stsz")
    if stsz is None or stsz[1] - stsz[0] < 12:
        return None
    fixed, count = struct.unpack_from(">II", buf, stsz[0] + 4)
    if count == 0:
        return None
    if fixed:
        size = fixed
    elif stsz[1] - stsz[0] >= 16:
        (size,) = struct.unpack_from(">I", buf, stsz[0] + 12)
    else:
        return None
    for kind, fmt, width in ((b"stco", ">I", 4), (b"co64", ">Q", 8)):
        table = _child(buf, *stbl, kind)
        if table is None:
            continue
        if table[1] - table[0] < 8 + width:
            return None
        (entries,) = struct.unpack_from(">I", buf, table[0] + 4)
        if entries == 0:
            return None
        (offset,) = struct.unpack_from(fmt, buf, table[0] + 8)
        return int(offset), int(size)
    return None


def _track(buf: bytes, start: int, end: int) -> _Track | None:
    mdia = _child(buf, start, end, b"mdia")
    if mdia is None:
        return None
    hdlr = _child(buf, *mdia, b"hdlr")
    stbl = _path(buf, *mdia, b"minf", b"stbl")
    if hdlr is None or stbl is None or hdlr[1] - hdlr[0] < 12:
        return None
    stsd = _child(buf, *stbl, b"stsd")
    if stsd is None or stsd[1] - stsd[0] < 16:
        return None
    entries = list(_children(buf, stsd[0] + 8, stsd[1]))
    if not entries:
        return None
    kind, body, stop = entries[0]
    return _Track(
        handler=buf[hdlr[0] + 8 : hdlr[0] + 12],
        entry=kind,
        entry_body=buf[body:stop],
        first_sample=_first_sample(buf, stbl),
    )


def _descriptor(data: bytes, at: int) -> tuple[int, int, int] | None:
    """(tag, body start, body end) of an MPEG-4 descriptor (ISO/IEC 14496-1 8.3.3)."""
    if at >= len(data):
        return None
    tag, size, at = data[at], 0, at + 1
    for _ in range(4):
        if at >= len(data):
            return None
        byte = data[at]
        at += 1
        size = (size << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return tag, at, min(at + size, len(data))
    return None


def _mp4a_codec(entry_body: bytes) -> str | None:
    """The codec an ``mp4a`` entry's ``esds`` names; None for any other layout."""
    if len(entry_body) < 28 or struct.unpack_from(">H", entry_body, 8)[0] != 0:
        return None  # a QuickTime sound description (version 1 or 2): left to FFmpeg
    esds = _child(entry_body, 28, len(entry_body), b"esds")
    if esds is None:
        return None
    data = entry_body[esds[0] + 4 : esds[1]]
    es = _descriptor(data, 0)
    if es is None or es[0] != 0x03 or es[1] + 3 > es[2]:
        return None
    flags, at = data[es[1] + 2], es[1] + 3
    if flags & 0x80:
        at += 2  # dependsOn_ES_ID
    if flags & 0x40 and at < es[2]:
        at += 1 + data[at]  # URL
    if flags & 0x20:
        at += 2  # OCR_ES_Id
    config = _descriptor(data, at)
    if config is None or config[0] != 0x04 or config[1] >= config[2]:
        return None
    return _MP4A_OBJECT_TYPES.get(data[config[1]])


def _audio_codec(track: _Track) -> str | None:
    if track.entry == b"mp4a":
        return _mp4a_codec(track.entry_body)
    return _AUDIO_CODECS.get(track.entry)


def read_index(raw: BinaryIO, boxes: list[Box], file_size: int) -> Mp4Index | None:
    """What the MP4's index says, when it says all of it plainly; else None.

    ``boxes``: the file's top-level boxes, already checked whole (``probe``)."""
    ftyp = next((b for b in boxes if b.kind == b"ftyp"), None)
    moov = next((b for b in boxes if b.kind == b"moov"), None)
    if ftyp is None or moov is None or moov.size > MAX_MOOV_BYTES or ftyp.size < 12:
        return None
    if any(b.kind == b"moof" for b in boxes):
        return None  # fragmented: the samples are indexed elsewhere
    raw.seek(ftyp.offset + 8)
    brand = raw.read(4).decode("latin-1").strip()
    raw.seek(moov.offset)
    buf = raw.read(moov.size)
    if len(buf) != moov.size:
        return None
    start = 16 if struct.unpack_from(">I", buf, 0)[0] == 1 else 8
    mvhd = _child(buf, start, len(buf), b"mvhd")
    timed = _timed(buf, *mvhd) if mvhd is not None else None
    if timed is None or timed[0] <= 0 or timed[1] <= 0:
        return None
    tracks = [
        _track(buf, body, stop)
        for kind, body, stop in _children(buf, start, len(buf))
        if kind == b"trak"
    ]
    if any(t is None for t in tracks):
        return None
    known = [t for t in tracks if t is not None]
    video = next((t for t in known if t.handler == b"vide"), None)
    if video is None or video.entry not in _VIDEO_CODECS or len(video.entry_body) < 28:
        return None
    width, height = struct.unpack_from(">HH", video.entry_body, 24)
    if not (width and height and video.first_sample and _in_media(video.first_sample, boxes)):
        return None
    audio = next((t for t in known if t.handler == b"soun"), None)
    audio_codec = _audio_codec(audio) if audio is not None else None
    if audio is not None and audio_codec is None:
        return None
    return Mp4Index(
        brand=brand,
        duration_seconds=timed[1] / timed[0],
        width=int(width),
        height=int(height),
        video_codec=_VIDEO_CODECS[video.entry],
        audio_codec=audio_codec,
    )


def _in_media(sample: tuple[int, int], boxes: list[Box]) -> bool:
    """The sample is not empty and lies inside an ``mdat`` box."""
    offset, size = sample
    return size > 0 and any(
        b.kind == b"mdat" and b.offset < offset and offset + size <= b.offset + b.size
        for b in boxes
    )
