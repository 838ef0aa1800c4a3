"""Redaction at the source of the views: DuckDB's prefilter never lets a secret through.

DuckDB sends a line's data to the Python redactor only when the RE2 hint matches. The hint
must be a superset: whenever ``redact_source`` would change a line, the hint matches it.
Hypothesis builds data with secrets of every kind under every kind of key, inside text and
JSON escapes, beside our own structure (digests, action keys), and checks exactly that.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sheratan.analytics.patterns import source_hint, structure_sql_pattern
from sheratan.analytics.redact import REDACTED, redact_source


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


def flagged(con: duckdb.DuckDBPyConnection, text: str) -> bool:
    row = con.execute(
        "SELECT regexp_matches(regexp_replace(?, ?, '', 'g'), ?)",
        [text, structure_sql_pattern(), source_hint()],
    ).fetchone()
    assert row is not None
    return bool(row[0])


SECRET_SAMPLES = (
    "AKIAZ7Q4T2M9XW3VB6PN",
    "ASIAQWERTYUIOPASDFGH",
    "ghp_R4nd0mT0k3nAbCdEfGhIjKlMnOpQrStUv1234",
    "gho_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnop",
    "xoxp-2741983650-QwErTyUiOp",
    "sk_test_51HqLmZ7c2VbN8xR4tPq",
    "rk_live_0000000000aaaa",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJvcGVyYXRvciJ9.Zm9vYmFy",
    "-----BEGIN PRIVATE KEY-----\nMIIEow\n-----END PRIVATE KEY-----",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz",
    "Bearer tok-7Hq2Lp9Xw4Zr8Kd1",
    "basic dXNlcjpwYXNzd29yZA==",
    "password=hunter2",
    "api_key: kq93",
    '"token": "t0k"',
    "key=abc",
    "Cookie: sid=abc",
    "https://user:pw@example.com/x",
    "0123456789abcdef0123456789abcdef01",
    "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4",
)
KEYS = (
    "note", "api_key", "apiKey", "X-Api-Key", "password", "Authorization", "key", "_key",
    "action_key", "tokens", "access_tokens", "monkey_id", "input_hash", "policy_id", "keyboard",
)  # fmt: skip
ACTION_KEYS = ("ROUTE:fast-cheap", "ABORT", "RETRY:same_worker", "QUARANTINE:worker")

words = st.text(alphabet=string.ascii_letters + string.digits + " _-:=/.\n\t\"'", max_size=20)
texts = st.lists(st.one_of(words, st.sampled_from(SECRET_SAMPLES)), max_size=4).map("".join)
scalars = st.one_of(
    texts,
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.sampled_from(ACTION_KEYS),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), words), inner, max_size=4),
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(data=st.dictionaries(st.one_of(st.sampled_from(KEYS), words), values, max_size=5))
def test_the_hint_flags_every_line_the_redactor_changes(
    con: duckdb.DuckDBPyConnection, data: dict[str, Any]
) -> None:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if json.loads(redact_source(text)) != data:
        assert flagged(con, text), text


def test_our_structure_is_neither_flagged_nor_changed(con: duckdb.DuckDBPyConnection) -> None:
    """A decision line's digests and action keys: the common line costs no Python call."""
    data = {
        "candidates": [{"action_id": "f653:0", "type": "ROUTE", "key": "ROUTE:fast-cheap"}],
        "input_hash": "2f5a24ac07344b8e7673029b4e6d51eb7dc43b5ec16a60f88e354e62bf90fe66",
        "policy_id": "bcddc6d0cf21234fac57d2f4ec708d0e",
        "action_key": "ROUTE:api",
        "trace_id": "726c1029-94ca-4ca8-873d-08cde818ac7d",
        "reason": "ROUTE:fast-cheap with probability 0.867 (select 0.858 = mean 0.000)",
    }
    text = json.dumps(data, separators=(",", ":"))
    assert not flagged(con, text)
    assert json.loads(redact_source(text)) == data


def test_a_secret_beside_the_structure_is_hidden(con: duckdb.DuckDBPyConnection) -> None:
    data = {"key": "hunter2", "input_hash": "AKIAZ7Q4T2M9XW3VB6PN", "note": "ok"}
    text = json.dumps(data)
    assert flagged(con, text)
    assert json.loads(redact_source(text)) == {
        "key": REDACTED,
        "input_hash": REDACTED,
        "note": "ok",
    }
