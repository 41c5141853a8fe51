"""The CWMP messages (TR-069 Amendment 6, section 3.7 and Annex A) as typed values.

What the codec (acs/soap.py) reads from and writes to SOAP envelopes, and what the session
engine (acs/session.py) reasons about. Plain frozen dataclasses: no I/O, no XML. Times are
kept as the CPE wrote them (text): CPEs send unknown times as ``0001-01-01T00:00:00Z`` and
some send no zone, so nothing is gained by parsing them here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

NAMESPACES: dict[str, str] = {
    "urn:dslforum-org:cwmp-1-0": "1.0",
    "urn:dslforum-org:cwmp-1-1": "1.1",
    "urn:dslforum-org:cwmp-1-2": "1.2",
    "urn:dslforum-org:cwmp-1-3": "1.3",
    "urn:dslforum-org:cwmp-1-4": "1.4",
}
"""The CWMP namespaces an envelope may use, with the protocol version each names. The ACS
answers in the namespace the CPE's Inform used."""
CWMP_1_0 = "urn:dslforum-org:cwmp-1-0"


# --- structures shared by several messages -------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceIdStruct:
    manufacturer: str
    oui: str
    product_class: str
    serial_number: str


@dataclass(frozen=True, slots=True)
class EventStruct:
    code: str  # "0 BOOTSTRAP", "2 PERIODIC", "M Reboot", ...
    command_key: str = ""


@dataclass(frozen=True, slots=True)
class ParameterValue:
    name: str
    value: str
    type: str = "xsd:string"  # the xsi:type, prefix as written ("xsd:unsignedInt")


@dataclass(frozen=True, slots=True)
class ParameterInfo:
    name: str  # a partial path (an object) ends with "."
    writable: bool


@dataclass(frozen=True, slots=True)
class ParameterAttribute:
    name: str
    notification: int  # 0 off, 1 passive, 2 active (3-6: lightweight, Amendment 5)
    access_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetParameterAttribute:
    name: str
    notification_change: bool
    notification: int
    access_list_change: bool = False
    access_list: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class FaultStruct:
    """A fault as TransferComplete carries it; code 0 means no fault."""

    code: int
    string: str = ""


@dataclass(frozen=True, slots=True)
class SetParameterValuesFault:
    """One parameter's reason under fault 9003 of a SetParameterValues."""

    name: str
    code: int
    string: str = ""


# --- CPE -> ACS requests ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Inform:
    device: DeviceIdStruct
    events: tuple[EventStruct, ...]
    max_envelopes: int
    current_time: str
    retry_count: int
    parameters: tuple[ParameterValue, ...]

    def has(self, code: str) -> bool:
        return any(e.code == code for e in self.events)


@dataclass(frozen=True, slots=True)
class TransferComplete:
    command_key: str
    fault: FaultStruct
    start_time: str
    complete_time: str


@dataclass(frozen=True, slots=True)
class AutonomousTransferComplete:
    announce_url: str
    transfer_url: str
    is_download: bool
    file_type: str
    file_size: int
    target_file_name: str
    fault: FaultStruct
    start_time: str
    complete_time: str


@dataclass(frozen=True, slots=True)
class GetRPCMethods:
    """Either side may send it: the CPE asks what the ACS supports, or the ACS asks the CPE."""


@dataclass(frozen=True, slots=True)
class RequestDownload:
    file_type: str
    arguments: tuple[tuple[str, str], ...] = ()


# --- ACS -> CPE requests ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetParameterNames:
    path: str  # "" (the whole tree), a partial path ending "." or one parameter
    next_level: bool


@dataclass(frozen=True, slots=True)
class GetParameterValues:
    names: tuple[str, ...]  # parameters or partial paths


@dataclass(frozen=True, slots=True)
class SetParameterValues:
    parameters: tuple[ParameterValue, ...]
    parameter_key: str = ""


@dataclass(frozen=True, slots=True)
class GetParameterAttributes:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetParameterAttributes:
    parameters: tuple[SetParameterAttribute, ...]


@dataclass(frozen=True, slots=True)
class AddObject:
    path: str  # ends with "."
    parameter_key: str = ""


@dataclass(frozen=True, slots=True)
class DeleteObject:
    path: str  # an instance, ends with "."
    parameter_key: str = ""


@dataclass(frozen=True, slots=True)
class Reboot:
    command_key: str = ""


@dataclass(frozen=True, slots=True)
class FactoryReset:
    pass


@dataclass(frozen=True, slots=True)
class Download:
    command_key: str
    file_type: str  # "1 Firmware Upgrade Image", "3 Vendor Configuration File", ...
    url: str
    username: str = ""
    password: str = ""
    file_size: int = 0
    target_file_name: str = ""
    delay_seconds: int = 0
    success_url: str = ""
    failure_url: str = ""


