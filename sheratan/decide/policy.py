"""Policy files (policies/*.json) as validated msgspec Structs: read once at the boundary.

The shipped files are the one source of defaults; the Structs here have none of their own.
A user's scoring.json or gates.json may be partial: it is merged over the shipped file (an
object key by key, a value replaces the shipped one) except that the lists of refusals in
``EXTENDING_LISTS`` are extended, never replaced, so a partial file cannot remove a shipped
refusal. A malformed file is refused with the path of the bad field rather than half-applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import msgspec

from events.decisions import Percentiles, Weights
from projections.workers import RECENT_ATTEMPTS
from sheratan.packaged import policy_file

#: Gate lists a user's file adds to (shipped items first): the refusals always stay.
#: ``allowed_kinds`` is replaced like any value: narrowing it refuses more, and a forbidden
#: kind stays refused whatever the allowlist says.
EXTENDING_LISTS = frozenset(
    {"forbidden_kinds", "forbidden_path_prefixes", "untrusted_zones", "escalation_markers"}
)

P = TypeVar("P")
#: Longest lease term a gates file may set (an hour: a term is meant to be short).
MAX_LEASE_TERM_S = 3600.0


class PolicyError(ValueError):
    """A policy file that does not fit its shape."""


class BaselineDefaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["rolling", "fixed"]
    window: int
    min_observations: int
    latency_ms: Percentiles
    cost: Percentiles

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_observations < 1:
            msg = "baselines.window and baselines.min_observations must be at least 1"
            raise ValueError(msg)


class ScoringPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    weights: Weights
    baselines: BaselineDefaults


class QuarantineEvidence(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a worker's recent record must show before a decision may quarantine it (gate
    G5_evidence): ``consecutive_failures`` failed attempts in a row, or more than
    ``failure_rate`` of its last ``window`` attempts failed (``window`` attempts recorded)."""

    consecutive_failures: int
    window: int
    failure_rate: float

    def __post_init__(self) -> None:
        if not 1 <= self.consecutive_failures <= RECENT_ATTEMPTS:
            msg = f"consecutive_failures must be within 1..{RECENT_ATTEMPTS}"
            raise ValueError(msg)
        if not 1 <= self.window <= RECENT_ATTEMPTS:
            msg = f"window must be within 1..{RECENT_ATTEMPTS}"
            raise ValueError(msg)
        if not 0.0 <= self.failure_rate < 1.0:
            msg = "failure_rate must be within 0..1 (1 excluded: no rate is over it)"
            raise ValueError(msg)


