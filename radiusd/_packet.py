"""Decoded RADIUS packets: raw attribute values by key, with lazy typed accessors.

Built by :mod:`radiusd.codec` after validation; re-exported there.  Attribute keys are the attribute
type for standard attributes and ``vendor << 8 | type`` for vendor attributes.
"""

from __future__ import annotations

import ipaddress

from radiusd._attrdefs import AttrDef, AttributeTable, Value, unpack_ipv6prefix
from radiusd._hiding import md5, unhide

# Attribute keys read by the accessors (and by the codec).
USER_NAME = 1
USER_PASSWORD = 2
CHAP_PASSWORD = 3
NAS_IP_ADDRESS = 4
NAS_PORT = 5
SERVICE_TYPE = 6
FRAMED_IP_ADDRESS = 8
REPLY_MESSAGE = 18
STATE = 24
CLASS = 25
CALLED_STATION_ID = 30
CALLING_STATION_ID = 31
NAS_IDENTIFIER = 32
PROXY_STATE = 33
ACCT_STATUS_TYPE = 40
ACCT_DELAY_TIME = 41
ACCT_INPUT_OCTETS = 42
ACCT_OUTPUT_OCTETS = 43
ACCT_SESSION_ID = 44
ACCT_SESSION_TIME = 46
ACCT_INPUT_PACKETS = 47
ACCT_OUTPUT_PACKETS = 48
ACCT_TERMINATE_CAUSE = 49
ACCT_INPUT_GIGAWORDS = 52
ACCT_OUTPUT_GIGAWORDS = 53
EVENT_TIMESTAMP = 55
CHAP_CHALLENGE = 60
NAS_PORT_TYPE = 61
EAP_MESSAGE = 79
NAS_PORT_ID = 87
NAS_IPV6_ADDRESS = 95
FRAMED_IPV6_PREFIX = 97
ERROR_CAUSE = 101
DELEGATED_IPV6_PREFIX = 123
LASTMILE_TEST_REQUEST = 224  # dictionary.lastmile
MS_CHAP_CHALLENGE = 311 << 8 | 11
MS_CHAP2_RESPONSE = 311 << 8 | 25


