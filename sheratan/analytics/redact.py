"""Redaction for every read path (why answers, audit reports): decision traces never leak secrets.

The ledger keeps what workers and policies wrote, verbatim; redaction happens on the way out,
so the facts stay intact and the rules can improve without rewriting history. The SQL views
hold ``redact_source``'s form of each event's data (see ``sheratan.analytics.source``), and
every read path passes its JSON through ``redact`` once more, at the end (paths, cuts):

    print(json.dumps(redact(answer, workspace=home.workspace)))

What it does, in order of trust:

1. A key that names a secret (``api_key``, ``Authorization``, ``X-Api-Key``, ``password``)
   loses its whole value, whatever its type: the key is the strongest evidence there is.
2. Every string (values, list items, keys, text inside longer text) is scrubbed of what looks
   like a credential: the value patterns of ``policies/redaction.json`` (AWS access key ids,
   GitHub, Slack and Stripe tokens, JWTs, private-key blocks, and what users add),
   ``Bearer``/``Basic`` credentials, ``key=value`` and ``key: value`` pairs whose key names a
   secret, cookie headers, passwords in URLs, runs of 32 or more hex characters, and
   random-looking base64 runs of 40 or more characters. Our own
   digests (under ``input_hash``, ``prev``, ... keys) and UUIDs are spared these value
   heuristics, since hiding them would hide the ledger's structure and help no one.
3. Absolute paths are shown relative to the workspace, or as ``[outside workspace]/<name>``:
   a reader learns which file without learning the machine's layout.
4. Strings are cut to ``max_chars`` with a ``…[cut N chars]`` marker.

The output is plain JSON, a new value (the input is never mutated), and ``redact`` is
idempotent: redacting a redacted answer changes nothing, so layers may redact again freely.
Misses are possible (a secret under an innocent key, short and word-like); over-redaction is
the accepted price of the heuristics (a ``token_count`` key, a long random-looking id).
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import posixpath
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from sheratan.analytics.patterns import ACTION_KEY, redaction_policy, value_pattern

__all__ = [
    "MAX_CHARS",
    "MAX_DEPTH",
    "OUTSIDE_WORKSPACE",
    "REDACTED",
    "TOO_DEEP",
    "is_secret_key",
    "redact",
    "redact_source",
]

#: What a secret becomes.
REDACTED = "[redacted]"

#: The longest string a read path shows (a cut string also carries its marker).
MAX_CHARS = 2000

#: Containers nested deeper than this are shown as ``TOO_DEEP``: recursion stays bounded.
MAX_DEPTH = 64

#: What a container beyond ``MAX_DEPTH`` becomes. No longer than ``REDACTED``, so that
#: ``max_chars >= len(REDACTED)`` bounds every placeholder as well.
TOO_DEEP = "[too deep]"

#: An absolute path outside the workspace keeps only its last part, after this prefix.
OUTSIDE_WORKSPACE = "[outside workspace]/"

#: A scrubbed string is scrubbed again until it stops changing (one rule's replacement may
#: expose another rule's match); this many passes at most. Real text settles in one or two.
_MAX_SCRUB_PASSES = 4

#: Long strings are scrubbed only this far past the cut (see ``_Redactor.text``); longer than
#: any match the end of the scanned window can truncate (a base64 run is redacted from 40).
_SCAN_MARGIN_CHARS = 1024

#: Minimum lengths of the value heuristics.
_MIN_HEX_CHARS = 32
_MIN_BASE64_CHARS = 40

#: A run is random-looking when at least one in this many adjacent pairs of its letters and
#: digits changes class (upper, lower, digit). Random base64 and base62 keys change class at
#: about 0.6 of pairs (never below 0.25 in 20,000 samples); paths, URLs and identifiers such
#: as ``com/Owner/Repo2/blob/main/src/Module/File`` or ``snake_case_names_2`` stay near 0.1.
_RANDOM_PAIRS_PER_CHANGE = 6

# -- secret key names ------------------------------------------------------------------

#: Words of a key: acronyms (``API`` in ``APIKey``), capitalised or lower-case words, digits.
#: Anything else separates words.
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """Whether ``key`` names a secret, so that its whole value must be hidden.

    Word-aware rather than substring matching, because substrings hide secrets poorly and
    data well: ``monkey_id``, ``keyboard``, ``tokenizer`` and ``tokens`` are not secrets,
    while ``apiKey``, ``X-Api-Key``, ``PRIVATE_KEY`` and ``refresh_tokens`` are. Words are
    split on non-alphanumerics, camelCase and letter/digit boundaries, then lower-cased. A key
    is secret if a word is a secret word (``token``, ``password``, ``cookie``, ...), if two
    adjacent words form a secret pair (``api key``, ``access tokens``: ``tokens`` alone is an
    LLM token count, ``key`` alone a sort key), or if it is just ``key``. The words and pairs
    are those of ``policies/redaction.json``. Cached: the same few key names recur.
    """
    policy = redaction_policy()
    words = [word.lower() for word in _WORD.findall(key)]
    if words == ["key"]:
        return True
    if any(word in policy.secret_words for word in words):
        return True
    return any(pair in policy.secret_pairs for pair in itertools.pairwise(words))


def _is_digest_key(key: str) -> bool:
    """Keys whose values are our own digests: a hex heuristic would only hide structure."""
    return key in redaction_policy().digest_keys or key.endswith("_hash")


def _is_structure(key: str, value: Any) -> bool:
    """A decision candidate's ``key`` (``ROUTE:fast-cheap``): an action, not a credential."""
    return key == "key" and isinstance(value, str) and ACTION_KEY.match(value) is not None


