"""Sealed secrets: what a database dump holds of a router password (daemons/secrets.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons.config import SecretsSettings
from daemons.secrets import Keyring, SecretError, is_sealed, key_path


def test_a_sealed_value_opens_with_its_key_and_purpose_only(tmp_path: Path) -> None:
    keyring = Keyring.load(SecretsSettings(key_file=str(tmp_path / "k")), create=True)
    sealed = keyring.seal("Pässwörd", "routers.password")
    assert is_sealed(sealed) and "Pässwörd" not in sealed
    assert sealed != keyring.seal("Pässwörd", "routers.password")  # a fresh nonce each time
    assert keyring.open(sealed, "routers.password") == "Pässwörd"
    with pytest.raises(SecretError, match="does not open"):
        keyring.open(sealed, "services.password")
    other = Keyring.load(SecretsSettings(key_file=str(tmp_path / "other")), create=True)
    with pytest.raises(SecretError, match="does not open with this key"):
        other.open(sealed, "routers.password")
    damaged = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SecretError):
        keyring.open(damaged, "routers.password")
    with pytest.raises(SecretError, match="not sealed"):
        keyring.open("admin", "routers.password")


def test_the_key_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    with pytest.raises(SecretError, match=r"no such file \(`lastmile db init` creates it\)"):
        Keyring.load(SecretsSettings(key_file=str(path)))
    Keyring.load(SecretsSettings(key_file=str(path)), create=True)
    assert path.stat().st_mode & 0o777 == 0o600
    first = path.read_text()
    Keyring.load(SecretsSettings(key_file=str(path)), create=True)
    assert path.read_text() == first  # never replaced
    path.write_text("not base64!\n")
    with pytest.raises(SecretError, match="not readable as a base64 key"):
        Keyring.load(SecretsSettings(key_file=str(path)))
    path.write_text("c2hvcnQ=\n")
    with pytest.raises(SecretError, match="holds 5 bytes, not 32"):
        Keyring.load(SecretsSettings(key_file=str(path)))


def test_where_the_key_is_by_default() -> None:
    assert key_path(SecretsSettings(), {}) == Path("var/secret.key")
    assert key_path(SecretsSettings(), {"CREDENTIALS_DIRECTORY": "/run/credentials/x"}) == Path(
        "/run/credentials/x/lastmile-secret-key")
    assert key_path(SecretsSettings(key_file="/etc/k"), {"CREDENTIALS_DIRECTORY": "/x"}) == Path("/etc/k")
