"""What provisiond keeps on a router, in the router's own terms: menus, objects, values.

An :class:`Item` is one row of a RouterOS menu (a simple queue, an address-list entry, a PPP
secret, a DHCP lease) as attribute strings. Every object lastmile owns carries :data:`TAG` at
the start of its comment; provisiond reads, changes and removes those only. Values are compared
in one normal form (:func:`normal`): the router answers ``10M/20M`` or ``10000000/20000000``,
``yes`` or ``true``, ``8s`` or ``00:00:08``, and librouteros turns ``"123"`` into ``123``; all of
those compare equal to what provisiond wrote.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

TAG = "lastmile:"
"""Start of the comment of every object lastmile owns (then the owning service: ``lastmile:s42``)."""

Value = str | int | bool


@dataclass(frozen=True, slots=True)
class Menu:
    path: str  # "/queue/simple"
    label: str  # "queue", for people
    key: tuple[str, ...]  # what names one object: no two objects of the menu share it
    attrs: tuple[str, ...]  # what provisiond writes and compares (the key included)
    #: Written, but read back only by an API user with the `sensitive` policy, which lastmile's
    #: does not need: the comment carries a fingerprint of them instead (desired.py).
    secret: tuple[str, ...] = ()


ADDRESS_LIST = Menu("/ip/firewall/address-list", "address-list entry", ("list", "address"),
                    ("list", "address", "comment", "disabled"))
QUEUE = Menu("/queue/simple", "queue", ("name",),
             ("name", "target", "max-limit", "limit-at", "burst-limit", "burst-threshold", "burst-time",
              "priority", "comment", "disabled"))
PPP_SECRET = Menu("/ppp/secret", "PPP secret", ("name",),
                  ("name", "password", "service", "profile", "remote-address", "comment", "disabled"),
                  secret=("password",))
DHCP_LEASE = Menu("/ip/dhcp-server/lease", "DHCP lease", ("mac-address",),
                  ("mac-address", "address", "comment", "disabled"))
MENUS: tuple[Menu, ...] = (ADDRESS_LIST, QUEUE, PPP_SECRET, DHCP_LEASE)
BY_PATH = {m.path: m for m in MENUS}


@dataclass(frozen=True, slots=True)
class Item:
    """One object of ``menu``: its attributes in normal form; ``id`` (``*1A``) when read from a router."""

    menu: Menu
    attrs: Mapping[str, str]
    id: str | None = None

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.attrs.get(k, "") for k in self.menu.key)

    @property
    def owned(self) -> bool:
        return self.attrs.get("comment", "").startswith(TAG)

    def describe(self) -> str:
        return f"{self.menu.label} {'/'.join(self.key)}"


def item(menu: Menu, id: str | None = None, **attrs: Value) -> Item:
    """An Item of ``menu`` from keyword attributes (``max_limit=`` for ``max-limit``), normalised."""
    return make(menu, {k.replace("_", "-"): v for k, v in attrs.items()}, id)


def make(menu: Menu, raw: Mapping[str, Value], id: str | None = None) -> Item:
    """An Item of ``menu`` from a router's row or desired attributes: the menu's attributes
    present in ``raw``, in normal form; others (``bytes``, ``dynamic``, ...) are left out."""
    attrs = {a: normal(a, raw[a]) for a in menu.attrs if a in raw}
    return Item(menu, MappingProxyType(attrs), id)


def owner_tag(service_id: int, note: str = "", fingerprint: str = "") -> str:
    """The comment of an object service ``service_id`` owns, with a note for people (a name) and
    the fingerprint of its secret attributes, if it has any (``lastmile:s42 #1f2e3d4c Jane Doe``)."""
    note = " ".join(note.split())
    mark = f" #{fingerprint}" if fingerprint else ""
    return f"{TAG}s{service_id}{mark} {note}".rstrip()[:255]


def tagged_service(comment: str) -> int | None:
    """The service a tag names (``lastmile:s42 ...`` → 42)."""
    m = re.match(re.escape(TAG) + r"s(\d+)", comment)
    return int(m.group(1)) if m else None


# --- normal forms ------------------------------------------------------------------------------

_SI = {"": 1, "k": 1000, "K": 1000, "m": 1_000_000, "M": 1_000_000, "g": 1_000_000_000, "G": 1_000_000_000}
_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bits(side: str) -> str:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([kKmMgG]?)", side.strip())
    if not m:
        return side
    number = float(m.group(1)) * _SI[m.group(2)]
    return str(round(number))


def _rate_pair(value: str) -> str:
    """``10M/20M``, ``10000000/20000000``, ``10M`` (both ways) → ``10000000/20000000``."""
    up, _, down = value.partition("/")
    return f"{_bits(up)}/{_bits(down or up)}"


def _seconds(side: str) -> str:
    side = side.strip()
    if re.fullmatch(r"\d+", side):
        return side
    if m := re.fullmatch(r"(\d+):(\d\d):(\d\d)", side):
        return str(int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3)))
    m = _DURATION.fullmatch(side)
    if not m or not side:
        return side
    w, d, h, mi, s, _ms = (int(g) if g else 0 for g in m.groups())
    return str(((w * 7 + d) * 24 + h) * 3600 + mi * 60 + s)


def _duration_pair(value: str) -> str:
    up, _, down = value.partition("/")
    return f"{_seconds(up)}/{_seconds(down or up)}"


def _priority(value: str) -> str:
    up, _, down = value.partition("/")
    return f"{up.strip()}/{(down or up).strip()}"


def _boolean(value: str) -> str:
    return {"yes": "true", "no": "false"}.get(value, value)


def _target(value: str) -> str:
    """Targets as the router lists them: each address with its prefix length."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return ",".join(p if "/" in p or not re.fullmatch(r"[\d.]+", p) else f"{p}/32" for p in parts)


_NORMAL: dict[str, Callable[[str], str]] = {
    "max-limit": _rate_pair, "limit-at": _rate_pair, "burst-limit": _rate_pair, "burst-threshold": _rate_pair,
    "burst-time": _duration_pair, "priority": _priority, "disabled": _boolean, "target": _target,
    "mac-address": str.upper,
}


@functools.lru_cache(maxsize=65536)
def _normal_text(attr: str, text: str) -> str:
    fn = _NORMAL.get(attr)
    return fn(text) if fn is not None else text


def normal(attr: str, value: Value) -> str:
    """``value`` of ``attr`` in normal form. Cached: a router's thousands of queues share a few
    tariffs' values, and this runs for every attribute of every object read."""
    if attr not in _NORMAL:
        return _text(value)
    return _normal_text(attr, _text(value))
