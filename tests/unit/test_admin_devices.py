"""The admin's copies of the ACS's checks agree with the ACS: the admin may not import acs
(components meet in PostgreSQL only), so admin/devices/schemas.py keeps its own task, preset and
path checks, and these tests hold them to acs/tasks.py, acs/plan.py and acs/datamodel.py word for
word; and the device page's tree puts instances in their order."""

from __future__ import annotations

from typing import Any

import pytest

from acs import datamodel, model, plan, server, tasks
from admin.devices import schemas
from admin.devices.devices import CPE_PASSWORD_PURPOSE, tree
from admin.devices.schemas import masked_args

TASKS: list[tuple[str, Any]] = [
    ("get", {"names": ["Device.DeviceInfo."]}), ("get", {"names": []}), ("get", {"names": "Device."}),
    ("get", {"names": ["@nope"]}), ("get", {"names": [3]}), ("get_attributes", {"names": ["Device.X"]}),
    ("set", {"values": [["@wifi.ssid", "x"]]}), ("set", {"values": [["Device.A.", "x"]]}),
    ("set", {"values": [["Device.A", 1, "int"]]}), ("set", {"values": [["Device.A", True, "xsd:boolean"]]}),
    ("set", {"values": []}), ("set", {"values": [["Other.A", "x"]]}), ("set", {"values": [["Device..A", "x"]]}),
    ("set", {"values": [["Device.A", None]]}), ("refresh", {"path": ""}), ("refresh", {"path": 5}),
    ("refresh", {"path": "Device. X"}), ("add_object", {"path": "Device.WiFi.SSID."}),
    ("add_object", {"path": "Device.WiFi.SSID"}), ("delete_object", {"path": "Device.WiFi.SSID.3."}),
    ("delete_object", {"path": "Device.WiFi.SSID."}), ("set_attributes", {"attributes": [["Device.A", 2]]}),
    ("set_attributes", {"attributes": [["Device.A", 7]]}), ("set_attributes", {"attributes": [["Device.A", True]]}),
    ("set_attributes", {"attributes": []}), ("reboot", {}), ("reboot", {"delay": 1}), ("factory_reset", {}),
    ("download", {"file_id": 3}), ("download", {"file_id": "3"}), ("download", {"file_id": 3, "url": "http://x"}),
    ("download", {"url": "https://x/fw.bin", "file_type": "1 Firmware Upgrade Image"}),
    ("download", {"url": "ftp://x"}), ("download", {"url": "http://x"}), ("download", {}),
    ("upload", {"file_type": "1 Vendor Configuration File"}), ("upload", {}), ("dance", {}), ("get", []),
]
PRESETS: list[tuple[Any, Any]] = [
    ({}, []), ({"tags": ["a"], "oui": "00D09E", "events": ["1 BOOT"]}, [{"reboot": True}]),
    ({"colour": 1, "tags": [], "events": [""], "oui": 5, "data_model": "tr069"}, []), ([], []), ({}, {}),
    ({}, [{"set": "@wifi.ssid", "value": "{{ customer.name }}"}]),
    ({}, [{"set": "@wifi.ssid", "value": "{{ x"}]), ({}, [{"set": "@wifi.ssid", "value": "{{ ''.__class__ }}"}]),
    ({}, [{"set": "Device.A.", "value": 1, "type": "int"}]), ({}, [{"set": "@nope", "value": None}]),
    ({}, [{"set": 5}]), ({}, [{"refresh": "Device.", "max_age": 0}]), ({}, [{"refresh": "Device.", "max_age": True}]),
    ({}, [{"refresh": "Device.", "max_age": float("inf")}]), ({}, [{"refresh": "Device.", "max_age": 60.5}]),
    ({}, [{"add_object": "@wifi.ssids", "count": 2}]), ({}, [{"add_object": "Device.X", "count": 17}]),
    ({}, [{"download": 4}]), ({}, [{"download": "4"}]), ({}, [{"reboot": 1}]),
    ({}, [{"connection_request_credentials": True, "extra": 1}]), ({}, [{"reboot": True, "download": 1}]),
    ({}, [{}]), ({}, ["set"]),
]


