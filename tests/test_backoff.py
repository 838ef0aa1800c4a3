"""Retries wait for their backoff: exponential, capped, with a jitter drawn from the run's seed
and recorded with the retry (issue 9, item 2)."""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from events.jobs import JobDispatched, JobRetryScheduled
from sheratan.decide.policy import RetryBackoff, load_gates
from sheratan.dispatch.backoff import retry_backoff
from sheratan.home import Home
from tests.cli_helpers import as_json
from tests.decision_helpers import events

policies = st.builds(
    RetryBackoff,
    base_s=st.floats(0, 10),
    factor=st.floats(1, 4),
    max_s=st.floats(0, 600),
    jitter=st.floats(0, 1),
)


@given(policies, st.integers(0, 2**31), st.uuids(version=4), st.integers(0, 20))
def test_the_same_seed_job_and_retry_give_the_same_bounded_wait(
    policy: RetryBackoff, seed: int, job_id: UUID, retries: int
) -> None:
    first = retry_backoff(policy, seed, job_id, retries)
    assert first == retry_backoff(policy, seed, job_id, retries)
    full = min(policy.max_s, policy.base_s * policy.factor**retries)
    assert 0.0 <= first.jitter < 1.0
    assert full * (1 - policy.jitter) - 1e-9 <= first.seconds <= full + 1e-9


def test_no_retry_is_dispatched_before_its_not_before(tmp_path: Path) -> None:
    home = tmp_path / "h"
    as_json(home, "init")
    as_json(home, "worker", "register", "w", "--kinds", "file_read", "--transport", "local")
    created = as_json(
        home, "job", "create", "file_read", "--payload", '{"path": "missing.txt"}',
        "--max-retries", "2",
    )  # fmt: skip
    report = as_json(home, "dispatch", "--until-idle", "--seed", "5", "--workspace", str(tmp_path))
    assert report["dispatches"] == 1  # the retries were leased by their recovery decisions

    opened = Home.open(home)
    job_events = [e for _, e in events(opened) if str(e.originator_id) == created["id"]]
    retries = [e for e in job_events if isinstance(e, JobRetryScheduled)]
    leases = [e for e in job_events if isinstance(e, JobDispatched)]
    assert [r.retry_count for r in retries] == [1, 2]
    assert [lease.attempt for lease in leases] == [1, 2, 3]
    policy = load_gates().retry_backoff
    for before, (retry, lease) in enumerate(zip(retries, leases[1:], strict=True)):
        assert retry.worker == "w" and retry.not_before is not None
        assert lease.timestamp >= retry.not_before
        assert lease.decision_id == retry.decision_id  # the recovery decision leased it
        expected = retry_backoff(policy, 5, UUID(created["id"]), before)
        assert (retry.backoff_s, retry.jitter) == (expected.seconds, expected.jitter)
    assert opened.app.get_job(UUID(created["id"])).status == "failed"
    assert as_json(home, "replay", "--exact")["drift"]["major"] == 0
