"""UCB-light and the randomized step, with the exact probability of every candidate.

    select = mean + c * sqrt(ln(N) / (n + 1)) - risk_penalty

N is the intent's total visits (at least 1), n the candidate's. Policies:

- ``ucb``: epsilon-greedy over the select scores: the best ungated candidate (first on ties)
  gets 1 - eps, and eps is shared evenly by the k ungated *explorable* candidates (the best
  included when it is one). eps = 0 is argmax; with no explorable candidate open the best
  gets 1.
- ``random``: uniform over the ungated explorable candidates (the best, if none is open).
- ``always:<worker>``: the first ungated candidate on that worker gets 1; if there is none,
  the ``ucb`` argmax does (deterministic).

One uniform draw u in [0, 1) picks the candidate whose cumulative probability first exceeds u,
in candidate order. Recording u makes the step replayable exactly; recording the
probabilities makes off-policy estimates honest. Gated candidates have probability 0.

Safe exploration: only the ``REVERSIBLE`` actions are explorable. The others (QUARANTINE
takes a worker out of every decision, ABORT gives a job up) get no UCB bonus and no share of
the exploration step: they are chosen only as the best candidate, never by chance, so their
logged probability is exactly 0 unless they are the greedy choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

#: The actions exploration may choose: the next decision can undo each of them.
REVERSIBLE = frozenset({"ROUTE", "RETRY", "FALLBACK"})


class PolicyParseError(ValueError):
    """A policy string that is not ucb, random or always:<worker>."""


@dataclass(frozen=True)
class SelectionPolicy:
    name: str  # "ucb", "random" or "always"
    c: float = 0.5
    epsilon: float = 0.1
    worker: str | None = None

    @classmethod
    def parse(cls, text: str, *, c: float = 0.5, epsilon: float = 0.1) -> SelectionPolicy:
        if text == "ucb":
            return cls("ucb", c, epsilon)
        if text == "random":
            return cls("random", c, epsilon)
        if text.startswith("always:") and len(text) > len("always:"):
            return cls("always", c, epsilon, text[len("always:") :])
        msg = f"policy must be ucb, random or always:<worker>, not {text!r}"
        raise PolicyParseError(msg)

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 1.0:
            msg = f"epsilon must be within 0..1, not {self.epsilon}"
            raise PolicyParseError(msg)
        if self.c < 0:
            msg = f"c must not be negative, not {self.c}"
            raise PolicyParseError(msg)

    @property
    def label(self) -> str:
        return f"always:{self.worker}" if self.name == "always" else self.name

    def require_known(self, workers: Iterable[str]) -> None:
        """Refuse ``always:<worker>`` for a worker that does not exist, listing those that do
        (otherwise the policy silently falls back to the best candidate)."""
        known = sorted(workers)
        if self.name == "always" and self.worker not in known:
            listed = ", ".join(known) if known else "none registered"
            msg = f"policy {self.label}: no worker {self.worker!r} (known workers: {listed})"
            raise PolicyParseError(msg)


def log_visits(total_visits: int) -> float:
    """ln(N) of the UCB bonus, N at least 1 (computed once per decision)."""
    return math.log(max(1, total_visits))


def ucb_bonus(c: float, log_total: float, visits: int) -> float:
    """c * sqrt(ln(N) / (n + 1)), given ln(N) from ``log_visits``."""
    return c * math.sqrt(log_total / (max(0, visits) + 1))


def probabilities(
    policy: SelectionPolicy,
    select_scores: list[float | None],
    workers: list[str | None],
    explorable: list[bool],
) -> list[float]:
    """Each candidate's probability of being chosen (None score = gated = 0); only the
    ``explorable`` ones share the exploration step."""
    ungated = [i for i, s in enumerate(select_scores) if s is not None]
    out = [0.0] * len(select_scores)
    if not ungated:
        return out
    best = max(ungated, key=lambda i: (select_scores[i], -i))
    open_explorable = [i for i in ungated if explorable[i]]
    if policy.name == "always":
        target = next((i for i in ungated if workers[i] == policy.worker), best)
        out[target] = 1.0
    elif not open_explorable:
        out[best] = 1.0
    elif policy.name == "random":
        for i in open_explorable:
            out[i] = 1.0 / len(open_explorable)
    else:
        share = policy.epsilon / len(open_explorable)
        for i in open_explorable:
            out[i] = share
        out[best] += 1.0 - policy.epsilon
    return out


def pick(probs: list[float], draw: float) -> int | None:
    """The candidate a uniform draw in [0, 1) selects; None when every probability is 0."""
    cumulative = 0.0
    last = None
    for i, p in enumerate(probs):
        if p <= 0.0:
            continue
        cumulative += p
        last = i
        if draw < cumulative:
            return i
    return last  # rounding left the sum a hair under 1
