"""The ACS's settings: the ``[acs]`` section (docs/configuration.md is generated from it)."""

from __future__ import annotations

import ipaddress
import string
from dataclasses import dataclass
from typing import Literal

from daemons.config import (
    DaemonSettings,
    SettingsError,
    is_address,
    is_listen_port,
    is_non_negative,
    is_positive,
    listen_port,
    setting,
)


def _are_networks(value: tuple[str, ...]) -> str | None:
    for text in value:
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            return f"must be addresses or networks (CIDR): {text!r} is neither"
    return None


def _is_url(value: str) -> str | None:
    if value and not value.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL (or empty)"
    return None


USERNAME_FIELDS = ("cwmp_id", "serial", "oui", "product_class")
"""What a ``username`` template may name of the informing device."""


def _is_username(value: str) -> str | None:
    try:
        parts = list(string.Formatter().parse(value))
    except ValueError as e:
        return f"is not a user name or a template of one ({e})"
    if any(name is not None and (name not in USERNAME_FIELDS or spec or conv) for _, name, spec, conv in parts):
        return "may name only {" + "}, {".join(USERNAME_FIELDS) + "} of the device, as {serial}"
    return None


def _is_realm(value: str) -> str | None:
    if not value or any(c in value for c in '"\\') or not value.isprintable():
        return "must be printable text without quotes or backslashes"
    return None


@dataclass(frozen=True, slots=True)
class AcsSettings(DaemonSettings):
    bind: str = setting("0.0.0.0", "Address the CWMP listeners bind (`::` for IPv6 and IPv4).", check=is_address)
    port: int = listen_port(7547, "CWMP over plain HTTP (TCP); CPEs post to any path of it.", check=is_listen_port)
    tls_port: int = listen_port(
        0, "CWMP over HTTPS (e.g. 7548; 0: off); needs `tls_cert_file` and `tls_key_file`. Both listeners may run.")
    tls_cert_file: str = setting("", "Certificate chain (PEM) of the HTTPS listener.")
    tls_key_file: str = setting("", "Private key (PEM) of the HTTPS listener.")
    public_url: str = setting(
        "", "The ACS's address as CPEs reach it (`http://acs.example.net:7547`), for the download and upload "
        "links it hands them. Empty: http://`bind`:`port` (127.0.0.1 when `bind` is a wildcard).", check=_is_url)
    metrics_port: int = listen_port(9547, "Port of `/metrics` (0: none).")
    auth: Literal["digest", "none"] = setting(
        "digest",
        "How CPEs authenticate their Inform: `digest` (HTTP digest, MD5, qop=auth; Basic is accepted too, "
        "over HTTPS only) or `none` (any device may inform: a warning is logged at start). The user name is "
        "`username`, or for a device with its own password (acs_devices.cpe_password) its cwmp id.")
    realm: str = setting("lastmile", "The digest realm CPEs are challenged with.", check=_is_realm)
    username: str = setting(
        "", "The user name CPEs authenticate with, the same for all, or a template of the device's identity that "
        "ties each CPE's user name to it (`{serial}`, `{cwmp_id}`, `{oui}-{serial}`, ...: a CPE must then send "
        "its own) with the shared password. Empty: per-device credentials only.", check=_is_username)
    password: str = setting("", "The password of `username` (prefer `password_file`).")
    password_file: str = setting(
        "", "A file holding the password of `username` (its first line), instead of `password`: under systemd "
        "`LoadCredential=` puts it in `$CREDENTIALS_DIRECTORY`.")
    allow_networks: tuple[str, ...] = setting(
        (), "Addresses or networks (CIDR) CPEs may connect from; others get 403. Empty: any.", check=_are_networks)
    nonce_lifetime: float = setting(
        300.0, "Seconds a digest nonce is good for; an older one gets a new challenge with stale=true.",
        check=is_positive)
    session_timeout: float = setting(
        30.0, "Seconds a session may wait for the CPE's next request; a new Inform of its device meanwhile gets "
        "503 with Retry-After (after it, the new Inform takes over).", check=is_positive)
    read_timeout: float = setting(
        10.0, "Seconds a request's body may take to arrive (a slow sender is cut off with 408).", check=is_positive)
    client_max_size: int = setting(4 << 20, "Largest request body accepted (bytes; 413 past it).", check=is_positive)
    max_new_sessions: int = setting(
        100, "Informs processed at once by this instance; more get 503 with Retry-After (requests of sessions "
        "already open are never refused).", check=is_positive)
    retry_after: float = setting(
        60.0, "Seconds a CPE turned away by `max_new_sessions` or a busy device is told to wait (Retry-After, "
        "spread by up to a half more so that refused CPEs do not come back together).", check=is_positive)
    inform_batch: int = setting(500, "Most Informs written in one statement (group commit).", check=is_positive)
    inform_wait: float = setting(
        0.002, "Seconds the first Inform of a batch waits for others to share its commit.", check=is_non_negative)
    file_link_lifetime: float = setting(
        86400.0, "Seconds the download and upload links handed to CPEs stay valid.", check=is_positive)
    max_upload: int = setting(64 << 20, "Largest file a CPE may upload (bytes).", check=is_positive)
    transfer_timeout: float = setting(
        3600.0, "Seconds a Download or Upload may wait for its TransferComplete before it has failed.",
        check=is_positive)
    download_success_on_timeout: bool = setting(
        False, "A Download whose TransferComplete never comes counts as done, not failed, after "
        "`transfer_timeout` (for CPEs that never send one).")
    connection_request_networks: tuple[str, ...] = setting(
        (), "Networks the ACS may send connection requests into besides the address each device informed from "
        "(a management network behind NAT; loopback only when listed).", check=_are_networks)
    connection_request_basic: bool = setting(
        False, "Answer a CPE's Basic challenge to a connection request (the password then crosses in clear "
        "on plain HTTP); digest is always used when the CPE offers it.")
    connection_request_timeout: float = setting(
        2.0, "Seconds a CPE has to answer a connection request.", check=is_positive)
    connection_request_interval: float = setting(
        10.0, "Least seconds between two connection requests to one device from one instance.", check=is_positive)

    def __post_init__(self) -> None:
        if self.tls_port and not (self.tls_cert_file and self.tls_key_file):
            raise SettingsError(f"acs.tls_port = {self.tls_port} needs acs.tls_cert_file and acs.tls_key_file")
        if self.tls_port and self.tls_port == self.port:
            raise SettingsError(f"acs.tls_port = {self.tls_port} is acs.port too: give HTTPS a port of its own")
        if self.password and self.password_file:
            raise SettingsError("acs.password and acs.password_file are both set: keep one")
        if (self.password or self.password_file) and not self.username:
            raise SettingsError("acs.password is set without acs.username")

    def url(self) -> str:
        """What CPEs are told to fetch from: ``public_url``, else the plain listener's address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::") else self.bind
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"
