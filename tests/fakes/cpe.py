"""A CPE (a customer's router) for tests: the real CWMP wire protocol over real HTTP on 127.0.0.1.

:class:`Cpe` holds a data model loaded from CSV files in genieacs-sim's format
(``Parameter,Object,Writable,Value,Value type``: tests/vectors/cwmp/datamodels/tr181-small.csv,
plus :data:`TR181_EXTRA` for the Wi-Fi key and PPPoE password it lacks; :data:`TR098`, a
Huawei BM632w cut down to the parameters of tests/vectors/cwmp/tr098/ and the ones presets set)
and runs CWMP sessions against an ACS URL, as TR-069 Amendment 6 describes them:

- ``await cpe.session("2 PERIODIC")`` posts an Inform with those events (plus what the device
  owes: ``1 BOOT`` + ``M Reboot`` after a Reboot, ``0 BOOTSTRAP`` + ``1 BOOT`` after a
  FactoryReset, ``7 TRANSFER COMPLETE`` + ``M Download``/``M Upload`` after a transfer, ``4 VALUE
  CHANGE`` with the changed parameters after :meth:`Cpe.set_local` of a parameter whose notification
  is on), then its own requests (TransferComplete for each transfer it owes, and those asked for:
  GetRPCMethods, AutonomousTransferComplete), then an empty POST, then answers every RPC of the
  ACS until the ACS answers 204 (or an empty 200);
- over one aiohttp ClientSession per session: keep-alive, cookies kept (also for an IP host);
- authentication: HTTP digest (RFC 7616, MD5, qop=auth; computed here by hand): it answers the
  401 challenge, then sends the same nonce with nc+1 on every next request, and takes the new
  nonce of a ``stale=true`` challenge; or preemptive Basic (``auth="basic"``; what genieacs-sim
  does); or none;
- the ACS's XML is read with ElementTree by local names (not with acs/soap.py, so the tests are
  not the ACS checking itself), and the double writes its own XML from string templates of the
  real envelopes (prefixes ``soap-env``/``cwmp``, namespace cwmp-1-0 unless told, e.g. cwmp-1-4);
- RPCs: GetParameterNames (root, partial paths, NextLevel true/false; a parameter with NextLevel
  true is 9003), GetParameterValues (parameters and partial paths; any unknown name: Fault 9005),
  SetParameterValues (all or nothing; Fault 9003 with a SetParameterValuesFault per bad
  parameter: 9005 unknown, 9008 read-only, 9006 a value or xsi:type that does not fit; sets
  ParameterKey), Get/SetParameterAttributes (notification, access list), AddObject (the next
  instance number, never reused, with a copy of the first instance's parameters as the factory
  had them), DeleteObject, Reboot, FactoryReset (the data model back to the CSV's values),
  Download (the URL fetched for real after the session, its size checked: TransferComplete in the
  next session, 9016/9018 on failure), Upload (a generated configuration file PUT to the URL after
  the session), GetRPCMethods; anything else is Fault 9000. Secrets (passwords, keys) read back
  as "" as real CPEs do;
- a connection request server on 127.0.0.1 (its URL is the data model's ConnectionRequestURL)
  that wants HTTP digest with the ConnectionRequestUsername/Password of the data model (so the ACS
  must have set them), ``cr_auth="basic"`` or ``"none"``; once authenticated it answers 200 and
  starts a ``6 CONNECTION REQUEST`` session at once (503 while one runs);
- everything is recorded for assertions: :attr:`Cpe.sessions` (each a :class:`SessionRecord`:
  events, every HTTP status, every ACS RPC with its arguments, the faults sent) and
  :attr:`Cpe.connection_requests`.

What it leaves out: NAT traversal (STUN/UDP connection requests, TR-111), XMPP, TLS to the ACS,
HoldRequests (the double sends its requests right after the InformResponse), MaxEnvelopes > 1,
delays (DelaySeconds of Download/Upload, a reboot's downtime: the next session may start at
once), the CPE's retry back-off after a failed session (the test decides when to inform again),
periodic informs on a timer, active notifications starting a session on their own, firmware
actually changing SoftwareVersion, NumberOfEntries counters following AddObject/DeleteObject,
and any vendor behaviour beyond one radio, one WAN connection of each kind and one LAN.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import itertools
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from yarl import URL

HERE = Path(__file__).parent
VECTORS = HERE.parent / "vectors" / "cwmp"
TR181 = (VECTORS / "datamodels" / "tr181-small.csv", HERE / "cpe_tr181_extra.csv")
TR098 = (HERE / "cpe_tr098.csv",)

CWMP_1_0 = "urn:dslforum-org:cwmp-1-0"
CWMP_1_4 = "urn:dslforum-org:cwmp-1-4"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
UNKNOWN_TIME = "0001-01-01T00:00:00Z"
SECRET = re.compile(r"(Password|KeyPassphrase|PreSharedKey|WEPKey|Passphrase)$")
RPC_METHODS = ("GetRPCMethods", "GetParameterNames", "GetParameterValues", "SetParameterValues",
               "GetParameterAttributes", "SetParameterAttributes", "AddObject", "DeleteObject", "Reboot",
               "FactoryReset", "Download", "Upload")
FAULTS = {9000: "Method not supported", 9002: "Internal error", 9003: "Invalid arguments",
          9005: "Invalid parameter name", 9006: "Invalid parameter type", 9007: "Invalid parameter value",
          9008: "Attempt to set a non-writable parameter", 9011: "Upload failure",
          9016: "Download failure: unable to access file", 9018: "Download failure: file corrupted"}


# --- the data model -----------------------------------------------------------------------------


@dataclass(slots=True)
class Node:
    """A parameter, or an object (path ending ".")."""

    path: str
    writable: bool
    value: str = ""
    type: str = "xsd:string"
    notification: int = 0
    access_list: tuple[str, ...] = ()

    @property
    def is_object(self) -> bool:
        return self.path.endswith(".")


def load_csv(paths: Iterable[Path]) -> dict[str, Node]:
    """The nodes of genieacs-sim CSV files, later files adding to (or replacing) earlier ones."""
    nodes: dict[str, Node] = {}
    for path in paths:
        with path.open(newline="") as f:
            for row in csv.DictReader(f):
                is_object = row["Object"] == "true"
                name = row["Parameter"] + ("." if is_object else "")
                nodes[name] = Node(name, row["Writable"] == "true", "" if is_object else row["Value"],
                                   "" if is_object else (row["Value type"] or "xsd:string"))
    return nodes


def _parent(path: str) -> str:
    return path[: path.rstrip(".").rfind(".") + 1]


def _valid(value: str, type_: str) -> str | None:
    """``value`` as the device stores a ``type_``, or None when it does not fit."""
    kind = type_.partition(":")[2] or type_
    if kind == "boolean":
        return {"true": "true", "1": "true", "false": "false", "0": "false"}.get(value.strip().lower())
    if kind in ("unsignedInt", "int", "long", "unsignedLong"):
        if not re.fullmatch(r"-?\d+", value.strip()):
            return None
        n = int(value)
        bits = 64 if "ong" in kind else 32
        low, high = (0, 2 ** bits - 1) if kind.startswith("unsigned") else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        return str(n) if low <= n <= high else None
    if kind == "dateTime":
        return value if re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?", value) else None
    return value


class CwmpFault(Exception):
    def __init__(self, code: int, set_faults: Sequence[tuple[str, int]] = ()) -> None:
        super().__init__(code)
        self.code = code
        self.set_faults = tuple(set_faults)


# --- records ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """One RPC of the ACS and what the double answered (its method, or "Fault <code>")."""

    method: str
    args: dict[str, Any]
    answer: str = ""
    namespace: str = ""
    cwmp_id: str | None = None


@dataclass(slots=True)
class SessionRecord:
    events: list[tuple[str, str]]
    statuses: list[int] = field(default_factory=list)  # every HTTP answer, in order (401s included)
    answers: list[str] = field(default_factory=list)  # what the ACS answered the CPE's own requests
    calls: list[Call] = field(default_factory=list)
    faults: list[tuple[str, int]] = field(default_factory=list)  # (method, code) the CPE answered with
    hold_requests: bool = False
    outcome: Literal["ok", "http-error", "unauthorized", "bad-answer", "unreachable"] = "ok"
    error: str = ""

    @property
    def rpcs(self) -> list[str]:
        return [c.method for c in self.calls]

    def call(self, method: str) -> Call:
        return next(c for c in self.calls if c.method == method)


@dataclass(slots=True)
class ConnectionRequest:
    status: int
    username: str | None = None


@dataclass(slots=True)
class Transfer:
    """A Download or Upload the device owes a TransferComplete for."""

    command_key: str
    event: str  # "M Download" / "M Upload"
    fault: int = 0
    start: str = UNKNOWN_TIME
    complete: str = UNKNOWN_TIME


@dataclass(slots=True)
class Fetched:
    url: str
    status: int
    data: bytes


# --- XML ----------------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def envelope(body: str, cwmp_id: str, namespace: str = CWMP_1_0) -> bytes:
    """A SOAP envelope as genieacs-sim writes one."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<soap-env:Envelope '
            'xmlns:soap-enc="http://schemas.xmlsoap.org/soap/encoding/" '
            'xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xmlns:cwmp="{namespace}"><soap-env:Header><cwmp:ID soap-env:mustUnderstand="1">{escape(cwmp_id)}'
            f'</cwmp:ID></soap-env:Header><soap-env:Body>{body}</soap-env:Body></soap-env:Envelope>').encode()


