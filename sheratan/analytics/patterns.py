"""The redaction patterns (``policies/redaction.json``), loaded once, and their SQL prefilter.

Users extend the file: more secret words and word pairs for key names, more value patterns
(an internal token format, say). Value patterns must be valid both in Python's ``re`` (the
redactor) and in RE2 (DuckDB's prefilter, see ``source_hint``): no look-arounds, no
back-references. Loading checks the Python side; DuckDB's side is checked when a session
first uses the hint.

Why not a secret detector library instead of hand-written patterns: detect-secrets 1.5
(its default plugins through ``scan_line``) took 3,454 us a line on our decision lines
(290 lines/s, 2026-12 on the bench machine), and flagged every UUID and digest; the views
parse a 64 MB segment (120,000 lines) in 0.5 s. It would turn a cache build of a 1M-decision
log into an hour. Its plugins' patterns (AWS, GitHub, Slack, Stripe, JWT, private keys) are
what ``value_patterns`` holds.
"""

from __future__ import annotations

import functools
import re
from typing import get_args

import msgspec

from events.decisions import ActionType
from sheratan.decide.policy import PolicyError
from sheratan.packaged import policy_file

REDACTION_FILE = "redaction.json"


class RedactionPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What names a secret, and what a secret value looks like."""

    secret_words: frozenset[str]
    secret_pairs: frozenset[tuple[str, str]]
    digest_keys: frozenset[str]
    value_patterns: dict[str, str]


@functools.cache
def redaction_policy() -> RedactionPolicy:
    """The patterns of ``policies/redaction.json``, read and checked once per process."""
    path = policy_file(REDACTION_FILE)
    try:
        policy = msgspec.json.decode(path.read_bytes(), type=RedactionPolicy)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError) as error:
        msg = f"{path}: {error}"
        raise PolicyError(msg) from None
    for name, pattern in policy.value_patterns.items():
        try:
            re.compile(pattern)
        except re.error as error:
            msg = f"{path}: value_patterns.{name} is not a regular expression: {error}"
            raise PolicyError(msg) from None
    return policy


@functools.cache
def value_pattern() -> re.Pattern[str]:
    """Every value pattern of the file as one expression: a match is a secret."""
    patterns = redaction_policy().value_patterns.values()
    return re.compile("|".join(f"(?:{p})" for p in patterns))


#: Action types: the ``key`` of a decision candidate (``ROUTE:fast-cheap``) is ours, not a key.
ACTION_KEY = re.compile(rf"(?:{'|'.join(get_args(ActionType))})(?::[^\"\\\x00-\x1f]*)?\Z")

#: RE2 (DuckDB) version of the structure the source redactor never changes: our digests
#: (hex under a digest key) and candidates' action keys. ``source_hint`` runs after these
#: pairs are cut out of a line's JSON text, so that they do not send every line to Python.
STRUCTURE_SQL_PATTERN = (
    r'"(?:[A-Za-z0-9_]*_hash|{digests})":"[0-9a-f]*"'
    r'|"key":"(?:{actions})(?::[^"\\]*)?"'
)


def structure_sql_pattern() -> str:
    policy = redaction_policy()
    digests = "|".join(re.escape(k) for k in sorted(policy.digest_keys))
    return STRUCTURE_SQL_PATTERN.format(digests=digests, actions="|".join(get_args(ActionType)))


@functools.cache
def source_hint() -> str:
    """An RE2 expression matching the JSON text of every ``data`` the redactor would change.

    A superset by construction: secret words and word pairs as plain substrings (any case,
    any separator), a key made of just ``key``, the scheme and cookie words, URL passwords,
    runs long enough for the hex and base64 heuristics, and each value pattern without its
    word boundaries (JSON escapes such as ``\\n`` put a letter before a token). False alarms
    only cost a Python call; a miss would leak, so tests check the superset property.
    """
    policy = redaction_policy()
    words = sorted(policy.secret_words | {"bearer", "basic", "cookie"})
    pairs = [rf"{re.escape(a)}[^a-z0-9]*{re.escape(b)}" for a, b in sorted(policy.secret_pairs)]
    parts = [
        "(?i:" + "|".join([*map(re.escape, words), *pairs]) + ")",
        r'(?i:"[^a-z0-9"]*key[^a-z0-9"]*")',
        r"""(?i:(?:^|[^a-z0-9_.-])[_.-]*key[_.-]*\\?["']?[ \t]*[:=])""",
        r"://[^/\s@]*@",
        "[0-9A-Fa-f]{32}",
        "[A-Za-z0-9+/_-]{40}",
        *(p.replace(r"\b", "") for p in policy.value_patterns.values()),
    ]
    return "|".join(f"(?:{p})" for p in parts)