# -- string rules ------------------------------------------------------------------------

#: Characters of a path segment: not whitespace, quotes, brackets, separators of prose or of
#: ``key=value``, nor URL query and fragment marks.
_PATH_SEGMENT = r"[^\s/\"'`<>|,;(){}\[\]\\=?#]+"

#: An absolute path starts at the start of the text or after whitespace, a quote, an opening
#: bracket, ``=``, ``:`` or a list separator, never after a letter or digit (``3/4``,
#: ``and/or``, ``https://host/a/b``: the ``/`` after ``//`` or ``host`` is no path start) nor
#: after ``]`` (so ``[outside workspace]/a`` is not a path the second time round).
_ABS_PATH = re.compile(rf"(?<![^\s\"'`=(<\[{{,;|>:])(?:/{_PATH_SEGMENT})+")

#: Punctuation that ends a sentence rather than a path: ``see /ws/a.py.`` names ``a.py``.
_TRAILING_PUNCTUATION = ".,:;!?"

_UUID = re.compile(
    r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-"
    r"[0-9A-Fa-f]{12}(?![0-9A-Fa-f])"
)
_HEX_RUN = re.compile(rf"[0-9A-Fa-f]{{{_MIN_HEX_CHARS},}}")

#: A run of base64 or base64url characters long enough for either value heuristic, with its
#: ``=`` padding. Maximal: the characters around it are not in the alphabet.
_RUN = re.compile(rf"[A-Za-z0-9+/_\-]{{{_MIN_HEX_CHARS},}}={{0,2}}")

#: ``Bearer <credential>`` or ``Basic <credential>`` anywhere in text.
_SCHEME_CREDENTIAL = re.compile(
    r"(?<![A-Za-z0-9])(?P<scheme>(?i:bearer|basic)[ \t]+)(?P<cred>[A-Za-z0-9._~+/\-]+=*)"
)

#: A ``Cookie:`` or ``Set-Cookie:`` header: every pair in it is secret, whatever its name.
_COOKIE_HEADER = re.compile(
    r"(?<![A-Za-z0-9_\-])(?P<head>(?i:set-)?(?i:cookie)[ \t]*:[ \t]*)(?P<val>[^\s\"'][^\r\n\"']*)"
)

#: ``scheme://user:password@host``: the password goes, the user and host stay.
_URL_PASSWORD = re.compile(r"(?P<head>://[^/\s:@\"'<>]+:)(?P<val>[^/\s@\"'<>]+)@")

#: The ``key=`` or ``key: `` of a pair, with an optionally quoted key (``"password": "x"``, also
#: JSON-escaped inside a string) and an HTTP scheme before the value, which is kept
#: (``Authorization: Bearer x``). The value is matched apart, only after a secret key.
_PAIR_KEY = re.compile(
    r"(?<![A-Za-z0-9_.\-])(?P<key>[A-Za-z0-9_.\-]+)(?:\\?[\"'])?[ \t]*[:=][ \t]*"
    r"(?:(?i:bearer|basic)[ \t]+)?"
)

#: A pair's value: a quoted string (also JSON-escaped), an unclosed quote, or a bare run up
#: to whitespace, a quote or ``&`` (so ``?api_key=X&x=1`` keeps ``&x=1``).
_PAIR_VALUE = re.compile(
    r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'"
    r"|\\\"(?:(?!\\\").)*\\\"|\\'(?:(?!\\').)*\\'"
    r"|(?:\\?[\"'])?[^\s\"'&]+"
)

