"""Followers of a PostgreSQL home wake on LISTEN/NOTIFY: a commit by another process wakes
them, ``wake`` wakes them, and with neither they sleep until the timeout. Real server."""

from __future__ import annotations

import threading
from pathlib import Path

from cli_helpers import as_json

from sheratan.home import Home


def test_a_commit_by_another_process_wakes_the_follower(pg_home: Path) -> None:
    home = Home.open(pg_home)
    try:
        with home.waker() as waker:
            assert not waker.wait(0.2)  # nothing committed since it started listening
            as_json(pg_home, "mission", "create", "Nightly")  # another process commits
            assert waker.wait(10)
            assert not waker.consume()  # the wake-up was taken by that wait
    finally:
        home.close()


def test_wake_ends_a_wait_from_another_thread(pg_home: Path) -> None:
    home = Home.open(pg_home)
    try:
        with home.waker() as waker:
            threading.Timer(0.2, waker.wake).start()
            assert waker.wait(10)
            assert not waker.wait(0.1)
    finally:
        home.close()
