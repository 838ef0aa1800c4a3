"""Dispatchers, workers, the API and operators on a PostgreSQL home, from several home
folders on one database (a folder per host): the dispatch lock is an advisory lock of the
database, tracking commits with the save, and every command of SUPPORTED that issue 13's
item 2 brought runs there. Real server, fresh database per test, real processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from uuid import UUID

import pytest
from api_helpers import serving
from cli_helpers import as_json, invoke, refused
from cluster_helpers import host, log_lines, start_worker
from eventsourcing.persistence import Tracking
from process_helpers import start_cli, stop, wait_until
from worker_helpers import counting_job, executions

from events import utc_now
from events.jobs import JobCancelled, JobQueued
from sheratan.dispatch.service import dispatch_lock, home_lock, resumes_after, tracking_name
from sheratan.home import Home
from sheratan.lifecycle import job_event
from sheratan.recording import Recorder, ViewsDivergedError


@pytest.fixture
def hosts(tmp_path: Path, postgres_dsn: str) -> tuple[Path, Path]:
    """Two home folders on one fresh database: two hosts of one log."""
    return host(tmp_path, "h1", postgres_dsn), host(tmp_path, "h2", postgres_dsn)


def opened(*paths: Path) -> list[Home]:
    return [Home.open(path) for path in paths]


def test_the_dispatch_lock_is_one_across_folders_and_ends_with_its_session(
    hosts: tuple[Path, Path],
) -> None:
    first, second = opened(*hosts)
    one, other = dispatch_lock(first), dispatch_lock(second)
    try:
        one.acquire()
        assert not other.try_acquire()  # another folder, the same log: the same lock
        assert home_lock(first, "simulate").try_acquire()  # another purpose, another lock
        one.release()
        assert other.try_acquire()
        other.close()  # the session's end lets go, as a dead process's does
        # (the server ends the session a moment after the client closes it)
        wait_until(one.try_acquire, "the closed session's lock to be let go")
    finally:
        for lock in (one, other):
            lock.close()
        for home in (first, second):
            home.close()
    assert not (hosts[0] / "locks").exists(), "no lock file: the database holds the lock"


def test_a_killed_process_lets_go_of_the_lock(hosts: tuple[Path, Path]) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(hosts[0])], stdout=subprocess.PIPE, text=True
    )
    (home,) = opened(hosts[1])
    lock = dispatch_lock(home)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        assert not lock.try_acquire()
        holder.send_signal(signal.SIGKILL)
        holder.communicate()
        wait_until(lock.try_acquire, "the killed holder's session to end")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate()
        lock.close()
        home.close()


#: A process that holds the dispatch lock of the home in argv[1] until it is killed.
HOLD = """
import sys, time
from pathlib import Path
from uuid import UUID
from sheratan.dispatch.service import dispatch_lock
from sheratan.home import Home
lock = dispatch_lock(Home.open(Path(sys.argv[1])))  # kept: dropped, its session would end
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def test_tracking_commits_with_the_save_or_not_at_all(hosts: tuple[Path, Path]) -> None:
    (home,) = opened(hosts[0])
    try:
        job = home.app.get_job(UUID(as_json(hosts[1], "job", "create", "noop")["id"]))
        name = tracking_name("t")
        # A version another process took already (the job's queued event): the save is
        # refused whole, and its tracking record with it.
        recorder = Recorder(home.app, [])
        recorder.record(JobQueued(originator_id=job.id, originator_version=2, timestamp=utc_now()))
        with pytest.raises(ViewsDivergedError):
            recorder.flush(Tracking(name, home.log.last_position()))
        assert resumes_after(home, "t") is None
        acted_on = home.log.last_position()
        recorder = Recorder(home.app, [])
        recorder.record(job_event(job, JobCancelled, utc_now(), reason="tracked"))
        (position,) = recorder.flush(Tracking(name, acted_on))
        assert position > acted_on and resumes_after(home, "t") == acted_on
        assert home.app.get_job(job.id).status == "cancelled"
    finally:
        home.close()


