"""The portal's equipment page (``/portal/equipment``): the customer's CPEs (routers) with their
model, serial, firmware, when the ACS last heard from them and their Wi-Fi networks as last read;
the customer restarts one (a confirm step first) or changes a network's name and key. What it asked
for is listed under the device in plain words: waiting for the router, done, failed.

**How a change reaches the router.** Exactly as the admin's device page queues it
(admin/devices/queries.py ``queue_task``): a row of acs_tasks the device's next CWMP session runs,
and a connection request (acs_wakeups) so that session starts now; a router that is offline runs
it when it connects again. A reboot is a ``reboot`` task; a Wi-Fi change a ``set`` of the device's
own paths, per data model (the instance-1 paths are admin/devices/schemas.py ``ALIASES``, the
admin's copy of acs/datamodel.py's, which the admin may not import; other instances are those the
tree holds):

| | TR-098 (``InternetGatewayDevice.LANDevice.1.``) | TR-181 (``Device.WiFi.``) |
| --- | --- | --- |
| name | ``WLANConfiguration.N.SSID`` | ``SSID.N.SSID`` |
| key (8-63 chars) | ``WLANConfiguration.N.PreSharedKey.1.KeyPassphrase`` | ``AccessPoint.M.Security.KeyPassphrase`` |
| key (64 hex digits) | ``WLANConfiguration.N.PreSharedKey.1.PreSharedKey`` | ``AccessPoint.M.Security.PreSharedKey`` |

where M is the access point whose ``SSIDReference`` is SSID N (M = N when the tree does not say),
and a network's band is its radio's ``OperatingFrequencyBand`` (TR-181 through the SSID's
``LowerLayers``; TR-098 the WLANConfiguration's own). A device whose tree holds no Wi-Fi network
yet is offered its first one (the aliases' paths).

**The key** is never shown: the page reads no key (equipment_store.py), and the task's arguments
are masked (admin/devices/schemas.py ``masked_args``) wherever they are shown or logged, here, in
the admin's device page and in the operations log. The acs_tasks row keeps it, since the ACS sends
it to the router.

**Limits.** At most :data:`TASKS_PER_HOUR` tasks per customer in any hour (then 429 with when the
next is possible), each tried :data:`MAX_ATTEMPTS` times by the ACS. Every change is the customer's
own (acting.py): refused to an administrator looking as the customer, in the operations log as
``customer:<number>``; another customer's device is 404.
"""

from __future__ import annotations

import datetime as dt
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from admin import keys
from admin.auth.store import Connection
from admin.devices.schemas import ALIASES, is_secret, masked_args, task_problems
from admin.portal import acting, equipment_store, pages
from admin.portal.common import AREA, Customer, customer
from admin.web import PORTAL_CUSTOMER, path_id

SSID_MAX_BYTES = 32
KEY_MIN, KEY_MAX = 8, 63
TASKS_PER_HOUR = 10
MAX_ATTEMPTS = 3
NOTICES = {"wifi": "Your Wi-Fi change is on its way to your router. Your phones and computers then need the "
                   "new name or key to connect again.",
           "reboot": "Your router is asked to restart: the internet and the Wi-Fi are back in a minute or two."}
FAULTS = {9001: "your router refused it", 9005: "your router has no such setting",
          9007: "your router did not accept the value", 9008: "your router does not let this be changed"}
"""CWMP fault codes (TR-069 A.5.1) in plain words; any other: "your router could not do it"."""
STATUSES = {"online": "Online", "today": "Seen today", "offline": "Offline"}
Row = Mapping[str, Any] | equipment_store.Record

_WLAN098 = ALIASES["@wifi.ssid"].tr098.removesuffix("1.SSID")  # InternetGatewayDevice.LANDevice.1.WLANConfiguration.
_SSID181 = ALIASES["@wifi.ssid"].tr181.removesuffix("1.SSID")  # Device.WiFi.SSID.
_AP181 = ALIASES["@wifi.key"].tr181.removesuffix("1.Security.KeyPassphrase")  # Device.WiFi.AccessPoint.
_BAND = re.compile(r"\s*([0-9.]+)\s*GHz\s*", re.IGNORECASE)
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True, slots=True)
class Network:
    """A Wi-Fi network of a device: its instance, what the page calls it, its name as last read
    (None: not read yet) and the paths a change sets."""

    index: int
    label: str
    ssid: str | None
    enabled: bool | None
    ssid_path: str
    passphrase_path: str
    psk_path: str

    def key_path(self, key: str) -> str:
        """Where ``key`` goes: a 64-hex-digit key is the PSK itself, anything else a passphrase."""
        return self.psk_path if is_hex_key(key) else self.passphrase_path