class Packet:
    """A decoded, validated RADIUS packet with lazy typed accessors.

    Attribute accessors return ``None`` when the attribute is absent and the first instance when it
    is repeated.  Text is returned as ``str`` (octets that are not UTF-8 become U+FFFD), addresses as
    ``str`` (``'192.0.2.1'``, ``'2001:db8::1'``, prefixes ``'2001:db8::/56'``), numbers as ``int``.
    Sizes were checked by the decoder, so no accessor can fail.
    """

    __slots__ = (
        "_attrs",
        "_secret",
        "_table",
        "authenticator",
        "code",
        "has_message_authenticator",
        "identifier",
        "raw",
    )

    def __init__(
        self, raw: bytes, attrs: dict[int, list[bytes]], has_ma: bool, secret: bytes, table: AttributeTable
    ) -> None:
        #: The packet octets up to its Length field (padding removed).
        self.raw = raw
        self.code: int = raw[0]
        self.identifier: int = raw[1]
        #: The Request or Response Authenticator field.
        self.authenticator = raw[4:20]
        #: Whether the packet carried a (verified) Message-Authenticator.
        self.has_message_authenticator = has_ma
        self._attrs = attrs
        self._secret = secret
        self._table = table

    def __repr__(self) -> str:
        return f"<{type(self).__name__} code={self.code} id={self.identifier} user={self.user_name!r}>"

    # -- generic access ------------------------------------------------------------------------------

    def get(self, name: str) -> bytes | None:
        """Raw value of the first ``name`` attribute (``KeyError`` if the dictionary lacks ``name``)."""
        values = self._attrs.get(self._table.by_name[name].key)
        return None if values is None else values[0]

    def get_all(self, name: str) -> list[bytes]:
        """Raw values of every ``name`` attribute, in packet order."""
        return list(self._attrs.get(self._table.by_name[name].key, ()))

    def values(self, name: str) -> list[Value]:
        """Decoded values of every ``name`` attribute (as in :meth:`attributes`)."""
        d = self._table.by_name[name]
        return [decode_value(d, raw) for raw in self._attrs.get(d.key, ())]

    def attributes(self) -> dict[str, list[Value]]:
        """Every attribute decoded by name, in order of first appearance (the slow path: logs, tests).

        Values as pyrad decodes them: integers with a dictionary VALUE name come back as that name,
        tags (RFC 2868) are dropped, text that is not UTF-8 and unknown attributes (``Attr-N``,
        ``Vendor-V-Attr-N``) stay ``bytes``.  Hidden and salt-encrypted attributes (User-Password,
        Tunnel-Password, MS-MPPE-*-Key) stay encrypted, so this is safe to log.
        """
        table = self._table
        out: dict[str, list[Value]] = {}
        for key, raws in self._attrs.items():
            d = table.by_key.get(key)
            if d is None:
                out[table.name_of(key)] = list(raws)
            else:
                out[d.name] = [decode_value(d, raw) for raw in raws]
        return out

    # -- typed accessors for the attributes the daemon reads on every packet -------------------------

    def _first(self, key: int) -> bytes | None:
        values = self._attrs.get(key)
        return None if values is None else values[0]

    def _text(self, key: int) -> str | None:
        values = self._attrs.get(key)
        return None if values is None else values[0].decode("utf-8", "replace")

    def _int(self, key: int) -> int | None:
        values = self._attrs.get(key)
        return None if values is None else int.from_bytes(values[0], "big")

    def _ipv4(self, key: int) -> str | None:
        values = self._attrs.get(key)
        return None if values is None else "{}.{}.{}.{}".format(*values[0])

    def _prefix(self, key: int) -> str | None:
        values = self._attrs.get(key)
        return None if values is None else unpack_ipv6prefix(values[0])

    @property
    def user_name(self) -> str | None:
        """User-Name (RFC 2865 section 5.1)."""
        return self._text(USER_NAME)

    @property
    def calling_station_id(self) -> str | None:
        """Calling-Station-Id: the subscriber's MAC address or number (RFC 2865 section 5.31)."""
        return self._text(CALLING_STATION_ID)

    @property
    def called_station_id(self) -> str | None:
        """Called-Station-Id: MikroTik sends the PPPoE service name or the hotspot name."""
        return self._text(CALLED_STATION_ID)

    @property
    def nas_identifier(self) -> str | None:
        """NAS-Identifier (RFC 2865 section 5.32)."""
        return self._text(NAS_IDENTIFIER)

    @property
    def nas_ip_address(self) -> str | None:
        """NAS-IP-Address, dotted quad."""
        return self._ipv4(NAS_IP_ADDRESS)

    @property
    def nas_ipv6_address(self) -> str | None:
        """NAS-IPv6-Address (RFC 3162 section 2.1), compressed form."""
        raw = self._first(NAS_IPV6_ADDRESS)
        return None if raw is None else str(ipaddress.IPv6Address(raw))

    @property
    def nas_port(self) -> int | None:
        """NAS-Port (RFC 2865 section 5.5)."""
        return self._int(NAS_PORT)

    @property
    def nas_port_id(self) -> str | None:
        """NAS-Port-Id (RFC 2869 section 5.17): the interface, e.g. ``ether1`` or a PPPoE interface."""
        return self._text(NAS_PORT_ID)

    @property
    def nas_port_type(self) -> int | None:
        """NAS-Port-Type number (15 Ethernet, 19 Wireless-802.11, ...)."""
        return self._int(NAS_PORT_TYPE)

    @property
    def service_type(self) -> int | None:
        """Service-Type number (2 Framed-User, 10 Call-Check for MAC authentication, ...)."""
        return self._int(SERVICE_TYPE)

    @property
    def is_test_request(self) -> bool:
        """Whether the request carries Lastmile-Test-Request (``lastmile radius test``)."""
        return LASTMILE_TEST_REQUEST in self._attrs

    @property
    def framed_ip_address(self) -> str | None:
        """Framed-IP-Address, dotted quad."""
        return self._ipv4(FRAMED_IP_ADDRESS)

    @property
    def framed_ipv6_prefix(self) -> str | None:
        """Framed-IPv6-Prefix (RFC 3162 section 2.3), e.g. ``'2001:db8:1::/64'``."""
        return self._prefix(FRAMED_IPV6_PREFIX)

    @property
    def delegated_ipv6_prefix(self) -> str | None:
        """Delegated-IPv6-Prefix (RFC 4818), e.g. ``'2001:db8:100::/56'``."""
        return self._prefix(DELEGATED_IPV6_PREFIX)

    @property
    def acct_status_type(self) -> int | None:
        """Acct-Status-Type number; compare with :class:`AcctStatus`."""
        return self._int(ACCT_STATUS_TYPE)

    @property
    def acct_session_id(self) -> str | None:
        """Acct-Session-Id (RFC 2866 section 5.5)."""
        return self._text(ACCT_SESSION_ID)

    @property
    def acct_input_octets(self) -> int | None:
        """Acct-Input-Octets: the low 32 bits of the octets received from the subscriber."""
        return self._int(ACCT_INPUT_OCTETS)

    @property
    def acct_output_octets(self) -> int | None:
        """Acct-Output-Octets: the low 32 bits of the octets sent to the subscriber."""
        return self._int(ACCT_OUTPUT_OCTETS)

    @property
    def acct_input_gigawords(self) -> int | None:
        """Acct-Input-Gigawords (RFC 2869 section 5.1): how often Acct-Input-Octets wrapped."""
        return self._int(ACCT_INPUT_GIGAWORDS)

    @property
    def acct_output_gigawords(self) -> int | None:
        """Acct-Output-Gigawords (RFC 2869 section 5.2)."""
        return self._int(ACCT_OUTPUT_GIGAWORDS)

    @property
    def acct_input_bytes(self) -> int | None:
        """Full 64-bit input count, ``gigawords << 32 | octets``; None without Acct-Input-Octets."""
        octets = self._int(ACCT_INPUT_OCTETS)
        return None if octets is None else (self._int(ACCT_INPUT_GIGAWORDS) or 0) << 32 | octets

    @property
    def acct_output_bytes(self) -> int | None:
        """Full 64-bit output count, ``gigawords << 32 | octets``; None without Acct-Output-Octets."""
        octets = self._int(ACCT_OUTPUT_OCTETS)
        return None if octets is None else (self._int(ACCT_OUTPUT_GIGAWORDS) or 0) << 32 | octets

    @property
    def acct_input_packets(self) -> int | None:
        """Acct-Input-Packets (RFC 2866 section 5.8)."""
        return self._int(ACCT_INPUT_PACKETS)

    @property
    def acct_output_packets(self) -> int | None:
        """Acct-Output-Packets (RFC 2866 section 5.9)."""
        return self._int(ACCT_OUTPUT_PACKETS)

    @property
    def acct_session_time(self) -> int | None:
        """Acct-Session-Time in seconds."""
        return self._int(ACCT_SESSION_TIME)

    @property
    def acct_delay_time(self) -> int | None:
        """Acct-Delay-Time in seconds: the event happened this long before the packet was sent."""
        return self._int(ACCT_DELAY_TIME)

    @property
    def acct_terminate_cause(self) -> int | None:
        """Acct-Terminate-Cause number (1 User-Request, 2 Lost-Carrier, 4 Idle-Timeout, ...)."""
        return self._int(ACCT_TERMINATE_CAUSE)

    @property
    def event_timestamp(self) -> int | None:
        """Event-Timestamp, UNIX seconds (RFC 2869 section 5.3)."""
        return self._int(EVENT_TIMESTAMP)

    @property
    def error_cause(self) -> int | None:
        """Error-Cause of a CoA-NAK or Disconnect-NAK (RFC 5176 section 3.5)."""
        return self._int(ERROR_CAUSE)

    @property
    def reply_message(self) -> str | None:
        """Reply-Message; several instances are concatenated in order (RFC 2865 section 5.18), which
        undoes the split of a long message over several attributes."""
        values = self._attrs.get(REPLY_MESSAGE)
        return None if values is None else b"".join(values).decode("utf-8", "replace")

    @property
    def state(self) -> bytes | None:
        """State (RFC 2865 section 5.24), echoed from an Access-Challenge."""
        return self._first(STATE)

    @property
    def classes(self) -> list[bytes]:
        """Every Class attribute, in order (RFC 2865 section 5.25)."""
        return list(self._attrs.get(CLASS, ()))

    @property
    def proxy_state(self) -> list[bytes]:
        """Every Proxy-State attribute, in order; replies echo them (RFC 2865 section 5.33)."""
        return list(self._attrs.get(PROXY_STATE, ()))


