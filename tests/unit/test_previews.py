"""Posters and sprite sheets (``media.previews``) made from real rendered videos: the
formats OpenAI's variants use, the layout, and each tile showing the moment its layout
says (the tile is compared with every decoded frame: the nearest is the right one)."""

from __future__ import annotations

from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops, ImageStat

from reelgate.media.previews import MAX_TILES, layout_for, make_previews
from reelgate.media.probe import probe_video
from reelgate.media.render import RenderSpec, render_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("previews") / "clip.mp4"
    render_video(
        RenderSpec(prompt="sprites", seed=7, duration_seconds=4, width=640, height=360), path
    )
    return path


def _frames(video: Path) -> list[tuple[float, Image.Image]]:
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        base = stream.time_base
        assert base is not None
        return [
            (float(f.pts * base), f.to_image().resize((160, 90)))  # type: ignore[no-untyped-call]
            for f in container.decode(stream)
        ]


def _distance(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean)


def test_the_poster_is_webp_and_the_sheet_a_jpeg_grid_of_the_right_moments(
    clip: Path, tmp_path: Path
) -> None:
    info = probe_video(clip)
    made = make_previews(clip, tmp_path, info.duration_seconds)
    layout = made.layout
    assert (layout.tiles, layout.columns, layout.rows) == (4, 4, 1)
    assert (layout.tile_width, layout.tile_height, layout.interval_seconds) == (160, 90, 1.0)
    with Image.open(made.poster) as poster:
        assert (poster.format, poster.size) == ("WEBP", (640, 360))
    with Image.open(made.sprite) as sheet:
        assert (sheet.format, sheet.size) == ("JPEG", (640, 90))
        sheet.load()
        tiles = [sheet.crop((i * 160, 0, (i + 1) * 160, 90)) for i in range(4)]
    frames = _frames(clip)
    for i, tile in enumerate(tiles):
        nearest, _ = min(frames, key=lambda f: _distance(tile, f[1]))
        assert abs(nearest - (i + 0.5)) <= 1 / 24 + 1e-6, (i, nearest)


def test_long_videos_get_at_most_the_tile_cap_and_portrait_tiles_keep_their_shape() -> None:
    long = layout_for(600.0, 1920, 1080)
    assert long.tiles == MAX_TILES and long.interval_seconds == 10.0
    assert (long.columns, long.rows) == (5, 12)
    portrait = layout_for(8.0, 720, 1280)
    assert (portrait.tile_width, portrait.tile_height, portrait.tiles) == (160, 284, 8)
    assert layout_for(0.5, 640, 360).tiles == 1


def test_a_video_shorter_than_measured_fills_the_sheet_with_its_last_frame(
    clip: Path, tmp_path: Path
) -> None:
    made = make_previews(clip, tmp_path, 6.0)  # says 6 s, holds 4
    assert made.layout.tiles == 6
    with Image.open(made.sprite) as sheet:
        sheet.load()
        fifth = sheet.crop((640, 0, 800, 90))  # 4.5 s: past the end
        sixth = sheet.crop((0, 90, 160, 180))  # 5.5 s, on the second row
        first = sheet.crop((0, 0, 160, 90))  # 0.5 s
    # both the last frame (told apart only by JPEG blocks that fall differently)
    assert _distance(fifth, sixth) * 10 < _distance(fifth, first)
