"""One preset for both data models: aliases that name a parameter of TR-098 and TR-181 alike.

TR-098 (``InternetGatewayDevice.``) and TR-181 Issue 2 (``Device.``) keep the same setting
under different paths; GenieACS users bridge them by hand with virtual parameters. Here the
bridge is data: :data:`ALIASES` maps ``@pppoe.username`` to the PPPoE user name of the first
WAN connection in TR-098 and of the first PPP interface in TR-181, and so on. A preset or a
task names either an alias or a full path; :func:`resolve` turns it into the device's path.

Aliases name the first instance (the first WAN connection, the 2.4 GHz radio as ``.1.``): what
a home router has. A device that differs takes full paths (with a ``data_model`` match).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from acs.model import ROOTS, DataModel


@dataclass(frozen=True, slots=True)
class Alias:
    """What an alias names, in each data model (a path ending "." is an object)."""

    tr098: str
    tr181: str
    doc: str

    def path(self, data_model: DataModel) -> str:
        return self.tr098 if data_model == "tr098" else self.tr181


_IGD = "InternetGatewayDevice."
_PPP098 = _IGD + "WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1."
_WLAN098 = _IGD + "LANDevice.1.WLANConfiguration.1."

ALIASES: dict[str, Alias] = {
    "@management.url": Alias(
        _IGD + "ManagementServer.URL", "Device.ManagementServer.URL", "the ACS URL the CPE informs to"),
    "@management.username": Alias(
        _IGD + "ManagementServer.Username", "Device.ManagementServer.Username",
        "the user name the CPE authenticates to the ACS with"),
    "@management.password": Alias(
        _IGD + "ManagementServer.Password", "Device.ManagementServer.Password",
        "the password the CPE authenticates to the ACS with"),
    "@management.periodic_inform_enable": Alias(
        _IGD + "ManagementServer.PeriodicInformEnable", "Device.ManagementServer.PeriodicInformEnable",
        "whether the CPE informs periodically (xsd:boolean)"),
    "@management.periodic_inform_interval": Alias(
        _IGD + "ManagementServer.PeriodicInformInterval", "Device.ManagementServer.PeriodicInformInterval",
        "seconds between periodic Informs (xsd:unsignedInt)"),
    "@management.connection_request_url": Alias(
        _IGD + "ManagementServer.ConnectionRequestURL", "Device.ManagementServer.ConnectionRequestURL",
        "where the ACS asks the CPE for a session (read only)"),
    "@management.connection_request_username": Alias(
        _IGD + "ManagementServer.ConnectionRequestUsername", "Device.ManagementServer.ConnectionRequestUsername",
        "the user name the ACS's connection requests authenticate with"),
    "@management.connection_request_password": Alias(
        _IGD + "ManagementServer.ConnectionRequestPassword", "Device.ManagementServer.ConnectionRequestPassword",
        "the password the ACS's connection requests authenticate with"),
    "@management.parameter_key": Alias(
        _IGD + "ManagementServer.ParameterKey", "Device.ManagementServer.ParameterKey",
        "the ParameterKey of the last SetParameterValues, AddObject or DeleteObject (read only)"),
    "@software_version": Alias(
        _IGD + "DeviceInfo.SoftwareVersion", "Device.DeviceInfo.SoftwareVersion", "the firmware version"),
    "@hardware_version": Alias(
        _IGD + "DeviceInfo.HardwareVersion", "Device.DeviceInfo.HardwareVersion", "the hardware version"),
    "@provisioning_code": Alias(
        _IGD + "DeviceInfo.ProvisioningCode", "Device.DeviceInfo.ProvisioningCode",
        "a code the ACS may set to tell how the device is provisioned"),
    "@uptime": Alias(_IGD + "DeviceInfo.UpTime", "Device.DeviceInfo.UpTime", "seconds since the last boot"),
    "@device_info": Alias(_IGD + "DeviceInfo.", "Device.DeviceInfo.", "the DeviceInfo object (to refresh)"),
    "@pppoe.username": Alias(
        _PPP098 + "Username", "Device.PPP.Interface.1.Username", "the PPPoE user name (the service's login)"),
    "@pppoe.password": Alias(
        _PPP098 + "Password", "Device.PPP.Interface.1.Password", "the PPPoE password"),
    "@wan.address": Alias(
        _PPP098 + "ExternalIPAddress", "Device.IP.Interface.1.IPv4Address.1.IPAddress",
        "the WAN IPv4 address (read only with PPPoE)"),
    "@wifi.enable": Alias(_WLAN098 + "Enable", "Device.WiFi.SSID.1.Enable", "the 2.4 GHz Wi-Fi on or off"),
    "@wifi.ssid": Alias(_WLAN098 + "SSID", "Device.WiFi.SSID.1.SSID", "the 2.4 GHz Wi-Fi network name"),
    "@wifi.key": Alias(
        _WLAN098 + "PreSharedKey.1.KeyPassphrase", "Device.WiFi.AccessPoint.1.Security.KeyPassphrase",
        "the 2.4 GHz Wi-Fi WPA passphrase"),
    "@wifi.ssids": Alias(
        _IGD + "LANDevice.1.WLANConfiguration.", "Device.WiFi.SSID.",
        "the Wi-Fi networks (an object: add_object, refresh)"),
    "@lan.hosts": Alias(
        _IGD + "LANDevice.1.Hosts.Host.", "Device.Hosts.Host.", "the LAN hosts the CPE sees (an object: refresh)"),
}
"""Alias -> its TR-098 and TR-181 path (docs/acs.md lists them)."""

SECRET_SUFFIXES = ("Password", "Passphrase", "PreSharedKey", "WEPKey", "Secret")
"""Parameter names that real CPEs read back as "" (TR-098/TR-181 say so for passwords and keys)."""


def resolve(path: str, data_model: DataModel) -> str:
    """The device's path for ``path``: an alias ("@wifi.ssid") resolves, anything else passes
    through; KeyError for an unknown alias."""
    if not path.startswith("@"):
        return path
    alias = ALIASES.get(path)
    if alias is None:
        raise KeyError(f"unknown alias {path!r} (known: {', '.join(ALIASES)})")
    return alias.path(data_model)


def problem(path: str) -> str | None:
    """What is wrong with a path a preset or task names ("" is the whole tree), or None."""
    if path.startswith("@"):
        return None if path in ALIASES else f"unknown alias {path!r}"
    if path and not path.startswith(tuple(ROOTS.values())):
        return f"{path!r} is neither an alias nor under {' or '.join(ROOTS.values())}"
    if ".." in path or any(c.isspace() for c in path):
        return f"{path!r} is not a parameter path"
    return None


def data_model_of(parameter_names: Iterable[str]) -> DataModel:
    """The data model of a device from the names it sent (its Inform's): TR-098 if any is under
    ``InternetGatewayDevice.``, else TR-181."""
    return "tr098" if any(name.startswith(_IGD) for name in parameter_names) else "tr181"


def is_secret(path: str) -> bool:
    """Whether the CPE reads ``path`` back as "" (a password or a key)."""
    return path.rsplit(".", 1)[-1].endswith(SECRET_SUFFIXES)


def under(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or in its subtree ("" is the whole tree)."""
    return path == prefix or ((not prefix or prefix.endswith(".")) and path.startswith(prefix))


def pppoe_username_paths() -> tuple[str, str]:
    """Where each data model keeps the PPPoE user name the ACS links a device to its service by
    (TR-098, TR-181; acs/store.py matches any instance of these)."""
    return ALIASES["@pppoe.username"].tr098, ALIASES["@pppoe.username"].tr181
