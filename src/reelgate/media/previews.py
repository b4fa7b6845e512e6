"""A stored video's poster and sprite sheet, made with PyAV and Pillow in bounded memory.

The frames are decoded one at a time, in order, and only the ones wanted are kept, each
scaled down at once: memory holds one decoded frame, the poster and the sheet, whatever
the video's length or size. The formats are those OpenAI's Videos API serves for its
``variant=thumbnail`` (WebP) and ``variant=spritesheet`` (JPEG) downloads (openai/skills
``sora/references/video-api.md``, "Download variants", copy of 2026-02-19).

- The poster is the frame at 40 % of the video (past a fade-in, before a fade-out), at
  most ``POSTER_MAX_WIDTH`` wide.
- The sheet is one tile per ``interval`` (1 s, longer for long videos so there are at
  most ``MAX_TILES``), each from the middle of its interval, in rows of ``COLUMNS``; its
  layout says where tile *i* is, for hover scrubbing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from PIL import Image

__all__ = ["Previews", "SpriteLayout", "make_previews"]

POSTER_MAX_WIDTH = 1280
TILE_WIDTH = 160
COLUMNS = 5
MAX_TILES = 60
POSTER_AT = 0.4


@dataclass(frozen=True)
class SpriteLayout:
    """Where each frame of a sprite sheet is: tile ``i`` (from 0) shows the video at
    ``(i + 0.5) * interval_seconds``, at column ``i % columns``, row ``i // columns``."""

    columns: int
    rows: int
    tiles: int
    tile_width: int
    tile_height: int
    interval_seconds: float

    def to_wire(self) -> dict[str, Any]:
        return {
            "columns": self.columns,
            "rows": self.rows,
            "tiles": self.tiles,
            "tile_width": self.tile_width,
            "tile_height": self.tile_height,
            "interval_seconds": self.interval_seconds,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> SpriteLayout:
        return cls(
            columns=int(data["columns"]),
            rows=int(data["rows"]),
            tiles=int(data["tiles"]),
            tile_width=int(data["tile_width"]),
            tile_height=int(data["tile_height"]),
            interval_seconds=float(data["interval_seconds"]),
        )


@dataclass(frozen=True)
class Previews:
    poster: Path
    """WebP."""
    sprite: Path
    """JPEG."""
    layout: SpriteLayout


def layout_for(duration: float, width: int, height: int) -> SpriteLayout:
    """The sheet for a video of ``duration`` seconds at ``width`` x ``height``."""
    tiles = max(1, min(MAX_TILES, math.ceil(duration - 1e-6)))
    interval = duration / tiles if duration > 0 else 1.0
    tile_height = max(2, round(TILE_WIDTH * height / width)) if width else TILE_WIDTH
    columns = min(COLUMNS, tiles)
    return SpriteLayout(
        columns=columns,
        rows=math.ceil(tiles / columns),
        tiles=tiles,
        tile_width=TILE_WIDTH,
        tile_height=tile_height,
        interval_seconds=round(interval, 3),
    )


def make_previews(video: Path, out_dir: Path, duration: float) -> Previews:
    """Write ``poster.webp`` and ``sprite.jpg`` of ``video`` (``duration`` seconds, as
    measured) into ``out_dir``. Blocking: run it in a thread."""
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        layout = layout_for(duration, width, height)
        wanted = [(i + 0.5) * layout.interval_seconds for i in range(layout.tiles)]
        poster_at = duration * POSTER_AT
        sheet = Image.new(
            "RGB", (layout.columns * layout.tile_width, layout.rows * layout.tile_height)
        )
        poster: Image.Image | None = None
        last: av.VideoFrame | None = None
        tile = 0
        base = stream.time_base or Fraction(1, 90_000)
        for frame in container.decode(stream):
            at = float(frame.pts * base) if frame.pts is not None else (frame.time or 0.0)
            image = None  # converted only when this frame is wanted, once
            if poster is None and at >= poster_at:
                image = _image(frame)
                poster = _scaled(image, POSTER_MAX_WIDTH)
            while tile < layout.tiles and at >= wanted[tile]:
                image = image or _image(frame)
                _paste(sheet, layout, tile, image)
                tile += 1
            if poster is not None and tile >= layout.tiles:
                break
            last = frame
        # a video shorter than it says: its last frame fills what is left
        if last is not None and (poster is None or tile < layout.tiles):
            image = _image(last)
            poster = poster or _scaled(image, POSTER_MAX_WIDTH)
            while tile < layout.tiles:
                _paste(sheet, layout, tile, image)
                tile += 1
    if poster is None:
        raise ValueError(f"{video.name}: no video frame to make a poster of")
    out_dir.mkdir(parents=True, exist_ok=True)
    poster_path, sprite_path = out_dir / "poster.webp", out_dir / "sprite.jpg"
    poster.save(poster_path, "WEBP", quality=82, method=4)
    sheet.save(sprite_path, "JPEG", quality=80, optimize=True)
    return Previews(poster=poster_path, sprite=sprite_path, layout=layout)


def _image(frame: av.VideoFrame) -> Image.Image:
    image: Image.Image = frame.to_image()  # type: ignore[no-untyped-call]
    return image


def _scaled(image: Image.Image, max_width: int) -> Image.Image:
    if image.width <= max_width:
        return image
    height = max(2, round(image.height * max_width / image.width))
    return image.resize((max_width, height), Image.Resampling.LANCZOS)


def _paste(sheet: Image.Image, layout: SpriteLayout, tile: int, image: Image.Image) -> None:
    small = image.resize((layout.tile_width, layout.tile_height), Image.Resampling.BILINEAR)
    x = (tile % layout.columns) * layout.tile_width
    y = (tile // layout.columns) * layout.tile_height
    sheet.paste(small, (x, y))
