"""Compiled attribute definitions: the RADIUS dictionary turned into per-attribute value codecs.

A dictionary parsed by pyrad is compiled here: every attribute into an :class:`AttrDef` that packs a
Python value into wire octets and back, with the size rule the decoder enforces before any handler
sees the packet.  The one file this module reads is the dictionary it ships (``radiusd/dictionary/``),
once, for :func:`default_table`; site dictionaries are read by ``radiusd.dictionaries``, which hands
the parsed result to :func:`compile_table`.  Nothing here depends on the rest of lastmile.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from socket import AF_INET, AF_INET6, inet_ntop, inet_pton

from pyrad.dictionary import Dictionary

DICTIONARY_PATH = Path(__file__).parent / "dictionary" / "dictionary"

#: A decoded attribute value: ``str`` for text, addresses and prefixes, ``int`` for numbers and dates,
#: ``bytes`` for octets (and for text that is not valid UTF-8).
Value = str | int | bytes
#: What the encoders accept: the decoded forms, plus ``ipaddress`` objects for address types.
InValue = str | int | bytes | ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv6Network

VSA = 26  # Vendor-Specific, RFC 2865 section 5.26
MESSAGE_AUTHENTICATOR = 80  # RFC 3579 section 3.2

# Size rule kinds, checked by the decoder on top of the (min, max) length.
SIZE_PLAIN = 0
SIZE_HIDDEN = 1  # User-Password hiding: a multiple of 16 octets (RFC 2865 section 5.2)
SIZE_SALTED = 2  # salt + multiple of 16 octets (RFC 2868 section 3.5, RFC 2548 section 2.4.2)
SIZE_PREFIX = 3  # reserved, prefix-length <= 128, prefix (RFC 3162 section 2.3)

# Values whose size the dictionary type does not say, but that the typed accessors rely on.
_SIZE_OVERRIDES: dict[str, tuple[int, int]] = {
    "CHAP-Password": (17, 17),  # CHAP Ident + 16-octet response, RFC 2865 section 5.3
    "MS-CHAP-Challenge": (8, 16),  # 8 octets for MS-CHAP-v1, 16 for v2, RFC 2548 section 2.3.2
    "MS-CHAP2-Response": (50, 50),  # RFC 2548 section 2.3.2
}

# Fixed sizes of the RFC 8044 data types.
_FIXED = {
    "integer": 4,
    "signed": 4,
    "date": 4,
    "ipaddr": 4,
    "short": 2,
    "byte": 1,
    "integer64": 8,
    "ipv6addr": 16,
    "ifid": 8,
    "ether": 6,
}


class EncodeError(ValueError):
    """A value given to an encoder cannot be sent: unknown attribute, wrong type, out of range."""


@dataclass(frozen=True, slots=True)
class AttrDef:
    """One dictionary attribute, compiled.

    ``key`` identifies the attribute in a decoded packet: the attribute type for standard
    attributes, ``vendor << 8 | type`` for vendor attributes.
    """

    name: str
    key: int
    type: int
    vendor: int
    datatype: str
    encrypt: int
    has_tag: bool
    names: Mapping[str, int]
    numbers: Mapping[int, str]
    size: tuple[int, int, int] | None
    pack: Callable[[InValue], bytes]
    unpack: Callable[[bytes], Value]


class AttributeTable:
    """All attributes of a dictionary by name and by key, plus the decoder's size rules."""

    __slots__ = ("by_key", "by_name", "fixed", "sizes", "vendors")

    def __init__(self, defs: list[AttrDef], vendors: frozenset[int]) -> None:
        self.by_name: dict[str, AttrDef] = {d.name: d for d in defs}
        #: an alias (a second name for a number, as FreeRADIUS's dictionaries have) encodes under
        #: its name, and decodes under the name defined first
        self.by_key: dict[int, AttrDef] = {}
        for d in defs:
            self.by_key.setdefault(d.key, d)
        #: key -> (min length, max length, kind) for every attribute with a size constraint
        self.sizes: dict[int, tuple[int, int, int]] = {d.key: d.size for d in defs if d.size is not None}
        #: the same for standard attributes as a list by type, for the decoder's hot loop: 0 for no
        #: constraint, the size for a plain fixed size, -1 for anything the slow check must see
        self.fixed = [0] * 256
        for key, (low, high, kind) in self.sizes.items():
            if key < 256:
                self.fixed[key] = low if low == high and kind == SIZE_PLAIN else -1
        # handled by the decoder itself: the invalid type 0, Vendor-Specific, Message-Authenticator
        for attr_type in (0, VSA, MESSAGE_AUTHENTICATOR):
            self.fixed[attr_type] = -1
        #: vendor ids whose VSAs are held to the RFC 2865 section 5.26 format
        self.vendors = vendors

    def name_of(self, key: int) -> str:
        """Name of the attribute ``key``; ``Attr-N`` or ``Vendor-V-Attr-N`` when it is not defined."""
        d = self.by_key.get(key)
        if d is not None:
            return d.name
        if key < 256:
            return f"Attr-{key}"
        return f"Vendor-{key >> 8}-Attr-{key & 0xFF}"


