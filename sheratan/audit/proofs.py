"""Self-contained proofs and their standalone verifier (``audit verify-proof``).

An inclusion proof carries the event line, its position, the leaf index, the audit path and
the signed checkpoint it leads to; a consistency proof carries both signed checkpoints and the
path between them. ``verify`` needs only the proof's bytes and the signer's public key: like a
Certificate Transparency verifier it is small, pure and knows nothing of a home.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sheratan.audit import checkpoint as checkpoints
from sheratan.audit.checkpoint import SignedCheckpoint
from sheratan.audit.merkle import MAX_PATH_NODES, leaf_hash, verify_consistency, verify_inclusion

FORMAT = 1
#: A proof carries one event line (at most 8 MiB in the ledger, JSON-escaped) and O(log n)
#: hashes; anything larger is refused before it is parsed.
MAX_PROOF_BYTES = 64 * 1024 * 1024


class InclusionProof(msgspec.Struct, tag_field="kind", tag="inclusion", forbid_unknown_fields=True):
    format: int
    position: int
    leaf_index: int
    line: str
    path: list[str]
    checkpoint: SignedCheckpoint


class ConsistencyProof(
    msgspec.Struct, tag_field="kind", tag="consistency", forbid_unknown_fields=True
):
    format: int
    path: list[str]
    first: SignedCheckpoint = msgspec.field(name="from")
    second: SignedCheckpoint = msgspec.field(name="to")


Proof = InclusionProof | ConsistencyProof


class ProofFailedError(ValueError):
    """The proof does not prove what it claims: the message names the first thing that failed."""


class _LinePosition(msgspec.Struct):
    pos: int


_proof_decoder = msgspec.json.Decoder(Proof)
_position_decoder = msgspec.json.Decoder(_LinePosition)
Kind = Literal["inclusion", "consistency"]


def encode(proof: Proof) -> bytes:
    return msgspec.json.encode(proof)


def verify(data: bytes, public: Ed25519PublicKey) -> tuple[Kind, str]:
    """What the proof proves, in one sentence; raises ProofFailedError naming what failed."""
    if len(data) > MAX_PROOF_BYTES:
        raise ProofFailedError(f"proof: larger than {MAX_PROOF_BYTES} bytes")
    try:
        proof = _proof_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise ProofFailedError(f"proof: not a Sheratan proof ({error})") from None
    if proof.format != FORMAT:
        raise ProofFailedError(f"proof: unknown format {proof.format}")
    path = _path_bytes(proof.path)
    if isinstance(proof, InclusionProof):
        return "inclusion", _verify_inclusion(proof, path, public)
    return "consistency", _verify_consistency(proof, path, public)


def _verify_inclusion(proof: InclusionProof, path: list[bytes], public: Ed25519PublicKey) -> str:
    head = _checked(proof.checkpoint, "checkpoint", public)
    if proof.leaf_index != proof.position - 1:
        raise ProofFailedError(
            f"leaf index {proof.leaf_index} is not position {proof.position} - 1"
        )
    line = proof.line.encode()
    try:
        line_position = _position_decoder.decode(line).pos
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ProofFailedError("line: not a ledger line (no integer pos)") from None
    if line_position != proof.position:
        raise ProofFailedError(f"line: holds position {line_position}, not {proof.position}")
    if not 1 <= proof.position <= head.tree_size:
        raise ProofFailedError(
            f"position {proof.position} is outside the checkpoint's tree of {head.tree_size}"
        )
    if not verify_inclusion(
        leaf_hash(line), proof.leaf_index, head.tree_size, path, head.root_bytes()
    ):
        raise ProofFailedError(
            f"path: does not lead from the line at position {proof.position} "
            f"to the signed root of tree size {head.tree_size}"
        )
    return (
        f"the line at position {proof.position} is in log {head.log[:16]}… as signed at "
        f"tree size {head.tree_size} (root {head.root[:16]}…, {head.ts})"
    )


def _verify_consistency(
    proof: ConsistencyProof, path: list[bytes], public: Ed25519PublicKey
) -> str:
    first = _checked(proof.first, "from", public)
    second = _checked(proof.second, "to", public)
    if first.log != second.log:
        raise ProofFailedError(
            f"from/to: checkpoints of two logs ({first.log[:16]}…, {second.log[:16]}…)"
        )
    if first.tree_size > second.tree_size:
        raise ProofFailedError(
            f"from/to: tree size {first.tree_size} is larger than {second.tree_size}"
        )
    if not verify_consistency(
        first.tree_size, second.tree_size, first.root_bytes(), second.root_bytes(), path
    ):
        raise ProofFailedError(
            f"path: does not show that tree size {second.tree_size} extends {first.tree_size}"
        )
    return (
        f"log {first.log[:16]}… at tree size {second.tree_size} ({second.ts}) extends the one "
        f"signed at tree size {first.tree_size} ({first.ts}): nothing before was changed"
    )


def _checked(head: SignedCheckpoint, name: str, public: Ed25519PublicKey) -> SignedCheckpoint:
    wrong = checkpoints.problem(head, public)
    if wrong is not None:
        raise ProofFailedError(f"{name} checkpoint: {wrong}")
    return head


def _path_bytes(path: list[str]) -> list[bytes]:
    if len(path) > MAX_PATH_NODES:
        raise ProofFailedError(f"path: {len(path)} nodes, more than any log of 2^64 lines")
    try:
        nodes = [bytes.fromhex(node) for node in path]
    except ValueError:
        raise ProofFailedError("path: a node is not hex") from None
    if any(len(node) != 32 for node in nodes):
        raise ProofFailedError("path: a node is not 32 bytes")
    return nodes
