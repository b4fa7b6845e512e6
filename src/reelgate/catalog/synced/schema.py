"""A provider's own input schema for one model, with its references resolved.

fal serves one OpenAPI 3 document per endpoint
(``https://fal.ai/api/openapi/queue/openapi.json?endpoint_id=<id>``); the input is the
schema of ``paths.*.post.requestBody.content.application/json.schema``, usually a
``$ref`` into ``components.schemas``. Replicate gives each model version an
``openapi_schema`` whose ``components.schemas.Input`` is the input, with enum values in
referenced sub-schemas (``{"allOf": [{"$ref": "#/components/schemas/aspect_ratio"}]}``).

Validation uses ``jsonschema`` with a ``referencing`` registry (Draft 2020-12; the
OpenAPI 3.0 ``nullable`` keyword becomes a ``null`` type first), so every ``$ref`` is
resolved by the library, not by hand. ``describe`` flattens one property (its type,
enum, default and bounds, through ``$ref``, ``allOf`` and a nullable ``anyOf``) for the
mapping (``catalog.synced.mapping``) and for the 400 that names the allowed values.

A secret input (Cog's ``Secret``: ``"x-cog-secret": true``, ``"writeOnly": true``,
``"format": "password"``, on the property or anything it references) is marked
``Prop.secret``: the mapping never offers it, so a key of the client's own is never
taken, stored with the job or echoed back.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "InputSchema",
    "Prop",
    "SchemaProblem",
    "canonical_hash",
    "fal_input_schema",
    "replicate_input_schema",
]

_DOC_URI = "urn:reelgate:provider-schema"


class SchemaProblem(ValueError):
    """The document holds no input schema this module can read."""


def canonical_hash(value: Any) -> str:
    """sha256 of the value's canonical JSON (sorted keys, no spaces): the same schema
    always hashes the same, whatever order the provider wrote its keys in."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _nullable_to_type(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema says it (``type: [t, "null"]``)."""
    if isinstance(node, list):
        return [_nullable_to_type(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_type(v) for k, v in node.items()}
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out


@dataclass(frozen=True)
class Prop:
    """One input property, flattened."""

    name: str
    types: tuple[str, ...]
    """JSON types accepted, ``null`` left out (empty: any)."""
    enum: tuple[Any, ...] | None
    default: Any
    minimum: float | None
    maximum: float | None
    required: bool
    description: str
    nullable: bool
    format: str | None
    secret: bool = False
    """A key or password (``x-cog-secret``, ``writeOnly`` or ``format: password`` on the
    property or what it references): never offered as one of the model's own inputs."""

    def to_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": list(self.types), "required": self.required}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.default is not None:
            out["default"] = self.default
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.description:
            out["description"] = self.description
        return out


class InputSchema:
    """A model's input schema: the document it lives in and the pointer to it."""

    def __init__(self, document: Mapping[str, Any], pointer: str, *, checked: bool = False) -> None:
        """``checked``: the input is known to be a valid JSON Schema already (it was
        checked when it was first fetched), so ``check`` is skipped: it is most of the
        cost of reading a schema."""
        self.document: dict[str, Any] = _nullable_to_type(copy.deepcopy(dict(document)))
        self.pointer = pointer
        """A JSON pointer into ``document`` (``/components/schemas/Input``)."""
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self._registry: Registry[Any] = Registry().with_resource(_DOC_URI, resource)
        self._resolver = self._registry.resolver(base_uri=_DOC_URI)
        self.root: dict[str, Any] = self._follow({"$ref": f"#{pointer}"})
        if self.root.get("type", "object") != "object" or not isinstance(
            self.root.get("properties"), dict
        ):
            raise SchemaProblem(f"the input at {pointer} is not an object with properties")
        if not checked:
            self.check()

    def check(self) -> None:
        """The input is a valid JSON Schema (Draft 2020-12), else ``SchemaProblem``."""
        try:
            Draft202012Validator.check_schema(self.root)
        except SchemaError as exc:
            raise SchemaProblem(f"the input is not a valid JSON Schema: {exc.message}") from exc

    def to_json(self) -> dict[str, Any]:
        return {"document": self.document, "pointer": self.pointer}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> InputSchema:
        """A stored schema: checked when it was fetched, so not again."""
        return cls(raw["document"], str(raw["pointer"]), checked=True)

    @cached_property
    def hash(self) -> str:
        """Of the input and everything it references (the document's other paths and
        its output do not count: a changed output is no change to what is sent)."""
        return canonical_hash({"input": self.root, "refs": self._referenced()})

    def _referenced(self) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def walk(node: Any) -> None:
            if isinstance(node, list):
                for x in node:
                    walk(x)
            elif isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str) and ref not in seen:
                    seen[ref] = self._resolver.lookup(ref).contents
                    walk(seen[ref])
                for k, v in node.items():
                    if k != "$ref":
                        walk(v)

        walk(self.root)
        return dict(sorted(seen.items()))

    def _follow(self, node: Mapping[str, Any]) -> dict[str, Any]:
        seen = 0
        current: Mapping[str, Any] = node
        while isinstance(current.get("$ref"), str):
            seen += 1
            if seen > 32:
                raise SchemaProblem("a $ref loop")
            current = self._resolver.lookup(str(current["$ref"])).contents
        return dict(current)

    @cached_property
    def validator(self) -> Draft202012Validator:
        root = {"$ref": f"{_DOC_URI}#{self.pointer}"}
        return Draft202012Validator(root, registry=self._registry)

    @cached_property
    def required(self) -> frozenset[str]:
        return frozenset(str(x) for x in self.root.get("required", []))

    @cached_property
    def props(self) -> dict[str, Prop]:
        return {
            name: self.describe(name, node)
            for name, node in self.root["properties"].items()
            if isinstance(node, dict)
        }

    @cached_property
    def order(self) -> tuple[str, ...]:
        """The provider's own field order (fal's ``x-fal-order-properties``, Cog's
        ``x-order``), else the document's."""
        listed = self.root.get("x-fal-order-properties")
        names = list(self.root["properties"])
        if isinstance(listed, list):
            first = [n for n in listed if n in self.root["properties"]]
            return tuple(first + [n for n in names if n not in first])
        ranked = sorted(
            names,
            key=lambda n: (
                self.root["properties"][n].get("x-order", 10_000)
                if isinstance(self.root["properties"][n], dict)
                else 10_000
            ),
        )
        return tuple(ranked)

    def describe(self, name: str, node: Mapping[str, Any]) -> Prop:
        merged = self._merged(node)
        types = merged.get("type")
        type_list = [types] if isinstance(types, str) else list(types or [])
        enum = merged.get("enum")
        nullable = "null" in type_list or (isinstance(enum, list) and None in enum)
        clean_enum = tuple(v for v in enum if v is not None) if isinstance(enum, list) else None
        if not type_list and clean_enum:
            type_list = sorted({_json_type(v) for v in clean_enum})
        return Prop(
            name=name,
            types=tuple(t for t in type_list if t != "null"),
            enum=clean_enum,
            default=merged.get("default"),
            minimum=_number(merged.get("minimum", merged.get("exclusiveMinimum"))),
            maximum=_number(merged.get("maximum", merged.get("exclusiveMaximum"))),
            required=name in self.required,
            description=str(merged.get("description") or merged.get("title") or ""),
            nullable=nullable,
            format=merged.get("format") if isinstance(merged.get("format"), str) else None,
            secret=self._secret(node),
        )

    def _secret(self, node: Mapping[str, Any], depth: int = 0) -> bool:
        """Whether ``node``, anything it references, or any of its ``allOf``, ``anyOf``
        or ``oneOf`` parts carries a secret marker (a nullable ``anyOf`` of a password
        is still a password)."""
        if depth > 32:
            raise SchemaProblem("schema nesting too deep")
        if (
            node.get("x-cog-secret") is True
            or node.get("writeOnly") is True
            or node.get("format") == "password"
        ):
            return True
        ref = node.get("$ref")
        if isinstance(ref, str):
            target = self._resolver.lookup(ref).contents
            if isinstance(target, Mapping) and self._secret(target, depth + 1):
                return True
        for key in ("allOf", "anyOf", "oneOf"):
            for part in node.get(key, []) or []:
                if isinstance(part, Mapping) and self._secret(part, depth + 1):
                    return True
        return False

    def _merged(self, node: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
        """The keywords of ``node`` with ``$ref`` followed, ``allOf`` merged in and a
        nullable ``anyOf``/``oneOf`` (one branch and ``null``) reduced to its branch."""
        if depth > 16:
            raise SchemaProblem("schema nesting too deep")
        out: dict[str, Any] = {}
        base = self._follow(node) if "$ref" in node else dict(node)
        for part in base.get("allOf", []) or []:
            if isinstance(part, dict):
                for k, v in self._merged(part, depth + 1).items():
                    out.setdefault(k, v)
        for key in ("anyOf", "oneOf"):
            branches = [b for b in base.get(key, []) or [] if isinstance(b, dict)]
            if not branches:
                continue
            real = [b for b in branches if b.get("type") != "null"]
            nulls = len(branches) - len(real)
            merged_branches = [self._merged(b, depth + 1) for b in real]
            types: list[str] = []
            enums: list[Any] = []
            all_enum = True
            for b in merged_branches:
                t = b.get("type")
                types.extend([t] if isinstance(t, str) else list(t or []))
                if isinstance(b.get("enum"), list):
                    enums.extend(b["enum"])
                else:
                    all_enum = False
            if len(merged_branches) == 1:
                for k, v in merged_branches[0].items():
                    out.setdefault(k, v)
            if types:
                out["type"] = sorted(set(types)) + (["null"] if nulls else [])
            if all_enum and enums and len(merged_branches) > 1:
                out["enum"] = enums
        for k, v in base.items():
            if k not in ("allOf", "anyOf", "oneOf", "$ref"):
                out[k] = v if k != "type" or "type" not in out else out["type"]
        return out

    def errors(self, body: Mapping[str, Any]) -> list[ValidationError]:
        """Every violation of ``body``, the shallowest first."""
        found = list(self.validator.iter_errors(dict(body)))
        return sorted(found, key=lambda e: (len(e.absolute_path), str(e.absolute_path)))

    def allowed_for(self, error: ValidationError) -> list[Any] | None:
        """The values the schema allows where ``error`` happened (an enum), if any."""
        path = list(error.absolute_path)
        if path and isinstance(path[0], str) and path[0] in self.props:
            prop = self.props[path[0]]
            if prop.enum is not None:
                return list(prop.enum)
        validator_value = error.validator_value if error.validator == "enum" else None
        if isinstance(validator_value, list):
            return [v for v in validator_value if v is not None]
        return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _checked(schema: InputSchema, known: Container[str]) -> InputSchema:
    if schema.hash not in known:
        schema.check()
    return schema


def fal_input_schema(
    document: Mapping[str, Any], endpoint_id: str, *, known: Container[str] = ()
) -> InputSchema:
    """The input of ``endpoint_id`` in fal's per-endpoint OpenAPI document: the POST
    request body of its path (``/<endpoint_id>``), else of the only POST path. An input
    whose hash is in ``known`` (stored, so checked before) is not checked again."""
    paths = document.get("paths")
    if not isinstance(paths, dict) or not paths:
        raise SchemaProblem("the document has no paths")
    wanted = f"/{endpoint_id.strip('/')}"
    candidates = [wanted] if wanted in paths else [p for p in paths if "post" in paths[p]]
    for path in candidates:
        post = paths[path].get("post") if isinstance(paths[path], dict) else None
        schema = (
            ((post or {}).get("requestBody") or {})
            .get("content", {})
            .get("application/json", {})
            .get("schema")
        )
        if isinstance(schema, dict):
            ref = schema.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                return _checked(InputSchema(document, ref[1:], checked=True), known)
            pointer = (
                "/paths/" + _escape(path) + ("/post/requestBody/content/application~1json/schema")
            )
            return _checked(InputSchema(document, pointer, checked=True), known)
    raise SchemaProblem(f"no POST request body for {wanted} in the document")


def replicate_input_schema(
    openapi_schema: Mapping[str, Any], *, known: Container[str] = ()
) -> InputSchema:
    """``components.schemas.Input`` of a Replicate version's ``openapi_schema`` (not
    checked again when its hash is in ``known``)."""
    schemas = (openapi_schema.get("components") or {}).get("schemas") or {}
    if not isinstance(schemas.get("Input"), dict):
        raise SchemaProblem("the version's openapi_schema has no components.schemas.Input")
    return _checked(InputSchema(openapi_schema, "/components/schemas/Input", checked=True), known)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")