#: Cheap gate: text without any of these cannot hold a credential pattern (rule 3 apart
#: from the run heuristics, which are gated by length).
_CREDENTIAL_HINT = re.compile(r"[:=@]|(?i:bearer|basic)")

_CUT_MARKER = re.compile(r"…\[cut (?P<n>[0-9]{1,18}) chars\]\Z")


def _cut_marker(chars: int) -> str:
    return f"…[cut {chars} chars]"


def _class_changes(run: str) -> int:
    """How many adjacent letter/digit pairs of ``run`` change class (upper, lower, digit)."""
    changes = 0
    previous = ""
    for char in run:
        if "a" <= char <= "z":
            kind = "l"
        elif "A" <= char <= "Z":
            kind = "u"
        elif "0" <= char <= "9":
            kind = "d"
        else:
            previous = ""
            continue
        if previous and kind != previous:
            changes += 1
        previous = kind
    return changes


def _looks_like_base64_secret(piece: str) -> bool:
    """Long, letters and digits mixed, and random-looking (see ``_RANDOM_PAIRS_PER_CHANGE``).

    Randomness is what tells a key from a long URL path or identifier of the same alphabet.
    """
    core = piece.rstrip("=")
    if len(core) < _MIN_BASE64_CHARS:
        return False
    if not any(c.isdigit() for c in core) or not any(c.isalpha() for c in core):
        return False
    return _class_changes(core) * _RANDOM_PAIRS_PER_CHANGE >= len(core)


def _redact_piece(piece: str) -> str:
    if _looks_like_base64_secret(piece):
        return REDACTED
    if len(piece) >= _MIN_HEX_CHARS:
        return _HEX_RUN.sub(REDACTED, piece)
    return piece


def _redact_run(match: re.Match[str]) -> str:
    """A run without its UUIDs, each piece between them judged on its own."""
    run = match.group()
    if "-" not in run or not _UUID.search(run):
        return _redact_piece(run)
    parts: list[str] = []
    start = 0
    for uuid in _UUID.finditer(run):
        parts.append(_redact_piece(run[start : uuid.start()]))
        parts.append(uuid.group())
        start = uuid.end()
    parts.append(_redact_piece(run[start:]))
    return "".join(parts)


def _redact_scheme_credential(match: re.Match[str]) -> str:
    """Only credential-like words: ``the bearer of news``, ``basic usage`` stay readable."""
    cred = match["cred"]
    if len(cred) >= 16 or not cred.isalpha():
        return match["scheme"] + REDACTED
    return match.group()


def _redact_key_values(text: str) -> str:
    """Hide the values of ``key=value`` pairs whose key names a secret.

    Keys are found first and values matched only after a secret key: a pair with an innocent
    key must not swallow the pairs inside its value (``url=https://h/x?api_key=X`` holds
    ``api_key=X``), and text such as ``a=a=a=...`` stays linear.
    """
    parts: list[str] = []
    done = 0
    pair = _PAIR_KEY.search(text)
    while pair is not None:
        resume = pair.end()
        value = _PAIR_VALUE.match(text, resume) if is_secret_key(pair["key"]) else None
        if value is not None:
            resume = value.end()
            replacement = _replace_value(value.group())
            if replacement is not None:
                parts.append(text[done : value.start()])
                parts.append(replacement)
                done = value.end()
        pair = _PAIR_KEY.search(text, resume)
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _replace_value(value: str) -> str | None:
    """``value`` hidden with its quotes kept, or None for an empty string (nothing to hide)."""
    quote = ""
    if value[:2] in ('\\"', "\\'"):
        quote = value[:2]
    elif value[0] in "\"'":
        quote = value[0]
    closed = bool(quote) and len(value) >= 2 * len(quote) and value.endswith(quote)
    if closed and len(value) == 2 * len(quote):
        return None
    return quote + REDACTED + (quote if closed else "")


def _strip_trailing_punctuation(raw: str) -> tuple[str, str]:
    """The path in ``raw`` and the sentence punctuation after it (``..`` stays a path)."""
    last = raw[raw.rfind("/") + 1 :]
    keep = last.rstrip(_TRAILING_PUNCTUATION)
    if not keep:  # "." or "..", or only punctuation
        keep = last.rstrip(_TRAILING_PUNCTUATION.replace(".", ""))
    end = len(raw) - len(last) + len(keep)
    if not keep:
        end -= 1  # the segment was all punctuation: the path ends before its "/"
    return raw[:end], raw[end:]


