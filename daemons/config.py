"""Settings: one TOML file plus ``LASTMILE_<SECTION>__<KEY>`` environment overrides.

The file is ``$LASTMILE_CONFIG`` if set, else ``/etc/lastmile/lastmile.toml``, else
``./lastmile.toml``; with none of them every default applies. Each section is a frozen
dataclass below; the field's ``doc`` metadata is the documentation, and
``docs/configuration.md`` is generated from it (``lastmile config --markdown``).

Anything wrong (a missing file named by ``LASTMILE_CONFIG``, broken TOML, an unknown section
or key, a value of the wrong type or out of range) raises :class:`SettingsError` with one line
naming the key and where it came from; the command turns it into exit code 2.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

ENV_PREFIX = "LASTMILE_"
DEFAULT_PATHS = (Path("/etc/lastmile/lastmile.toml"), Path("lastmile.toml"))


class SettingsError(Exception):
    """A setting is wrong; ``str(error)`` is the one line shown to the user."""

    #: The section class it concerns, when it is a component's (``Settings.of`` finds it by that).
    section_type: type[Any] | None = None


def setting(
    default: Any, doc: str, *, check: Callable[[Any], str | None] | None = None, shifted: bool = False
) -> Any:
    """A dataclass field with its documentation and an optional check returning an error text.

    ``shifted``: a port lastmile listens on (or the embedded servers do), moved by ``port_offset``."""
    return field(default=default, metadata={"doc": doc, "check": check, "shifted": shifted})


def listen_port(default: int, doc: str, *, check: Callable[[Any], str | None] | None = None) -> Any:
    """A port lastmile listens on (or an embedded server does): checked (by default 0-65535, 0
    meaning off where the doc says so), and moved by ``port_offset``."""
    return setting(default, doc, check=check or is_port, shifted=True)


def is_port(value: int) -> str | None:
    return None if 0 <= value <= 65535 else "must be a port number from 0 to 65535"


def is_listen_port(value: int) -> str | None:
    """A port a daemon listens on for peers configured with it: 0 (a port the kernel picks) is refused."""
    return None if 1 <= value <= 65535 else "must be a port number from 1 to 65535"


def is_positive(value: float) -> str | None:
    return None if value > 0 else "must be greater than 0"


def is_non_negative(value: float) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def is_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IPv4 or IPv6 address"
    return None


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str = setting(
        "",
        "PostgreSQL URL (postgresql://user:pass@host:port/db). Empty: the embedded server under "
        "`embedded_dir`, started by `lastmile up`.",
    )
    embedded_dir: Path = setting(Path("var/pg"), "Data directory of the embedded PostgreSQL.")  # noqa: RUF009
    embedded_port: int = listen_port(5439, "TCP port of the embedded PostgreSQL on 127.0.0.1.")
    pool_min: int = setting(2, "Connections each daemon keeps open.", check=is_positive)
    pool_max: int = setting(10, "Most connections one daemon process opens.", check=is_positive)
    connect_timeout: float = setting(10.0, "Seconds to wait for a connection.", check=is_positive)
    lock_timeout: float = setting(
        5.0,
        "Seconds `lastmile db init` waits for each lock a schema upgrade step needs; a step that "
        "cannot get one stops, says which, and leaves the database at its previous version.",
        check=is_positive,
    )


@dataclass(frozen=True, slots=True)
class LogSettings:
    level: Literal["debug", "info", "warning", "error"] = setting("info", "Lowest level written.")
    format: Literal["auto", "json", "console"] = setting(
        "auto",
        "`json` lines (for journald), `console` (coloured, for a terminal), or `auto`: console on a TTY, else json.",
    )


@dataclass(frozen=True, slots=True)
class MqttSettings:
    url: str = setting(
        "",
        "Broker URL (mqtt://user:pass@host:1883, mqtts:// for TLS). Empty: events are off, except "
        "under `lastmile up`, which starts an embedded broker on 127.0.0.1:`embedded_port`.",
    )
    embedded_port: int = listen_port(1883, "Port of the broker `lastmile up` starts.")
    topic_prefix: str = setting("lastmile", "First level of every topic.")
    queue_size: int = setting(
        50000,
        "Events held while the broker is away or slower than the daemon (about 400 bytes each); more "
        "are dropped and counted.",
        check=is_positive,
    )
    max_inflight: int = setting(
        256,
        "Events sent and not yet acknowledged by the broker at once (QoS 1 and 2); order is kept.",
        check=lambda v: None if 1 <= v <= 65535 else "must be from 1 to 65535",
    )
    qos: int = setting(
        1,
        "MQTT QoS of published events (0, 1 or 2).",
        check=lambda v: None if v in (0, 1, 2) else "must be 0, 1 or 2",
    )


@dataclass(frozen=True, slots=True)
class BackupSettings:
    directory: str = setting(
        "",
        "Where `lastmile backup` writes its archives (`lastmile-<UTC time>.tar`, mode 600: they hold every "
        "password in the database). Empty: `$STATE_DIRECTORY` (systemd: `/var/lib/lastmile/backup`) or "
        "`var/backups`. On the same disk as the database they survive mistakes, not a lost disk: copy them "
        "elsewhere too.",
    )
    keep: int = setting(
        14,
        "Archives kept in `directory`: once a new one is complete, the oldest beyond the newest `keep` are "
        "deleted (0: none is deleted).",
        check=is_non_negative,
    )
    pg_bin_dir: str = setting(
        "",
        "Directory of the pg_dump, pg_restore and psql to use. Empty: the PostgreSQL 16 clients of the "
        "pgserver package. pg_dump must be of the server's major version or newer: for a PostgreSQL 17 "
        "server, name a PostgreSQL 17 client's bin directory (`/usr/lib/postgresql/17/bin`).",
    )


@dataclass(frozen=True, slots=True)
class SecretsSettings:
    key_file: str = setting(
        "",
        "File of the key that seals secrets kept in the database (router passwords; daemons/secrets.py): "
        "32 random bytes, base64, mode 600. Empty: `$CREDENTIALS_DIRECTORY/lastmile-secret-key` under "
        "systemd (`LoadCredential=lastmile-secret-key:/etc/lastmile/secret.key`), else `var/secret.key`. "
        "`lastmile db init` and `lastmile up` create it when it is missing; keep a copy apart from the "
        "backups (a backup holds sealed secrets only).",
    )


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    """What every daemon section has."""

    metrics_bind: str = setting("127.0.0.1", "Address of the Prometheus `/metrics` listener.", check=is_address)
    metrics_port: int = listen_port(0, "Port of `/metrics` (0: none).")
    drain_timeout: float = setting(
        10.0, "Seconds a SIGTERM drain may take before the rest is abandoned.", check=is_positive
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """The shared sections, and each component's own section (``section(name)``, ``of(cls)``).

    A component section that is wrong is kept as its error: it stops that component, which asks
    for it, and no other (the shared sections stop every command)."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    log: LogSettings = field(default_factory=LogSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    backup: BackupSettings = field(default_factory=BackupSettings)
    secrets: SecretsSettings = field(default_factory=SecretsSettings)
    port_offset: int = 0
    """Added to every port lastmile listens on (see ``PORT_OFFSET_DOC``); already applied to the sections."""
    source: str = field(default="defaults", compare=False)
    """Where the settings came from, for the start-up log line: the file (or ``defaults``) and
    the environment overrides in force with their values, secrets shown as ``***``
    (``/etc/lastmile/lastmile.toml + env LASTMILE_DATABASE__URL=postgresql://lm:***@db/lastmile``)."""
    sections: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """Component name -> its section (a DaemonSettings), or the SettingsError that makes it unusable."""
    ignored: tuple[str, ...] = ()
    """Sections of the file or environment that no installed component owns (a warning, not an error:
    one file may serve machines that run different components)."""

    def section(self, name: str) -> Any:
        """Component ``name``'s section; SettingsError if it is wrong or there is no such component."""
        value = self.sections.get(name)
        if value is None:
            raise SettingsError(f"no component {name!r} is installed (installed: {', '.join(self.sections)})")
        if isinstance(value, SettingsError):
            raise value
        return value

    def of(self, cls: type[S]) -> S:
        """The section whose dataclass is ``cls`` (typed: ``settings.of(RadiusdSettings).auth_port``)."""
        for name, value in self.sections.items():
            if type(value) is cls or (isinstance(value, SettingsError) and value.section_type is cls):
                section: S = self.section(name)
                return section
        raise SettingsError(f"no component has the settings {cls.__name__} (installed: {', '.join(self.sections)})")


