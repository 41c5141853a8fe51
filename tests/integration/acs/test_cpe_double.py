"""The CPE double (tests/fakes/cpe.py) against a tiny scripted ACS written here, so that a broken
double is caught before it judges the real ACS.

The scripted ACS checks digest by hand (hashlib), sets a cookie on the InformResponse and wants it
back, and sends the RPCs of its script after the empty POST; every request the double made is
kept, read with ElementTree."""

from __future__ import annotations

import hashlib
import re
import secrets
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import cpe as fake
from tests.fakes.cpe import Cpe

pytestmark = pytest.mark.timeout(30)

REALM = "script-acs"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def acs_envelope(body: str, cwmp_id: str, namespace: str) -> str:
    return ('<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            f'xmlns:c="{namespace}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soapenv:Header>'
            f'<c:ID soapenv:mustUnderstand="1">{cwmp_id}</c:ID></soapenv:Header>'
            f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>")


def local(tag: str) -> str:
    return tag.rpartition("}")[2]


@dataclass
class Seen:
    method: str  # local name of the Body's element, "" for an empty POST
    element: ET.Element | None
    cwmp_id: str | None
    peer_port: int
    cookie: str | None
    nc: str | None


@dataclass
class ScriptAcs:
    """A throw-away ACS: digest (or none), a cookie, then ``script`` (bodies with c: prefix)."""

    username: str = "cpe181"
    password: str = "secret"
    digest: bool = True
    script: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    nonces: dict[str, int] = field(default_factory=dict)  # nonce -> last nc
    stale_next: bool = False
    statuses: list[int] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    puts: list[tuple[str, bytes]] = field(default_factory=list)
    namespace: str = fake.CWMP_1_0

    def challenge(self, stale: bool = False) -> web.Response:
        nonce = secrets.token_hex(8)
        self.nonces[nonce] = 0
        self.statuses.append(401)
        extra = ", stale=true" if stale else ""
        return web.Response(status=401, headers={
            "WWW-Authenticate": f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", algorithm=MD5{extra}'})

    def check(self, request: web.Request) -> tuple[web.Response | None, str | None]:
        header = request.headers.get("Authorization", "")
        if not self.digest:
            return None, None
        if not header.startswith("Digest "):
            return self.challenge(), None
        p = dict((m[0], m[1] or m[2]) for m in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]+))', header))
        ha1 = md5(f"{p['username']}:{REALM}:{self.password}")
        ha2 = md5(f"POST:{p['uri']}")
        good = (p["username"] == self.username and p["realm"] == REALM
                and p["response"] == md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:auth:{ha2}"))
        if not good or p["nonce"] not in self.nonces or int(p["nc"], 16) <= self.nonces[p["nonce"]]:
            return self.challenge(), None
        if self.stale_next:
            self.stale_next = False
            del self.nonces[p["nonce"]]
            return self.challenge(stale=True), None
        self.nonces[p["nonce"]] = int(p["nc"], 16)
        return None, p["nc"]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        refused, nc = self.check(request)
        if refused is not None:
            return refused
        body = await request.read()
        cookie = request.cookies.get("acs")
        peer = request.transport.get_extra_info("peername")[1] if request.transport else 0
        if not body:
            self.seen.append(Seen("", None, None, peer, cookie, nc))
            return self.next_rpc()
        root = ET.fromstring(body)
        header = next(e for e in root if local(e.tag) == "Header")
        cwmp_id = next(e.text for e in header if local(e.tag) == "ID")
        element = next(e for e in root if local(e.tag) == "Body")[0]
        method = local(element.tag)
        self.seen.append(Seen(method, element, cwmp_id, peer, cookie, nc))
        if method == "Inform":
            self.namespace = element.tag[1:].partition("}")[0]
            response = web.Response(text=acs_envelope("<c:InformResponse><MaxEnvelopes>1</MaxEnvelopes>"
                                                      "</c:InformResponse>", cwmp_id or "", self.namespace),
                                    content_type="text/xml")
            response.set_cookie("acs", "session-1")
            self.statuses.append(200)
            return response
        if method in ("TransferComplete", "AutonomousTransferComplete", "GetRPCMethods"):
            inner = ("<MethodList><string>Inform</string></MethodList>" if method == "GetRPCMethods" else "")
            self.statuses.append(200)
            return web.Response(text=acs_envelope(f"<c:{method}Response>{inner}</c:{method}Response>",
                                                  cwmp_id or "", self.namespace), content_type="text/xml")
        return self.next_rpc()

    def next_rpc(self) -> web.Response:
        if not self.script:
            self.statuses.append(204)
            return web.Response(status=204)
        self.statuses.append(200)
        return web.Response(text=acs_envelope(self.script.pop(0), f"acs-{len(self.seen)}", self.namespace),
                            content_type="text/xml")

    async def file(self, request: web.Request) -> web.StreamResponse:
        data = self.files.get(request.match_info["name"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    async def put(self, request: web.Request) -> web.StreamResponse:
        self.puts.append((request.path, await request.read()))
        return web.Response(status=204)


@pytest.fixture
async def acs() -> AsyncIterator[tuple[ScriptAcs, str]]:
    script = ScriptAcs()
    app = web.Application()
    app.router.add_post("/acs", script.handle)
    app.router.add_get("/files/{name}", script.file)
    app.router.add_put("/up/{name}", script.put)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield script, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def values(element: ET.Element | None) -> dict[str, tuple[str, str]]:
    assert element is not None
    out = {}
    for item in element.iter():
        if local(item.tag) == "ParameterValueStruct":
            name = next(e.text or "" for e in item if local(e.tag) == "Name")
            value = next(e for e in item if local(e.tag) == "Value")
            type_ = next(v for k, v in value.attrib.items() if local(k) == "type")
            out[name] = (value.text or "", type_)
    return out


def names(element: ET.Element | None) -> dict[str, bool]:
    assert element is not None
    out = {}
    for item in element.iter():
        if local(item.tag) == "ParameterInfoStruct":
            n = next(e.text or "" for e in item if local(e.tag) == "Name")
            out[n] = next(e.text for e in item if local(e.tag) == "Writable") == "true"
    return out


def fault(element: ET.Element | None) -> tuple[int, list[tuple[str, int]]]:
    assert element is not None and local(element.tag) == "Fault"
    code = int(next(e.text or "" for e in element.iter() if local(e.tag) == "FaultCode"))
    per = [(next(x.text or "" for x in e if local(x.tag) == "ParameterName"),
            int(next(x.text or "" for x in e if local(x.tag) == "FaultCode")))
           for e in element.iter() if local(e.tag) == "SetParameterValuesFault"]
    return code, per


def events(element: ET.Element | None) -> list[tuple[str, str]]:
    assert element is not None
    return [(next(x.text or "" for x in e if local(x.tag) == "EventCode"),
             next(x.text or "" for x in e if local(x.tag) == "CommandKey"))
            for e in element.iter() if local(e.tag) == "EventStruct"]


async def test_inform_digest_cookie_keepalive(acs: tuple[ScriptAcs, str]) -> None:
    script, base = acs
    async with Cpe(base + "/acs", serial="A1") as cpe:
        script.script = ['<c:GetParameterValues><ParameterNames><string>Device.DeviceInfo.UpTime</string>'
                         '</ParameterNames></c:GetParameterValues>']
        record = await cpe.session("0 BOOTSTRAP", "1 BOOT")
    assert record.outcome == "ok", record.error
    assert record.statuses == [401, 200, 200, 204] == script.statuses
    inform, empty, answer = script.seen
    assert inform.method == "Inform" and inform.element is not None
    assert events(inform.element) == [("0 BOOTSTRAP", ""), ("1 BOOT", "")]
    device_id = {local(e.tag): e.text for e in inform.element.iter() if local(e.tag) in
                 ("Manufacturer", "OUI", "ProductClass", "SerialNumber")}
    assert device_id == {"Manufacturer": "ExampleVendor", "OUI": "00D09E", "ProductClass": "HGW-181",
                         "SerialNumber": "A1"}
    assert cpe.cwmp_id == "00D09E-HGW-181-A1"
    informed = values(inform.element)
    assert informed["Device.ManagementServer.ConnectionRequestURL"] == (cpe.cr_url, "xsd:string")
    assert informed["Device.DeviceInfo.SoftwareVersion"] == ("2.4.1", "xsd:string")
    # one nonce, counted up; the cookie of the InformResponse comes back; one TCP connection
    assert [s.nc for s in script.seen] == ["00000001", "00000002", "00000003"]
    assert [s.cookie for s in script.seen] == [None, "session-1", "session-1"]
    assert len({s.peer_port for s in script.seen}) == 1
    assert empty.method == "" and answer.method == "GetParameterValuesResponse"
    assert answer.cwmp_id == "acs-2"  # the ACS's cwmp:ID echoed
    assert values(answer.element) == {"Device.DeviceInfo.UpTime": ("3600", "xsd:unsignedInt")}
    assert record.rpcs == ["GetParameterValues"] and record.answers == ["InformResponse"]


async def test_stale_nonce_and_wrong_password(acs: tuple[ScriptAcs, str]) -> None:
    script, base = acs
    async with Cpe(base + "/acs") as cpe:
        assert (await cpe.session()).outcome == "ok"
        script.stale_next = True  # the next request's nonce has expired
        record = await cpe.session("2 PERIODIC")
        assert record.outcome == "ok" and record.statuses == [401, 200, 204]
    async with Cpe(base + "/acs", password="wrong") as cpe:
        record = await cpe.session()
        assert record.outcome == "unauthorized" and record.statuses == [401, 401]


async def test_basic_and_namespace(acs: tuple[ScriptAcs, str]) -> None:
    script, base = acs
    script.digest = False

    async with Cpe(base + "/acs", fake.TR098, auth="basic", username="u", password="p",
                   namespace=fake.CWMP_1_4) as cpe:
        record = await cpe.session()
    assert record.outcome == "ok" and record.statuses == [200, 204]
    inform = script.seen[0].element
    assert inform is not None and inform.tag == "{urn:dslforum-org:cwmp-1-4}Inform"
    assert events(inform) == [("2 PERIODIC", "")]
    assert "InternetGatewayDevice.WANDevice.1.WANConnectionDevice.1.WANPPPConnection.1.ExternalIPAddress" in \
        values(inform)
    assert cpe.cwmp_id == "202BC1-BM632w-000001"


async def test_parameter_rpcs(acs: tuple[ScriptAcs, str]) -> None:
    script, base = acs
    spv = ('<c:SetParameterValues><ParameterList>{}</ParameterList><ParameterKey>{}</ParameterKey>'
           '</c:SetParameterValues>')

    def pv(name: str, value: str, type_: str) -> str:
        return (f'<ParameterValueStruct><Name>{name}</Name><Value xsi:type="{type_}">{value}</Value>'
                "</ParameterValueStruct>")

    script.script = [
        "<c:GetParameterNames><ParameterPath></ParameterPath><NextLevel>true</NextLevel></c:GetParameterNames>",
        "<c:GetParameterNames><ParameterPath>Device.WiFi.</ParameterPath><NextLevel>1</NextLevel>"
        "</c:GetParameterNames>",
        "<c:GetParameterNames><ParameterPath>Device.ManagementServer.</ParameterPath><NextLevel>false</NextLevel>"
        "</c:GetParameterNames>",
        "<c:GetParameterNames><ParameterPath>Device.DeviceInfo.UpTime</ParameterPath><NextLevel>true</NextLevel>"
        "</c:GetParameterNames>",
        "<c:GetParameterValues><ParameterNames><string>Device.ManagementServer.</string>"
        "<string>Device.PPP.Interface.1.Username</string></ParameterNames></c:GetParameterValues>",
        "<c:GetParameterValues><ParameterNames><string>Device.Nope</string></ParameterNames></c:GetParameterValues>",
        spv.format(pv("Device.DeviceInfo.UpTime", "1", "xsd:unsignedInt")
                   + pv("Device.ManagementServer.PeriodicInformInterval", "x", "xsd:unsignedInt")
                   + pv("Device.WiFi.SSID.1.Enable", "true", "xsd:string")
                   + pv("Device.Gone", "1", "xsd:string"), "k0"),
        spv.format(pv("Device.ManagementServer.PeriodicInformInterval", "600", "xsd:unsignedInt")
                   + pv("Device.WiFi.SSID.1.Enable", "0", "xsd:boolean")
                   + pv("Device.WiFi.AccessPoint.1.Security.KeyPassphrase", "new key &amp; more", "xsd:string"),
                   "k1"),
        "<c:GetParameterValues><ParameterNames><string>Device.WiFi.</string></ParameterNames></c:GetParameterValues>",
        "<c:SetParameterAttributes><ParameterList><SetParameterAttributesStruct><Name>Device.WiFi.SSID.1.SSID</Name>"
        "<NotificationChange>true</NotificationChange><Notification>2</Notification>"
        "<AccessListChange>0</AccessListChange><AccessList></AccessList></SetParameterAttributesStruct>"
        "</ParameterList></c:SetParameterAttributes>",
        "<c:GetParameterAttributes><ParameterNames><string>Device.WiFi.SSID.1.</string></ParameterNames>"
        "</c:GetParameterAttributes>",
        "<c:AddObject><ObjectName>Device.WiFi.SSID.</ObjectName><ParameterKey>k2</ParameterKey></c:AddObject>",
        "<c:DeleteObject><ObjectName>Device.WiFi.SSID.1.</ObjectName><ParameterKey>k3</ParameterKey></c:DeleteObject>",
        "<c:DeleteObject><ObjectName>Device.WiFi.SSID.1.</ObjectName><ParameterKey>k4</ParameterKey></c:DeleteObject>",
        "<c:AddObject><ObjectName>Device.WiFi.SSID.</ObjectName><ParameterKey>k5</ParameterKey></c:AddObject>",
        "<c:ScheduleInform><DelaySeconds>1</DelaySeconds><CommandKey></CommandKey></c:ScheduleInform>",
        "<c:GetRPCMethods></c:GetRPCMethods>",
    ]
    async with Cpe(base + "/acs") as cpe:
        record = await cpe.session()
        assert record.outcome == "ok", record.error
        answers = [s for s in script.seen if s.method not in ("Inform", "")]
        gpn_root, gpn_wifi, gpn_ms, gpn_param, gpv, gpv_unknown, spv_bad, spv_ok, gpv_wifi, spa, gpa, add, \
            delete, delete_again, add_again, unknown_rpc, rpc_methods = answers
        assert names(gpn_root.element) == {"Device.": False}
        assert names(gpn_wifi.element) == {"Device.WiFi.SSIDNumberOfEntries": False, "Device.WiFi.SSID.": True,
                                           "Device.WiFi.AccessPointNumberOfEntries": False,
                                           "Device.WiFi.AccessPoint.": True}
        ms = names(gpn_ms.element)
        assert ms["Device.ManagementServer."] is False and ms["Device.ManagementServer.URL"] is True
        assert ms["Device.ManagementServer.ParameterKey"] is False and len(ms) == 10
        assert fault(gpn_param.element) == (9003, [])
        got = values(gpv.element)
        assert got["Device.ManagementServer.PeriodicInformInterval"] == ("300", "xsd:unsignedInt")
        assert got["Device.ManagementServer.Password"] == ("", "xsd:string")  # secrets read back empty
        assert got["Device.ManagementServer.ConnectionRequestPassword"] == ("", "xsd:string")
        assert got["Device.PPP.Interface.1.Username"] == ("subscriber@isp", "xsd:string")
        assert len(got) == 10
        assert fault(gpv_unknown.element) == (9005, [])
        assert fault(spv_bad.element) == (9003, [("Device.DeviceInfo.UpTime", 9008),
                                                 ("Device.ManagementServer.PeriodicInformInterval", 9006),
                                                 ("Device.WiFi.SSID.1.Enable", 9006), ("Device.Gone", 9005)])
        assert spv_ok.method == "SetParameterValuesResponse"
        assert cpe.value("Device.ManagementServer.PeriodicInformInterval") == "600"
        assert cpe.value("Device.WiFi.AccessPoint.1.Security.KeyPassphrase") == "new key & more"
        assert cpe.value("Device.ManagementServer.ParameterKey") == "k5"
        wifi = values(gpv_wifi.element)
        assert wifi["Device.WiFi.AccessPoint.1.Security.KeyPassphrase"] == ("", "xsd:string")
        assert wifi["Device.WiFi.SSID.1.Enable"] == ("false", "xsd:boolean")  # "0" stored as the device writes it
        assert spa.method == "SetParameterAttributesResponse"
        assert gpa.element is not None
        notifications = {next(x.text for x in e if local(x.tag) == "Name"):
                         next(x.text for x in e if local(x.tag) == "Notification")
                         for e in gpa.element.iter() if local(e.tag) == "ParameterAttributeStruct"}
        assert notifications == {"Device.WiFi.SSID.1.Enable": "0", "Device.WiFi.SSID.1.SSID": "2",
                                 "Device.WiFi.SSID.1.BSSID": "0"}
        assert add.element is not None
        assert {local(e.tag): e.text for e in add.element} == {"InstanceNumber": "2", "Status": "0"}
        assert delete.method == "DeleteObjectResponse" and fault(delete_again.element) == (9005, [])
        assert {local(e.tag): e.text for e in add_again.element or []}["InstanceNumber"] == "3"  # never reused
        assert cpe.value("Device.WiFi.SSID.3.SSID") == "home-wifi"  # a copy of the factory's instance 1
        assert "Device.WiFi.SSID.1." not in cpe.nodes and "Device.WiFi.SSID.2.SSID" in cpe.nodes
        assert fault(unknown_rpc.element) == (9000, [])
        assert rpc_methods.method == "GetRPCMethodsResponse"
        assert record.faults == [("GetParameterNames", 9003), ("GetParameterValues", 9005),
                                 ("SetParameterValues", 9003), ("DeleteObject", 9005), ("ScheduleInform", 9000)]
        # a local change of a notified parameter: 4 VALUE CHANGE with it in the next Inform
        cpe.set_local("Device.WiFi.SSID.2.SSID", "not notified")
        cpe.set_local("Device.WiFi.SSID.3.SSID", "not notified either")
        assert cpe.changed == {}
        cpe.nodes["Device.WiFi.SSID.2.SSID"].notification = 1
        cpe.set_local("Device.WiFi.SSID.2.SSID", "changed at home")
        script.seen.clear()
        await cpe.session()
        assert events(script.seen[0].element) == [("4 VALUE CHANGE", "")]
        assert values(script.seen[0].element)["Device.WiFi.SSID.2.SSID"] == ("changed at home", "xsd:string")


async def test_reboot_factory_reset_transfers(acs: tuple[ScriptAcs, str]) -> None:
    script, base = acs
    script.files["fw.bin"] = b"F" * 1000
    download = ("<c:Download><CommandKey>{key}</CommandKey><FileType>1 Firmware Upgrade Image</FileType>"
                "<URL>" + base + "/files/{name}</URL><Username></Username><Password></Password>"
                "<FileSize>{size}</FileSize><TargetFileName></TargetFileName><DelaySeconds>0</DelaySeconds>"
                "<SuccessURL></SuccessURL><FailureURL></FailureURL></c:Download>")
    async with Cpe(base + "/acs") as cpe:
        script.script = [
            "<c:SetParameterValues><ParameterList><ParameterValueStruct><Name>Device.WiFi.SSID.1.SSID</Name>"
            '<Value xsi:type="xsd:string">mine</Value></ParameterValueStruct></ParameterList>'
            "<ParameterKey>p</ParameterKey></c:SetParameterValues>",
            download.format(key="dl-1", name="fw.bin", size=1000),
            download.format(key="dl-2", name="fw.bin", size=999),
            download.format(key="dl-3", name="missing.bin", size=0),
            "<c:Upload><CommandKey>up-1</CommandKey><FileType>1 Vendor Configuration File</FileType>"
            "<URL>" + base + "/up/cfg</URL><Username></Username><Password></Password>"
            "<DelaySeconds>0</DelaySeconds></c:Upload>",
            "<c:Reboot><CommandKey>rb-1</CommandKey></c:Reboot>",
        ]
        first = await cpe.session()
        assert first.rpcs == ["SetParameterValues", "Download", "Download", "Download", "Upload", "Reboot"]
        assert first.call("Download").args["file_size"] == 1000
        assert [f.status for f in cpe.fetched] == [200, 200, 404]
        assert script.puts and script.puts[0][0] == "/up/cfg"
        assert b"Device.WiFi.SSID.1.SSID=mine\n" in script.puts[0][1] and b"crpass" not in script.puts[0][1]
        script.seen.clear()
        second = await cpe.session()
        assert second.events == [("1 BOOT", ""), ("7 TRANSFER COMPLETE", ""), ("M Reboot", "rb-1"),
                                 ("M Download", "dl-1"), ("M Download", "dl-2"), ("M Download", "dl-3"),
                                 ("M Upload", "up-1")]
        completes = [s.element for s in script.seen if s.method == "TransferComplete"]
        got = [(next(e.text for e in c.iter() if local(e.tag) == "CommandKey"),
                next(e.text for e in c.iter() if local(e.tag) == "FaultCode")) for c in completes if c is not None]
        assert got == [("dl-1", "0"), ("dl-2", "9018"), ("dl-3", "9016"), ("up-1", "0")]
        assert second.answers == ["InformResponse"] + ["TransferCompleteResponse"] * 4
        third = await cpe.session()
        assert third.events == [("2 PERIODIC", "")]  # everything owed was delivered
        script.script = ["<c:FactoryReset></c:FactoryReset>"]
        await cpe.session()
        assert cpe.value("Device.WiFi.SSID.1.SSID") == "home-wifi"
        assert cpe.value("Device.ManagementServer.ConnectionRequestURL") == cpe.cr_url
        script.seen.clear()
        after_reset = await cpe.session()
        assert after_reset.events == [("0 BOOTSTRAP", ""), ("1 BOOT", "")]
        # explicit events and the CPE's own requests
        script.seen.clear()
        explicit = await cpe.session("7 TRANSFER COMPLETE", ("M Download", "old-key"),
                                     requests=["GetRPCMethods", "AutonomousTransferComplete"])
        assert explicit.answers == ["InformResponse", "TransferCompleteResponse", "GetRPCMethodsResponse",
                                    "AutonomousTransferCompleteResponse"]
        assert [s.method for s in script.seen] == ["Inform", "TransferComplete", "GetRPCMethods",
                                                   "AutonomousTransferComplete", ""]


async def test_connection_request_server(acs: tuple[ScriptAcs, str]) -> None:
    _, base = acs
    async with Cpe(base + "/acs") as cpe, aiohttp.ClientSession() as http:
        async with http.get(cpe.cr_url) as r:
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Digest ")
        wrong = aiohttp.DigestAuthMiddleware("cr", "nope")
        async with http.get(cpe.cr_url, middlewares=(wrong,)) as r:
            assert r.status == 401
        right = aiohttp.DigestAuthMiddleware("cr", "crpass")
        async with http.get(cpe.cr_url, middlewares=(right,)) as r:
            assert r.status == 200
        record = await cpe.next_connection_request_session()
        assert record.events == [("6 CONNECTION REQUEST", "")] and record.outcome == "ok"
        assert [c.status for c in cpe.connection_requests] == [401, 401, 401, 401, 200]
        assert cpe.connection_requests[-1].username == "cr"
    async with Cpe(base + "/acs", cr_auth="basic") as cpe, aiohttp.ClientSession() as http:
        async with http.get(cpe.cr_url, headers={"Authorization": aiohttp.encode_basic_auth("cr", "crpass")}) as r:
            assert r.status == 200
        await cpe.next_connection_request_session()
