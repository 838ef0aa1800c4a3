"""Followers are woken by commits of any process: real processes, real sockets, real signals.

No timed assertions: a wait that must return True gets a generous timeout; a wait that must
return False is a ``wait(0)`` after everything was drained.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
from eventsourcing.persistence import StoredEvent

from sheratan.store.factory import open_ledger
from sheratan.store.ledger import Ledger
from sheratan.store.limits import MAX_FOLLOWERS_PER_LOG
from sheratan.store.recorders import JsonlApplicationRecorder
from sheratan.store.wake import WAKE_DIR, Waker
from tests.store_helpers import REPO_ROOT, save_of, start_writer

GENEROUS_S = 10.0

#: A follower process: registers, prints ``ready``, waits for a line on stdin (busy while the
#: test commits), then prints what ``wait(10)`` and ``wait(0)`` returned.
FOLLOWER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    from sheratan.store.factory import open_ledger
    from sheratan.store.wake import Waker

    with Waker(open_ledger(Path(sys.argv[1]))) as waker:
        print("ready", flush=True)
        sys.stdin.readline()
        print(waker.wait(10.0), waker.wait(0), flush=True)
    """
)


def start_follower(tmp_path: Path, home: Path) -> subprocess.Popen[str]:
    script = tmp_path / "follower.py"
    script.write_text(FOLLOWER_SCRIPT)
    follower = subprocess.Popen(
        [sys.executable, str(script), str(home)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert follower.stdout is not None
    assert follower.stdout.readline() == "ready\n"
    return follower


def finish(follower: subprocess.Popen[str]) -> str:
    out, err = follower.communicate("go\n", timeout=60)
    assert follower.returncode == 0, err
    assert err == ""
    return out


def write_in_another_process(tmp_path: Path, home: Path, saves: int) -> None:
    writer = start_writer(tmp_path, home, "w", saves)
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err


def commit(ledger: Ledger) -> None:
    ledger.append(save_of(uuid.uuid4(), 1))


def registry(home: Path) -> list[str]:
    folder = home / WAKE_DIR / "events"
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_a_follower_in_another_process_is_woken_by_a_commit(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "home")
    follower = start_follower(tmp_path, ledger.home)
    commit(ledger)
    assert finish(follower) == "True False\n"
    assert registry(ledger.home) == []  # it unregistered on close


def test_many_commits_while_a_follower_is_busy_are_one_wake_up(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "home")
    follower = start_follower(tmp_path, ledger.home)
    for _ in range(200):
        commit(ledger)
    assert finish(follower) == "True False\n"


def test_a_commit_in_another_process_wakes_this_one(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Waker(open_ledger(home)) as waker:
        assert waker.uses_sockets
        assert waker.wait(0) is False
        write_in_another_process(tmp_path, home, 25)
        assert waker.wait(GENEROUS_S) is True
        assert waker.wait(0) is False  # the 25 saves were one wake-up


def test_without_a_commit_wait_times_out(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "home")
    with Waker(ledger) as waker:
        commit(ledger)
        assert waker.wait(0) is True
        assert waker.wait(0.05) is False
        assert waker.wait(0) is False


def test_a_killed_follower_is_cleaned_out_by_the_next_commit(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "home")
    follower = start_follower(tmp_path, ledger.home)
    with Waker(ledger) as alive:
        ours = [n for n in registry(ledger.home) if n.startswith(f"{os.getpid()}-")]
        assert len(ours) == 1 and len(registry(ledger.home)) == 2
        follower.send_signal(signal.SIGKILL)
        follower.communicate(timeout=60)
        assert follower.returncode == -signal.SIGKILL
        assert len(registry(ledger.home)) == 2  # nobody removed the dead one yet
        assert ledger.append(save_of(uuid.uuid4(), 2)) == [1, 2]  # the commit did not fail
        assert registry(ledger.home) == ours
        assert alive.wait(GENEROUS_S) is True  # the live follower was still woken
    assert registry(ledger.home) == []


@pytest.mark.parametrize("by", ["a commit in this process", "wake"])
def test_a_waiting_thread_is_woken(tmp_path: Path, by: str) -> None:
    ledger = open_ledger(tmp_path / "home")
    results: list[bool] = []
    with Waker(ledger) as waker:
        thread = threading.Thread(target=lambda: results.append(waker.wait(None)))
        thread.start()
        if by == "wake":
            waker.wake()  # as a signal handler would, to stop a follower
        else:
            commit(ledger)
        thread.join()
        assert ledger.last_position() == (0 if by == "wake" else 1)
    assert results == [True]


def test_a_closed_waker_ignores_wake_and_refuses_wait(tmp_path: Path) -> None:
    waker = Waker(open_ledger(tmp_path / "home"))
    waker.close()
    waker.close()
    waker.wake()
    with pytest.raises(ValueError, match="closed"):
        waker.wait(0)


def test_the_fallback_sees_another_process_commit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ledger = open_ledger(home)
    with Waker(ledger, sockets=False) as waker:
        assert not waker.uses_sockets
        assert registry(home) == []
        assert waker.wait(0) is False
        write_in_another_process(tmp_path, home, 3)
        assert waker.wait(GENEROUS_S) is True
        assert waker.wait(0) is False
        commit(ledger)  # in-process commits wake it too
        assert waker.wait(GENEROUS_S) is True


def test_at_the_follower_limit_dead_entries_are_pruned_then_registration_refused(
    tmp_path: Path,
) -> None:
    ledger = open_ledger(tmp_path / "home")
    folder = ledger.home / WAKE_DIR / "events"
    folder.mkdir(parents=True)
    for i in range(MAX_FOLLOWERS_PER_LOG):  # registry files of followers long dead
        (folder / f"{i}-{i:016x}").touch()
    wakers = [Waker(ledger)]  # pruned them all, then registered
    try:
        assert len(registry(ledger.home)) == 1
        wakers += [Waker(ledger) for _ in range(MAX_FOLLOWERS_PER_LOG - 1)]
        with pytest.raises(OSError, match=f"already holds {MAX_FOLLOWERS_PER_LOG} followers"):
            Waker(ledger, sockets=True)
        fallback = Waker(ledger)  # where registration fails, a follower still follows
        assert not fallback.uses_sockets
        fallback.close()
        commit(ledger)
        assert all(w.wait(GENEROUS_S) for w in wakers)
    finally:
        for waker in wakers:
            waker.close()
    assert registry(ledger.home) == []


def test_a_subscription_receives_another_process_saves(tmp_path: Path) -> None:
    home = tmp_path / "home"
    recorder = JsonlApplicationRecorder(open_ledger(home))
    with recorder.subscribe(gt=0) as subscription:
        write_in_another_process(tmp_path, home, 2)
        ids = [next(subscription).id for _ in range(5)]  # saves of 2 and 3 events
    assert ids == [1, 2, 3, 4, 5]
    assert registry(home) == []


def test_garbage_in_the_registry_never_fails_a_commit(tmp_path: Path) -> None:
    ledger = open_ledger(tmp_path / "home")
    folder = ledger.home / WAKE_DIR / "events"
    folder.mkdir(parents=True)
    (folder / "not-a-follower").write_text("x")
    (folder / "1-ffffffffffffffff").mkdir()  # a follower name, nobody bound behind it
    assert ledger.append([StoredEvent("s", 1, "t", b'{"a":1}')]) == [1]
    assert sorted(os.listdir(folder)) == ["1-ffffffffffffffff", "not-a-follower"]
