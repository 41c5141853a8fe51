"""Sans-IO RADIUS codec: datagram bytes + shared secret -> typed packet, and replies/requests -> bytes.

Server side: :func:`decode_request` validates a received Access-Request, Accounting-Request,
Status-Server, CoA-Request or Disconnect-Request (the packet checks of FreeRADIUS ``rad_packet_ok``,
the BlastRADIUS settings of FreeRADIUS 3.2.5, and the authenticators) and returns a :class:`Request`
with lazy typed accessors; :func:`encode_reply` answers it.  Client side (CoA/Disconnect, the
``lastmile radius test`` command): :func:`encode_request` and :func:`decode_response`.

The only exception a decode function raises for any input bytes is :class:`CodecError`, whose
``reason`` is a short label meant for a drop counter (``DROP_REASONS`` lists them all).  Encoders raise
:class:`EncodeError` (a ``ValueError``) for values that cannot be sent.  No sockets, no clock except
the default Event-Timestamp of :func:`encode_request`, no logging.

Decoding does not go through ``pyrad.packet``: one loop over the octets splits the attributes into
raw values keyed by attribute number (``vendor << 8 | type`` for vendor attributes), checks the sizes
the dictionary prescribes, and leaves every other decoding to the accessor that asks for it.
"""

from __future__ import annotations

import hmac
import os
import struct
import time
from collections.abc import Iterable
from enum import IntEnum

from radiusd._attrdefs import (
    MESSAGE_AUTHENTICATOR,
    SIZE_HIDDEN,
    SIZE_PLAIN,
    SIZE_PREFIX,
    SIZE_SALTED,
    VSA,
    AttrDef,
    AttributeTable,
    EncodeError,
    InValue,
    Value,
    compile_table,
    default_table,
)
from radiusd._hiding import hide, md5, salt_hide
from radiusd._packet import (
    EAP_MESSAGE,
    PROXY_STATE,
    REPLY_MESSAGE,
    Packet,
    Request,
    Response,
    derive_unique_session_id,
)

__all__ = [
    "DROP_REASONS",
    "MAX_ATTRIBUTES",
    "MAX_PACKET",
    "AcctStatus",
    "AttributeTable",
    "Code",
    "CodecError",
    "EncodeError",
    "InValue",
    "Packet",
    "Request",
    "Response",
    "Value",
    "check_attribute",
    "compile_table",
    "decode_request",
    "decode_response",
    "default_table",
    "derive_unique_session_id",
    "encode_reply",
    "encode_request",
]


class Code(IntEnum):
    """RADIUS packet codes (RFC 2865 section 3, RFC 2866 section 3, RFC 5176 section 2, RFC 5997)."""

    ACCESS_REQUEST = 1
    ACCESS_ACCEPT = 2
    ACCESS_REJECT = 3
    ACCOUNTING_REQUEST = 4
    ACCOUNTING_RESPONSE = 5
    ACCESS_CHALLENGE = 11
    STATUS_SERVER = 12
    DISCONNECT_REQUEST = 40
    DISCONNECT_ACK = 41
    DISCONNECT_NAK = 42
    COA_REQUEST = 43
    COA_ACK = 44
    COA_NAK = 45


class AcctStatus(IntEnum):
    """Acct-Status-Type values a NAS sends for sessions (RFC 2866 section 5.1)."""

    START = 1
    STOP = 2
    INTERIM_UPDATE = 3
    ACCOUNTING_ON = 7
    ACCOUNTING_OFF = 8


#: RFC 2865 section 3: the maximum packet size over UDP.
MAX_PACKET = 4096
#: FreeRADIUS ``max_attributes`` default: more attributes than this in one packet are an attack.
MAX_ATTRIBUTES = 200