def compile_table(pyd: Dictionary) -> AttributeTable:
    """Compile a parsed dictionary into a table.

    Raises :class:`ValueError` for an attribute number above 255 (only the RFC 2865 VSA format is
    supported).
    """
    defs: list[AttrDef] = []
    vendors: set[int] = set()
    for name, attr in pyd.attributes.items():
        if attr.is_sub_attribute:
            continue  # TLV members: no dictionary of ours has them
        vendor = pyd.vendors.GetForward(attr.vendor) if attr.vendor else 0
        if vendor:
            vendors.add(vendor)
        if not 0 < attr.code < 256:
            raise ValueError(f"attribute {name}: number {attr.code} does not fit the RFC 2865 format")
        names = {k: int.from_bytes(v, "big") for k, v in attr.values.forward.items()}
        defs.append(
            AttrDef(
                name=name,
                key=(vendor << 8 | attr.code) if vendor else attr.code,
                type=attr.code,
                vendor=vendor,
                datatype=attr.type,
                encrypt=attr.encrypt,
                has_tag=attr.has_tag,
                names=names,
                numbers={v: k for k, v in names.items()},
                size=_size_rule(name, attr.type, attr.encrypt),
                pack=_packer(name, attr.type, names),
                unpack=_UNPACKERS.get(attr.type, bytes),
            )
        )
    return AttributeTable(defs, frozenset(vendors))


@functools.cache
def default_table() -> AttributeTable:
    """The table of the dictionary shipped in ``radiusd/dictionary`` (read and compiled on first use)."""
    return compile_table(Dictionary(str(DICTIONARY_PATH)))


def _size_rule(name: str, datatype: str, encrypt: int) -> tuple[int, int, int] | None:
    if name in _SIZE_OVERRIDES:
        lo, hi = _SIZE_OVERRIDES[name]
        return (lo, hi, SIZE_PLAIN)
    if encrypt == 1:
        return (16, 128, SIZE_HIDDEN)
    if encrypt == 2:
        return (18, 253, SIZE_SALTED)
    if datatype == "ipv6prefix":
        return (2, 18, SIZE_PREFIX)
    fixed = _FIXED.get(datatype)
    return None if fixed is None else (fixed, fixed, SIZE_PLAIN)


# ---------------------------------------------------------------------------------------------------
# Value packers: Python value -> wire octets (no tag, no encryption, no length limit; the codec adds
# those).  Each raises EncodeError for a value it cannot represent.


def _packer(name: str, datatype: str, names: Mapping[str, int]) -> Callable[[InValue], bytes]:
    if datatype in ("integer", "signed", "short", "byte", "integer64", "date"):
        size = _FIXED[datatype]
        signed = datatype == "signed"

        def pack_int(value: InValue) -> bytes:
            if isinstance(value, str) and value in names:
                value = names[value]
            if not isinstance(value, int) or isinstance(value, bool):
                raise EncodeError(f"{name}: expected an integer or a value name, got {value!r}")
            try:
                return value.to_bytes(size, "big", signed=signed)
            except OverflowError:
                raise EncodeError(f"{name}: {value} does not fit {datatype}") from None

        return pack_int
    packer = _PACKERS.get(datatype, _pack_octets)

    def pack(value: InValue) -> bytes:
        try:
            return packer(value)
        except (TypeError, ValueError) as exc:
            raise EncodeError(f"{name}: {exc}") from None

    return pack


def _pack_string(value: InValue) -> bytes:
    if isinstance(value, str):
        return value.encode()
    return _pack_octets(value)


def _pack_octets(value: InValue) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    raise TypeError(f"expected bytes, got {type(value).__name__}")


def _pack_ipaddr(value: InValue) -> bytes:
    if isinstance(value, ipaddress.IPv4Address):
        return value.packed
    if isinstance(value, str):
        # inet_pton takes only the dotted-quad form (inet_aton would also take "10.1" or "012.0.0.1")
        try:
            return inet_pton(AF_INET, value)
        except OSError:
            raise ValueError(f"not an IPv4 address: {value!r}") from None
    raise TypeError(f"expected an IPv4 address, got {type(value).__name__}")


