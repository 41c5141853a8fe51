"""CPE devices, tasks, presets, files and sessions: request and response types (validation and
the OpenAPI document), and the checks of what the ACS reads from the rows the admin writes.

The admin may not import the ACS (components meet in PostgreSQL only), yet what it queues must
be what the ACS runs. So the shapes are checked here as the ACS checks them: :func:`task_problems`
as acs/tasks.py ``check_args``, :func:`preset_problems` as acs/plan.py ``check_preset``, with the
same words, and :data:`ALIASES` and :data:`SECRET_SUFFIXES` are acs/datamodel.py's.
tests/unit/test_admin_devices.py holds each pair equal, so a change on one side fails there.

Secrets (passwords, keys: :func:`is_secret`) are never shown: the parameter tree masks them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NamedTuple

import jinja2
import msgspec
from jinja2.sandbox import ImmutableSandboxedEnvironment

from admin.schemas import Id, Limit, Name

Direction = Literal["asc", "desc"]
Search = Annotated[str, msgspec.Meta(max_length=200, pattern=r"^[^\x00]*$")]
Tag = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
Status = Literal["online", "today", "offline"]
TaskKind = Literal["get", "set", "refresh", "add_object", "delete_object", "get_attributes", "set_attributes",
                   "reboot", "factory_reset", "download", "upload"]
TASK_KINDS: tuple[str, ...] = ("get", "set", "refresh", "add_object", "delete_object", "get_attributes",
                               "set_attributes", "reboot", "factory_reset", "download", "upload")
TaskStatus = Literal["queued", "waiting", "done", "fault", "cancelled"]
Outcome = Literal["ok", "fault", "timeout", "error"]
MAX_TAGS = 20
MASK = "••••••"
ROOTS = ("InternetGatewayDevice.", "Device.")
ONLINE_WITHOUT_INTERVAL_S = 600
"""A device whose PeriodicInformInterval is unknown is online for 10 minutes after an Inform
(else for twice its interval)."""

class Alias(NamedTuple):
    tr098: str
    tr181: str
    doc: str


_IGD = "InternetGatewayDevice."
_MS098, _MS181 = _IGD + "ManagementServer.", "Device.ManagementServer."
_PPP098 = _IGD + "WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1."
_WLAN098 = _IGD + "LANDevice.1.WLANConfiguration.1."
ALIASES: dict[str, Alias] = {
    "@management.url": Alias(_MS098 + "URL", _MS181 + "URL", "the ACS URL the CPE informs to"),
    "@management.username": Alias(_MS098 + "Username", _MS181 + "Username",
                                  "the user name the CPE authenticates to the ACS with"),
    "@management.password": Alias(_MS098 + "Password", _MS181 + "Password",
                                  "the password the CPE authenticates to the ACS with"),
    "@management.periodic_inform_enable": Alias(_MS098 + "PeriodicInformEnable", _MS181 + "PeriodicInformEnable",
                                                "whether the CPE informs periodically (xsd:boolean)"),
    "@management.periodic_inform_interval": Alias(
        _MS098 + "PeriodicInformInterval", _MS181 + "PeriodicInformInterval",
        "seconds between periodic Informs (xsd:unsignedInt)"),
    "@management.connection_request_url": Alias(_MS098 + "ConnectionRequestURL", _MS181 + "ConnectionRequestURL",
                                                "where the ACS asks the CPE for a session (read only)"),
    "@management.connection_request_username": Alias(
        _MS098 + "ConnectionRequestUsername", _MS181 + "ConnectionRequestUsername",
        "the user name the ACS's connection requests authenticate with"),
    "@management.connection_request_password": Alias(
        _MS098 + "ConnectionRequestPassword", _MS181 + "ConnectionRequestPassword",
        "the password the ACS's connection requests authenticate with"),
    "@management.parameter_key": Alias(
        _MS098 + "ParameterKey", _MS181 + "ParameterKey",
        "the ParameterKey of the last SetParameterValues, AddObject or DeleteObject (read only)"),
    "@software_version": Alias(_IGD + "DeviceInfo.SoftwareVersion", "Device.DeviceInfo.SoftwareVersion",
                               "the firmware version"),
    "@hardware_version": Alias(_IGD + "DeviceInfo.HardwareVersion", "Device.DeviceInfo.HardwareVersion",
                               "the hardware version"),
    "@provisioning_code": Alias(_IGD + "DeviceInfo.ProvisioningCode", "Device.DeviceInfo.ProvisioningCode",
                                "a code the ACS may set to tell how the device is provisioned"),
    "@uptime": Alias(_IGD + "DeviceInfo.UpTime", "Device.DeviceInfo.UpTime", "seconds since the last boot"),
    "@device_info": Alias(_IGD + "DeviceInfo.", "Device.DeviceInfo.", "the DeviceInfo object (to refresh)"),
    "@pppoe.username": Alias(_PPP098 + "Username", "Device.PPP.Interface.1.Username",
                             "the PPPoE user name (the service's login)"),
    "@pppoe.password": Alias(_PPP098 + "Password", "Device.PPP.Interface.1.Password", "the PPPoE password"),
    "@wan.address": Alias(_PPP098 + "ExternalIPAddress", "Device.IP.Interface.1.IPv4Address.1.IPAddress",
                          "the WAN IPv4 address (read only with PPPoE)"),
    "@wifi.enable": Alias(_WLAN098 + "Enable", "Device.WiFi.SSID.1.Enable", "the 2.4 GHz Wi-Fi on or off"),
    "@wifi.ssid": Alias(_WLAN098 + "SSID", "Device.WiFi.SSID.1.SSID", "the 2.4 GHz Wi-Fi network name"),
    "@wifi.key": Alias(_WLAN098 + "PreSharedKey.1.KeyPassphrase", "Device.WiFi.AccessPoint.1.Security.KeyPassphrase",
                       "the 2.4 GHz Wi-Fi WPA passphrase"),
    "@wifi.ssids": Alias(_IGD + "LANDevice.1.WLANConfiguration.", "Device.WiFi.SSID.",
                         "the Wi-Fi networks (an object: add_object, refresh)"),
    "@lan.hosts": Alias(_IGD + "LANDevice.1.Hosts.Host.", "Device.Hosts.Host.",
                        "the LAN hosts the CPE sees (an object: refresh)"),
}
"""acs/datamodel.py's aliases: names a preset or a task may use for a setting of either data
model, with its TR-098 and TR-181 paths and what it names."""
SECRET_SUFFIXES = ("Password", "Passphrase", "PreSharedKey", "WEPKey", "Secret")
"""acs/datamodel.py's: a parameter whose name ends so is a secret (a CPE reads it back as "")."""
FILE_TYPES: tuple[str, ...] = ("1 Firmware Upgrade Image", "2 Web Content", "3 Vendor Configuration File",
                               "4 Tone File", "5 Ringer File")