def _values_xml(params: Sequence[tuple[str, str, str]]) -> str:
    items = "".join(f'<ParameterValueStruct><Name>{escape(n)}</Name><Value xsi:type="{t}">{escape(v)}</Value>'
                    "</ParameterValueStruct>" for n, v, t in params)
    return f'<ParameterList soap-enc:arrayType="cwmp:ParameterValueStruct[{len(params)}]">{items}</ParameterList>'


def _fault_xml(code: int, set_faults: Sequence[tuple[str, int]] = ()) -> str:
    extra = "".join(f"<SetParameterValuesFault><ParameterName>{escape(n)}</ParameterName><FaultCode>{c}"
                    f"</FaultCode><FaultString>{FAULTS.get(c, '')}</FaultString></SetParameterValuesFault>"
                    for n, c in set_faults)
    return ("<soap-env:Fault><faultcode>Client</faultcode><faultstring>CWMP fault</faultstring><detail>"
            f"<cwmp:Fault><FaultCode>{code}</FaultCode><FaultString>{FAULTS.get(code, '')}</FaultString>{extra}"
            "</cwmp:Fault></detail></soap-env:Fault>")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _ns(tag: str) -> str:
    return tag[1:].partition("}")[0] if tag.startswith("{") else ""


def _child(element: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in element if _local(c.tag) == name), None)