_ACCESS_REQUEST = 1
_ACCOUNTING_REQUEST = 4
_ACCOUNTING_RESPONSE = 5
_STATUS_SERVER = 12
_DISCONNECT_REQUEST = 40
_COA_REQUEST = 43
_REQUEST_CODES = frozenset({1, 4, 12, 40, 43})
_RESPONSE_CODES = frozenset({2, 3, 5, 11, 41, 42, 44, 45})
#: Which response codes answer which request code.  Status-Server is answered with Access-Accept on
#: the authentication port and Accounting-Response on the accounting port (RFC 5997 section 3).
_REPLY_CODES: dict[int, frozenset[int]] = {
    1: frozenset({2, 3, 11}),
    4: frozenset({5}),
    12: frozenset({2, 5}),
    40: frozenset({41, 42}),
    43: frozenset({44, 45}),
}

#: Attributes whose long values are carried in consecutive attributes: EAP-Message (RFC 3579
#: section 3.1) and Reply-Message, whose instances are shown in order (RFC 2865 section 5.18).
_SPLITTABLE = frozenset({REPLY_MESSAGE, EAP_MESSAGE})

_ZERO16 = bytes(16)
_MA_PLACEHOLDER = b"\x50\x12" + _ZERO16
_HEADER = struct.Struct(">BBH")
_VSA_HEADER = struct.Struct(">BBIBB")

# Drop reasons, one per malformed-packet class (FreeRADIUS rad_packet_ok and the reliability checks).
SHORT_PACKET = "short_packet"  # fewer than 20 octets
UNKNOWN_CODE = "unknown_code"  # a code that is not a request (decode_request) or response
BAD_LENGTH = "bad_length"  # header Length below 20
TOO_LONG = "too_long"  # header Length above 4096
TRUNCATED = "truncated"  # header Length above the octets received
ATTR_HEADER = "attr_header"  # one octet left where an attribute header needs two
ATTR_LENGTH = "attr_length"  # attribute Length 0 or 1
ATTR_OVERFLOW = "attr_overflow"  # attribute runs past the packet Length
ATTR_TYPE_ZERO = "attr_type_zero"
TOO_MANY_ATTRIBUTES = "too_many_attributes"
VSA_SHORT = "vsa_short"  # Vendor-Specific without room for a Vendor-Id and a sub-attribute
VSA_ATTR_LENGTH = "vsa_attr_length"  # vendor sub-attribute Length below 2, or a 1-octet tail
VSA_OVERFLOW = "vsa_overflow"  # vendor sub-attribute runs past its Vendor-Specific
BAD_VALUE = "bad_value"  # value of the wrong size for its type
BAD_PREFIX = "bad_prefix"  # ipv6prefix with a Prefix-Length above 128
BAD_MA_LENGTH = "bad_ma_length"  # Message-Authenticator Length other than 18
DUPLICATE_MA = "duplicate_message_authenticator"
EAP_WITHOUT_MA = "eap_without_ma"  # RFC 3579 section 3.1
MISSING_MA = "missing_message_authenticator"
PROXY_STATE_WITHOUT_MA = "proxy_state_without_ma"  # limit_proxy_state (BlastRADIUS)
BAD_MA = "bad_message_authenticator"
BAD_REQUEST_AUTH = "bad_request_authenticator"
BAD_RESPONSE_AUTH = "bad_response_authenticator"
UNEXPECTED_CODE = "unexpected_code"  # a response code that does not answer the request

#: Every ``CodecError.reason``, e.g. to create the labelled drop counters up front.
DROP_REASONS: tuple[str, ...] = (
    SHORT_PACKET,
    UNKNOWN_CODE,
    BAD_LENGTH,
    TOO_LONG,
    TRUNCATED,
    ATTR_HEADER,
    ATTR_LENGTH,
    ATTR_OVERFLOW,
    ATTR_TYPE_ZERO,
    TOO_MANY_ATTRIBUTES,
    VSA_SHORT,
    VSA_ATTR_LENGTH,
    VSA_OVERFLOW,
    BAD_VALUE,
    BAD_PREFIX,
    BAD_MA_LENGTH,
    DUPLICATE_MA,
    EAP_WITHOUT_MA,
    MISSING_MA,
    PROXY_STATE_WITHOUT_MA,
    BAD_MA,
    BAD_REQUEST_AUTH,
    BAD_RESPONSE_AUTH,
    UNEXPECTED_CODE,
)


