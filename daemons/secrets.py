"""Secrets kept in the database, sealed: AES-256-GCM under a key that lives outside it.

A sealed value is ``lm1:`` + base64url(nonce 12 bytes + ciphertext + tag 16 bytes); the key
file (``[secrets] key_file``) holds 32 random bytes in base64. A database dump, a backup or a
replica thus holds no router password, and one without the key cannot open them. Values are
bound to what they are for (``purpose``, the AEAD's associated data: ``routers.password``), so a
sealed value copied into another column does not open there.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets as random
from pathlib import Path

from Crypto.Cipher import AES

from daemons.config import SecretsSettings

PREFIX = "lm1:"
CREDENTIAL = "lastmile-secret-key"
ROUTER_PURPOSE = "routers.password"


class SecretError(Exception):
    """The key is missing or wrong, or a sealed value is damaged (one line, for the operator)."""


def key_path(settings: SecretsSettings, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if settings.key_file:
        return Path(settings.key_file)
    if env.get("CREDENTIALS_DIRECTORY"):
        return Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL
    return Path("var/secret.key")


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class Keyring:
    """Seals and opens values with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise SecretError("a secret key is 32 bytes")
        self._key = key

    @classmethod
    def load(cls, settings: SecretsSettings, *, create: bool = False) -> Keyring:
        """The key of ``settings``; with ``create``, a new one is written when there is none."""
        path = key_path(settings)
        if not path.exists():
            if not create:
                raise SecretError(f"[secrets] key_file {path}: no such file (`lastmile db init` creates it)")
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(random.token_bytes(32)).decode() + "\n")
        try:
            key = base64.b64decode(path.read_text().strip(), validate=True)
        except (OSError, binascii.Error, UnicodeDecodeError) as e:
            raise SecretError(f"[secrets] key_file {path}: not readable as a base64 key ({e})") from e
        if len(key) != 32:
            raise SecretError(f"[secrets] key_file {path}: holds {len(key)} bytes, not 32")
        return cls(key)

    def fingerprint(self, text: str, purpose: str) -> str:
        """A short keyed digest of ``text``: tells whether a secret changed without showing it."""
        return hmac.new(self._key, f"{purpose}\0{text}".encode(), hashlib.sha256).hexdigest()[:12]

    def seal(self, plain: str, purpose: str) -> str:
        nonce = random.token_bytes(12)
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce)
        cipher.update(purpose.encode())
        data, tag = cipher.encrypt_and_digest(plain.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + data + tag).decode()

    def open(self, sealed: str, purpose: str) -> str:
        if not is_sealed(sealed):
            raise SecretError(f"{purpose}: the value is not sealed")
        try:
            raw = base64.urlsafe_b64decode(sealed.removeprefix(PREFIX))
        except (binascii.Error, ValueError) as e:
            raise SecretError(f"{purpose}: the sealed value is damaged") from e
        if len(raw) < 28:
            raise SecretError(f"{purpose}: the sealed value is damaged")
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=raw[:12])
        cipher.update(purpose.encode())
        try:
            return cipher.decrypt_and_verify(raw[12:-16], raw[-16:]).decode()
        except (ValueError, UnicodeDecodeError) as e:
            raise SecretError(f"{purpose}: the sealed value does not open with this key") from e
