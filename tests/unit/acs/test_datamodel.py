"""acs.datamodel: aliases resolve to the real paths of both data models (the TR-181 CSV and the
TR-098 envelopes genieacs-sim sent), and the helpers the planner and the store lean on."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from acs import datamodel, soap
from acs.messages import GetParameterNamesResponse, Inform
from acs.store import PPPOE_USERNAME

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "cwmp"


def tr181_names() -> set[str]:
    with (VECTORS / "datamodels" / "tr181-small.csv").open(newline="") as f:
        return {row["Parameter"] + ("." if row["Object"] == "true" else "") for row in csv.DictReader(f)}


def names(path: str) -> set[str]:
    body = soap.parse((VECTORS / path).read_bytes()).body
    if isinstance(body, Inform):
        return {p.name for p in body.parameters}
    assert isinstance(body, GetParameterNamesResponse)
    return {p.name for p in body.parameters}


def test_aliases_name_parameters_the_tr181_model_has() -> None:
    known = tr181_names()
    in_csv = ["@management.url", "@management.username", "@management.password",
              "@management.periodic_inform_enable", "@management.periodic_inform_interval",
              "@management.connection_request_url", "@management.connection_request_username",
              "@management.connection_request_password", "@management.parameter_key", "@software_version",
              "@hardware_version", "@provisioning_code", "@uptime", "@device_info", "@pppoe.username",
              "@wan.address", "@wifi.enable", "@wifi.ssid", "@wifi.ssids"]
    assert [a for a in in_csv if datamodel.resolve(a, "tr181") not in known] == []


def test_management_aliases_name_what_a_tr098_cpe_lists() -> None:
    listed = names("tr098/getparameternamesresponse-managementserver-nextlevel-false.xml")
    management = [a for a in datamodel.ALIASES if a.startswith("@management.")]
    assert [a for a in management if datamodel.resolve(a, "tr098") not in listed] == []
    assert datamodel.resolve("@software_version", "tr098") in names("tr098/inform-2-periodic.xml")


def test_every_alias_is_under_its_own_root() -> None:
    for name, alias in datamodel.ALIASES.items():
        assert alias.tr098.startswith("InternetGatewayDevice."), name
        assert alias.tr181.startswith("Device."), name
        assert alias.tr098.endswith(".") == alias.tr181.endswith("."), name  # an object in both, or in neither
        assert alias.doc


def test_resolve() -> None:
    assert datamodel.resolve("@wifi.key", "tr098") == \
        "InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.KeyPassphrase"
    assert datamodel.resolve("@wifi.key", "tr181") == "Device.WiFi.AccessPoint.1.Security.KeyPassphrase"
    assert datamodel.resolve("Device.Foo.Bar", "tr098") == "Device.Foo.Bar"  # a full path passes through
    with pytest.raises(KeyError, match=r"unknown alias '@wifi\.colour'"):
        datamodel.resolve("@wifi.colour", "tr181")


@pytest.mark.parametrize(("vector", "model"), [
    ("tr098/inform-2-periodic.xml", "tr098"), ("tr181/inform-2-periodic.xml", "tr181"),
    ("tr098/inform-0-bootstrap-1-boot.pr18.xml", "tr098"), ("tr181/inform-0-bootstrap-1-boot.pr18.xml", "tr181"),
])
def test_data_model_of_an_inform(vector: str, model: str) -> None:
    assert datamodel.data_model_of(names(vector)) == model


@pytest.mark.parametrize(("path", "secret"), [
    ("Device.PPP.Interface.1.Password", True),
    ("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", True),
    ("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.PreSharedKey", True),
    ("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.WEPKey.1.WEPKey", True),
    ("Device.ManagementServer.ParameterKey", False),
    ("Device.PPP.Interface.1.Username", False),
    ("InternetGatewayDevice.LANDevice.1.WLANConfiguration.1.PreSharedKey.1.", False),  # the object itself
])
def test_is_secret(path: str, secret: bool) -> None:
    assert datamodel.is_secret(path) is secret


@pytest.mark.parametrize(("path", "fine"), [
    ("@wifi.ssid", True), ("Device.WiFi.SSID.1.SSID", True), ("InternetGatewayDevice.", True), ("", True),
    ("@nope", False), ("WiFi.SSID", False), ("Device..SSID", False), ("Device.WiFi SSID", False),
])
def test_problem(path: str, fine: bool) -> None:
    assert (datamodel.problem(path) is None) is fine


def test_under() -> None:
    assert datamodel.under("Device.WiFi.SSID.1.SSID", "Device.WiFi.")
    assert datamodel.under("Device.WiFi.", "Device.WiFi.")
    assert datamodel.under("Device.WiFi.SSID.1.SSID", "")
    assert not datamodel.under("Device.WiFiX", "Device.WiFi")  # a parameter has no subtree
    assert not datamodel.under("Device.WiFi.SSID", "Device.IP.")


def test_the_store_recognises_the_pppoe_username_paths() -> None:
    tr098, tr181 = datamodel.pppoe_username_paths()
    assert PPPOE_USERNAME.fullmatch(tr098) and PPPOE_USERNAME.fullmatch(tr181)
    assert tr181 in tr181_names()
