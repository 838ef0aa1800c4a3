"""Redaction of read paths: secret keys, credentials in text, digests and UUIDs kept, paths made
relative, long strings cut; and the properties that make it safe to apply anywhere (idempotent,
total, bounded, and no injected secret survives)."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sheratan.analytics.redact import (
    MAX_CHARS,
    MAX_DEPTH,
    OUTSIDE_WORKSPACE,
    REDACTED,
    TOO_DEEP,
    is_secret_key,
    redact,
)

WS = Path("/ws")
HEX40 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
HEX64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
JOB_ID = "550e8400-e29b-41d4-a716-446655440000"
B64_SECRET = "dGhpcyBpcyBhIHNlY3JldCBrZXkgdGhhdCBpcyBsb25nIGVub3VnaA=="
CUT = re.compile(r"…\[cut (\d+) chars\]\Z")


def dumped(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# -- rule 1: secret keys -------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "api_key",
        "api-key",
        "apiKey",
        "APIKey",
        "X-Api-Key",
        "apikey",
        "private_key",
        "privateKey",
        "PRIVATE_KEY",
        "password",
        "db_password",
        "passwd",
        "Authorization",
        "cookie",
        "Set-Cookie",
        "credentials",
        "client_secret",
        "access_token",
        "refreshToken",
        "session_tokens",
        "key",
        "Key",
        "password2",
    ],
)
def test_secret_key_names(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "monkey_id",
        "keyboard",
        "keyframe",
        "tokens",
        "max_tokens",
        "tokenizer",
        "sort_key",
        "keys",
        "hash",
        "input_hash",
        "author",
        "session_id",
        "passing",
    ],
)
def test_innocent_key_names(key: str) -> None:
    assert not is_secret_key(key)


def test_secret_key_hides_its_whole_value_whatever_its_type() -> None:
    value = {
        "password": {"nested": "hunter2", "n": 3},
        "tokens": 512,
        "token": ["a", "b"],
        "apiKey": 12345,
        "cookie": None,
    }
    assert redact(value) == {
        "password": REDACTED,
        "tokens": 512,
        "token": REDACTED,
        "apiKey": REDACTED,
        "cookie": REDACTED,
    }


def test_a_payload_with_secrets_everywhere_leaks_none_of_them() -> None:
    payload = {
        "api_key": "sk-live-0123456789",
        "headers": {"Authorization": "Bearer abc.def-ghi", "Accept": "application/json"},
        "log": ["connecting", "Authorization: Bearer sk-live-51HxYzAbCdEf", "done"],
        "note": HEX40,
        "monkey_id": 42,
        "keyboard": "qwerty",
        "keyframe": 7,
        "tokens": 1234,
    }
    out = redact(payload)
    text = dumped(out)
    for secret in ("sk-live-0123456789", "abc.def-ghi", "sk-live-51HxYzAbCdEf", HEX40):
        assert secret not in text
    assert out == {
        "api_key": REDACTED,
        "headers": {"Authorization": REDACTED, "Accept": "application/json"},
        "log": ["connecting", "Authorization: Bearer [redacted]", "done"],
        "note": REDACTED,
        "monkey_id": 42,
        "keyboard": "qwerty",
        "keyframe": 7,
        "tokens": 1234,
    }


# -- rule 2: our digests and UUIDs --------------------------------------------------------


def test_digests_and_uuids_survive() -> None:
    value = {
        "input_hash": HEX64,
        "output_hash": HEX64,
        "payload_hash": HEX64,
        "hash": HEX64,
        "prev": HEX64,
        "sha256": HEX64,
        "segment_hash": HEX64,
        "parents_hash": [HEX64, HEX64],
        "job": JOB_ID,
        "why": f"job {JOB_ID} beat job-{JOB_ID.upper()}",
    }
    assert redact(value) == value


def test_digest_keys_are_not_exempt_from_secret_keys_nor_digests_elsewhere() -> None:
    out = redact({"token_hash": HEX64, "digest": HEX64, "hash": {"note": HEX64}})
    assert out == {"token_hash": REDACTED, "digest": REDACTED, "hash": {"note": REDACTED}}


def test_digest_keys_still_hide_credentials() -> None:
    assert redact({"hash": "password=hunter2"}) == {"hash": "password=[redacted]"}


# -- rule 3: credentials inside text -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer abc.def-ghi", "Bearer [redacted]"),
        (
            "curl -H 'Authorization: Bearer abc.def-ghi' x",
            "curl -H 'Authorization: Bearer [redacted]' x",
        ),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: Basic [redacted]"),
        ("auth bearer eyJ0eXAiOiJKV1Qi", "auth bearer [redacted]"),
        ("the bearer of bad news, basic usage", "the bearer of bad news, basic usage"),
        ("GET /v1/x?api_key=XYZ&x=1", "GET /v1/x?api_key=[redacted]&x=1"),
        (
            "url=https://h/cb?access_token=abc123&state=s",
            "url=https://h/cb?access_token=[redacted]&state=s",
        ),
        ("password: hunter2 (rotated)", "password: [redacted] (rotated)"),
        ("--db-password=hunter2 --verbose", "--db-password=[redacted] --verbose"),
        (
            '{"password": "correct horse", "user": "bob"}',
            '{"password": "[redacted]", "user": "bob"}',
        ),
        ("{'token': 'abc'}", "{'token': '[redacted]'}"),
        ('{\\"secret\\": \\"s p a c e\\"}', '{\\"secret\\": \\"[redacted]\\"}'),
        ('password: "unclosed quote', 'password: "[redacted] quote'),
        ('password: ""', 'password: ""'),
        ("X-Api-Key: abc123", "X-Api-Key: [redacted]"),
        ("Cookie: theme=dark; sid=31d4c0ffee", "Cookie: [redacted]"),
        ("Set-Cookie: sid=31d4c0ffee; Path=/", "Set-Cookie: [redacted]"),
        ("postgres://bob:s3cr3t@db:5432/jobs", "postgres://bob:[redacted]@db:5432/jobs"),
        ("max_tokens=512 tokens: 40 tokenizer=bpe", "max_tokens=512 tokens: 40 tokenizer=bpe"),
        ("monkey_id=7 keyboard: us", "monkey_id=7 keyboard: us"),
    ],
)
def test_credentials_inside_text(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact([text]) == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HEX40, REDACTED),
        (f"commit {HEX40}.", f"commit {REDACTED}."),
        (f"sha256:{HEX64}", f"sha256:{REDACTED}"),
        ("0123456789abcdef0123456789abcdef", REDACTED),  # 32 hex
        ("0123456789abcdef0123456789abcde", "0123456789abcdef0123456789abcde"),  # 31 hex
        (f"key {B64_SECRET} end", f"key {REDACTED} end"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc9a8Xk2Q7", REDACTED),
        ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", REDACTED),
        ("aGVsbG8gd29ybGQ=", "aGVsbG8gd29ybGQ="),  # too short to be a key
    ],
)
def test_hex_and_base64_runs(text: str, expected: str) -> None:
    assert redact({"note": text}) == {"note": expected}


@pytest.mark.parametrize(
    "text",
    [
        "https://github.com/Owner/Repo2/blob/main/src/Module/File.py",
        "test_redact_property_injected_secret_never_survives_2",
        "finished at 2024-01-02T03:04:05.123456+00:00, 3/4 of the jobs, ratio 1/2",
        "sheratan/analytics/reader/module2/SubPackage3/x.py",
        "the quick brown fox jumps over the lazy dog " * 5,
    ],
)
def test_ordinary_text_is_untouched(text: str) -> None:
    assert redact(text) == text
    assert redact(text, workspace=WS) == text


# -- rule 4: paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/ws/src/a.py", "src/a.py"),
        ("/ws", "."),
        ("/ws/", "./"),
        ("error in /ws/src/a.py:12: boom", "error in src/a.py:12: boom"),
        ("see /ws/src/a.py.", "see src/a.py."),
        ("cwd=/ws/build", "cwd=build"),
        ('open("/ws/x.txt")', 'open("x.txt")'),
        ("/etc/passwd", f"{OUTSIDE_WORKSPACE}passwd"),
        ("/ws/../etc/shadow", f"{OUTSIDE_WORKSPACE}shadow"),
        ("/wsx/a.py", f"{OUTSIDE_WORKSPACE}a.py"),
        ("/ws/a/../b", "b"),
        ("https://host/ws/a/b", "https://host/ws/a/b"),
        ("file:///ws/a", "file:///ws/a"),
        ("3/4 and 2024/01/02", "3/4 and 2024/01/02"),
        ("and/or", "and/or"),
    ],
)
def test_paths_relative_to_the_workspace(text: str, expected: str) -> None:
    assert redact(text, workspace=WS) == expected
    assert redact({"why": [text]}, workspace=WS) == {"why": [expected]}


def test_without_a_workspace_paths_stay() -> None:
    text = "read /home/alice/project/src/a.py and /etc/hosts"
    assert redact(text) == text


def test_workspace_is_normalised() -> None:
    assert redact("/ws/src/a.py", workspace=Path("/ws/./")) == "src/a.py"
    assert redact("/a/b", workspace=Path("/")) == "a/b"


# -- rule 5: the cut -----------------------------------------------------------------------


def test_long_strings_are_cut_with_a_marker() -> None:
    assert redact("x" * MAX_CHARS) == "x" * MAX_CHARS
    assert redact("x" * (MAX_CHARS + 1234)) == "x" * MAX_CHARS + "…[cut 1234 chars]"
    assert redact("abcdefghijklmnop", max_chars=10) == "abcdefghij…[cut 6 chars]"
    assert redact({"k": ["y" * 50]}, max_chars=20) == {"k": ["y" * 20 + "…[cut 30 chars]"]}


def test_the_cut_counts_after_redaction_and_never_shows_half_a_secret() -> None:
    text = "a " * 5 + HEX40 + " tail"
    out = redact(text, max_chars=20)
    assert out == "a a a a a [redacted]…[cut 5 chars]"
    assert not any(HEX40[i : i + 8] in out for i in range(33))


def test_the_cut_does_not_break_a_redacted_value() -> None:
    out = redact('password: "hunter2" and more', max_chars=16)
    # 'password: "[red' would scrub to a longer unclosed '"[redacted]', so the head shrinks
    assert out == 'password: "…[cut 20 chars]'
    assert redact(out, max_chars=16) == out


def test_a_huge_string_is_cut_without_scanning_all_of_it() -> None:
    text = ("token=abc /ws/a.py " * 200_000) + HEX40
    out = redact(text, workspace=WS)
    match = CUT.search(out)
    assert match is not None
    assert len(out) - len(match.group()) <= MAX_CHARS
    assert "abc" not in out
    assert "/ws" not in out


def test_max_chars_below_a_placeholder_is_refused() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        redact("x", max_chars=len(REDACTED) - 1)


# -- shape of the output -----------------------------------------------------------------


def test_input_is_not_mutated_and_tuples_become_lists() -> None:
    value = {"a": ("x", {"token": "t"}), "b": [1, 2.5, True, None]}
    snapshot = json.dumps(value)
    out = redact(value)
    assert json.dumps(value) == snapshot
    assert out == {"a": ["x", {"token": REDACTED}], "b": [1, 2.5, True, None]}


def test_other_objects_become_plain_json() -> None:
    job = uuid.UUID(JOB_ID)
    out = redact(
        {
            "job": job,
            "at": datetime(2024, 1, 2, tzinfo=UTC),
            "file": Path("/ws/src/a.py"),
            "raw": b"Bearer abc.def-ghi",
            1: "one",
        },
        workspace=WS,
    )
    assert out == {
        "job": JOB_ID,
        "at": "2024-01-02T00:00:00Z",
        "file": "src/a.py",
        "raw": "Bearer [redacted]",
        "1": "one",
    }


def test_secrets_in_keys_are_hidden_and_colliding_keys_kept_apart() -> None:
    other = HEX40[::-1]
    out = redact({HEX40: 1, other: 2, "plain": 3})
    assert out == {REDACTED: 1, f"(2) {REDACTED}": 2, "plain": 3}
    assert redact(out) == out


def test_nesting_is_bounded() -> None:
    value: Any = "leaf"
    for _ in range(MAX_DEPTH + 5):
        value = [value]
    out = redact(value)
    depth = 0
    while isinstance(out, list):
        out = out[0]
        depth += 1
    assert depth == MAX_DEPTH
    assert out == TOO_DEEP


# -- properties ----------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Pieces of text that exercise every rule and the places where rules meet.
FRAGMENTS = [
    "Bearer ",
    "basic ",
    "Authorization: ",
    "Cookie: ",
    "token",
    "password",
    "api_key",
    "Key",
    "input_hash",
    "=",
    ": ",
    ":",
    "&",
    "?",
    "@",
    '"',
    "'",
    "\\",
    '\\"',
    " ",
    "\n",
    "-",
    "_",
    ".",
    "..",
    "/",
    "/ws",
    "/ws/",
    "/etc/",
    "https://",
    "user:pw@",
    REDACTED,
    OUTSIDE_WORKSPACE,
    "…[cut 12 chars]",
    " chars]",
    "(2) ",
    "eyJhbGciOi.",
    HEX40,
    HEX40[:16],
    JOB_ID,
    JOB_ID[:9],
    B64_SECRET,
    "dGhpcyBp",
    "A1b2C3d4E5f6",
    "3/4",
    "2024-01-02T03:04:05Z",
]
TRICKY_TEXT = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=10).map(
    "".join
)
KEYS = st.one_of(
    TRICKY_TEXT,
    st.sampled_from(["note", "why", "hash", "prev", "token", "tokens", "monkey_id", "headers"]),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    TRICKY_TEXT,
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=16,
)
WORKSPACES = st.sampled_from([None, WS, Path("/")])
LIMITS = st.one_of(st.just(MAX_CHARS), st.integers(min_value=len(REDACTED), max_value=60))


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [key, *strings_in(item)]]
    return []


@PROPERTY_SETTINGS
@given(JSON_VALUES, WORKSPACES, LIMITS)
def test_redact_is_idempotent_total_and_bounded(
    value: Any, workspace: Path | None, max_chars: int
) -> None:
    once = redact(value, workspace=workspace, max_chars=max_chars)
    assert redact(once, workspace=workspace, max_chars=max_chars) == once
    json.dumps(once)  # plain JSON
    for text in strings_in(once):
        marker = CUT.search(text)
        body = text[: marker.start()] if marker else text
        assert len(body) <= max_chars, text


@PROPERTY_SETTINGS
@given(
    st.text(alphabet="0123456789abcdef", min_size=40, max_size=40),
    TRICKY_TEXT,
    TRICKY_TEXT,
    st.sampled_from(["value", "item", "key", "nested"]),
    JSON_VALUES,
    WORKSPACES,
)
def test_an_injected_hex_token_never_survives(
    token: str, before: str, after: str, where: str, noise: Any, workspace: Path | None
) -> None:
    text = before + token + after
    placed: dict[str, Any] = {
        "value": {"note": text, "noise": noise},
        "item": {"log": [noise, text]},
        "key": {text: noise},
        "nested": {"a": [{"b": {"why": text}}], "noise": noise},
    }
    out = redact(placed[where], workspace=workspace)
    assert token not in dumped(out)


SECRET_CORES = [
    ["token"],
    ["password"],
    ["passwd"],
    ["secret"],
    ["api", "key"],
    ["apikey"],
    ["private", "key"],
    ["access", "tokens"],
    ["authorization"],
    ["cookie"],
    ["credentials"],
]
AFFIXES = st.lists(
    st.sampled_from(["my", "db", "x", "client", "primary", "v2", "user"]), max_size=2
)


@st.composite
def secret_key_names(draw: st.DrawFn) -> str:
    words = draw(AFFIXES) + draw(st.sampled_from(SECRET_CORES)) + draw(AFFIXES)
    style = draw(st.sampled_from(["_", "-", ".", "camel", "upper", "title-dash"]))
    if style == "camel":
        return words[0] + "".join(word.capitalize() for word in words[1:])
    if style == "upper":
        return "_".join(words).upper()
    if style == "title-dash":
        return "-".join(word.capitalize() for word in words)
    return style.join(words)


SECRET_VALUES = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
    min_size=8,
    max_size=30,
)


@PROPERTY_SETTINGS
@given(secret_key_names(), SECRET_VALUES, JSON_VALUES)
def test_a_value_under_a_secret_key_never_survives(key: str, secret: str, noise: Any) -> None:
    assert is_secret_key(key)
    assume(secret not in dumped({key: REDACTED, "noise": redact(noise)}))
    payloads = [
        {key: secret, "noise": noise},
        {"outer": [{key: {"deep": [secret]}}], "noise": noise},
        {"log": f"{key}={secret}", "noise": noise},
        {"log": [f"{key}: {secret} next"], "noise": noise},
        {"log": f'{{"{key}": "{secret}"}}', "noise": noise},
    ]
    for payload in payloads:
        assert secret not in dumped(redact(payload)), payload
