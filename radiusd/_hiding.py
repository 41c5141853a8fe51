"""Attribute hiding with the shared secret: User-Password (RFC 2865 section 5.2) and salt encryption
(RFC 2868 section 3.5, RFC 2548 section 2.4.2), plus the MD5 every RADIUS authenticator is built on."""

from __future__ import annotations

import hashlib
import os


def md5(data: bytes) -> bytes:
    """MD5 digest.  RADIUS authenticators and hiding are defined on MD5 (RFC 2865 section 3); the
    packet's real protection is the HMAC-MD5 Message-Authenticator (RFC 3579 section 3.2)."""
    return hashlib.md5(data).digest()  # noqa: S324 - mandated by the protocol


def hide(plain: bytes, secret: bytes, vector: bytes) -> bytes:
    """RFC 2865 section 5.2: pad with NULs to 16n octets (16 to 128), then c(1) = p(1) XOR
    MD5(secret + vector) and c(i) = p(i) XOR MD5(secret + c(i-1))."""
    if len(plain) > 128:
        raise ValueError(f"hidden value of {len(plain)} octets exceeds 128")
    padded = plain + bytes(-len(plain) % 16 if plain else 16)
    out = []
    last = vector
    for i in range(0, len(padded), 16):
        last = _xor16(padded[i : i + 16], md5(secret + last))
        out.append(last)
    return b"".join(out)


def unhide(hidden: bytes, secret: bytes, vector: bytes) -> bytes:
    """Reverse :func:`hide` (the NUL padding is left for the caller to strip)."""
    out = []
    last = vector
    for i in range(0, len(hidden), 16):
        block = hidden[i : i + 16]
        out.append(_xor16(block, md5(secret + last)))
        last = block
    return b"".join(out)


def salt_hide(plain: bytes, secret: bytes, vector: bytes) -> bytes:
    """RFC 2868 section 3.5 (Tunnel-Password) and RFC 2548 section 2.4.2 (MS-MPPE-Send-Key): a random
    2-octet salt with its high bit set, then the length octet, the value and NUL padding to 16n
    octets, XORed block by block with MD5(secret + vector + salt), then MD5(secret + c(i-1));
    ``vector`` is the Request Authenticator of the request being answered."""
    if len(plain) > 239:
        raise ValueError(f"salt-encrypted value of {len(plain)} octets exceeds 239")
    salt = bytes((os.urandom(1)[0] | 0x80,)) + os.urandom(1)
    string = bytes((len(plain),)) + plain
    string += bytes(-len(string) % 16)
    out = [salt]
    last = vector + salt
    for i in range(0, len(string), 16):
        last = _xor16(string[i : i + 16], md5(secret + last))
        out.append(last)
    return b"".join(out)


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")