def _relative_path(match: re.Match[str], workspace: str) -> str:
    path, tail = _strip_trailing_punctuation(match.group())
    if not path:
        return match.group()
    norm = posixpath.normpath(path)  # so that /ws/../etc/passwd is not inside /ws
    if workspace == "/":
        return (norm.lstrip("/") or ".") + tail
    if norm == workspace:
        return "." + tail
    if norm.startswith(workspace + "/"):
        return norm[len(workspace) + 1 :] + tail
    return OUTSIDE_WORKSPACE + posixpath.basename(norm) + tail


def _scrub_once(text: str, workspace: str | None, heuristics: bool) -> str:
    """One pass of the string rules; each is gated so plain short text costs a scan or two."""
    if workspace is not None and "/" in text:
        text = _ABS_PATH.sub(lambda match: _relative_path(match, workspace), text)
    text = value_pattern().sub(REDACTED, text)
    if heuristics and len(text) >= _MIN_HEX_CHARS:
        text = _RUN.sub(_redact_run, text)
    if _CREDENTIAL_HINT.search(text):
        text = _SCHEME_CREDENTIAL.sub(_redact_scheme_credential, text)
        text = _COOKIE_HEADER.sub(lambda match: match["head"] + REDACTED, text)
        text = _redact_key_values(text)
        if "@" in text:
            text = _URL_PASSWORD.sub(lambda match: match["head"] + REDACTED + "@", text)
    return text


def _scrub(text: str, workspace: str | None, heuristics: bool) -> str:
    """The string rules until they change nothing: what makes ``redact`` idempotent.

    A replacement can expose a match (``<hex>token=x`` becomes ``[redacted]token=x``, where
    ``token`` is now a key), so one pass is not always a fixed point. Text that no rule
    touches, the common case, is scanned once.
    """
    for _ in range(_MAX_SCRUB_PASSES):
        scrubbed = _scrub_once(text, workspace, heuristics)
        if scrubbed == text:
            break
        text = scrubbed
    return text


