from pathlib import Path

import pytest

from daemons import config
from flowcollector.settings import FlowcollectorSettings
from radiusd.settings import RadiusdSettings

ROOT = Path(__file__).resolve().parents[2]


def radiusd(s: config.Settings) -> RadiusdSettings:
    return s.of(RadiusdSettings)


def flow(s: config.Settings) -> FlowcollectorSettings:
    return s.of(FlowcollectorSettings)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lastmile.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = config.load({})
    assert radiusd(s).auth_port == 1812
    assert flow(s).ipfix_port == 4739
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
    assert (radiusd(s).auth_port, radiusd(s).acct_port) == (11812, 21813)
    assert s.database.pool_max == 3
    assert radiusd(s).drain_timeout == 2.5
    assert s.log.level == "debug"
    assert s.source == (
        f"{path} + env LASTMILE_DATABASE__POOL_MAX=3, LASTMILE_RADIUSD__ACCT_PORT=21813, "
        "LASTMILE_RADIUSD__DRAIN_TIMEOUT=2.5"
    )


def test_source_names_the_file_and_environment_without_secrets(tmp_path: Path) -> None:
    """The start-up line's `settings=` tells what is in force (it said `defaults` under overrides)."""
    s = config.load(
        {
            "LASTMILE_DATABASE__URL": "postgresql://lm:s3cret@db:5432/lastmile?sslpassword=k3y",
            "LASTMILE_MQTT__URL": "mqtts://events:t0ken@broker:8883",
            "LASTMILE_FLOWCOLLECTOR__METRICS_PORT": "19855",
            "LASTMILE_CONFIG": str(write(tmp_path, "")),
            "PATH": "/usr/bin",
        }
    )
    assert s.source == (
        f"{tmp_path / 'lastmile.toml'} + env LASTMILE_DATABASE__URL=postgresql://lm:***@db:5432/lastmile?***, "
        "LASTMILE_FLOWCOLLECTOR__METRICS_PORT=19855, LASTMILE_MQTT__URL=mqtts://events:***@broker:8883"
    )
    for secret in ("s3cret", "k3y", "t0ken"):
        assert secret not in s.source
    assert config.load({"LASTMILE_RADIUSD__AUTH_PORT": "11812"}, path=None).source.startswith(
        "defaults + env LASTMILE_RADIUSD__AUTH_PORT=11812"
    )


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
        radiusd(config.load(env))  # a component's section fails when it is asked for
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_zero_where_zero_means_something() -> None:
    """stale_grace = 0 closes a session right after two missed interims; metrics_port = 0 is "no
    /metrics"; both are taken as they are."""
    s = config.load({"LASTMILE_RADIUSD__STALE_GRACE": "0", "LASTMILE_RADIUSD__METRICS_PORT": "0"}, path=None)
    assert (radiusd(s).stale_grace, radiusd(s).metrics_port) == (0, 0)


def test_missing_file_named_by_environment(tmp_path: Path) -> None:
    with pytest.raises(config.SettingsError, match=r"LASTMILE_CONFIG: .*nope\.toml: no such file"):
        config.load({"LASTMILE_CONFIG": str(tmp_path / "nope.toml")})


def test_settings_are_frozen() -> None:
    s = config.load({}, path=None)
    with pytest.raises(AttributeError):
        radiusd(s).auth_port = 1  # type: ignore[misc]


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
    assert radiusd(again) == radiusd(s) and flow(again) == flow(s)


def listening_ports(s: config.Settings) -> dict[str, int]:
    """Every port setting lastmile listens on, by section.key (named here, not read from metadata)."""
    return {
        "database.embedded_port": s.database.embedded_port,
        "mqtt.embedded_port": s.mqtt.embedded_port,
        "radiusd.auth_port": radiusd(s).auth_port,
        "radiusd.acct_port": radiusd(s).acct_port,
        "radiusd.metrics_port": radiusd(s).metrics_port,
        "flowcollector.netflow_port": flow(s).netflow_port,
        "flowcollector.ipfix_port": flow(s).ipfix_port,
        "flowcollector.metrics_port": flow(s).metrics_port,
    }