class Request(Packet):
    """A validated request from a NAS: Access-Request, Accounting-Request, Status-Server, CoA-Request
    or Disconnect-Request (see ``code``)."""

    __slots__ = ()

    @property
    def user_password(self) -> bytes | None:
        """User-Password in plain text, trailing NUL padding removed (RFC 2865 section 5.2).

        ``bytes``, for a constant-time comparison (:func:`radiusd.authproto.pap_verify`).  A wrong
        shared secret gives garbage here, not an error: RFC 2865 has no way to tell.
        """
        hidden = self._first(USER_PASSWORD)
        return None if hidden is None else unhide(hidden, self._secret, self.authenticator).rstrip(b"\0")

    @property
    def chap_password(self) -> bytes | None:
        """CHAP-Password: the CHAP Ident octet and the 16-octet response (RFC 2865 section 5.3)."""
        return self._first(CHAP_PASSWORD)

    @property
    def chap_challenge(self) -> bytes:
        """CHAP-Challenge, or the Request Authenticator when it is absent (RFC 2865 section 5.40)."""
        return self._first(CHAP_CHALLENGE) or self.authenticator

    @property
    def ms_chap_challenge(self) -> bytes | None:
        """MS-CHAP-Challenge (vendor 311): 16 octets for MS-CHAPv2 (RFC 2548 section 2.3.2)."""
        return self._first(MS_CHAP_CHALLENGE)

    @property
    def ms_chap2_response(self) -> bytes | None:
        """MS-CHAP2-Response (vendor 311), 50 octets: Ident, Flags, Peer-Challenge, Reserved,
        NT-Response (RFC 2548 section 2.3.2); see :func:`radiusd.authproto.mschap2_verify`."""
        return self._first(MS_CHAP2_RESPONSE)

    @property
    def acct_unique_session_id(self) -> str | None:
        """Stable session key for accounting idempotency: :func:`derive_unique_session_id` over
        this request's fields (no NAS sends one; RFC 2866 has no such attribute).  None without
        Acct-Session-Id (Accounting-On/Off)."""
        session_id = self.acct_session_id
        if session_id is None:
            return None
        return derive_unique_session_id(
            acct_session_id=session_id,
            user_name=self.user_name or "",
            nas_ip_address=self.nas_ip_address or "",
            nas_ipv6_address=self.nas_ipv6_address or "",
            nas_identifier=self.nas_identifier or "",
            nas_port_id=self.nas_port_id or "",
            nas_port=self.nas_port,
            class_=self._first(CLASS),
        )


