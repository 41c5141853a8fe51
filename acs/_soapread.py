"""Reading CWMP envelopes: the walk over a parsed SOAP 1.1 tree behind :func:`acs.soap.parse`.

One reader per RPC, chosen by the body element's local name from :data:`READERS`. Elements are
matched by their local name whatever their prefix or namespace (CPEs qualify arguments or not);
the RPC element itself must be in a CWMP namespace of :data:`acs.messages.NAMESPACES`, and a
SOAP Fault is read as :class:`CpeFault` (or :class:`AcsFault` for codes 8000-8999). Arrays are
read from their child elements: ``soap-enc:arrayType`` counts are never trusted. Texts are kept
as written ('' for an empty element), integers and booleans checked; an argument that the
message's dataclass gives a default may be missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from xml.etree.ElementTree import Element

from acs.messages import (
    CWMP_1_0,
    NAMESPACES,
    AcsFault,
    AddObject,
    AddObjectResponse,
    AutonomousTransferComplete,
    AutonomousTransferCompleteResponse,
    CpeFault,
    DeleteObject,
    DeleteObjectResponse,
    DeviceIdStruct,
    Download,
    DownloadResponse,
    Envelope,
    EventStruct,
    FactoryReset,
    FactoryResetResponse,
    FaultStruct,
    GetParameterAttributes,
    GetParameterAttributesResponse,
    GetParameterNames,
    GetParameterNamesResponse,
    GetParameterValues,
    GetParameterValuesResponse,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Inform,
    InformResponse,
    Message,
    ParameterAttribute,
    ParameterInfo,
    ParameterValue,
    Reboot,
    RebootResponse,
    RequestDownload,
    RequestDownloadResponse,
    SetParameterAttribute,
    SetParameterAttributes,
    SetParameterAttributesResponse,
    SetParameterValues,
    SetParameterValuesFault,
    SetParameterValuesResponse,
    TransferComplete,
    TransferCompleteResponse,
    Upload,
    UploadResponse,
)

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
_ENVELOPE = f"{{{SOAP_ENV}}}Envelope"
_HEADER = f"{{{SOAP_ENV}}}Header"
_BODY = f"{{{SOAP_ENV}}}Body"
_FAULT = f"{{{SOAP_ENV}}}Fault"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,10}\s*\Z")  # every integer of CWMP's RPCs is an (unsigned)int
_BOOLEANS = {"1": True, "true": True, "0": False, "false": False}


class SoapError(ValueError):
    """A body that is not a CWMP envelope the ACS can read; the message says why.

    ``fault_code`` is the ACS fault to answer with (8003 invalid arguments for malformed or
    unknown content, 8000 for an unknown method, 8004 for too much markup); ``refused`` is true
    for hostile XML (a document type, entity declaration or external reference), which deserves
    no SOAP answer; ``cwmp_id`` is the envelope's cwmp:ID when it could be read, for the fault
    to echo.
    """

    def __init__(self, message: str, fault_code: int = 8003, *, refused: bool = False,
                 cwmp_id: str | None = None) -> None:
        super().__init__(message)
        self.fault_code = fault_code
        self.refused = refused
        self.cwmp_id = cwmp_id


def _split(tag: str) -> tuple[str, str]:
    """``(namespace, local name)`` of an ElementTree tag (namespace '' when unqualified)."""
    if tag[0] == "{":
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return "", tag


def _integer(text: str, where: str) -> int:
    if _INTEGER.match(text) is None:
        raise SoapError(f"{where}: {text[:40]!r} is not an integer")
    return int(text)


def _boolean(text: str, where: str) -> bool:
    value = _BOOLEANS.get(text.strip().lower())
    if value is None:
        raise SoapError(f"{where}: {text[:40]!r} is not a boolean")
    return value


class _Args:
    """The child elements of one element by local name, with what holds them (``where``) for
    the error messages."""

    __slots__ = ("_children", "_where")

    def __init__(self, element: Element, where: str) -> None:
        children = {child.tag: child for child in element}
        if "{" in "".join(children):  # qualified arguments: by their local names
            children = {_split(tag)[1]: child for tag, child in children.items()}
        self._children = children
        self._where = where

    def element(self, name: str) -> Element:
        child = self._children.get(name)
        if child is None:
            raise SoapError(f"{self._where}: {name} is missing")
        return child

    def text(self, name: str, default: str | None = None) -> str:
        child = self._children.get(name)
        if child is None:
            if default is None:
                raise SoapError(f"{self._where}: {name} is missing")
            return default
        return child.text or ""

    def integer(self, name: str, default: int | None = None) -> int:
        if default is not None and name not in self._children:
            return default
        return _integer(self.text(name), f"{self._where}.{name}")

    def boolean(self, name: str, default: bool | None = None) -> bool:
        if default is not None and name not in self._children:
            return default
        return _boolean(self.text(name), f"{self._where}.{name}")

    def items(self, name: str) -> list[Element]:
        """The entries of the array ``name`` (none when it is missing)."""
        child = self._children.get(name)
        return [] if child is None else list(child)

    def strings(self, name: str) -> tuple[str, ...]:
        """The texts of the array of strings ``name``."""
        return tuple(entry.text or "" for entry in self.items(name))


# --- structures ------------------------------------------------------------------------------


def _values(entries: list[Element], where: str) -> tuple[ParameterValue, ...]:
    values = []
    for entry in entries:
        if len(entry) == 2:  # the usual <Name/><Value/>, read without building an _Args
            name, value = entry
            if name.tag == "Name" and value.tag == "Value":
                values.append(ParameterValue(name.text or "", value.text or "", value.get(_XSI_TYPE, "xsd:string")))
                continue
        args = _Args(entry, where)
        value = args.element("Value")
        values.append(ParameterValue(args.text("Name"), value.text or "", value.get(_XSI_TYPE, "xsd:string")))
    return tuple(values)


def _fault(args: _Args, where: str) -> FaultStruct:
    fault = _Args(args.element("FaultStruct"), f"{where}.FaultStruct")
    return FaultStruct(fault.integer("FaultCode"), fault.text("FaultString", ""))


def _set_fault(entry: Element) -> SetParameterValuesFault:
    args = _Args(entry, "Fault.SetParameterValuesFault")
    return SetParameterValuesFault(args.text("ParameterName"), args.integer("FaultCode"), args.text("FaultString", ""))


# --- CPE -> ACS requests -----------------------------------------------------------------------


def _read_inform(rpc: Element) -> Inform:
    args = _Args(rpc, "Inform")
    device = _Args(args.element("DeviceId"), "Inform.DeviceId")
    events = []
    for entry in args.items("Event"):
        event = _Args(entry, "Inform.EventStruct")
        events.append(EventStruct(event.text("EventCode"), event.text("CommandKey", "")))
    return Inform(
        device=DeviceIdStruct(device.text("Manufacturer", ""), device.text("OUI"), device.text("ProductClass", ""),
                              device.text("SerialNumber")),
        events=tuple(events),
        max_envelopes=args.integer("MaxEnvelopes"),
        current_time=args.text("CurrentTime"),
        retry_count=args.integer("RetryCount"),
        parameters=_values(args.items("ParameterList"), "Inform.ParameterValueStruct"),
    )


def _read_transfer_complete(rpc: Element) -> TransferComplete:
    args = _Args(rpc, "TransferComplete")
    return TransferComplete(args.text("CommandKey"), _fault(args, "TransferComplete"), args.text("StartTime"),
                            args.text("CompleteTime"))


def _read_autonomous_transfer_complete(rpc: Element) -> AutonomousTransferComplete:
    where = "AutonomousTransferComplete"
    args = _Args(rpc, where)
    return AutonomousTransferComplete(
        announce_url=args.text("AnnounceURL"), transfer_url=args.text("TransferURL"),
        is_download=args.boolean("IsDownload"), file_type=args.text("FileType"), file_size=args.integer("FileSize"),
        target_file_name=args.text("TargetFileName"), fault=_fault(args, where), start_time=args.text("StartTime"),
        complete_time=args.text("CompleteTime"),
    )


def _read_request_download(rpc: Element) -> RequestDownload:
    args = _Args(rpc, "RequestDownload")
    pairs = []
    for entry in args.items("FileTypeArg"):
        arg = _Args(entry, "RequestDownload.ArgStruct")
        pairs.append((arg.text("Name"), arg.text("Value")))
    return RequestDownload(args.text("FileType"), tuple(pairs))


# --- ACS -> CPE requests -----------------------------------------------------------------------


def _read_get_parameter_names(rpc: Element) -> GetParameterNames:
    args = _Args(rpc, "GetParameterNames")
    return GetParameterNames(args.text("ParameterPath"), args.boolean("NextLevel"))


def _read_get_parameter_values(rpc: Element) -> GetParameterValues:
    return GetParameterValues(_Args(rpc, "GetParameterValues").strings("ParameterNames"))


def _read_set_parameter_values(rpc: Element) -> SetParameterValues:
    args = _Args(rpc, "SetParameterValues")
    return SetParameterValues(_values(args.items("ParameterList"), "SetParameterValues.ParameterValueStruct"),
                              args.text("ParameterKey", ""))


def _read_get_parameter_attributes(rpc: Element) -> GetParameterAttributes:
    return GetParameterAttributes(_Args(rpc, "GetParameterAttributes").strings("ParameterNames"))


def _read_set_parameter_attributes(rpc: Element) -> SetParameterAttributes:
    structs = []
    for entry in _Args(rpc, "SetParameterAttributes").items("ParameterList"):
        args = _Args(entry, "SetParameterAttributes.SetParameterAttributesStruct")
        structs.append(SetParameterAttribute(
            args.text("Name"), args.boolean("NotificationChange"), args.integer("Notification"),
            args.boolean("AccessListChange", False), args.strings("AccessList")))
    return SetParameterAttributes(tuple(structs))


def _read_add_object(rpc: Element) -> AddObject:
    args = _Args(rpc, "AddObject")
    return AddObject(args.text("ObjectName"), args.text("ParameterKey", ""))


def _read_delete_object(rpc: Element) -> DeleteObject:
    args = _Args(rpc, "DeleteObject")
    return DeleteObject(args.text("ObjectName"), args.text("ParameterKey", ""))


def _read_reboot(rpc: Element) -> Reboot:
    return Reboot(_Args(rpc, "Reboot").text("CommandKey", ""))


def _read_download(rpc: Element) -> Download:
    args = _Args(rpc, "Download")
    return Download(
        command_key=args.text("CommandKey"), file_type=args.text("FileType"), url=args.text("URL"),
        username=args.text("Username", ""), password=args.text("Password", ""), file_size=args.integer("FileSize", 0),
        target_file_name=args.text("TargetFileName", ""), delay_seconds=args.integer("DelaySeconds", 0),
        success_url=args.text("SuccessURL", ""), failure_url=args.text("FailureURL", ""),
    )


def _read_upload(rpc: Element) -> Upload:
    args = _Args(rpc, "Upload")
    return Upload(
        command_key=args.text("CommandKey"), file_type=args.text("FileType"), url=args.text("URL"),
        username=args.text("Username", ""), password=args.text("Password", ""),
        delay_seconds=args.integer("DelaySeconds", 0),
    )


# --- CPE -> ACS responses ----------------------------------------------------------------------


def _read_get_parameter_names_response(rpc: Element) -> GetParameterNamesResponse:
    infos = []
    for entry in _Args(rpc, "GetParameterNamesResponse").items("ParameterList"):
        args = _Args(entry, "GetParameterNamesResponse.ParameterInfoStruct")
        infos.append(ParameterInfo(args.text("Name"), args.boolean("Writable")))
    return GetParameterNamesResponse(tuple(infos))


def _read_get_parameter_values_response(rpc: Element) -> GetParameterValuesResponse:
    entries = _Args(rpc, "GetParameterValuesResponse").items("ParameterList")
    return GetParameterValuesResponse(_values(entries, "GetParameterValuesResponse.ParameterValueStruct"))


def _read_set_parameter_values_response(rpc: Element) -> SetParameterValuesResponse:
    return SetParameterValuesResponse(_Args(rpc, "SetParameterValuesResponse").integer("Status"))


def _read_get_parameter_attributes_response(rpc: Element) -> GetParameterAttributesResponse:
    attributes = []
    for entry in _Args(rpc, "GetParameterAttributesResponse").items("ParameterList"):
        args = _Args(entry, "GetParameterAttributesResponse.ParameterAttributeStruct")
        attributes.append(ParameterAttribute(args.text("Name"), args.integer("Notification"),
                                             args.strings("AccessList")))
    return GetParameterAttributesResponse(tuple(attributes))


def _read_add_object_response(rpc: Element) -> AddObjectResponse:
    args = _Args(rpc, "AddObjectResponse")
    return AddObjectResponse(args.integer("InstanceNumber"), args.integer("Status"))


def _read_delete_object_response(rpc: Element) -> DeleteObjectResponse:
    return DeleteObjectResponse(_Args(rpc, "DeleteObjectResponse").integer("Status"))


def _read_download_response(rpc: Element) -> DownloadResponse:
    args = _Args(rpc, "DownloadResponse")
    return DownloadResponse(args.integer("Status"), args.text("StartTime", ""), args.text("CompleteTime", ""))


def _read_upload_response(rpc: Element) -> UploadResponse:
    args = _Args(rpc, "UploadResponse")
    return UploadResponse(args.integer("Status"), args.text("StartTime", ""), args.text("CompleteTime", ""))


def _read_get_rpc_methods_response(rpc: Element) -> GetRPCMethodsResponse:
    return GetRPCMethodsResponse(_Args(rpc, "GetRPCMethodsResponse").strings("MethodList"))


# --- ACS -> CPE responses ----------------------------------------------------------------------


def _read_inform_response(rpc: Element) -> InformResponse:
    return InformResponse(_Args(rpc, "InformResponse").integer("MaxEnvelopes", 1))


def _without_arguments(cls: Callable[[], Message]) -> Callable[[Element], Message]:
    """The reader of a message without arguments (whatever the element holds is ignored)."""
    return lambda rpc: cls()


READERS: dict[str, Callable[[Element], Message]] = {
    "Inform": _read_inform,
    "TransferComplete": _read_transfer_complete,
    "AutonomousTransferComplete": _read_autonomous_transfer_complete,
    "GetRPCMethods": _without_arguments(GetRPCMethods),
    "RequestDownload": _read_request_download,
    "GetParameterNames": _read_get_parameter_names,
    "GetParameterValues": _read_get_parameter_values,
    "SetParameterValues": _read_set_parameter_values,
    "GetParameterAttributes": _read_get_parameter_attributes,
    "SetParameterAttributes": _read_set_parameter_attributes,
    "AddObject": _read_add_object,
    "DeleteObject": _read_delete_object,
    "Reboot": _read_reboot,
    "FactoryReset": _without_arguments(FactoryReset),
    "Download": _read_download,
    "Upload": _read_upload,
    "GetParameterNamesResponse": _read_get_parameter_names_response,
    "GetParameterValuesResponse": _read_get_parameter_values_response,
    "SetParameterValuesResponse": _read_set_parameter_values_response,
    "GetParameterAttributesResponse": _read_get_parameter_attributes_response,
    "SetParameterAttributesResponse": _without_arguments(SetParameterAttributesResponse),
    "AddObjectResponse": _read_add_object_response,
    "DeleteObjectResponse": _read_delete_object_response,
    "RebootResponse": _without_arguments(RebootResponse),
    "FactoryResetResponse": _without_arguments(FactoryResetResponse),
    "DownloadResponse": _read_download_response,
    "UploadResponse": _read_upload_response,
    "GetRPCMethodsResponse": _read_get_rpc_methods_response,
    "InformResponse": _read_inform_response,
    "TransferCompleteResponse": _without_arguments(TransferCompleteResponse),
    "AutonomousTransferCompleteResponse": _without_arguments(AutonomousTransferCompleteResponse),
    "RequestDownloadResponse": _without_arguments(RequestDownloadResponse),
}
"""The reader of each RPC element, by its local name."""


def _read_soap_fault(fault: Element) -> tuple[CpeFault | AcsFault, str]:
    """The fault and the CWMP namespace of its ``cwmp:Fault`` detail."""
    detail = _Args(_Args(fault, "Fault").element("detail"), "Fault.detail").element("Fault")
    args = _Args(detail, "Fault.detail.Fault")
    code, string = args.integer("FaultCode"), args.text("FaultString", "")
    namespace = _split(detail.tag)[0]
    if 8000 <= code <= 8999:
        return AcsFault(code, string), namespace
    set_faults = tuple(_set_fault(entry) for entry in detail if _split(entry.tag)[1] == "SetParameterValuesFault")
    return CpeFault(code, string, set_faults), namespace


def read_envelope(root: Element) -> Envelope:
    """The envelope whose tree ``root`` is (SoapError if it is no CWMP envelope)."""
    if root.tag != _ENVELOPE:
        raise SoapError(f"the document is {_split(root.tag)[1]!r}, not a SOAP 1.1 Envelope")
    header = body = None
    for child in root:
        if child.tag == _BODY:
            body = child
        elif child.tag == _HEADER:
            header = child
    cwmp_id: str | None = None
    namespace = CWMP_1_0
    hold_requests = False
    extra: dict[str, str] = {}
    for child in () if header is None else header:
        tag_namespace, local = _split(child.tag)
        if tag_namespace in NAMESPACES and local == "ID":
            cwmp_id, namespace = child.text or "", tag_namespace
        elif tag_namespace in NAMESPACES and local == "HoldRequests":
            hold_requests = _boolean(child.text or "", "Header.HoldRequests")
        else:
            extra[local] = child.text or ""
    try:
        if body is None:
            raise SoapError("the Envelope has no Body")
        message, body_namespace = _read_body(body)
    except SoapError as e:
        e.cwmp_id = cwmp_id
        raise
    return Envelope(message, cwmp_id, body_namespace or namespace, hold_requests, extra)


def _read_body(body: Element) -> tuple[Message | None, str | None]:
    """The body's message (None for an empty body) and its CWMP namespace (None if it names none)."""
    elements = list(body)
    if not elements:
        return None, None
    if len(elements) > 1:
        names = ", ".join(_split(e.tag)[1] for e in elements[:4])
        raise SoapError(f"the Body holds {len(elements)} elements ({names}), not one RPC")
    rpc = elements[0]
    if rpc.tag == _FAULT:
        fault, namespace = _read_soap_fault(rpc)
        return fault, namespace if namespace in NAMESPACES else None
    namespace, local = _split(rpc.tag)
    if namespace not in NAMESPACES:
        raise SoapError(f"the RPC {local!r} is not in a CWMP namespace ({namespace or 'none'})")
    reader = READERS.get(local)
    if reader is None:
        raise SoapError(f"unknown method {local!r}", 8000)
    return reader(rpc), namespace
