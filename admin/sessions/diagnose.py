"""The "why can't this customer log in" panel: what lastmile knows of a login, read as
radiusd's policy reads it (radiusd/policy.py ``authorize``), in the order it checks. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Finding:
    level: str  # "bad": radiusd rejects; "warn": it may; "ok"
    text: str


def findings(facts: Mapping[str, Any] | None, attempts: Sequence[Mapping[str, Any]]) -> list[Finding]:
    """What stands between the login and an Access-Accept, worst first; ``attempts`` newest first."""
    if facts is None:
        return [Finding("bad", "No service has this login: radiusd answers \u201cunknown user\u201d "
                               "(logins are exact: check case and any @realm).")]
    out: list[Finding] = []
    if facts["status"] in ("disabled", "archived"):
        out.append(Finding("bad", f"The service is {facts['status']}: rejected (\u201cservice not active\u201d)."))
    if facts["customer_status"] in ("new", "inactive", "deleted"):
        out.append(Finding("bad", f"The customer is {facts['customer_status']}: rejected "
                                  "(\u201ccustomer not active\u201d)."))
    if facts["mac"]:
        out.append(Finding("warn", f"MAC lock: only the device {facts['mac']} may log in "
                                   "(\u201cMAC address does not match the service\u201d otherwise)."))
    limit, online = facts["simultaneous_use"], facts["online"]
    if limit and online >= limit:
        out.append(Finding("bad", f"{online} session(s) open, {limit} allowed: a new login is rejected "
                                  "(\u201csimultaneous use exceeded\u201d) until one ends or is disconnected."))
    if facts["status"] == "blocked" or facts["customer_status"] == "blocked":
        who = "service" if facts["status"] == "blocked" else "customer"
        out.append(Finding("warn", f"The {who} is blocked: it logs in into the blocked address list, or is "
                                   "rejected when radiusd's blocked_action is \u201creject\u201d."))
    rejects = [a for a in attempts if a["result"] == "reject"]
    if attempts and attempts[0]["result"] == "reject":
        out.append(Finding("bad", f"The last attempt was rejected: \u201c{attempts[0]['reason']}\u201d."))
    elif attempts:
        out.append(Finding("ok", f"The last attempt was accepted ({len(rejects)} of the last {len(attempts)} "
                                 "rejected)."))
    else:
        out.append(Finding("warn", "No attempt logged: the NAS has not asked radiusd for this login "
                                   "(check the NAS's RADIUS server and secret)."))
    if not out[:-1]:
        out.insert(0, Finding("ok", "Nothing in lastmile refuses this login."))
    return out