SHARED: dict[str, type[Any]] = {"database": DatabaseSettings, "log": LogSettings, "mqtt": MqttSettings,
                               "backup": BackupSettings, "secrets": SecretsSettings}
"""Sections every command reads: a wrong value here stops them all."""
S = TypeVar("S", bound=DaemonSettings)
PORT_OFFSET_ENV = "LASTMILE_PORT_OFFSET"
PORT_OFFSET_DOC = (
    "Added to every port lastmile listens on — RADIUS, NetFlow/IPFIX, CWMP, admin, every `metrics_port`, "
    "and the embedded PostgreSQL's and MQTT broker's `embedded_port` — whether it is a default or set, so a "
    "second copy runs beside the first with one setting (`LASTMILE_PORT_OFFSET=100 lastmile up`, from another "
    "directory: each copy keeps its `./var`). Ports set to 0 stay 0; ports lastmile connects to (a NAS's "
    "`coa_port`, the database and broker in `url`) do not move. `lastmile config` shows the ports in force."
)

T = TypeVar("T")


def load(environ: Mapping[str, str] | None = None, path: Path | None = None,
         components: Mapping[str, type[Any]] | None = None) -> Settings:
    """Read the settings file and environment. A wrong shared section (or file) raises
    SettingsError; a wrong component section is kept as its error (``Settings.section``).

    ``components``: component name -> its settings dataclass; by default the installed ones
    (daemons.registry)."""
    env = os.environ if environ is None else environ
    if components is None:
        from daemons import registry

        components = {name: c.settings for name, c in registry.components().items() if c.settings is not None}
    path, data = _read_file(env, path)
    overrides = _env_overrides(env)
    offset = _port_offset(data, env, path)
    for name in data:
        if name != "port_offset" and not isinstance(data[name], dict):
            raise SettingsError(f"{path}: [{name}] must be a table")
    shared: dict[str, Any] = {}
    for section, cls in SHARED.items():
        shared[section] = _shift(_build(cls, section, _values(section, path, data, overrides)), section, offset)
    sections: dict[str, Any] = {}
    for section, cls in components.items():
        try:
            sections[section] = _shift(_build(cls, section, _values(section, path, data, overrides)), section, offset)
        except SettingsError as e:
            e.section_type = cls
            sections[section] = e
    known = {*SHARED, *components, "port_offset"}
    ignored = sorted({n for n in data if n not in known} | {n for n in overrides if n not in known})
    return Settings(**shared, port_offset=offset[0], source=_source(path, env), sections=types.MappingProxyType(
        sections), ignored=tuple(ignored))


