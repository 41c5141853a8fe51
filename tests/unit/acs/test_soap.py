"""acs.soap on the real envelopes of genieacs-sim (tests/vectors/cwmp), on what other CPEs
write (other prefixes, namespaces, qualified arguments), on malformed content, and render then
parse giving every message back."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acs import soap
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
from acs.soap import SoapError
from tests.profiles import examples

VECTORS = Path(__file__).parents[2] / "vectors" / "cwmp"
EXPECTED = {  # file name (without .xml) -> message type
    "addobjectresponse": AddObjectResponse,
    "deleteobjectresponse": DeleteObjectResponse,
    "downloadresponse": DownloadResponse,
    "fault-9000-reply-to-getrpcmethods": CpeFault,
    "fault-9000-reply-to-reboot": CpeFault,
    "getparameternamesresponse-managementserver-nextlevel-false": GetParameterNamesResponse,
    "getparameternamesresponse-root-nextlevel-true": GetParameterNamesResponse,
    "getparametervaluesresponse": GetParameterValuesResponse,
    "inform-0-bootstrap-1-boot.pr18": Inform,
    "inform-2-periodic-first-contact": Inform,
    "inform-2-periodic": Inform,
    "inform-6-connection-request": Inform,
    "setparametervaluesresponse": SetParameterValuesResponse,
    "transfercomplete": TransferComplete,
}
ENVELOPE = ('<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:cwmp="{ns}"><soap-env:Header>{header}</soap-env:Header><soap-env:Body>{body}</soap-env:Body>'
            "</soap-env:Envelope>")


def vector(model: str, name: str) -> bytes:
    return (VECTORS / model / f"{name}.xml").read_bytes()


def envelope(body: str, header: str = '<cwmp:ID soap-env:mustUnderstand="1">7</cwmp:ID>', ns: str = CWMP_1_0) -> bytes:
    return ENVELOPE.format(ns=ns, header=header, body=body).encode()


def error(data: bytes) -> SoapError:
    with pytest.raises(SoapError) as caught:
        soap.parse(data)
    return caught.value


# --- the recorded envelopes --------------------------------------------------------------------


def test_every_vector_is_there() -> None:
    for model in ("tr098", "tr181"):
        assert sorted(p.stem for p in (VECTORS / model).glob("*.xml")) == sorted(EXPECTED)


@pytest.mark.parametrize("model", ["tr098", "tr181"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_vector_parses_into_its_message(model: str, name: str) -> None:
    parsed = soap.parse(vector(model, name))
    assert type(parsed.body) is EXPECTED[name]
    assert parsed.namespace == CWMP_1_0
    assert parsed.cwmp_id  # every sample has one
    assert parsed.hold_requests is False and parsed.extra == {}
    assert parsed.body is not None
    assert soap.method(parsed.body) == ("Fault" if name.startswith("fault") else EXPECTED[name].__name__)


def test_tr098_periodic_inform() -> None:
    parsed = soap.parse(vector("tr098", "inform-2-periodic"))
    assert parsed.cwmp_id == "rdvm25mx"
    inform = parsed.body
    assert isinstance(inform, Inform)
    assert inform.device == DeviceIdStruct("Huawei Technologies Co., Ltd.", "202BC1", "BM632w", "000001")
    assert inform.events == (EventStruct("2 PERIODIC", ""),)
    assert (inform.max_envelopes, inform.retry_count) == (1, 0)
    assert inform.current_time == "2026-11-21T04:13:20.808Z"
    assert len(inform.parameters) == 7  # arrayType says [16]
    assert inform.parameters[0] == ParameterValue("InternetGatewayDevice.DeviceInfo.SpecVersion", "1", "xsd:string")
    assert inform.parameters[3] == ParameterValue("InternetGatewayDevice.DeviceInfo.ProvisioningCode", "", "xsd:string")
    assert inform.parameters[5].value == "http://127.0.0.1:47697/"
    assert inform.parameters[6] == ParameterValue(
        "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANIPConnection.1.ExternalIPAddress", "172.3.89.139")


@pytest.mark.parametrize(("model", "serial", "count"), [("tr098", "000003", 16), ("tr181", "000004", 5)])
def test_bootstrap_inform(model: str, serial: str, count: int) -> None:
    inform = soap.parse(vector(model, "inform-0-bootstrap-1-boot.pr18")).body
    assert isinstance(inform, Inform)
    assert inform.device.serial_number == serial
    assert [e.code for e in inform.events] == ["0 BOOTSTRAP", "1 BOOT"]
    assert inform.has("0 BOOTSTRAP") and not inform.has("2 PERIODIC")
    assert len(inform.parameters) <= count


def test_tr181_inform_has_its_five_parameters() -> None:
    inform = soap.parse(vector("tr181", "inform-2-periodic")).body
    assert isinstance(inform, Inform)
    assert inform.device.oui == "00D09E" and inform.device.product_class == "HGW-181"
    assert [p.name for p in inform.parameters] == [
        "Device.DeviceInfo.HardwareVersion", "Device.DeviceInfo.SoftwareVersion", "Device.DeviceInfo.ProvisioningCode",
        "Device.ManagementServer.ParameterKey", "Device.ManagementServer.ConnectionRequestURL"]


def test_connection_request_inform() -> None:
    inform = soap.parse(vector("tr098", "inform-6-connection-request")).body
    assert isinstance(inform, Inform) and inform.events == (EventStruct("6 CONNECTION REQUEST"),)


def test_get_parameter_names_responses_keep_writable_flags() -> None:
    managed = soap.parse(vector("tr098", "getparameternamesresponse-managementserver-nextlevel-false")).body
    assert isinstance(managed, GetParameterNamesResponse)
    assert len(managed.parameters) == 11
    assert managed.parameters[0] == ParameterInfo("InternetGatewayDevice.ManagementServer.", False)
    assert managed.parameters[1] == ParameterInfo("InternetGatewayDevice.ManagementServer.ConnectionRequestPassword",
                                                  True)
    assert managed.parameters[2] == ParameterInfo("InternetGatewayDevice.ManagementServer.ConnectionRequestURL", False)
    assert sum(p.writable for p in managed.parameters) == 8
    root = soap.parse(vector("tr098", "getparameternamesresponse-root-nextlevel-true")).body
    assert isinstance(root, GetParameterNamesResponse)
    assert len(root.parameters) == 20
    assert root.parameters[1] == ParameterInfo("InternetGatewayDevice.DeviceSummary", False)


def test_get_parameter_values_response_keeps_types() -> None:
    parsed = soap.parse(vector("tr098", "getparametervaluesresponse"))
    assert parsed.cwmp_id == "acs-GetParameterValues"
    assert isinstance(parsed.body, GetParameterValuesResponse)
    assert parsed.body.parameters[1] == ParameterValue("InternetGatewayDevice.DeviceInfo.UpTime", "213138",
                                                       "xsd:unsignedInt")
    assert [p.type for p in parsed.body.parameters] == ["xsd:string", "xsd:unsignedInt", "xsd:unsignedInt",
                                                        "xsd:string"]


@pytest.mark.parametrize("model", ["tr098", "tr181"])
def test_small_responses(model: str) -> None:
    assert soap.parse(vector(model, "addobjectresponse")).body == AddObjectResponse(2, 0)
    assert soap.parse(vector(model, "deleteobjectresponse")).body == DeleteObjectResponse(0)
    assert soap.parse(vector(model, "setparametervaluesresponse")).body == SetParameterValuesResponse(0)
    assert soap.parse(vector(model, "downloadresponse")).body == DownloadResponse(1, "0001-01-01T00:00:00Z",
                                                                                  "0001-01-01T00:00:00Z")


def test_transfer_complete() -> None:
    parsed = soap.parse(vector("tr098", "transfercomplete"))
    assert parsed.body == TransferComplete("fw-1", FaultStruct(0, ""), "2026-11-21T04:13:18.803Z",
                                           "2026-11-21T04:13:20.810Z")


@pytest.mark.parametrize("rpc", ["getrpcmethods", "reboot"])
def test_cpe_faults(rpc: str) -> None:
    parsed = soap.parse(vector("tr181", f"fault-9000-reply-to-{rpc}"))
    assert parsed.body == CpeFault(9000, "Method not supported")
    assert parsed.cwmp_id == {"getrpcmethods": "acs-GetRPCMethods", "reboot": "acs-Reboot"}[rpc]


def http_body(name: str) -> bytes:
    head, _, body = (VECTORS / "http" / name).read_bytes().partition(b"\r\n\r\n")
    assert head.startswith(b"POST / HTTP/1.1\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.startswith(b"Content-Length:")).split(b":")[1])
    assert len(body) == length
    return body


def test_http_samples() -> None:
    inform = soap.parse(http_body("01-inform-post.http"))
    assert isinstance(inform.body, Inform) and inform.body.device.serial_number == "000005"
    assert inform.cwmp_id == "5lk1ddos"
    assert soap.parse(http_body("02-empty-post.http")) == Envelope(None)
    values = soap.parse(http_body("03-getparametervaluesresponse-post.http")).body
    assert isinstance(values, GetParameterValuesResponse)
    assert [(p.value, p.type) for p in values.parameters] == [
        ("V100R001IRQC56B017", "xsd:string"), ("213138", "xsd:unsignedInt"), ("300", "xsd:unsignedInt")]


# --- what other CPEs write ---------------------------------------------------------------------


def test_other_prefixes_default_namespace_and_later_cwmp_versions() -> None:
    data = (b'<?xml version="1.0"?>\n<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
            b'<SOAP-ENV:Header><ID xmlns="urn:dslforum-org:cwmp-1-2">42</ID></SOAP-ENV:Header><SOAP-ENV:Body>'
            b'<Inform xmlns="urn:dslforum-org:cwmp-1-2"><DeviceId><OUI>A</OUI><SerialNumber>S</SerialNumber>'
            b"</DeviceId><Event/><MaxEnvelopes>1</MaxEnvelopes><CurrentTime>t</CurrentTime>"
            b"<RetryCount>3</RetryCount></Inform></SOAP-ENV:Body></SOAP-ENV:Envelope>")
    parsed = soap.parse(data)
    assert parsed.namespace == "urn:dslforum-org:cwmp-1-2" and parsed.cwmp_id == "42"
    assert parsed.body == Inform(DeviceIdStruct("", "A", "", "S"), (), 1, "t", 3, ())


def test_pretty_printed_envelope_with_bom_and_qualified_arguments() -> None:
    data = ("\ufeff\n<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'\n"
            "    xmlns:c='urn:dslforum-org:cwmp-1-4' xmlns:x='http://www.w3.org/2001/XMLSchema-instance'>\n"
            "  <soapenv:Header>\n    <c:ID>abc</c:ID>\n  </soapenv:Header>\n  <soapenv:Body>\n"
            "    <c:GetParameterValuesResponse>\n      <c:ParameterList>\n        <c:ParameterValueStruct>\n"
            "          <c:Name>Device.X</c:Name>\n          <c:Value x:type='xs:int'> 5 &amp; é</c:Value>\n"
            "        </c:ParameterValueStruct>\n      </c:ParameterList>\n    </c:GetParameterValuesResponse>\n"
            "  </soapenv:Body>\n</soapenv:Envelope>\n").encode()
    parsed = soap.parse(data)
    assert parsed.namespace == "urn:dslforum-org:cwmp-1-4" and parsed.cwmp_id == "abc"
    assert parsed.body == GetParameterValuesResponse((ParameterValue("Device.X", " 5 & é", "xs:int"),))


def test_header_elements() -> None:
    header = ('<cwmp:ID>x</cwmp:ID><cwmp:HoldRequests soap-env:mustUnderstand="1">true</cwmp:HoldRequests>'
              "<cwmp:SessionTimeout>60</cwmp:SessionTimeout><cwmp:NoMoreRequests>0</cwmp:NoMoreRequests>")
    parsed = soap.parse(envelope("<cwmp:GetRPCMethods/>", header))
    assert parsed == Envelope(GetRPCMethods(), "x", CWMP_1_0, True, {"SessionTimeout": "60", "NoMoreRequests": "0"})
    assert soap.parse(envelope("<cwmp:GetRPCMethods/>", "")).cwmp_id is None


def test_empty_bodies() -> None:
    assert soap.parse(b"") == Envelope(None)
    assert soap.parse(b" \r\n\t") == Envelope(None)
    assert soap.parse(envelope("")) == Envelope(None, "7")


def test_fault_9003_with_its_parameters() -> None:
    body = ("<soap-env:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring><detail>"
            "<cwmp:Fault><FaultCode>9003</FaultCode><FaultString>Invalid arguments</FaultString>"
            "<SetParameterValuesFault><ParameterName>A.B</ParameterName><FaultCode>9007</FaultCode>"
            "<FaultString>bad value</FaultString></SetParameterValuesFault>"
            "<SetParameterValuesFault><ParameterName>A.C</ParameterName><FaultCode>9008</FaultCode>"
            "</SetParameterValuesFault></cwmp:Fault></detail></soap-env:Fault>")
    parsed = soap.parse(envelope(body, ns="urn:dslforum-org:cwmp-1-1"))
    assert parsed.namespace == "urn:dslforum-org:cwmp-1-1"
    assert parsed.body == CpeFault(9003, "Invalid arguments", (SetParameterValuesFault("A.B", 9007, "bad value"),
                                                               SetParameterValuesFault("A.C", 9008, "")))


def test_acs_fault_codes_read_as_acs_faults() -> None:
    body = ("<soap-env:Fault><faultcode>Server</faultcode><faultstring>CWMP fault</faultstring><detail><cwmp:Fault>"
            "<FaultCode>8005</FaultCode><FaultString>Retry request</FaultString></cwmp:Fault></detail>"
            "</soap-env:Fault>")
    assert soap.parse(envelope(body)).body == AcsFault(8005, "Retry request")


@pytest.mark.parametrize(("body", "code", "words"), [
    ("<cwmp:Frobnicate/>", 8000, "unknown method 'Frobnicate'"),
    ('<x:Inform xmlns:x="urn:other"/>', 8003, "not in a CWMP namespace"),
    ("<Inform/>", 8003, "not in a CWMP namespace (none)"),
    ("<cwmp:AddObjectResponse><Status>0</Status></cwmp:AddObjectResponse>", 8003,
     "AddObjectResponse: InstanceNumber is missing"),
    ("<cwmp:AddObjectResponse><InstanceNumber>two</InstanceNumber><Status>0</Status></cwmp:AddObjectResponse>", 8003,
     "AddObjectResponse.InstanceNumber: 'two' is not an integer"),
    ("<cwmp:SetParameterValuesResponse><Status>99999999999</Status></cwmp:SetParameterValuesResponse>", 8003,
     "is not an integer"),
    ("<cwmp:GetParameterNames><ParameterPath/><NextLevel>yes</NextLevel></cwmp:GetParameterNames>", 8003,
     "GetParameterNames.NextLevel: 'yes' is not a boolean"),
    ("<cwmp:Inform><Event/></cwmp:Inform>", 8003, "Inform: DeviceId is missing"),
    ("<cwmp:Reboot/><cwmp:Reboot/>", 8003, "the Body holds 2 elements (Reboot, Reboot), not one RPC"),
    ("<soap-env:Fault><faultcode>Client</faultcode><faultstring>x</faultstring></soap-env:Fault>", 8003,
     "Fault: detail is missing"),
])
def test_bad_content_names_its_fault_and_echoes_the_id(body: str, code: int, words: str) -> None:
    e = error(envelope(body))
    assert (e.fault_code, e.cwmp_id, e.refused) == (code, "7", False)
    assert words in str(e)


def test_no_body_is_an_error() -> None:
    e = error(b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Header><ID xmlns="'
              + CWMP_1_0.encode() + b'">5</ID></e:Header></e:Envelope>')
    assert (str(e), e.fault_code, e.cwmp_id) == ("the Envelope has no Body", 8003, "5")


def test_the_body_is_read_as_utf8_whatever_it_declares() -> None:
    data = vector("tr098", "inform-2-periodic").replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"').replace(
        b"Huawei", "Huawéi".encode())
    inform = soap.parse(data).body
    assert isinstance(inform, Inform) and inform.device.manufacturer == "Huawéi Technologies Co., Ltd."


@pytest.mark.parametrize(("data", "words"), [
    (b"<a/>", "the document is 'a', not a SOAP 1.1 Envelope"),
    (b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"/>', "not a SOAP 1.1 Envelope"),
    (b"not xml", "not well-formed XML"),
    (b"<?xml version='1.0' encoding='ISO-8859-1'?><a>\xe9</a>", "the body is not UTF-8 (byte 46)"),
])
def test_not_an_envelope(data: bytes, words: str) -> None:
    e = error(data)
    assert (e.fault_code, e.cwmp_id, e.refused) == (8003, None, False)
    assert words in str(e)


# --- render --------------------------------------------------------------------------------------


def test_render_inform_response_as_the_simulator_needs_it() -> None:
    assert soap.render(Envelope(InformResponse(), "rdvm25mx")) == (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<soap-env:Envelope'
        b' xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/"'
        b' xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        b' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:cwmp="urn:dslforum-org:cwmp-1-0">'
        b'<soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">rdvm25mx</cwmp:ID></soap-env:Header>'
        b"<soap-env:Body><cwmp:InformResponse><MaxEnvelopes>1</MaxEnvelopes></cwmp:InformResponse></soap-env:Body>"
        b"</soap-env:Envelope>")


def test_render_arrays_hold_requests_and_namespace() -> None:
    out = soap.render(Envelope(SetParameterValues((ParameterValue("A.B", "1<2 & \"3\"", "xsd:int"),
                                                    ParameterValue("A.C", "é"))), "i", "urn:dslforum-org:cwmp-1-4",
                               hold_requests=True)).decode()
    assert 'xmlns:cwmp="urn:dslforum-org:cwmp-1-4"' in out
    assert '<cwmp:HoldRequests soap-env:mustUnderstand="1">1</cwmp:HoldRequests>' in out
    assert ('<cwmp:SetParameterValues><ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[2]">'
            '<ParameterValueStruct><Name>A.B</Name><Value xsi:type="xsd:int">1&lt;2 &amp; "3"</Value>') in out
    names = soap.render(Envelope(GetParameterValues(("A.", "B.", "C")), "i")).decode()
    assert '<ParameterNames soap-enc:arrayType="xsd:string[3]"><string>A.</string><string>B.</string>' in names
    gpn = soap.render(Envelope(GetParameterNames("A.", True))).decode()
    assert "<ParameterPath>A.</ParameterPath><NextLevel>1</NextLevel>" in gpn
    assert "<cwmp:ID" not in gpn


@pytest.mark.parametrize(("code", "kind"), [(8000, "Server"), (8002, "Server"), (8003, "Client"), (8005, "Server")])
def test_render_acs_fault(code: int, kind: str) -> None:
    out = soap.render(Envelope(AcsFault(code, "why"), "9")).decode()
    assert (f"<soap-env:Body><soap-env:Fault><faultcode>{kind}</faultcode><faultstring>CWMP fault</faultstring>"
            f"<detail><cwmp:Fault><FaultCode>{code}</FaultCode><FaultString>why</FaultString></cwmp:Fault></detail>"
            "</soap-env:Fault></soap-env:Body>") in out


def test_render_nothing_and_what_cannot_be_written() -> None:
    assert soap.render(Envelope(None, "1")) == b""
    with pytest.raises(ValueError, match="U\\+0001"):
        soap.render(Envelope(Reboot("\x01")))
    with pytest.raises(ValueError, match="not a CWMP namespace"):
        soap.render(Envelope(Reboot(), namespace="urn:x"))
    with pytest.raises(ValueError, match="header element"):
        soap.render(Envelope(Reboot(), extra={"a b": "c"}))


def test_method_names() -> None:
    assert soap.method(GetParameterValues(())) == "GetParameterValues"
    assert soap.method(GetParameterValuesResponse(())) == "GetParameterValuesResponse"
    assert soap.method(CpeFault(9000, "")) == soap.method(AcsFault(8000, "")) == "Fault"


# --- render then parse -------------------------------------------------------------------------

XML_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs", "Cn"])
                   | st.sampled_from("\t\n\r<&>\"'"), max_size=12)
"""What XML 1.0 carries (no control characters but tab, newline, carriage return), with the
characters that need escaping more often than chance would draw them."""
UINT = st.integers(0, 2**32 - 1)
NAMES = st.tuples(XML_TEXT) | st.lists(XML_TEXT, max_size=3).map(tuple)
VALUES = st.lists(st.builds(ParameterValue, XML_TEXT, XML_TEXT, XML_TEXT), max_size=3).map(tuple)
FAULT = st.builds(FaultStruct, UINT, XML_TEXT)
TIMES = {"start_time": XML_TEXT, "complete_time": XML_TEXT}
MESSAGES: dict[type, st.SearchStrategy[Message]] = {
    Inform: st.builds(Inform, st.builds(DeviceIdStruct, XML_TEXT, XML_TEXT, XML_TEXT, XML_TEXT),
                      st.lists(st.builds(EventStruct, XML_TEXT, XML_TEXT), max_size=3).map(tuple), UINT, XML_TEXT,
                      UINT, VALUES),
    TransferComplete: st.builds(TransferComplete, XML_TEXT, FAULT, XML_TEXT, XML_TEXT),
    AutonomousTransferComplete: st.builds(AutonomousTransferComplete, XML_TEXT, XML_TEXT, st.booleans(), XML_TEXT,
                                          UINT, XML_TEXT, FAULT, XML_TEXT, XML_TEXT),
    GetRPCMethods: st.just(GetRPCMethods()),
    RequestDownload: st.builds(RequestDownload, XML_TEXT,
                               st.lists(st.tuples(XML_TEXT, XML_TEXT), max_size=3).map(tuple)),
    GetParameterNames: st.builds(GetParameterNames, XML_TEXT, st.booleans()),
    GetParameterValues: st.builds(GetParameterValues, NAMES),
    SetParameterValues: st.builds(SetParameterValues, VALUES, XML_TEXT),
    GetParameterAttributes: st.builds(GetParameterAttributes, NAMES),
    SetParameterAttributes: st.builds(SetParameterAttributes, st.lists(st.builds(
        SetParameterAttribute, XML_TEXT, st.booleans(), st.integers(0, 6), st.booleans(), NAMES),
        max_size=3).map(tuple)),
    AddObject: st.builds(AddObject, XML_TEXT, XML_TEXT),
    DeleteObject: st.builds(DeleteObject, XML_TEXT, XML_TEXT),
    Reboot: st.builds(Reboot, XML_TEXT),
    FactoryReset: st.just(FactoryReset()),
    Download: st.builds(Download, XML_TEXT, XML_TEXT, XML_TEXT, XML_TEXT, XML_TEXT, UINT, XML_TEXT, UINT, XML_TEXT,
                        XML_TEXT),
    Upload: st.builds(Upload, XML_TEXT, XML_TEXT, XML_TEXT, XML_TEXT, XML_TEXT, UINT),
    GetParameterNamesResponse: st.builds(GetParameterNamesResponse, st.lists(
        st.builds(ParameterInfo, XML_TEXT, st.booleans()), max_size=3).map(tuple)),
    GetParameterValuesResponse: st.builds(GetParameterValuesResponse, VALUES),
    SetParameterValuesResponse: st.builds(SetParameterValuesResponse, st.integers(0, 1)),
    GetParameterAttributesResponse: st.builds(GetParameterAttributesResponse, st.lists(
        st.builds(ParameterAttribute, XML_TEXT, st.integers(0, 6), NAMES), max_size=3).map(tuple)),
    SetParameterAttributesResponse: st.just(SetParameterAttributesResponse()),
    AddObjectResponse: st.builds(AddObjectResponse, UINT, st.integers(0, 1)),
    DeleteObjectResponse: st.builds(DeleteObjectResponse, st.integers(0, 1)),
    RebootResponse: st.just(RebootResponse()),
    FactoryResetResponse: st.just(FactoryResetResponse()),
    DownloadResponse: st.builds(DownloadResponse, st.integers(0, 1), **TIMES),
    UploadResponse: st.builds(UploadResponse, st.integers(0, 1), **TIMES),
    GetRPCMethodsResponse: st.builds(GetRPCMethodsResponse, NAMES),
    CpeFault: st.builds(CpeFault, st.integers(9000, 9899), XML_TEXT, st.lists(
        st.builds(SetParameterValuesFault, XML_TEXT, st.integers(9000, 9899), XML_TEXT), max_size=3).map(tuple)),
    InformResponse: st.builds(InformResponse, UINT),
    TransferCompleteResponse: st.just(TransferCompleteResponse()),
    AutonomousTransferCompleteResponse: st.just(AutonomousTransferCompleteResponse()),
    RequestDownloadResponse: st.just(RequestDownloadResponse()),
    AcsFault: st.builds(AcsFault, st.integers(8000, 8999), XML_TEXT),
}
HEADER_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.-]{0,8}", fullmatch=True).filter(
    lambda name: name not in ("ID", "HoldRequests"))
ENVELOPES = st.builds(Envelope, st.one_of(*MESSAGES.values()), st.none() | XML_TEXT,
                      st.sampled_from(sorted(NAMESPACES)), st.booleans(),
                      st.dictionaries(HEADER_NAMES, XML_TEXT, max_size=2))


def test_every_message_type_has_a_strategy() -> None:
    message_types = {t for t in vars(__import__("acs.messages").messages).values()
                     if isinstance(t, type) and dataclasses.is_dataclass(t) and t.__module__ == "acs.messages"}
    structures = {DeviceIdStruct, EventStruct, ParameterValue, ParameterInfo, ParameterAttribute,
                  SetParameterAttribute, FaultStruct, SetParameterValuesFault, Envelope}
    assert set(MESSAGES) == message_types - structures


@settings(max_examples=examples(300))
@given(ENVELOPES)
def test_render_then_parse_gives_the_envelope_back(env: Envelope) -> None:
    assert soap.parse(soap.render(env)) == env


# --- speed ---------------------------------------------------------------------------------------
