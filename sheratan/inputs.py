"""The one validation layer for what comes from outside: every limit on input named once.

The CLI's callbacks and the application's commands both check here, before anything is
recorded, so a bad input is one ``InvalidInputError`` line (exit 2) and never a traceback or a
half-written record. Payloads are checked against the kind's JSON Schema under
``schemas/kinds/``; the known kinds are the shipped gates' allowed, not forbidden, kinds.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import msgspec

#: The deepest nesting of objects and arrays a JSON input (payload, profile) may have.
MAX_JSON_DEPTH = 32
#: The largest JSON input (a job payload, a worker profile), in bytes of canonical JSON.
MAX_PAYLOAD_BYTES = 256 * 1024
#: Mission and task titles: one line a person reads.
MAX_TITLE_CHARS = 200
#: Mission and task descriptions, and reasons given for a step.
MAX_DESCRIPTION_CHARS = 10_000
#: Worker ids, idempotency keys and job kinds.
MAX_NAME_CHARS = 200
MAX_TIMEOUT_SECONDS = 7 * 24 * 3600.0
MAX_RETRIES = 100
MAX_DEPENDENCIES = 64


class InvalidInputError(ValueError):
    """A command's argument breaks a rule; nothing was recorded."""


def check_arguments(args: list[str]) -> None:
    """Refuse an argument that is not valid UTF-8 (Python hands such bytes on as surrogates,
    which would fail later, mid-command, when the value is encoded)."""
    for number, arg in enumerate(args, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            msg = f"argument {number} ({_shown_bytes(arg)}) is not valid UTF-8"
            raise InvalidInputError(msg) from None


def _shown_bytes(arg: str) -> str:
    """The argument's original bytes, escaped and cut short, for a message."""
    try:
        raw = arg.encode("utf-8", "surrogateescape")  # the bytes as they were given
    except UnicodeEncodeError:
        raw = arg.encode("utf-8", "backslashreplace")
    shown = raw.decode("ascii", "backslashreplace")
    return shown if len(shown) <= 40 else shown[:40] + "..."


def decode_object(text: str, what: str) -> dict[str, Any]:
    """One JSON object from outside, within the size and depth limits."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) > MAX_PAYLOAD_BYTES:
        msg = f"{what} is {len(data)} bytes, over the limit of {MAX_PAYLOAD_BYTES}"
        raise InvalidInputError(msg)
    try:
        parsed = msgspec.json.decode(data)
    except RecursionError:
        msg = f"{what} is nested deeper than {MAX_JSON_DEPTH} levels"
        raise InvalidInputError(msg) from None
    except msgspec.DecodeError as error:
        raise InvalidInputError(f"{what} is not JSON: {error}") from None
    if not isinstance(parsed, dict):
        msg = f"{what} must be a JSON object"
        raise InvalidInputError(msg)
    check_object(parsed, what)
    return parsed


def check_object(value: Any, what: str) -> int:
    """Refuse a JSON value over the depth or size limit (or not JSON); return its size."""
    if json_depth(value) > MAX_JSON_DEPTH:
        msg = f"{what} is nested deeper than {MAX_JSON_DEPTH} levels"
        raise InvalidInputError(msg)
    try:
        size = len(msgspec.json.encode(value))
    except (TypeError, msgspec.EncodeError) as error:
        raise InvalidInputError(f"{what} is not JSON: {error}") from None
    if size > MAX_PAYLOAD_BYTES:
        msg = f"{what} is {size} bytes, over the limit of {MAX_PAYLOAD_BYTES}"
        raise InvalidInputError(msg)
    return size


def json_depth(value: Any) -> int:
    """How deeply objects and arrays nest in ``value`` (a scalar is 0), without recursion;
    counted only up to ``MAX_JSON_DEPTH + 1``, which is refused whatever lies deeper."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_JSON_DEPTH:
            return deepest  # no need to walk the rest of a value that is refused anyway
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_text(name: str, value: Any, limit: int, *, required: bool = True) -> None:
    """A string within ``limit`` characters, non-blank when ``required``."""
    if not isinstance(value, str) or (required and not value.strip()):
        msg = f"{name} must be a non-empty string"
        raise InvalidInputError(msg)
    if len(value) > limit:
        msg = f"{name} is {len(value)} characters, over the limit of {limit}"
        raise InvalidInputError(msg)
    _check_utf8(name, value)


def _check_utf8(name: str, value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        msg = f"{name} is not valid UTF-8"
        raise InvalidInputError(msg) from None


@cache
def known_kinds() -> tuple[str, ...]:
    """The kinds a job or worker may name: the shipped gates' allowed, not forbidden, kinds
    (read once a process: the shipped file does not change while it runs)."""
    from sheratan.decide.policy import load_gates  # not at import: the CLI starts without it

    return load_gates().known_kinds


def check_kinds(kinds: tuple[str, ...]) -> None:
    """Refuse a kind that is not known, naming the known ones."""
    known = known_kinds()
    for kind in kinds:
        check_text("kind", kind, MAX_NAME_CHARS)
        if kind not in known:
            msg = f"unknown kind {kind!r}: known kinds are {', '.join(known)}"
            raise InvalidInputError(msg)


def check_payload(kind: str, payload: dict[str, Any]) -> None:
    """Refuse a payload that does not fit ``schemas/kinds/<kind>.json``, naming the field."""
    from jsonschema.exceptions import best_match

    error = best_match(_validator(kind).iter_errors(payload))
    if error is not None:
        where = "/" + "/".join(str(p) for p in error.absolute_path)
        msg = f"payload does not fit {kind} at {where}: {error.message}"
        raise InvalidInputError(msg)


@cache
def _validator(kind: str) -> Any:
    import jsonschema  # slow to import: only commands that create jobs pay for it

    from sheratan.packaged import schema_file

    resource = schema_file("kinds", f"{kind}.json")
    if not resource.is_file():
        msg = f"kind {kind!r} has no payload schema (schemas/kinds/{kind}.json)"
        raise InvalidInputError(msg)
    schema = json.loads(resource.read_text())
    return jsonschema.Draft202012Validator(schema)