def _values(section: str, path: Path | None, data: dict[str, Any],
            overrides: dict[str, dict[str, tuple[Any, str, bool]]]) -> dict[str, tuple[Any, str, bool]]:
    values: dict[str, tuple[Any, str, bool]] = {
        k: (v, f"{path}: [{section}] {k}", False) for k, v in data.get(section, {}).items()
    }
    values.update(overrides.get(section, {}))
    return values


def _port_offset(data: dict[str, Any], env: Mapping[str, str], path: Path | None) -> tuple[int, str]:
    """``port_offset`` (the environment's over the file's) and where it came from."""
    raw: Any = 0
    origin = "port_offset"
    if "port_offset" in data:
        raw, origin = data["port_offset"], f"{path}: port_offset"
    if PORT_OFFSET_ENV in env:
        raw, origin = env[PORT_OFFSET_ENV], PORT_OFFSET_ENV
    value = _coerce(raw, int, "port_offset", origin, origin == PORT_OFFSET_ENV)
    if not 0 <= value <= 65535:
        raise SettingsError(f"{origin}: port_offset = {raw!r} must be from 0 to 65535")
    return value, origin


def _shift(section: T, name: str, offset: tuple[int, str]) -> T:
    """The section with ``offset`` added to its listening ports (0 stays 0: off or any port)."""
    amount, origin = offset
    if not amount:
        return section
    changes: dict[str, int] = {}
    for f in dataclasses.fields(section):  # type: ignore[arg-type]
        port = getattr(section, f.name)
        if f.metadata.get("shifted") and port:
            if port + amount > 65535:
                raise SettingsError(
                    f"{origin}: port_offset = {amount} moves {name}.{f.name} from {port} to {port + amount}, "
                    "past 65535"
                )
            changes[f.name] = port + amount
    return dataclasses.replace(section, **changes)  # type: ignore[type-var]