def _text(element: ET.Element, name: str, default: str = "") -> str:
    child = _child(element, name)
    return default if child is None else (child.text or "")


def _items(element: ET.Element, list_name: str) -> list[ET.Element]:
    child = _child(element, list_name)
    return [] if child is None else list(child)


def parse_rpc(element: ET.Element) -> dict[str, Any]:
    """The arguments of an ACS request, as plain values."""
    method = _local(element.tag)
    if method == "GetParameterNames":
        return {"path": _text(element, "ParameterPath"),
                "next_level": _text(element, "NextLevel").strip().lower() in ("true", "1")}
    if method in ("GetParameterValues", "GetParameterAttributes"):
        return {"names": [i.text or "" for i in _items(element, "ParameterNames")]}
    if method == "SetParameterValues":
        params = []
        for item in _items(element, "ParameterList"):
            value = _child(item, "Value")
            type_ = "" if value is None else next((v for k, v in value.attrib.items() if _local(k) == "type"), "")
            params.append((_text(item, "Name"), "" if value is None else (value.text or ""), type_))
        return {"params": params, "parameter_key": _text(element, "ParameterKey")}
    if method == "SetParameterAttributes":
        attrs = []
        for item in _items(element, "ParameterList"):
            access = [a.text or "" for a in _items(item, "AccessList")]
            attrs.append({"name": _text(item, "Name"),
                          "notification_change": _text(item, "NotificationChange").lower() in ("true", "1"),
                          "notification": int(_text(item, "Notification", "0") or 0),
                          "access_list_change": _text(item, "AccessListChange").lower() in ("true", "1"),
                          "access_list": access})
        return {"attributes": attrs}
    if method in ("AddObject", "DeleteObject"):
        return {"path": _text(element, "ObjectName"), "parameter_key": _text(element, "ParameterKey")}
    if method == "Reboot":
        return {"command_key": _text(element, "CommandKey")}
    if method in ("Download", "Upload"):
        return {"command_key": _text(element, "CommandKey"), "file_type": _text(element, "FileType"),
                "url": _text(element, "URL"), "username": _text(element, "Username"),
                "password": _text(element, "Password"), "file_size": int(_text(element, "FileSize", "0") or 0),
                "target_file_name": _text(element, "TargetFileName"),
                "delay_seconds": int(_text(element, "DelaySeconds", "0") or 0)}
    return {}


# --- digest (by hand: RFC 7616 with MD5 and qop=auth, as CPEs and ACSs do it) ---------------------


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def parse_auth_params(header: str) -> dict[str, str]:
    """``Digest realm="x", nonce="y", qop=auth`` -> {"realm": "x", ...} (the scheme under "")."""
    scheme, _, rest = header.strip().partition(" ")
    params = {"": scheme.lower()}
    for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))', rest):
        params[m.group(1).lower()] = m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3)
    return params


