"""Request bodies of the native API. Field names follow the brief's model guide."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    StringConstraints,
    field_validator,
)

from reelgate.errors import PayloadTooLarge, ValidationFailed
from reelgate.job import MAX_IMAGE_BYTES

__all__ = [
    "MetadataKey",
    "MetadataValue",
    "Prompt",
    "Seconds",
    "Seed",
    "VideoCreate",
    "VideoExtend",
    "VideoRemix",
    "decode_image",
    "not_blank",
]

# Base64 grows data by 4/3; checked on the text before decoding anything.
_MAX_IMAGE_B64_CHARS = (MAX_IMAGE_BYTES * 4) // 3 + 8


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank (only spaces or nothing)")
    return value


Prompt = Annotated[StrictStr, StringConstraints(min_length=1, max_length=4000)]
ModelId = Annotated[StrictStr, StringConstraints(min_length=1, max_length=200)]
"""A catalog id, or a synced model's full ``fal:<endpoint id>`` / ``replicate:<owner>/<name>``."""
Short = Annotated[StrictStr, StringConstraints(max_length=32)]
# OpenAI's metadata: "Set of 16 key-value pairs ... Keys are strings with a maximum
# length of 64 characters. Values are strings with a maximum length of 512 characters."
MetadataKey = Annotated[StrictStr, StringConstraints(min_length=1, max_length=64)]
MetadataValue = Annotated[StrictStr, StringConstraints(max_length=512)]


class VideoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelId = Field(
        default="sora-2", description="A model id from GET /v1/models (OpenAI's default: sora-2)."
    )
    prompt: Prompt
    fallback: list[ModelId] = Field(default_factory=list, max_length=8)
    duration_seconds: StrictInt | None = Field(default=None, ge=1, le=600)
    seconds: Short | None = Field(default=None, description='OpenAI style duration, a string: "4".')
    size: Short | None = Field(default=None, description='OpenAI style size: "1280x720".')
    resolution: Short | None = None
    aspect_ratio: Short | None = None
    image_url: StrictStr | None = Field(default=None, max_length=2048)
    image: StrictStr | None = Field(
        default=None, description="Inline image, base64 or a data: URI, for image-to-video."
    )
    negative_prompt: StrictStr | None = Field(default=None, max_length=2000)
    seed: StrictInt | None = Field(default=None, ge=0, le=2**32 - 1)
    audio: StrictBool | None = Field(
        default=None,
        description="The model's audio switch (generate_audio...), for a model whose "
        "capabilities include audio; omitted: the model's default.",
    )
    provider_params: dict[Annotated[StrictStr, StringConstraints(max_length=64)], Any] | None = (
        Field(
            default=None,
            max_length=32,
            description="A synced model's own inputs that reelgate's fields do not carry "
            "(GET /v1/models: synced.provider_params), checked against its schema.",
        )
    )
    webhook_url: StrictStr | None = Field(
        default=None,
        max_length=2048,
        description="Where to POST this job's events, signed per Standard Webhooks with "
        "the account's default secret (GET /v1/webhooks/default/secret).",
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict,
        max_length=16,
        description="Up to 16 pairs; keys up to 64 characters, values up to 512 (as OpenAI's).",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        return not_blank(value)


def _whole_seconds(value: Any) -> Any:
    """JSON Schema calls 4.0 an integer too: taken as 4; never a fraction or a boolean."""
    if isinstance(value, bool):
        raise ValueError("seconds are a number, not a boolean")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Seconds = Annotated[int, Field(ge=1, le=600), BeforeValidator(_whole_seconds)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1), BeforeValidator(_whole_seconds)]


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: Prompt
    model: ModelId | None = Field(
        default=None, description="Default: the model that delivered the source video."
    )
    fallback: list[ModelId] = Field(default_factory=list, max_length=8)
    webhook_url: StrictStr | None = Field(default=None, max_length=2048)
    metadata: dict[MetadataKey, MetadataValue] = Field(default_factory=dict, max_length=16)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        return not_blank(value)


class VideoExtend(_Edit):
    """Continue a finished video: ``prompt`` says what happens next."""

    duration_seconds: Seconds | None = Field(
        default=None, description="Seconds to add (default: the model's default duration)."
    )
    resolution: Short | None = Field(
        default=None,
        description="Of the new part (default: the source's); the whole "
        "video keeps the source's size.",
    )


class VideoRemix(_Edit):
    """The same video re-made to a new prompt, where the model's provider can."""


def decode_image(value: str) -> tuple[bytes, str]:
    """Decode an inline image; the size cap is enforced on the text, before decoding."""
    if len(value) > _MAX_IMAGE_B64_CHARS:
        raise PayloadTooLarge(
            f"The inline image is larger than {MAX_IMAGE_BYTES} bytes; send a smaller image "
            "or an image_url.",
            code="image_too_large",
            param="image",
        )
    mime = "image/png"
    if value.startswith("data:"):
        header, _, value = value.partition(",")
        mime = header[5:].split(";")[0] or mime
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationFailed(
            "image is not valid base64 (send raw base64 or a data:image/...;base64, URI).",
            param="image",
        ) from None
    if not data:
        raise ValidationFailed("image is empty.", param="image")
    return data, mime
