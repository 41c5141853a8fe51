"""A MikroTik router's API service (8728, API-SSL 8729) for tests: the real wire protocol on 127.0.0.1.

:class:`FakeRouter` listens on 127.0.0.1 (a free port unless told) and speaks the RouterOS API as
RouterOS does, so that librouteros (``connect`` and ``async_connect``, 4.2.2) and lastmile's
provisiond talk to it unchanged. It runs in the test's event loop (``await start()`` /
``stop()``, or ``async with``), in a thread of its own for synchronous tests (``start_thread()``
/ ``stop_thread()``, or ``with router.threaded():``), or as a process::

    python -m tests.fakes.routeros --port 0 [--tls] [--version 7.18] [--user U --password P]
                                   [--seed rows.json] [--delay S] [--journal N] [--count N]

which prints one JSON line (``{"host": ..., "port": ..., "tls": ..., "ca": ..., "version": ...,
"pid": ...}``) per router once they listen, and serves until SIGTERM or SIGINT. Several
processes given the same ``--tls-dir`` share one test CA.

What it does, as RouterOS does it (API manual, help.mikrotik.com "API"; librouteros; real devices
as other projects recorded them, cited where it matters):

- Framing by :mod:`daemons.provisiond.codec`: 1-5-byte lengths, control bytes refused (the
  connection is closed), words split across segments. A ``.tag`` is echoed on every reply of its
  command; ``/cancel`` (``=tag=`` or all) interrupts a running ``listen`` / ``print =follow=``
  (``!trap =category=2 =message=interrupted``, then ``!done`` of the cancel, then of the victim);
  ``/quit`` is ``!fatal`` "session terminated on request". Every ``!trap`` is followed by
  ``!done``. An unknown menu is ``!trap =category=0 =message=no such command prefix``, an unknown
  command in a known menu ``no such command``.
- Login follows the version. From 6.43: ``/login =name= =password=`` → ``!done``, else ``!trap
  =message=invalid user name or password (6)`` + ``!done``. ``/login`` without a password (and,
  before 6.43, with one: old routers ignore it) → ``!done =ret=<32 hex>``, a challenge; then
  ``=name= =response=00<md5(0x00 + password + challenge)>`` logs in up to 6.45.1 (failure
  before 6.43: "cannot log in"; MikroTik dropped the method after 6.45.1, whose routers answer
  "invalid user name or password (6)" as 6.47.6 was seen to). A command before login is
  ``!fatal`` "not logged in" (what a 7.20.8 CHR answered in a published assessment);
  ``prelogin_traps=N`` traps the first N instead. So librouteros's ``plain`` login "succeeds"
  against a pre-6.43 router (the challenge reply is no error) and its first command dies, as on
  a real one.
- The version: 6.x or 7.x; from 7.18 a ``print`` with nothing to show answers ``!empty`` then
  ``!done`` (changelog 7.18: "put !empty sentence when API query returns nothing").
  ``/system/resource`` reports it ("7.18 (stable)"), dates follow it (6.x ``dec/02/2026
  00:00:00``, 7.x ``2026-12-02 00:00:00``).
- API-SSL: pass ``ssl_context`` (:func:`make_certificates` writes a test CA and a certificate for
  127.0.0.1 and localhost with Debian's ``openssl``; ``Certificates.server_context()`` /
  ``client_context()``).
- Menus, in memory, values kept and returned as strings, booleans as ``true``/``false``
  (``yes``/``no``/``true``/``false`` accepted), server-side defaults filled in and returned
  (queue ``priority=8/8``, ``limit-at=0/0``, ``max-limit=0/0``, ``queue=default-small/default-small``,
  ``parent=none``, ``disabled=false``...) in the shapes real routers print: a queue target
  ``10.0.0.1`` reads ``10.0.0.1/32``, ``max-limit=10M/5M`` reads ``10000000/5000000``, an
  address-list ``10.0.0.1/32`` reads ``10.0.0.1``, durations read ``1m30s``, a MAC upper case, a
  lease for ``server=all`` has no ``server`` key, a comment is absent rather than empty:
  ``/ip/firewall/address-list``, ``/queue/simple`` (ordered; ``place-before``), ``/ppp/secret``,
  ``/ppp/profile`` (``default`` and ``default-encryption`` built in), ``/ppp/active`` (read-only;
  ``remove`` disconnects), ``/ip/dhcp-server``, ``/ip/dhcp-server/lease``, ``/system/resource``,
  ``/system/identity`` (``set``), ``/system/reboot``. ``.id`` is ``*`` and upper-case hex,
  increasing, never reused within a boot; in menus with names the name works as ``.id`` too.
- ``print`` / ``getall`` with ``=.proplist=`` (only those keys; ``.id`` only when listed),
  ``=count-only=`` (``!done =ret=N``), queries ``?k``, ``?-k``, ``?k=v``, ``?=k=v``, ``?<k=v``,
  ``?>k=v``, ``?#`` with ``!&|.`` and stack indexes, over a stack of booleans that starts as
  infinite ``true`` (an index followed by the end of the word replaces the stack); a query value
  is read as the property's values are (``?disabled=no`` finds ``false``, ``?target=10.0.0.1``
  finds ``10.0.0.1/32``); ``<``/``>`` compare numbers as numbers, IPv4 addresses as addresses,
  the rest as text. ``listen`` and ``print =follow=`` / ``=follow-only=`` stream changes
  (a removed row as ``=.id=*N =.dead=yes``) until ``/cancel``.
- ``add`` → ``!done =ret=*N``; ``set``, ``remove``, ``enable``, ``disable``, ``unset
  =value-name=`` take ``.id`` (or ``numbers``) as one id or a comma-separated list, resolved
  whole before anything changes: an unknown one is ``!trap =message=no such item`` and nothing
  is touched (all-or-nothing). Uniqueness as surveyed on 7.23 and reported by users
  (``failure: already have such entry`` for list+address among enabled entries; ``failure:
  secret with the same name already exists``; ``failure: already have static lease for this
  client`` / ``... with this IP address``; ``failure: item with such name already exists`` for
  a queue or profile name). References are checked as RouterOS checks them: a secret's profile,
  a lease's server, a queue's parent must exist (``!trap =category=1 =message=input does not
  match any value of profile``). A value that does not parse is ``!trap =category=1
  =message=invalid value for argument X``; a name the menu does not have ``unknown parameter
  X``; a missing one ``missing value(s) of argument(s) X``. An address-list entry with a
  ``timeout`` is ``dynamic=true``, prints the time left and goes when it runs out.
- Permissions: ``allowed`` (a set of command prefixes, e.g. ``{"/ip/firewall/address-list",
  "/queue/simple/print"}``) stands for the API user's group; anything else is ``!trap
  =message=not enough permissions (9)`` + ``!done``.

Faults, switchable at run time: ``router.faults.silent`` (accept, read, never answer: a firewall
"available from" hang), ``.delay`` (every reply held N s), ``.drip_bytes`` / ``.drip_interval``
(replies sent N bytes at a time), ``.reorder`` (pipelined commands answered last first, told
apart by their ``.tag`` only), ``max_sessions`` (one connection more is closed at once, as
``/ip service`` ``max-sessions`` does), :meth:`FakeRouter.refuse_connections` /
:meth:`~FakeRouter.accept_connections` (stop / start listening), :meth:`~FakeRouter.trap_on`,
:meth:`~FakeRouter.fatal_on`, :meth:`~FakeRouter.drop_on` (before or after the command takes
effect: the unknown outcome of reliability.md M-4), :meth:`~FakeRouter.cut_on` (part of the reply,
then the connection closes or stalls), each on the Nth command of a kind (``"add"``,
``"/queue/simple/set"``, ``"/ip/firewall/address-list"``, ``"*"``), :meth:`~FakeRouter.fatal_all`,
:meth:`~FakeRouter.drop_connections` and :meth:`~FakeRouter.reboot` (connections dropped, every
``.id`` renumbered, runtime state gone, optionally down for a while).

For tests: :attr:`~FakeRouter.journal` (every sentence received: connection, time, words, what
was answered), :meth:`~FakeRouter.commands`, :meth:`~FakeRouter.writes`,
:meth:`~FakeRouter.seed` / :meth:`~FakeRouter.table` to set up and read a menu directly,
:attr:`~FakeRouter.connections` (open now) and :attr:`~FakeRouter.accepted` (ever).

What it leaves out of a real RouterOS:

- Only the menus above. No ``/interface``, ``/ip/address``, ``/ip/firewall/filter`` or ``nat``,
  ``/queue/tree``, ``/queue/type``, ``/ip/pool``, hotspot, wireless, ``/user``, ``/ip/service``,
  no ``/ipv6`` menus, no scripting (``:put``, ``[find]``), no ``/console/inspect``, no ``.oid``
  properties, no REST API. ``move``, ``copy-from``, ``reset-counters``, ``make-static``,
  ``export`` are not there (``no such command`` / ``unknown parameter``).
- Nothing is enforced on traffic: a queue shapes nothing, an address list blocks nothing,
  ``/ppp/active`` rows exist only when a test seeds them, and a lease never binds (``status``
  stays ``waiting``, ``last-seen`` ``never``). Counters and rates are constant zeros; ``cpu-load``
  and the other resource figures are what the constructor or ``seed`` says.
- Values are checked only as far as the shapes above need: IPv4 addresses, prefixes and ranges,
  rates with ``k``/``M``/``G``, durations, priorities 1-8, MACs, booleans. IPv6 targets pass
  as written. A queue's ``queue`` type, a server's interface and pool, a profile's rate-limit are
  taken as text (no ``/queue/type``, ``/interface``, ``/ip/pool`` to check them against). A
  ``?`` value that does not parse for its property is compared as written. An address-list DNS
  name is kept as a name (a router resolves it into dynamic entries). Expired timeouts are
  noticed when the menu is next read or written, not on a timer (a listener hears of an expiry
  then).
- ``print``'s ``detail``, ``stats``, ``terse``, ``without-paging`` are accepted and change
  nothing; ``interval``, ``where``, ``from`` and ``file`` are refused as unknown parameters (a
  real router repeats a print with ``interval`` until cancelled). Property order is the menu's
  fixed order (the manual says not to rely on any).
- Sessions: no login by a user group's ``address=``, no ``/user`` menu (one or more name and
  password pairs given to the constructor), no limit on the size of sentences before login, no
  idle timeout. The ``!trap`` of a refused challenge login and the message of a missing ``.id``
  (``missing =.id=``, what the REST API says) were not seen on a device's API port; nor was the
  all-or-nothing of a ``remove`` whose id list has an unknown id (RouterOS resolves the list as
  one argument, so it fails before the command runs), nor the exact message for a duplicate
  queue or profile name, nor a query's behaviour for an empty value (taken as a value).
  ``/cancel`` of a tag that runs nothing answers ``!done``; a ``!fatal`` carries no ``.tag``.
- ``faults.silent`` still completes a TLS handshake (asyncio does it before the API reads a
  byte); a router hidden by a firewall would not even do that. The journal keeps passwords as
  sent (it is a test tool).
- A ``reboot()`` keeps the configuration by default (``keep_config=False`` empties it) and drops
  what RouterOS does not save: ``/ppp/active`` rows and address-list entries with a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import fcntl
import hashlib
import hmac
import ipaddress
import json
import math
import os
import re
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from daemons.provisiond.codec import (
    ENCODING,
    ERRORS,
    Command,
    Decoder,
    ProtocolError,
    decode_length,
    encode_word,
    parse_command,
    text_sentence,
)

__all__ = [
    "Certificates",
    "CommandFault",
    "FakeRouter",
    "Faults",
    "Received",
    "make_certificates",
    "running",
]

_T = TypeVar("_T")

# --- values ---------------------------------------------------------------------------------------


class _Invalid(ValueError):
    """A value that does not parse for its property."""


def _text(value: str) -> str:
    return value


def _boolean(value: str) -> str:
    lowered = value.lower()
    if lowered in ("yes", "true"):
        return "true"
    if lowered in ("no", "false"):
        return "false"
    raise _Invalid(value)


_RATE = re.compile(r"(\d+(?:\.\d+)?)([kKMG]?)")
_RATE_UNITS = {"": 1, "k": 1000, "K": 1000, "M": 1000_000, "G": 1000_000_000}


def _one_rate(value: str) -> str:
    m = _RATE.fullmatch(value.strip())
    if not m:
        raise _Invalid(value)
    number, unit = m.groups()
    return str(round(float(number) * _RATE_UNITS[unit]))


def _rates(value: str) -> str:
    """``10M/5M`` → ``10000000/5000000``; one value stands for both directions."""
    parts = value.split("/")
    if len(parts) == 1:
        one = _one_rate(parts[0])
        return f"{one}/{one}"
    if len(parts) != 2:
        raise _Invalid(value)
    return f"{_one_rate(parts[0])}/{_one_rate(parts[1])}"


_DURATION_PART = re.compile(r"(\d+)(ms|w|d|h|m|s)")
_UNITS_MS = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1}


def _duration_ms(value: str) -> int:
    text = value.strip()
    if not text:
        raise _Invalid(value)
    if text.isdigit():
        return int(text) * 1000
    clock = re.fullmatch(r"(?:(\d+)d\s*)?(\d+):(\d{1,2}):(\d{1,2})", text)
    if clock:
        days, hours, minutes, seconds = (int(g or 0) for g in clock.groups())
        return (((days * 24 + hours) * 60 + minutes) * 60 + seconds) * 1000
    total, pos = 0, 0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            raise _Invalid(value)
        total += int(m.group(1)) * _UNITS_MS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise _Invalid(value)
    return total


def _format_duration(ms: int) -> str:
    if ms <= 0:
        return "0s"
    out = []
    for unit in ("w", "d", "h", "m", "s", "ms"):
        size = _UNITS_MS[unit]
        if ms >= size:
            out.append(f"{ms // size}{unit}")
            ms %= size
    return "".join(out)


def _duration(value: str) -> str:
    return _format_duration(_duration_ms(value))


def _durations(value: str) -> str:
    parts = value.split("/")
    if len(parts) == 1:
        one = _duration(parts[0])
        return f"{one}/{one}"
    if len(parts) != 2:
        raise _Invalid(value)
    return f"{_duration(parts[0])}/{_duration(parts[1])}"


def _priority(value: str) -> str:
    parts = value.split("/")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not all(p.isdigit() and 1 <= int(p) <= 8 for p in parts):
        raise _Invalid(value)
    return f"{int(parts[0])}/{int(parts[1])}"


def _pair(value: str) -> str:
    """``x`` → ``x/x`` (a queue type for both directions)."""
    parts = value.split("/")
    if len(parts) == 1:
        return f"{value}/{value}"
    if len(parts) != 2 or not all(parts):
        raise _Invalid(value)
    return value


def _decimal_pair(value: str) -> str:
    parts = value.split("/")
    if len(parts) == 1:
        parts = parts * 2
    try:
        numbers = [float(p) for p in parts]
    except ValueError:
        raise _Invalid(value) from None
    if len(numbers) != 2:
        raise _Invalid(value)
    return "/".join(f"{n:g}" for n in numbers)


def _quad(text: str) -> bool:
    """A dotted-quad IPv4 address as ``ipaddress`` would accept it (the fast path of the parsers)."""
    parts = text.split(".")
    return len(parts) == 4 and all(
        p.isdigit() and len(p) <= 3 and (p == "0" or p[0] != "0") and int(p) <= 255 for p in parts)


def _ipv4(value: str) -> str:
    if _quad(value):
        return value
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise _Invalid(value) from None


def _looks_numeric(value: str) -> bool:
    return bool(re.fullmatch(r"[\d./-]+", value))


_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*\.?")


def _list_address(value: str) -> str:
    """An address-list entry: an IPv4 address (``/32`` dropped), a prefix (host bits cleared),
    a range ``a-b``, or a DNS name."""
    text = value.strip()
    if "-" in text and _looks_numeric(text):
        first, _, last = text.partition("-")
        a, b = ipaddress.IPv4Address(_ipv4(first)), ipaddress.IPv4Address(_ipv4(last))
        if b < a:
            raise _Invalid(value)
        return f"{a}-{b}"
    if _quad(text):
        return text
    if _looks_numeric(text):
        try:
            network = ipaddress.IPv4Network(text, strict=False)
        except ValueError:
            raise _Invalid(value) from None
        return str(network.network_address) if network.prefixlen == 32 else str(network)
    if _HOSTNAME.fullmatch(text):
        return text
    raise _Invalid(value)


def _target(value: str) -> str:
    """A queue target: addresses become prefixes (``10.0.0.1`` → ``10.0.0.1/32``); interface
    names and IPv6 stay as written; a comma-separated list item by item."""
    out = []
    for raw in value.split(","):
        item = raw.strip()
        if not item:
            raise _Invalid(value)
        if _quad(item):
            out.append(f"{item}/32")
        elif _looks_numeric(item):
            try:
                out.append(str(ipaddress.IPv4Network(item, strict=False)))
            except ValueError:
                raise _Invalid(value) from None
        else:
            out.append(item)
    return ",".join(out)


_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-]?)[0-9A-Fa-f]{2}(?:\1[0-9A-Fa-f]{2}){4}")


def _mac(value: str) -> str:
    text = value.strip()
    if not _MAC.fullmatch(text):
        raise _Invalid(value)
    digits = re.sub(r"[:-]", "", text).upper()
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def _service(value: str) -> str:
    if value not in ("any", "async", "l2tp", "ovpn", "pppoe", "pptp", "sstp"):
        raise _Invalid(value)
    return value


def _api_value(value: object) -> str:
    """A seed value as the router would hold it (Python booleans and numbers to text)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _number_or_address(value: str) -> int | None:
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return int(ipaddress.IPv4Address(value))
    except ValueError:
        return None


