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
class DaemonSettings:
    """What every daemon section has."""

    metrics_bind: str = setting("127.0.0.1", "Address of the Prometheus `/metrics` listener.", check=is_address)
    metrics_port: int = listen_port(0, "Port of `/metrics` (0: none).")
    drain_timeout: float = setting(
        10.0, "Seconds a SIGTERM drain may take before the rest is abandoned.", check=is_positive
    )


@dataclass(frozen=True, slots=True)
class RadiusdSettings(DaemonSettings):
    bind: str = setting("0.0.0.0", "Address RADIUS listens on (`::` for IPv6 and IPv4).", check=is_address)
    auth_port: int = listen_port(1812, "RADIUS authentication port (UDP, 1-65535).", check=is_listen_port)
    acct_port: int = listen_port(1813, "RADIUS accounting port (UDP, 1-65535).", check=is_listen_port)
    metrics_port: int = listen_port(9812, "Port of `/metrics` (0: none); worker N of several uses this + N.")
    workers: int = setting(1, "Processes sharing the ports with SO_REUSEPORT.", check=is_positive)
    blocked_action: Literal["address-list", "reject"] = setting(
        "address-list",
        "A blocked customer's login: `address-list` accepts it into `blocked_address_list` (the router "
        "redirects it to the payment page), `reject` sends Access-Reject.",
    )
    blocked_address_list: str = setting("blocked", "Mikrotik-Address-List of blocked customers' sessions.")
    block_method: Literal["disconnect", "coa"] = setting(
        "disconnect",
        "How a block or unblock reaches a live session: `disconnect` (Disconnect-Request; the "
        "router logs it in again) or `coa` (CoA-Request with the address list).",
    )
    interim_interval: int = setting(
        300, "Acct-Interim-Interval sent in every Access-Accept (seconds).", check=is_positive
    )
    stale_grace: int = setting(
        120,
        "A session without an update for 2 x interim_interval + this many seconds is closed as stale "
        "(0: right after two missed interims).",
        check=is_non_negative,
    )
    duplicate_ttl: float = setting(
        10.0, "Seconds a reply is kept to answer retransmissions (RFC 5080).", check=is_positive
    )
    max_attributes: int = setting(200, "Most attributes a request may carry.", check=is_positive)
    acct_batch: int = setting(500, "Most accounting records committed in one transaction.", check=is_positive)
    db_deadline: float = setting(
        1.0,
        "Seconds radiusd waits for PostgreSQL where a NAS waits for the answer: an accounting commit not done "
        "by then is spooled and acknowledged (it may still commit later; the replay is then a no-op), and a "
        "login's Simultaneous-Use check or pool lease is decided from memory. Keep it well below the NAS's "
        "retransmission timeout.",
        check=is_positive,
    )
    spool_dir: str = setting(
        "",
        "Where accounting is spooled while PostgreSQL is away. Empty: `$STATE_DIRECTORY` (systemd) or `var/radiusd`.",
    )
    pool_reserve: int = setting(
        60,
        "Seconds an address from a pool stays reserved for a session that has not started accounting yet.",
        check=is_positive,
    )
    pool_stock: int = setting(
        64,
        "Addresses of each lastmile pool that a radiusd instance keeps taken out of circulation for itself, "
        "so that a login without a previous address to get back is answered without waiting for a commit "
        "(0: every pool login waits for the database).",
        check=is_non_negative,
    )
    dictionary_dir: str = setting(
        "",
        "Directory of extra RADIUS dictionaries in the FreeRADIUS format (a vendor's attributes, for "
        "`tariffs.radius_reply`, CoA and `lastmile radius test`); every file in it is read. Empty: the shipped "
        "ones only (RFC, Microsoft, MikroTik). A broken file stops start-up with its name and line.",
    )
    coa_timeout: float = setting(2.0, "Seconds to wait for a CoA/Disconnect answer before retrying.", check=is_positive)
    coa_retries: int = setting(3, "CoA/Disconnect attempts before giving up.", check=is_positive)
    rcvbuf: int = setting(8 << 20, "Receive buffer asked for each UDP socket (bytes).", check=is_positive)