@dataclass(frozen=True, slots=True)
class Upload:
    command_key: str
    file_type: str  # "1 Vendor Configuration File", "2 Vendor Log File"
    url: str
    username: str = ""
    password: str = ""
    delay_seconds: int = 0


# --- CPE -> ACS responses --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetParameterNamesResponse:
    parameters: tuple[ParameterInfo, ...]


@dataclass(frozen=True, slots=True)
class GetParameterValuesResponse:
    parameters: tuple[ParameterValue, ...]


@dataclass(frozen=True, slots=True)
class SetParameterValuesResponse:
    status: int  # 0 applied, 1 applied once the CPE reboots or commits


@dataclass(frozen=True, slots=True)
class GetParameterAttributesResponse:
    parameters: tuple[ParameterAttribute, ...]


@dataclass(frozen=True, slots=True)
class SetParameterAttributesResponse:
    pass


@dataclass(frozen=True, slots=True)
class AddObjectResponse:
    instance: int
    status: int


@dataclass(frozen=True, slots=True)
class DeleteObjectResponse:
    status: int


@dataclass(frozen=True, slots=True)
class RebootResponse:
    pass


@dataclass(frozen=True, slots=True)
class FactoryResetResponse:
    pass


@dataclass(frozen=True, slots=True)
class DownloadResponse:
    status: int  # 0 done, 1 not yet (a TransferComplete follows)
    start_time: str = ""
    complete_time: str = ""


@dataclass(frozen=True, slots=True)
class UploadResponse:
    status: int
    start_time: str = ""
    complete_time: str = ""


@dataclass(frozen=True, slots=True)
class GetRPCMethodsResponse:
    methods: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CpeFault:
    """A SOAP Fault from the CPE in answer to one of our requests (9000-9032)."""

    code: int
    string: str
    set_faults: tuple[SetParameterValuesFault, ...] = ()


# --- ACS -> CPE responses --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InformResponse:
    max_envelopes: int = 1


@dataclass(frozen=True, slots=True)
class TransferCompleteResponse:
    pass


@dataclass(frozen=True, slots=True)
class AutonomousTransferCompleteResponse:
    pass


@dataclass(frozen=True, slots=True)
class RequestDownloadResponse:
    pass


@dataclass(frozen=True, slots=True)
class AcsFault:
    """A SOAP Fault from the ACS: 8000 method not supported, 8001 request denied, 8002 internal
    error, 8003 invalid arguments, 8004 resources exceeded, 8005 retry request, 8006 ACS version
    incompatible."""

    code: int
    string: str


CpeRequest: TypeAlias = Inform | TransferComplete | AutonomousTransferComplete | GetRPCMethods | RequestDownload
"""What a CPE may send of its own accord."""
AcsRequest: TypeAlias = (GetParameterNames | GetParameterValues | SetParameterValues | GetParameterAttributes
                         | SetParameterAttributes | AddObject | DeleteObject | Reboot | FactoryReset | Download
                         | Upload | GetRPCMethods)
"""What the ACS asks of a CPE."""
CpeResponse: TypeAlias = (GetParameterNamesResponse | GetParameterValuesResponse | SetParameterValuesResponse
                          | GetParameterAttributesResponse | SetParameterAttributesResponse | AddObjectResponse
                          | DeleteObjectResponse | RebootResponse | FactoryResetResponse | DownloadResponse
                          | UploadResponse | GetRPCMethodsResponse | CpeFault)
"""What a CPE answers to an :data:`AcsRequest`."""
AcsResponse: TypeAlias = (InformResponse | TransferCompleteResponse | AutonomousTransferCompleteResponse
                          | RequestDownloadResponse | GetRPCMethodsResponse | AcsFault)
"""What the ACS answers to a :data:`CpeRequest`."""
Message: TypeAlias = CpeRequest | AcsRequest | CpeResponse | AcsResponse

ACS_METHODS = ("Inform", "GetRPCMethods", "TransferComplete", "AutonomousTransferComplete", "RequestDownload")
"""The methods the ACS supports (its GetRPCMethodsResponse)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """One HTTP body of a session. ``body`` None is an empty POST (the CPE has nothing more to
    ask) or, going out, the end of the session. ``cwmp_id`` is the cwmp:ID header, echoed in the
    answer; ``hold_requests`` the cwmp:HoldRequests header (going out: the CPE must not send
    requests of its own before the ACS's next message)."""

    body: Message | None
    cwmp_id: str | None = None
    namespace: str = CWMP_1_0
    hold_requests: bool = False
    extra: dict[str, str] = field(default_factory=dict)  # other header elements by local name


def device_key(device: DeviceIdStruct) -> str:
    """The device's identity "OUI-ProductClass-SerialNumber", each part with "%" and "-"
    percent-encoded (as GenieACS does), so that no two devices share one."""

    def part(text: str) -> str:
        return text.replace("%", "%25").replace("-", "%2D")

    return f"{part(device.oui)}-{part(device.product_class)}-{part(device.serial_number)}"