"""The TR-069 FileTypes of a Download (schema.sql acs_files)."""
MATCH_KEYS = ("tags", "oui", "product_class", "software_version", "data_model", "events")
ACTIONS: dict[str, tuple[str, ...]] = {
    "set": ("value", "type"), "refresh": ("max_age",), "add_object": ("count",), "download": (),
    "reboot": (), "connection_request_credentials": (),
}
"""A preset action's key -> the other keys it may have (acs/plan.py's)."""
MAX_COUNT = 16
_ARGS: dict[str, tuple[str, ...]] = {
    "get": ("names",), "set": ("values",), "refresh": ("path",), "add_object": ("path",),
    "delete_object": ("path",), "get_attributes": ("names",), "set_attributes": ("attributes",),
    "reboot": (), "factory_reset": (), "download": ("file_id", "url", "file_type"), "upload": ("file_type",),
}
_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
_TAGS = re.compile(r"[\s,]+")
_TAG = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


# -- devices ----------------------------------------------------------------------------------

class DeviceQuery(msgspec.Struct, kw_only=True):
    q: Annotated[Search, msgspec.Meta(description="the start of the serial or PPPoE user name, or part of the "
                                                  "cwmp id")] | None = None
    customer: Annotated[Search, msgspec.Meta(description="a customer number, or part of its name")] | None = None
    customer_id: Id | None = None
    software_version: Annotated[Search, msgspec.Meta(description="exactly this version")] | None = None
    tag: Tag | None = None
    param: Annotated[Search, msgspec.Meta(description="a parameter path, or its end (SSID matches "
                                                      "Device.WiFi.SSID.1.SSID)")] | None = None
    value: Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=r"^[^\x00]*$",
                                       description="with param (or alone): a parameter with exactly this "
                                                   "value")] | None = None
    status: Annotated[Status | None, msgspec.Meta(
        description="online: informed within twice its PeriodicInformInterval (10 minutes when unknown); "
                    "today: not online but informed in the last 24 hours; offline: neither")] = None
    sort: Literal["last_inform", "serial", "software_version", "cwmp_id"] = "last_inform"
    dir: Direction = "desc"
    after: str | None = None
    limit: Limit = 50


