"""acs.session: whole CWMP sessions driven through open/plan/receive, with CPE answers from
the real envelopes of genieacs-sim (tests/vectors/cwmp) where there is one, and from
acs.messages where not."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from acs import plan, session, soap
from acs import tasks as tasks_module
from acs.messages import (
    ACS_METHODS,
    AcsFault,
    AddObject,
    AddObjectResponse,
    AutonomousTransferComplete,
    AutonomousTransferCompleteResponse,
    CpeFault,
    DeleteObjectResponse,
    DeviceIdStruct,
    DownloadResponse,
    EventStruct,
    FactoryResetResponse,
    FaultStruct,
    GetParameterAttributesResponse,
    GetParameterNames,
    GetParameterNamesResponse,
    GetParameterValues,
    GetParameterValuesResponse,
    GetRPCMethods,
    GetRPCMethodsResponse,
    Inform,
    Message,
    ParameterAttribute,
    ParameterInfo,
    ParameterValue,
    Reboot,
    RebootResponse,
    RequestDownload,
    RequestDownloadResponse,
    SetParameterAttributesResponse,
    SetParameterValues,
    SetParameterValuesFault,
    SetParameterValuesResponse,
    TransferComplete,
    TransferCompleteResponse,
    UploadResponse,
    device_key,
)
from acs.model import (
    ConnectionRequestCredentials,
    DataModel,
    Device,
    DeviceView,
    Effect,
    FaultRecorded,
    FileRef,
    Param,
    ParametersForgotten,
    ParametersKnown,
    Preset,
    PresetsApplied,
    Task,
    TaskDone,
    TaskFaulted,
    TaskWaiting,
    TransferEnded,
)
from acs.session import MAX_RPCS, Outcome, Phase, Session
from tests.profiles import examples

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "cwmp"
NOW = 50_000.0
DEFAULT = Preset(1, "default", -100, {}, [
    {"set": "@management.periodic_inform_interval", "value": "300", "type": "xsd:unsignedInt"},
    {"set": "@management.periodic_inform_enable", "value": "true", "type": "xsd:boolean"},
    {"connection_request_credentials": True}])
HOME = Preset(2, "home", 0, {}, [
    {"set": "@pppoe.username", "value": "{{ service.login }}"},
    {"set": "@pppoe.password", "value": "{{ service.password }}"},
    {"set": "@wifi.ssid", "value": "{{ customer.name }} wifi"},
    {"set": "@wifi.key", "value": "{{ service.wifi_key }}"}])
PRESETS = [DEFAULT, HOME]
KEY = plan.presets_key(PRESETS)
CONTEXT = {"device": {}, "service": {"login": "bob@isp", "password": "ppp-pass", "wifi_key": "w1f1-k3y!"},
           "customer": {"name": "Bob"}, "upload_url": "https://acs.example/upload/abc"}


def vector(path: str) -> Any:
    return soap.parse((VECTORS / path).read_bytes()).body


def inform(model: DataModel, name: str) -> Inform:
    body = vector(f"{model}/{name}")
    assert isinstance(body, Inform)
    return body


def start(model: DataModel = "tr181", name: str = "inform-2-periodic.xml", *, tree: list[Param] | None = None,
          tasks: list[Task] | None = None, presets: list[Preset] | None = None, context: dict[str, Any] | None = None,
          files: dict[int, FileRef] | None = None, **device: Any) -> tuple[Session, list[Effect], list[Effect]]:
    """A session opened by a real Inform and planned: (session, open's effects, plan's effects)."""
    msg = inform(model, name)
    d = msg.device
    cwmp_id = device_key(d)
    dev = Device(7, cwmp_id, d.oui, d.product_class, d.serial_number, model,
                 **{"connection_request_username": cwmp_id, **device})
    s, opened = session.open(msg, session_id="sess-1", device_id=7, cwmp_id=cwmp_id,
                             namespace="urn:dslforum-org:cwmp-1-0", now=NOW)
    v = DeviceView(dev, {p.path: p for p in tree or []}, tasks or [], CONTEXT if context is None else context,
                   s.events, NOW, files or {})
    planned = session.plan(s, v, PRESETS if presets is None else presets)
    return s, opened, planned


def configured(model: DataModel) -> list[Param]:
    """The tree of a device in the state PRESETS declare (as the ACS set it)."""
    s, _, _ = start(model, "inform-0-bootstrap-1-boot.pr18.xml")
    rpc = session.receive(s, None, NOW).reply
    assert isinstance(rpc, SetParameterValues)
    return [Param(p.name, p.value, p.type, True, NOW - 60) for p in rpc.parameters]


def run(s: Session, *answers: Message | None) -> list[Outcome]:
    """The outcomes of the empty POST and then each answer."""
    out = [session.receive(s, None, NOW + 1)]
    out += [session.receive(s, a, NOW + 2 + i) for i, a in enumerate(answers)]
    return out


# --- open, and sessions with nothing to do ----------------------------------------------------

def test_open_forgets_the_tree_on_bootstrap() -> None:
    s, opened, _ = start("tr098", "inform-0-bootstrap-1-boot.pr18.xml", presets=[])
    assert opened == [ParametersForgotten("")]
    assert (s.phase, s.events, s.rpcs, s.step) == (Phase.CPE_REQUESTS, ("0 BOOTSTRAP", "1 BOOT"), ["Inform"], 1)
    assert s.cwmp_id == "202BC1-BM632w-000003"


def test_open_ends_a_reboot_and_learns_changed_values() -> None:
    events = (EventStruct("1 BOOT"), EventStruct("M Reboot", "task-3"), EventStruct("4 VALUE CHANGE"))
    changed = (ParameterValue("Device.WiFi.SSID.1.SSID", "new"), ParameterValue("Device.PPP.Interface.1.Password", ""))
    msg = Inform(DeviceIdStruct("V", "001122", "HG", "9"), events, 1, "", 0, changed)
    _, effects = session.open(msg, session_id="x", device_id=1, cwmp_id="001122-HG-9", namespace="", now=NOW)
    assert effects == [TransferEnded("task-3"),
                       ParametersKnown((Param("Device.WiFi.SSID.1.SSID", "new", "xsd:string", None, NOW),))]


def test_needs_plan() -> None:
    assert session.needs_plan(("0 BOOTSTRAP", "1 BOOT"), [])
    assert session.needs_plan(("1 BOOT",), [])
    assert not session.needs_plan(("2 PERIODIC",), PRESETS)
    on_value_change = Preset(3, "vc", 0, {"events": ["4 VALUE CHANGE"]}, [])
    assert session.needs_plan(("2 PERIODIC", "4 VALUE CHANGE"), [on_value_change])
    assert not session.needs_plan(("4 VALUE CHANGE",), [replace(on_value_change, enabled=False)])


def test_periodic_with_nothing_to_do_is_one_round_trip() -> None:
    msg = inform("tr098", "inform-2-periodic.xml")
    assert not session.needs_plan(tuple(e.code for e in msg.events), PRESETS)
    s, effects = session.open(msg, session_id="s", device_id=1, cwmp_id="c", namespace="", now=NOW)
    assert effects == []
    assert session.receive(s, None, NOW) == Outcome(None, ())  # the fast path: no plan at all
    assert s.phase is Phase.CLOSED and s.rpcs == ["Inform"]
    assert session.receive(s, None, NOW) == Outcome(None, ())  # a repeated empty POST changes nothing


@pytest.mark.parametrize("model", ["tr098", "tr181"])
def test_a_device_in_its_declared_state_gets_no_rpc(model: DataModel) -> None:
    s, _, planned = start(model, tree=configured(model))
    assert planned == [PresetsApplied(KEY, None)]
    assert run(s) == [Outcome(None, ())]
    assert s.rpcs == ["Inform"]


# --- presets ----------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["tr098", "tr181"])
def test_bootstrap_is_configured_in_one_set(model: DataModel) -> None:
    # the view still holds the old tree (read before the forget): it must not count
    s, opened, planned = start(model, "inform-0-bootstrap-1-boot.pr18.xml", tree=configured(model),
                               connection_request_username=None)
    assert opened == [ParametersForgotten("")] and planned == []
    first = session.receive(s, None, NOW)
    rpc = first.reply
    assert isinstance(rpc, SetParameterValues) and rpc.parameter_key == KEY
    root = "Device." if model == "tr181" else "InternetGatewayDevice."
    values = {p.name.removeprefix(root): p.value for p in rpc.parameters}
    password = values.pop("ManagementServer.ConnectionRequestPassword")
    wan = "PPP.Interface.1." if model == "tr181" else "WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1."
    key = "WiFi.AccessPoint.1.Security." if model == "tr181" else "LANDevice.1.WLANConfiguration.1.PreSharedKey.1."
    ssid = "WiFi.SSID.1." if model == "tr181" else "LANDevice.1.WLANConfiguration.1."
    assert values == {
        "ManagementServer.PeriodicInformInterval": "300", "ManagementServer.PeriodicInformEnable": "true",
        f"{wan}Username": "bob@isp", f"{wan}Password": "ppp-pass", f"{ssid}SSID": "Bob wifi",
        f"{key}KeyPassphrase": "w1f1-k3y!", "ManagementServer.ConnectionRequestUsername": s.cwmp_id}
    done = session.receive(s, vector(f"{model}/setparametervaluesresponse.xml"), NOW + 1)
    assert done.reply is None and s.phase is Phase.CLOSED
    known, credentials, applied = done.effects
    assert isinstance(known, ParametersKnown) and len(known.params) == 7  # not the CR password: sealed by the store
    assert all(p.writable and p.read_at == NOW + 1 for p in known.params)
    assert credentials == ConnectionRequestCredentials(s.cwmp_id, password)
    assert applied == PresetsApplied(KEY, None, since=NOW)
    assert s.rpcs == ["Inform", "SetParameterValues"] and s.faults == []


def test_one_value_changed_in_the_service_is_one_set_of_that_value() -> None:
    ctx = {**CONTEXT, "service": {**CONTEXT["service"], "login": "bob2@isp"}}  # type: ignore[dict-item]
    s, _, _ = start("tr098", tree=configured("tr098"), context=ctx)
    rpc = session.receive(s, None, NOW).reply
    assert rpc == SetParameterValues((ParameterValue(
        "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.Username", "bob2@isp"),), KEY)
    assert session.receive(s, SetParameterValuesResponse(0), NOW).reply is None


def test_secrets_read_back_as_empty_are_not_set_again() -> None:
    tree = [replace(p, value="") if p.path.endswith(("Password", "Passphrase")) else p for p in configured("tr181")]
    s, _, planned = start(tree=tree)
    assert planned == [PresetsApplied(KEY, None)] and run(s) == [Outcome(None, ())]


def test_a_failing_template_skips_its_action_and_the_rest_goes() -> None:
    s, _, planned = start("tr181", "inform-0-bootstrap-1-boot.pr18.xml", context={
        "device": {}, "service": None, "customer": None})
    assert [e.detail["action"] for e in planned if isinstance(e, FaultRecorded)] == [1, 2, 3, 4]
    rpc = session.receive(s, None, NOW).reply
    assert isinstance(rpc, SetParameterValues) and len(rpc.parameters) == 4  # the default preset's two values
    assert rpc.parameters[2].name == "Device.ManagementServer.ConnectionRequestUsername"  # a bootstrap lost them
    assert len(s.faults) == 4
    assert session.receive(s, SetParameterValuesResponse(0), NOW).effects[-1] == PresetsApplied(KEY, None, since=NOW)


def test_objects_are_counted_then_added_then_set_then_rebooted() -> None:
    guest = Preset(3, "guest", 0, {}, [{"add_object": "@wifi.ssids", "count": 2},
                                       {"set": "Device.WiFi.SSID.2.SSID", "value": "guest"}, {"reboot": True}])
    key = plan.presets_key([guest])
    s, _, planned = start(presets=[guest])
    assert planned == []
    gpn, add, spv, reboot, end = run(
        s, GetParameterNamesResponse((ParameterInfo("Device.WiFi.SSID.1.", True),)),
        vector("tr181/addobjectresponse.xml"), SetParameterValuesResponse(0), RebootResponse())
    assert gpn.reply == GetParameterNames("Device.WiFi.SSID.", True)
    assert add.reply == AddObject("Device.WiFi.SSID.", key)
    assert add.effects == (ParametersKnown((Param("Device.WiFi.SSID.", None, "", None, NOW + 2),
                                            Param("Device.WiFi.SSID.1.", None, "", True, NOW + 2))),)
    assert spv.reply == SetParameterValues((ParameterValue("Device.WiFi.SSID.2.SSID", "guest"),), key)
    assert spv.effects == (ParametersKnown((Param("Device.WiFi.SSID.2.", None, "", True, NOW + 3),)),)
    assert reboot.reply == Reboot(f"preset-{key}")
    assert end == Outcome(None, (PresetsApplied(key, None, since=NOW),))


def test_a_faulted_set_records_each_parameter_and_leaves_the_presets_unapplied() -> None:
    s, _, _ = start("tr181", "inform-0-bootstrap-1-boot.pr18.xml", presets=[
        replace(HOME, actions=[*HOME.actions, {"reboot": True}])])
    fault = CpeFault(9003, "Invalid arguments", (SetParameterValuesFault("Device.WiFi.SSID.1.SSID", 9007, "bad"),))
    first, end = run(s, fault)
    assert isinstance(first.reply, SetParameterValues)
    assert end.reply is None  # no Reboot (nothing changed), no PresetsApplied: the next session tries again
    assert end.effects == (FaultRecorded("preset", "SetParameterValues", 9003, "Invalid arguments", detail={
        "parameters": [["Device.WiFi.SSID.1.SSID", 9007, "bad"]]}),)
    assert s.faults == ["9003 Invalid arguments (SetParameterValues)"]


def test_a_refresh_preset_reads_the_subtree_again_and_keeps_secrets() -> None:
    hosts = Preset(4, "ppp", 0, {}, [{"refresh": "Device.PPP.", "max_age": 3600}])
    tree = [Param("Device.PPP.Interface.1.Password", "ppp-pass", "xsd:string", True, NOW - 4000),
            Param("Device.PPP.Interface.2.Username", "gone", "xsd:string", True, NOW - 4000)]
    s, _, planned = start(tree=tree, presets=[hosts])
    gpv, end = run(s, GetParameterValuesResponse((ParameterValue("Device.PPP.Interface.1.Username", "bob@isp"),
                                                  ParameterValue("Device.PPP.Interface.1.Password", ""))))
    assert planned == [] and gpv.reply == GetParameterValues(("Device.PPP.",))
    assert end.effects == (
        ParametersForgotten("Device.PPP."),  # instance 2 is gone
        ParametersKnown((Param("Device.PPP.", None, "", None, NOW + 2),
                         Param("Device.PPP.Interface.1.Username", "bob@isp", "xsd:string", None, NOW + 2),
                         Param("Device.PPP.Interface.1.Password", "ppp-pass", "xsd:string", True, NOW + 2))),
        PresetsApplied(plan.presets_key([hosts]), NOW + 3600, since=NOW))


# --- tasks ------------------------------------------------------------------------------------

FW = FileRef(4, "fw.bin", "1 Firmware Upgrade Image", 99, "https://acs.example/files/4/fw.bin")
GPV = GetParameterValuesResponse((ParameterValue("Device.WiFi.SSID.1.SSID", "home-wifi"),))
KINDS: list[tuple[str, dict[str, Any], Message, tuple[Effect, ...]]] = [
    ("get", {"names": ["@wifi.ssid"]}, GPV, (
        ParametersKnown((Param("Device.WiFi.SSID.1.SSID", "home-wifi", "xsd:string", None, NOW + 2),)),
        TaskDone(5, {"values": {"Device.WiFi.SSID.1.SSID": "home-wifi"}}))),
    ("set", {"values": [["@wifi.ssid", "x"]]}, SetParameterValuesResponse(1), (
        ParametersKnown((Param("Device.WiFi.SSID.1.SSID", "x", "xsd:string", True, NOW + 2),)),
        TaskDone(5, {"status": 1}))),
    ("add_object", {"path": "@wifi.ssids"}, AddObjectResponse(2, 0), (
        ParametersKnown((Param("Device.WiFi.SSID.2.", None, "", True, NOW + 2),)),
        TaskDone(5, {"instance": 2, "status": 0}))),
    ("delete_object", {"path": "Device.WiFi.SSID.2."}, DeleteObjectResponse(0), (
        ParametersForgotten("Device.WiFi.SSID.2."), TaskDone(5, {"status": 0}))),
    ("get_attributes", {"names": ["@wifi.ssid"]}, GetParameterAttributesResponse(
        (ParameterAttribute("Device.WiFi.SSID.1.SSID", 2),)), (
        TaskDone(5, {"attributes": {"Device.WiFi.SSID.1.SSID": 2}}),)),
    ("set_attributes", {"attributes": [["@wifi.ssid", 2]]}, SetParameterAttributesResponse(), (TaskDone(5),)),
    ("reboot", {}, RebootResponse(), (TaskWaiting(5, "task-5"),)),
    ("factory_reset", {}, FactoryResetResponse(), (TaskDone(5),)),
    ("download", {"file_id": 4}, DownloadResponse(1), (TaskWaiting(5, "task-5"),)),
    ("download", {"url": "https://x.example/c.xml", "file_type": "3 Vendor Configuration File"},
     DownloadResponse(0), (TaskDone(5, {"status": 0}),)),
    ("upload", {"file_type": "1 Vendor Configuration File"}, UploadResponse(1), (TaskWaiting(5, "task-5"),)),
]


def task_session(kind: str, args: dict[str, Any]) -> Session:
    s, _, planned = start(tasks=[Task(5, kind, args)], presets=[], files={4: FW})  # type: ignore[arg-type]
    assert planned == [PresetsApplied(plan.presets_key([]), None)]
    return s


@pytest.mark.parametrize(("kind", "args", "response", "effects"), KINDS, ids=[k[0] for k in KINDS])
def test_each_task_kind_succeeds(kind: str, args: dict[str, Any], response: Message,
                                 effects: tuple[Effect, ...]) -> None:
    s = task_session(kind, args)
    sent, end = run(s, response)
    assert sent.reply is not None and sent.effects == ()
    assert end == Outcome(None, effects)
    assert s.rpcs == ["Inform", type(sent.reply).__name__]


@pytest.mark.parametrize(("kind", "args"), [(k[0], k[1]) for k in KINDS], ids=[k[0] for k in KINDS])
def test_each_task_kind_faults(kind: str, args: dict[str, Any]) -> None:
    s = task_session(kind, args)
    sent, end = run(s, vector("tr181/fault-9000-reply-to-reboot.xml"))
    assert end == Outcome(None, (TaskFaulted(5, 9000, "Method not supported"),))
    assert s.faults == [f"9000 Method not supported ({type(sent.reply).__name__})"]


@pytest.mark.parametrize(("kind", "args"), [(k[0], k[1]) for k in KINDS], ids=[k[0] for k in KINDS])
def test_a_wrong_answer_ends_the_session(kind: str, args: dict[str, Any]) -> None:
    s = task_session(kind, args)
    wrong = RebootResponse() if kind != "reboot" else GPV
    sent, end = run(s, wrong)
    assert end.reply is None and s.phase is Phase.CLOSED
    faulted, recorded = end.effects
    assert isinstance(faulted, TaskFaulted) and faulted.task_id == 5
    assert recorded == FaultRecorded("session", type(sent.reply).__name__, None,
                                     f"the CPE answered {type(wrong).__name__} to {type(sent.reply).__name__}")


def test_a_refresh_task_reads_names_then_values() -> None:
    tree = [Param("Device.ManagementServer.ConnectionRequestPassword", "crpass", "xsd:string", True, 1.0)]
    s, _, _ = start(tree=tree, tasks=[Task(5, "refresh", {"path": "Device.ManagementServer."})], presets=[])
    values = GetParameterValuesResponse((
        ParameterValue("Device.ManagementServer.ConnectionRequestPassword", ""),
        ParameterValue("Device.ManagementServer.Password", ""),
        ParameterValue("Device.ManagementServer.PeriodicInformInterval", "300", "xsd:unsignedInt"),
        ParameterValue("Device.ManagementServer.ParameterKey", "")))
    gpn, gpv, end = run(s, vector("tr181/getparameternamesresponse-managementserver-nextlevel-false.xml"), values)
    assert gpn.reply == GetParameterNames("Device.ManagementServer.", False)
    assert gpv == Outcome(GetParameterValues(("Device.ManagementServer.",)), ())
    assert end.reply is None
    forgotten, known, done = end.effects
    assert forgotten == ParametersForgotten("Device.ManagementServer.")
    assert isinstance(known, ParametersKnown) and known.params == (
        Param("Device.ManagementServer.", None, "", False, NOW + 3),  # the names say whether it is writable
        Param("Device.ManagementServer.ConnectionRequestPassword", "crpass", "xsd:string", True, NOW + 3),
        Param("Device.ManagementServer.PeriodicInformInterval", "300", "xsd:unsignedInt", True, NOW + 3),
        Param("Device.ManagementServer.ParameterKey", "", "xsd:string", False, NOW + 3))  # Password: unknown, left out
    assert done == TaskDone(5, {"parameters": 4})


def test_tasks_go_in_id_order_before_the_presets_and_a_fault_ends_only_its_task() -> None:
    s, _, planned = start("tr181", "inform-0-bootstrap-1-boot.pr18.xml", tasks=[
        Task(9, "get", {"names": ["@uptime"]}), Task(3, "reboot", {}), Task(4, "download", {"file_id": 77})])
    assert planned == [TaskFaulted(4, 8003, "file 77 is not there (deleted, or incomplete)")]
    reboot, get, spv, end = run(s, CpeFault(9001, "Request denied"), GetParameterValuesResponse(()),
                                SetParameterValuesResponse(0))
    assert reboot.reply == Reboot("task-3") and get.effects == (TaskFaulted(3, 9001, "Request denied"),)
    assert get.reply == GetParameterValues(("Device.DeviceInfo.UpTime",))
    assert isinstance(spv.reply, SetParameterValues)
    assert end.reply is None and end.effects[-1] == PresetsApplied(KEY, None, since=NOW)
    assert s.rpcs == ["Inform", "Reboot", "GetParameterValues", "SetParameterValues"]


# --- the CPE's requests, and what is out of place --------------------------------------------

def test_the_cpes_own_requests_are_answered_before_the_plan() -> None:
    s, _, _ = start(tasks=[Task(5, "reboot", {})], presets=[])
    tc = vector("tr181/transfercomplete.xml")
    atc = AutonomousTransferComplete("", "http://x/f", True, "1 Firmware Upgrade Image", 10, "",
                                     FaultStruct(9010, "no"), "", "")
    assert session.receive(s, tc, NOW) == Outcome(TransferCompleteResponse(), (TransferEnded("fw-1"),))
    assert session.receive(s, atc, NOW) == Outcome(AutonomousTransferCompleteResponse(), (FaultRecorded(
        "session", "AutonomousTransferComplete", 9010, "no", detail={"url": "http://x/f",
                                                                     "file_type": "1 Firmware Upgrade Image"}),))
    assert session.receive(s, GetRPCMethods(), NOW) == Outcome(GetRPCMethodsResponse(ACS_METHODS))
    assert session.receive(s, RequestDownload("1 Firmware Upgrade Image"), NOW) == Outcome(RequestDownloadResponse())
    assert session.receive(s, None, NOW).reply == Reboot("task-5")
    assert s.rpcs == ["Inform", "TransferComplete", "AutonomousTransferComplete", "GetRPCMethods", "RequestDownload",
                      "Reboot"]
    assert s.step == 6


def test_a_failed_preset_download_is_a_preset_fault() -> None:
    s, _, _ = start(presets=[])
    tc = TransferComplete(f"preset-{KEY}", FaultStruct(9012, "File transfer server authentication failure"), "", "")
    assert session.receive(s, tc, NOW).effects == (
        TransferEnded(f"preset-{KEY}", 9012, "File transfer server authentication failure"),
        FaultRecorded("preset", "Download", 9012, "File transfer server authentication failure",
                      detail={"command_key": f"preset-{KEY}"}))


def test_an_inform_inside_a_session_is_refused_and_the_session_goes_on() -> None:
    s = task_session("reboot", {})
    msg = inform("tr181", "inform-2-periodic.xml")
    assert session.receive(s, msg, NOW).reply == AcsFault(8003, "Inform inside a session: the session is already open")
    assert session.receive(s, None, NOW).reply == Reboot("task-5")
    assert isinstance(session.receive(s, msg, NOW).reply, AcsFault)
    assert session.receive(s, RebootResponse(), NOW) == Outcome(None, (TaskWaiting(5, "task-5"),))


@pytest.mark.parametrize(("where", "message", "why"), [
    ("cpe", GPV, "GetParameterValuesResponse where the CPE may only send its own requests"),
    ("cpe", CpeFault(9000, "x"), "Fault where the CPE may only send its own requests"),
    ("rpc", TransferComplete("k", FaultStruct(0), "", ""), "the CPE answered TransferComplete to Reboot"),
    ("rpc", None, "the CPE answered empty POST to Reboot"),
    ("closed", GetRPCMethods(), "GetRPCMethods after the session ended"),
])
def test_what_is_out_of_place_ends_the_session_with_a_fault(where: str, message: Message | None, why: str) -> None:
    s = task_session("reboot", {})
    if where != "cpe":
        session.receive(s, None, NOW)
    if where == "closed":
        session.receive(s, RebootResponse(), NOW)
    out = session.receive(s, message, NOW)
    assert out.reply is None and s.phase is Phase.CLOSED
    assert isinstance(out.effects[-1], FaultRecorded) and out.effects[-1].message == why
    assert out.effects[-1].source == "session"


def test_at_most_max_rpcs_in_one_session() -> None:
    s, _, _ = start(tasks=[Task(i, "get", {"names": ["@uptime"]}) for i in range(1, 71)], presets=[])
    out = session.receive(s, None, NOW)
    sent = 0
    while out.reply is not None:
        sent += 1
        out = session.receive(s, GetParameterValuesResponse(()), NOW)
    assert sent == MAX_RPCS == len(s.rpcs) - 1
    assert out.effects[-1] == FaultRecorded("session", "GetParameterValues", None,
                                            f"more than {MAX_RPCS} RPCs in one session")
    assert isinstance(out.effects[0], ParametersKnown) and out.effects[1] == TaskDone(64, {"values": {}})


# --- state as JSON, and anything a CPE may send -----------------------------------------------

def copy(s: Session) -> Session:
    state = json.loads(json.dumps(s.to_json()))
    again = Session.from_json(state)
    assert again.to_json() == state
    return again


def test_a_session_goes_on_from_its_json_on_another_instance() -> None:
    guest = Preset(3, "guest", 0, {}, [{"add_object": "@wifi.ssids", "count": 2}, {"reboot": True},
                                       {"refresh": "@device_info", "max_age": 60}])
    tasks = [Task(1, "refresh", {"path": "Device.WiFi."}),
             Task(2, "set_attributes", {"attributes": [["@wifi.ssid", 1]]})]
    answers: list[Message] = [
        GetParameterNamesResponse((ParameterInfo("Device.WiFi.SSID.1.SSID", True),)), GPV,
        SetParameterAttributesResponse(), GetParameterNamesResponse(()), AddObjectResponse(1, 0),
        AddObjectResponse(2, 0), SetParameterValuesResponse(0), GetParameterValuesResponse(()), RebootResponse()]
    a, _, _ = start(tasks=tasks, presets=[guest, *PRESETS], connection_request_username=None)
    b = copy(a)
    for i, answer in enumerate([None, *answers]):
        out_a, out_b = session.receive(a, answer, NOW + i), session.receive(b, answer, NOW + i)
        assert out_a == out_b
        b = copy(b)
        assert b.to_json() == a.to_json()
    assert a.phase is Phase.CLOSED and a.rpcs == [
        "Inform", "GetParameterNames", "GetParameterValues", "SetParameterAttributes", "GetParameterNames",
        "AddObject", "AddObject", "SetParameterValues", "GetParameterValues", "Reboot"]


REPLIES = {*tasks_module.RESPONSES, AcsFault, TransferCompleteResponse, AutonomousTransferCompleteResponse,
           GetRPCMethodsResponse, RequestDownloadResponse}
"""What the ACS may send: its requests, and its answers to the CPE's."""
MESSAGES: list[Message | None] = [
    None, GPV, GetParameterNamesResponse((ParameterInfo("Device.WiFi.SSID.1.", True),)),
    GetParameterValuesResponse(()), SetParameterValuesResponse(0), AddObjectResponse(3, 0), DeleteObjectResponse(0),
    RebootResponse(), FactoryResetResponse(), DownloadResponse(1), UploadResponse(0), SetParameterAttributesResponse(),
    GetParameterAttributesResponse(()), GetRPCMethodsResponse(("Inform",)), CpeFault(9002, "Internal error"),
    CpeFault(9003, "Invalid arguments", (SetParameterValuesFault("Device.X", 9007, ""),)),
    TransferComplete("task-1", FaultStruct(0), "", ""), AutonomousTransferComplete("", "", False, "", 0, "",
                                                                                 FaultStruct(1, "x"), "", ""),
    GetRPCMethods(), RequestDownload("1 Firmware Upgrade Image", (("a", "b"),)),
    Inform(DeviceIdStruct("", "", "", ""), (), 1, "", 0, ()), AcsFault(8000, "x"),
    SetParameterValues(()), TransferCompleteResponse(),
]


@settings(max_examples=examples(150), deadline=None)
@given(st.lists(st.sampled_from(MESSAGES), max_size=14), st.booleans())
def test_any_message_sequence_gives_an_outcome(messages: list[Message | None], bootstrap: bool) -> None:
    tasks = [Task(1, "refresh", {"path": "Device.WiFi."}), Task(2, "download", {"file_id": 4}),
             Task(3, "set", {"values": [["@wifi.ssid", "x"]]})]
    guest = Preset(3, "guest", 0, {}, [{"add_object": "@wifi.ssids", "count": 2}, {"reboot": True}])
    s, _, _ = start(name="inform-0-bootstrap-1-boot.pr18.xml" if bootstrap else "inform-2-periodic.xml",
                    tasks=tasks, presets=[guest, *PRESETS], files={4: FW})
    for i, m in enumerate(messages):
        closed = s.phase is Phase.CLOSED
        out = session.receive(s, m, NOW + i)
        assert out.reply is None or type(out.reply) in REPLIES
        if closed and not isinstance(m, Inform):
            assert out.reply is None
        s = copy(s)
    assert s.sent <= MAX_RPCS and s.step == len(messages) + 1
