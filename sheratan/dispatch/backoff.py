"""When a RETRY may run: exponential backoff with a recorded jitter.

The jitter is drawn from a generator seeded by the run's seed, the job and its retry count,
so the same seed gives the same jitter, and the drawn fraction is recorded with the retry
(``job.retry_scheduled``): replay and audits read it, they never draw it again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from uuid import UUID

from sheratan.decide.policy import RetryBackoff


@dataclass(frozen=True)
class Backoff:
    seconds: float
    jitter: float


def retry_backoff(policy: RetryBackoff, seed: int, job_id: UUID, retries_before: int) -> Backoff:
    """The wait before a job's next RETRY, given how many retries it had before."""
    jitter = random.Random(f"{seed}:{job_id}:{retries_before}:backoff").random()
    full = min(policy.max_s, policy.base_s * policy.factor**retries_before)
    return Backoff(full * (1.0 - policy.jitter * jitter), jitter)