def _at(path: str, parent: str, n: int) -> str:
    """``path`` (an alias's, of instance 1 of ``parent``) for instance ``n``."""
    assert path.startswith(parent + "1."), (path, parent)
    return f"{parent}{n}.{path.removeprefix(parent + '1.')}"


def _band(value: str | None) -> str:
    m = _BAND.fullmatch(value or "")
    return f"{m.group(1)} GHz" if m else ""


def _instances(params: Mapping[str, str | None], pattern: str) -> list[int]:
    found = re.compile(pattern)
    return sorted({int(m.group(1)) for p in params if (m := found.fullmatch(p))})


def networks(data_model: str, params: Mapping[str, str | None]) -> list[Network]:
    """The device's Wi-Fi networks from its tree as last read (path -> value), in instance order;
    its first network by the aliases' paths when the tree holds none."""
    ssid_alias, key_alias = ALIASES["@wifi.ssid"], ALIASES["@wifi.key"]
    out = []
    if data_model == "tr098":
        for n in _instances(params, re.escape(_WLAN098) + r"(\d+)\.SSID"):
            base = f"{_WLAN098}{n}."
            passphrase = _at(key_alias.tr098, _WLAN098, n)
            out.append((n, params.get(base + "SSID"), params.get(base + "Enable"),
                        _band(params.get(base + "OperatingFrequencyBand")), base + "SSID", passphrase,
                        passphrase.removesuffix("KeyPassphrase") + "PreSharedKey"))
        if not out:
            passphrase = key_alias.tr098
            out.append((1, None, None, "", ssid_alias.tr098, passphrase,
                        passphrase.removesuffix("KeyPassphrase") + "PreSharedKey"))
    else:
        served: dict[int, int] = {}
        for m in _instances(params, re.escape(_AP181) + r"(\d+)\.SSIDReference"):
            ref = (params.get(f"{_AP181}{m}.SSIDReference") or "").rstrip(".")
            if ref.startswith(_SSID181) and ref.removeprefix(_SSID181).isdigit():
                served.setdefault(int(ref.removeprefix(_SSID181)), m)
        for n in _instances(params, re.escape(_SSID181) + r"(\d+)\.SSID") or [1]:
            base = f"{_SSID181}{n}."
            radio = (params.get(base + "LowerLayers") or "").split(",")[0].strip().rstrip(".")
            passphrase = _at(key_alias.tr181, _AP181, served.get(n, n))
            out.append((n, params.get(base + "SSID"), params.get(base + "Enable"),
                        _band(params.get(radio + ".OperatingFrequencyBand") if radio else None),
                        _at(ssid_alias.tr181, _SSID181, n), passphrase,
                        passphrase.removesuffix("KeyPassphrase") + "PreSharedKey"))
    labels = [band or (f"Network {n}" if len(out) > 1 else "Wi-Fi network") for n, _, _, band, *_ in out]
    return [Network(n, label if labels.count(label) == 1 else f"{label} (network {n})", ssid,
                    None if enabled is None else enabled.lower() in ("true", "1"), ssid_path, passphrase, psk)
            for (n, ssid, enabled, _, ssid_path, passphrase, psk), label in zip(out, labels, strict=True)]


def is_hex_key(key: str) -> bool:
    return len(key) == 64 and all(c in _HEX for c in key)


def ssid_problem(ssid: str) -> str | None:
    """What is wrong with a Wi-Fi name (IEEE 802.11: at most 32 bytes), or None."""
    if not ssid.strip():
        return "Type a name for the network."
    if len(ssid.encode()) > SSID_MAX_BYTES:
        return f"Use at most {SSID_MAX_BYTES} bytes (a letter with an accent or an emoji takes two to four)."
    if not ssid.isprintable():
        return "Use letters, digits, spaces and punctuation only."
    return None


def key_problem(key: str) -> str | None:
    """What is wrong with a WPA key (a passphrase of 8 to 63 printable ASCII characters, or the
    key itself as 64 hex digits), or None."""
    if is_hex_key(key):
        return None
    if not KEY_MIN <= len(key) <= KEY_MAX:
        return f"Use {KEY_MIN} to {KEY_MAX} characters (or 64 hexadecimal digits)."
    if not all(" " <= c <= "~" for c in key):
        return "Use letters, digits, spaces and punctuation without accents."
    return None


