"""Ed25519 keys for signed checkpoints: make, load, sign, check, and name a key by its id.

The private key never lives inside a home (whoever can edit the log must not also hold the key
that vouches for it); the public key is what an outside party keeps. A key's id is the hex
SHA-256 of its raw 32 public bytes, so a checkpoint names the key that signed it.
"""

from __future__ import annotations

import base64
import binascii
import os
from hashlib import sha256
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

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
    private_path.unlink(missing_ok=True)  # --force: recreate, so the mode below always holds
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, private_pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    public_path.write_bytes(public_pem)
    return private_path, public_path


def _read(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise SigningKeyError(f"{path} is not an Ed25519 {what} key (too large)")
        return path.read_bytes()
    except OSError as error:
        raise SigningKeyError(f"cannot read the {what} key {path}: {error.strerror}") from None


def load_private(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "private"), password=None)
    except (ValueError, TypeError) as error:
        raise SigningKeyError(f"{path} is not an Ed25519 private key ({error})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path, "public"))
    except (ValueError, TypeError) as error:
        raise SigningKeyError(f"{path} is not an Ed25519 public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{path} is not an Ed25519 public key")
    return key


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
