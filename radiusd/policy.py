"""Authentication policy: an Access-Request and the subscriber's row → accept (with what) or reject (why).

Pure: no I/O, no clock. The transport looks the subscriber up, asks :func:`authorize`, and
does the one thing that may need the database (an address from a lastmile pool) when the
decision says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from radiusd import authproto
from radiusd.cache import Subscriber, normalise_mac
from radiusd.codec import InValue, Request

Attributes = list[tuple[str, InValue]]

# Reasons, as logged, counted and stored in radius_postauth.
UNKNOWN_USER = "unknown user"
NO_CREDENTIALS = "no password, CHAP or MS-CHAPv2 in the request"
WRONG_PASSWORD = "wrong password"  # noqa: S105 (a reason, not a password)
SERVICE_INACTIVE = "service not active"
CUSTOMER_INACTIVE = "customer not active"
MAC_MISMATCH = "MAC address does not match the service"
SIMULTANEOUS_USE = "simultaneous use exceeded"
BLOCKED = "customer blocked"
SERVICE_BLOCKED = "service blocked"
POOL_EXHAUSTED = "address pool exhausted"
ACCEPTED = "ok"
ACCEPTED_BLOCKED = "ok, blocked: address list"

REPLY_MESSAGES = {
    UNKNOWN_USER: "Login incorrect",
    NO_CREDENTIALS: "Login incorrect",
    WRONG_PASSWORD: "Login incorrect",
    SERVICE_INACTIVE: "Service not active",
    CUSTOMER_INACTIVE: "Account not active",
    MAC_MISMATCH: "Device not allowed for this account",
    SIMULTANEOUS_USE: "Already logged in",
    BLOCKED: "Account blocked",
    SERVICE_BLOCKED: "Service blocked",
    POOL_EXHAUSTED: "No address available",
}


@dataclass(frozen=True, slots=True)
class PolicySettings:
    blocked_action: Literal["address-list", "reject"]
    blocked_address_list: str
    interim_interval: int


@dataclass(slots=True)
class Decision:
    accept: bool
    reason: str
    attributes: Attributes = field(default_factory=list)
    #: A lastmile pool to lease an address from before the Access-Accept goes out.
    pool_id: int | None = None

    @property
    def reply_message(self) -> str:
        return REPLY_MESSAGES.get(self.reason, "Login incorrect")


def reject(reason: str, extra: Attributes | None = None) -> Decision:
    return Decision(False, reason, [*(extra or []), ("Reply-Message", REPLY_MESSAGES.get(reason, "Login incorrect"))])


def authorize(request: Request, sub: Subscriber | None, online: int, settings: PolicySettings) -> Decision:
    """Decide an Access-Request; ``online`` is how many sessions the service has open now."""
    if sub is None:
        return reject(UNKNOWN_USER)
    auth_attributes, problem = _check_credentials(request, sub)
    if problem:
        return reject(problem, auth_attributes)
    if sub.status in ("disabled", "archived"):
        return reject(SERVICE_INACTIVE)
    if sub.customer_status in ("new", "inactive", "deleted"):
        return reject(CUSTOMER_INACTIVE)
    if sub.mac is not None and normalise_mac(request.calling_station_id) != sub.mac:
        return reject(MAC_MISMATCH)
    if sub.simultaneous_use and online >= sub.simultaneous_use:
        return reject(SIMULTANEOUS_USE)
    blocked = sub.blocked
    if blocked and settings.blocked_action == "reject":
        # the service's own block first: unblocking the customer would not let it in
        return reject(SERVICE_BLOCKED if sub.status == "blocked" else BLOCKED)
    attributes: Attributes = [("Service-Type", "Framed-User"), ("Framed-Protocol", "PPP")]
    pool_id = None
    if sub.ipv4:
        attributes.append(("Framed-IP-Address", sub.ipv4))
    elif sub.pool_id is not None and sub.pool_managed_by == "lastmile":
        if not request.is_test_request:  # `lastmile radius test` takes no address out of the pool
            pool_id = sub.pool_id  # Framed-IP-Address added once leased
    elif sub.pool_name:
        attributes.append(("Framed-Pool", sub.pool_name))
    if sub.ipv6_prefix:
        attributes.append(("Framed-IPv6-Prefix", sub.ipv6_prefix))
    if sub.delegated_ipv6_prefix:
        attributes.append(("Delegated-IPv6-Prefix", sub.delegated_ipv6_prefix))
    attributes.append(("Mikrotik-Rate-Limit", sub.rate_limit))
    attributes.append(("Acct-Interim-Interval", settings.interim_interval))
    if sub.session_timeout:
        attributes.append(("Session-Timeout", sub.session_timeout))
    if blocked:
        attributes.append(("Mikrotik-Address-List", settings.blocked_address_list))
    attributes.extend(sub.extra_reply)
    attributes.extend(auth_attributes)
    return Decision(True, ACCEPTED_BLOCKED if blocked else ACCEPTED, attributes, pool_id)


def _check_credentials(request: Request, sub: Subscriber) -> tuple[Attributes, str | None]:
    """PAP, CHAP or MS-CHAPv2 against the service's password; the attributes the method adds."""
    password = request.user_password
    if password is not None:
        return [], None if authproto.pap_verify(password, sub.password) else WRONG_PASSWORD
    chap = request.chap_password
    if chap is not None:
        return [], None if authproto.chap_verify(chap, request.chap_challenge, sub.password) else WRONG_PASSWORD
    challenge, response = request.ms_chap_challenge, request.ms_chap2_response
    if challenge is not None and response is not None:
        user = (request.user_name or "").encode()
        # RFC 2759 section 4: the user name hashed is without any domain (DOMAIN\user).
        user = user.rsplit(b"\\", 1)[-1]
        ok = authproto.mschap2_verify(challenge, response, user, authproto.nt_password_hash(sub.password))
        if ok is None:
            return [("MS-CHAP-Error", authproto.mschap2_error(response[0]))], WRONG_PASSWORD
        return [("MS-CHAP2-Success", ok.success), ("MS-MPPE-Send-Key", ok.send_key),
                ("MS-MPPE-Recv-Key", ok.recv_key), ("MS-MPPE-Encryption-Policy", 1),
                ("MS-MPPE-Encryption-Types", 6)], None
    return [], NO_CREDENTIALS