@dataclass(slots=True)
class DigestClient:
    """The client side of digest: remembers the server's nonce and counts its uses."""

    username: str
    password: str
    challenge: dict[str, str] | None = None
    nc: int = 0

    def learn(self, header: str) -> bool:
        """Take a 401's challenge; False when it is no digest challenge."""
        params = parse_auth_params(header)
        if params[""] != "digest" or "nonce" not in params:
            return False
        self.challenge, self.nc = params, 0
        return True

    def header(self, method: str, uri: str) -> str | None:
        if self.challenge is None:
            return None
        self.nc += 1
        c = self.challenge
        realm, nonce = c.get("realm", ""), c["nonce"]
        cnonce, nc = secrets.token_hex(8), f"{self.nc:08x}"
        ha1, ha2 = _md5(f"{self.username}:{realm}:{self.password}"), _md5(f"{method}:{uri}")
        parts = [f'username="{self.username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
        if "auth" in c.get("qop", "").split(","):
            response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
            parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
        else:
            response = _md5(f"{ha1}:{nonce}:{ha2}")
        parts += [f'response="{response}"', "algorithm=MD5"]
        if "opaque" in c:
            parts.append(f'opaque="{c["opaque"]}"')
        return "Digest " + ", ".join(parts)


def digest_ok(header: str, method: str, username: str, password: str, realm: str, nonces: set[str]) -> bool:
    """Whether an Authorization header answers one of ``nonces`` with these credentials."""
    p = parse_auth_params(header)
    if p[""] != "digest" or p.get("username") != username or p.get("realm") != realm or p.get("nonce") not in nonces:
        return False
    ha1, ha2 = _md5(f"{username}:{realm}:{password}"), _md5(f"{method}:{p.get('uri', '')}")
    if p.get("qop") == "auth":
        expected = _md5(f"{ha1}:{p['nonce']}:{p.get('nc', '')}:{p.get('cnonce', '')}:auth:{ha2}")
    else:
        expected = _md5(f"{ha1}:{p['nonce']}:{ha2}")
    return secrets.compare_digest(expected, p.get("response", ""))


def _basic(header: str) -> tuple[str, str] | None:
    """(user, password) of a Basic Authorization header."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, colon, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if colon else None


class Unauthorized(Exception):
    pass


# --- the CPE -------------------------------------------------------------------------------------


class Cpe:
    """One CPE. ``acs_url`` is where it informs; ``serial`` overrides the CSV's SerialNumber;
    ``username``/``password`` its credentials towards the ACS (``auth`` "digest", "basic" or
    "none"); ``cr_auth`` what its connection request server wants ("digest", "basic", "none"),
    ``cr_delay`` seconds it waits before answering one (to test the ACS's timeout)."""

    def __init__(self, acs_url: str, csv_paths: Sequence[Path] = TR181, *, serial: str | None = None,
                 username: str | None = None, password: str | None = None,
                 auth: Literal["digest", "basic", "none"] = "digest",
                 namespace: str = CWMP_1_0, cr_auth: Literal["digest", "basic", "none"] = "digest",
                 cr_delay: float = 0.0) -> None:
        self.acs_url = acs_url
        self.csv_paths = tuple(csv_paths)
        self.auth = auth
        self._credentials = (username, password)
        self.namespace = namespace
        self.cr_auth, self.cr_delay = cr_auth, cr_delay
        self.serial = serial
        self.nodes = self._factory()
        self.root = min((p for p in self.nodes if p.count(".") == 1), key=len)
        self.sessions: list[SessionRecord] = []
        self.connection_requests: list[ConnectionRequest] = []
        self.fetched: list[Fetched] = []
        self.uploaded: list[Fetched] = []
        self.owed_events: list[tuple[str, str]] = []  # after a reboot or factory reset
        self.transfers: list[Transfer] = []
        self.changed: dict[str, None] = {}  # parameters changed locally since the last Inform
        self._after_session: list[tuple[str, dict[str, Any]]] = []
        self._next_instance: dict[str, int] = {}
        self._digest: DigestClient | None = None
        self._runner: web.AppRunner | None = None
        self._cr_nonces: set[str] = set()
        self._busy = asyncio.Lock()
        self._cr_sessions: asyncio.Queue[SessionRecord] = asyncio.Queue()
        self._cr_tasks: set[asyncio.Task[None]] = set()
        self.cr_url = ""

    # -- the data model --

    def _factory(self) -> dict[str, Node]:
        nodes = load_csv(self.csv_paths)
        if self.serial is not None:
            nodes[self._info("SerialNumber", nodes)].value = self.serial
        root = self._info("", nodes).removesuffix("DeviceInfo.")
        for name, value in zip(("Username", "Password"), self._credentials, strict=True):
            if value is not None:
                nodes[f"{root}ManagementServer.{name}"].value = value
        return nodes

    def _info(self, name: str, nodes: dict[str, Node] | None = None) -> str:
        nodes = self.nodes if nodes is None else nodes
        root = min((p for p in nodes if p.count(".") == 1), key=len)
        return f"{root}DeviceInfo.{name}"

    def value(self, path: str) -> str:
        """What the device holds (secrets too: the test may look)."""
        return self.nodes[path].value

    def set_local(self, path: str, value: str) -> None:
        """A change made on the device itself (its web page, a user): reported in the next
        Inform's ``4 VALUE CHANGE`` when the ACS turned the parameter's notification on."""
        self.nodes[path].value = value
        if self.nodes[path].notification:
            self.changed[path] = None

    @property
    def oui(self) -> str:
        return self.value(self._info("ManufacturerOUI"))

    @property
    def product_class(self) -> str:
        return self.value(self._info("ProductClass"))

    @property
    def cwmp_id(self) -> str:
        """OUI-ProductClass-SerialNumber as the ACS names the device (no "-" or "%" in the CSVs here)."""
        return f"{self.oui}-{self.product_class}-{self.value(self._info('SerialNumber'))}"

    def _ms(self, name: str) -> str:
        return f"{self.root}ManagementServer.{name}"

    def _inform_params(self) -> list[tuple[str, str, str]]:
        names = [self._info(n) for n in ("SpecVersion", "HardwareVersion", "SoftwareVersion", "ProvisioningCode")]
        names += [self._ms("ParameterKey"), self._ms("ConnectionRequestURL")]
        names += [p for p in self.nodes if p.endswith(("ExternalIPAddress", "IPv4Address.1.IPAddress"))]
        names += [p for p in self.changed if p not in names]
        return [self._read(self.nodes[n]) for n in names if n in self.nodes]

    @staticmethod
    def _read(node: Node) -> tuple[str, str, str]:
        return node.path, "" if SECRET.search(node.path) else node.value, node.type

    # -- the connection request server --

    async def start(self) -> Cpe:
        """Listen for connection requests; the data model's ConnectionRequestURL becomes ours."""
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._connection_request)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.cr_url = f"http://127.0.0.1:{port}/cr"
        self.nodes[self._ms("ConnectionRequestURL")].value = self.cr_url
        return self

    async def stop(self) -> None:
        for task in list(self._cr_tasks):
            task.cancel()
        await asyncio.gather(*self._cr_tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> Cpe:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _connection_request(self, request: web.Request) -> web.StreamResponse:
        if self.cr_delay:
            await asyncio.sleep(self.cr_delay)
        username, password = self.value(self._ms("ConnectionRequestUsername")), \
            self.value(self._ms("ConnectionRequestPassword"))
        header = request.headers.get("Authorization", "")
        given = parse_auth_params(header).get("username") if header else None
        realm = "cpe-double"
        if self.cr_auth == "digest":
            ok = bool(username) and digest_ok(header, "GET", username, password, realm, self._cr_nonces)
        elif self.cr_auth == "basic":
            basic = _basic(header)
            ok = basic == (username, password) and bool(username)
            given = basic[0] if basic is not None else None
        else:
            ok = True
        if not ok:
            self.connection_requests.append(ConnectionRequest(401, given))
            if self.cr_auth == "basic":
                challenge = f'Basic realm="{realm}"'
            else:
                nonce = secrets.token_hex(16)
                self._cr_nonces.add(nonce)
                challenge = f'Digest realm="{realm}", qop="auth", nonce="{nonce}", algorithm=MD5'
            return web.Response(status=401, headers={"WWW-Authenticate": challenge})
        if self._busy.locked():
            self.connection_requests.append(ConnectionRequest(503, given))
            return web.Response(status=503)
        self.connection_requests.append(ConnectionRequest(200, given))
        task = asyncio.get_running_loop().create_task(self._cr_session())
        self._cr_tasks.add(task)
        task.add_done_callback(self._cr_tasks.discard)
        return web.Response(status=200)

    async def _cr_session(self) -> None:
        await self._cr_sessions.put(await self.session("6 CONNECTION REQUEST"))

    async def next_connection_request_session(self, timeout: float = 5.0) -> SessionRecord:
        """The session the next accepted connection request started, once it has ended."""
        return await asyncio.wait_for(self._cr_sessions.get(), timeout)

    # -- sessions --

    def _events(self, asked: Sequence[str | tuple[str, str]]) -> list[tuple[str, str]]:
        events: list[tuple[str, str]] = []

        def add(code: str, key: str = "") -> None:
            """Once each: a numbered event by its code, an "M" one by code and command key."""
            if code.startswith("M "):
                if (code, key) not in events:
                    events.append((code, key))
            elif all(c != code for c, _ in events):
                events.append((code, key))

        for code, key in self.owed_events:
            add(code, key)
        for e in asked:
            add(*((e, "") if isinstance(e, str) else e))
        if self.transfers:
            add("7 TRANSFER COMPLETE")
            for t in self.transfers:
                add(t.event, t.command_key)
        if self.changed:
            add("4 VALUE CHANGE")
        if not events:
            add("2 PERIODIC")
        order = ["0 BOOTSTRAP", "1 BOOT", "2 PERIODIC", "3 SCHEDULED", "4 VALUE CHANGE", "6 CONNECTION REQUEST",
                 "7 TRANSFER COMPLETE"]
        return sorted(events, key=lambda e: order.index(e[0]) if e[0] in order else len(order))

    def _inform_xml(self, events: Sequence[tuple[str, str]], retry_count: int) -> str:
        ev = "".join(f"<EventStruct><EventCode>{escape(c)}</EventCode><CommandKey>{escape(k)}</CommandKey>"
                     "</EventStruct>" for c, k in events)
        params = self._inform_params()
        return ("<cwmp:Inform><DeviceId><Manufacturer>" + escape(self.value(self._info("Manufacturer")))
                + f"</Manufacturer><OUI>{escape(self.oui)}</OUI><ProductClass>{escape(self.product_class)}"
                + f"</ProductClass><SerialNumber>{escape(self.value(self._info('SerialNumber')))}</SerialNumber>"
                + f'</DeviceId><Event soap-enc:arrayType="cwmp:EventStruct[{len(events)}]">{ev}</Event>'
                + f"<MaxEnvelopes>1</MaxEnvelopes><CurrentTime>{_now()}</CurrentTime>"
                + f"<RetryCount>{retry_count}</RetryCount>{_values_xml(params)}</cwmp:Inform>")

    def _own_request(self, request: str | tuple[str, str]) -> str:
        method, arg = (request, "") if isinstance(request, str) else request
        if method == "GetRPCMethods":
            return "<cwmp:GetRPCMethods></cwmp:GetRPCMethods>"
        if method == "TransferComplete":
            return self._transfer_complete_xml(Transfer(arg, "M Download", 0, _now(), _now()))
        if method == "AutonomousTransferComplete":
            return ("<cwmp:AutonomousTransferComplete><AnnounceURL></AnnounceURL><TransferURL>"
                    f"{escape(arg or 'http://192.0.2.1/fw.bin')}</TransferURL><IsDownload>1</IsDownload>"
                    "<FileType>1 Firmware Upgrade Image</FileType><FileSize>1024</FileSize><TargetFileName>"
                    f"</TargetFileName><FaultStruct><FaultCode>0</FaultCode><FaultString></FaultString></FaultStruct>"
                    f"<StartTime>{_now()}</StartTime><CompleteTime>{_now()}</CompleteTime>"
                    "</cwmp:AutonomousTransferComplete>")
        raise ValueError(f"the double sends no {method}")

    @staticmethod
    def _transfer_complete_xml(t: Transfer) -> str:
        return (f"<cwmp:TransferComplete><CommandKey>{escape(t.command_key)}</CommandKey><StartTime>{t.start}"
                f"</StartTime><CompleteTime>{t.complete}</CompleteTime><FaultStruct><FaultCode>{t.fault}"
                f"</FaultCode><FaultString>{FAULTS.get(t.fault, '') if t.fault else ''}</FaultString></FaultStruct>"
                "</cwmp:TransferComplete>")

    async def session(self, *events: str | tuple[str, str], requests: Sequence[str | tuple[str, str]] = (),
                      retry_count: int = 0) -> SessionRecord:
        """One whole session: Inform with ``events`` (plus what the device owes), its own
        ``requests``, the empty POST, the ACS's RPCs until the ACS ends it. Returns its record
        (also appended to :attr:`sessions`); an HTTP error ends it early, as on a real CPE."""
        async with self._busy:
            return await self._session(events, requests, retry_count)

    async def _session(self, asked: Sequence[str | tuple[str, str]], requests: Sequence[str | tuple[str, str]],
                       retry_count: int) -> SessionRecord:
        chosen = self._events(asked)
        record = SessionRecord(chosen)
        self.sessions.append(record)
        owed = list(self.transfers)
        explicit = {k for c, k in chosen if c in ("M Download", "M Upload")} - {t.command_key for t in owed}
        bodies = [self._transfer_complete_xml(t) for t in owed]
        bodies += [self._transfer_complete_xml(Transfer(k, "M Download", 0, _now(), _now())) for k in sorted(explicit)]
        bodies += [self._own_request(r) for r in requests]
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            try:
                answer = await self._post(http, record, envelope(self._inform_xml(chosen, retry_count),
                                                                 secrets.token_hex(4), self.namespace))
                if answer is None or _local(answer[0].tag) != "InformResponse":
                    raise ValueError(f"no InformResponse: {None if answer is None else _local(answer[0].tag)}")
                record.answers.append("InformResponse")
                self.owed_events.clear()
                self.changed.clear()
                for body in bodies:
                    answer = await self._post(http, record, envelope(body, secrets.token_hex(4), self.namespace))
                    if answer is None:
                        raise ValueError("no answer to a CPE request")
                    record.answers.append(_local(answer[0].tag) if _local(answer[0].tag) != "Fault"
                                          else f"Fault {self._fault_code(answer[0])}")
                if owed:
                    self.transfers = [t for t in self.transfers if t not in owed]
                answer = await self._post(http, record, b"")
                while answer is not None:
                    element, cwmp_id, namespace = answer
                    body = self._answer(record, element, cwmp_id, namespace)
                    answer = await self._post(http, record, envelope(body, cwmp_id or "", self.namespace))
            except Unauthorized as e:
                record.outcome, record.error = "unauthorized", str(e)
            except aiohttp.ClientResponseError as e:
                record.outcome, record.error = "http-error", f"{e.status} {e.message}"
            except (aiohttp.ClientConnectionError, OSError) as e:
                record.outcome, record.error = "unreachable", str(e)
            except (ValueError, ET.ParseError) as e:
                record.outcome, record.error = "bad-answer", str(e)
            await self._after(http)
        return record

    @staticmethod
    def _fault_code(fault: ET.Element) -> int:
        for e in fault.iter():
            if _local(e.tag) == "FaultCode":
                return int(e.text or 0)
        return 0

    def _auth_header(self, method: str, uri: str) -> str | None:
        if self.auth == "basic":
            return aiohttp.encode_basic_auth(self.value(self._ms("Username")), self.value(self._ms("Password")))
        if self.auth == "digest" and self._digest is not None:
            return self._digest.header(method, uri)
        return None

    async def _post(self, http: aiohttp.ClientSession, record: SessionRecord,
                    data: bytes) -> tuple[ET.Element, str | None, str] | None:
        """POST ``data``; the ACS's message (element of the Body, cwmp:ID, namespace) or None at its end."""
        uri = URL(self.acs_url).raw_path_qs
        for attempt in range(3):
            headers = {"Content-Type": 'text/xml; charset="utf-8"'} if data else {}
            if data:
                headers["SOAPAction"] = ""
            auth = self._auth_header("POST", uri)
            if auth is not None:
                headers["Authorization"] = auth
            async with http.post(self.acs_url, data=data, headers=headers) as response:
                record.statuses.append(response.status)
                body = await response.read()
                if response.status == 401 and self.auth == "digest" and attempt < 2:
                    challenge = response.headers.get("WWW-Authenticate", "")
                    stale = parse_auth_params(challenge).get("stale", "").lower() == "true"
                    if (self._digest is None or stale or attempt == 0) and self._learn(challenge):
                        continue
                if response.status == 401:
                    raise Unauthorized(f"401 {response.headers.get('WWW-Authenticate', '')}")
                if response.status == 204 or (response.status == 200 and not body.strip()):
                    return None
                if response.status != 200:
                    raise aiohttp.ClientResponseError(response.request_info, (), status=response.status,
                                                      message=body.decode(errors="replace")[:200])
                return self._read_envelope(record, body)
        raise Unauthorized("401 three times")

    def _learn(self, challenge: str) -> bool:
        digest = self._digest or DigestClient(self.value(self._ms("Username")), self.value(self._ms("Password")))
        if not digest.learn(challenge):
            return False
        self._digest = digest
        return True

    @staticmethod
    def _read_envelope(record: SessionRecord, body: bytes) -> tuple[ET.Element, str | None, str]:
        root = ET.fromstring(body)
        if (root.tag != f"{{{SOAP_ENV}}}Envelope"):
            raise ValueError(f"not a SOAP envelope: {root.tag}")
        header = _child(root, "Header")
        cwmp_id = None
        if header is not None:
            for h in header:
                if _local(h.tag) == "ID":
                    cwmp_id = h.text or ""
                elif _local(h.tag) == "HoldRequests":
                    record.hold_requests = (h.text or "").strip() in ("1", "true")
        soap_body = _child(root, "Body")
        if soap_body is None or len(soap_body) != 1:
            raise ValueError("a SOAP Body with one element expected")
        element = soap_body[0]
        return element, cwmp_id, _ns(element.tag)

    # -- the RPCs --

    def _answer(self, record: SessionRecord, element: ET.Element, cwmp_id: str | None, namespace: str) -> str:
        method = _local(element.tag)
        call = Call(method, parse_rpc(element), namespace=namespace, cwmp_id=cwmp_id)
        record.calls.append(call)
        handler = getattr(self, f"_rpc_{method}", None)
        try:
            if handler is None or method not in RPC_METHODS:
                raise CwmpFault(9000)
            body: str = handler(call.args)
        except CwmpFault as fault:
            record.faults.append((method, fault.code))
            call.answer = f"Fault {fault.code}"
            return _fault_xml(fault.code, fault.set_faults)
        call.answer = f"{method}Response"
        return body

    def _find(self, path: str) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise CwmpFault(9005)
        return node

    def _below(self, prefix: str) -> list[Node]:
        return [n for p, n in self.nodes.items() if p.startswith(prefix)]

    def _rpc_GetRPCMethods(self, _: dict[str, Any]) -> str:
        items = "".join(f"<string>{m}</string>" for m in RPC_METHODS)
        return (f'<cwmp:GetRPCMethodsResponse><MethodList soap-enc:arrayType="xsd:string[{len(RPC_METHODS)}]">'
                f"{items}</MethodList></cwmp:GetRPCMethodsResponse>")

    def _rpc_GetParameterNames(self, args: dict[str, Any]) -> str:
        path, next_level = args["path"], args["next_level"]
        if path == "":
            found = [self.nodes[self.root]] if next_level else list(self.nodes.values())
        elif path.endswith("."):
            node = self._find(path)
            below = self._below(path)
            found = [n for n in below if n is not node and _parent(n.path) == path] if next_level else below
        else:
            node = self._find(path)
            if next_level:
                raise CwmpFault(9003)
            found = [node]
        items = "".join(f"<ParameterInfoStruct><Name>{escape(n.path)}</Name><Writable>{str(n.writable).lower()}"
                        "</Writable></ParameterInfoStruct>" for n in found)
        return (f'<cwmp:GetParameterNamesResponse><ParameterList soap-enc:arrayType="cwmp:ParameterInfoStruct['
                f'{len(found)}]">{items}</ParameterList></cwmp:GetParameterNamesResponse>')

    def _named(self, names: Sequence[str]) -> list[Node]:
        found: list[Node] = []
        for name in names or [""]:
            if name == "" or name.endswith("."):
                if name and name not in self.nodes:
                    raise CwmpFault(9005)
                found += [n for n in self._below(name) if not n.is_object]
            else:
                found.append(self._find(name))
        return found

    def _rpc_GetParameterValues(self, args: dict[str, Any]) -> str:
        params = [self._read(n) for n in self._named(args["names"])]
        return f"<cwmp:GetParameterValuesResponse>{_values_xml(params)}</cwmp:GetParameterValuesResponse>"

    def _rpc_SetParameterValues(self, args: dict[str, Any]) -> str:
        faults: list[tuple[str, int]] = []
        accepted: list[tuple[Node, str]] = []
        for name, value, type_ in args["params"]:
            node = self.nodes.get(name)
            if node is None or node.is_object:
                faults.append((name, 9005))
            elif not node.writable:
                faults.append((name, 9008))
            elif (type_ and type_.partition(":")[2] != node.type.partition(":")[2]) \
                    or (stored := _valid(value, node.type)) is None:
                faults.append((name, 9006))
            else:
                accepted.append((node, stored))
        if faults or not args["params"]:
            raise CwmpFault(9003, faults)
        for node, stored in accepted:
            node.value = stored
        self.nodes[self._ms("ParameterKey")].value = args["parameter_key"]
        return "<cwmp:SetParameterValuesResponse><Status>0</Status></cwmp:SetParameterValuesResponse>"

    def _rpc_GetParameterAttributes(self, args: dict[str, Any]) -> str:
        found = self._named(args["names"])
        items = "".join(f"<ParameterAttributeStruct><Name>{escape(n.path)}</Name><Notification>{n.notification}"
                        f'</Notification><AccessList soap-enc:arrayType="xsd:string[{len(n.access_list)}]">'
                        + "".join(f"<string>{escape(a)}</string>" for a in n.access_list)
                        + "</AccessList></ParameterAttributeStruct>" for n in found)
        return (f'<cwmp:GetParameterAttributesResponse><ParameterList soap-enc:arrayType='
                f'"cwmp:ParameterAttributeStruct[{len(found)}]">{items}</ParameterList>'
                "</cwmp:GetParameterAttributesResponse>")

    def _rpc_SetParameterAttributes(self, args: dict[str, Any]) -> str:
        changes = [(self._named([a["name"]]), a) for a in args["attributes"]]
        for _, a in changes:
            if a["notification_change"] and not 0 <= a["notification"] <= 6:
                raise CwmpFault(9003)
        for nodes, a in changes:
            for node in nodes:
                if a["notification_change"]:
                    node.notification = a["notification"]
                if a["access_list_change"]:
                    node.access_list = tuple(a["access_list"])
        return "<cwmp:SetParameterAttributesResponse></cwmp:SetParameterAttributesResponse>"

    def _rpc_AddObject(self, args: dict[str, Any]) -> str:
        path = args["path"]
        node = self.nodes.get(path)
        if node is None or not path.endswith(".") or not node.writable:
            raise CwmpFault(9005)
        factory = self._factory()

        def instances(paths: Iterable[str]) -> list[int]:
            return [int(p[len(path):-1]) for p in paths
                    if p.startswith(path) and p[len(path):-1].isdigit() and p.count(".") == path.count(".") + 1]

        originals = instances(factory)
        if not originals:
            raise CwmpFault(9005)
        template = f"{path}{min(originals)}."
        n = max(self._next_instance.get(path, 0), *(i + 1 for i in instances(itertools.chain(self.nodes, factory))))
        self._next_instance[path] = n + 1
        for p, original in factory.items():
            if p.startswith(template):
                new = f"{path}{n}.{p[len(template):]}"
                self.nodes[new] = replace(original, path=new)
        self.nodes[self._ms("ParameterKey")].value = args["parameter_key"]
        return (f"<cwmp:AddObjectResponse><InstanceNumber>{n}</InstanceNumber><Status>0</Status>"
                "</cwmp:AddObjectResponse>")

    def _rpc_DeleteObject(self, args: dict[str, Any]) -> str:
        path = args["path"]
        if not re.search(r"\.\d+\.$", path) or path not in self.nodes or not self.nodes[_parent(path)].writable:
            raise CwmpFault(9005)
        for p in [p for p in self.nodes if p.startswith(path)]:
            del self.nodes[p]
        self.nodes[self._ms("ParameterKey")].value = args["parameter_key"]
        return "<cwmp:DeleteObjectResponse><Status>0</Status></cwmp:DeleteObjectResponse>"

    def _rpc_Reboot(self, args: dict[str, Any]) -> str:
        self._after_session.append(("reboot", args))
        return "<cwmp:RebootResponse></cwmp:RebootResponse>"

    def _rpc_FactoryReset(self, args: dict[str, Any]) -> str:
        self._after_session.append(("factory_reset", args))
        return "<cwmp:FactoryResetResponse></cwmp:FactoryResetResponse>"

    def _rpc_Download(self, args: dict[str, Any]) -> str:
        if not args["url"].startswith(("http://", "https://")):
            raise CwmpFault(9013 if "://" in args["url"] else 9003)
        self._after_session.append(("download", args))
        return (f"<cwmp:DownloadResponse><Status>1</Status><StartTime>{UNKNOWN_TIME}</StartTime><CompleteTime>"
                f"{UNKNOWN_TIME}</CompleteTime></cwmp:DownloadResponse>")

    def _rpc_Upload(self, args: dict[str, Any]) -> str:
        if not args["url"].startswith(("http://", "https://")):
            raise CwmpFault(9003)
        self._after_session.append(("upload", args))
        return (f"<cwmp:UploadResponse><Status>1</Status><StartTime>{UNKNOWN_TIME}</StartTime><CompleteTime>"
                f"{UNKNOWN_TIME}</CompleteTime></cwmp:UploadResponse>")

    # -- after the session: what the device does once the ACS let it go --

    def config_file(self) -> bytes:
        """The configuration an Upload sends: every parameter but the secrets."""
        return "".join(f"{n.path}={n.value}\n" for n in self.nodes.values()
                       if not n.is_object and not SECRET.search(n.path)).encode()

    async def _after(self, http: aiohttp.ClientSession) -> None:
        work, self._after_session = self._after_session, []
        for what, args in work:
            if what == "reboot":
                self.owed_events += [("1 BOOT", ""), ("M Reboot", args["command_key"])]
                self.nodes[self._info("UpTime")].value = "0"
            elif what == "factory_reset":
                self.nodes = self._factory()
                self.nodes[self._ms("ConnectionRequestURL")].value = self.cr_url or \
                    self.nodes[self._ms("ConnectionRequestURL")].value
                self._digest = None
                self.transfers.clear()
                self.owed_events = [("0 BOOTSTRAP", ""), ("1 BOOT", "")]
            elif what == "download":
                self.transfers.append(await self._download(http, args))
            elif what == "upload":
                self.transfers.append(await self._upload(http, args))

    @staticmethod
    def _transfer_auth(args: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": aiohttp.encode_basic_auth(args["username"], args["password"])} \
            if args["username"] else {}

    async def _download(self, http: aiohttp.ClientSession, args: dict[str, Any]) -> Transfer:
        start, fault = _now(), 0
        try:
            async with http.get(args["url"], headers=self._transfer_auth(args)) as response:
                data = await response.read()
                self.fetched.append(Fetched(args["url"], response.status, data))
                if response.status != 200:
                    fault = 9016
                elif args["file_size"] and len(data) != args["file_size"]:
                    fault = 9018
        except aiohttp.ClientError:
            fault = 9016
        return Transfer(args["command_key"], "M Download", fault, start, _now())

    async def _upload(self, http: aiohttp.ClientSession, args: dict[str, Any]) -> Transfer:
        start, fault, data = _now(), 0, self.config_file()
        try:
            async with http.put(args["url"], data=data,
                                headers={"Content-Type": "text/plain", **self._transfer_auth(args)}) as response:
                self.uploaded.append(Fetched(args["url"], response.status, data))
                if not 200 <= response.status < 300:
                    fault = 9011
        except aiohttp.ClientError:
            fault = 9011
        return Transfer(args["command_key"], "M Upload", fault, start, _now())