SECRET_WORDS = ("password", "secret", "token", "api_key")


def _source(path: Path | None, env: Mapping[str, str]) -> str:
    """The file and the environment overrides in force (see ``Settings.source``)."""
    shown = [
        f"{key}={_shown(key, env[key])}"
        for key in sorted(env)
        if key.startswith(ENV_PREFIX) and ("__" in key or key == PORT_OFFSET_ENV)
    ]
    origin = str(path) if path else "defaults"
    return f"{origin} + env {', '.join(shown)}" if shown else origin


def _shown(key: str, value: str) -> str:
    """An environment value as logs may show it: secrets as ``***``, URLs without their password."""
    if any(word in key.lower() for word in SECRET_WORDS):
        return "***"
    if "://" in value:
        return redact_url(value.partition("?")[0] + ("?***" if "?" in value else ""))
    return value


def _read_file(env: Mapping[str, str], path: Path | None) -> tuple[Path | None, dict[str, Any]]:
    if path is None and env.get("LASTMILE_CONFIG"):
        path = Path(env["LASTMILE_CONFIG"])
        if not path.is_file():
            raise SettingsError(f"LASTMILE_CONFIG: {path}: no such file")
    if path is None:
        path = next((p for p in DEFAULT_PATHS if p.is_file()), None)
        if path is None:
            return None, {}
    try:
        with path.open("rb") as f:
            return path, tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise SettingsError(f"{path}: not valid TOML: {e}") from None
    except OSError as e:
        raise SettingsError(f"{path}: cannot read: {e.strerror}") from None


def _env_overrides(env: Mapping[str, str]) -> dict[str, dict[str, tuple[Any, str, bool]]]:
    out: dict[str, dict[str, tuple[Any, str, bool]]] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or "__" not in key:
            continue
        section, _, name = key[len(ENV_PREFIX) :].lower().partition("__")
        out.setdefault(section, {})[name] = (value, key, True)
    return out


def _build(cls: type[T], section: str, values: dict[str, tuple[Any, str, bool]]) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for name, (raw, origin, from_env) in values.items():
        if name not in fields:
            raise SettingsError(f"{origin}: unknown key {section}.{name} (known: {', '.join(fields)})")
        value = _coerce(raw, hints[name], f"{section}.{name}", origin, from_env)
        check = fields[name].metadata.get("check")
        if check and (problem := check(value)):
            raise SettingsError(f"{origin}: {section}.{name} = {raw!r} {problem}")
        kwargs[name] = value
    return cls(**kwargs)


def _coerce(raw: Any, hint: Any, key: str, origin: str, from_env: bool) -> Any:
    """Turn a TOML value or an environment string into the field's type."""

    def bad(what: str) -> SettingsError:
        return SettingsError(f"{origin}: {key} = {raw!r} is not {what}")

    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if raw not in choices:
            raise bad("one of " + ", ".join(repr(c) for c in choices))
        return raw
    if hint is bool:
        if isinstance(raw, bool):
            return raw
        if from_env and raw.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return raw.lower() in ("1", "true", "yes", "on")
        raise bad("true or false")
    if hint is int:
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if from_env:
            try:
                return int(raw, 0)
            except ValueError:
                pass
        raise bad("an integer")
    if hint is float:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if from_env:
            try:
                return float(raw)
            except ValueError:
                pass
        raise bad("a number")
    if hint is str:
        if isinstance(raw, str):
            return raw
        raise bad("a string")
    if hint is Path:
        if isinstance(raw, str) and raw:
            return Path(raw)
        raise bad("a path")
    if typing.get_origin(hint) in (list, tuple) or isinstance(hint, types.GenericAlias):
        items = [s.strip() for s in raw.split(",") if s.strip()] if from_env else raw
        if not isinstance(items, list):
            raise bad("a list")
        (item_hint, *_) = typing.get_args(hint)
        return tuple(_coerce(i, item_hint, key, origin, from_env) for i in items)
    raise TypeError(f"settings type {hint!r} of {key} has no parser")  # a bug here, not the user's


