"""Ed25519 keys for signed checkpoints: make, load, sign, check, and name a key by its id.

The private key never lives inside a home (whoever can edit the log must not also hold the key
that vouches for it); the public key is what an outside party keeps. A key's id is the hex
SHA-256 of its raw 32 public bytes, so a checkpoint names the key that signed it.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sheratan.store.files import write_durably

PRIVATE_KEY_FILE = "sheratan-signing.key"
PUBLIC_KEY_FILE = "sheratan-signing.pub"
#: A key file is a few hundred bytes; anything far larger is not one.
MAX_KEY_FILE_BYTES = 16_384


class SigningKeyError(ValueError):
    """A key file that cannot be made or read: bad input, exit 2."""


def generate(out_dir: Path, *, home: Path | None, force: bool) -> tuple[Path, Path]:
    """Write a new key pair into ``out_dir``; never inside ``home``, never over old keys."""
    out_dir = out_dir.absolute()
    if home is not None and out_dir.resolve().is_relative_to(home.resolve()):
        msg = f"refusing to write a signing key inside the home {home}: choose another --out"
        raise SigningKeyError(msg)
    private_path, public_path = out_dir / PRIVATE_KEY_FILE, out_dir / PUBLIC_KEY_FILE
    existing = [p for p in (private_path, public_path) if p.exists()]
    if existing and not force:
        raise SigningKeyError(f"{existing[0]} exists: pass --force to replace it")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_durably(private_path, private_pem, mode=0o600)
    private_path.chmod(0o600)  # even if a leftover temp file had another mode
    write_durably(public_path, public_pem)
    return private_path, public_path


def load_private(path: Path) -> Ed25519PrivateKey:
    key = _load(path, "private", lambda data: serialization.load_pem_private_key(data, None))
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    key = _load(path, "public", serialization.load_pem_public_key)
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


def _load(path: Path, what: str, parse: Callable[[bytes], object]) -> object:
    """Read and parse a PEM key file; any failure is one line naming the file."""
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise SigningKeyError(f"{path} is not an Ed25519 {what} key (too large)")
        data = path.read_bytes()
    except OSError as error:
        raise SigningKeyError(f"cannot read the {what} key {path}: {error.strerror}") from None
    try:
        return parse(data)
    except (ValueError, TypeError) as error:
        raise SigningKeyError(f"{path} is not an Ed25519 {what} key ({error})") from None


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256(raw).hexdigest()


def sign(private: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(private.sign(message)).decode()


def signature_holds(public: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature, validate=True), message)
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