class CpeDevice(msgspec.Struct):
    """A CPE the ACS knows (it informed, or was entered before it did)."""

    id: int
    cwmp_id: Annotated[str, msgspec.Meta(description="OUI-ProductClass-SerialNumber")]
    oui: str
    product_class: str
    serial: str
    manufacturer: str
    data_model: Literal["tr098", "tr181"]
    hardware_version: str
    software_version: str
    address: str | None
    wan_address: str
    pppoe_username: str
    tags: list[str]
    customer_id: int | None
    customer_number: str | None
    customer_name: str | None
    service_id: int | None
    service_login: str | None
    status: Status
    inform_interval: Annotated[int | None, msgspec.Meta(description="its PeriodicInformInterval (s), when known")]
    first_inform_at: dt.datetime | None
    last_inform_at: dt.datetime | None
    last_boot_at: dt.datetime | None
    last_bootstrap_at: dt.datetime | None
    stale: Annotated[bool, msgspec.Meta(description="an input of its presets changed: applied in its next session")]
    own_password: Annotated[bool, msgspec.Meta(
        description="it authenticates with a password of its own, under its cwmp id as the user name (not the "
                    "shared [acs] username)")]
    created_at: dt.datetime
    updated_at: dt.datetime


class CpeParameter(msgspec.Struct):
    path: Annotated[str, msgspec.Meta(description="a parameter, or an object (ending with '.')")]
    value: Annotated[str | None, msgspec.Meta(description="secrets (passwords, keys) masked")]
    type: str
    writable: bool | None
    read_at: dt.datetime


class CpeDeviceDetail(CpeDevice):
    """A device with what the ACS knows of it: its parameter tree."""

    cwmp_version: str = ""
    provisioning_code: str = ""
    connection_request_url: str = ""
    parameters: list[CpeParameter] = []


CpePassword = Annotated[str, msgspec.Meta(
    min_length=8, max_length=256, pattern=r"^[\x21-\x7e]+$",
    description="the device's own CWMP password (write-only; null: back to the shared login). Configure the CPE "
                "with its cwmp id as the user name and this password.")]


class DevicePatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Tags replace the device's; a service links the device to it and its customer, a customer
    alone to the customer (no service); customer_id null unlinks it; cpe_password gives the device
    a password of its own (null takes it away)."""

    tags: Annotated[list[Tag], msgspec.Meta(max_length=MAX_TAGS)] | msgspec.UnsetType = msgspec.UNSET
    customer_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    service_id: Id | msgspec.UnsetType | None = msgspec.UNSET
    cpe_password: CpePassword | msgspec.UnsetType | None = msgspec.UNSET


# -- tasks ------------------------------------------------------------------------------------

class TaskIn(msgspec.Struct, kw_only=True):
    """Work for the device's next session (in id order). args by kind: get {"names": [path, ...]};
    set {"values": [[path, value, type], ...]}; refresh {"path": path}; add_object {"path":
    "Device.WiFi.SSID."}; delete_object {"path": "Device.WiFi.SSID.3."}; get_attributes {"names":
    [...]}; set_attributes {"attributes": [[path, notification 0-6], ...]}; reboot, factory_reset
    {}; download {"file_id": N} or {"url": ..., "file_type": ...}; upload {"file_type": ...}.
    Paths are full paths or aliases (@wifi.ssid)."""

    kind: TaskKind
    args: dict[str, Any] = {}
    max_attempts: Annotated[int, msgspec.Meta(ge=1, le=20)] = 5


class TaskCreateQuery(msgspec.Struct, kw_only=True):
    connection_request: Annotated[bool, msgspec.Meta(
        description="also ask the device for a session now (a connection request), so the task runs at once")] = False


class CpeConnectionRequest(msgspec.Struct):
    """A connection request: an acs instance sends it within a second (HTTP digest to the
    device's ConnectionRequestURL); the device then opens a session (event 6 CONNECTION REQUEST)."""

    id: int
    device_id: int
    status: Annotated[Literal["pending", "sent", "failed"], msgspec.Meta(
        description="sent: the CPE answered 200 or 204 (its session follows); failed: see error")]
    requested_at: dt.datetime
    done_at: dt.datetime | None
    http_status: Annotated[int | None, msgspec.Meta(description="what the CPE answered")]
    error: str


class CpeTask(msgspec.Struct):
    id: int
    device_id: int
    kind: str
    args: dict[str, Any]
    status: TaskStatus
    attempts: int
    max_attempts: int
    not_before: dt.datetime
    command_key: str
    result: dict[str, Any] | None
    fault_code: int | None
    fault_string: str | None
    created_by: str
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None
    wakeup_id: Annotated[int | None, msgspec.Meta(
        description="the connection request asked with it (POST ...?connection_request=true)")] = None


# -- presets ----------------------------------------------------------------------------------

class PresetIn(msgspec.Struct, kw_only=True):
    """A preset: the configuration devices that match should have. match (all keys given must
    hold): {"tags": [...], "oui": ..., "product_class": ..., "software_version": glob,
    "data_model": "tr098"|"tr181", "events": ["1 BOOT", ...]}. actions, in weight then id order
    over all presets (a later one wins): {"set": path, "value": template, "type": "xsd:..."},
    {"refresh": path, "max_age": seconds}, {"add_object": path, "count": n}, {"download": file_id},
    {"reboot": true}, {"connection_request_credentials": true}. Values are Jinja2 templates over
    device, service and customer."""

    name: Name
    enabled: bool = True
    weight: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0
    match: dict[str, Any] = {}
    actions: list[Any] = []


class PresetFields(msgspec.Struct, kw_only=True):
    """The editor's own fields (its match fields and actions text are read apart)."""

    name: Name
    enabled: bool = False
    weight: Annotated[int, msgspec.Meta(ge=-1_000_000, le=1_000_000)] = 0


class CpePreset(msgspec.Struct):
    id: int
    name: str
    enabled: bool
    weight: int
    match: dict[str, Any]
    actions: list[Any]
    created_at: dt.datetime
    updated_at: dt.datetime


# -- files and sessions -----------------------------------------------------------------------

class FileQuery(msgspec.Struct, kw_only=True):
    q: Annotated[Search, msgspec.Meta(description="part of the name")] | None = None
    file_type: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    sort: Literal["name", "created_at"] = "name"
    dir: Direction = "asc"
    after: str | None = None
    limit: Limit = 50


class CpeFile(msgspec.Struct):
    """A file the ACS serves to CPEs (Download)."""

    id: int
    name: str
    file_type: str
    oui: str
    product_class: str
    version: Annotated[str, msgspec.Meta(description="a firmware's version: a device on it gets no Download")]
    size: int
    sha256: str
    complete: bool
    created_by: str
    created_at: dt.datetime


class SessionQuery(msgspec.Struct, kw_only=True):
    device_id: Id | None = None
    q: Annotated[Search, msgspec.Meta(description="the start of the device's serial, or part of its "
                                                  "cwmp id")] | None = None
    outcome: Outcome | None = None
    event: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[^\x00]*$",
                                       description='an event code of the Inform ("1 BOOT")')] | None = None
    dir: Direction = "desc"
    after: str | None = None
    limit: Limit = 50


class CpeSession(msgspec.Struct):
    """A line of the access log: one CWMP session, written when it ended."""

    started_at: dt.datetime
    device_id: int
    cwmp_id: str
    address: str | None
    events: list[str]
    rpcs: list[str]
    faults: list[str]
    duration_ms: int
    outcome: Outcome
    instance: str


# -- checks -----------------------------------------------------------------------------------

def is_secret(path: str) -> bool:
    """Whether ``path`` (or the parameter an alias names) is a password or a key."""
    if path in ALIASES:
        path = ALIASES[path].tr181
    return path.rsplit(".", 1)[-1].endswith(SECRET_SUFFIXES)


def shown(path: str, value: str | None) -> str | None:
    """A parameter's value as the admin shows it: a secret masked (when it has one)."""
    return MASK if value and is_secret(path) else value