def wifi_change(network: Network, ssid: str, key: str) -> tuple[list[list[str]], dict[str, str]]:
    """The ``set`` task's values for a new name and/or key of ``network`` (a name as it was, or an
    empty key, changes nothing), and what is wrong by field."""
    problems: dict[str, str] = {}
    values: list[list[str]] = []
    if ssid != (network.ssid or ""):
        if (p := ssid_problem(ssid)) is not None:
            problems["ssid"] = p
        values.append([network.ssid_path, ssid, "xsd:string"])
    if key:
        if (p := key_problem(key)) is not None:
            problems["key"] = p
        values.append([network.key_path(key), key, "xsd:string"])
    if not values and not problems:
        problems["ssid"] = "Nothing to change: type a new name or a new key."
    return values, problems


def described(task: Row, nets: Sequence[Network]) -> dict[str, Any]:
    """A task as the page tells it: what was asked, its state in words and its CSS class."""
    if task["kind"] == "reboot":
        what = "Restart the router"
    else:
        values = [v for v in task["args"].get("values", []) if isinstance(v, list) and v]
        paths = {str(v[0]) for v in values}
        net = next((n for n in nets if paths & {n.ssid_path, n.passphrase_path, n.psk_path}), None)
        names = [str(v[1]) for v in values if not is_secret(str(v[0])) and str(v[0]).endswith(".SSID")]
        parts = ([f"new name “{names[0]}”"] if names else []) + (["new key"] if any(map(is_secret, paths)) else [])
        what = f"Wi-Fi{' ' + net.label if net and len(nets) > 1 else ''}: {' and '.join(parts) or 'change'}"
    status, attempts = task["status"], task["attempts"]
    if status == "queued":
        state, css = ("Waiting for your router", "wait") if attempts == 0 else (
            "Your router did not take it yet: trying again", "wait")
    elif status == "waiting":
        state, css = ("Your router is restarting" if task["kind"] == "reboot" else "Your router is on it"), "wait"
    elif status == "done":
        state, css = "Done", "on"
    elif status == "fault":
        state, css = f"Failed: {FAULTS.get(task['fault_code'], 'your router could not do it')}", "warn"
    else:
        state, css = "Cancelled", "off"
    return {"id": task["id"], "what": what, "state": state, "css": css, "at": _time(task["created_at"]),
            "finished": _time(task["finished_at"])}


def _time(value: dt.datetime | None) -> str:
    if value is None:
        return ""
    value = value.astimezone(dt.UTC)
    today = dt.datetime.now(dt.UTC).date()
    return f"{value:%H:%M}" if value.date() == today else f"{value.day} {value:%b %Y}, {value:%H:%M}"


def seen(row: Row) -> str:
    """When the ACS last heard from the device, in words."""
    status = row["status"]
    if row["last_inform_at"] is None:
        return "Not connected to us yet"
    if status == "online":
        return f"Online: last heard from {_time(row['last_inform_at'])} UTC"
    if status == "today":
        return f"Not heard from since {_time(row['last_inform_at'])} UTC"
    return f"Offline: last seen {_time(row['last_inform_at'])} UTC"


def status_label(row: Row) -> str:
    return "Not connected yet" if row["last_inform_at"] is None else STATUSES.get(row["status"], "Offline")


def _actor_name(number: str) -> str:
    return acting.actor(number).name


async def _device_or_404(conn: Connection, me: Customer, device_id: int) -> Any:
    row = await equipment_store.device(conn, me.customer_id, device_id)
    if row is None:
        raise web.HTTPNotFound(text="no such device")
    return row


async def _networks_of(conn: Connection, rows: Sequence[Any]) -> dict[int, list[Network]]:
    params: dict[int, dict[str, str | None]] = {r["id"]: {} for r in rows}
    for p in await equipment_store.wifi_parameters(conn, list(params)):
        params[p["device_id"]][p["path"]] = p["value"]
    return {r["id"]: networks(r["data_model"], params[r["id"]]) for r in rows}


async def _page(request: web.Request, *, errors: Mapping[str, Mapping[str, str]] | None = None,
                typed: Mapping[str, str] | None = None, error: str = "", status: int = 200) -> web.Response:
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        rows = await equipment_store.devices(conn, me.customer_id)
        nets = await _networks_of(conn, rows)
        number = await equipment_store.customer_number(conn, me.customer_id)
        tasks = await equipment_store.tasks(conn, [r["id"] for r in rows], _actor_name(number))
    devices = [{**r, "seen": seen(r), "status_label": status_label(r), "networks": nets[r["id"]],
                "tasks": [described(t, nets[r["id"]]) for t in tasks if t["device_id"] == r["id"]]} for r in rows]
    return pages.render("portal/equipment.html", request, {
        "devices": devices, "errors": errors or {}, "typed": typed or {}, "error": error,
        "notice": NOTICES.get(request.query.get("done", ""), ""), "writable": me.impersonator_id is None,
        "impersonating_text": acting.IMPERSONATING, "ssid_max": SSID_MAX_BYTES, "key_min": KEY_MIN,
        "key_max": KEY_MAX}, status=status)