@dataclass(frozen=True, slots=True)
class FlowcollectorSettings(DaemonSettings):
    @staticmethod
    def _are_prefixes(value: tuple[str, ...]) -> str | None:
        for prefix in value:
            try:
                ipaddress.ip_network(prefix)
            except ValueError as e:
                return f"must be IPv4/IPv6 prefixes ({e})"
        return None

    bind: str = setting("0.0.0.0", "Address the flow listeners bind (`::` for IPv6 and IPv4).", check=is_address)
    netflow_port: int = listen_port(2055, "NetFlow v5/v9 port (UDP, 1-65535); takes IPFIX too.", check=is_listen_port)
    ipfix_port: int = listen_port(4739, "IPFIX port (UDP, 1-65535); takes NetFlow too.", check=is_listen_port)
    metrics_port: int = listen_port(9855, "Port of `/metrics` (0: none); worker N of several uses this + N.")
    workers: int = setting(1, "Processes sharing the ports with SO_REUSEPORT.", check=is_positive)
    flush_interval: float = setting(
        5.0, "Seconds between writes of the per-minute counters to PostgreSQL.", check=is_positive
    )
    max_backlog_rows: int = setting(
        2_000_000,
        "Counter rows held while PostgreSQL is away; beyond, the oldest are dropped and counted.",
        check=is_positive,
    )
    rcvbuf: int = setting(
        32 << 20,
        "Receive buffer asked for each UDP socket (bytes); raise net.core.rmem_max to match.",
        check=is_positive,
    )
    state_dir: str = setting(
        "", "Where templates are kept across restarts. Empty: `$STATE_DIRECTORY` (systemd) or `var/flowcollector`."
    )
    template_timeout: float = setting(
        1800.0, "Seconds a template lives after it was last announced.", check=is_positive
    )
    rollup_interval: float = setting(
        300.0, "Seconds between hourly/daily rollups of the traffic tables.", check=is_positive
    )
    late_window: float = setting(
        86400.0,
        "Flows that ended up to this many seconds ago are late traffic, booked at the start of their own hour "
        "(rollups then see it); older ones at arrival, counted. Ended sessions are kept this long for them.",
        check=is_positive,
    )
    own_prefixes: tuple[str, ...] = setting(
        (),
        "The ISP's own address space (prefixes): unknown traffic whose subscriber side is in it is recorded "
        "per address, for `lastmile flows leaks`. Empty: the networks of `ip_pools` and the addresses and "
        "prefixes of all services, kept current from the database.",
        check=_are_prefixes,
    )
    max_unknown_addresses: int = setting(
        10000,
        "Distinct own addresses of unknown traffic recorded per flush; the rest are folded into "
        "0.0.0.0/0 or ::/0 (\"other addresses\") and counted.",
        check=is_positive,
    )
    max_sampling_rate: int = setting(
        65535,
        "Highest sampling rate (1 in N) an exporter may announce and be believed; a higher one is "
        "dropped and counted (`sampling_too_high`). `flow_exporters.sampling_rate` is not capped by it.",
        check=lambda v: None if 1 <= v <= 1 << 20 else "must be from 1 to 1048576",
    )


@dataclass(frozen=True, slots=True)
class AcsSettings(DaemonSettings):
    bind: str = setting("0.0.0.0", "Address of the CWMP listener.", check=is_address)
    port: int = listen_port(7547, "CWMP port (TCP, HTTP).")
    metrics_port: int = listen_port(9547, "Port of `/metrics` (0: none).")


@dataclass(frozen=True, slots=True)
class ProvisiondSettings(DaemonSettings):
    metrics_port: int = listen_port(9728, "Port of `/metrics` (0: none).")
    reconcile_interval: float = setting(
        300.0, "Seconds between full reconciliations of every router.", check=is_positive
    )