class RetryBackoff(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How long a RETRY waits: ``base_s * factor**retries_before``, at most ``max_s``, less a
    random fraction (up to ``jitter``) so retries of many jobs do not come back in step."""

    base_s: float
    factor: float
    max_s: float
    jitter: float

    def __post_init__(self) -> None:
        if self.base_s < 0 or self.max_s < 0 or self.factor < 1:
            msg = "base_s and max_s must be at least 0, factor at least 1"
            raise ValueError(msg)
        if not 0.0 <= self.jitter <= 1.0:
            msg = "jitter must be within 0..1"
            raise ValueError(msg)


class GatePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allowed_kinds: tuple[str, ...]
    forbidden_kinds: tuple[str, ...]
    forbidden_path_prefixes: tuple[str, ...]
    untrusted_zones: tuple[str, ...]
    escalation_markers: tuple[str, ...]
    heartbeat_timeout_s: float
    quarantine_cooldown_s: float
    ucb_c: float
    epsilon: float
    quarantine_evidence: QuarantineEvidence
    retry_backoff: RetryBackoff
    #: The lease of an attempt on a worker that heartbeats: this long from dispatch, then
    #: extended by its heartbeats, never past the attempt's deadline (its timeout).
    lease_term_s: float
    #: The most open attempts one worker holds (the ``worker_limit`` gate): limits.json's
    #: ``workers.max_attempts``, copied here so every decision records it with its gates.
    #: None (no gate) in policies recorded before limits existed.
    worker_max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.lease_term_s <= MAX_LEASE_TERM_S:
            msg = f"lease_term_s must be over 0 and at most {MAX_LEASE_TERM_S:g} seconds"
            raise ValueError(msg)

    @property
    def known_kinds(self) -> tuple[str, ...]:
        """The kinds a job may have: allowed and not forbidden."""
        return tuple(k for k in self.allowed_kinds if k not in self.forbidden_kinds)


class PriorSeed(msgspec.Struct, frozen=True, kw_only=True):
    visits: int
    mean_score: float
    last_scores: tuple[float, ...] = ()
    risk_gate: bool = True


@dataclass(frozen=True)
class Loaded(Generic[P]):
    """A policy as merged, and where each of its values came from (shown by ``policy show``)."""

    policy: P
    sources: dict[str, str] = field(default_factory=dict)


def _decode(data: bytes, source: str, shape: type[Any]) -> Any:
    try:
        return msgspec.json.decode(data, type=shape)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
        raise PolicyError(f"{source}: {error}") from None
    except RecursionError:
        raise PolicyError(f"{source}: nested too deeply") from None


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except OSError as error:
        raise PolicyError(f"policy file {path}: {error.strerror}") from None


def _shipped(name: str) -> dict[str, Any]:
    return _decode(policy_file(name).read_bytes(), f"policies/{name}", dict[str, Any])


def merge_over(
    shipped: dict[str, Any],
    override: dict[str, Any],
    shipped_source: str,
    override_source: str,
    prefix: str = "",
) -> tuple[dict[str, Any], dict[str, str]]:
    """``override`` merged over ``shipped``; returns the result and each leaf's source.

    The shipped file names every setting, so a key it lacks is a typo: refused, not ignored."""
    unknown = sorted(override.keys() - shipped.keys())
    if unknown:
        msg = f"{override_source}: unknown field `{prefix}{unknown[0]}`"
        raise PolicyError(msg)
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in shipped.keys() | override.keys():
        name = f"{prefix}{key}"
        base, given = shipped.get(key), override.get(key)
        if key not in override:
            merged[key] = base
            sources.update(_leaves(base, name, shipped_source))
        elif isinstance(base, dict) and isinstance(given, dict):
            merged[key], inner = merge_over(
                base, given, shipped_source, override_source, f"{name}."
            )
            sources.update(inner)
        elif key in EXTENDING_LISTS and isinstance(base, list) and isinstance(given, list):
            merged[key] = [*base, *(item for item in given if item not in base)]
            added = any(item not in base for item in given)
            sources[name] = f"{shipped_source} + {override_source}" if added else shipped_source
        else:
            merged[key] = given
            sources.update(_leaves(given, name, override_source))
    return merged, dict(sorted(sources.items()))


def _leaves(value: Any, name: str, source: str) -> dict[str, str]:
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out.update(_leaves(inner, f"{name}.{key}", source))
        return out
    return {name: source}


def load_merged(name: str, path: Path | None, shape: type[P]) -> Loaded[P]:
    """The shipped ``policies/<name>`` with ``path`` merged over it, as ``shape``."""
    shipped, shipped_source = _shipped(name), f"policies/{name}"
    override = _decode(_read(path), str(path), dict[str, Any]) if path is not None else {}
    merged, sources = merge_over(shipped, override, shipped_source, str(path))
    try:
        return Loaded(msgspec.convert(merged, shape), sources)
    except (msgspec.ValidationError, ValueError) as error:
        where = str(path) if path is not None else shipped_source
        raise PolicyError(f"{where}: {error}") from None


def load_scoring_sources(path: Path | None = None) -> Loaded[ScoringPolicy]:
    """The shipped scoring.json with ``path`` merged over it, and each value's source."""
    return load_merged("scoring.json", path, ScoringPolicy)


def load_gates_sources(path: Path | None = None) -> Loaded[GatePolicy]:
    """The shipped gates.json with ``path`` merged over it, and each value's source."""
    return load_merged("gates.json", path, GatePolicy)


def load_scoring(path: Path | None = None) -> ScoringPolicy:
    return load_scoring_sources(path).policy


def load_gates(path: Path | None = None) -> GatePolicy:
    return load_gates_sources(path).policy


def load_prior_seeds(path: Path | None = None) -> dict[str, dict[str, PriorSeed]]:
    """intent -> action key -> seed, from priors.json (its schema_version key is skipped).

    A priors file is a whole set of seeds (regression compares one set against another), so
    a given file replaces the shipped one rather than merging over it."""
    if path is None:
        raw, source = _shipped("priors.json"), "policies/priors.json"
    else:
        raw, source = _decode(_read(path), str(path), dict[str, Any]), str(path)
    raw.pop("schema_version", None)
    try:
        return msgspec.convert(raw, dict[str, dict[str, PriorSeed]])
    except msgspec.ValidationError as error:
        raise PolicyError(f"{source}: {error}") from None


@dataclass(frozen=True)
class PolicySnapshot:
    """The scoring and gate policy and workspace a run decides under, named by a digest.

    Recorded once per distinct snapshot (``policy.recorded``) and named by every decision,
    so replay re-runs a decision under exactly what it ran with.
    """

    scoring: ScoringPolicy
    gates: GatePolicy
    workspace: str

    @property
    def plain(self) -> dict[str, Any]:
        return {
            "scoring": msgspec.to_builtins(self.scoring),
            "gates": msgspec.to_builtins(self.gates),
            "workspace": self.workspace,
        }

    @property
    def policy_id(self) -> str:
        canonical = msgspec.json.encode(self.plain, order="sorted")
        return hashlib.sha256(canonical).hexdigest()[:32]

    @classmethod
    def from_plain(cls, scoring: dict[str, Any], gates: dict[str, Any], workspace: str) -> Any:
        """A recorded snapshot; a gate setting added after it was recorded (such as
        ``quarantine_evidence``) is taken from the shipped file, as replay runs today's gates."""
        shipped = _shipped("gates.json")
        gates = {**{k: v for k, v in shipped.items() if k not in gates}, **gates}
        try:
            return cls(
                msgspec.convert(scoring, ScoringPolicy),
                msgspec.convert(gates, GatePolicy),
                workspace,
            )
        except (msgspec.ValidationError, ValueError) as error:
            raise PolicyError(f"recorded policy: {error}") from None