# -- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Redactor:
    """One call's settings, carried down the walk instead of threaded through every helper."""

    workspace: str | None
    max_chars: int

    def text(self, text: str, heuristics: bool = True) -> str:
        """A scrubbed string of at most ``max_chars`` characters plus a cut marker.

        Cutting happens after scrubbing, so a secret across the cut is seen whole; the kept
        head is scrubbed again (a cut can turn ``"[redacted]"`` into an unclosed quote) and
        shortened until it fits. A string that already ends in a marker keeps it and has only
        its body scrubbed and cut: that is what makes cutting idempotent.

        Only a window of a long string is scrubbed, widened until its scrubbed form reaches
        ``_SCAN_MARGIN_CHARS`` past the cut: nothing after the cut is shown, and a match
        truncated by the window's end is shorter than the margin, so it is cut away too. A
        multi-megabyte log then costs what its first few kilobytes cost. The unscanned tail is
        counted in the marker as raw characters.
        """
        marker = _CUT_MARKER.search(text) if text.endswith(" chars]") else None
        body, tail, cut_before = text, "", 0
        if marker is not None:
            body, tail, cut_before = text[: marker.start()], marker.group(), int(marker["n"])
        window = 2 * self.max_chars + _SCAN_MARGIN_CHARS
        while True:
            scrubbed = _scrub(body[:window], self.workspace, heuristics)
            if window >= len(body) or len(scrubbed) >= self.max_chars + _SCAN_MARGIN_CHARS:
                break
            window *= 4
        unscanned = max(0, len(body) - window)
        if not unscanned and len(scrubbed) <= self.max_chars:
            return scrubbed + tail
        keep = self.max_chars
        while True:
            head = _scrub(scrubbed[:keep], self.workspace, heuristics)
            if len(head) <= self.max_chars:
                break
            keep = max(0, keep - (len(head) - self.max_chars))
        return head + _cut_marker(cut_before + len(scrubbed) - keep + unscanned)

    def value(self, value: Any, depth: int, heuristics: bool = True) -> Any:
        """``heuristics`` is False only for strings (and lists of them) under digest keys."""
        if value is None or isinstance(value, bool | int | float):
            return value
        if isinstance(value, str):
            return self.text(value, heuristics)
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, Mapping):
            return self.mapping(value, depth)
        if isinstance(value, list | tuple):
            return [self.value(item, depth + 1, heuristics) for item in value]
        if isinstance(value, bytes | bytearray | memoryview):
            return self.text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, os.PathLike):
            return self.text(str(os.fspath(value)))
        try:  # Structs, datetimes, UUIDs, sets...: the codec's own plain form
            plain = msgspec.to_builtins(value, str_keys=True)
        except (TypeError, ValueError, OverflowError):
            return self.text(str(value))
        return self.value(plain, depth)

    def mapping(self, mapping: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        """Keys are scrubbed like any text (a token can be a key); if two keys become one,
        the later is prefixed ``(2) ``, ``(3) ``... so no entry silently disappears.
        """
        out: dict[str, Any] = {}
        for raw_key, item in mapping.items():
            raw = _key_text(raw_key)
            key = self.text(raw)
            number = 2
            while key in out and number <= len(mapping) + 1:
                key = self.text(f"({number}) {raw}")
                number += 1
            if key in out:  # only with absurdly long colliding keys and a tiny max_chars
                continue
            if _is_structure(raw, item) and key == raw:
                out[key] = item
            elif is_secret_key(raw) or is_secret_key(key):
                out[key] = REDACTED
            elif _is_digest_key(raw) and _is_digest_key(key):
                out[key] = self.value(item, depth + 1, heuristics=False)
            else:
                out[key] = self.value(item, depth + 1)
        return out


def _key_text(key: Any) -> str:
    """A mapping key as JSON would write it: ``1``, ``true``, ``null``."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _workspace_text(workspace: Path | None) -> str | None:
    if workspace is None:
        return None
    return posixpath.normpath(posixpath.abspath(os.fspath(workspace)))


def redact(value: Any, *, workspace: Path | None = None, max_chars: int = MAX_CHARS) -> Any:
    """``value`` as plain JSON that is safe to show: secrets hidden, paths relative, cut.

    See the module docstring for the rules. Without ``workspace`` paths are left as they
    are. ``max_chars`` bounds every string (cut strings end in ``…[cut N chars]``, N counting
    scrubbed characters); it may not be below ``len(REDACTED)``, which no placeholder
    exceeds. Tuples become lists, other objects their msgspec builtins or, failing that,
    their ``str``. Idempotent: ``redact(redact(x)) == redact(x)`` for the same arguments.
    """
    if max_chars < len(REDACTED):
        msg = f"max_chars must be at least {len(REDACTED)}, got {max_chars}"
        raise ValueError(msg)
    redactor = _Redactor(_workspace_text(workspace), max_chars)
    return redactor.value(value, 0)


def redact_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], workspace: Path | None = None
) -> list[tuple[Any, ...]]:
    """Query rows (``sql``) made safe to show, cell by cell.

    A column whose name names a secret (``SELECT data->>'api_key' AS api_key``, or the
    expression's own text) is redacted whole; JSON text (DuckDB's JSON columns arrive as
    strings) is decoded and redacted as structure; numbers and times pass as they are. This
    is a guard against showing secrets by accident, not a sandbox: SQL can always transform
    a value past any pattern, and the log itself is the protected thing.
    """
    secret = [is_secret_key(column) for column in columns]
    redactor = _Redactor(_workspace_text(workspace), MAX_CHARS)
    out = []
    for row in rows:
        cells = []
        for hidden, value in zip(secret, row, strict=True):
            if hidden and value is not None:
                cells.append(REDACTED)
            elif isinstance(value, str):
                cells.append(redactor.value(_json_or_text(value), 0))
            elif isinstance(value, dict | list | tuple):
                cells.append(redactor.value(value, 0))
            else:
                cells.append(value)
        out.append(tuple(cells))
    return out


def _json_or_text(value: str) -> Any:
    if value[:1] in ("{", "["):
        try:
            return msgspec.json.decode(value)
        except msgspec.DecodeError:
            pass
    return value


#: The source redactor never cuts and knows no workspace: outputs do both, as asked.
_SOURCE = _Redactor(workspace=None, max_chars=sys.maxsize // 8)


def redact_source(text: str) -> str:
    """The JSON text of an event's ``data`` with every secret hidden: what the views hold.

    Unlike ``redact`` it keeps paths and lengths (outputs relativise and cut, with the
    workspace they are given) and our structure (digests, ids, action keys), so the views'
    joins and statistics are those of the raw log. Since the views never hold the secret, no
    SQL function over them (``upper``, ``reverse``, ``regexp_extract``, comparisons) can
    bring it back.
    """
    return msgspec.json.encode(_SOURCE.value(msgspec.json.decode(text), 0)).decode()