# --- menus ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str
    default: str | None = None  # what a new row gets (None: absent until set)
    parse: Callable[[str], str] = _text
    writable: bool = True
    required: bool = False
    absent_when: str | None = None  # a value that prints as no key at all (a lease's server "all")


@dataclass(frozen=True)
class _Unique:
    """A natural key: two rows may not share ``key`` (None: the row does not count)."""

    key: Callable[[Mapping[str, str]], object | None]
    message: str
    clash: Callable[[Mapping[str, str], Mapping[str, str]], bool] | None = None


@dataclass(frozen=True)
class _Reference:
    """A property naming a row of another menu (or one of ``also``)."""

    field: str
    menu: str
    key: str = "name"
    also: tuple[str, ...] = ()


LIST_VERBS = frozenset({"print", "getall", "add", "set", "remove", "unset", "enable", "disable", "listen"})
PRINT_ARGS = frozenset({".proplist", "proplist", "count-only", "detail", "stats", "stats-detail", "terse",
                        "without-paging", "brief", "value-list", "follow", "follow-only", "follow-strict",
                        "as-value"})
WRITE_VERBS = frozenset({"add", "set", "remove", "unset", "enable", "disable"})


@dataclass(frozen=True)
class _Schema:
    path: str
    fields: tuple[_Field, ...]
    verbs: frozenset[str] = LIST_VERBS
    unique: tuple[_Unique, ...] = ()
    references: tuple[_Reference, ...] = ()
    singleton: bool = False
    named: bool = False  # the name works as .id
    auto_name: str | None = None  # "queue": an add without a name gets queue1, queue2, ...
    ordered: bool = False  # add takes place-before
    builtin: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # .id -> row, present at boot
    runtime: bool = False  # rows do not survive a reboot
    by_name: Mapping[str, _Field] = field(init=False, compare=False, repr=False)
    order: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {f.name: f for f in self.fields})
        object.__setattr__(self, "order", tuple(f.name for f in self.fields))


