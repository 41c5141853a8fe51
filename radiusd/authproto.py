"""Password checks of the PPP authentication protocols a NAS relays in an Access-Request.

PAP (User-Password), CHAP (RFC 1994 with RFC 2865 section 2.2), MS-CHAPv2 (RFC 2759, carried in
the Microsoft VSAs of RFC 2548) and the MPPE keys sent back in MS-MPPE-Send-Key/Recv-Key (RFC 3079).
Pure functions over bytes: the codec extracts the attributes, the caller supplies the known
password (or its NT hash), and the codec salt-encrypts the keys when it encodes the Access-Accept.

MD4 and DES come from pycryptodome: OpenSSL 3 dropped both from ``hashlib``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass

from Crypto.Cipher import DES
from Crypto.Hash import MD4

# RFC 2759 section 8.7 (GenerateAuthenticatorResponse)
_AUTH_MAGIC1 = b"Magic server to client signing constant"
_AUTH_MAGIC2 = b"Pad to make it do more than one iteration"
# RFC 3079 section 3.4 (GetMasterKey, GetAsymmetricStartKey)
_KEY_MAGIC1 = b"This is the MPPE Master Key"
_KEY_MAGIC2 = b"On the client side, this is the send key; on the server side, it is the receive key."
_KEY_MAGIC3 = b"On the client side, this is the receive key; on the server side, it is the send key."
_SHS_PAD1 = bytes(40)
_SHS_PAD2 = b"\xf2" * 40


def pap_verify(password: bytes, known: str | bytes) -> bool:
    """Whether the decrypted User-Password equals the known password, in constant time."""
    if isinstance(known, str):
        known = known.encode()
    return hmac.compare_digest(password, known)


def chap_response(ident: int, password: bytes, challenge: bytes) -> bytes:
    """The CHAP response MD5(Identifier + secret + Challenge) (RFC 1994 section 4.1)."""
    return hashlib.md5(bytes((ident,)) + password + challenge).digest()  # noqa: S324 - CHAP is MD5


def chap_verify(chap_password: bytes, challenge: bytes, known: str | bytes) -> bool:
    """Check a CHAP-Password (Ident octet + 16-octet response) against the known password.

    ``challenge`` is the CHAP-Challenge attribute, or the Request Authenticator when the NAS sent
    none (RFC 2865 section 2.2); :attr:`radiusd.codec.Request.chap_challenge` gives either.
    """
    if len(chap_password) != 17:
        return False
    if isinstance(known, str):
        known = known.encode()
    return hmac.compare_digest(chap_password[1:], chap_response(chap_password[0], known, challenge))


# ---------------------------------------------------------------------------------------------------
# MS-CHAPv2, RFC 2759 section 8


def nt_password_hash(password: str) -> bytes:
    """NtPasswordHash: MD4 of the password in UTF-16LE (RFC 2759 section 8.3).

    This is what a user database may store instead of the password (FreeRADIUS NT-Password).
    """
    return bytes(MD4.new(password.encode("utf-16-le")).digest())  # noqa: S303 - RFC 2759


def hash_nt_password_hash(password_hash: bytes) -> bytes:
    """HashNtPasswordHash: MD4 of the NT hash (RFC 2759 section 8.4)."""
    return bytes(MD4.new(password_hash).digest())  # noqa: S303 - RFC 2759


def challenge_hash(peer_challenge: bytes, authenticator_challenge: bytes, user_name: bytes) -> bytes:
    """ChallengeHash: the first 8 octets of SHA1(PeerChallenge + AuthenticatorChallenge + UserName)
    (RFC 2759 section 8.2)."""
    return hashlib.sha1(peer_challenge + authenticator_challenge + user_name).digest()[:8]  # noqa: S324


def challenge_response(challenge: bytes, password_hash: bytes) -> bytes:
    """ChallengeResponse: the 8-octet challenge DES-encrypted with each 7 octets of the NT hash padded
    to 21 octets (RFC 2759 sections 8.5 and 8.6)."""
    key = password_hash + bytes(21 - len(password_hash))
    return b"".join(
        DES.new(_des_key(key[i : i + 7]), DES.MODE_ECB).encrypt(challenge)  # noqa: S304 - RFC 2759
        for i in (0, 7, 14)
    )


def generate_nt_response(
    authenticator_challenge: bytes, peer_challenge: bytes, user_name: bytes, password_hash: bytes
) -> bytes:
    """GenerateNTResponse: the 24-octet NT-Response the peer sends (RFC 2759 section 8.1)."""
    return challenge_response(challenge_hash(peer_challenge, authenticator_challenge, user_name), password_hash)


def generate_authenticator_response(
    password_hash: bytes,
    nt_response: bytes,
    peer_challenge: bytes,
    authenticator_challenge: bytes,
    user_name: bytes,
) -> bytes:
    """GenerateAuthenticatorResponse: ``b"S="`` + 40 upper-case hex digits, by which the peer
    authenticates the server (RFC 2759 section 8.7)."""
    digest = hashlib.sha1(hash_nt_password_hash(password_hash) + nt_response + _AUTH_MAGIC1).digest()  # noqa: S324
    challenge = challenge_hash(peer_challenge, authenticator_challenge, user_name)
    digest = hashlib.sha1(digest + challenge + _AUTH_MAGIC2).digest()  # noqa: S324
    return b"S=" + digest.hex().upper().encode()


@dataclass(frozen=True, slots=True)
class MsChap2Success:
    """What an Access-Accept carries after a good MS-CHAPv2 response."""

    #: Value of MS-CHAP2-Success: the response's Ident octet + ``S=<40 hex>`` (RFC 2548 2.3.3)
    success: bytes
    #: Value of MS-MPPE-Send-Key: the key for traffic from the NAS to the peer (RFC 2548 2.4.2)
    send_key: bytes
    #: Value of MS-MPPE-Recv-Key: the key for traffic from the peer to the NAS (RFC 2548 2.4.3)
    recv_key: bytes


def mschap2_verify(
    ms_chap_challenge: bytes, ms_chap2_response: bytes, user_name: bytes, password_hash: bytes
) -> MsChap2Success | None:
    """Check an MS-CHAPv2 exchange; None when the NT-Response does not match.

    ``ms_chap_challenge`` (16 octets) and ``ms_chap2_response`` (50 octets: Ident, Flags,
    Peer-Challenge, 8 reserved, NT-Response; RFC 2548 section 2.3.2) come from the Access-Request;
    ``user_name`` is the User-Name as sent (RFC 2759 section 8.2 hashes the name the peer used, so
    strip a ``DOMAIN\\`` prefix first only if the NAS does not send it to the peer);
    ``password_hash`` is :func:`nt_password_hash` of the known password.  On success, the keys are
    the server's MPPE start keys of RFC 3079 section 3.4 (128-bit).
    """
    if len(ms_chap_challenge) != 16 or len(ms_chap2_response) != 50:
        return None
    ident = ms_chap2_response[0]
    peer_challenge = ms_chap2_response[2:18]
    nt_response = ms_chap2_response[26:50]
    expected = generate_nt_response(ms_chap_challenge, peer_challenge, user_name, password_hash)
    if not hmac.compare_digest(expected, nt_response):
        return None
    success = generate_authenticator_response(password_hash, nt_response, peer_challenge, ms_chap_challenge, user_name)
    send_key, recv_key = mppe_server_keys(hash_nt_password_hash(password_hash), nt_response)
    return MsChap2Success(bytes((ident,)) + success, send_key, recv_key)


def mschap2_error(
    ident: int, *, error: int = 691, retry: bool = False, message: str = "Authentication failed"
) -> bytes:
    """Value of MS-CHAP-Error for an Access-Reject: Ident + ``E=691 R=0 C=<challenge> V=3 M=...``
    (RFC 2759 section 6; 691 is "authentication failure"), with a fresh 16-octet challenge."""
    challenge = os.urandom(16).hex().upper()
    text = f"E={error} R={int(retry)} C={challenge} V=3 M={message}"
    return bytes((ident,)) + text.encode()


# ---------------------------------------------------------------------------------------------------
# MPPE keys, RFC 3079 section 3.4


def get_master_key(password_hash_hash: bytes, nt_response: bytes) -> bytes:
    """GetMasterKey: the first 16 octets of SHA1(PasswordHashHash + NT-Response + Magic1)."""
    return hashlib.sha1(password_hash_hash + nt_response + _KEY_MAGIC1).digest()[:16]  # noqa: S324


def get_asymmetric_start_key(master_key: bytes, length: int, *, is_send: bool, is_server: bool) -> bytes:
    """GetAsymmetricStartKey: the send or receive start key of the client or the server side."""
    magic = _KEY_MAGIC3 if is_send == is_server else _KEY_MAGIC2
    return hashlib.sha1(master_key + _SHS_PAD1 + magic + _SHS_PAD2).digest()[:length]  # noqa: S324


def mppe_server_keys(password_hash_hash: bytes, nt_response: bytes) -> tuple[bytes, bytes]:
    """The server's 128-bit (send, receive) MPPE start keys, for MS-MPPE-Send-Key and -Recv-Key."""
    master = get_master_key(password_hash_hash, nt_response)
    return (
        get_asymmetric_start_key(master, 16, is_send=True, is_server=True),
        get_asymmetric_start_key(master, 16, is_send=False, is_server=True),
    )


def _des_key(key7: bytes) -> bytes:
    """Spread 56 key bits over 8 octets, 7 bits each with the (ignored) parity bit last."""
    bits = int.from_bytes(key7, "big")
    return bytes(((bits >> (49 - 7 * i)) & 0x7F) << 1 for i in range(8))