@pytest.mark.parametrize(("kind", "args"), TASKS)
def test_task_args_are_checked_as_the_acs_checks_them(kind: str, args: Any) -> None:
    assert schemas.task_problems(kind, args) == tasks.check_args(kind, args)


@pytest.mark.parametrize(("match", "actions"), PRESETS)
def test_presets_are_checked_as_the_acs_checks_them(match: Any, actions: Any) -> None:
    assert schemas.preset_problems(match, actions) == plan.check_preset(match, actions)


def test_the_admins_copies_of_the_acs_tables_are_the_acs_tables() -> None:
    assert {name: (a.tr098, a.tr181, a.doc) for name, a in datamodel.ALIASES.items()} == schemas.ALIASES
    assert schemas.SECRET_SUFFIXES == datamodel.SECRET_SUFFIXES
    assert schemas.TASK_KINDS == model.TASK_KINDS
    assert schemas.MATCH_KEYS == plan.MATCH_KEYS and schemas.ACTIONS == plan.ACTIONS
    assert schemas.MAX_COUNT == plan.MAX_COUNT
    assert CPE_PASSWORD_PURPOSE == server.CPE_PASSWORD_PURPOSE
    for path in ("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "Device.ManagementServer.Password",
                 "Device.WiFi.SSID.1.SSID", "@wifi.key", "@pppoe.password", "@wifi.ssid",
                 "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.WEPKey.1.WEPKey"):
        assert schemas.is_secret(path) == datamodel.is_secret(datamodel.resolve(path, "tr181")), path


def test_the_tree_nests_objects_and_orders_instances_by_number() -> None:
    rows = [{"path": p} for p in ("Device.WiFi.SSID.10.SSID", "Device.WiFi.SSID.2.SSID", "Device.WiFi.SSID.1.SSID",
                                  "Device.WiFi.", "Device.DeviceInfo.UpTime", "Device.DeviceInfo.Manufacturer")]
    root = tree(rows)
    [device] = root.children
    assert device.name == "Device" and device.count == 5
    info, wifi = device.children
    assert [p["path"].rsplit(".", 1)[1] for p in info.params] == ["Manufacturer", "UpTime"]
    assert wifi.row == {"path": "Device.WiFi."}
    assert [n.name for n in wifi.children[0].children] == ["1", "2", "10"]


def test_secret_values_are_masked_in_what_is_shown() -> None:
    args = {"values": [["@pppoe.password", "s3cret"], ["Device.PPP.Interface.1.Password", "x", "xsd:string"],
                       ["@wifi.ssid", "Home"]]}
    assert masked_args("set", args)["values"] == [["@pppoe.password", "••••••"],
                                                  ["Device.PPP.Interface.1.Password", "••••••", "xsd:string"],
                                                  ["@wifi.ssid", "Home"]]
    assert args["values"][0][1] == "s3cret"  # the task itself keeps it
    assert schemas.shown("Device.X.KeyPassphrase", "k") == "••••••"
    assert schemas.shown("Device.X.KeyPassphrase", "") == ""


@pytest.mark.parametrize(("text", "tags"), [("a, b  c,,a", ["a", "b", "c"]), ("", []), ("  ", [])])
def test_tags_are_typed_in_one_field(text: str, tags: list[str]) -> None:
    assert schemas.parse_tags(text) == tags


def test_a_bad_tag_or_too_many_are_refused() -> None:
    with pytest.raises(ValueError, match="is not a tag"):
        schemas.parse_tags("good bad/one")
    with pytest.raises(ValueError, match="at most 20"):
        schemas.parse_tags(" ".join(f"t{i}" for i in range(21)))
