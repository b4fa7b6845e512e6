"""The built-in catalog: every model of the brief's model guide, the
media-video-from-text service's two models, and ``local``.

Prices are millicredits per second. The model guide quotes credits per
4-second 720p clip (Veo 3.1 fast ~80, Veo 3.1 ~180, Sora 2 ~200, Wan 2.1 ~40);
the media-video-from-text service charges 1.50 per second. Operators override
any of this in the config file (see ``catalog.loader``).
"""

from __future__ import annotations

from datetime import date

from reelgate.catalog.hosted import (
    FAL_VEO_31,
    FAL_VEO_31_FAST,
    FAL_WAN_25,
    HOSTED_MODELS,
    REPLICATE_VEO_31,
    REPLICATE_VEO_31_FAST,
    REPLICATE_WAN_25,
    usd,
)
from reelgate.catalog.models import AllowedParams, Lifecycle, ModelSpec, Route

# Sources of the routes below (read 2026-12-01; docs/providers/*.md quote them):
_GEMINI_RETIRED = (
    "docs.apiyi.com/en/live/2026-10/veo-3-1-preview-retired (2026-10-25): the Veo 3.1 "
    "previews on the Gemini API answer 404 'is no longer available' from 2026-10-22; "
    "google-genai 3.6.1 README: only Agent Platform (Vertex AI) supports video generation"
)
_VERTEX_IDS = (
    "docs.cloud.google.com/gemini-enterprise-agent-platform/models/video/"
    "generate-videos-from-text: veo-3.1-generate-001, veo-3.1-fast-generate-001, "
    "veo-3.1-lite-generate-001 (preview)"
)
_OPENAI_SHUTDOWN = (
    "developers.openai.com/api/docs/guides/video-generation: 'The Sora 2 video generation "
    "models and Videos API are deprecated and will shut down on September 24, 2026'"
)
_AZURE_RETIREMENT = (
    "learn.microsoft.com/en-us/azure/foundry/openai/concepts/model-retirement-schedule "
    "(copy of 2026-09-02): 'sora-2 | 2025-12-08 | Preview | 2026-10-15'"
)
_WAN_NEWER = (
    "help.aliyun.com/zh/model-studio/text-to-video-api-reference and "
    "image-to-video-api-reference (2.1-2.6): wan2.2-t2v-plus 480P/1080P 5 s, "
    "wan2.5-t2v-preview 480P-1080P 5/10 s; an international key rendered wan2.5 on "
    "2026-06-16 (tests/fixtures/wire/wan/)"
)
_GROK_15 = (
    "xai-org/xai-sdk-python@4dab6a44 src/xai_sdk/types/model.py (grok-imagine-video-1.5), "
    "sync/video.py (duration 1-15); v1.19.0 allows 1080p; prices: inference.sh "
    "(2026-11-06), muapi"
)
_WAN_NAMES = (
    "alibabacloud.com/help/en/model-studio/text-to-video-api-reference (international: "
    "wan2.1-t2v-turbo); help.aliyun.com/zh/model-studio/text-to-video-api-reference "
    "(Beijing: wanx2.1-t2v-turbo)"
)

# Upstream list prices (USD per second of video; ``Route.cost_source``; the research
# notes are ../shared/research/provider-facts-2026-11.md, section 5 and the Wan and Grok
# tables):
_VEO_PRICE = (
    "$0.40/s at 720p and 1080p with audio: ai.google.dev/gemini-api/docs/pricing as "
    "transcribed on 2026-09-20 (api-evangelist/gemini plans/gemini-plans-pricing.yml); "
    "the Vertex AI price was not found"
)
_VEO_FAST_PRICE = (
    "$0.15/s: secondary sources only (aifreeapi.com, 2026-03; docs.dev.xavier.icvr.xyz); "
    "lumenfall.ai (undated) says $0.10 silent, $0.20 with audio"
)
_VEO_LITE_PRICE = (
    "$0.05/s 720p, $0.08/s 1080p: third-party pages quoting Google (docs/providers/veo.md, "
    "read 2026-12-01)"
)
_SORA_PRICE = (
    "$0.10/s at 720p: developers.openai.com/de-DE/api/docs/models/sora-2 (read 2026-11; "
    "the page already says the API shut down on 2026-09-24)"
)
_WAN_PRICE = (
    "$0.036/s for wan2.1-t2v-turbo (and -i2v-turbo): alibabacloud.com/help/en/model-studio/"
    "text-to-video-api-reference, last updated 2025-05-22; no later international price"
)
_GROK_PRICE = (
    "$0.05/s at 480p, $0.07/s at 720p: docs.krea.ai/api-reference/video/grok-imagine and "
    "docs.apiyi.com grok-imagine-video overview ('same as xAI list price'), 2026; xAI "
    "reports its own figure per job (usage.cost_in_usd_ticks), which is used instead"
)
_GROK_15_PRICE = (
    "$0.08 / $0.14 / $0.25 per s at 480p / 720p / 1080p: muapi.ai/zh/grok-imagine-video-1-5 "
    "(late 2026), thecontext.dev 2026-06-10; xAI's cost ticks are used where it reports them"
)
_GATEWAY_PRICE = (
    "$1.50/s: the media-video-from-text service's own price ('a 4s video is $6', "
    "../shared/seeds/), resold at cost"
)