def _pack_ipv6addr(value: InValue) -> bytes:
    if isinstance(value, ipaddress.IPv6Address):
        return value.packed
    if isinstance(value, str):
        return ipaddress.IPv6Address(value).packed
    raise TypeError(f"expected an IPv6 address, got {type(value).__name__}")


def _pack_ipv6prefix(value: InValue) -> bytes:
    if isinstance(value, str):
        value = ipaddress.IPv6Network(value, strict=False)
    if isinstance(value, ipaddress.IPv6Network):
        # RFC 3162 section 2.3: Reserved, Prefix-Length, Prefix.  The prefix is sent in full (16
        # octets), as FreeRADIUS 3 and pyrad do; RFC 8044 section 3.11 allows both.
        return bytes((0, value.prefixlen)) + value.network_address.packed
    raise TypeError(f"expected an IPv6 prefix, got {type(value).__name__}")


def _pack_ifid(value: InValue) -> bytes:
    if isinstance(value, bytes) and len(value) == 8:
        return value
    if isinstance(value, str):
        groups = value.split(":")
        if len(groups) == 4 and all(0 < len(g) <= 4 for g in groups):
            return b"".join(int(g, 16).to_bytes(2, "big") for g in groups)
    raise ValueError(f"not an interface id (hhhh:hhhh:hhhh:hhhh or 8 octets): {value!r}")


def _pack_ether(value: InValue) -> bytes:
    if isinstance(value, bytes) and len(value) == 6:
        return value
    if isinstance(value, str):
        groups = value.replace("-", ":").split(":")
        if len(groups) == 6 and all(0 < len(g) <= 2 for g in groups):
            return bytes(int(g, 16) for g in groups)
    raise ValueError(f"not an Ethernet address: {value!r}")


_PACKERS: dict[str, Callable[[InValue], bytes]] = {
    "string": _pack_string,
    "octets": _pack_octets,
    "ipaddr": _pack_ipaddr,
    "ipv6addr": _pack_ipv6addr,
    "ipv6prefix": _pack_ipv6prefix,
    "ifid": _pack_ifid,
    "ether": _pack_ether,
}


# ---------------------------------------------------------------------------------------------------
# Value unpackers: wire octets -> Python value.  The decoder has already enforced the size rules, so
# these cannot fail on the octets they get.


def unpack_string(raw: bytes) -> str | bytes:
    """Text as ``str``; octets that are not UTF-8 stay ``bytes`` (as pyrad does), so nothing is lost."""
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return raw


def unpack_ipv6prefix(raw: bytes) -> str:
    """``'2001:db8::/32'`` from Reserved, Prefix-Length and up to 16 prefix octets (RFC 3162 2.3).

    Bits past the prefix length are cleared, as pyrad and FreeRADIUS do. Formatted by
    ``inet_ntop`` (a tenth of the time of ``ipaddress``, on every dual-stack Accounting-Request),
    which writes the same RFC 5952 text except for IPv4-mapped and -compatible addresses: those
    go through ``ipaddress``.
    """
    length = raw[1]
    value = int.from_bytes(raw[2:].ljust(16, b"\0"), "big") >> (128 - length) << (128 - length)
    if value >> 32 in (0, 0xFFFF):
        return str(ipaddress.IPv6Network((value, length)))
    return f"{inet_ntop(AF_INET6, value.to_bytes(16, 'big'))}/{length}"


def _unpack_int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _unpack_signed(raw: bytes) -> int:
    return int.from_bytes(raw, "big", signed=True)


def _unpack_ipaddr(raw: bytes) -> str:
    return inet_ntop(AF_INET, raw)


def _unpack_ipv6addr(raw: bytes) -> str:
    return str(ipaddress.IPv6Address(raw))


def _unpack_ifid(raw: bytes) -> str:
    return ":".join(f"{int.from_bytes(raw[i : i + 2], 'big'):x}" for i in range(0, 8, 2))


def _unpack_ether(raw: bytes) -> str:
    return raw.hex(":")


_UNPACKERS: dict[str, Callable[[bytes], Value]] = {
    "string": unpack_string,
    "integer": _unpack_int,
    "short": _unpack_int,
    "byte": _unpack_int,
    "integer64": _unpack_int,
    "date": _unpack_int,
    "signed": _unpack_signed,
    "ipaddr": _unpack_ipaddr,
    "ipv6addr": _unpack_ipv6addr,
    "ipv6prefix": unpack_ipv6prefix,
    "ifid": _unpack_ifid,
    "ether": _unpack_ether,
}