def test_dispatch_until_idle_and_follow_from_two_folders(
    hosts: tuple[Path, Path], postgres_dsn: str, tmp_path: Path
) -> None:
    h1, h2 = hosts
    workspace = tmp_path / "ws"
    workspace.mkdir()
    as_json(h1, "worker", "register", "inline", "--kinds", "noop", "--transport", "local")
    first = as_json(h1, "job", "create", "noop")["id"]
    report = as_json(h2, "dispatch", "--until-idle", "--name", "a", "--workspace", str(workspace))
    assert (report["dispatches"], report["completed"]) == (1, 1)
    assert as_json(h1, "job", "show", first)["status"] == "completed"
    (home,) = opened(h2)
    try:
        assert (resumes_after(home, "a") or 0) > 0
    finally:
        home.close()
    as_json(h1, "worker", "quarantine", "inline", "--reason", "now the daemon's turn")

    # A daemon on one host, a follower on the other: woken by LISTEN/NOTIFY, no file shared.
    daemon = start_worker(h1, postgres_dsn, workspace, "w1")
    follower = start_cli(h2, "dispatch", "--follow", "--name", "b", "--workspace", str(workspace))
    try:
        counted = counting_job(h1, workspace, "count.txt")
        wait_until(
            lambda: as_json(h2, "job", "show", counted)["status"] == "completed",
            "the counting job to complete",
            daemon,
            follower,
        )
        code, _, err = stop(follower)
        assert code == 0 and "(from the start)" in err, err
        again = start_cli(h2, "dispatch", "--follow", "--name", "b")
        code, _, err = stop_once_following(again)
        assert code == 0 and "after position" in err, err
    finally:
        for process in (daemon, follower):
            if process.poll() is None:
                stop(process)
    assert executions(workspace, "count.txt") == 1


