from pathlib import Path

import pytest

from daemons import config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lastmile.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = config.load({})
    assert s.radiusd.auth_port == 1812
    assert s.flowcollector.ipfix_port == 4739
    assert s.source == "defaults"


def test_file_and_environment_override(tmp_path: Path) -> None:
    path = write(tmp_path, "[radiusd]\nauth_port = 11812\nacct_port = 11813\n[log]\nlevel = 'debug'\n")
    s = config.load(
        {
            "LASTMILE_CONFIG": str(path),
            "LASTMILE_RADIUSD__ACCT_PORT": "21813",
            "LASTMILE_DATABASE__POOL_MAX": "3",
            "LASTMILE_RADIUSD__DRAIN_TIMEOUT": "2.5",
        }
    )
    assert (s.radiusd.auth_port, s.radiusd.acct_port) == (11812, 21813)
    assert s.database.pool_max == 3
    assert s.radiusd.drain_timeout == 2.5
    assert s.log.level == "debug"
    assert s.source == str(path)


@pytest.mark.parametrize(
    ("env", "file", "expected"),
    [
        (
            {"LASTMILE_RADIUSD__AUTH_PORT": "abc"},
            "",
            "LASTMILE_RADIUSD__AUTH_PORT: radiusd.auth_port = 'abc' is not an integer",
        ),
        (
            {},
            "[radiusd]\nauth_port = 'abc'\n",
            "[radiusd] auth_port: radiusd.auth_port = 'abc' is not an integer",
        ),
        (
            {},
            "[radiusd]\nauth_port = 70000\n",
            "radiusd.auth_port = 70000 must be a port number from 1 to 65535",
        ),
        ({}, "[radiusd]\nauth_prot = 1812\n", "unknown key radiusd.auth_prot"),
        ({}, "[radius]\nauth_port = 1812\n", "unknown section [radius]"),
        ({"LASTMILE_RADIUS__AUTH_PORT": "1"}, "", "LASTMILE_RADIUS__AUTH_PORT: unknown section 'radius'"),
        (
            {},
            "[log]\nlevel = 'loud'\n",
            "log.level = 'loud' is not one of 'debug', 'info', 'warning', 'error'",
        ),
        ({}, "[radiusd]\nbind = 'nowhere'\n", "radiusd.bind = 'nowhere' must be an IPv4 or IPv6 address"),
        ({}, "[radiusd\n", "not valid TOML"),
        ({"LASTMILE_MQTT__QOS": "3"}, "", "mqtt.qos = '3'"),
        ({"LASTMILE_RADIUSD__DRAIN_TIMEOUT": "-1"}, "", "must be greater than 0"),
        # 0 would bind a port the kernel picks, which no NAS is configured for
        (
            {"LASTMILE_RADIUSD__AUTH_PORT": "0"},
            "",
            "LASTMILE_RADIUSD__AUTH_PORT: radiusd.auth_port = '0' must be a port number from 1 to 65535",
        ),
        ({}, "[radiusd]\nacct_port = 0\n", "radiusd.acct_port = 0 must be a port number from 1 to 65535"),
        ({"LASTMILE_RADIUSD__STALE_GRACE": "-1"}, "", "radiusd.stale_grace = '-1' must be 0 or more"),
    ],
)
def test_bad_settings_name_the_key(tmp_path: Path, env: dict[str, str], file: str, expected: str) -> None:
    env = dict(env)
    if file:
        env["LASTMILE_CONFIG"] = str(write(tmp_path, file))
    with pytest.raises(config.SettingsError) as info:
        config.load(env)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_zero_where_zero_means_something() -> None:
    """stale_grace = 0 closes a session right after two missed interims; metrics_port = 0 is "no
    /metrics"; both are taken as they are."""
    s = config.load({"LASTMILE_RADIUSD__STALE_GRACE": "0", "LASTMILE_RADIUSD__METRICS_PORT": "0"}, path=None)
    assert (s.radiusd.stale_grace, s.radiusd.metrics_port) == (0, 0)


def test_missing_file_named_by_environment(tmp_path: Path) -> None:
    with pytest.raises(config.SettingsError, match=r"LASTMILE_CONFIG: .*nope\.toml: no such file"):
        config.load({"LASTMILE_CONFIG": str(tmp_path / "nope.toml")})


def test_settings_are_frozen() -> None:
    s = config.load({}, path=None)
    with pytest.raises(AttributeError):
        s.radiusd.auth_port = 1  # type: ignore[misc]


def test_booleans_and_lists_from_environment() -> None:
    assert config._coerce("yes", bool, "a.b", "ENV", True) is True
    assert config._coerce("off", bool, "a.b", "ENV", True) is False
    assert config._coerce("10.0.0.1, 10.0.0.2", tuple[str, ...], "a.b", "ENV", True) == (
        "10.0.0.1",
        "10.0.0.2",
    )
    with pytest.raises(config.SettingsError):
        config._coerce("maybe", bool, "a.b", "ENV", True)


def test_docs_configuration_is_current() -> None:
    """docs/configuration.md is generated from the settings classes: every setting is documented."""
    assert (ROOT / "docs" / "configuration.md").read_text() == config.describe() + "\n"


def test_as_toml_round_trips_and_hides_passwords(tmp_path: Path) -> None:
    s = config.load({"LASTMILE_DATABASE__URL": "postgresql://lm:s3cret@db:5432/lastmile"})
    text = config.as_toml(s)
    assert "s3cret" not in text and "lm:***@db" in text
    again = config.load({}, path=write(tmp_path, text.replace("lm:***@", "lm:x@")))
    assert again.radiusd == s.radiusd