@dataclass(frozen=True, slots=True)
class AdminSettings(DaemonSettings):
    bind: str = setting("127.0.0.1", "Address of the web admin, portal and API.", check=is_address)
    port: int = listen_port(8080, "HTTP port of the web admin, portal and API; `/metrics` is served there too.")


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    log: LogSettings = field(default_factory=LogSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    radiusd: RadiusdSettings = field(default_factory=RadiusdSettings)
    flowcollector: FlowcollectorSettings = field(default_factory=FlowcollectorSettings)
    acs: AcsSettings = field(default_factory=AcsSettings)
    provisiond: ProvisiondSettings = field(default_factory=ProvisiondSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    port_offset: int = 0
    """Added to every port lastmile listens on (see ``PORT_OFFSET_DOC``); already applied to the sections."""
    source: str = field(default="defaults", compare=False)
    """Where the settings came from, for the start-up log line: the file (or ``defaults``) and
    the environment overrides in force with their values, secrets shown as ``***``
    (``/etc/lastmile/lastmile.toml + env LASTMILE_DATABASE__URL=postgresql://lm:***@db/lastmile``)."""


SECTIONS: dict[str, type[Any]] = {
    name: hint for name, hint in typing.get_type_hints(Settings).items() if name not in ("port_offset", "source")
}
PORT_OFFSET_ENV = "LASTMILE_PORT_OFFSET"
PORT_OFFSET_DOC = (
    "Added to every port lastmile listens on — RADIUS, NetFlow/IPFIX, CWMP, admin, every `metrics_port`, "
    "and the embedded PostgreSQL's and MQTT broker's `embedded_port` — whether it is a default or set, so a "
    "second copy runs beside the first with one setting (`LASTMILE_PORT_OFFSET=100 lastmile up`, from another "
    "directory: each copy keeps its `./var`). Ports set to 0 stay 0; ports lastmile connects to (a NAS's "
    "`coa_port`, the database and broker in `url`) do not move. `lastmile config` shows the ports in force."
)

T = TypeVar("T")


def load(environ: Mapping[str, str] | None = None, path: Path | None = None) -> Settings:
    """Read the settings file and environment; raise SettingsError on anything wrong."""
    env = os.environ if environ is None else environ
    path, data = _read_file(env, path)
    overrides = _env_overrides(env)
    offset = _port_offset(data, env, path)
    sections: dict[str, Any] = {}
    for name in data:
        if name == "port_offset":
            continue
        if name not in SECTIONS:
            raise SettingsError(f"{path}: unknown section [{name}] (known: {', '.join(SECTIONS)})")
        if not isinstance(data[name], dict):
            raise SettingsError(f"{path}: [{name}] must be a table")
    for section, cls in SECTIONS.items():
        values: dict[str, tuple[Any, str, bool]] = {
            k: (v, f"{path}: [{section}] {k}", False) for k, v in data.get(section, {}).items()
        }
        values.update(overrides.get(section, {}))
        sections[section] = _shift(_build(cls, section, values), section, offset)
    return Settings(**sections, port_offset=offset[0], source=_source(path, env))


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
        if section not in SECTIONS:
            raise SettingsError(f"{key}: unknown section {section!r} (known: {', '.join(SECTIONS)})")
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


def describe() -> str:
    """Markdown reference of every setting (docs/configuration.md is this text)."""
    lines = [
        "# Configuration",
        "",
        "<!-- generated by `lastmile config --markdown`; tests/unit/test_config.py checks it -->",
        "",
        "lastmile reads one TOML file: `$LASTMILE_CONFIG` if set, else `/etc/lastmile/lastmile.toml`,",
        "else `./lastmile.toml`; without one, the defaults below apply. Every key can be overridden",
        "from the environment as `LASTMILE_<SECTION>__<KEY>` (for example",
        "`LASTMILE_RADIUSD__AUTH_PORT=11812`); lists are comma-separated there. A wrong value, an",
        "unknown section or key, or a broken file stops start-up with one line naming the key, and",
        "exit code 2. `lastmile config` prints the settings in force.",
        "",
        "## Top level",
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
        f"| `port_offset` | integer | `0` | {PORT_OFFSET_DOC} Environment: `{PORT_OFFSET_ENV}`. |",
        "",
    ]
    for section, cls in SECTIONS.items():
        lines += [f"## [{section}]", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
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
    """The settings in force, as TOML (secrets shown as ***)."""
    out: list[str] = [f"# from {settings.source}"]
    if settings.port_offset:
        out.append(f"# port_offset = {settings.port_offset}: already added to the ports below")
    for section in SECTIONS:
        out.append(f"\n[{section}]")
        for f in dataclasses.fields(getattr(settings, section)):
            value = getattr(getattr(settings, section), f.name)
            if isinstance(value, str) and ("@" in value and "://" in value):
                value = redact_url(value)
            out.append(f"{f.name} = {_toml_value(value)}")
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
