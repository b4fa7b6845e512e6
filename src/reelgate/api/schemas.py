"""Request bodies of the native API. Field names follow the brief's model guide."""

from __future__ import annotations

import base64
import binascii

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator

from reelgate.engine.inputs import MAX_IMAGE_BYTES
from reelgate.errors import PayloadTooLarge, ValidationFailed

__all__ = ["VideoCreate", "decode_image"]

# Base64 grows data by 4/3; checked on the text before decoding anything.
_MAX_IMAGE_B64_CHARS = (MAX_IMAGE_BYTES * 4) // 3 + 8


class VideoCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: StrictStr = Field(
        default="sora-2", description="A model id from GET /v1/models (OpenAI's default: sora-2)."
    )
    prompt: StrictStr = Field(min_length=1, max_length=4000)
    fallback: list[StrictStr] = Field(default_factory=list, max_length=8)
    duration_seconds: StrictInt | None = None
    seconds: StrictStr | None = Field(
        default=None, description='OpenAI style duration, a string: "4".'
    )
    size: StrictStr | None = Field(default=None, description='OpenAI style size: "1280x720".')
    resolution: StrictStr | None = None
    aspect_ratio: StrictStr | None = None
    image_url: StrictStr | None = Field(default=None, max_length=2048)
    image: StrictStr | None = Field(
        default=None, description="Inline image, base64 or a data: URI, for image-to-video."
    )
    negative_prompt: StrictStr | None = Field(default=None, max_length=2000)
    seed: StrictInt | None = Field(default=None, ge=0, le=2**32 - 1)
    metadata: dict[str, StrictStr] = Field(default_factory=dict, max_length=16)

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value


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