class _TooMany(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


async def _queue(request: web.Request, me: Customer, device: Any, kind: str, args: dict[str, Any],
                 summary: str) -> int:
    """Queue the task with a connection request (the admin's way), within the hourly limit; its id."""
    assert task_problems(kind, args) == [], task_problems(kind, args)
    async with request.app[keys.POOL].acquire() as conn, conn.transaction():
        await equipment_store.lock_customer(conn, me.customer_id)
        number = await equipment_store.customer_number(conn, me.customer_id)
        who = _actor_name(number)
        count, oldest = await equipment_store.recent_count(conn, me.customer_id, who, 3600)
        if count >= TASKS_PER_HOUR:
            after = oldest.astimezone(dt.UTC) + dt.timedelta(hours=1, minutes=1)
            raise _TooMany(f"You have asked for {count} changes to your equipment in the last hour, the most we take. "
                           f"You can ask again after {after:%H:%M} UTC.")
        task, wakeup_id = await equipment_store.queue_task(conn, device["id"], kind, args, MAX_ATTEMPTS, who,
                                                           connect=True)
        await acting.log(conn, request, number, "queue", "cpe_task", task["id"],
                         summary=f"{summary} on CPE {device['cwmp_id']} in the portal, with a connection request",
                         after={"kind": kind, "args": masked_args(kind, args), "wakeup_id": wakeup_id})
    return int(task["id"])


@AREA.portal("/equipment", access=PORTAL_CUSTOMER)
async def equipment_page(request: web.Request) -> web.StreamResponse:
    return await _page(request)


@AREA.portal("/equipment/{id}/reboot", access=PORTAL_CUSTOMER)
async def reboot_confirm(request: web.Request) -> web.StreamResponse:
    """The confirm step of a restart."""
    me = customer(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _device_or_404(conn, me, path_id(request))
    return pages.render("portal/equipment_reboot.html", request, {
        "d": {**row, "seen": seen(row)}, "writable": me.impersonator_id is None,
        "impersonating_text": acting.IMPERSONATING})


@AREA.portal("/equipment/{id}/reboot", access=PORTAL_CUSTOMER, method="POST")
async def reboot_form(request: web.Request) -> web.StreamResponse:
    device_id = path_id(request)
    me = acting.refuse_impersonator(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _device_or_404(conn, me, device_id)
    try:
        await _queue(request, me, row, "reboot", {}, "queued a restart")
    except _TooMany as e:
        return await _page(request, error=e.message, status=429)
    raise web.HTTPFound(f"/portal/equipment?done=reboot#device-{device_id}")


@AREA.portal("/equipment/{id}/wifi", access=PORTAL_CUSTOMER, method="POST")
async def wifi_form(request: web.Request) -> web.StreamResponse:
    """A new name and/or key for one Wi-Fi network of the device (``network``: its instance)."""
    device_id = path_id(request)
    me = acting.refuse_impersonator(request)
    async with request.app[keys.POOL].acquire() as conn:
        row = await _device_or_404(conn, me, device_id)
        nets = (await _networks_of(conn, [row]))[device_id]
    form = await request.post()
    index = str(form.get("network", ""))
    net = next((n for n in nets if str(n.index) == index), None)
    if net is None:
        return await _page(request, error="There is no such Wi-Fi network on this router.", status=422)
    ssid, key = str(form.get("ssid", "")), str(form.get("key", ""))
    values, problems = wifi_change(net, ssid, key)
    where = f"{device_id}-{net.index}"
    if problems:
        return await _page(request, errors={where: problems}, typed={where: ssid}, status=422)
    said = " and ".join(w for w, on in (("name", any(v[0] == net.ssid_path for v in values)),
                                         ("key", any(is_secret(v[0]) for v in values))) if on)
    try:
        await _queue(request, me, row, "set", {"values": values}, f"queued a new Wi-Fi {said} ({net.label})")
    except _TooMany as e:
        return await _page(request, error=e.message, status=429)
    raise web.HTTPFound(f"/portal/equipment?done=wifi#device-{device_id}")