def masked_args(kind: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """A task's args as the admin and the portal show and log them: the values of secrets set
    masked (the row itself keeps them: the ACS sends them)."""
    if kind != "set" or not isinstance(args.get("values"), list):
        return dict(args)
    values = [[v[0], MASK, *v[2:]] if isinstance(v, list) and len(v) >= 2 and isinstance(v[0], str)
              and is_secret(v[0]) else v for v in args["values"]]
    return {**args, "values": values}


def parse_tags(text: str) -> list[str]:
    """Tags typed in one field (separated by commas or spaces), each once; ValueError says what is wrong."""
    tags = list(dict.fromkeys(t for t in _TAGS.split(text.strip()) if t))
    bad = [t for t in tags if not _TAG.fullmatch(t)]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a tag (letters, digits and . _ : - only, at most 64)")
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return tags


def path_problem(path: str) -> str | None:
    """What is wrong with a path a preset or task names ("" is the whole tree), or None."""
    if path.startswith("@"):
        return None if path in ALIASES else f"unknown alias {path!r}"
    if path and not path.startswith(ROOTS):
        return f"{path!r} is neither an alias nor under {' or '.join(ROOTS)}"
    if ".." in path or any(c.isspace() for c in path):
        return f"{path!r} is not a parameter path"
    return None


def task_problems(kind: str, args: Any) -> list[str]:
    """What is wrong with a task of ``kind`` with ``args`` (empty: fine), as the ACS says it."""
    if kind not in TASK_KINDS:
        return [f"unknown task kind {kind!r} (one of {', '.join(TASK_KINDS)})"]
    if not isinstance(args, dict):
        return ["args must be an object"]
    problems = [f"{kind}: unknown argument {k!r}" for k in args if k not in _ARGS[kind]]
    if kind in ("get", "get_attributes"):
        names = args.get("names")
        if not isinstance(names, list) or not names:
            problems.append(f"{kind}: names must be a non-empty list of paths")
        else:
            problems += _paths(kind, names, leaf=False)
    elif kind == "set":
        problems += _values(args.get("values"))
    elif kind in ("refresh", "add_object", "delete_object"):
        path = args.get("path")
        if not isinstance(path, str):
            problems.append(f"{kind}: path must be a string")
        else:
            problems += _paths(kind, [path], leaf=False)
            if kind != "refresh" and not path.endswith("."):
                problems.append(f"{kind}: {path!r} is not an object (it must end with '.')")
            if kind == "delete_object" and not path.rstrip(".").rsplit(".", 1)[-1].isdigit():
                problems.append(f"delete_object: {path!r} is not an instance (it must end with a number and '.')")
    elif kind == "set_attributes":
        attributes = args.get("attributes")
        if not isinstance(attributes, list) or not attributes:
            problems.append("set_attributes: attributes must be a non-empty list of [path, notification]")
        else:
            for a in attributes:
                if not (isinstance(a, list) and len(a) == 2 and isinstance(a[0], str) and type(a[1]) is int
                        and 0 <= a[1] <= 6):
                    problems.append(f"set_attributes: {a!r} is not [path, notification 0-6]")
                else:
                    problems += _paths(kind, [a[0]], leaf=False)
    elif kind == "download":
        problems += _download(args)
    elif kind == "upload" and not (isinstance(args.get("file_type"), str) and args["file_type"]):
        problems.append("upload: file_type must be given (e.g. '1 Vendor Configuration File')")
    return problems


def _paths(kind: str, paths: list[Any], *, leaf: bool) -> list[str]:
    problems = []
    for path in paths:
        if not isinstance(path, str):
            problems.append(f"{kind}: {path!r} is not a path")
        elif (p := path_problem(path)) is not None:
            problems.append(f"{kind}: {p}")
        elif leaf and (path.endswith(".") or not path):
            problems.append(f"{kind}: {path!r} is an object, not a parameter")
    return problems


def _values(values: Any) -> list[str]:
    if not isinstance(values, list) or not values:
        return ["set: values must be a non-empty list of [path, value, type]"]
    problems = []
    for v in values:
        if not (isinstance(v, list) and len(v) in (2, 3) and isinstance(v[0], str)
                and isinstance(v[1], str | int | float | bool) and (len(v) == 2 or _xsd(v[2]))):
            problems.append(f"set: {v!r} is not [path, value] or [path, value, 'xsd:type']")
        else:
            problems += _paths("set", [v[0]], leaf=True)
    return problems


def _xsd(t: Any) -> bool:
    return isinstance(t, str) and t.startswith("xsd:") and len(t) > 4


def _download(args: dict[str, Any]) -> list[str]:
    if "file_id" in args:
        if type(args["file_id"]) is not int or "url" in args:
            return ["download: file_id must be a file's id, without url"]
        return []
    url, file_type = args.get("url"), args.get("file_type")
    if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
        return ["download: give file_id, or url (http or https) and file_type"]
    if not (isinstance(file_type, str) and file_type):
        return ["download: file_type must be given with url (e.g. '1 Firmware Upgrade Image')"]
    return []


def preset_problems(match: Any, actions: Any) -> list[str]:
    """What is wrong with a preset's ``match`` and ``actions`` (empty: fine), as the ACS says it;
    a value's template must compile in the ACS's sandbox (Jinja2's immutable sandbox)."""
    problems = _match(match)
    if not isinstance(actions, list):
        return [*problems, "actions must be a list"]
    for i, action in enumerate(actions, 1):
        problems += [f"action {i}: {p}" for p in _action(action)]
    return problems


def _match(match: Any) -> list[str]:
    if not isinstance(match, dict):
        return ["match must be an object"]
    problems = [f"match: unknown key {k!r} (one of {', '.join(MATCH_KEYS)})" for k in match if k not in MATCH_KEYS]
    for key in ("tags", "events"):
        if key in match and not (isinstance(match[key], list) and match[key]
                                 and all(isinstance(t, str) and t for t in match[key])):
            problems.append(f"match: {key} must be a non-empty list of names")
    for key in ("oui", "product_class", "software_version"):
        if key in match and not isinstance(match[key], str):
            problems.append(f"match: {key} must be a string")
    if "data_model" in match and match["data_model"] not in ("tr098", "tr181"):
        problems.append("match: data_model must be one of tr098, tr181")
    return problems


def _action(action: Any) -> list[str]:
    if not isinstance(action, dict):
        return ["an action must be an object"]
    kinds = [k for k in action if k in ACTIONS]
    if len(kinds) != 1:
        return [f"an action has one of {', '.join(ACTIONS)}"]
    kind = kinds[0]
    problems = [f"{kind}: unknown key {k!r}" for k in action if k != kind and k not in ACTIONS[kind]]
    arg = action[kind]
    if kind in ("set", "refresh", "add_object"):
        if not isinstance(arg, str):
            return [*problems, f"{kind}: the path must be a string"]
        if (p := path_problem(arg)) is not None:
            return [*problems, f"{kind}: {p}"]
        if arg in ALIASES:  # an alias is an object in both data models, or in neither
            arg = ALIASES[arg].tr181
    if kind == "set":
        if arg.endswith(".") or not arg:
            problems.append(f"set: {arg!r} is an object, not a parameter")
        value = action.get("value")
        if not isinstance(value, str | int | float | bool):
            problems.append("set: value must be a template (a string), a number or a boolean")
        elif isinstance(value, str):
            try:
                _ENV.from_string(value)
            except Exception as e:  # a syntax error (or the sandbox's refusal) of an operator's text
                problems.append(f"set: the template does not compile: {e}")
        if "type" in action and not (isinstance(action["type"], str) and action["type"].startswith("xsd:")):
            problems.append("set: type must be an xsd type (xsd:string, xsd:unsignedInt, xsd:boolean, ...)")
    elif kind == "refresh":
        age = action.get("max_age")
        if isinstance(age, bool) or not isinstance(age, int | float) or not math.isfinite(age) or age <= 0:
            problems.append("refresh: max_age must be a number of seconds above 0")
    elif kind == "add_object":
        if not arg.endswith("."):
            problems.append(f"add_object: {arg!r} is not an object (it must end with '.')")
        count = action.get("count")
        if type(count) is not int or not 1 <= count <= MAX_COUNT:
            problems.append(f"add_object: count must be a whole number from 1 to {MAX_COUNT}")
    elif kind == "download":
        if type(arg) is not int:
            problems.append("download: give the id of a file")
    elif arg is not True:
        problems.append(f"{kind}: must be true")
    return problems


def downloads_of(actions: Any) -> list[int]:
    """The file ids a preset's actions download (a well-formed preset's)."""
    if not isinstance(actions, list):
        return []
    return [a["download"] for a in actions if isinstance(a, dict) and type(a.get("download")) is int]


# -- constraints ------------------------------------------------------------------------------

CONSTRAINTS: dict[str, tuple[str, str]] = {
    "acs_presets_name_unique": ("name", "another preset has this name"),
    "acs_presets_name_nonempty": ("name", "is required"),
    "acs_files_name_unique": ("name", "another file has this name"),
    "acs_files_name_valid": ("name", "letters, digits and . _ - only, at most 200"),
    "acs_devices_customer_fk": ("customer_id", "no such customer"),
    "acs_devices_service_fk": ("service_id", "no such service"),
}


def constraint_error(constraint: str) -> dict[str, str]:
    field, text = CONSTRAINTS.get(constraint, ("", f"refused by the database's rule {constraint or '(unnamed)'}"))
    return {field: text}
