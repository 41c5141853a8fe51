"""Independent decoders for differential tests: the ``netflow`` package and scapy.

Both return flows as ``(src, dst, octets, packets, start_ms, end_ms)`` with addresses as
compressed text and times converted here with plain arithmetic (no 2^32 wrap handling:
the differential vectors avoid the wrap, which ``test_times`` covers on its own).  Times
are None where the record alone cannot place them (IPFIX sysUpTime without an init time).
Options records are left out.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import netflow
from scapy.config import conf
from scapy.layers.netflow import (
    NetflowDataflowsetV9,
    NetflowHeader,
    NetflowHeaderV5,
    NetflowHeaderV9,
    NetflowHeaderV10,
    NetflowOptionsRecordOptionV9,
    NetflowOptionsRecordScopeV9,
    NetflowRecordV5,
    netflowv9_defragment,
)

RefFlow = tuple[str, str, int, int, int | None, int | None]


def _addr(value: Any) -> str:
    return str(ipaddress.ip_address(value))


def _times(names: dict[str, Any], export_ms: int, uptime: int | None, init_ms: int | None,
           start_keys: tuple[str, str, str], end_keys: tuple[str, str, str]) -> tuple[int | None, int | None]:
    """(start, end) in Unix ms from whichever of (absolute ms, sysUpTime, seconds) is present."""
    out: list[int | None] = []
    for ms, up, sec in (start_keys, end_keys):
        if names.get(ms) is not None:
            out.append(int(names[ms]))
        elif names.get(up) is not None and uptime is not None:
            out.append(export_ms - (uptime - int(names[up])))
        elif names.get(up) is not None and init_ms is not None:
            out.append(init_ms + int(names[up]))
        elif names.get(sec) is not None:
            out.append(int(names[sec]) * 1000)
        else:
            out.append(None)
    return out[0], out[1]


def via_netflow(datagrams: list[bytes]) -> list[RefFlow]:
    """Decode with bitkeks' ``netflow`` (one template table, as it has).  The datagram goes in
    as hex text: given bytes that happen to be valid UTF-8 it would read them as hex."""
    templates: dict[str, Any] = {"netflow": {}, "ipfix": {}}
    out: list[RefFlow] = []
    for dg in datagrams:
        pkt = netflow.parse_packet(dg.hex(), templates)
        hdr = pkt.header
        version = int.from_bytes(dg[:2], "big")
        for flow in pkt.flows:
            d = flow.data
            if version == 5:
                export_ms = hdr.timestamp * 1000 + hdr.timestamp_nano // 1_000_000
                out.append((_addr(d["IPV4_SRC_ADDR"]), _addr(d["IPV4_DST_ADDR"]), d["IN_OCTETS"], d["IN_PACKETS"],
                            export_ms - (hdr.uptime - d["FIRST_SWITCHED"]),
                            export_ms - (hdr.uptime - d["LAST_SWITCHED"])))
            elif version == 9:
                six = "IPV6_SRC_ADDR" in d
                start, end = _times(d, hdr.timestamp * 1000, hdr.uptime, None,
                                    ("", "FIRST_SWITCHED", ""), ("", "LAST_SWITCHED", ""))
                out.append((_addr(d["IPV6_SRC_ADDR" if six else "IPV4_SRC_ADDR"]),
                            _addr(d["IPV6_DST_ADDR" if six else "IPV4_DST_ADDR"]),
                            d["IN_BYTES"], d["IN_PKTS"], start, end))
            elif "octetDeltaCount" in d:  # not an options record
                six = "sourceIPv6Address" in d
                start, end = _times(d, hdr.export_uptime * 1000, None, d.get("systemInitTimeMilliseconds"),
                                    ("flowStartMilliseconds", "flowStartSysUpTime", "flowStartSeconds"),
                                    ("flowEndMilliseconds", "flowEndSysUpTime", "flowEndSeconds"))
                out.append((_addr(d["sourceIPv6Address" if six else "sourceIPv4Address"]),
                            _addr(d["destinationIPv6Address" if six else "destinationIPv4Address"]),
                            d["octetDeltaCount"], d["packetDeltaCount"], start, end))
    return out


def via_scapy(datagrams: list[bytes]) -> list[RefFlow]:
    """Decode with scapy's NetflowHeader layers and ``netflowv9_defragment``."""
    conf.verb = 0
    pkts = [NetflowHeader(dg) for dg in datagrams]
    netflowv9_defragment(pkts)
    out: list[RefFlow] = []
    for p in pkts:
        if NetflowHeaderV5 in p:
            hdr = p[NetflowHeaderV5]
            export_ms = int(hdr.unixSecs) * 1000 + int(hdr.unixNanoSeconds) // 1_000_000
            rec = hdr.payload
            while isinstance(rec, NetflowRecordV5):
                up = hdr.sysUptime
                out.append((_addr(rec.src), _addr(rec.dst), rec.dOctets, rec.dpkts, export_ms - (up - rec.first),
                            export_ms - (up - rec.last)))
                rec = rec.payload
            continue
        if NetflowHeaderV9 in p:
            h9 = p[NetflowHeaderV9]
            export_ms, uptime = int(h9.getfieldval("unixSecs")) * 1000, h9.sysUptime
        else:
            export_ms, uptime = int(p[NetflowHeaderV10].getfieldval("ExportTime")) * 1000, None
        n = 1
        while (ds := p.getlayer(NetflowDataflowsetV9, nb=n)) is not None:
            n += 1
            for rec in ds.records:
                if isinstance(rec, NetflowOptionsRecordScopeV9 | NetflowOptionsRecordOptionV9):
                    continue
                names = {f.name: rec.getfieldval(f.name) for f in rec.fields_desc}
                if "IN_BYTES" not in names:
                    continue  # scapy could not dissect it (no template yet)
                six = "IPV6_SRC_ADDR" in names
                start, end = _times(names, export_ms, uptime, names.get("systemInitTimeMilliseconds"),
                                    ("flowStartMilliseconds", "FIRST_SWITCHED", "flowStartSeconds"),
                                    ("flowEndMilliseconds", "LAST_SWITCHED", "flowEndSeconds"))
                out.append((_addr(names["IPV6_SRC_ADDR" if six else "IPV4_SRC_ADDR"]),
                            _addr(names["IPV6_DST_ADDR" if six else "IPV4_DST_ADDR"]),
                            names["IN_BYTES"], names["IN_PKTS"], start, end))
    return out
