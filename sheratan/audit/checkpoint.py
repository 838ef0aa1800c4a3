"""The signed checkpoint document: a Merkle tree head over the log, signed with Ed25519.

One JSON object (``checkpoints/signed.jsonl`` holds one per line; ``--export`` writes one to a
file)::

    {"format":1,"log":"<hex>","tree_size":n,"root":"<hex>","chain_head":"<hex>",
     "ts":"…Z","key_id":"<hex>","signature":"<base64>"}

``log`` names the log (the chain hash of its first line), ``root`` is the RFC 6962 tree head of
lines 1..n, ``chain_head`` the chain hash of line n. The signature is Ed25519 over the
canonical bytes of every other field: a JSON object with keys sorted, no whitespace (for
these ASCII strings and integers that is also RFC 8785's canonical form). Pure: an outside
verifier needs this module, ``merkle`` and ``signing``, nothing of a home.
"""

from __future__ import annotations

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sheratan.audit import signing

FORMAT = 1
#: An exported checkpoint is well under a kilobyte; refuse to parse anything far larger.
MAX_CHECKPOINT_BYTES = 16_384


class SignedCheckpoint(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: int
    log: str
    tree_size: int
    root: str
    chain_head: str
    ts: str
    key_id: str
    signature: str = ""

    def signed_bytes(self) -> bytes:
        """The canonical bytes the signature covers: every field but the signature."""
        fields = msgspec.structs.asdict(self)
        del fields["signature"]
        return msgspec.json.encode(fields, order="sorted")

    def root_bytes(self) -> bytes:
        return bytes.fromhex(self.root)

    def encode(self) -> bytes:
        return msgspec.json.encode(self)


class CheckpointFormatError(ValueError):
    """Bytes that are not a signed checkpoint document."""


_decoder = msgspec.json.Decoder(SignedCheckpoint)


def decode(data: bytes) -> SignedCheckpoint:
    if len(data) > MAX_CHECKPOINT_BYTES:
        raise CheckpointFormatError("not a signed checkpoint (too large)")
    try:
        return _decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as error:
        raise CheckpointFormatError(f"not a signed checkpoint ({error})") from None


def sign(
    private: Ed25519PrivateKey, *, log: str, tree_size: int, root: bytes, chain_head: str, ts: str
) -> SignedCheckpoint:
    unsigned = SignedCheckpoint(
        format=FORMAT,
        log=log,
        tree_size=tree_size,
        root=root.hex(),
        chain_head=chain_head,
        ts=ts,
        key_id=signing.key_id(private.public_key()),
    )
    signature = signing.sign(private, unsigned.signed_bytes())
    return msgspec.structs.replace(unsigned, signature=signature)


def problem(checkpoint: SignedCheckpoint, public: Ed25519PublicKey) -> str | None:
    """Why ``checkpoint`` is not vouched for by ``public`` (None when it is)."""
    if checkpoint.format != FORMAT:
        return f"unknown checkpoint format {checkpoint.format}"
    if checkpoint.key_id != signing.key_id(public):
        return f"signed by key {checkpoint.key_id[:16]}…, not by the given public key"
    if checkpoint.tree_size < 1:
        return f"tree size {checkpoint.tree_size} is not a log size"
    try:
        if len(checkpoint.root_bytes()) != 32:
            raise ValueError
    except ValueError:
        return "root is not 32 bytes of hex"
    if not signing.signature_holds(public, checkpoint.signed_bytes(), checkpoint.signature):
        return "signature does not verify"
    return None
