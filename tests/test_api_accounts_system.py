"""Accounts and the system state over HTTP against a real ``serve``: the CLI's services,
answers and messages (issue 11 over the API of issue 10)."""

from __future__ import annotations

import httpx
import test_api_jobs
from api_helpers import Server
from cli_helpers import as_json, log_digest
from test_api_jobs import problem

#: The API tests' server (roomy write limits) and client fixtures.
server, api = test_api_jobs.server, test_api_jobs.api


def test_accounts_open_credit_show_list_and_history_as_the_cli(
    server: Server, api: httpx.Client
) -> None:
    opened = api.post("/api/accounts", json={"id": "acme", "owner": "ACME", "balance": "10"})
    assert opened.status_code == 201, opened.text
    assert (opened.json()["balance"], opened.json()["balance_micros"]) == ("10", 10_000_000)
    credited = api.post("/api/accounts/acme/credits", json={"amount": "2.5", "reason": "top-up"})
    assert credited.status_code == 201 and credited.json()["balance"] == "12.5"
    for name in ("b", "c"):
        assert api.post("/api/accounts", json={"id": name}).status_code == 201

    shown = api.get("/api/accounts/acme").json()
    assert shown == as_json(server.home, "account", "show", "acme")
    first = api.get("/api/accounts", params={"limit": 2}).json()
    rest = api.get("/api/accounts", params={"cursor": first["next_cursor"]}).json()
    assert [a["id"] for a in first["items"] + rest["items"]] == ["acme", "b", "c"]
    assert rest["next_cursor"] is None
    history = api.get("/api/accounts/acme/history").json()
    assert history == as_json(server.home, "account", "history", "acme")
    topics = [h["topic"] for h in history]
    assert topics == ["account.opened", "account.credited", "account.credited"]


def test_bad_account_requests_are_refused_with_the_clis_message(
    server: Server, api: httpx.Client
) -> None:
    api.post("/api/accounts", json={"id": "acme"})
    before = log_digest(server.home)
    again = api.post("/api/accounts", json={"id": "acme"})
    assert problem(again, 409) == "account 'acme' already exists"
    assert "no account 'nobody'" in problem(api.get("/api/accounts/nobody"), 404)
    credit = api.post("/api/accounts/nobody/credits", json={"amount": "1"})
    assert "no account 'nobody'" in problem(credit, 404)
    assert problem(api.post("/api/accounts/acme/credits", json={"amount": "-1"}), 400)
    assert problem(api.post("/api/accounts/acme/credits", json={"amount": "0"}), 400)
    assert problem(api.post("/api/accounts", json={"id": "x", "extra": 1}), 400)
    assert log_digest(server.home) == before


def test_the_system_state_moves_over_http_as_on_the_cli(server: Server, api: httpx.Client) -> None:
    state = api.get("/api/system").json()
    assert state == as_json(server.home, "system", "state")
    assert (state["state"], state["alarms"], state["queued"]) == ("OPERATIONAL", [], 0)

    paused = api.post("/api/system/transitions", json={"state": "PAUSED", "reason": "upgrade"})
    assert paused.status_code == 201, paused.text
    assert (paused.json()["state"], paused.json()["cause"]) == ("PAUSED", "operator")
    assert as_json(server.home, "system", "state")["state"] == "PAUSED"
    assert api.get("/api/system", params={"simulation": "true"}).json()["state"] == "OPERATIONAL"
    drill = {"state": "RECOVERY", "reason": "drill"}
    moved = api.post("/api/system/transitions", params={"simulation": "true"}, json=drill)
    assert (moved.status_code, moved.json()["namespace"]) == (201, "simulation")
    assert as_json(server.home, "system", "state", "--simulation")["state"] == "RECOVERY"

    before = log_digest(server.home)
    again = api.post("/api/system/transitions", json={"state": "PAUSED", "reason": "twice"})
    assert problem(again, 409) == "the system is already PAUSED"
    unknown = api.post("/api/system/transitions", json={"state": "ASLEEP", "reason": "x"})
    assert problem(unknown, 400)
    assert problem(api.post("/api/system/transitions", json={"state": "PAUSED"}), 400)
    assert log_digest(server.home) == before

    history = api.get("/api/system/history").json()
    assert history == as_json(server.home, "system", "history")
    assert [(h["from_state"], h["to_state"], h["reason"]) for h in history] == [
        ("OPERATIONAL", "PAUSED", "upgrade")
    ]