def test_port_offset_moves_every_listening_port(tmp_path: Path) -> None:
    path = write(tmp_path, "port_offset = 7\n[radiusd]\nauth_port = 11812\n[flowcollector]\nmetrics_port = 0\n")
    base = config.load({"LASTMILE_CONFIG": str(write(tmp_path / "..", "[radiusd]\nauth_port = 11812\n"))})
    s = config.load(
        {
            "LASTMILE_CONFIG": str(path),
            "LASTMILE_PORT_OFFSET": "100",  # the environment's wins over the file's 7
            "LASTMILE_FLOWCOLLECTOR__IPFIX_PORT": "14739",
            "LASTMILE_DATABASE__URL": "postgresql://db:5432/lastmile",
        }
    )
    assert s.port_offset == 100
    shifted, plain = listening_ports(s), listening_ports(base)
    plain["flowcollector.ipfix_port"] = 14739
    plain["flowcollector.metrics_port"] = 0
    assert shifted == {key: port + 100 if port else 0 for key, port in plain.items()}
    assert shifted["radiusd.auth_port"] == 11912 and shifted["flowcollector.metrics_port"] == 0
    assert s.database.url == "postgresql://db:5432/lastmile"  # where lastmile connects to does not move
    assert radiusd(s).interim_interval == radiusd(base).interim_interval
    assert "LASTMILE_PORT_OFFSET=100" in s.source


def test_port_offset_from_the_file_and_its_errors(tmp_path: Path) -> None:
    assert radiusd(config.load({}, path=write(tmp_path, "port_offset = 2\n"))).acct_port == 1815
    with pytest.raises(config.SettingsError, match=r"LASTMILE_PORT_OFFSET: port_offset = 'x' is not an integer"):
        config.load({"LASTMILE_PORT_OFFSET": "x"})
    with pytest.raises(config.SettingsError, match=r"port_offset = 61000 moves database.embedded_port from 5439 to"):
        config.load({"LASTMILE_PORT_OFFSET": "61000"})  # a shared section: every command stops
    # Only the metrics ports go past 65535: radiusd's section is unusable, the shared ones are not.
    s = config.load({"LASTMILE_PORT_OFFSET": "56000"})
    with pytest.raises(config.SettingsError, match=r"moves radiusd.metrics_port from 9812 to 65812"):
        radiusd(s)
    assert s.mqtt.embedded_port == 57883


def test_as_toml_shows_the_ports_in_force_and_round_trips_with_an_offset(tmp_path: Path) -> None:
    s = config.load({"LASTMILE_PORT_OFFSET": "100"})
    text = config.as_toml(s)
    assert "auth_port = 1912" in text and "embedded_port = 5539" in text
    assert "# port_offset = 100" in text
    again = config.load({}, path=write(tmp_path, text))
    assert listening_ports(again) == listening_ports(s)


def test_a_bad_component_section_stops_that_component_only(tmp_path: Path) -> None:
    path = write(tmp_path, "[radiusd]\nauth_port = 'abc'\n[log]\nlevel = 'debug'\n")
    s = config.load({"LASTMILE_CONFIG": str(path), "LASTMILE_FLOWCOLLECTOR__IPFIX_PORT": "14739"})
    assert s.log.level == "debug" and flow(s).ipfix_port == 14739  # the others are read as set
    with pytest.raises(config.SettingsError, match=r"radiusd.auth_port = 'abc' is not an integer"):
        s.section("radiusd")
    assert "# not usable: " in config.as_toml(s)
    # A shared section stops everything.
    with pytest.raises(config.SettingsError, match=r"log.level"):
        config.load({"LASTMILE_LOG__LEVEL": "loud"})


def test_sections_of_no_installed_component_are_ignored_not_fatal(tmp_path: Path) -> None:
    """One file may serve machines that run different components: [tickets] on a machine without it."""
    path = write(tmp_path, "[tickets]\nport = 25\n[radiusd]\nauth_port = 11812\n")
    s = config.load({"LASTMILE_CONFIG": str(path), "LASTMILE_NOPE__X": "1"})
    assert s.ignored == ("nope", "tickets") and radiusd(s).auth_port == 11812
    with pytest.raises(config.SettingsError, match="no component 'tickets' is installed"):
        s.section("tickets")


def test_component_sections_come_from_the_registry() -> None:
    """What config reads and documents is what the installed components declare."""
    from daemons import registry

    names = {name for name, c in registry.components().items() if c.settings is not None}
    assert {"radiusd", "flowcollector"} <= names
    assert set(config.load({}, path=None).sections) == names
    doc = config.describe()
    assert all(f"## [{n}]\n\n(component)" in doc for n in names)
    assert all(f"## [{n}]\n\n(shared)" in doc for n in config.SHARED)
