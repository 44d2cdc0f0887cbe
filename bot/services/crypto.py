"""Encryption at rest for phone numbers, transport ids, names and inbox payloads.

AES-256-GCM (from `cryptography`) encrypts: authenticated, like Fernet (AES-CBC +
HMAC), which it replaced, at a quarter of the CPU time per value (every webhook
encrypts its payload before the 200, every processed message decrypts it). Values
written by Fernet still decrypt. A keyed BLAKE2b hash, derived from the same master
key, gives stable lookups without storing the address in the clear. The master key
comes from the environment or from a key file created on first run with mode 0600.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

# Marks the AES-GCM format; ":" is outside the base64 alphabet, so no Fernet token (they
# all begin "gAAAAA") can start with it.
GCM_PREFIX = "v2:"
NONCE_BYTES = 12  # random per value: safe far beyond the 2**32 values one key may seal


class VaultKeyError(Exception):
    """The master key is missing or malformed."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return hmac.new(master, purpose, hashlib.sha256).digest()


class Vault:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) < 32:
            raise VaultKeyError("the secret key must be at least 32 bytes")
        self._aead = AESGCM(_derive(master_key, b"encrypt-gcm"))
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(master_key, b"encrypt")))
        self._hash_key = _derive(master_key, b"lookup-hash")

    def encrypt(self, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, text.encode(), None)
        return GCM_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            if token.startswith(GCM_PREFIX):
                raw = base64.urlsafe_b64decode(token[len(GCM_PREFIX):])
                return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], None).decode()
            return self._fernet.decrypt(token.encode("ascii")).decode()  # written before v2
        except (InvalidTag, InvalidToken, ValueError) as exc:
            raise VaultKeyError("data was encrypted with another key, or altered") from exc

    def lookup_hash(self, transport: str, address: str) -> str:
        """A keyed hash: equal addresses match, and nobody without the key can test one."""
        digest = hashlib.blake2b(f"{transport}\x00{address}".encode(), key=self._hash_key[:64],
                                 digest_size=32)
        return digest.hexdigest()


def load_master_key(env: Mapping[str, str], env_name: str, key_file: str | Path) -> bytes:
    """The key from `env_name` if set (base64 or hex), else from the key file, made if absent."""
    value = env.get(env_name, "").strip()
    if value:
        return _decode_key(value, f"environment variable {env_name}")
    path = Path(key_file)
    try:
        return _key_from_file(path)
    except OSError as exc:  # a folder it may not make, a file it may not read
        raise VaultKeyError(
            f"{path}: cannot read or create the key file ({exc.strerror or exc}); set "
            f"{env_name}, or security.key_file to a path the bot may write") from exc


def _key_from_file(path: Path) -> bytes:
    """The key in the file, made if absent."""
    if path.exists():
        return _decode_key(path.read_text().strip(), str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # Write the key to a private temporary file, then link it into place: the link is
    # atomic and fails if another worker got there first, so nobody ever reads a
    # half-written key and all workers end up with the same one.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".secret-", text=True)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.urlsafe_b64encode(key).decode() + "\n")
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return _decode_key(path.read_text().strip(), str(path))
    finally:
        os.unlink(tmp)
    return key


def _decode_key(text: str, where: str) -> bytes:
    for decode in (base64.urlsafe_b64decode, bytes.fromhex):
        try:
            key = decode(text)
        except ValueError:
            continue
        if len(key) >= 32:
            return key
    raise VaultKeyError(f"{where}: the key must be 32+ random bytes, base64 or hex encoded")
