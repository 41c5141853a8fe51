"""Writing CWMP envelopes: string templates behind :func:`acs.soap.render`.

One writer per RPC, chosen by the message's type from :data:`WRITERS`. The prefixes are the
literal ``soap-env``, ``soap-enc``, ``xsd``, ``xsi`` and ``cwmp`` (genieacs-sim crashes on any
other RPC prefix), arguments are unqualified and in the order of TR-069 Annex A, arrays carry
their true ``soap-enc:arrayType``, booleans are written ``1``/``0`` (as GenieACS writes them),
and no whitespace is added between elements (the simulator reads ``children[0]``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from acs.messages import (
    NAMESPACES,
    AcsFault,
    AddObject,
    AddObjectResponse,
    AutonomousTransferComplete,
    AutonomousTransferCompleteResponse,
    CpeFault,
    DeleteObject,
    DeleteObjectResponse,
    Download,
    DownloadResponse,
    Envelope,
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
    ParameterValue,
    Reboot,
    RebootResponse,
    RequestDownload,
    RequestDownloadResponse,
    SetParameterAttributes,
    SetParameterAttributesResponse,
    SetParameterValues,
    SetParameterValuesResponse,
    TransferComplete,
    TransferCompleteResponse,
    Upload,
    UploadResponse,
)

_OPEN = ('<?xml version="1.0" encoding="UTF-8"?>\n<soap-env:Envelope'
         ' xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"'
         ' xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/"'
         ' xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
         ' xmlns:cwmp="')
_HOLD_REQUESTS = '<cwmp:HoldRequests soap-env:mustUnderstand="1">1</cwmp:HoldRequests>'
_HEADER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot carry, not even as character references."""
_FAULT_TYPES = {8003: "Client", 9003: "Client", 9005: "Client", 9006: "Client", 9007: "Client", 9008: "Client"}
"""The faultcode of the CWMP faults the sender's request caused (TR-069 tables of Annex A.5);
every other fault is "Server"."""


