"""Provable history through the CLI: keys, signed checkpoints, proofs an outsider can check.

A home of 200 simulated jobs is built once with the CLI; each test works on a copy. The
verifier is also run as a real process with no home at all.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_helpers import as_json, invoke
from store_helpers import REPO_ROOT, all_lines, rechain, rewrite_checkpoints, rewrite_segments

SIMULATED_JOBS = "200"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("audit")
    home = root / "home"
    invoke(home, "init")
    workers = str(REPO_ROOT / "policies" / "workers.example.json")
    invoke(home, "simulate", "--workers", workers, "--jobs", SIMULATED_JOBS, "--seed", "1")
    invoke(home, "audit", "keygen", "--out", str(root / "keys"))
    invoke(home, "audit", "keygen", "--out", str(root / "other-keys"))
    return root


@pytest.fixture
def world(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "w")
    return tmp_path / "w"


def key(world: Path) -> str:
    return str(world / "keys" / "sheratan-signing.key")


def pub(world: Path, which: str = "keys") -> str:
    return str(world / which / "sheratan-signing.pub")


def sign(world: Path, export: str) -> dict[str, Any]:
    path = world / export
    as_json(world / "home", "audit", "checkpoint", "--sign", key(world), "--export", str(path))
    return json.loads(path.read_bytes())


def verify_proof(proof: Path, public: str, *, code: int) -> subprocess.CompletedProcess[str]:
    """``audit verify-proof`` as an outsider runs it: a process, in another folder, no home."""
    args = ["audit", "verify-proof", str(proof), "--pubkey", public]
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "cli.py"), *args],
        capture_output=True,
        text=True,
        cwd=proof.parent,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
        check=False,
    )
    assert done.returncode == code, done.stdout + done.stderr
    return done


def snapshot(home: Path) -> dict[str, str]:
    """Digests of every file under events/ and checkpoints/."""
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for folder in ("events", "checkpoints")
        for p in sorted((home / folder).rglob("*"))
        if p.is_file()
    }


def one_line_error(result: Any) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ---------------------------------------------------------------------------- keys


def test_keygen_writes_a_private_key_only_its_owner_reads(world: Path) -> None:
    private = world / "keys" / "sheratan-signing.key"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert (world / "keys" / "sheratan-signing.pub").read_bytes().startswith(b"-----BEGIN PUBLIC")
    made = as_json(world / "home", "audit", "keygen", "--out", str(world / "keys"), "--force")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert len(made["key_id"]) == 64


@pytest.mark.parametrize(
    ("out", "message"),
    [
        ("home/keys", "refusing to write a signing key inside the home"),
        ("home", "refusing to write a signing key inside the home"),
        ("keys", "sheratan-signing.key exists: pass --force to replace it"),
    ],
)
def test_keygen_refuses_the_home_and_old_keys(world: Path, out: str, message: str) -> None:
    before = (world / "keys" / "sheratan-signing.key").read_bytes()
    result = invoke(world / "home", "audit", "keygen", "--out", str(world / out), code=2)
    assert message in one_line_error(result)
    assert (world / "keys" / "sheratan-signing.key").read_bytes() == before
    assert not (world / "home" / "keys").exists()
    assert not (world / "home" / "sheratan-signing.key").exists()


# --------------------------------------------------------------------- checkpoints


def test_a_signed_checkpoint_is_recorded_and_exported(world: Path) -> None:
    home = world / "home"
    last = as_json(home, "audit", "verify")["events"]
    head = sign(world, "cp.json")
    assert set(head) == {
        "format",
        "log",
        "tree_size",
        "root",
        "chain_head",
        "ts",
        "key_id",
        "signature",
    }
    assert head["tree_size"] == last and head["format"] == 1
    lines = all_lines(home)
    assert head["chain_head"] == json.loads(lines[-1])["hash"]
    assert head["log"] == json.loads(lines[0])["hash"]
    recorded = (home / "checkpoints" / "signed.jsonl").read_bytes().splitlines()
    assert [json.loads(line) for line in recorded] == [head]
    # the unsigned checkpoint still works as before, in its own file
    plain = as_json(home, "audit", "checkpoint")
    assert plain["pos"] == last and plain["hash"] == head["chain_head"]
    assert len((home / "checkpoints" / "signed.jsonl").read_bytes().splitlines()) == 1


def test_the_root_is_rfc_6962_over_the_stored_lines(world: Path) -> None:
    """Recomputed here from the segment bytes with hashlib only (what an outsider would do)."""
    head = sign(world, "cp.json")

    def mth(leaves: list[bytes]) -> bytes:
        if len(leaves) == 1:
            return leaves[0]
        k = 1 << ((len(leaves) - 1).bit_length() - 1)
        return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()

    leaves = [hashlib.sha256(b"\x00" + line).digest() for line in all_lines(world / "home")]
    assert mth(leaves).hex() == head["root"]


# ------------------------------------------------------------------------ proofs


def test_inclusion_proofs_verify_without_a_home(world: Path) -> None:
    home = world / "home"
    head = sign(world, "cp.json")
    size = head["tree_size"]
    lines = all_lines(home)
    before = snapshot(home)
    for position in sorted({1, 2, size // 3, size // 2 + 1, size - 1, size}):
        proof = as_json(home, "audit", "prove", str(position))
        assert proof["kind"] == "inclusion" and proof["checkpoint"] == head
        assert proof["position"] == position and proof["leaf_index"] == position - 1
        assert proof["line"].encode() == lines[position - 1]
        assert len(proof["path"]) <= (size - 1).bit_length()  # O(log n)
        path = world / f"proof-{position}.json"
        path.write_text(json.dumps(proof))
        done = verify_proof(path, pub(world), code=0)
        assert f"the line at position {position} is in log" in done.stdout
        assert f"tree size {size}" in done.stdout
    report = as_json(world / "nowhere", "audit", "verify-proof", str(path), "--pubkey", pub(world))
    assert report["ok"] is True and report["kind"] == "inclusion"
    assert not (world / "nowhere").exists()
    assert snapshot(home) == before  # proving writes only under merkle/


def hostile(proof: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(what, tampered proof, the message that must name it)."""
    path = proof["path"]
    flipped = f"{int(path[0][0], 16) ^ 1:x}" + path[0][1:]
    checkpoint = proof["checkpoint"]
    line = json.loads(proof["line"])
    return [
        ("line changed", {**proof, "line": proof["line"].replace('"ver":', '"ver": ')}, "path:"),
        ("flipped node", {**proof, "path": [flipped, *path[1:]]}, "path: does not lead"),
        ("swapped nodes", {**proof, "path": [path[1], path[0], *path[2:]]}, "path: does not"),
        ("truncated path", {**proof, "path": path[:-1]}, "path: does not lead"),
        ("extended path", {**proof, "path": [*path, path[0]]}, "path: does not lead"),
        ("short node", {**proof, "path": [path[0][:-2], *path[1:]]}, "path: a node is not 32"),
        ("not hex", {**proof, "path": ["zz" * 32, *path[1:]]}, "path: a node is not hex"),
        (
            "wrong index",
            {**proof, "leaf_index": proof["leaf_index"] + 1},
            "leaf index",
        ),
        (
            "wrong position",
            {**proof, "position": proof["position"] + 1, "leaf_index": proof["leaf_index"] + 1},
            f"line: holds position {line['pos']}",
        ),
        (
            "wrong tree size",
            {**proof, "checkpoint": {**checkpoint, "tree_size": checkpoint["tree_size"] + 1}},
            "checkpoint: signature does not verify",
        ),
        (
            "wrong root",
            {**proof, "checkpoint": {**checkpoint, "root": checkpoint["chain_head"]}},
            "checkpoint: signature does not verify",
        ),
        (
            "forged key id",
            {**proof, "checkpoint": {**checkpoint, "key_id": "00" * 32}},
            "not by the given public key",
        ),
        ("not a proof", {"kind": "inclusion"}, "proof: not a Sheratan proof"),
    ]