class CodecError(Exception):
    """A received packet is malformed or not authentic and must be dropped silently.

    ``reason`` is one of :data:`DROP_REASONS`; ``detail`` says where, for a debug log line (it never
    contains secrets or attribute values).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------------------------------------------
# Decoding


def decode_request(
    data: bytes,
    secret: bytes,
    *,
    require_ma: bool = True,
    limit_proxy_state: bool = True,
    max_attributes: int = MAX_ATTRIBUTES,
    table: AttributeTable | None = None,
) -> Request:
    """Validate and decode a request received from a NAS whose shared secret is ``secret``.

    Checks, in order: the header (size, code, Length; octets past Length are padding), every
    attribute's framing and size, then authenticity:

    - Access-Request: a Message-Authenticator is always verified when present (RFC 3579 3.2).
      Without one, ``require_ma`` drops it, and ``limit_proxy_state`` drops it when it carries
      Proxy-State (FreeRADIUS 3.2.5 ``require_message_authenticator`` / ``limit_proxy_state``,
      CVE-2024-3596).  EAP-Message always needs one (RFC 3579 section 3.1).
    - Status-Server: Message-Authenticator required (RFC 5997 section 3).
    - Accounting-Request, CoA-Request, Disconnect-Request: Request Authenticator =
      MD5(Code+Identifier+Length+16 zero octets+Attributes+secret) (RFC 2866 section 3, RFC 5176
      section 3.3), and a Message-Authenticator if present.

    Returns a :class:`Request`; raises :class:`CodecError` for anything else.
    """
    if type(data) is not bytes:
        data = bytes(data)
    table = table or default_table()
    pkt, attrs, ma = _parse(data, _REQUEST_CODES, max_attributes, table)
    code = pkt[0]
    if code == _ACCESS_REQUEST:
        if ma:
            _verify_ma(pkt, ma, pkt[4:20], secret)
        elif require_ma:
            raise CodecError(MISSING_MA, "Access-Request")
        elif limit_proxy_state and PROXY_STATE in attrs:
            raise CodecError(PROXY_STATE_WITHOUT_MA)
    elif code == _STATUS_SERVER:
        if not ma:
            raise CodecError(MISSING_MA, "Status-Server")
        _verify_ma(pkt, ma, pkt[4:20], secret)
    else:
        digest = md5(pkt[:4] + _ZERO16 + pkt[20:] + secret)
        if not hmac.compare_digest(digest, pkt[4:20]):
            raise CodecError(BAD_REQUEST_AUTH, Code(code).name)
        if ma:
            _verify_ma(pkt, ma, _ZERO16, secret)
    return Request(pkt, attrs, bool(ma), secret, table)


def decode_response(
    data: bytes,
    request_authenticator: bytes,
    secret: bytes,
    *,
    request_code: int | None = None,
    require_ma: bool = True,
    max_attributes: int = MAX_ATTRIBUTES,
    table: AttributeTable | None = None,
) -> Response:
    """Validate and decode the response to a request we sent with ``request_authenticator``.

    Verifies the Response Authenticator, MD5(Code+Identifier+Length+Request Authenticator+
    Attributes+secret) (RFC 2865 section 3), and the Message-Authenticator when present (computed
    with the Request Authenticator, or with zeros in an Accounting-Response to an
    Accounting-Request, as FreeRADIUS does).  With ``require_ma`` an Access-Accept, -Reject or
    -Challenge, and any answer to a Status-Server, must carry one (BlastRADIUS).  Pass
    ``request_code`` to also check that the code answers the request (``unexpected_code``); it is
    needed for an Accounting-Response to a Status-Server.  The caller matches the Identifier.
    """
    if type(data) is not bytes:
        data = bytes(data)
    table = table or default_table()
    pkt, attrs, ma = _parse(data, _RESPONSE_CODES, max_attributes, table)
    code = pkt[0]
    if request_code is not None and code not in _REPLY_CODES.get(request_code, ()):
        raise CodecError(UNEXPECTED_CODE, f"{Code(code).name} to code {request_code}")
    digest = md5(pkt[:4] + request_authenticator + pkt[20:] + secret)
    if not hmac.compare_digest(digest, pkt[4:20]):
        raise CodecError(BAD_RESPONSE_AUTH, Code(code).name)
    if ma:
        to_status = request_code == _STATUS_SERVER
        vector = _ZERO16 if code == _ACCOUNTING_RESPONSE and not to_status else request_authenticator
        _verify_ma(pkt, ma, vector, secret)
    elif require_ma and (code in (2, 3, 11) or request_code == _STATUS_SERVER):
        raise CodecError(MISSING_MA, Code(code).name)
    return Response(pkt, attrs, bool(ma), secret, table)


def _parse(
    data: bytes, codes: frozenset[int], max_attributes: int, table: AttributeTable
) -> tuple[bytes, dict[int, list[bytes]], int]:
    """Check the header and split the attributes.

    Returns the packet without padding, the raw values by key, and the offset of the
    Message-Authenticator value (0 when absent).
    """
    received = len(data)
    if received < 20:
        raise CodecError(SHORT_PACKET, f"{received} octets")
    code = data[0]
    if code not in codes:
        raise CodecError(UNKNOWN_CODE, str(code))
    length = data[2] << 8 | data[3]
    if length < 20:
        raise CodecError(BAD_LENGTH, str(length))
    if length > MAX_PACKET:
        raise CodecError(TOO_LONG, str(length))
    if length > received:
        raise CodecError(TRUNCATED, f"Length {length}, received {received}")
    if length < received:
        data = data[:length]  # RFC 2865 section 3: octets past Length are padding
    fixed = table.fixed
    attrs: dict[int, list[bytes]] = {}
    get = attrs.get
    ma = 0
    count = 0
    pos = 20
    while pos < length:
        if pos + 2 > length:
            raise CodecError(ATTR_HEADER, f"offset {pos}")
        attr_type = data[pos]
        end = pos + data[pos + 1]
        if end < pos + 2:
            raise CodecError(ATTR_LENGTH, f"type {attr_type} at offset {pos}")
        if end > length:
            raise CodecError(ATTR_OVERFLOW, f"type {attr_type} at offset {pos}")
        count += 1
        if count > max_attributes:
            raise CodecError(TOO_MANY_ATTRIBUTES, f"more than {max_attributes}")
        size = fixed[attr_type]
        if size and size != end - pos - 2:
            # not a plain fixed size: type 0, VSA, Message-Authenticator, hidden, prefix, or wrong
            if attr_type == VSA:
                _split_vsa(data, pos + 2, end, attrs, table)
                pos = end
                continue
            if attr_type == MESSAGE_AUTHENTICATOR:
                if end - pos != 18:
                    raise CodecError(BAD_MA_LENGTH, str(end - pos))
                if ma:
                    raise CodecError(DUPLICATE_MA)
                ma = pos + 2
            elif attr_type == 0:
                raise CodecError(ATTR_TYPE_ZERO, f"offset {pos}")
            else:
                _check_size(data, pos + 2, end, attr_type, table)
        value = data[pos + 2 : end]
        values = get(attr_type)
        if values is None:
            attrs[attr_type] = [value]
        else:
            values.append(value)
        pos = end
    if not ma and EAP_MESSAGE in attrs:
        raise CodecError(EAP_WITHOUT_MA)
    return data, attrs, ma


def _split_vsa(data: bytes, start: int, end: int, attrs: dict[int, list[bytes]], table: AttributeTable) -> None:
    """Split a Vendor-Specific value into vendor sub-attributes (RFC 2865 section 5.26 format).

    Vendors in the dictionary must use that format; the VSA of an unknown vendor that does not
    parse is kept whole under Vendor-Specific, as FreeRADIUS and pyrad do.
    """
    if end - start < 5:
        raise CodecError(VSA_SHORT, f"offset {start - 2}")
    vendor = int.from_bytes(data[start : start + 4], "big")
    pos = start + 4
    error = ""
    while pos < end:
        if pos + 2 > end or data[pos + 1] < 2:
            error = VSA_ATTR_LENGTH
            break
        if pos + data[pos + 1] > end:
            error = VSA_OVERFLOW
            break
        pos += data[pos + 1]
    if error or vendor == 0:
        if vendor in table.vendors:
            raise CodecError(error, f"vendor {vendor} at offset {start - 2}")
        values = attrs.setdefault(VSA, [])
        values.append(data[start:end])
        return
    sizes = table.sizes
    pos = start + 4
    while pos < end:
        sub_end = pos + data[pos + 1]
        key = vendor << 8 | data[pos]
        rule = sizes.get(key)
        if rule is not None and not (rule[2] == SIZE_PLAIN and rule[0] <= sub_end - pos - 2 <= rule[1]):
            _check_size(data, pos + 2, sub_end, key, table)
        value = data[pos + 2 : sub_end]
        found = attrs.get(key)
        if found is None:
            attrs[key] = [value]
        else:
            found.append(value)
        pos = sub_end


def _check_size(data: bytes, start: int, end: int, key: int, table: AttributeTable) -> None:
    """The slow path of the size check: special kinds, and the failures."""
    size = end - start
    low, high, kind = table.sizes[key]
    if low <= size <= high:
        if kind == SIZE_PLAIN:
            return
        if kind == SIZE_HIDDEN and size % 16 == 0:
            return
        # RFC 2868 section 3.5: salt + 16n octets, after the tag of a tagged attribute
        if kind == SIZE_SALTED and (size % 16 == 2 or (size % 16 == 3 and table.by_key[key].has_tag)):
            return
        if kind == SIZE_PREFIX:
            if data[start + 1] <= 128:
                return
            raise CodecError(BAD_PREFIX, f"{table.name_of(key)} prefix length {data[start + 1]}")
    raise CodecError(BAD_VALUE, f"{table.name_of(key)} of {size} octets")


def _verify_ma(pkt: bytes, offset: int, vector: bytes, secret: bytes) -> None:
    """Check the Message-Authenticator at ``offset``: HMAC-MD5 keyed with the secret over the packet
    with ``vector`` as authenticator and the Message-Authenticator zeroed (RFC 3579 section 3.2)."""
    message = pkt[:4] + vector + pkt[20:offset] + _ZERO16 + pkt[offset + 16 :]
    if not hmac.compare_digest(hmac.digest(secret, message, "md5"), pkt[offset : offset + 16]):
        raise CodecError(BAD_MA)


# ---------------------------------------------------------------------------------------------------
# Encoding


def encode_reply(request: Request, code: int, attributes: Iterable[tuple[str, InValue]] = ()) -> bytes:
    """Encode the reply ``code`` to ``request`` with ``attributes``, signed with the request's secret.

    ``attributes`` are ``(name, value)`` pairs in the order to send, e.g.
    ``("Framed-IP-Address", "100.64.0.5")``, ``("Session-Timeout", 3600)``,
    ``("Service-Type", "Framed-User")`` (a VALUE name), ``("Mikrotik-Rate-Limit", "10M/50M")``,
    ``("Framed-IPv6-Prefix", "2001:db8:1::/64")``, ``("MS-MPPE-Send-Key", key_bytes)`` (salt-encrypted
    here), ``("Tunnel-Private-Group-Id:1", "100")`` (a tag after the name).  Reply-Message and
    EAP-Message values longer than 253 octets are split over several attributes.

    The reply starts with Message-Authenticator when it answers an Access-Request or a Status-Server
    (BlastRADIUS; RFC 5997 section 3) or a request that carried one, then the request's Proxy-State
    attributes in order (RFC 2865 section 5.33), then ``attributes``; the Response Authenticator is
    MD5(Code+Identifier+Length+Request Authenticator+Attributes+secret) (RFC 2865 section 3).

    Raises :class:`EncodeError` for a code that does not answer the request, an unknown attribute,
    a value of the wrong type or size, or a packet over 4096 octets.
    """
    request_code = request.code
    if code not in _REPLY_CODES[request_code]:
        raise EncodeError(f"code {code} does not answer a request of code {request_code}")
    secret = request._secret
    vector = request.authenticator
    with_ma = request_code in (_ACCESS_REQUEST, _STATUS_SERVER) or request.has_message_authenticator
    parts = [_MA_PLACEHOLDER] if with_ma else []
    for state in request._attrs.get(PROXY_STATE, ()):
        parts.append(bytes((PROXY_STATE, len(state) + 2)) + state)
    _encode_attributes(attributes, request._table, secret, vector, parts)
    body = b"".join(parts)
    head = _header(code, request.identifier, body)
    if with_ma:
        # RFC 3579 section 3.2: computed with the Request Authenticator; FreeRADIUS (rad_sign) uses
        # zeros in an Accounting-Response to an Accounting-Request, whose authenticator is a hash.
        ma_vector = _ZERO16 if request_code == _ACCOUNTING_REQUEST else vector
        body = b"\x50\x12" + hmac.digest(secret, head + ma_vector + body, "md5") + body[18:]
    return head + md5(head + vector + body + secret) + body


def encode_request(
    code: int,
    identifier: int,
    attributes: Iterable[tuple[str, InValue]],
    secret: bytes,
    *,
    authenticator: bytes | None = None,
    event_timestamp: int | None = None,
    table: AttributeTable | None = None,
) -> bytes:
    """Encode a request to send to a RADIUS server or a NAS; its Request Authenticator is ``[4:20]``.

    - Access-Request, Status-Server: a random Request Authenticator (or ``authenticator``), a
      ``("User-Password", "plain text")`` hidden per RFC 2865 section 5.2, and a
      Message-Authenticator first.
    - Accounting-Request: Request Authenticator = MD5 over the packet and the secret (RFC 2866 3).
    - CoA-Request, Disconnect-Request (RFC 5176 section 3.3): Event-Timestamp (``event_timestamp``,
      default now) unless one is in ``attributes``, a Message-Authenticator computed with a zero
      authenticator, and the hashed Request Authenticator.  Retransmit the same bytes, so the
      Identifier and Event-Timestamp stay the same (RFC 5176 section 3.4).

    Raises :class:`EncodeError` like :func:`encode_reply`.
    """
    if code not in _REQUEST_CODES:
        raise EncodeError(f"code {code} is not a request")
    if not 0 <= identifier <= 255:
        raise EncodeError(f"identifier {identifier} out of range")
    items = list(attributes)
    if code in (_COA_REQUEST, _DISCONNECT_REQUEST) and all(n != "Event-Timestamp" for n, _ in items):
        items.append(("Event-Timestamp", int(time.time()) if event_timestamp is None else event_timestamp))
    random_vector = code in (_ACCESS_REQUEST, _STATUS_SERVER)
    if random_vector:
        # RFC 2865 section 3: unpredictable and unique over the lifetime of the secret
        vector = authenticator if authenticator is not None else os.urandom(16)
        if len(vector) != 16:
            raise EncodeError("authenticator must be 16 octets")
    else:
        vector = _ZERO16  # hashed over the packet below; attributes are hidden with zeros, as in FreeRADIUS
    with_ma = code != _ACCOUNTING_REQUEST
    parts = [_MA_PLACEHOLDER] if with_ma else []
    _encode_attributes(items, table or default_table(), secret, vector, parts)
    body = b"".join(parts)
    head = _header(code, identifier, body)
    if with_ma:
        body = b"\x50\x12" + hmac.digest(secret, head + vector + body, "md5") + body[18:]
    if not random_vector:
        vector = md5(head + _ZERO16 + body + secret)
    return head + vector + body


_INTEGER_TYPES = frozenset({"integer", "signed", "short", "byte", "integer64", "date"})


def check_attribute(name: str, value: object, table: AttributeTable | None = None) -> InValue:
    """``value`` as the encoders take it for the attribute ``name``, from text and JSON (a tariff's
    reply attributes, a command line): integers also as decimal text (``"600"``) or a VALUE
    name, text also as a number, octets also as ``0x`` hex.  Raises :class:`EncodeError` for a
    name the dictionary lacks, or a value of the wrong type or size.
    """
    table = table or default_table()
    d = table.by_name.get(name)
    if d is None:
        d, _ = _tagged(name, table)
    if isinstance(value, bool) or not isinstance(value, str | int | bytes):
        raise EncodeError(f"{name}: {value!r} is neither text nor an integer")
    checked: InValue = value
    if isinstance(value, str):
        if d.datatype in _INTEGER_TYPES and value not in d.names:
            try:
                checked = int(value, 10)
            except ValueError:
                raise EncodeError(f"{name}: expected an integer or a value name, got {value!r}") from None
        elif d.datatype == "octets" and value.startswith("0x"):
            try:
                checked = bytes.fromhex(value[2:])
            except ValueError:
                raise EncodeError(f"{name}: {value!r} is not hexadecimal") from None
    elif isinstance(value, int) and d.datatype == "string":
        checked = str(value)
    _encode_attributes([(name, checked)], table, b"check", _ZERO16, [])  # every size and type rule
    return checked


def _header(code: int, identifier: int, body: bytes) -> bytes:
    length = 20 + len(body)
    if length > MAX_PACKET:
        raise EncodeError(f"packet of {length} octets exceeds {MAX_PACKET}")
    return _HEADER.pack(code, identifier, length)


def _encode_attributes(
    items: Iterable[tuple[str, InValue]],
    table: AttributeTable,
    secret: bytes,
    vector: bytes,
    out: list[bytes],
) -> None:
    by_name = table.by_name
    for name, value in items:
        d = by_name.get(name)
        tag = -1
        if d is None:
            d, tag = _tagged(name, table)
        raw = d.pack(value)
        if d.has_tag or d.encrypt:
            raw = _tag_and_hide(d, raw, tag, secret, vector)
        size = len(raw)
        if not d.vendor:
            if size <= 253:
                out.append(bytes((d.type, size + 2)) + raw)
            elif d.key in _SPLITTABLE:
                out.extend(bytes((d.type, len(c) + 2)) + c for c in _chunks(raw, d.datatype == "string"))
            else:
                raise EncodeError(f"{name}: {size} octets do not fit one attribute (253)")
        elif size <= 247:
            out.append(_VSA_HEADER.pack(VSA, size + 8, d.vendor, d.type, size + 2) + raw)
        else:
            raise EncodeError(f"{name}: {size} octets do not fit one vendor attribute (247)")


def _chunks(raw: bytes, text: bool) -> list[bytes]:
    """Cut a long value into attribute-sized pieces; text is cut between UTF-8 characters, so that
    each Reply-Message is displayable on its own."""
    out = []
    start = 0
    while start < len(raw):
        end = min(start + 253, len(raw))
        while text and end < len(raw) and raw[end] & 0xC0 == 0x80:
            end -= 1  # never split inside a character (continuation octets are 10xxxxxx)
        out.append(raw[start:end])
        start = end
    return out


def _tagged(name: str, table: AttributeTable) -> tuple[AttrDef, int]:
    """Resolve ``Name:tag`` (RFC 2868 section 3: tags 0 to 31)."""
    base, _, tag = name.partition(":")
    d = table.by_name.get(base)
    if d is None or not tag:
        raise EncodeError(f"unknown attribute {name!r}")
    if not d.has_tag or not tag.isdigit() or int(tag) > 0x1F:
        raise EncodeError(f"{name!r}: {base} takes no tag or the tag is not 0-31")
    return d, int(tag)


def _tag_and_hide(d: AttrDef, raw: bytes, tag: int, secret: bytes, vector: bytes) -> bytes:
    try:
        if d.encrypt == 1:
            raw = hide(raw, secret, vector)
        elif d.encrypt == 2:
            raw = salt_hide(raw, secret, vector)
    except ValueError as exc:
        raise EncodeError(f"{d.name}: {exc}") from None
    if not d.has_tag:
        return raw
    if d.datatype == "integer":
        # RFC 2868 section 3.1: the tag takes the high octet of the value
        if raw[0]:
            raise EncodeError(f"{d.name}: value does not fit 24 bits")
        return bytes((max(tag, 0),)) + raw[1:]
    if tag >= 0 or d.encrypt or (raw and raw[0] <= 0x1F):
        # Tunnel-Password always carries its tag (section 3.5); other text gets tag 0 when its
        # first octet would be read as one (section 3.3), as pyrad does.
        return bytes((max(tag, 0),)) + raw
    return raw