def _text(text: str) -> str:
    """``text`` escaped for element content (a carriage return kept as a reference)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def _attribute(text: str) -> str:
    """``text`` escaped for a double-quoted attribute value (whitespace kept as references)."""
    return _text(text).replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")


def _bool(value: bool) -> str:
    return "1" if value else "0"


def _strings(name: str, items: tuple[str, ...]) -> str:
    body = "".join(f"<string>{_text(item)}</string>" for item in items)
    return f'<{name} soap-enc:arrayType="xsd:string[{len(items)}]">{body}</{name}>'


def _values(values: tuple[ParameterValue, ...]) -> str:
    body = "".join(f'<ParameterValueStruct><Name>{_text(v.name)}</Name><Value xsi:type="{_attribute(v.type)}">'
                   f"{_text(v.value)}</Value></ParameterValueStruct>" for v in values)
    return f'<ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[{len(values)}]">{body}</ParameterList>'


def _fault_struct(fault: FaultStruct) -> str:
    return (f"<FaultStruct><FaultCode>{fault.code}</FaultCode><FaultString>{_text(fault.string)}</FaultString>"
            "</FaultStruct>")


def _times(start_time: str, complete_time: str) -> str:
    return f"<StartTime>{_text(start_time)}</StartTime><CompleteTime>{_text(complete_time)}</CompleteTime>"


# --- CPE -> ACS requests -----------------------------------------------------------------------


def _write_inform(m: Inform) -> str:
    d = m.device
    events = "".join(f"<EventStruct><EventCode>{_text(e.code)}</EventCode><CommandKey>{_text(e.command_key)}"
                     "</CommandKey></EventStruct>" for e in m.events)
    return (f"<cwmp:Inform><DeviceId><Manufacturer>{_text(d.manufacturer)}</Manufacturer><OUI>{_text(d.oui)}</OUI>"
            f"<ProductClass>{_text(d.product_class)}</ProductClass><SerialNumber>{_text(d.serial_number)}"
            f'</SerialNumber></DeviceId><Event soap-enc:arrayType="cwmp:EventStruct[{len(m.events)}]">{events}</Event>'
            f"<MaxEnvelopes>{m.max_envelopes}</MaxEnvelopes><CurrentTime>{_text(m.current_time)}</CurrentTime>"
            f"<RetryCount>{m.retry_count}</RetryCount>{_values(m.parameters)}</cwmp:Inform>")


def _write_transfer_complete(m: TransferComplete) -> str:
    return (f"<cwmp:TransferComplete><CommandKey>{_text(m.command_key)}</CommandKey>{_fault_struct(m.fault)}"
            f"{_times(m.start_time, m.complete_time)}</cwmp:TransferComplete>")


def _write_autonomous_transfer_complete(m: AutonomousTransferComplete) -> str:
    return (f"<cwmp:AutonomousTransferComplete><AnnounceURL>{_text(m.announce_url)}</AnnounceURL>"
            f"<TransferURL>{_text(m.transfer_url)}</TransferURL><IsDownload>{_bool(m.is_download)}</IsDownload>"
            f"<FileType>{_text(m.file_type)}</FileType><FileSize>{m.file_size}</FileSize>"
            f"<TargetFileName>{_text(m.target_file_name)}</TargetFileName>{_fault_struct(m.fault)}"
            f"{_times(m.start_time, m.complete_time)}</cwmp:AutonomousTransferComplete>")


def _write_request_download(m: RequestDownload) -> str:
    args = "".join(f"<ArgStruct><Name>{_text(name)}</Name><Value>{_text(value)}</Value></ArgStruct>"
                   for name, value in m.arguments)
    return (f"<cwmp:RequestDownload><FileType>{_text(m.file_type)}</FileType>"
            f'<FileTypeArg soap-enc:arrayType="cwmp:ArgStruct[{len(m.arguments)}]">{args}</FileTypeArg>'
            "</cwmp:RequestDownload>")


# --- ACS -> CPE requests -----------------------------------------------------------------------


def _write_get_parameter_names(m: GetParameterNames) -> str:
    return (f"<cwmp:GetParameterNames><ParameterPath>{_text(m.path)}</ParameterPath>"
            f"<NextLevel>{_bool(m.next_level)}</NextLevel></cwmp:GetParameterNames>")


def _write_get_parameter_values(m: GetParameterValues) -> str:
    return f"<cwmp:GetParameterValues>{_strings('ParameterNames', m.names)}</cwmp:GetParameterValues>"


def _write_set_parameter_values(m: SetParameterValues) -> str:
    return (f"<cwmp:SetParameterValues>{_values(m.parameters)}<ParameterKey>{_text(m.parameter_key)}</ParameterKey>"
            "</cwmp:SetParameterValues>")


def _write_get_parameter_attributes(m: GetParameterAttributes) -> str:
    return (f"<cwmp:GetParameterAttributes>{_strings('ParameterNames', m.names)}"
            "</cwmp:GetParameterAttributes>")


def _write_set_parameter_attributes(m: SetParameterAttributes) -> str:
    structs = "".join(
        f"<SetParameterAttributesStruct><Name>{_text(p.name)}</Name>"
        f"<NotificationChange>{_bool(p.notification_change)}</NotificationChange>"
        f"<Notification>{p.notification}</Notification><AccessListChange>{_bool(p.access_list_change)}"
        f"</AccessListChange>{_strings('AccessList', p.access_list)}"
        "</SetParameterAttributesStruct>" for p in m.parameters)
    return (f'<cwmp:SetParameterAttributes><ParameterList soap-enc:arrayType="cwmp:SetParameterAttributesStruct'
            f'[{len(m.parameters)}]">{structs}</ParameterList></cwmp:SetParameterAttributes>')


def _write_add_object(m: AddObject) -> str:
    return (f"<cwmp:AddObject><ObjectName>{_text(m.path)}</ObjectName><ParameterKey>{_text(m.parameter_key)}"
            "</ParameterKey></cwmp:AddObject>")


def _write_delete_object(m: DeleteObject) -> str:
    return (f"<cwmp:DeleteObject><ObjectName>{_text(m.path)}</ObjectName><ParameterKey>{_text(m.parameter_key)}"
            "</ParameterKey></cwmp:DeleteObject>")


def _write_reboot(m: Reboot) -> str:
    return f"<cwmp:Reboot><CommandKey>{_text(m.command_key)}</CommandKey></cwmp:Reboot>"


def _write_download(m: Download) -> str:
    return (f"<cwmp:Download><CommandKey>{_text(m.command_key)}</CommandKey><FileType>{_text(m.file_type)}</FileType>"
            f"<URL>{_text(m.url)}</URL><Username>{_text(m.username)}</Username><Password>{_text(m.password)}"
            f"</Password><FileSize>{m.file_size}</FileSize><TargetFileName>{_text(m.target_file_name)}"
            f"</TargetFileName><DelaySeconds>{m.delay_seconds}</DelaySeconds><SuccessURL>{_text(m.success_url)}"
            f"</SuccessURL><FailureURL>{_text(m.failure_url)}</FailureURL></cwmp:Download>")


def _write_upload(m: Upload) -> str:
    return (f"<cwmp:Upload><CommandKey>{_text(m.command_key)}</CommandKey><FileType>{_text(m.file_type)}</FileType>"
            f"<URL>{_text(m.url)}</URL><Username>{_text(m.username)}</Username><Password>{_text(m.password)}"
            f"</Password><DelaySeconds>{m.delay_seconds}</DelaySeconds></cwmp:Upload>")


# --- CPE -> ACS responses ----------------------------------------------------------------------


def _write_get_parameter_names_response(m: GetParameterNamesResponse) -> str:
    infos = "".join(f"<ParameterInfoStruct><Name>{_text(p.name)}</Name><Writable>{_bool(p.writable)}</Writable>"
                    "</ParameterInfoStruct>" for p in m.parameters)
    return (f'<cwmp:GetParameterNamesResponse><ParameterList soap-enc:arrayType="cwmp:ParameterInfoStruct'
            f'[{len(m.parameters)}]">{infos}</ParameterList></cwmp:GetParameterNamesResponse>')


def _write_get_parameter_values_response(m: GetParameterValuesResponse) -> str:
    return f"<cwmp:GetParameterValuesResponse>{_values(m.parameters)}</cwmp:GetParameterValuesResponse>"


def _write_set_parameter_values_response(m: SetParameterValuesResponse) -> str:
    return f"<cwmp:SetParameterValuesResponse><Status>{m.status}</Status></cwmp:SetParameterValuesResponse>"


def _write_get_parameter_attributes_response(m: GetParameterAttributesResponse) -> str:
    structs = "".join(
        f"<ParameterAttributeStruct><Name>{_text(p.name)}</Name><Notification>{p.notification}</Notification>"
        f"{_strings('AccessList', p.access_list)}</ParameterAttributeStruct>"
        for p in m.parameters)
    return (f'<cwmp:GetParameterAttributesResponse><ParameterList soap-enc:arrayType="cwmp:ParameterAttributeStruct'
            f'[{len(m.parameters)}]">{structs}</ParameterList></cwmp:GetParameterAttributesResponse>')


def _write_add_object_response(m: AddObjectResponse) -> str:
    return (f"<cwmp:AddObjectResponse><InstanceNumber>{m.instance}</InstanceNumber><Status>{m.status}</Status>"
            "</cwmp:AddObjectResponse>")


def _write_delete_object_response(m: DeleteObjectResponse) -> str:
    return f"<cwmp:DeleteObjectResponse><Status>{m.status}</Status></cwmp:DeleteObjectResponse>"


def _write_download_response(m: DownloadResponse) -> str:
    return (f"<cwmp:DownloadResponse><Status>{m.status}</Status>{_times(m.start_time, m.complete_time)}"
            "</cwmp:DownloadResponse>")


def _write_upload_response(m: UploadResponse) -> str:
    return (f"<cwmp:UploadResponse><Status>{m.status}</Status>{_times(m.start_time, m.complete_time)}"
            "</cwmp:UploadResponse>")


def _write_get_rpc_methods_response(m: GetRPCMethodsResponse) -> str:
    return (f"<cwmp:GetRPCMethodsResponse>{_strings('MethodList', m.methods)}"
            "</cwmp:GetRPCMethodsResponse>")


def _write_fault(m: CpeFault | AcsFault) -> str:
    """A SOAP Fault with its ``cwmp:Fault`` detail (and a 9003's per-parameter faults)."""
    set_faults = "".join(
        f"<SetParameterValuesFault><ParameterName>{_text(f.name)}</ParameterName><FaultCode>{f.code}</FaultCode>"
        f"<FaultString>{_text(f.string)}</FaultString></SetParameterValuesFault>"
        for f in (m.set_faults if isinstance(m, CpeFault) else ()))
    return (f"<soap-env:Fault><faultcode>{_FAULT_TYPES.get(m.code, 'Server')}</faultcode><faultstring>CWMP fault"
            f"</faultstring><detail><cwmp:Fault><FaultCode>{m.code}</FaultCode><FaultString>{_text(m.string)}"
            f"</FaultString>{set_faults}</cwmp:Fault></detail></soap-env:Fault>")


# --- ACS -> CPE responses ----------------------------------------------------------------------


def _write_inform_response(m: InformResponse) -> str:
    return f"<cwmp:InformResponse><MaxEnvelopes>{m.max_envelopes}</MaxEnvelopes></cwmp:InformResponse>"


def _without_arguments(name: str) -> Callable[[Any], str]:
    """The writer of a message without arguments."""
    element = f"<cwmp:{name}/>"
    return lambda m: element


WRITERS: dict[type, Callable[[Any], str]] = {
    Inform: _write_inform,
    TransferComplete: _write_transfer_complete,
    AutonomousTransferComplete: _write_autonomous_transfer_complete,
    GetRPCMethods: _without_arguments("GetRPCMethods"),
    RequestDownload: _write_request_download,
    GetParameterNames: _write_get_parameter_names,
    GetParameterValues: _write_get_parameter_values,
    SetParameterValues: _write_set_parameter_values,
    GetParameterAttributes: _write_get_parameter_attributes,
    SetParameterAttributes: _write_set_parameter_attributes,
    AddObject: _write_add_object,
    DeleteObject: _write_delete_object,
    Reboot: _write_reboot,
    FactoryReset: _without_arguments("FactoryReset"),
    Download: _write_download,
    Upload: _write_upload,
    GetParameterNamesResponse: _write_get_parameter_names_response,
    GetParameterValuesResponse: _write_get_parameter_values_response,
    SetParameterValuesResponse: _write_set_parameter_values_response,
    GetParameterAttributesResponse: _write_get_parameter_attributes_response,
    SetParameterAttributesResponse: _without_arguments("SetParameterAttributesResponse"),
    AddObjectResponse: _write_add_object_response,
    DeleteObjectResponse: _write_delete_object_response,
    RebootResponse: _without_arguments("RebootResponse"),
    FactoryResetResponse: _without_arguments("FactoryResetResponse"),
    DownloadResponse: _write_download_response,
    UploadResponse: _write_upload_response,
    GetRPCMethodsResponse: _write_get_rpc_methods_response,
    CpeFault: _write_fault,
    InformResponse: _write_inform_response,
    TransferCompleteResponse: _without_arguments("TransferCompleteResponse"),
    AutonomousTransferCompleteResponse: _without_arguments("AutonomousTransferCompleteResponse"),
    RequestDownloadResponse: _without_arguments("RequestDownloadResponse"),
    AcsFault: _write_fault,
}
"""The writer of each message type (each takes a message of its key's type)."""


def _header(envelope: Envelope) -> str:
    parts = []
    if envelope.cwmp_id is not None:
        parts.append(f'<cwmp:ID soap-env:mustUnderstand="1">{_text(envelope.cwmp_id)}</cwmp:ID>')
    if envelope.hold_requests:
        parts.append(_HOLD_REQUESTS)
    for name, value in envelope.extra.items():
        if _HEADER_NAME.match(name) is None or name in ("ID", "HoldRequests"):
            raise ValueError(f"header element {name!r}: not a name, or one the envelope's own fields write")
        parts.append(f"<cwmp:{name}>{_text(value)}</cwmp:{name}>")
    return "".join(parts)


def write_envelope(envelope: Envelope, message: Message) -> str:
    """The envelope's XML with ``message`` (its body) in it; ValueError if it cannot be written."""
    if envelope.namespace not in NAMESPACES:
        raise ValueError(f"namespace {envelope.namespace!r} is not a CWMP namespace")
    document = (f'{_OPEN}{envelope.namespace}"><soap-env:Header>{_header(envelope)}</soap-env:Header>'
                f"<soap-env:Body>{WRITERS[type(message)](message)}</soap-env:Body></soap-env:Envelope>")
    bad = _NOT_XML.search(document)
    if bad is not None:
        raise ValueError(f"the envelope holds U+{ord(bad.group()):04X}, which XML 1.0 cannot carry")
    return document
