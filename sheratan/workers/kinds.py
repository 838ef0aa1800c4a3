"""Built-in job kinds and the shape of their payloads (gate G1 validates against these)."""

from __future__ import annotations

from typing import Any

import msgspec


class NoopPayload(msgspec.Struct, forbid_unknown_fields=False):
    """noop accepts any object: it does nothing with it."""


class FileReadPayload(msgspec.Struct, forbid_unknown_fields=True):
    path: str


class FileWritePayload(msgspec.Struct, forbid_unknown_fields=True):
    path: str
    content: str


class PatchApplyPayload(msgspec.Struct, forbid_unknown_fields=True):
    """Replace ``old`` with ``new`` in the file (exactly once), a minimal, checkable patch."""

    path: str
    old: str
    new: str


class LlmCallPayload(msgspec.Struct, forbid_unknown_fields=False):
    prompt: str
    max_tokens: int = 1024


PAYLOAD_SHAPES: dict[str, type[msgspec.Struct]] = {
    "noop": NoopPayload,
    "file_read": FileReadPayload,
    "file_write": FileWritePayload,
    "patch_apply": PatchApplyPayload,
    "llm_call": LlmCallPayload,
}
WRITE_KINDS = frozenset({"file_write", "patch_apply"})


def validate_payload(kind: str, payload: dict[str, Any]) -> str | None:
    """Why the payload does not fit the kind's shape, or None. Unknown kinds have no shape."""
    shape = PAYLOAD_SHAPES.get(kind)
    if shape is None:
        return f"no payload schema for kind {kind!r}"
    try:
        msgspec.convert(payload, shape)
    except msgspec.ValidationError as error:
        return f"payload does not fit {kind}: {error}"
    return None


def payload_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a kind's payload, made from its Struct (``schemas/kinds/<kind>.json``
    is written from this by scripts/gen_kind_schemas.py, and a test keeps the two equal)."""
    shape = PAYLOAD_SHAPES[kind]
    generated = msgspec.json.schema(shape)
    body = generated["$defs"][shape.__name__]
    body.pop("title", None)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://sheratan.invalid/schemas/kinds/{kind}.json",
        "title": f"{kind} payload",
        **body,
    }
