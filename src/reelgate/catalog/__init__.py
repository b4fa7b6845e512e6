"""The model catalog (``GET /v1/models``) and validation of requests against it."""

from reelgate.catalog.catalog import Catalog, load_catalog
from reelgate.catalog.models import AllowedParams, ModelSpec, resolution_dims

__all__ = ["AllowedParams", "Catalog", "ModelSpec", "load_catalog", "resolution_dims"]