def describe(components: Mapping[str, type[Any]] | None = None) -> str:
    """Markdown reference of every setting (docs/configuration.md is this text)."""
    if components is None:
        from daemons import registry

        components = {name: c.settings for name, c in registry.components().items() if c.settings is not None}
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `lastmile config --markdown`; tests/unit/test_config.py checks it -->",
        "",
        "lastmile reads one TOML file: `$LASTMILE_CONFIG` if set, else `/etc/lastmile/lastmile.toml`,",
        "else `./lastmile.toml`; without one, the defaults below apply. Every key can be overridden",
        "from the environment as `LASTMILE_<SECTION>__<KEY>` (for example",
        "`LASTMILE_RADIUSD__AUTH_PORT=11812`); lists are comma-separated there. `lastmile config` prints",
        "the settings in force.",
        "",
        "A wrong value, an unknown key or a broken file stops start-up with one line naming the key,",
        "and exit code 2. Where it stops depends on the section: the top level and the shared",
        f"sections ({', '.join(f'`[{n}]`' for n in SHARED)}) are read by every command, so a mistake there",
        "stops them all; each component's own section is read by that component only, so a mistake in",
        "`[radiusd]` stops radiusd and leaves flowcollector running. A section that no installed",
        "component owns is ignored with a warning (one file may serve several machines).",
        "",
        "## Top level",
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
        f"| `port_offset` | integer | `0` | {PORT_OFFSET_DOC} Environment: `{PORT_OFFSET_ENV}`. |",
        "",
    ]
    for section, cls in {**SHARED, **components}.items():
        kind = "shared" if section in SHARED else "component"
        lines += [f"## [{section}]", "", f"({kind})", "", "| key | type | default | meaning |",
                  "| --- | --- | --- | --- |"]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default = f.default
            shown = f"`{default}`" if default != "" else "(empty)"
            type_name = _type_name(hints[f.name])
            lines.append(f"| `{f.name}` | {type_name} | {shown} | {f.metadata['doc']} |")
        lines.append("")
    return "\n".join(lines)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " \\| ".join(f"`{c}`" for c in typing.get_args(hint))
    if isinstance(hint, types.GenericAlias):
        return f"list of {_type_name(typing.get_args(hint)[0])}"
    return {int: "integer", float: "number", str: "string", bool: "boolean", Path: "path"}.get(hint, str(hint))


def as_toml(settings: Settings) -> str:
    """The settings in force, as TOML (secrets shown as ***); a wrong section as a comment."""
    out: list[str] = [f"# from {settings.source}"]
    if settings.port_offset:
        out.append(f"# port_offset = {settings.port_offset}: already added to the ports below")
    for name in settings.ignored:
        out.append(f"# [{name}]: no installed component owns it; ignored")
    named: list[tuple[str, Any]] = [(s, getattr(settings, s)) for s in SHARED]
    named += list(settings.sections.items())
    for section, value in named:
        out.append(f"\n[{section}]")
        if isinstance(value, SettingsError):
            out.append(f"# not usable: {value}")
            continue
        for f in dataclasses.fields(value):
            shown = getattr(value, f.name)
            if isinstance(shown, str) and ("@" in shown and "://" in shown):
                shown = redact_url(shown)
            out.append(f"{f.name} = {_toml_value(shown)}")
    return "\n".join(out) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def redact_url(url: str) -> str:
    scheme, _, rest = url.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.partition(":")[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url
