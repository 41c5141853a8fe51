"""acs/auth.py: digest answers computed independently (hashlib by hand, and requests' client) pass,
and every way an answer can be wrong fails; Basic parsing; the session cookie resists tampering."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace

import pytest
from requests.auth import HTTPDigestAuth

from acs.auth import Cookies, Digest, SessionCookie, parse_authorization, parse_basic

KEY = b"k" * 32
NOW = 1_800_000_000.0
ADDRESS = "192.0.2.7"
DEVICE = "00D09E-HGW%2D181-000002"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def answer(digest: Digest, *, user: str = DEVICE, password: str = "secret", nonce: str | None = None,
           uri: str = "/cwmp", qop: bool = True, realm: str | None = None, algorithm: str = "MD5") -> str:
    """An Authorization header as a CPE computes it (RFC 7616 by hand)."""
    realm = digest.realm if realm is None else realm
    nonce = digest.nonce(NOW, ADDRESS) if nonce is None else nonce
    cnonce, nc = "0a4f113b", "00000001"
    ha1 = md5(f"{user}:{realm}:{password}")
    if algorithm == "MD5-sess":
        ha1 = md5(f"{ha1}:{nonce}:{cnonce}")
    ha2 = md5(f"POST:{uri}")
    parts = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"', f"algorithm={algorithm}"]
    if qop:
        parts += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"',
                  f'response="{md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")}"']
    else:
        parts.append(f'response="{md5(f"{ha1}:{nonce}:{ha2}")}"')
    return "Digest " + ", ".join(parts)


def check(digest: Digest, header: str, *, now: float = NOW, address: str = ADDRESS, target: str = "/cwmp",
          passwords: dict[str, str] | None = None) -> tuple[str, str]:
    scheme, params = parse_authorization(header)
    assert scheme == "digest"
    known = {DEVICE: "secret"} if passwords is None else passwords
    verdict = digest.verify(params, "POST", target, known.get, address, now)
    return verdict.result, verdict.reason


@pytest.fixture
def digest() -> Digest:
    return Digest(KEY, "lastmile", lifetime=300)


def test_answers_computed_by_hand_pass(digest: Digest) -> None:
    assert check(digest, answer(digest)) == ("ok", "")
    assert check(digest, answer(digest, qop=False)) == ("ok", "")  # an RFC 2069 client
    assert check(digest, answer(digest, algorithm="MD5-sess")) == ("ok", "")
    # a full URL in uri (some CPEs write one) for the request's path
    assert check(digest, answer(digest, uri="http://acs.example.net:7547/cwmp")) == ("ok", "")


def test_the_answer_of_requests_digest_client_passes(digest: Digest) -> None:
    client = HTTPDigestAuth(DEVICE, "secret")
    client.init_per_thread_state()
    _, challenge = parse_authorization(digest.challenge(NOW, ADDRESS))
    client._thread_local.chal = challenge
    header = client.build_digest_header("POST", "http://127.0.0.1:7547/cwmp")
    assert header is not None
    assert check(digest, header) == ("ok", "")


def test_the_challenge_names_realm_qop_and_a_nonce_that_verifies(digest: Digest) -> None:
    scheme, c = parse_authorization(digest.challenge(NOW, ADDRESS, stale=True))
    assert scheme == "digest" and c["realm"] == "lastmile" and c["qop"] == "auth" and c["algorithm"] == "MD5"
    assert c["stale"] == "true"
    assert digest.nonce_age(c["nonce"], ADDRESS, NOW + 5) == 5
    assert "stale" not in parse_authorization(digest.challenge(NOW, ADDRESS))[1]


def test_any_instance_with_the_key_verifies_a_nonce_another_made(digest: Digest) -> None:
    other = Digest(KEY, "lastmile")
    assert check(other, answer(digest), now=NOW + 10) == ("ok", "")
    assert check(Digest(b"x" * 32, "lastmile"), answer(digest))[0] == "refused"


def test_an_old_nonce_is_stale_only_with_the_right_password(digest: Digest) -> None:
    old = digest.nonce(NOW - 400, ADDRESS)
    assert check(digest, answer(digest, nonce=old)) == ("stale", "")
    assert check(digest, answer(digest, nonce=old, password="guess")) == ("refused", "wrong password")


def test_wrong_answers_are_refused(digest: Digest) -> None:
    nonce = digest.nonce(NOW, ADDRESS)
    forged = nonce[:-2] + ("AA" if not nonce.endswith("AA") else "BB")
    future = digest.nonce(NOW + 3600, ADDRESS)
    cases = {
        "wrong password": answer(digest, password="guess"),
        "unknown user name": answer(digest, user="someone"),
        "wrong realm": answer(digest, realm="other"),
        "nonce not ours (or made for another address)": answer(digest, nonce=forged),
        "the digest names another URI": answer(digest, uri="/elsewhere"),
        "algorithm SHA-256 not supported": answer(digest, algorithm="SHA-256"),
    }
    for reason, header in cases.items():
        assert check(digest, header) == ("refused", reason), reason
    assert check(digest, answer(digest), address="198.51.100.1")[1].startswith("nonce not ours")
    assert check(digest, answer(digest, nonce=future))[0] == "stale"  # from the future: not accepted either
    assert check(digest, 'Digest username="x"') == ("refused", "incomplete digest answer")
    tampered = answer(digest).replace("qop=auth", "qop=auth-int")
    assert check(digest, tampered)[0] == "refused"


def test_per_device_passwords_are_the_callers_to_choose(digest: Digest) -> None:
    """verify asks for the password of the name given; a None is no such user."""
    asked: list[str] = []

    def only_for_device(user: str) -> str | None:
        asked.append(user)
        return "secret" if user == DEVICE else None

    _scheme, params = parse_authorization(answer(digest, user="00D09E-HGW-OTHER"))
    assert digest.verify(params, "POST", "/cwmp", only_for_device, ADDRESS, NOW).result == "refused"
    assert asked == ["00D09E-HGW-OTHER"]


def test_authorization_parsing() -> None:
    scheme, p = parse_authorization('Digest username="a\\"b", realm="r, s", nc=00000002, qop=auth')
    assert (scheme, p) == ("digest", {"username": 'a"b', "realm": "r, s", "nc": "00000002", "qop": "auth"})
    token = base64.b64encode(b"user:pa:ss").decode()
    assert parse_authorization(f"Basic {token}") == ("basic", {"": token})
    assert parse_basic(token) == ("user", "pa:ss")
    assert parse_basic(base64.b64encode(b"no-colon").decode()) is None
    assert parse_basic("not base64!") is None


COOKIE = SessionCookie("0b8b7ff2-6d4e-4b8e-9d1c-1f0e4a9a1c2d", 17, DEVICE, ADDRESS, NOW, ("2 PERIODIC", "M Reboot"),
                       "urn:dslforum-org:cwmp-1-0", 2, False, NOW + 30, ("Inform", "TransferComplete"),
                       ("9010 Download failure (TransferComplete)",))


def test_a_cookie_goes_and_comes_back_whole() -> None:
    cookies = Cookies(KEY)
    text = cookies.encode(COOKIE)
    assert all(c.isalnum() or c in "-_." for c in text)  # a cookie value needs no quoting
    assert cookies.decode(text, NOW + 1) == COOKIE
    assert Cookies(KEY).decode(text, NOW) == COOKIE  # another instance with the same key
    slow = replace(COOKIE, slow=True, rpcs=(), faults=())
    assert cookies.decode(cookies.encode(slow), NOW) == slow


def test_a_tampered_forged_or_expired_cookie_is_nothing() -> None:
    cookies = Cookies(KEY)
    text = cookies.encode(COOKIE)
    body, _, mac = text.partition(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    assert cookies.decode(f"{flipped}.{mac}", NOW) is None
    other = Cookies(b"z" * 32).encode(replace(COOKIE, device_id=18))
    assert cookies.decode(f"{body}.{other.partition('.')[2]}", NOW) is None
    assert cookies.decode(other, NOW) is None
    assert cookies.decode(text, NOW + 31) is None  # past expires
    assert cookies.decode("garbage", NOW) is None and cookies.decode("", NOW) is None