def test_hostile_inclusion_proofs_are_rejected_naming_what_failed(world: Path) -> None:
    home = world / "home"
    head = sign(world, "cp.json")
    proof = as_json(home, "audit", "prove", str(head["tree_size"] // 2))
    for what, bad, message in hostile(proof):
        path = world / "bad.json"
        path.write_text(json.dumps(bad))
        done = verify_proof(path, pub(world), code=1)
        assert message in one_line_error(done), what
        assert done.stdout == "", what
    # the right proof with another key: the key id does not match
    path = world / "good.json"
    path.write_text(json.dumps(proof))
    done = verify_proof(path, pub(world, "other-keys"), code=1)
    assert "checkpoint: signed by key" in one_line_error(done)


def test_a_proof_from_another_log_does_not_verify_against_this_one(world: Path) -> None:
    """Another home signed with the same key: its proofs name its own log, never this one's."""
    home = world / "home"
    head = sign(world, "cp.json")
    other = world / "other"
    invoke(other, "init")
    invoke(other, "job", "create", "noop")
    as_json(other, "audit", "checkpoint", "--sign", key(world), "--export", str(world / "o.json"))
    foreign = as_json(other, "audit", "prove", "1")
    assert foreign["checkpoint"]["log"] != head["log"]
    # graft the foreign line and path onto this log's signed checkpoint
    grafted = {**foreign, "checkpoint": head}
    path = world / "grafted.json"
    path.write_text(json.dumps(grafted))
    assert "path: does not lead" in one_line_error(verify_proof(path, pub(world), code=1))
    # and this home refuses the other log's checkpoint
    result = invoke(home, "audit", "prove", "1", "--checkpoint", str(world / "o.json"), code=1)
    assert "not this one" in one_line_error(result)


def test_consistency_proofs_between_exported_checkpoints(world: Path) -> None:
    home = world / "home"
    first = sign(world, "cp1.json")
    invoke(home, "job", "create", "noop")
    second = sign(world, "cp2.json")
    assert second["tree_size"] == first["tree_size"] + 2
    args = ("--from", str(world / "cp1.json"), "--to", str(world / "cp2.json"))
    proof = as_json(home, "audit", "consistency", *args, "--pubkey", pub(world))
    assert proof["kind"] == "consistency" and proof["from"] == first and proof["to"] == second
    assert 0 < len(proof["path"]) <= 2 * second["tree_size"].bit_length()
    path = world / "consistency.json"
    path.write_text(json.dumps(proof))
    done = verify_proof(path, pub(world), code=0)
    assert f"extends the one signed at tree size {first['tree_size']}" in done.stdout

    nodes = proof["path"]
    bad_cases = [
        ({**proof, "path": nodes[:-1]}, "path: does not show"),
        ({**proof, "path": [*nodes, nodes[0]]}, "path: does not show"),
        ({**proof, "path": list(reversed(nodes))}, "path: does not show"),
        ({**proof, "from": second, "to": first}, "is larger than"),
        ({**proof, "from": {**first, "tree_size": 3}}, "from checkpoint: signature"),
        ({**proof, "to": {**second, "root": first["root"]}}, "to checkpoint: signature"),
    ]
    if len(nodes) > 1:
        bad_cases.append(({**proof, "path": [nodes[1], nodes[0], *nodes[2:]]}, "path: does not"))
    for bad, message in bad_cases:
        path.write_text(json.dumps(bad))
        assert message in one_line_error(verify_proof(path, pub(world), code=1)), message

    swapped = ("--from", str(world / "cp2.json"), "--to", str(world / "cp1.json"))
    result = invoke(home, "audit", "consistency", *swapped, code=2)
    assert "larger than --to's" in one_line_error(result)


def test_consistency_with_another_key_fails(world: Path) -> None:
    home = world / "home"
    sign(world, "cp1.json")
    args = ("--from", str(world / "cp1.json"), "--to", str(world / "cp1.json"))
    result = invoke(
        home, "audit", "consistency", *args, "--pubkey", pub(world, "other-keys"), code=1
    )
    assert "--from checkpoint: signed by key" in one_line_error(result)


def test_prove_refuses_bad_input_in_one_line(world: Path) -> None:
    home = world / "home"
    result = invoke(home, "audit", "prove", "1", code=2)
    assert "no signed checkpoint in this home" in one_line_error(result)
    head = sign(world, "cp.json")
    result = invoke(home, "audit", "prove", str(head["tree_size"] + 1), code=2)
    assert f"is not in the signed tree of {head['tree_size']} events" in one_line_error(result)
    (world / "junk.json").write_text("{}")
    result = invoke(home, "audit", "prove", "1", "--checkpoint", str(world / "junk.json"), code=2)
    assert "not a signed checkpoint" in one_line_error(result)
    result = invoke(home, "audit", "checkpoint", "--export", str(world / "x.json"), code=2)
    assert "--export needs --sign" in one_line_error(result)
    (world / "junk.key").write_text("not a key")
    result = invoke(home, "audit", "checkpoint", "--sign", str(world / "junk.key"), code=2)
    assert "is not an Ed25519 private key" in one_line_error(result)


def test_a_damaged_tree_cache_is_rebuilt_and_said_once(world: Path) -> None:
    home = world / "home"
    head = sign(world, "cp.json")
    good = as_json(home, "audit", "prove", "7")
    for level in (0, 1, 3):
        cache = home / "merkle" / f"level-{level:02d}.bin"
        data = bytearray(cache.read_bytes())
        for at in range(0, len(data), 32):
            data[at] ^= 0xFF
        cache.write_bytes(bytes(data))
        result = invoke(home, "audit", "prove", "7", "--json")
        assert json.loads(result.stdout) == good
        assert one_line_error(result).startswith("warning: merkle tree cache"), level
        assert invoke(home, "audit", "prove", "7", "--json").stderr == ""  # rebuilt: quiet
    shutil.rmtree(home / "merkle")
    assert as_json(home, "audit", "prove", "7") == good
    assert head == good["checkpoint"]


# --------------------------------------------------------------- verify --pubkey


def test_audit_verify_with_pubkey_checks_every_signed_checkpoint(world: Path) -> None:
    home = world / "home"
    sign(world, "cp1.json")
    invoke(home, "job", "create", "noop")
    second = sign(world, "cp2.json")
    args = ("--pubkey", pub(world), "--checkpoint", str(world / "cp1.json"))
    report = as_json(home, "audit", "verify", *args)
    assert report["ok"] and report["signed"]["ok"]
    assert [c["tree_size"] for c in report["signed"]["signed_checkpoints"]] == [
        second["tree_size"] - 2,
        second["tree_size"],
        second["tree_size"] - 2,
    ]
    text = invoke(home, "audit", "verify", *args).stdout
    assert "3 signed checkpoints hold" in text
    result = invoke(home, "audit", "verify", "--pubkey", pub(world, "other-keys"), code=1)
    assert "signed.jsonl line 1: signed by key" in result.stdout
    result = invoke(home, "audit", "verify", "--checkpoint", str(world / "cp1.json"), code=2)
    assert "--checkpoint needs --pubkey" in one_line_error(result)


@pytest.mark.parametrize("edited", [1, 5, 600, -1])
def test_a_rechained_log_is_caught_by_an_exported_checkpoint(world: Path, edited: int) -> None:
    """The issue's test: edit line N, recompute every hash after it, rewrite the unsigned
    checkpoints, delete the signed ones from the home: the plain chain passes, the exported
    signed checkpoint does not."""
    home = world / "home"
    invoke(home, "audit", "checkpoint")  # an unsigned checkpoint the attacker must rewrite
    head = sign(world, "exported.json")
    lines = all_lines(home)
    n = edited if edited > 0 else len(lines)
    lines[n - 1] = lines[n - 1].replace(b'"ver":', b'"ver": ', 1)
    lines = rechain(lines, n - 1)
    rewrite_segments(home, lines)
    rewrite_checkpoints(home, lines)
    shutil.rmtree(home / "index")  # the sidecar index: rebuilt from the forged lines
    # while the home still holds its signed checkpoint, nothing new is signed over the forgery
    refused = invoke(home, "audit", "checkpoint", "--sign", key(world), code=1)
    assert "the log is not the one signed in signed.jsonl" in one_line_error(refused)
    (home / "checkpoints" / "signed.jsonl").unlink()

    plain = as_json(home, "audit", "verify")
    assert plain["ok"] and plain["verified"] == head["tree_size"]

    args = ("--pubkey", pub(world), "--checkpoint", str(world / "exported.json"))
    before = snapshot(home)
    result = invoke(home, "audit", "verify", *args, code=1)
    assert f"FAILED: signed checkpoint {world / 'exported.json'}" in result.stdout
    if n == 1:
        assert "names another log (or position 1 changed)" in result.stdout
    else:
        assert f"changed at a position in 1..{head['tree_size']}" in result.stdout
    report = json.loads(invoke(home, "audit", "verify", *args, "--json", code=1).stdout)
    assert report["ok"] is False and report["signed"]["ok"] is False
    assert snapshot(home) == before  # verify is read-only
    # and no proof against the exported checkpoint can be made from the forged log
    proof = invoke(home, "audit", "prove", "2", "--checkpoint", args[3], code=1)
    assert "is not the one signed" in proof.stderr or "not this one" in proof.stderr


def test_a_later_signed_checkpoint_narrows_where_the_log_changed(world: Path) -> None:
    home = world / "home"
    first = sign(world, "cp1.json")
    invoke(home, "job", "create", "noop")
    invoke(home, "job", "create", "noop")
    second = sign(world, "cp2.json")
    lines = all_lines(home)
    n = first["tree_size"] + 2
    lines[n - 1] = lines[n - 1].replace(b'"ver":', b'"ver": ', 1)
    rewrite_segments(home, rechain(lines, n - 1))
    result = invoke(home, "audit", "verify", "--pubkey", pub(world), code=1)
    where = f"{first['tree_size'] + 1}..{second['tree_size']}"
    assert "signed checkpoint signed.jsonl line 2: the log's tree head at" in result.stdout
    assert f"changed at a position in {where}" in result.stdout
