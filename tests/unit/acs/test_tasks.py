"""acs.tasks: the args of every task kind, each kind's RPC, and the requests' JSON form (what a
session keeps in acs_live_sessions). Whole sessions of tasks are in test_session.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs import tasks
from acs.messages import (
    AcsRequest,
    AddObject,
    DeleteObject,
    Download,
    FactoryReset,
    GetParameterAttributes,
    GetParameterNames,
    GetParameterValues,
    GetRPCMethods,
    ParameterValue,
    Reboot,
    SetParameterAttribute,
    SetParameterAttributes,
    SetParameterValues,
    Upload,
)
from acs.model import TASK_KINDS, Device, DeviceView, FileRef, Param, Task, TaskFaulted


def view(data_model: str = "tr181", **kw: Any) -> DeviceView:
    device = Device(1, "00D09E-HGW%2D181-0", "00D09E", "HGW-181", "0", "tr181" if data_model == "tr181" else "tr098")
    return DeviceView(device, kw.get("tree", {}), [], kw.get("context", {"upload_url": "https://acs/up/1"}), (),
                      1000.0, kw.get("files", {}))


GOOD: list[tuple[str, dict[str, Any]]] = [
    ("get", {"names": ["Device.DeviceInfo.", "@wifi.ssid"]}),
    ("set", {"values": [["@wifi.ssid", "home"], ["Device.ManagementServer.PeriodicInformInterval", 300,
                                                   "xsd:unsignedInt"], ["@wifi.enable", True, "xsd:boolean"]]}),
    ("refresh", {"path": "Device.WiFi."}),
    ("refresh", {"path": ""}),
    ("add_object", {"path": "Device.WiFi.SSID."}),
    ("delete_object", {"path": "Device.WiFi.SSID.3."}),
    ("get_attributes", {"names": ["Device.WiFi.SSID.1.SSID"]}),
    ("set_attributes", {"attributes": [["Device.WiFi.SSID.1.SSID", 2]]}),
    ("reboot", {}),
    ("factory_reset", {}),
    ("download", {"file_id": 7}),
    ("download", {"url": "https://fw.example/img.bin", "file_type": "1 Firmware Upgrade Image"}),
    ("upload", {"file_type": "1 Vendor Configuration File"}),
]


@pytest.mark.parametrize(("kind", "args"), GOOD)
def test_good_args(kind: str, args: dict[str, Any]) -> None:
    assert tasks.check_args(kind, args) == []


@pytest.mark.parametrize(("kind", "args", "problem"), [
    ("launch", {}, "unknown task kind"),
    ("get", [], "args must be an object"),
    ("get", {"names": []}, "non-empty list"),
    ("get", {"names": ["Foo.Bar"]}, "neither an alias"),
    ("get", {"names": [3]}, "is not a path"),
    ("set", {"values": [["@wifi.ssid"]]}, "is not [path, value]"),
    ("set", {"values": [["@wifi.ssid", None]]}, "is not [path, value]"),
    ("set", {"values": [["@wifi.ssid", "x", "string"]]}, "is not [path, value]"),
    ("set", {"values": [["Device.WiFi.", "x"]]}, "is an object"),
    ("set", {"values": [["@wifi.bogus", "x"]]}, "unknown alias"),
    ("refresh", {"path": 1}, "path must be a string"),
    ("add_object", {"path": "Device.WiFi.SSID"}, "must end with '.'"),
    ("delete_object", {"path": "Device.WiFi.SSID."}, "is not an instance"),
    ("set_attributes", {"attributes": [["Device.WiFi.SSID.1.SSID", 9]]}, "notification 0-6"),
    ("set_attributes", {"attributes": []}, "non-empty list"),
    ("reboot", {"now": True}, "unknown argument 'now'"),
    ("download", {"file_id": "7"}, "file_id must be"),
    ("download", {"file_id": 7, "url": "http://x/"}, "without url"),
    ("download", {"url": "ftp://x/", "file_type": "1 Firmware Upgrade Image"}, "http or https"),
    ("download", {"url": "http://x/"}, "file_type must be given"),
    ("upload", {}, "file_type must be given"),
])
def test_bad_args(kind: str, args: Any, problem: str) -> None:
    problems = tasks.check_args(kind, args)
    assert any(problem in p for p in problems), problems


@given(st.sampled_from(TASK_KINDS), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["names", "values", "path", "attributes", "file_id", "url", "file_type", "x"]), inner,
        max_size=3), max_leaves=8))
def test_check_args_never_raises(kind: str, args: Any) -> None:
    assert isinstance(tasks.check_args(kind, args), list)


def step(kind: str, args: dict[str, Any], v: DeviceView | None = None) -> tasks.Step:
    s = tasks.task_step(Task(5, kind, args), v or view())  # type: ignore[arg-type]
    assert isinstance(s, tasks.Step), s
    return s


def test_each_kind_becomes_its_rpc() -> None:
    fw = FileRef(7, "fw-2.5.bin", "1 Firmware Upgrade Image", 1234, "https://acs/files/7/fw-2.5.bin")
    v = view(files={7: fw})
    got = {f"{kind} {sorted(args)}": step(kind, args, v).rpc for kind, args in GOOD}
    assert got == {
        "get ['names']": GetParameterValues(("Device.DeviceInfo.", "Device.WiFi.SSID.1.SSID")),
        "set ['values']": SetParameterValues((
            ParameterValue("Device.WiFi.SSID.1.SSID", "home", "xsd:string"),
            ParameterValue("Device.ManagementServer.PeriodicInformInterval", "300", "xsd:unsignedInt"),
            ParameterValue("Device.WiFi.SSID.1.Enable", "true", "xsd:boolean")), "task-5"),
        "refresh ['path']": GetParameterNames("", False),  # the last of the two refreshes
        "add_object ['path']": AddObject("Device.WiFi.SSID.", "task-5"),
        "delete_object ['path']": DeleteObject("Device.WiFi.SSID.3.", "task-5"),
        "get_attributes ['names']": GetParameterAttributes(("Device.WiFi.SSID.1.SSID",)),
        "set_attributes ['attributes']": SetParameterAttributes(
            (SetParameterAttribute("Device.WiFi.SSID.1.SSID", True, 2),)),
        "reboot []": Reboot("task-5"),
        "factory_reset []": FactoryReset(),
        "download ['file_id']": Download("task-5", "1 Firmware Upgrade Image", "https://acs/files/7/fw-2.5.bin",
                                         file_size=1234, target_file_name="fw-2.5.bin"),
        "download ['file_type', 'url']": Download("task-5", "1 Firmware Upgrade Image", "https://fw.example/img.bin"),
        "upload ['file_type']": Upload("task-5", "1 Vendor Configuration File", "https://acs/up/1"),
    }


def test_aliases_resolve_by_the_devices_data_model() -> None:
    assert step("get", {"names": ["@pppoe.username"]}, view("tr098")).rpc == GetParameterValues(
        ("InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.Username",))


def test_a_refresh_keeps_the_secrets_it_knows_under_its_path() -> None:
    tree = {p.path: p for p in (Param("Device.PPP.Interface.1.Password", "s3cret", "xsd:string"),
                                Param("Device.PPP.Interface.1.Username", "bob"),
                                Param("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "wifikey"))}
    s = step("refresh", {"path": "Device.PPP."}, view(tree=tree))
    assert s.data == {"secrets": {"Device.PPP.Interface.1.Password": ["s3cret", "xsd:string"]}}


@pytest.mark.parametrize(("kind", "args", "v", "code", "why"), [
    ("download", {"file_id": 8}, view(), 8003, "file 8 is not there"),
    ("upload", {"file_type": "2 Vendor Log File"}, view(context={}), 8002, "no upload URL"),
    ("get", {"names": ["nonsense"]}, view(), 8003, "neither an alias"),
])
def test_a_task_that_cannot_be_sent_faults(kind: str, args: dict[str, Any], v: DeviceView, code: int,
                                           why: str) -> None:
    f = tasks.task_step(Task(5, kind, args), v)  # type: ignore[arg-type]
    assert isinstance(f, TaskFaulted) and f.task_id == 5 and f.code == code and why in f.string


REQUESTS: list[AcsRequest] = [
    GetParameterNames("Device.", True), GetParameterValues(("Device.A", "Device.B.")),
    SetParameterValues((ParameterValue("Device.A", "1", "xsd:int"), ParameterValue("Device.B", "x")), "k"),
    GetParameterAttributes(("Device.A",)),
    SetParameterAttributes((SetParameterAttribute("Device.A", True, 2, True, ("Subscriber",)),)),
    AddObject("Device.X.", "k"), DeleteObject("Device.X.2.", "k"), Reboot("task-1"), FactoryReset(),
    Download("c", "1 Firmware Upgrade Image", "http://x/f", "u", "p", 10, "f", 5, "s", "f"),
    Upload("c", "2 Vendor Log File", "http://x/u"), GetRPCMethods(),
]


@pytest.mark.parametrize("rpc", REQUESTS, ids=lambda r: type(r).__name__)
def test_requests_go_through_json(rpc: AcsRequest) -> None:
    state = json.loads(json.dumps(tasks.request_to_json(rpc)))
    assert tasks.request_from_json(state) == rpc
    assert tasks.request_to_json(tasks.request_from_json(state)) == state  # what a copy of a copy holds
    s = tasks.Step(rpc, "get", 3, {"x": [1]})
    assert tasks.Step.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_every_request_type_has_its_response() -> None:
    assert {type(r) for r in REQUESTS} == set(tasks.RESPONSES)
