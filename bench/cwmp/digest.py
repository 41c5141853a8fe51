"""HTTP digest (RFC 7616, MD5, qop=auth) for the CWMP benchmark, written apart from acs/auth.py
so the load client checks the ACS rather than agreeing with it by construction."""

from __future__ import annotations

import hashlib
import re

_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def parse(header: str) -> dict[str, str]:
    """The parameters of a ``WWW-Authenticate: Digest ...`` or ``Authorization: Digest ...``."""
    _, _, rest = header.partition(" ")
    return {m[1].lower(): m[2] if m[2] is not None else m[3] for m in _PARAM.finditer(rest)}


def response(user: str, password: str, realm: str, method: str, uri: str, nonce: str,
             nc: str, cnonce: str) -> str:
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"{method}:{uri}")
    return md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


def authorization(user: str, password: str, challenge: dict[str, str], method: str, uri: str,
                  nc: int, cnonce: str) -> str:
    """The ``Authorization`` header value answering ``challenge`` with nonce count ``nc``."""
    ncs = f"{nc:08x}"
    realm, nonce = challenge["realm"], challenge["nonce"]
    resp = response(user, password, realm, method, uri, nonce, ncs, cnonce)
    opaque = f', opaque="{challenge["opaque"]}"' if "opaque" in challenge else ""
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'algorithm=MD5, qop=auth, nc={ncs}, cnonce="{cnonce}", response="{resp}"{opaque}')