def stop_once_following(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """SIGTERM a ``dispatch --follow`` once it has said where it resumes."""
    assert process.stderr is not None
    line = process.stderr.readline()
    code, out, err = stop(process)
    return code, out, line + err


def test_worker_commands_across_folders(hosts: tuple[Path, Path]) -> None:
    h1, h2 = hosts
    assert as_json(h1, "worker", "register", "w1", "--kinds", "noop", "--transport", "process")
    assert [w["id"] for w in as_json(h2, "worker", "list")] == ["w1"]
    as_json(h2, "worker", "quarantine", "w1", "--reason", "flaky")
    assert as_json(h1, "worker", "list")[0]["status"] == "quarantined"
    as_json(h1, "worker", "release", "w1")
    assert as_json(h2, "worker", "list")[0]["status"] == "active"
    refused(h2, "worker", "release", "nobody", needle="nobody")


def test_account_commands_across_folders(hosts: tuple[Path, Path]) -> None:
    h1, h2 = hosts
    as_json(h1, "account", "open", "acme", "--balance", "10")
    as_json(h2, "account", "credit", "acme", "2.5", "--reason", "top-up")
    shown = as_json(h1, "account", "show", "acme")
    assert shown["balance_micros"] == 12_500_000
    assert [a["id"] for a in as_json(h2, "account", "list")] == ["acme"]
    history = as_json(h1, "account", "history", "acme")
    assert [row["topic"] for row in history][-1] == "account.credited"
    refused(h2, "account", "open", "acme", needle="acme")


def test_system_commands_across_folders(hosts: tuple[Path, Path]) -> None:
    h1, h2 = hosts
    assert as_json(h1, "system", "state")["state"] == "OPERATIONAL"
    as_json(h2, "system", "transition", "paused", "--reason", "maintenance")
    assert as_json(h1, "system", "state")["state"] == "PAUSED"
    assert [row["reason"] for row in as_json(h1, "system", "history")] == ["maintenance"]
    assert not (h2 / "locks").exists(), "the transition waited on the database's lock"


def test_job_operators_across_folders(hosts: tuple[Path, Path], tmp_path: Path) -> None:
    h1, h2 = hosts
    workspace = tmp_path / "ws"
    workspace.mkdir()
    as_json(h1, "worker", "register", "w1", "--kinds", "file_read,noop", "--transport", "local")
    read = json.dumps({"path": "missing.txt"})
    a = as_json(h1, "job", "create", "file_read", "--payload", read, "--max-retries", "0")["id"]
    b = as_json(h1, "job", "create", "noop", "--depends-on", a)["id"]
    c = as_json(h2, "job", "create", "noop")["id"]
    assert as_json(h2, "job", "cancel", c)["status"] == "cancelled"
    as_json(h2, "dispatch", "--until-idle", "--workspace", str(workspace))
    assert as_json(h1, "job", "show", b)["status"] == "cancelled"
    (workspace / "missing.txt").write_text("here")
    assert as_json(h2, "job", "requeue", a, "--reason", "restored")["status"] == "queued"
    as_json(h1, "dispatch", "--until-idle", "--workspace", str(workspace))
    assert as_json(h2, "job", "retry-dependents", a) == {"id": a, "resumed": [b]}
    as_json(h2, "dispatch", "--until-idle", "--workspace", str(workspace))
    assert as_json(h1, "job", "show", b)["status"] == "completed"


def test_tokens_are_each_folder_s_and_rotations_are_recorded(hosts: tuple[Path, Path]) -> None:
    h1, h2 = hosts
    token = invoke(h1, "token").stdout.strip()
    assert token and token != invoke(h2, "token").stdout.strip()
    fingerprint = as_json(h1, "token", "rotate")["fingerprint"]
    assert as_json(h1, "token")["token"] != token
    rotations = [line for line in log_lines(h2) if line["topic"] == "api.token_rotated"]
    assert [line["data"]["fingerprint"] for line in rotations] == [fingerprint]


def test_two_servers_serve_one_log(hosts: tuple[Path, Path]) -> None:
    h1, h2 = hosts
    with serving(h1) as one, serving(h2) as two, one.client() as c1, two.client() as c2:
        assert c1.post("/api/accounts/", json={"id": "acme", "balance": "5"}).status_code == 201
        created = c2.post("/api/jobs", json={"kind": "noop", "payer": "acme"})
        assert created.status_code == 201, created.text
        job = created.json()["id"]
        shown = c1.get(f"/api/jobs/{job}")
        assert shown.status_code == 200 and shown.json()["status"] == "queued"
        assert c2.get("/api/accounts/acme").json()["balance"] == "5"


def test_simulate_runs_one_at_a_time_per_log(hosts: tuple[Path, Path]) -> None:
    h1, h2 = hosts
    (other,) = opened(h2)
    lock = home_lock(other, "simulate")
    try:
        assert lock.try_acquire()  # a simulation running on the other host
        refused(h1, "simulate", "--jobs", "5", needle="another simulate is running on this log")
    finally:
        lock.close()
        other.close()
    report = as_json(h1, "simulate", "--jobs", "20")
    assert report["jobs"] == 20 and report["completed"] + report["failed"] <= 20


def test_events_tail_follow_wakes_on_another_folder_s_commit(hosts: tuple[Path, Path]) -> None:
    h1, h2 = hosts
    tail = start_cli(h1, "events", "tail", "-n", "0", "--follow", "--json")
    try:
        assert tail.stdout is not None
        wait_until(lambda: listening(h1), "the tail to LISTEN", tail)
        job = as_json(h2, "job", "create", "noop")["id"]
        seen = [json.loads(tail.stdout.readline()) for _ in range(2)]
        assert [(line["topic"], line["stream"]) for line in seen] == [
            ("job.created", job),
            ("job.queued", job),
        ]
    finally:
        stop(tail, signal.SIGINT)


def listening(home: Path) -> bool:
    """Whether some session of the home's database LISTENs (a follower waits on NOTIFY)."""
    (opened_home,) = opened(home)
    try:
        with opened_home.app.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
            row = conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
            ).fetchone()
            return bool(row and row["n"])
    finally:
        opened_home.close()