def _enabled(row: Mapping[str, str]) -> bool:
    return row.get("disabled") != "true"


def _lease_servers_clash(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    sa, sb = a.get("server", "all"), b.get("server", "all")
    return sa == sb or "all" in (sa, sb)


def _schemas(version: tuple[int, ...]) -> dict[str, _Schema]:
    seven = version >= (7,)
    epoch = "1970-01-01 00:00:00" if seven else "jan/01/1970 00:00:00"
    disabled = _Field("disabled", "false", _boolean)
    comment = _Field("comment", absent_when="")  # "omitted when there is no comment, never \"\"" (7.23 survey)
    named_unique = _Unique(lambda r: r.get("name"), "failure: item with such name already exists")
    schemas = [
        _Schema("/ip/firewall/address-list", (
            _Field("list", required=True),
            _Field("address", parse=_list_address, required=True),
            _Field("creation-time", writable=False),
            _Field("timeout", parse=_duration),
            _Field("dynamic", "false", writable=False),
            disabled,
            comment,
        ), unique=(_Unique(lambda r: (r["list"], r["address"]) if _enabled(r) else None,
                           "failure: already have such entry"),)),
        _Schema("/queue/simple", (
            _Field("name"),
            _Field("target", parse=_target, required=True),
            _Field("parent", "none"),
            _Field("packet-marks", ""),
            _Field("priority", "8/8", _priority),
            _Field("queue", "default-small/default-small", _pair),
            _Field("limit-at", "0/0", _rates),
            _Field("max-limit", "0/0", _rates),
            _Field("burst-limit", "0/0", _rates),
            _Field("burst-threshold", "0/0", _rates),
            _Field("burst-time", "0s/0s", _durations),
            _Field("bucket-size", "0.1/0.1", _decimal_pair),
            *(_Field(name, value, writable=False) for name, value in (
                ("bytes", "0/0"), ("total-bytes", "0"), ("packets", "0/0"), ("total-packets", "0"),
                ("dropped", "0/0"), ("total-dropped", "0"), ("rate", "0/0"), ("total-rate", "0"),
                ("packet-rate", "0/0"), ("total-packet-rate", "0"), ("queued-packets", "0/0"),
                ("total-queued-packets", "0"), ("queued-bytes", "0/0"), ("total-queued-bytes", "0"),
                ("invalid", "false"), ("dynamic", "false"))),
            disabled,
            comment,
        ), unique=(named_unique,), references=(_Reference("parent", "/queue/simple", also=("none",)),),
            named=True, auto_name="queue", ordered=True),
        _Schema("/ppp/secret", (
            _Field("name", required=True),
            _Field("service", "any", _service),
            _Field("caller-id", ""),
            _Field("password", ""),
            _Field("profile", "default"),
            _Field("local-address", parse=_ipv4),
            _Field("remote-address", parse=_ipv4),
            _Field("routes", ""),
            *((_Field("ipv6-routes", ""),) if seven else ()),
            _Field("limit-bytes-in", "0", _count),
            _Field("limit-bytes-out", "0", _count),
            _Field("last-logged-out", epoch, writable=False),
            disabled,
            comment,
        ), unique=(_Unique(lambda r: r.get("name"), "failure: secret with the same name already exists"),),
            references=(_Reference("profile", "/ppp/profile"),), named=True),
        _Schema("/ppp/profile", (
            _Field("name", required=True),
            _Field("local-address"),
            _Field("remote-address"),
            _Field("rate-limit"),
            _Field("address-list", ""),
            _Field("only-one", "default"),
            _Field("change-tcp-mss", "default"),
            _Field("use-compression", "default"),
            _Field("use-encryption", "default"),
            _Field("use-mpls", "default"),
            _Field("use-upnp", "default"),
            _Field("default", "false", writable=False),
            comment,
        ), verbs=LIST_VERBS - {"enable", "disable"}, unique=(named_unique,), named=True, builtin={
            "*0": {"name": "default", "default": "true"},
            "*FFFFFFFE": {"name": "default-encryption", "use-encryption": "yes", "default": "true"},
        }),
        _Schema("/ppp/active", (
            _Field("name"), _Field("service"), _Field("caller-id", ""), _Field("encoding", ""),
            _Field("address"), _Field("uptime", "0s", _duration), _Field("session-id"),
            _Field("limit-bytes-in", "0"), _Field("limit-bytes-out", "0"), _Field("radius", "false", _boolean),
        ), verbs=frozenset({"print", "getall", "remove", "listen"}), runtime=True),
        _Schema("/ip/dhcp-server", (
            _Field("name", required=True),
            _Field("interface", required=True),
            _Field("address-pool", "static-only"),
            _Field("lease-time", "30m" if seven else "10m", _duration),
            _Field("lease-script", ""),
            _Field("authoritative", "yes"),
            _Field("use-radius", "no"),
            _Field("dynamic", "false", writable=False),
            _Field("invalid", "false", writable=False),
            disabled,
            comment,
        ), unique=(_Unique(lambda r: r.get("name"), "failure: server with such name already exists"),),
            named=True),
        _Schema("/ip/dhcp-server/lease", (
            _Field("address", parse=_ipv4, required=True),
            _Field("mac-address", parse=_mac, required=True),
            _Field("client-id"),
            _Field("server", "all", absent_when="all"),
            _Field("address-lists", ""),
            _Field("dhcp-option", ""),
            _Field("status", "waiting", writable=False),
            _Field("last-seen", "never", writable=False),
            _Field("radius", "false", writable=False),
            _Field("dynamic", "false", writable=False),
            _Field("blocked", "false", writable=False),
            disabled,
            comment,
        ), unique=(
            _Unique(lambda r: r["mac-address"] if _enabled(r) else None,
                    "failure: already have static lease for this client", _lease_servers_clash),
            _Unique(lambda r: r["address"] if _enabled(r) else None,
                    "failure: already have static lease with this IP address"),
        ), references=(_Reference("server", "/ip/dhcp-server", also=("all",)),)),
        _Schema("/system/identity", (_Field("name", "MikroTik"),),
                verbs=frozenset({"print", "getall", "set"}), singleton=True),
        _Schema("/system/resource", tuple(_Field(name, writable=False) for name in (
            "uptime", "version", "build-time", "factory-software", "free-memory", "total-memory", "cpu",
            "cpu-count", "cpu-frequency", "cpu-load", "free-hdd-space", "total-hdd-space",
            "write-sect-since-reboot", "write-sect-total", *(() if seven else ("bad-blocks",)),
            "architecture-name", "board-name", "platform")), verbs=frozenset({"print", "getall"}), singleton=True),
    ]
    return {s.path: s for s in schemas}


def _count(value: str) -> str:
    if not value.isdigit():
        raise _Invalid(value)
    return str(int(value))


# --- errors that become replies -------------------------------------------------------------------


class _Trap(Exception):
    def __init__(self, message: str, category: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.category = category


class _Fatal(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _invalid(name: str) -> _Trap:
    return _Trap(f"invalid value for argument {name}", 1)


# --- queries --------------------------------------------------------------------------------------

_Predicate = Callable[[str, Mapping[str, str]], bool]


def _compare(a: str, b: str) -> int:
    na, nb = _number_or_address(a), _number_or_address(b)
    if na is not None and nb is not None:
        return (na > nb) - (na < nb)
    return (a > b) - (a < b)


def _check_ops(ops: str) -> None:
    for c in ops:
        if not (c.isdigit() or c in "!&|."):
            raise _Trap(f"unknown query operation {ops!r}", 5)


def _apply_ops(ops: str, stack: list[bool]) -> None:
    """``?#`` (API manual, Queries): an index pushes a copy of that value (0 is the top), or,
    at the end of the word, replaces the stack with it; ``!`` negates the top, ``&`` and ``|``
    pop two and push the result, ``.`` pushes a copy of the top unless it ends an index. Below the
    stack lie infinitely many ``true``."""
    i, n, after_index = 0, len(ops), False
    while i < n:
        c = ops[i]
        if c.isdigit():
            j = i
            while j < n and ops[j].isdigit():
                j += 1
            index = int(ops[i:j])
            value = stack[-1 - index] if index < len(stack) else True
            if j == n:
                stack[:] = [value]
            else:
                stack.append(value)
            i, after_index = j, True
            continue
        if c == "!":
            stack.append(not (stack.pop() if stack else True))
        elif c in "&|":
            a = stack.pop() if stack else True
            b = stack.pop() if stack else True
            stack.append((a and b) if c == "&" else (a or b))
        elif c == "." and not after_index:
            stack.append(stack[-1] if stack else True)
        after_index = False
        i += 1


class _Query:
    """The ``?`` words of a print, compiled once and evaluated per row."""

    def __init__(self, words: Sequence[str], schema: _Schema) -> None:
        self.steps: list[_Predicate | str] = []
        for word in words:
            self.steps.append(self._compile(word, schema))

    @staticmethod
    def _value(schema: _Schema, name: str, value: str) -> str:
        f = schema.by_name.get(name)
        if f is None or f.parse is _text:
            return value
        try:
            return f.parse(value)
        except (_Invalid, ValueError):
            return value

    def _compile(self, word: str, schema: _Schema) -> _Predicate | str:
        if word.startswith("#"):
            _check_ops(word[1:])
            return word[1:]
        if word.startswith("-"):
            name = word[1:]
            return lambda rid, row: _lookup(rid, row, name) is None
        if word[:1] in ("<", ">", "="):
            op, (name, _, raw) = word[0], word[1:].partition("=")
        elif "=" in word:
            op, (name, _, raw) = "=", word.partition("=")
        else:
            return lambda rid, row: _lookup(rid, row, word) is not None
        value = self._value(schema, name, raw)
        if op == "=":
            return lambda rid, row: _lookup(rid, row, name) == value
        sign = -1 if op == "<" else 1

        def compare(rid: str, row: Mapping[str, str]) -> bool:
            have = _lookup(rid, row, name)
            return have is not None and _compare(have, value) == sign

        return compare

    def __call__(self, rid: str, row: Mapping[str, str]) -> bool:
        stack: list[bool] = []
        for step in self.steps:
            if isinstance(step, str):
                _apply_ops(step, stack)
            else:
                stack.append(step(rid, row))
        return all(stack)


def _lookup(rid: str, row: Mapping[str, str], name: str) -> str | None:
    if name == ".id":
        return rid or None
    return row.get(name)


# --- a menu's rows --------------------------------------------------------------------------------


class _Table:
    def __init__(self, schema: _Schema) -> None:
        self.schema = schema
        self.rows: dict[str, dict[str, str]] = {}
        self.encoded: dict[str, bytes] = {}  # the full-print words of a row, encoded (the .id included)
        self.expires: dict[str, float] = {}  # monotonic time an entry with a timeout goes
        self.indexes: list[dict[object, set[str]]] = [{} for _ in schema.unique]
        self.names: dict[str, str] = {}
        self.next_id = 1
        self.listeners: list[_Listener] = []

    def new_id(self) -> str:
        rid = f"*{self.next_id:X}"
        self.next_id += 1
        return rid

    def index_add(self, rid: str, row: Mapping[str, str]) -> None:
        for unique, index in zip(self.schema.unique, self.indexes, strict=True):
            key = unique.key(row)
            if key is not None:
                index.setdefault(key, set()).add(rid)
        if self.schema.named and "name" in row:
            self.names[row["name"]] = rid

    def index_remove(self, rid: str, row: Mapping[str, str]) -> None:
        for unique, index in zip(self.schema.unique, self.indexes, strict=True):
            key = unique.key(row)
            if key is not None:
                ids = index.get(key)
                if ids is not None:
                    ids.discard(rid)
                    if not ids:
                        del index[key]
        if self.schema.named and self.names.get(row.get("name", "")) == rid:
            del self.names[row["name"]]
            for other, r in self.rows.items():  # a duplicate seeded unchecked takes the name over
                if other != rid and r.get("name") == row["name"]:
                    self.names[row["name"]] = other
                    break

    def conflict(self, rid: str | None, row: Mapping[str, str]) -> str | None:
        for unique, index in zip(self.schema.unique, self.indexes, strict=True):
            key = unique.key(row)
            if key is None:
                continue
            for other in index.get(key, ()):
                if other != rid and (unique.clash is None or unique.clash(row, self.rows[other])):
                    return unique.message
        return None

    def put(self, rid: str, row: dict[str, str]) -> None:
        old = self.rows.get(rid)
        if old is not None:
            self.index_remove(rid, old)
        self.rows[rid] = row
        self.encoded.pop(rid, None)
        self.index_add(rid, row)

    def delete(self, rid: str) -> None:
        row = self.rows.pop(rid)
        self.encoded.pop(rid, None)
        self.expires.pop(rid, None)
        self.index_remove(rid, row)


@dataclass
class _Listener:
    conn: _Connection
    tag: str | None
    table: _Table
    proplist: tuple[str, ...] | None
    query: _Query | None


# --- what a test sees -----------------------------------------------------------------------------


@dataclass
class Received:
    """One sentence the router received, in arrival order across connections."""

    connection: int  # 1 for the first connection accepted, 2 for the next, ...
    at: float  # time.monotonic() on arrival
    words: tuple[str, ...]
    user: str | None  # who the connection was logged in as (None: not yet)
    #: what came of it: "done", "trap", "fatal", "denied" (permissions), "streaming" (listen),
    #: "unanswered" (silent), "dropped", "cut", "ignored" (an empty sentence)
    outcome: str = ""

    @property
    def command(self) -> Command:
        return parse_command(self.words)

    @property
    def word(self) -> str:
        return self.words[0]

    @property
    def attributes(self) -> dict[str, str]:
        return self.command.attributes

    @property
    def ids(self) -> list[str]:
        """The ``.id`` (or ``numbers``) list the command names."""
        attributes = self.attributes
        ref = attributes.get(".id", attributes.get("numbers", ""))
        return [part for part in ref.split(",") if part]


@dataclass
class Faults:
    """Faults on every connection, changed at any time (``router.faults.delay = 2``)."""

    silent: bool = False  # read (and journal) every sentence, never execute or answer one
    delay: float = 0.0  # seconds every reply is held
    drip_bytes: int = 0  # send replies this many bytes at a time (0: whole) ...
    drip_interval: float = 0.0  # ... this many seconds apart
    #: answer the commands that arrive together (pipelined, in one read) last first, as a router
    #: running them concurrently may: only their ``.tag`` tells the replies apart
    reorder: bool = False


@dataclass
class CommandFault:
    """A fault on the Nth command of a kind (see :meth:`FakeRouter.trap_on` and its siblings)."""

    kind: str
    action: Literal["trap", "fatal", "drop", "cut"]
    nth: int = 1
    repeat: bool = False  # also every later match
    message: str = ""
    category: int | None = None
    apply: bool = True  # drop: the command takes effect before the connection goes
    after_bytes: int | None = None  # cut: reply bytes sent before the cut (None: half the first sentence)
    then: Literal["close", "stall"] = "close"  # cut: close the connection, or keep it open and send nothing
    abort: bool = False  # drop/cut: reset (RST) instead of closing (FIN)
    seen: int = 0  # matching commands so far
    fired: int = 0  # times it struck

    def matches(self, word: str) -> bool:
        return _matches(self.kind, word)


def _matches(kind: str, word: str) -> bool:
    if kind == "*":
        return True
    if kind.startswith("/"):
        return word == kind or word.startswith(kind.rstrip("/") + "/")
    return word.rpartition("/")[2] == kind


# --- a connection ---------------------------------------------------------------------------------

_After = Literal["close", "abort", "stall"] | None


class _Connection(asyncio.Protocol):
    def __init__(self, router: FakeRouter) -> None:
        self.router = router
        self.number = 0
        self.transport: asyncio.Transport | None = None
        self.decoder = Decoder()
        self.user: str | None = None
        self.challenge: bytes | None = None
        self.prelogin = 0
        self.listeners: dict[str | None, _Listener] = {}
        self.queue: deque[tuple[float, bytes, _After]] = deque()
        self.writer: asyncio.Task[None] | None = None
        self.stalled = False
        self.closed = False
        self.held: list[tuple[bytes, _After]] | None = None  # the replies of a pipelined batch, until it ends

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (TCP or TLS)
        self.router._connected(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            sentences = self.decoder.feed(data)
        except ProtocolError:
            sentences = []
        if len(sentences) > 1:  # pipelined: their replies go out in one write (or reordered)
            self.held = []
        try:
            for sentence in sentences:
                if self.gone():
                    return
                self.router._handle(self, sentence)
        finally:
            self._release(reorder=self.router.faults.reorder)
        error = self.decoder.error
        if error is not None and not self.gone():
            self.router.protocol_errors.append((self.number, error.reason))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.writer is not None:
            self.writer.cancel()
        self.router._disconnected(self)

    # sending

    def send(self, data: bytes, after: _After = None) -> None:
        """Queue a reply (whole sentences, or a part before a cut), honouring the faults."""
        router = self.router
        if router._loop_thread != threading.get_ident():
            assert router._loop is not None
            router._loop.call_soon_threadsafe(self.send, data, after)
            return
        if self.closed or self.transport is None or self.stalled:
            return
        if self.held is not None:
            self.held.append((data, after))
            if after is not None:  # a close (or a stall) ends the batch here, in order
                self._release(reorder=False)
            return
        faults = router.faults
        if self.writer is None and not self.queue and faults.delay <= 0 and faults.drip_bytes <= 0:
            if data:
                self.transport.write(data)
            self._finish(after)
            return
        assert router._loop is not None
        self.queue.append((router._loop.time() + max(faults.delay, 0.0), data, after))
        if self.writer is None:
            self.writer = router._loop.create_task(self._drain())

    def _release(self, *, reorder: bool) -> None:
        """Send the replies held back while a batch of pipelined commands ran."""
        held, self.held = self.held, None
        if not held:
            return
        if reorder:
            held.reverse()
        if all(after is None for _, after in held):
            self.send(b"".join(data for data, _ in held))
        else:
            for data, after in held:
                self.send(data, after)

    def _finish(self, after: _After) -> None:
        if after == "close":
            self.close()
        elif after == "abort":
            self.abort()
        elif after == "stall":
            self.stalled = True

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.queue and not self.gone():
                due, data, after = self.queue[0]
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                self.queue.popleft()
                if self.gone() or self.stalled or self.transport is None:
                    return
                step, interval = self.router.faults.drip_bytes, self.router.faults.drip_interval
                if step > 0:
                    for start in range(0, len(data), step):
                        if self.gone():
                            return
                        self.transport.write(data[start : start + step])
                        await asyncio.sleep(interval)
                elif data:
                    self.transport.write(data)
                self._finish(after)
        finally:
            self.writer = None

    def gone(self) -> bool:
        """Closed (or closing): nothing more is read or sent (a method, so that it is read afresh)."""
        return self.closed

    def close(self) -> None:
        if not self.closed and self.transport is not None:
            self.closed = True
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.closed = True
            self.transport.abort()


# --- encoding replies -----------------------------------------------------------------------------


def _w(text: str) -> bytes:
    return encode_word(text.encode(ENCODING, ERRORS))


_RE = encode_word(b"!re")
_DONE = encode_word(b"!done")
_TRAP = encode_word(b"!trap")
_FATAL = encode_word(b"!fatal")
_EMPTY = encode_word(b"!empty")


def _sentence(kind: bytes, attributes: Iterable[tuple[str, str]] = (), tag: bytes = b"") -> bytes:
    return kind + b"".join(_w(f"={k}={v}") for k, v in attributes) + tag + b"\x00"


def _trap_sentences(trap: _Trap, tag: bytes) -> bytes:
    attributes = ([("category", str(trap.category))] if trap.category is not None else []) + [("message", trap.message)]
    return _sentence(_TRAP, attributes, tag) + _sentence(_DONE, (), tag)


def _fatal_sentence(reason: str) -> bytes:
    return _FATAL + _w(reason) + b"\x00"


# --- the router -----------------------------------------------------------------------------------


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = re.match(r"\d+(?:\.\d+)*", version)
    if not numbers:
        raise ValueError(f"not a RouterOS version: {version!r}")
    return tuple(int(p) for p in numbers.group(0).split("."))


class FakeRouter:
    """A RouterOS API service on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "7.18",
        user: str = "admin",
        password: str = "",
        users: Mapping[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        identity: str = "MikroTik",
        board_name: str = "CHR",
        channel: str = "stable",
        prelogin_traps: int = 0,
        allowed: Iterable[str] | None = None,
        resource: Mapping[str, str] | None = None,
        journal_limit: int | None = None,
        max_sessions: int | None = None,
    ) -> None:
        self.host = host
        self._port = port
        self.version = version
        self.version_tuple = _version_tuple(version)
        self.users: dict[str, str] = dict(users) if users is not None else {user: password}
        self.ssl_context = ssl_context
        self.channel = channel
        self.board_name = board_name
        #: commands before login answered with a trap before the !fatal (0: fatal at once)
        self.prelogin_traps = prelogin_traps
        #: command prefixes the API user may run (None: everything); change at any time
        self.allowed: frozenset[str] | None = frozenset(allowed) if allowed is not None else None
        #: connections at once (``/ip service set api max-sessions=``); one more is closed at once
        self.max_sessions = max_sessions
        self.faults = Faults()
        self.command_faults: list[CommandFault] = []
        #: (connection, reason) of each stream that was no RouterOS API (the connection was reset)
        self.protocol_errors: list[tuple[int, str]] = []
        #: (sentence, traceback) of each command the double itself failed on (answered with !fatal)
        self.internal_errors: list[tuple[tuple[str, ...], str]] = []
        self.reboots = 0
        self._schemas = _schemas(self.version_tuple)
        self._tables: dict[str, _Table] = {}
        self._lock = threading.RLock()
        #: the journal keeps the last ``journal_limit`` sentences (None: all; a long benchmark sets one)
        self._journal: deque[Received] = deque(maxlen=journal_limit)
        self._conns: set[_Connection] = set()
        self._accepted = 0
        self._booted = time.monotonic()
        self._resource = dict(resource or {})
        self._clock = (0, "")  # the second and its text, for creation-time
        self._server: asyncio.AbstractServer | _Pending | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._thread_stop: asyncio.Event | None = None
        self._serving: list[asyncio.Task[Any]] = []
        self._identity = identity
        self._boot(keep=False)

    # -- life ------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self._port

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> FakeRouter:
        """Listen (in the running event loop)."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._listen_now()
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._loop is None:
            return
        self._close_server()
        for conn in list(self._conns):
            conn.abort()
        for task in self._serving:
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        self._serving.clear()
        await asyncio.sleep(0)

    async def __aenter__(self) -> FakeRouter:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def start_thread(self) -> FakeRouter:
        """Run in a thread of its own with its own event loop (for synchronous tests)."""
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except BaseException as e:  # reported to start_thread's caller
                failure.append(e)
                ready.set()
                return
            ready.set()
            await self._thread_stop.wait()
            await self.stop()

        self._thread = threading.Thread(target=lambda: asyncio.run(serve()), name=f"fake-router-{self._port}",
                                        daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None or self._thread_stop is None:
            return
        self._loop.call_soon_threadsafe(self._thread_stop.set)
        self._thread.join(10)
        self._thread = None

    @contextlib.contextmanager
    def threaded(self) -> Iterator[FakeRouter]:
        self.start_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    def _call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` in the router's event loop thread (at once when already there)."""
        loop = self._loop
        if loop is None or self._loop_thread == threading.get_ident() or loop.is_closed():
            return fn()
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(fn())
            except BaseException as e:  # handed to the caller's thread
                done.set_exception(e)

        loop.call_soon_threadsafe(run)
        return done.result(10)

    def _listen_now(self) -> None:
        """Bind and listen at once (connections wait in the backlog until served)."""
        assert self._loop is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self._port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        loop = self._loop

        pending = _Pending(sock)

        async def serve() -> None:
            if self._server is not pending:  # refused again before it started serving
                return
            server = await loop.create_server(lambda: _Connection(self), sock=sock, ssl=self.ssl_context)
            if self._server is pending:
                self._server = server
            else:
                server.close()

        self._server = pending
        task = loop.create_task(serve())
        self._serving.append(task)
        task.add_done_callback(lambda t: self._serving.remove(t) if t in self._serving else None)

    def _close_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()

    def refuse_connections(self) -> None:
        """Stop listening: new connections are refused (ECONNREFUSED); open ones stay."""
        self._call(self._close_server)

    def accept_connections(self) -> None:
        """Listen again on the same port."""
        self._call(self._relisten)

    def _relisten(self) -> None:
        if self._server is None:
            self._listen_now()

    # -- state -------------------------------------------------------------------------------------

    def _boot(self, *, keep: bool, ids: Literal["fresh", "restart"] = "fresh") -> None:
        with self._lock:
            old = self._tables
            self._tables = {}
            for path, schema in self._schemas.items():
                table = _Table(schema)
                previous = old.get(path)
                if previous is not None and ids == "fresh":
                    table.next_id = previous.next_id
                for rid, row in schema.builtin.items():
                    table.put(rid, self._complete(schema, dict(row)))
                if previous is not None and keep and not schema.runtime:
                    for rid, row in previous.rows.items():
                        if rid in schema.builtin:
                            table.put(rid, row)
                        elif rid not in previous.expires:
                            table.put(table.new_id() if not schema.singleton else "", row)
                self._tables[path] = table
            self._booted = time.monotonic()
            identity = self._tables["/system/identity"]
            if not identity.rows:
                identity.put("", self._complete(identity.schema, {"name": self._identity}))

    def _complete(self, schema: _Schema, row: dict[str, str]) -> dict[str, str]:
        """Defaults filled in, in the menu's order."""
        out: dict[str, str] = {}
        for f in schema.fields:
            if f.name in row:
                out[f.name] = row[f.name]
            elif f.default is not None:
                out[f.name] = f.default
        for name, value in row.items():
            if name not in out:
                out[name] = value
        for f in schema.fields:
            if f.absent_when is not None and out.get(f.name) == f.absent_when:
                del out[f.name]
        return out

    def _table(self, menu: str) -> _Table:
        path = "/" + menu.strip("/").replace(" ", "/")
        table = self._tables.get(path)
        if table is None:
            raise KeyError(f"the double has no menu {path}")
        return table

    def _now_text(self) -> str:
        second = int(time.time())
        if second != self._clock[0]:
            now = datetime.fromtimestamp(second, tz=UTC)
            text = now.strftime("%Y-%m-%d %H:%M:%S") if self.version_tuple >= (7,) else (
                now.strftime("%b/%d/%Y %H:%M:%S").lower())
            self._clock = (second, text)
        return self._clock[1]

    def _resource_row(self) -> dict[str, str]:
        uptime = _format_duration(int(time.monotonic() - self._booted) * 1000)
        seven = self.version_tuple >= (7,)
        row = {
            "uptime": uptime,
            "version": f"{self.version} ({self.channel})",
            "build-time": "2025-02-24 14:03:48" if seven else "sep/06/2023 09:26:48",
            "factory-software": "7.1" if seven else "6.44.6",
            "free-memory": "900000000",
            "total-memory": "1073741824",
            "cpu": "QEMU",
            "cpu-count": "2",
            "cpu-frequency": "2400",
            "cpu-load": "1",
            "free-hdd-space": "80000000",
            "total-hdd-space": "94371840",
            "write-sect-since-reboot": "100",
            "write-sect-total": "100",
            **({} if seven else {"bad-blocks": "0"}),
            "architecture-name": "x86_64",
            "board-name": self.board_name,
            "platform": "MikroTik",
        }
        row.update(self._resource)
        return row

    def _purge(self, table: _Table) -> None:
        if not table.expires:
            return
        now = time.monotonic()
        for rid in [rid for rid, when in table.expires.items() if when <= now]:
            self._remove_row(table, rid)

    def _view(self, table: _Table, rid: str) -> Mapping[str, str]:
        """A row as print shows it (an address-list entry's timeout is the time left)."""
        row = table.rows[rid]
        when = table.expires.get(rid)
        if when is None:
            return row
        left = math.ceil(max(when - time.monotonic(), 0.0))
        return {**row, "timeout": _format_duration(left * 1000)}

    def _rows(self, table: _Table) -> Iterator[tuple[str, Mapping[str, str]]]:
        if table.schema.path == "/system/resource":
            yield "", self._resource_row()
            return
        self._purge(table)
        for rid in table.rows:
            yield rid, self._view(table, rid)

    # -- test API: tables ---------------------------------------------------------------------------

    def seed(self, menu: str, rows: Iterable[Mapping[str, object]], *, check: bool = True) -> list[str]:
        """Put rows in a menu as if configured (values parsed and defaulted as an ``add`` does);
        their ids. A row may carry its own ``.id``. ``check=False`` skips uniqueness and references
        (a configuration imported from an older version may hold duplicates). Into a singleton
        (``/system/identity``, ``/system/resource``) the values are merged. A row that does not
        go in raises ValueError (with the router's trap message); the rows before it stay."""
        with self._lock:
            table = self._table(menu)
            if table.schema.path == "/system/resource":
                for given in rows:
                    self._resource.update({k: _api_value(v) for k, v in given.items()})
                return [""]
            ids: list[str] = []
            for given in rows:
                values = {k: _api_value(v) for k, v in given.items()}
                rid = values.pop(".id", None)
                try:
                    ids.append(self._add(table, values, rid=rid, check=check, seeding=True))
                except _Trap as e:
                    raise ValueError(f"seed {table.schema.path} {given}: {e.message}") from None
            return ids

    def table(self, menu: str) -> list[dict[str, str]]:
        """The menu's rows as a full print shows them, each with its ``.id`` (singletons without)."""
        with self._lock:
            table = self._table(menu)
            return [({".id": rid} if rid else {}) | dict(row) for rid, row in self._rows(table)]

    def clear(self, menu: str) -> None:
        """Empty a menu (built-in rows stay)."""
        with self._lock:
            table = self._table(menu)
            for rid in [rid for rid in table.rows if rid not in table.schema.builtin]:
                self._remove_row(table, rid)

    # -- test API: what happened ---------------------------------------------------------------------

    @property
    def journal(self) -> list[Received]:
        """Every sentence received since the start (or the last :meth:`clear_journal`)."""
        with self._lock:
            return list(self._journal)

    def commands(self, kind: str = "*", *, connection: int | None = None) -> list[Received]:
        """Received commands of a kind (as for faults: ``"add"``, ``"/queue/simple"``, ``"*"``),
        login and empty sentences left out."""
        return [r for r in self.journal
                if r.words and r.word != "/login" and _matches(kind, r.word)
                and (connection is None or r.connection == connection)]

    def writes(self, kind: str = "*") -> list[Received]:
        """Received commands that change something (add, set, remove, unset, enable, disable)."""
        return [r for r in self.commands(kind) if r.word.rpartition("/")[2] in WRITE_VERBS]

    def clear_journal(self) -> None:
        with self._lock:
            self._journal.clear()

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._conns)

    @property
    def accepted(self) -> int:
        """Connections accepted since the start."""
        return self._accepted

    # -- test API: faults ---------------------------------------------------------------------------

    def _arm(self, fault: CommandFault) -> CommandFault:
        with self._lock:
            self.command_faults.append(fault)
        return fault

    def trap_on(self, kind: str, nth: int = 1, *, message: str = "failure: fault injected by the test",
                category: int | None = None, repeat: bool = False) -> CommandFault:
        """Answer the Nth command of ``kind`` with ``!trap`` + ``!done``, without running it."""
        return self._arm(CommandFault(kind, "trap", nth, repeat, message, category))

    def fatal_on(self, kind: str, nth: int = 1, *, message: str = "fault injected by the test",
                 repeat: bool = False) -> CommandFault:
        """Answer the Nth command of ``kind`` with ``!fatal`` and close, without running it."""
        return self._arm(CommandFault(kind, "fatal", nth, repeat, message))

    def drop_on(self, kind: str, nth: int = 1, *, apply: bool = True, abort: bool = False,
                repeat: bool = False) -> CommandFault:
        """Close the connection on the Nth command of ``kind`` instead of answering. With
        ``apply`` it takes effect first: an ``add`` whose ``!done`` never comes (M-4)."""
        return self._arm(CommandFault(kind, "drop", nth, repeat, apply=apply, abort=abort))

    def cut_on(self, kind: str, nth: int = 1, *, after_bytes: int | None = None,
               then: Literal["close", "stall"] = "close", abort: bool = False,
               repeat: bool = False) -> CommandFault:
        """Run the Nth command of ``kind``, send only the first ``after_bytes`` of its reply
        (default: half its first sentence, so the cut falls inside a sentence), then close the
        connection or, with ``then="stall"``, keep it open and send nothing more."""
        return self._arm(CommandFault(kind, "cut", nth, repeat, after_bytes=after_bytes, then=then, abort=abort))

    def clear_faults(self) -> None:
        """Disarm every command fault and reset :attr:`faults`."""
        with self._lock:
            self.command_faults.clear()
            self.faults = Faults()

    def fatal_all(self, message: str = "fault injected by the test") -> None:
        """Send ``!fatal`` on every connection now, then close them."""
        def fatal() -> None:
            for conn in list(self._conns):
                conn.send(_fatal_sentence(message), "close")

        self._call(fatal)

    def drop_connections(self, *, abort: bool = False) -> None:
        """Close every open connection without a word (reset with ``abort``)."""

        def drop() -> None:
            for conn in list(self._conns):
                conn.abort() if abort else conn.close()

        self._call(drop)

    def reboot(self, *, keep_config: bool = True, ids: Literal["fresh", "restart"] = "fresh",
               down_for: float = 0.0) -> None:
        """As a reboot: every connection dropped, ``/ppp/active`` and address-list entries with a
        timeout gone, the rest kept (``keep_config``) under new ``.id`` values. ``ids="fresh"``
        continues the numbering (an old id never names a row again); ``"restart"`` numbers from
        ``*1`` again, as a real boot may, so an old id can name another row. ``down_for``:
        connections are refused that long."""

        def reboot() -> None:
            with self._lock:
                self.reboots += 1
                for conn in list(self._conns):
                    conn.abort()
                self._boot(keep=keep_config, ids=ids)
            if down_for > 0:
                self._close_server()
                assert self._loop is not None
                self._loop.call_later(down_for, self._relisten)

        self._call(reboot)

    # -- connections ---------------------------------------------------------------------------------

    def _connected(self, conn: _Connection) -> None:
        self._accepted += 1
        conn.number = self._accepted
        if self.max_sessions is not None and len(self._conns) >= self.max_sessions:
            conn.close()  # as the API service past /ip service max-sessions
            return
        self._conns.add(conn)

    def _disconnected(self, conn: _Connection) -> None:
        self._conns.discard(conn)
        with self._lock:
            for listener in conn.listeners.values():
                with contextlib.suppress(ValueError):
                    listener.table.listeners.remove(listener)
            conn.listeners.clear()

    def _fault_for(self, word: str) -> CommandFault | None:
        struck = None
        for fault in self.command_faults:
            if not fault.matches(word):
                continue
            fault.seen += 1
            if struck is None and (fault.seen == fault.nth or (fault.repeat and fault.seen > fault.nth)):
                fault.fired += 1
                struck = fault
        return struck

    def _handle(self, conn: _Connection, sentence: tuple[bytes, ...]) -> None:
        words = text_sentence(sentence)
        with self._lock:
            entry = Received(conn.number, time.monotonic(), words, conn.user)
            self._journal.append(entry)
            if not words:
                entry.outcome = "ignored"  # "empty sentences are ignored"
                return
            if self.faults.silent or conn.stalled:
                entry.outcome = "unanswered"
                return
            command = parse_command(words)
            tag = _w(f".tag={command.tag}") if command.tag else b""
            fault = self._fault_for(command.word)
            if fault is not None and fault.action != "cut" and not (fault.action == "drop" and fault.apply):
                if fault.action == "trap":
                    entry.outcome = "trap"
                    conn.send(_trap_sentences(_Trap(fault.message, fault.category), tag))
                elif fault.action == "fatal":
                    entry.outcome = "fatal"
                    conn.send(_fatal_sentence(fault.message), "close")
                else:
                    entry.outcome = "dropped"
                    conn.send(b"", "abort" if fault.abort else "close")
                return
            try:
                reply, after, entry.outcome = self._execute(conn, command, tag)
                if entry.outcome == "done" and reply.startswith(_TRAP):
                    entry.outcome = "trap"
            except _Trap as trap:
                reply, after, entry.outcome = _trap_sentences(trap, tag), None, "trap"
            except _Fatal as fatal:
                reply, after, entry.outcome = _fatal_sentence(fatal.reason), "close", "fatal"
            except Exception as e:  # a bug of the double: loud on the wire and in internal_errors
                self.internal_errors.append((words, traceback.format_exc()))
                reply, after = _fatal_sentence(f"internal error of the test double: {e!r}"), "close"
                entry.outcome = "fatal"
            if fault is not None:
                if fault.action == "drop":
                    entry.outcome = "dropped"
                    conn.send(b"", "abort" if fault.abort else "close")
                    return
                cut = fault.after_bytes if fault.after_bytes is not None else max(1, _first_sentence(reply) // 2)
                entry.outcome = "cut"
                conn.send(reply[:cut], "stall" if fault.then == "stall" else ("abort" if fault.abort else "close"))
                return
            conn.send(reply, after)

    def _permitted(self, word: str) -> bool:
        allowed = self.allowed
        return allowed is None or any(_matches(prefix, word) for prefix in allowed if prefix.startswith("/"))

    def _execute(self, conn: _Connection, command: Command, tag: bytes) -> tuple[bytes, _After, str]:
        word = command.word
        if word == "/login":
            return self._login(conn, command, tag), None, "done"
        if word == "/quit":
            return _fatal_sentence("session terminated on request"), "close", "fatal"
        if conn.user is None:
            conn.prelogin += 1
            if conn.prelogin > self.prelogin_traps:
                raise _Fatal("not logged in")
            raise _Trap("not logged in")
        if word == "/cancel":
            return self._cancel(conn, command, tag), None, "done"
        if not self._permitted(word):
            return _trap_sentences(_Trap("not enough permissions (9)"), tag), None, "denied"
        if word == "/system/reboot":
            self._call_later(self.reboot)
            return b"", "close", "done"
        table = self._tables.get(command.menu)
        if table is None:
            if any(path == word or path.startswith(word.rstrip("/") + "/") for path in self._tables):
                raise _Trap("no such command", 0)
            raise _Trap("no such command prefix", 0)
        verb = command.verb
        if verb not in table.schema.verbs:
            raise _Trap("no such command", 0)
        if verb in ("print", "getall"):
            return self._print(conn, table, command, tag)
        if verb == "listen":
            self._listen(conn, table, command, None, _Query(command.queries, table.schema) if command.queries else None)
            return b"", None, "streaming"
        if verb == "add":
            rid = self._add(table, dict(command.attributes))
            return _sentence(_DONE, [("ret", rid)], tag), None, "done"
        if verb == "set":
            self._set(table, command.attributes)
        elif verb == "remove":
            self._remove(table, command.attributes)
        elif verb in ("enable", "disable"):
            self._set(table, {k: v for k, v in command.attributes.items() if k in (".id", "numbers")}
                      | {"disabled": "true" if verb == "disable" else "false"})
        elif verb == "unset":
            self._unset(table, command.attributes)
        return _sentence(_DONE, (), tag), None, "done"

    def _call_later(self, fn: Callable[[], object]) -> None:
        assert self._loop is not None
        self._loop.call_soon(fn)

    # -- login -------------------------------------------------------------------------------------

    def _login(self, conn: _Connection, command: Command, tag: bytes) -> bytes:
        attributes = command.attributes
        name = attributes.get("name")
        modern = self.version_tuple >= (6, 43)
        if "response" in attributes:
            challenge, conn.challenge = conn.challenge, None
            known = self.users.get(name or "")
            if (challenge is not None and known is not None and self.version_tuple <= (6, 45, 1)
                    and hmac.compare_digest(attributes["response"].lower(), _response(known, challenge))):
                conn.user = name
                return _sentence(_DONE, (), tag)
            message = "invalid user name or password (6)" if modern else "cannot log in"
            return _trap_sentences(_Trap(message), tag)
        if modern and "password" in attributes:
            known = self.users.get(name or "")
            if known is not None and hmac.compare_digest(known.encode(ENCODING, ERRORS),
                                                         attributes["password"].encode(ENCODING, ERRORS)):
                conn.user = name
                return _sentence(_DONE, (), tag)
            return _trap_sentences(_Trap("invalid user name or password (6)"), tag)
        conn.challenge = secrets.token_bytes(16)
        return _sentence(_DONE, [("ret", conn.challenge.hex())], tag)

    # -- print, listen, cancel -------------------------------------------------------------------------

    def _encoded(self, table: _Table, rid: str, row: Mapping[str, str]) -> bytes:
        """The attribute words of a full print of a row (cached while the row is unchanged)."""
        cached = table.encoded.get(rid)
        if cached is not None:
            return cached
        data = (_w(f"=.id={rid}") if rid else b"") + b"".join(_w(f"={k}={v}") for k, v in row.items())
        if rid and rid not in table.expires:
            table.encoded[rid] = data
        return data

    def _row_sentence(self, table: _Table, rid: str, row: Mapping[str, str], proplist: tuple[str, ...] | None,
                      tag: bytes) -> bytes:
        if proplist is None:
            return _RE + self._encoded(table, rid, row) + tag + b"\x00"
        words = []
        for name in proplist:
            value = rid if name == ".id" else row.get(name)
            if value:
                words.append(_w(f"={name}={value}"))
            elif value is not None and name != ".id":
                words.append(_w(f"={name}="))
        return _RE + b"".join(words) + tag + b"\x00"

    def _print(self, conn: _Connection, table: _Table, command: Command, tag: bytes) -> tuple[bytes, _After, str]:
        attributes = command.attributes
        for name in attributes:
            if name not in PRINT_ARGS:
                raise _Trap(f"unknown parameter {name}")
        raw = attributes.get(".proplist", attributes.get("proplist"))
        proplist = tuple(p for p in raw.split(",") if p) if raw is not None else None
        query = _Query(command.queries, table.schema) if command.queries else None
        follow_only = "follow-only" in attributes
        if follow_only:
            self._listen(conn, table, command, proplist, query)
            return b"", None, "streaming"
        rows = [(rid, row) for rid, row in self._rows(table) if query is None or query(rid, row)]
        if "count-only" in attributes:
            return _sentence(_DONE, [("ret", str(len(rows)))], tag), None, "done"
        out = [self._row_sentence(table, rid, row, proplist, tag) for rid, row in rows]
        if "follow" in attributes:
            self._listen(conn, table, command, proplist, query)
            return b"".join(out), None, "streaming"
        if not rows and self.version_tuple >= (7, 18):
            out.append(_EMPTY + tag + b"\x00")
        out.append(_DONE + tag + b"\x00")
        return b"".join(out), None, "done"

    def _listen(self, conn: _Connection, table: _Table, command: Command, proplist: tuple[str, ...] | None,
                query: _Query | None) -> None:
        listener = _Listener(conn, command.tag, table, proplist, query)
        previous = conn.listeners.pop(command.tag, None)
        if previous is not None:
            with contextlib.suppress(ValueError):
                previous.table.listeners.remove(previous)
        conn.listeners[command.tag] = listener
        table.listeners.append(listener)

    def _notify(self, table: _Table, rid: str, dead: bool) -> None:
        for listener in list(table.listeners):
            tag = _w(f".tag={listener.tag}") if listener.tag else b""
            if dead:
                data = _sentence(_RE, [(".id", rid), (".dead", "yes")], tag)
            else:
                row = self._view(table, rid)
                if listener.query is not None and not listener.query(rid, row):
                    continue
                data = self._row_sentence(table, rid, row, listener.proplist, tag)
            listener.conn.send(data)

    def _cancel(self, conn: _Connection, command: Command, tag: bytes) -> bytes:
        target = command.attributes.get("tag")
        victims = [t for t in conn.listeners if target is None or t == (target or None)]
        traps, dones = [], []
        for victim in victims:
            listener = conn.listeners.pop(victim)
            with contextlib.suppress(ValueError):
                listener.table.listeners.remove(listener)
            victim_tag = _w(f".tag={victim}") if victim else b""
            traps.append(_sentence(_TRAP, [("category", "2"), ("message", "interrupted")], victim_tag))
            dones.append(_sentence(_DONE, (), victim_tag))
        # the victim's !trap, the cancel's !done, then the victim's !done (API manual, /cancel example)
        return b"".join(traps) + _sentence(_DONE, (), tag) + b"".join(dones)

    # -- writes --------------------------------------------------------------------------------------

    def _parse(self, schema: _Schema, name: str, value: str, *, seeding: bool) -> str:
        f = schema.by_name.get(name)
        if f is None or (not f.writable and not seeding):
            raise _Trap(f"unknown parameter {name}")
        try:
            return f.parse(value)
        except (_Invalid, ValueError):
            raise _invalid(name) from None

    def _check_references(self, schema: _Schema, row: Mapping[str, str]) -> None:
        for ref in schema.references:
            value = row.get(ref.field)
            if value is None or value in ref.also:
                continue
            other = self._tables[ref.menu]
            if ref.key == "name" and other.schema.named:
                found = value in other.names
            else:
                found = any(r.get(ref.key) == value for r in other.rows.values())
            if not found:
                raise _Trap(f"input does not match any value of {ref.field}", 1)

    def _finish_row(self, table: _Table, rid: str, row: dict[str, str], *, check: bool) -> dict[str, str]:
        schema = table.schema
        row = self._complete(schema, row)
        for f in schema.fields:
            if f.required and f.name not in row:
                raise _Trap(f"missing value(s) of argument(s) {f.name}")
        if schema.path == "/ip/firewall/address-list":
            row["dynamic"] = "true" if "timeout" in row else "false"
        if check:
            self._check_references(schema, row)
            message = table.conflict(rid, row)
            if message is not None:
                raise _Trap(message)
        return row

    def _add(self, table: _Table, attributes: dict[str, str], *, rid: str | None = None, check: bool = True,
             seeding: bool = False) -> str:
        schema = table.schema
        if schema.singleton:
            row = dict(next(iter(table.rows.values()), {}))
            for name, value in attributes.items():
                row[name] = self._parse(schema, name, value, seeding=True)
            table.put("", self._complete(schema, row))
            self._notify(table, "", False)
            return ""
        self._purge(table)
        before = attributes.pop("place-before", None) if schema.ordered else None
        row = {name: self._parse(schema, name, value, seeding=seeding) for name, value in attributes.items()}
        if schema.auto_name and "name" not in row:
            taken = {r.get("name") for r in table.rows.values()}
            n = 1
            while f"{schema.auto_name}{n}" in taken:
                n += 1
            row["name"] = f"{schema.auto_name}{n}"
        if schema.path == "/ip/firewall/address-list" and "creation-time" not in row:
            row["creation-time"] = self._now_text()
        if row.get("timeout") == "0s":
            del row["timeout"]
        row = self._finish_row(table, "", row, check=check)
        before_id = self._resolve(table, before)[0] if before is not None else ""
        if rid is None:
            rid = table.new_id()
        else:
            number = int(rid.lstrip("*"), 16)
            rid = f"*{number:X}"
            if rid in table.rows:
                raise _Trap("failure: an item with this .id exists")
            table.next_id = max(table.next_id, number + 1)
        table.put(rid, row)
        if "timeout" in row:
            table.expires[rid] = time.monotonic() + _duration_ms(row["timeout"]) / 1000
        if before_id:
            order = [r for r in table.rows if r != rid]
            at = order.index(before_id)
            order.insert(at, rid)
            table.rows = {r: table.rows[r] for r in order}
        self._notify(table, rid, False)
        return rid

    def _resolve(self, table: _Table, ref: str) -> list[str]:
        """The ids a ``.id`` list names, all of them or ``no such item``."""
        if not ref:
            raise _Trap("missing =.id=")
        self._purge(table)
        ids: list[str] = []
        for raw in ref.split(","):
            part = raw.strip()
            rid: str | None = None
            if part.startswith("*"):
                try:
                    candidate = f"*{int(part[1:], 16):X}"
                except ValueError:
                    candidate = ""
                rid = candidate if candidate in table.rows else None
            elif table.schema.named:
                rid = table.names.get(part)
            if rid is None:
                raise _Trap("no such item")
            if rid not in ids:
                ids.append(rid)
        return ids

    def _target_ids(self, table: _Table, attributes: Mapping[str, str]) -> list[str]:
        if table.schema.singleton:
            return [""]
        return self._resolve(table, attributes.get(".id", attributes.get("numbers", "")))

    def _set(self, table: _Table, attributes: Mapping[str, str]) -> None:
        schema = table.schema
        ids = self._target_ids(table, attributes)
        changes = {name: self._parse(schema, name, value, seeding=False)
                   for name, value in attributes.items() if name not in (".id", "numbers")}
        self._update(table, ids, lambda row: row | changes)

    def _unset(self, table: _Table, attributes: Mapping[str, str]) -> None:
        schema = table.schema
        ids = self._target_ids(table, attributes)
        names = [n for n in attributes.get("value-name", "").split(",") if n]
        if not names:
            raise _Trap("missing value(s) of argument(s) value-name")
        for name in names:
            f = schema.by_name.get(name)
            if f is None or not f.writable or f.required:
                raise _invalid("value-name")

        def unset(row: dict[str, str]) -> dict[str, str]:
            out = {k: v for k, v in row.items() if k not in names}
            for name in names:
                default = schema.by_name[name].default
                if default is not None:
                    out[name] = default
            return out

        self._update(table, ids, unset)

    def _update(self, table: _Table, ids: list[str], change: Callable[[dict[str, str]], dict[str, str]]) -> None:
        """Apply ``change`` to every row, or (on a trap) to none."""
        old = {rid: table.rows[rid] for rid in ids}
        done: list[str] = []
        try:
            for rid in ids:
                row = self._finish_row(table, rid, change(dict(old[rid])), check=True)
                if table.schema.path == "/ip/firewall/address-list":
                    if "timeout" in row and row["timeout"] != old[rid].get("timeout"):
                        if row["timeout"] == "0s":
                            del row["timeout"]
                            row["dynamic"] = "false"
                            table.expires.pop(rid, None)
                        else:
                            table.expires[rid] = time.monotonic() + _duration_ms(row["timeout"]) / 1000
                    elif "timeout" not in row:
                        table.expires.pop(rid, None)
                table.put(rid, row)
                done.append(rid)
        except _Trap:
            for rid in done:
                table.put(rid, old[rid])
            raise
        for rid in ids:
            self._notify(table, rid, False)

    def _remove(self, table: _Table, attributes: Mapping[str, str]) -> None:
        ids = self._target_ids(table, attributes)
        for rid in ids:
            if rid in table.schema.builtin:
                raise _Trap("failure: can not remove default profile")
        for rid in ids:
            self._remove_row(table, rid)

    def _remove_row(self, table: _Table, rid: str) -> None:
        table.delete(rid)
        self._notify(table, rid, True)


def _first_sentence(data: bytes) -> int:
    """The length in bytes of the first sentence of ``data`` (all of it if none ends)."""
    pos = 0
    while pos < len(data):
        decoded = decode_length(data, pos)
        if decoded is None:
            break
        length, start = decoded
        pos = start + length
        if length == 0:
            return pos
    return len(data)


class _Pending:
    """The listening socket while ``create_server`` is still being set up."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def close(self) -> None:
        self.sock.close()


def _response(password: str, challenge: bytes) -> str:
    """The pre-6.43 login response: ``00`` + hex MD5 of 0x00, the password and the challenge."""
    digest = hashlib.md5(b"\x00" + password.encode(ENCODING, ERRORS) + challenge, usedforsecurity=False)
    return "00" + digest.hexdigest()


# --- API-SSL certificates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Certificates:
    """A test CA and a server certificate it signed (PEM files in ``directory``)."""

    directory: Path
    ca: Path
    ca_key: Path
    certificate: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certificate, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """Verifies the router against this CA (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.ca))


def make_certificates(directory: Path | str | None = None, *, hosts: Sequence[str] = ("127.0.0.1", "localhost"),
                      name: str = "lastmile test") -> Certificates:
    """A CA and a certificate for ``hosts`` (IP addresses and DNS names), made with Debian's
    ``openssl`` in ``directory`` (a new temporary one unless told). EC P-256, valid two days.

    When ``directory`` already holds them they are used as they are, so that several routers
    (processes started at once with the same ``--tls-dir``) share one CA."""
    where = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="fake-router-tls-"))
    where.mkdir(parents=True, exist_ok=True)
    with (where / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _make_certificates(where, hosts, name)


def _make_certificates(where: Path, hosts: Sequence[str], name: str) -> Certificates:
    ca, ca_key = where / "ca.pem", where / "ca.key"
    cert, key, csr, ext = where / "router.pem", where / "router.key", where / "router.csr", where / "router.ext"
    if all(p.exists() for p in (ca, ca_key, cert, key)):
        return Certificates(where, ca, ca_key, cert, key)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str | Path) -> None:
        subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", *curve, "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", f"/CN={name} CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-addext", "subjectKeyIdentifier=hash")
    openssl("req", *curve, "-keyout", key, "-out", csr, "-subj", f"/CN={hosts[0]}")
    alt = ",".join(f"IP:{h}" if _looks_numeric(h) or ":" in h else f"DNS:{h}" for h in hosts)
    ext.write_text(f"subjectAltName={alt}\nbasicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage=serverAuth\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    openssl("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", f"0x{secrets.token_hex(8)}",
            "-out", cert, "-days", "2", "-extfile", ext)
    return Certificates(where, ca, ca_key, cert, key)


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[FakeRouter]:
    """``async with running(version="6.40") as router:`` — a started router, stopped after."""
    router = FakeRouter(**kwargs)
    async with router:
        yield router


# --- as a process ---------------------------------------------------------------------------------


async def _serve(args: argparse.Namespace) -> None:
    certificates = make_certificates(args.tls_dir) if args.tls else None
    seed = json.loads(Path(args.seed).read_text()) if args.seed else {}
    routers = []
    for n in range(args.count):
        router = FakeRouter(host=args.host, port=args.port + n if args.port else 0, version=args.version,
                            user=args.user, password=args.password, journal_limit=args.journal,
                            identity=f"{args.identity}{n + 1 if args.count > 1 else ''}",
                            ssl_context=certificates.server_context() if certificates else None)
        router.faults.delay = args.delay
        for menu, rows in seed.items():
            router.seed(menu, rows)
        routers.append(router)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        for router in routers:
            await stack.enter_async_context(router)
        await asyncio.sleep(0)
        for router in routers:
            print(json.dumps({"host": router.host, "port": router.port, "tls": certificates is not None,
                              "ca": str(certificates.ca) if certificates else None, "version": router.version,
                              "pid": os.getpid()}), flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.routeros", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--tls", action="store_true", help="API-SSL with a test CA (its path printed)")
    parser.add_argument("--tls-dir", help="where the CA and certificate go (default: a new temporary directory)")
    parser.add_argument("--version", default="7.18")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="")
    parser.add_argument("--seed", help='JSON file {"/menu/path": [{"property": "value", ...}, ...], ...}')
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every reply is held")
    parser.add_argument("--journal", type=int, default=1000, help="sentences the journal keeps (default 1000)")
    parser.add_argument("--count", type=int, default=1,
                        help="routers in this process, on consecutive ports from --port (or free ones); a line each")
    parser.add_argument("--identity", default="MikroTik", help="/system/identity name (numbered with --count)")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a lastmile dependency
        asyncio.run(_serve(args))
    else:
        uvloop.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
