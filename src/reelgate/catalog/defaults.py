"""The built-in catalog: every model of the brief's model guide, the
media-video-from-text service's two models, and ``local``.

Prices are millicredits per second. The model guide quotes credits per
4-second 720p clip (Veo 3.1 fast ~80, Veo 3.1 ~180, Sora 2 ~200, Wan 2.1 ~40);
the media-video-from-text service charges 1.50 per second. Operators override
any of this in the config file (see ``catalog.loader``).
"""

from __future__ import annotations

from reelgate.catalog.models import AllowedParams, ModelSpec

# Veo 3.1 renders 1080p only at 8 s; the seed is honoured on Vertex only, so the
# catalog does not offer it (docs/providers/veo.md).
_VEO_PARAMS = AllowedParams(
    resolutions=("720p", "1080p"),
    aspect_ratios=("16:9", "9:16"),
    durations=(4, 6, 8),
    image_input=True,
    seed=False,
    durations_by_resolution={"1080p": (8,)},
)

# The media-video-from-text upstream's exact choices ("512P"/"1080P", "4s"/"8s").
_GATEWAY_PARAMS = AllowedParams(
    resolutions=("512p", "1080p"),
    aspect_ratios=("16:9", "9:16"),
    durations=(4, 8),
    image_input=False,
    negative_prompt=False,
    seed=False,
)

DEFAULT_MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        id="veo-3-1",
        provider="veo",
        upstream_model="veo-3.1-generate-preview",
        display_name="Veo 3.1 (Google)",
        strengths="Photorealism, motion coherence",
        notes="Slower, higher cost",
        allowed=_VEO_PARAMS,
        price_per_second=45_000,
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=8,
        typical_seconds=120.0,
        poll_interval_seconds=10.0,
    ),
    ModelSpec(
        id="veo-3-1-fast",
        provider="veo",
        upstream_model="veo-3.1-fast-generate-preview",
        display_name="Veo 3.1 fast (Google)",
        strengths="Iteration",
        notes="Default for prototyping",
        # The model guide caps fast at 4 s, and Veo renders 1080p only at 8 s: 720p.
        allowed=AllowedParams(
            resolutions=("720p",),
            aspect_ratios=("16:9", "9:16"),
            durations=(4,),
            image_input=True,
            seed=False,
        ),
        price_per_second=20_000,
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=4,
        typical_seconds=60.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="sora-2",
        provider="sora",
        upstream_model="sora-2",
        display_name="Sora 2 (OpenAI)",
        strengths="Long, narrative scenes",
        notes="Limited availability",
        allowed=AllowedParams(
            resolutions=("720p",),
            aspect_ratios=("16:9", "9:16"),
            durations=(4, 8, 12, 16, 20),
            image_input=True,
            negative_prompt=False,
            seed=False,
        ),
        price_per_second=50_000,
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=4,
        typical_seconds=180.0,
        poll_interval_seconds=10.0,
        availability="allow_list",
        deprecated=(
            "OpenAI shut down its Videos API on 2026-09-24; sora-2 works through Azure OpenAI "
            "or a compatible endpoint (REELGATE_OPENAI_BASE_URL, REELGATE_OPENAI_API_STYLE)"
        ),
    ),
    ModelSpec(
        id="wan-2-1",
        provider="wan",
        upstream_model="wan2.1-t2v-turbo",
        display_name="Wan 2.1 (Alibaba)",
        strengths="Text-to-video",
        notes=(
            "PRC opt-in required. The model guide lists up to 6 s; wan2.1 on DashScope renders "
            "5 s clips (docs/providers/wan.md)"
        ),
        allowed=AllowedParams(
            resolutions=("480p", "720p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=(5,),
            image_input=True,
        ),
        price_per_second=10_000,
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=5,
        typical_seconds=240.0,
        poll_interval_seconds=10.0,
        availability="prc_opt_in",
    ),
    ModelSpec(
        id="grok-video",
        provider="grok",
        upstream_model="grok-imagine-video",
        display_name="Grok video (xAI)",
        strengths="Realistic, low refusal",
        notes="xAI",
        allowed=AllowedParams(
            resolutions=("480p", "720p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=(1, 2, 3, 4, 5, 6),
            image_input=True,
            negative_prompt=False,
            seed=False,
        ),
        price_per_second=12_500,
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=6,
        typical_seconds=90.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="veo (Audio)",
        provider="video_gateway",
        upstream_model="veo (Audio)",
        display_name="veo (Audio) — media-video-from-text",
        strengths="Video with generated audio",
        notes="Default of the media-video-from-text service; 600 s deadline",
        allowed=_GATEWAY_PARAMS,
        price_per_second=1_500,
        default_resolution="1080p",
        default_aspect_ratio="16:9",
        default_duration=4,
        typical_seconds=180.0,
        deadline_seconds=600,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="veo fast (Audio)",
        provider="video_gateway",
        upstream_model="veo fast (Audio)",
        display_name="veo fast (Audio) — media-video-from-text",
        strengths="Faster video with generated audio",
        notes="media-video-from-text service; 600 s deadline",
        allowed=_GATEWAY_PARAMS,
        price_per_second=1_500,
        default_resolution="1080p",
        default_aspect_ratio="16:9",
        default_duration=4,
        typical_seconds=90.0,
        deadline_seconds=600,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="local",
        provider="local",
        upstream_model="local-renderer",
        display_name="local renderer (built in)",
        strengths="Demos and tests: a real H.264 MP4 rendered on this machine's CPU",
        notes="No key needed; renders an animated title card from the prompt",
        allowed=AllowedParams(
            resolutions=("360p", "480p", "720p", "1080p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=tuple(range(1, 21)),
            image_input=True,
        ),
        price_per_second=1_000,
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=4,
        typical_seconds=6.0,
        poll_interval_seconds=0.5,
    ),
)
