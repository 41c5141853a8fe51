"""The [acs] section: defaults, environment overrides, and the one-line refusals of bad settings."""

from __future__ import annotations

import pytest

from acs.settings import AcsSettings
from daemons import config
from daemons.config import SettingsError


def acs(**env: str) -> AcsSettings:
    settings = config.load(environ={f"LASTMILE_ACS__{k.upper()}": v for k, v in env.items()}, path=None,
                           components={"acs": AcsSettings})
    section: AcsSettings = settings.section("acs")
    return section


def refusal(**env: str) -> str:
    with pytest.raises(SettingsError) as e:
        acs(**env)
    assert "\n" not in str(e.value)
    return str(e.value)


def test_defaults() -> None:
    s = acs()
    assert (s.bind, s.port, s.tls_port, s.auth, s.max_new_sessions, s.client_max_size) == (
        "0.0.0.0", 7547, 0, "digest", 100, 4 << 20)
    assert s.url() == "http://127.0.0.1:7547"


def test_environment_overrides() -> None:
    s = acs(allow_networks="10.0.0.0/8, 192.0.2.7", auth="none", bind="::1", port="17547")
    assert s.allow_networks == ("10.0.0.0/8", "192.0.2.7") and s.auth == "none"
    assert s.url() == "http://[::1]:17547"
    assert acs(public_url="https://acs.example.net/").url() == "https://acs.example.net"


def test_bad_settings_are_refused_in_one_line() -> None:
    assert refusal(tls_port="7548") == "acs.tls_port = 7548 needs acs.tls_cert_file and acs.tls_key_file"
    assert "is acs.port too" in refusal(tls_port="7547", tls_cert_file="c.pem", tls_key_file="k.pem")
    assert "allow_networks" in refusal(allow_networks="10.0.0.0/8,not-a-network")
    assert "keep one" in refusal(username="cpe", password="x", password_file="/etc/p")
    assert "without acs.username" in refusal(password="x")
    assert "auth" in refusal(auth="basic")
    assert "public_url" in refusal(public_url="acs.example.net")
    assert "realm" in refusal(realm='a"b')
    assert "may name only {cwmp_id}" in refusal(username="{nope}", password="x")
    assert "may name only" in refusal(username="{serial!r}", password="x")
    assert "is not a user name" in refusal(username="cpe-{serial", password="x")
    assert acs(username="{oui}-{serial}", password="x").username == "{oui}-{serial}"
    assert acs(tls_port="7548", tls_cert_file="c.pem", tls_key_file="k.pem").tls_port == 7548
