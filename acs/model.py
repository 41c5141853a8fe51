"""What the ACS knows of a device, and what a session changes: the types the pure session
engine (acs/session.py, acs/plan.py) and the I/O around it (acs/server.py, acs/store.py) pass
between them.

The engine reads a :class:`DeviceView` (loaded by the store when a session has work) and
answers each message of the CPE with a reply and a list of :data:`Effect`; the server applies
the effects in one transaction (acs/store.py: ``apply``) before it sends the reply, so what a CPE
was told is saved. Times are POSIX seconds (float), UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

DataModel: TypeAlias = Literal["tr098", "tr181"]
ROOTS: dict[DataModel, str] = {"tr098": "InternetGatewayDevice.", "tr181": "Device."}

TaskKind: TypeAlias = Literal["get", "set", "refresh", "add_object", "delete_object", "get_attributes",
                              "set_attributes", "reboot", "factory_reset", "download", "upload"]
TASK_KINDS: tuple[TaskKind, ...] = ("get", "set", "refresh", "add_object", "delete_object", "get_attributes",
                                    "set_attributes", "reboot", "factory_reset", "download", "upload")
"""Task kinds and their ``args`` (acs_tasks.args; checked by acs/tasks.py ``check_args``):

- ``get``: ``{"names": [path, ...]}`` (GetParameterValues; partial paths allowed)
- ``set``: ``{"values": [[path, value, type], ...]}`` (type "xsd:string" when left out)
- ``refresh``: ``{"path": partial path}`` (GetParameterNames of the subtree, then its values)
- ``add_object``: ``{"path": "Device.WiFi.SSID."}``, ``delete_object``: ``{"path": "Device.WiFi.SSID.3."}``
- ``get_attributes``: ``{"names": [...]}``; ``set_attributes``: ``{"attributes": [[path, notification], ...]}``
- ``reboot``, ``factory_reset``: ``{}``
- ``download``: ``{"file_id": N}`` (a row of acs_files; the ACS serves it) or ``{"url": ..., "file_type": ...}``
- ``upload``: ``{"file_type": "1 Vendor Configuration File"}`` (the CPE puts the file to the ACS)
"""


@dataclass(frozen=True, slots=True)
class Param:
    """A parameter (or an object, path ending ".") of a device's tree as last known."""

    path: str
    value: str | None = None  # None for an object, or a parameter seen by name only
    type: str = ""
    writable: bool | None = None  # None: no GetParameterNames said yet
    read_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Device:
    """A row of acs_devices, as the engine needs it."""

    id: int
    cwmp_id: str
    oui: str
    product_class: str
    serial: str
    data_model: DataModel
    software_version: str = ""
    hardware_version: str = ""
    manufacturer: str = ""
    tags: tuple[str, ...] = ()
    customer_id: int | None = None
    service_id: int | None = None
    presets_key: str = ""
    stale: bool = True
    due_at: float | None = None
    connection_request_url: str = ""
    connection_request_username: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class Task:
    """A queued row of acs_tasks."""

    id: int
    kind: TaskKind
    args: dict[str, Any]
    attempts: int = 0
    max_attempts: int = 5


@dataclass(frozen=True, slots=True)
class Preset:
    """A row of acs_presets, its ``match`` and ``actions`` as stored (acs/plan.py reads them)."""

    id: int
    name: str
    weight: int
    match: dict[str, Any]
    actions: list[dict[str, Any]]
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file of acs_files the ACS can hand to a Download."""

    id: int
    name: str
    file_type: str
    size: int
    url: str  # where the CPE fetches it (a signed link to the ACS's /files/)
    version: str = ""  # acs_files.version: a preset downloads a firmware only to a device not on it


@dataclass(slots=True)
class DeviceView:
    """Everything the planner may look at for one session of one device.

    ``context`` is what preset templates see: ``{"device": {...}, "service": {...} | None,
    "customer": {...} | None}`` (acs/store.py ``template_context``); ``files`` the files presets
    and tasks may download, by id; ``events`` the Inform's event codes.
    """

    device: Device
    tree: dict[str, Param]
    tasks: list[Task]
    context: dict[str, Any]
    events: tuple[str, ...]
    now: float
    files: dict[int, FileRef] = field(default_factory=dict)


# --- effects: what a session changes, applied by the store before the reply goes -------------


@dataclass(frozen=True, slots=True)
class ParametersKnown:
    """Values (and/or writability) read from or set on the device: upsert into its tree."""

    params: tuple[Param, ...]


@dataclass(frozen=True, slots=True)
class ParametersForgotten:
    """A subtree that is gone (a deleted object; "" for the whole tree after 0 BOOTSTRAP)."""

    prefix: str


@dataclass(frozen=True, slots=True)
class TaskDone:
    task_id: int
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskWaiting:
    """The CPE accepted a Reboot, Download or Upload; the end comes later under ``command_key``."""

    task_id: int
    command_key: str


@dataclass(frozen=True, slots=True)
class TaskFaulted:
    """One attempt failed: the store retries it (backoff) or, out of attempts, ends it as 'fault'.
    ``detail`` goes to its acs_faults line (a SetParameterValues fault's parameters)."""

    task_id: int
    code: int
    string: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TransferEnded:
    """A TransferComplete (or M Reboot for a Reboot): the waiting task of that command key ends."""

    command_key: str
    fault_code: int = 0
    fault_string: str = ""


@dataclass(frozen=True, slots=True)
class FaultRecorded:
    """A line of acs_faults."""

    source: Literal["task", "preset", "session"]
    rpc: str
    code: int | None
    message: str
    task_id: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PresetsApplied:
    """The device is in its declared state as of ``presets_key``; ``due_at``: the next refresh.
    ``service_id`` is the service the plan saw: a device linked to one since (a PPPoE user name
    read in the session) stays stale, its presets owed with that service; so does one whose
    service or customer changed after ``since`` (the values sent were read before the change)."""

    presets_key: str
    due_at: float | None = None
    service_id: int | None = None
    since: float | None = None  # when the view the plan was made from was read (None: in this transaction)


@dataclass(frozen=True, slots=True)
class ConnectionRequestCredentials:
    """The ACS set the device's ConnectionRequestUsername/Password to these (store seals the password)."""

    username: str
    password: str


Effect: TypeAlias = (ParametersKnown | ParametersForgotten | TaskDone | TaskWaiting | TaskFaulted | TransferEnded
                     | FaultRecorded | PresetsApplied | ConnectionRequestCredentials)
