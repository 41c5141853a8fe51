"""radiusd.authproto against the published vectors: RFC 2759 section 9.2, RFC 3079 section 3.5.3."""

from __future__ import annotations

import hashlib
import re

from radiusd import authproto

# RFC 2759 section 9.2
USER = b"User"
PASSWORD = "clientPass"
AUTH_CHALLENGE = bytes.fromhex("5B5D7C7D7B3F2F3E3C2C602132262628")
PEER_CHALLENGE = bytes.fromhex("21402324255E262A28295F2B3A337C7E")
CHALLENGE = bytes.fromhex("D02E4386BCE91226")
PASSWORD_HASH = bytes.fromhex("44EBBA8D5312B8D611474411F56989AE")
NT_RESPONSE = bytes.fromhex("82309ECD8D708B5EA08FAA3981CD83544233114A3D85D6DF")
PASSWORD_HASH_HASH = bytes.fromhex("41C00C584BD2D91C4017A2A12FA59F3F")
AUTHENTICATOR_RESPONSE = b"S=407A5589115FD0D6209F510FE9C04566932CDA56"
# RFC 3079 section 3.5.3 (128-bit keys, same credentials)
MASTER_KEY = bytes.fromhex("FDECE3717A8C838CB388E527AE3CDD31")
SEND_START_KEY_128 = bytes.fromhex("8B7CDC149B993A1BA118CB153F56DCCB")
SEND_SESSION_KEY_128 = bytes.fromhex("405CB2247A7956E6E211007AE27B22D4")


def test_rfc2759_password_hashes() -> None:
    assert authproto.nt_password_hash(PASSWORD) == PASSWORD_HASH
    assert authproto.hash_nt_password_hash(PASSWORD_HASH) == PASSWORD_HASH_HASH


def test_rfc2759_challenge_and_nt_response() -> None:
    assert authproto.challenge_hash(PEER_CHALLENGE, AUTH_CHALLENGE, USER) == CHALLENGE
    assert authproto.challenge_response(CHALLENGE, PASSWORD_HASH) == NT_RESPONSE
    assert authproto.generate_nt_response(AUTH_CHALLENGE, PEER_CHALLENGE, USER, PASSWORD_HASH) == NT_RESPONSE


def test_rfc2759_authenticator_response() -> None:
    response = authproto.generate_authenticator_response(
        PASSWORD_HASH, NT_RESPONSE, PEER_CHALLENGE, AUTH_CHALLENGE, USER
    )
    assert response == AUTHENTICATOR_RESPONSE


def test_rfc3079_master_and_start_keys() -> None:
    assert authproto.get_master_key(PASSWORD_HASH_HASH, NT_RESPONSE) == MASTER_KEY
    send = authproto.get_asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=True)
    assert send == SEND_START_KEY_128
    # the peer's receive key is the server's send key, and the other way round
    assert authproto.get_asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=False) == send
    recv = authproto.get_asymmetric_start_key(MASTER_KEY, 16, is_send=False, is_server=True)
    assert recv == authproto.get_asymmetric_start_key(MASTER_KEY, 16, is_send=True, is_server=False)
    assert recv != send
    assert authproto.mppe_server_keys(PASSWORD_HASH_HASH, NT_RESPONSE) == (send, recv)


def test_rfc3079_initial_session_key_from_the_start_key() -> None:
    """Step 5 (GetNewKeyFromSHA, done by the NAS): proves the start key is the one MPPE expects."""
    pad1, pad2 = bytes(40), b"\xf2" * 40
    start = SEND_START_KEY_128
    assert hashlib.sha1(start + pad1 + start + pad2).digest()[:16] == SEND_SESSION_KEY_128


def ms_chap2_response(ident: int = 7, nt_response: bytes = NT_RESPONSE) -> bytes:
    """The MS-CHAP2-Response VSA value: Ident, Flags, Peer-Challenge, Reserved, NT-Response."""
    return bytes((ident, 0)) + PEER_CHALLENGE + bytes(8) + nt_response


def test_mschap2_verify_success() -> None:
    result = authproto.mschap2_verify(AUTH_CHALLENGE, ms_chap2_response(), USER, PASSWORD_HASH)
    assert result is not None
    assert result.success == b"\x07" + AUTHENTICATOR_RESPONSE
    assert result.send_key == SEND_START_KEY_128
    assert len(result.recv_key) == 16


def test_mschap2_verify_failures() -> None:
    assert authproto.mschap2_verify(AUTH_CHALLENGE, ms_chap2_response(), USER, authproto.nt_password_hash("x")) is None
    assert authproto.mschap2_verify(AUTH_CHALLENGE, ms_chap2_response(), b"user", PASSWORD_HASH) is None
    assert authproto.mschap2_verify(AUTH_CHALLENGE[:8], ms_chap2_response(), USER, PASSWORD_HASH) is None
    assert authproto.mschap2_verify(AUTH_CHALLENGE, ms_chap2_response()[:49], USER, PASSWORD_HASH) is None


def test_mschap2_error_format() -> None:
    error = authproto.mschap2_error(7)
    assert error[0] == 7
    assert re.fullmatch(rb"E=691 R=0 C=[0-9A-F]{32} V=3 M=Authentication failed", error[1:])
    assert authproto.mschap2_error(1, error=648, retry=True, message="expired")[1:].startswith(b"E=648 R=1 ")


def test_chap_rfc1994() -> None:
    challenge = bytes(range(16))
    response = hashlib.md5(b"\x2a" + b"secret" + challenge).digest()
    assert authproto.chap_response(0x2A, b"secret", challenge) == response
    assert authproto.chap_verify(b"\x2a" + response, challenge, "secret")
    assert not authproto.chap_verify(b"\x2b" + response, challenge, "secret")
    assert not authproto.chap_verify(b"\x2a" + response, challenge, b"Secret")
    assert not authproto.chap_verify(response, challenge, "secret")


def test_pap_compare() -> None:
    assert authproto.pap_verify(b"p\xc3\xa4ss", "päss")
    assert authproto.pap_verify(b"pass", b"pass")
    assert not authproto.pap_verify(b"pass", "pass ")
    assert not authproto.pap_verify(b"", "pass")
