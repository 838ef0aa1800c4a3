"""Policy files (policies/*.json) as validated msgspec Structs: read once at the boundary.

A user may write their own scoring.json or gates.json; a malformed one is refused with the
path of the bad field rather than half-applied.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from events.decisions import Percentiles, Weights

POLICIES_DIR = Path(__file__).resolve().parent.parent.parent / "policies"


class PolicyError(ValueError):
    """A policy file that does not fit its shape."""


class BaselineDefaults(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    mode: Literal["rolling", "fixed"] = "rolling"
    window: int = msgspec.field(default=200)
    min_observations: int = 20
    latency_ms: Percentiles = Percentiles(500.0, 2000.0)
    cost: Percentiles = Percentiles(1.0, 10.0)

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_observations < 1:
            msg = "baselines.window and baselines.min_observations must be at least 1"
            raise ValueError(msg)


class ScoringPolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    weights: Weights = Weights()
    baselines: BaselineDefaults = BaselineDefaults()


class GatePolicy(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    allowed_kinds: tuple[str, ...] = ("noop", "file_read", "file_write", "patch_apply", "llm_call")
    forbidden_kinds: tuple[str, ...] = ()
    forbidden_path_prefixes: tuple[str, ...] = (".git", ".sheratan")
    untrusted_zones: tuple[str, ...] = ("untrusted",)
    escalation_markers: tuple[str, ...] = ()
    heartbeat_timeout_s: float = 300.0
    quarantine_cooldown_s: float = 300.0
    ucb_c: float = 0.5
    epsilon: float = 0.1


class PriorSeed(msgspec.Struct, frozen=True, kw_only=True):
    visits: int
    mean_score: float
    last_scores: tuple[float, ...] = ()
    risk_gate: bool = True


def _load(path: Path, shape: type[Any]) -> Any:
    try:
        return msgspec.json.decode(path.read_bytes(), type=shape)
    except FileNotFoundError:
        raise PolicyError(f"policy file {path} does not exist") from None
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as error:
        raise PolicyError(f"{path}: {error}") from None


def load_scoring(path: Path | None = None) -> ScoringPolicy:
    return _load(path or POLICIES_DIR / "scoring.json", ScoringPolicy)


def load_gates(path: Path | None = None) -> GatePolicy:
    return _load(path or POLICIES_DIR / "gates.json", GatePolicy)


def load_prior_seeds(path: Path | None = None) -> dict[str, dict[str, PriorSeed]]:
    """intent -> action key -> seed, from priors.json (its schema_version key is skipped)."""
    raw = _load(path or POLICIES_DIR / "priors.json", dict[str, Any])
    raw.pop("schema_version", None)
    try:
        return msgspec.convert(raw, dict[str, dict[str, PriorSeed]])
    except msgspec.ValidationError as error:
        raise PolicyError(f"priors.json: {error}") from None


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
        try:
            return cls(
                msgspec.convert(scoring, ScoringPolicy),
                msgspec.convert(gates, GatePolicy),
                workspace,
            )
        except (msgspec.ValidationError, ValueError) as error:
            raise PolicyError(f"recorded policy: {error}") from None