def _gateway_route(model: str) -> Route:
    return Route(model, cost_per_second=usd("1.50"), cost_source=_GATEWAY_PRICE)


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
        upstream_model="veo-3.1-generate-001",
        routes={
            "vertex": Route(
                "veo-3.1-generate-001",
                Lifecycle.GA,
                source=_VERTEX_IDS,
                cost_per_second=usd("0.40"),
                cost_source=_VEO_PRICE,
            ),
            "gemini": Route(
                "veo-3.1-generate-preview",
                Lifecycle.PREVIEW,
                retires_at=date(2026, 10, 22),
                source=_GEMINI_RETIRED,
            ),
            "fal": FAL_VEO_31,
            "replicate": REPLICATE_VEO_31,
        },
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
        upstream_model="veo-3.1-fast-generate-001",
        routes={
            "vertex": Route(
                "veo-3.1-fast-generate-001",
                Lifecycle.GA,
                source=_VERTEX_IDS,
                cost_per_second=usd("0.15"),
                cost_source=_VEO_FAST_PRICE,
            ),
            "gemini": Route(
                "veo-3.1-fast-generate-preview",
                Lifecycle.PREVIEW,
                retires_at=date(2026, 10, 22),
                source=_GEMINI_RETIRED,
            ),
            "fal": FAL_VEO_31_FAST,
            "replicate": REPLICATE_VEO_31_FAST,
        },
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
        id="veo-3-1-lite",
        provider="veo",
        upstream_model="veo-3.1-lite-generate-001",
        routes={
            "vertex": Route(
                "veo-3.1-lite-generate-001",
                Lifecycle.PREVIEW,
                source=_VERTEX_IDS,
                cost_per_second=usd("0.05"),
                cost_by_resolution=(("1080p", usd("0.08")),),
                cost_source=_VEO_LITE_PRICE,
            ),
            "gemini": Route(
                "veo-3.1-lite-generate-preview",
                Lifecycle.PREVIEW,
                retires_at=date(2026, 10, 22),
                source=_GEMINI_RETIRED,
            ),
        },
        display_name="Veo 3.1 lite (Google)",
        strengths="Cheapest Veo; drafts at volume",
        notes=(
            "Preview on Vertex AI. Limits (4/6/8 s, 720p/1080p, no 4k) and prices "
            "($0.05/s 720p, $0.08/s 1080p) from third-party pages quoting Google "
            "(docs/providers/veo.md); 1080p at 8 s like Veo 3.1"
        ),
        allowed=_VEO_PARAMS,
        # priced at Veo 3.1's credits per dollar (45 credits/s for $0.40/s)
        price_per_second=5_625,
        resolution_prices={"1080p": 9_000},
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=8,
        typical_seconds=60.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="sora-2",
        provider="sora",
        upstream_model="sora-2",
        display_name="Sora 2 (OpenAI)",
        strengths="Long, narrative scenes",
        notes=(
            "Limited availability. OpenAI shut its Videos API down on 2026-09-24 and Azure "
            "retired sora-2 on 2026-10-15; reachable through an OpenAI-compatible Videos "
            "upstream (REELGATE_OPENAI_API_STYLE=compatible)"
        ),
        # openai-python's VideoSeconds and Azure's docs list 4, 8 and 12 s, 720p only
        # (the 16 and 20 s of OpenAI's guide went with its API)
        allowed=AllowedParams(
            resolutions=("720p",),
            aspect_ratios=("16:9", "9:16"),
            durations=(4, 8, 12),
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
        routes={
            "openai": Route(
                "sora-2",
                Lifecycle.DEPRECATED,
                retires_at=date(2026, 9, 24),
                source=_OPENAI_SHUTDOWN,
                cost_per_second=usd("0.10"),
                cost_source=_SORA_PRICE,
            ),
            "azure": Route(
                "sora-2",
                Lifecycle.PREVIEW,
                retires_at=date(2026, 10, 15),
                source=_AZURE_RETIREMENT,
                cost_per_second=usd("0.10"),
                cost_source=_SORA_PRICE,
            ),
            # an OpenAI-compatible Videos upstream: OpenAI's last list price until the
            # operator sets the upstream's own (config file, cost_per_second)
            "compatible": Route("sora-2", cost_per_second=usd("0.10"), cost_source=_SORA_PRICE),
        },
        # OpenAI names no replacement; reelgate's nearest (long, photoreal scenes).
        successor="veo-3-1",
    ),
    ModelSpec(
        id="wan-2-1",
        provider="wan",
        upstream_model="wan2.1-t2v-turbo",
        routes={
            "intl": Route(
                "wan2.1-t2v-turbo",
                source=_WAN_NAMES,
                cost_per_second=usd("0.036"),
                cost_source=_WAN_PRICE,
            ),
            "beijing": Route("wanx2.1-t2v-turbo", source=_WAN_NAMES),
        },
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
        id="wan-2-2",
        provider="wan",
        upstream_model="wan2.2-t2v-plus",
        routes={
            "intl": Route("wan2.2-t2v-plus", source=_WAN_NEWER),
            "beijing": Route("wan2.2-t2v-plus", source=_WAN_NEWER),
        },
        display_name="Wan 2.2 plus (Alibaba)",
        strengths="Text- and image-to-video at 1080p",
        notes=(
            "PRC opt-in required. 5 s at 480p or 1080p (DashScope); image-to-video "
            "runs wan2.2-i2v-plus. Priced from Beijing's CNY 0.14/0.70 per s"
        ),
        allowed=AllowedParams(
            resolutions=("480p", "1080p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=(5,),
            image_input=True,
        ),
        # at wan-2-1's credits per dollar (10 credits/s for $0.036/s)
        price_per_second=27_000,
        resolution_prices={"480p": 5_400},
        default_resolution="1080p",
        default_aspect_ratio="16:9",
        default_duration=5,
        typical_seconds=240.0,
        poll_interval_seconds=10.0,
        availability="prc_opt_in",
    ),
    ModelSpec(
        id="wan-2-5",
        provider="wan",
        upstream_model="wan2.5-t2v-preview",
        routes={
            "intl": Route("wan2.5-t2v-preview", Lifecycle.PREVIEW, source=_WAN_NEWER),
            "beijing": Route("wan2.5-t2v-preview", Lifecycle.PREVIEW, source=_WAN_NEWER),
            "fal": FAL_WAN_25,
            "replicate": REPLICATE_WAN_25,
        },
        display_name="Wan 2.5 preview (Alibaba)",
        strengths="5 or 10 s up to 1080p",
        notes=(
            "PRC opt-in required. Preview; 5 or 10 s at 480p, 720p or 1080p (DashScope); "
            "image-to-video runs wan2.5-i2v-preview. Priced from Singapore's CNY "
            "0.367/0.734/1.101 per s"
        ),
        allowed=AllowedParams(
            resolutions=("480p", "720p", "1080p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=(5, 10),
            image_input=True,
        ),
        price_per_second=27_800,
        resolution_prices={"480p": 13_900, "1080p": 41_700},
        default_resolution="1080p",
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
        routes={
            "xai": Route(
                "grok-imagine-video",
                cost_per_second=usd("0.07"),
                cost_by_resolution=(("480p", usd("0.05")),),
                cost_source=_GROK_PRICE,
            )
        },
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
        id="grok-video-1-5",
        provider="grok",
        upstream_model="grok-imagine-video-1.5",
        routes={
            "xai": Route(
                "grok-imagine-video-1.5",
                source=_GROK_15,
                cost_per_second=usd("0.14"),
                cost_by_resolution=(("480p", usd("0.08")), ("1080p", usd("0.25"))),
                cost_source=_GROK_15_PRICE,
            )
        },
        display_name="Grok video 1.5 (xAI)",
        strengths="Up to 15 s and 1080p, text or image to video",
        notes=(
            "xAI. Prices ($0.08/$0.14/$0.25 per s at 480p/720p/1080p) from third-party "
            "pages; xAI's own price page was not found (docs/providers/grok.md)"
        ),
        allowed=AllowedParams(
            resolutions=("480p", "720p", "1080p"),
            aspect_ratios=("16:9", "9:16", "1:1"),
            durations=tuple(range(1, 16)),
            image_input=True,
            negative_prompt=False,
            seed=False,
        ),
        # at grok-video's credits per dollar (12.5 credits/s for $0.07/s at 720p)
        price_per_second=25_000,
        resolution_prices={"480p": 14_300, "1080p": 44_600},
        default_resolution="720p",
        default_aspect_ratio="16:9",
        default_duration=8,
        typical_seconds=120.0,
        poll_interval_seconds=5.0,
    ),
    ModelSpec(
        id="veo (Audio)",
        provider="video_gateway",
        upstream_model="veo (Audio)",
        routes={"default": _gateway_route("veo (Audio)")},
        display_name="veo (Audio) — media-video-from-text",
        strengths="Video with generated audio",
        notes="Default of the media-video-from-text service; 600 s deadline",
        allowed=_GATEWAY_PARAMS,
        price_per_second=usd("1.50"),  # the service's $1.50 a second: 150 credits
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
        routes={"default": _gateway_route("veo fast (Audio)")},
        display_name="veo fast (Audio) — media-video-from-text",
        strengths="Faster video with generated audio",
        notes="media-video-from-text service; 600 s deadline",
        allowed=_GATEWAY_PARAMS,
        price_per_second=usd("1.50"),  # the service's $1.50 a second: 150 credits
        default_resolution="1080p",
        default_aspect_ratio="16:9",
        default_duration=4,
        typical_seconds=90.0,
        deadline_seconds=600,
        poll_interval_seconds=5.0,
    ),
    *HOSTED_MODELS,
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
