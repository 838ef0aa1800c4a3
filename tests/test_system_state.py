"""The system state machine: only legal transitions are recorded, each an event; the fold
(live view and stream) equals the last legal state; the CLI refuses with one line, exit 2."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from cli_helpers import as_json, invoke, refused_unrecorded
from hypothesis import given, settings
from hypothesis import strategies as st

from events.system import SYSTEM_STATES
from sheratan.home import Home, init_home
from sheratan.system_state import ALLOWED, IllegalSystemTransitionError
from sheratan.views import SYSTEM

#: Requests a property run makes: every state, in any case, and a name that is no state.
REQUESTS = st.lists(st.sampled_from([*SYSTEM_STATES, "paused", "SLEEPING"]), max_size=8)


@settings(max_examples=25, deadline=None)
@given(requests=REQUESTS)
def test_only_legal_transitions_are_recorded_and_the_fold_is_the_last_legal_state(
    requests: list[str],
) -> None:
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "home"
        init_home(path)
        home = Home.open(path)
        try:
            expected, legal = "OPERATIONAL", []
            for request in requests:
                target = request.upper()
                ok = target in SYSTEM_STATES and target in ALLOWED[expected]
                if ok:
                    home.app.transition_system(request, f"to {target}")
                    legal.append((expected, target))
                    expected = target
                else:
                    with pytest.raises(IllegalSystemTransitionError):
                        home.app.transition_system(request, "refused")
            recorded = [(e.from_state, e.to_state) for e in home.app.system_history()]
            assert recorded == legal
            assert home.app.get_system().state == expected
            assert home.views.current(SYSTEM).of("").state == expected
            assert home.views.rebuild(SYSTEM).of("").version == len(legal)
        finally:
            home.close()


def test_every_state_has_a_way_back_to_operational() -> None:
    assert set(ALLOWED) == set(SYSTEM_STATES)
    for state, targets in ALLOWED.items():
        assert state not in targets
        assert "OPERATIONAL" in targets or state == "OPERATIONAL"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    invoke(tmp_path / "home", "init")
    return tmp_path / "home"


def test_state_transition_and_history_through_the_cli(home: Path) -> None:
    start = as_json(home, "system", "state")
    assert (start["state"], start["version"], start["alarms"]) == ("OPERATIONAL", 0, [])
    moved = as_json(home, "system", "transition", "paused", "--reason", "maintenance window")
    assert (moved["state"], moved["cause"], moved["reason"]) == (
        "PAUSED",
        "operator",
        "maintenance window",
    )
    now = as_json(home, "system", "state")
    assert now["state"] == "PAUSED"
    assert now["dispatch"].startswith("PAUSED: nothing is dispatched")
    invoke(home, "system", "transition", "OPERATIONAL", "--reason", "done")
    rows = as_json(home, "system", "history")
    assert [(r["from_state"], r["to_state"], r["cause"]) for r in rows] == [
        ("OPERATIONAL", "PAUSED", "operator"),
        ("PAUSED", "OPERATIONAL", "operator"),
    ]
    assert "PAUSED -> OPERATIONAL" in invoke(home, "system", "history").stdout
    assert "OPERATIONAL since" in invoke(home, "system", "state").stdout


def test_an_illegal_transition_is_refused_with_one_line_and_records_nothing(home: Path) -> None:
    invoke(home, "system", "transition", "PAUSED", "--reason", "maintenance")
    line = refused_unrecorded(
        home, "system", "transition", "REFLECTIVE", "--reason", "x", needle="is PAUSED"
    )
    assert line == (
        "error: the system is PAUSED: it may move to DEGRADED, OPERATIONAL, RECOVERY, "
        "not REFLECTIVE"
    )
    refused_unrecorded(
        home, "system", "transition", "PAUSED", "--reason", "x", needle="already PAUSED"
    )
    refused_unrecorded(
        home, "system", "transition", "ASLEEP", "--reason", "x", needle="no system state 'ASLEEP'"
    )
    refused_unrecorded(home, "system", "transition", "OPERATIONAL", "--reason", "", needle="reason")
    assert len(as_json(home, "system", "history")) == 1


def test_the_simulations_have_a_state_of_their_own(home: Path) -> None:
    invoke(home, "system", "transition", "PAUSED", "--reason", "sims wait", "--simulation")
    assert as_json(home, "system", "state", "--simulation")["state"] == "PAUSED"
    assert as_json(home, "system", "state")["state"] == "OPERATIONAL"
    rebuilt = as_json(home, "rebuild", "--view", "system")["views"]["system"]
    assert (rebuilt["states"], rebuilt["alarms"]) == ({"simulation": "PAUSED"}, 0)