class Response(Packet):
    """A validated response from a NAS or server to a request we sent (:func:`decode_response`)."""

    __slots__ = ()


def decode_value(d: AttrDef, raw: bytes) -> Value:
    if d.encrypt:
        return raw
    if d.has_tag and raw:
        if d.datatype == "integer":
            raw = b"\0" + raw[1:]  # RFC 2868 section 3.1: the tag replaces the high octet
        elif raw[0] <= 0x1F:
            raw = raw[1:]  # RFC 2868 section 3.3: an optional leading tag octet
    value = d.unpack(raw)
    if d.numbers and isinstance(value, int):
        return d.numbers.get(value, value)
    return value


def derive_unique_session_id(
    *,
    acct_session_id: str,
    user_name: str = "",
    nas_ip_address: str = "",
    nas_ipv6_address: str = "",
    nas_identifier: str = "",
    nas_port_id: str = "",
    nas_port: int | None = None,
    class_: bytes | None = None,
) -> str:
    """Acct-Unique-Session-Id as FreeRADIUS ``policy.d/accounting`` (``acct_unique``) computes it.

    When Class is FreeRADIUS's ``ai:<32 hex>`` (set at authentication), MD5 hex of
    ``"<hex>,<Acct-Session-Id>"``; otherwise MD5 hex of ``"User-Name,Acct-Session-Id,NAS-IPv6-Address
    or NAS-IP-Address,NAS-Identifier,NAS-Port-Id,NAS-Port"`` (absent values empty).  Every
    retransmission and Interim-Update of a session gives the same id, whatever its
    Acct-Delay-Time, Identifier or authenticator (RFC 2866 section 4.1).
    """
    if class_ is not None and class_[:3] == b"ai:" and len(class_) >= 35:
        hex_id = class_[3:35]
        if all(c in b"0123456789abcdefABCDEF" for c in hex_id):
            return md5(hex_id + b"," + acct_session_id.encode()).hex()
    port = "" if nas_port is None else str(nas_port)
    key = ",".join((user_name, acct_session_id, nas_ipv6_address or nas_ip_address, nas_identifier, nas_port_id, port))
    return md5(key.encode()).hex()
