"""acs.plan: presets' checks, matching, the declared state, and the diff against the known tree
that makes the fewest RPCs (whole sessions are in test_session.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from acs import plan
from acs.messages import AddObject, Download, GetParameterNames, GetParameterValues, ParameterValue, Reboot
from acs.model import DataModel, Device, DeviceView, FaultRecorded, FileRef, Param, Preset, PresetsApplied

NOW = 10_000.0
DEFAULT = Preset(1, "default", -100, {}, [
    {"set": "@management.periodic_inform_interval", "value": "300", "type": "xsd:unsignedInt"},
    {"set": "@management.periodic_inform_enable", "value": "true", "type": "xsd:boolean"},
    {"connection_request_credentials": True}])
"""The default preset as schema.sql inserts it."""
HOME = Preset(2, "home", 0, {}, [
    {"set": "@pppoe.username", "value": "{{ service.login }}"},
    {"set": "@pppoe.password", "value": "{{ service.password }}"},
    {"set": "@wifi.ssid", "value": "{{ service.custom.ssid | default(customer.name ~ ' wifi') }}"},
    {"set": "@wifi.key", "value": "{{ service.custom.wifi_key }}"}])
SERVICE = {"login": "bob@isp", "password": "ppp-pass", "custom": {"wifi_key": "w1f1-k3y!"}}
CUSTOMER = {"name": "Bob"}


def device(data_model: DataModel = "tr181", **kw: Any) -> Device:
    d = Device(1, "00D09E-HGW%2D181-7", "00D09E", "HGW-181", "7", "tr181", software_version="2.4.1",
               tags=("fibre",), connection_request_username="00D09E-HGW%2D181-7")
    return replace(d, data_model=data_model, **kw)


def view(tree: list[Param] | None = None, *, data_model: DataModel = "tr181", events: tuple[str, ...] = ("2 PERIODIC",),
         service: dict[str, Any] | None = SERVICE, files: dict[int, FileRef] | None = None, **kw: Any) -> DeviceView:
    ctx = {"device": {"serial": "7"}, "service": service, "customer": CUSTOMER if service else None}
    return DeviceView(device(data_model, **kw), {p.path: p for p in tree or []}, [], ctx, events, NOW, files or {})


def configured(data_model: DataModel = "tr181", read_at: float = NOW - 60) -> list[Param]:
    """The tree of a device in the state DEFAULT and HOME declare."""
    v = view(data_model=data_model)
    d = plan.desired(v, [DEFAULT, HOME])
    return [Param(p.name, p.value, p.type, True, read_at) for p in d.values.values()]


def test_presets_key_is_short_stable_and_follows_what_matters() -> None:
    key = plan.presets_key([DEFAULT, HOME])
    assert len(key) == 16 and key == plan.presets_key([HOME, DEFAULT])
    assert plan.presets_key([DEFAULT, HOME, replace(HOME, id=3, enabled=False)]) == key  # disabled: not counted
    assert plan.presets_key([DEFAULT, replace(HOME, weight=5)]) != key
    assert plan.presets_key([DEFAULT, replace(HOME, actions=HOME.actions[:1])]) != key
    assert plan.presets_key([DEFAULT, replace(HOME, name="renamed")]) == key  # the name changes nothing


def test_the_shipped_presets_check_clean() -> None:
    assert plan.check_preset(DEFAULT.match, DEFAULT.actions) == []
    assert plan.check_preset(HOME.match, HOME.actions) == []
    assert plan.check_preset({"tags": ["fibre"], "oui": "00D09E", "product_class": "HGW-181",
                              "software_version": "2.*", "data_model": "tr181", "events": ["1 BOOT"]}, [
        {"refresh": "@lan.hosts", "max_age": 3600}, {"add_object": "@wifi.ssids", "count": 2},
        {"download": 4}, {"reboot": True}, {"set": "Device.WiFi.SSID.1.Enable", "value": True,
                                            "type": "xsd:boolean"}]) == []


@pytest.mark.parametrize(("match", "actions", "problem"), [
    ([], [], "match must be an object"),
    ({"colour": "red"}, [], "unknown key 'colour'"),
    ({"tags": "fibre"}, [], "tags must be a non-empty list"),
    ({"events": []}, [], "events must be a non-empty list"),
    ({"oui": 5}, [], "oui must be a string"),
    ({"data_model": "tr069"}, [], "data_model must be one of"),
    ({}, {}, "actions must be a list"),
    ({}, ["reboot"], "must be an object"),
    ({}, [{"set": "@wifi.ssid", "reboot": True, "value": "x"}], "has one of"),
    ({}, [{"nothing": 1}], "has one of"),
    ({}, [{"set": "@wifi.ssid"}], "value must be"),
    ({}, [{"set": "@wifi.ssid", "value": "{{ service.login"}], "does not compile"),
    ({}, [{"set": "@wifi.ssid", "value": "x", "type": "string"}], "xsd type"),
    ({}, [{"set": "@wifi.ssid", "value": "x", "colour": 1}], "unknown key 'colour'"),
    ({}, [{"set": "@wifi.ssids", "value": "x"}], "is an object"),
    ({}, [{"set": "@wifi.nope", "value": "x"}], "unknown alias"),
    ({}, [{"set": 5, "value": "x"}], "path must be a string"),
    ({}, [{"refresh": "@lan.hosts"}], "max_age must be"),
    ({}, [{"refresh": "@lan.hosts", "max_age": float("nan")}], "max_age must be"),
    ({}, [{"refresh": "@lan.hosts", "max_age": True}], "max_age must be"),
    ({}, [{"add_object": "Device.WiFi.SSID", "count": 1}], "must end with '.'"),
    ({}, [{"add_object": "@wifi.ssids", "count": 0}], "count must be"),
    ({}, [{"add_object": "@wifi.ssids", "count": 99}], "count must be"),
    ({}, [{"download": "fw.bin"}], "id of a file"),
    ({}, [{"reboot": "yes"}], "must be true"),
])
def test_check_preset_says_what_is_wrong(match: Any, actions: Any, problem: str) -> None:
    problems = plan.check_preset(match, actions)
    assert any(problem in p for p in problems), problems


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from([*plan.MATCH_KEYS, *plan.ACTIONS, "value", "type", "max_age", "count"]),
                        inner, max_size=4), max_leaves=12)


@given(JSON, JSON)
def test_check_preset_and_the_plan_never_raise(match: Any, actions: Any) -> None:
    assert isinstance(plan.check_preset(match, actions), list)
    r = plan.preset_round(view(), [Preset(9, "fuzz", 0, {} if not isinstance(match, dict) else match,
                                          actions if isinstance(actions, list) else [actions])])
    json.dumps([s.to_json() for s in r.steps])


@pytest.mark.parametrize(("match", "hit"), [
    ({}, True),
    ({"tags": ["fibre"]}, True), ({"tags": ["fibre", "vip"]}, False),
    ({"oui": "00d09e"}, True), ({"oui": "001122"}, False),
    ({"product_class": "HGW-181"}, True), ({"product_class": "HGW"}, False),
    ({"software_version": "2.4.*"}, True), ({"software_version": "3.*"}, False),
    ({"data_model": "tr181"}, True), ({"data_model": "tr098"}, False),
    ({"events": ["1 BOOT", "2 PERIODIC"]}, True), ({"events": ["1 BOOT"]}, False),
    ({"tags": ["fibre"], "events": ["1 BOOT"]}, False),
    ({"colour": "red"}, False),  # a key this ACS does not know never matches
])
def test_matches(match: dict[str, Any], hit: bool) -> None:
    assert plan.matches(Preset(3, "p", 0, match, []), view()) is hit
    assert not plan.matches(Preset(3, "p", 0, match, [], enabled=False), view())


def test_desired_renders_templates_and_a_later_preset_wins() -> None:
    late = Preset(5, "late", 10, {"tags": ["fibre"]}, [{"set": "@wifi.ssid", "value": "{{ device.serial }}-net"}])
    d = plan.desired(view(), [late, HOME, DEFAULT])  # any order in: weight, then id, applies
    assert [p.name for p in d.presets] == ["default", "home", "late"]
    assert {v.name: v.value for v in d.values.values()} == {
        "Device.ManagementServer.PeriodicInformInterval": "300", "Device.ManagementServer.PeriodicInformEnable": "true",
        "Device.PPP.Interface.1.Username": "bob@isp", "Device.PPP.Interface.1.Password": "ppp-pass",
        "Device.WiFi.AccessPoint.1.Security.KeyPassphrase": "w1f1-k3y!", "Device.WiFi.SSID.1.SSID": "7-net"}
    assert d.faults == [] and d.credentials is None  # the ACS set the CR credentials already


def test_a_template_that_fails_skips_its_action_with_a_fault() -> None:
    d = plan.desired(view(service=None), [DEFAULT, HOME])
    assert set(d.values) == {"Device.ManagementServer.PeriodicInformInterval",
                             "Device.ManagementServer.PeriodicInformEnable"}
    assert len(d.faults) == 4 and all(f.source == "preset" and f.detail["preset"] == 2 for f in d.faults)
    assert "the template of @pppoe.username failed: UndefinedError" in d.faults[0].message
    sandboxed = Preset(6, "evil", 0, {}, [{"set": "@wifi.ssid", "value": "{{ ''.__class__.__mro__ }}"}])
    assert "SecurityError" in plan.desired(view(), [sandboxed]).faults[0].message


def test_a_full_path_of_the_other_data_model_is_a_fault() -> None:
    p = Preset(6, "tr181 only", 0, {}, [{"set": "Device.WiFi.SSID.1.SSID", "value": "x"}])
    d = plan.desired(view(data_model="tr098"), [p])
    assert d.values == {} and "not of this device's data model (tr098)" in d.faults[0].message


@pytest.mark.parametrize(("known", "want", "type_", "equal"), [
    ("300", "300", "xsd:unsignedInt", True), ("0300", "300", "xsd:unsignedInt", True),
    ("1", "true", "xsd:boolean", True), ("false", "0", "xsd:boolean", True), ("1", "false", "xsd:boolean", False),
    ("yes", "yes", "xsd:boolean", True), ("yes", "true", "xsd:boolean", False), ("x", "300", "xsd:int", False),
    ("Bob", "bob", "xsd:string", False), ("1", "true", "xsd:string", False),
])
def test_values_compare_as_their_type(known: str, want: str, type_: str, equal: bool) -> None:
    assert plan.same(known, want, type_) is equal


def test_instances() -> None:
    tree = {p: Param(p) for p in ("Device.WiFi.SSID.1.SSID", "Device.WiFi.SSID.3.", "Device.WiFi.SSIDNumberOfEntries",
                                  "Device.IP.Interface.")}
    assert plan.instances(tree, "Device.WiFi.SSID.") == {1, 3}
    assert plan.instances(tree, "Device.IP.Interface.") == set()  # listed, none
    assert plan.instances(tree, "Device.Hosts.Host.") is None  # never listed


def spv(r: plan.Round) -> dict[str, str]:
    steps = [s for s in r.steps if s.kind == "preset.values"]
    assert len(steps) == 1
    return {p.name: p.value for p in steps[0].rpc.parameters}  # type: ignore[union-attr]


@pytest.mark.parametrize("data_model", ["tr098", "tr181"])
def test_a_device_in_its_declared_state_needs_no_rpc(data_model: DataModel) -> None:
    r = plan.preset_round(view(configured(data_model), data_model=data_model), [DEFAULT, HOME])
    assert r.steps == [] and r.effects == [PresetsApplied(plan.presets_key([DEFAULT, HOME]), None)]


def test_one_value_changed_in_the_service_is_one_set_of_that_value() -> None:
    r = plan.preset_round(view(configured(), service={**SERVICE, "password": "new-pass"}), [DEFAULT, HOME])
    assert [s.kind for s in r.steps] == ["preset.values"]
    assert spv(r) == {"Device.PPP.Interface.1.Password": "new-pass"}
    assert r.steps[0].rpc.parameter_key == r.key  # type: ignore[union-attr]


def test_secrets_read_back_as_empty_are_no_difference() -> None:
    tree = [replace(p, value="") if p.path.endswith(("Password", "KeyPassphrase")) else p for p in configured()]
    assert plan.preset_round(view(tree), [DEFAULT, HOME]).steps == []
    # a plain parameter read as "" is a difference
    tree = [replace(p, value="") if p.path.endswith("SSID") else p for p in configured()]
    assert spv(plan.preset_round(view(tree), [DEFAULT, HOME])) == {"Device.WiFi.SSID.1.SSID": "Bob wifi"}


def test_unknown_values_are_set_blindly_and_read_only_ones_are_a_fault() -> None:
    tree = [p for p in configured() if not p.path.endswith("Username")]
    tree.append(Param("Device.WiFi.SSID.1.SSID", "other", "xsd:string", False, NOW))
    tree = [p for p in tree if p.path != "Device.WiFi.SSID.1.SSID" or p.value == "other"]
    r = plan.preset_round(view(tree), [DEFAULT, HOME])
    assert spv(r) == {"Device.PPP.Interface.1.Username": "bob@isp"}
    assert [e.message for e in r.effects if isinstance(e, FaultRecorded)] == ["Device.WiFi.SSID.1.SSID is not writable"]


def test_connection_request_credentials_are_set_once() -> None:
    r = plan.preset_round(view(configured(), connection_request_username=None), [DEFAULT, HOME])
    values = spv(r)
    assert values["Device.ManagementServer.ConnectionRequestUsername"] == "00D09E-HGW%2D181-7"
    password = values["Device.ManagementServer.ConnectionRequestPassword"]
    assert len(password) >= 20 and r.steps[0].data == {"credentials": ["00D09E-HGW%2D181-7", password]}
    again = plan.preset_round(view(configured(), connection_request_username=None), [DEFAULT, HOME])
    assert spv(again)["Device.ManagementServer.ConnectionRequestPassword"] != password  # random each time


def test_add_object_counts() -> None:
    p = Preset(7, "two ssids", 0, {}, [{"add_object": "@wifi.ssids", "count": 2}])
    unknown = plan.preset_round(view(), [p])
    assert [s.rpc for s in unknown.steps] == [GetParameterNames("Device.WiFi.SSID.", True)]
    one = plan.preset_round(view([Param("Device.WiFi.SSID.1.SSID", "a", read_at=NOW)]), [p])
    assert [s.rpc for s in one.steps] == [AddObject("Device.WiFi.SSID.", one.key)]
    three = [Param(f"Device.WiFi.SSID.{i}.", None, read_at=NOW) for i in (1, 2, 3)]
    assert plan.preset_round(view(three), [p]).steps == []  # at least 2: a third is left alone


def test_refresh_falls_due_after_max_age() -> None:
    p = Preset(8, "hosts", 0, {}, [{"refresh": "@lan.hosts", "max_age": 3600},
                                   {"refresh": "@device_info", "max_age": 600}])
    fresh = [Param("Device.Hosts.Host.1.IPAddress", "10.0.0.2", read_at=NOW - 100),
             Param("Device.Hosts.Host.2.IPAddress", "10.0.0.3", read_at=NOW - 1000),
             Param("Device.DeviceInfo.UpTime", "5", read_at=NOW - 599)]
    r = plan.preset_round(view(fresh), [p])
    assert r.steps == [] and r.effects == [PresetsApplied(r.key, NOW + 1)]  # the oldest value says when
    stale = [*fresh[:2], replace(fresh[2], read_at=NOW - 600)]
    r = plan.preset_round(view(stale), [p])
    assert [s.rpc for s in r.steps] == [GetParameterValues(("Device.DeviceInfo.",))]
    assert r.due_at == NOW + 600 and r.effects == []  # the PresetsApplied comes when the session ends well
    r = plan.preset_round(view(), [p])  # nothing known: both
    assert [s.rpc for s in r.steps] == [GetParameterValues(("Device.Hosts.Host.",)),
                                        GetParameterValues(("Device.DeviceInfo.",))]


def test_downloads_go_once_and_reboots_only_after_a_change() -> None:
    fw = FileRef(4, "fw-2.5.bin", plan.FIRMWARE, 100, "https://acs/files/4", version="2.5")
    cfg = FileRef(5, "cfg.xml", "3 Vendor Configuration File", 10, "https://acs/files/5")
    p = Preset(9, "upgrade", 0, {}, [{"download": 4}, {"download": 5}, {"reboot": True}])
    key = plan.presets_key([p])
    r = plan.preset_round(view(files={4: fw, 5: cfg}), [p])
    assert [s.rpc for s in r.steps] == [
        Download(f"preset-{key}", plan.FIRMWARE, "https://acs/files/4", file_size=100, target_file_name="fw-2.5.bin"),
        Download(f"preset-{key}", cfg.file_type, cfg.url, file_size=10, target_file_name="cfg.xml"),
        Reboot(f"preset-{key}")]
    # on that firmware, and this generation applied: nothing (no reboot without a change)
    done = plan.preset_round(view(files={4: fw, 5: cfg}, software_version="2.5", presets_key=key), [p])
    assert done.steps == []
    # after 0 BOOTSTRAP the configuration file goes again, not the firmware
    boot = plan.preset_round(view(files={4: fw, 5: cfg}, software_version="2.5", presets_key=key,
                                  events=("0 BOOTSTRAP",)), [p])
    assert [s.rpc.target_file_name for s in boot.steps if s.kind == "preset.download"] == ["cfg.xml"]  # type: ignore[union-attr]
    missing = plan.preset_round(view(), [p])
    assert [e.message for e in missing.effects if isinstance(e, FaultRecorded)] == [
        "preset 'upgrade' action 1: file 4 is not there (deleted, or incomplete)",
        "preset 'upgrade' action 2: file 5 is not there (deleted, or incomplete)"]


def test_dry_run_json() -> None:
    v = view([], connection_request_username=None, service=None)
    out = plan.dry_run_json(v, [DEFAULT, HOME, Preset(7, "two", 0, {"data_model": "tr098"}, [])])
    assert json.loads(json.dumps(out)) == out
    assert out["matched"] == [{"id": 1, "name": "default"}, {"id": 2, "name": "home"}]
    assert out["values"]["Device.ManagementServer.PeriodicInformInterval"] == ["300", "xsd:unsignedInt"]
    assert out["connection_request_credentials"] is True
    assert [r["method"] for r in out["rpcs"]] == ["SetParameterValues"]
    assert len(out["rpcs"][0]["parameters"]) == 4  # two values, the two credentials
    assert [f["detail"]["action"] for f in out["faults"]] == [1, 2, 3, 4]  # no service: the templates failed
    assert plan.dry_run(v, [DEFAULT]).rpcs[0].parameters[0] == ParameterValue(  # type: ignore[union-attr]
        "Device.ManagementServer.PeriodicInformInterval", "300", "xsd:unsignedInt")
