"""radiusd's SQL. Every function takes a connection (or pool connection) and does one job."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import attrgetter
from typing import Any

from daemons.db import Connection
from radiusd.acct import SessionRecord

# One query for the subscriber cache: a service with what its customer, tariff and pool add.
SUBSCRIBER_SQL = """
SELECT s.id, s.login, s.password, s.status, s.customer_id, c.status AS customer_status,
       s.ipv4, s.ipv6_prefix, s.delegated_ipv6_prefix, s.mac::text AS mac, s.simultaneous_use,
       s.tariff_id, t.download_kbps, t.upload_kbps, t.burst_download_kbps, t.burst_upload_kbps,
       t.burst_threshold_download_kbps, t.burst_threshold_upload_kbps, t.burst_time_s, t.priority,
       t.session_timeout_s, t.radius_reply, p.id AS pool_id, p.name AS pool_name, p.managed_by AS pool_managed_by
FROM services s
JOIN customers c ON c.id = s.customer_id
JOIN tariffs t ON t.id = s.tariff_id
LEFT JOIN ip_pools p ON p.id = s.pool_id
"""

NAS_SQL = """
SELECT id, name, address, secret, type, coa_port, require_message_authenticator, limit_proxy_state
FROM nas
"""



async def load_nas(conn: Connection) -> list[Any]:
    return list(await conn.fetch(NAS_SQL))


SERVICES_BY = {"services": "s.id", "customers": "s.customer_id", "tariffs": "s.tariff_id", "ip_pools": "s.pool_id"}
"""Which services to read again when rows of a table change: the column of the subscriber query
that names them."""


async def load_subscribers(conn: Connection) -> list[Any]:
    """Every service, as the subscriber cache holds it."""
    return list(await conn.fetch(SUBSCRIBER_SQL))


async def load_subscribers_by(conn: Connection, table: str, ids: Iterable[int]) -> list[Any]:
    """The services that rows ``ids`` of ``table`` (one of ``SERVICES_BY``) touch."""
    return list(await conn.fetch(f"{SUBSCRIBER_SQL} WHERE {SERVICES_BY[table]} = ANY($1::bigint[])", list(ids)))


async def load_online(conn: Connection) -> list[Any]:
    return list(await conn.fetch(
        "SELECT service_id, acct_unique_id FROM radius_sessions WHERE stopped_at IS NULL AND service_id IS NOT NULL"))


async def count_online(conn: Connection, service_id: int, restarts: dict[int, float] | None = None) -> int:
    """The database's count of a service's open sessions (the check before a Simultaneous-Use
    reject). ``restarts``: NAS id → the time of its latest Accounting-On/Off; the sessions it had
    open before then are over, whether or not that record is committed yet."""
    nas_ids, times = (list(restarts), list(restarts.values())) if restarts else ([], [])
    n: int = await conn.fetchval(
        "SELECT count(*) FROM radius_sessions r WHERE service_id = $1 AND stopped_at IS NULL AND NOT EXISTS ("
        "SELECT FROM unnest($2::bigint[], $3::float8[]) AS x(nas_id, t) "
        "WHERE r.nas_id = x.nas_id AND r.started_at <= to_timestamp(x.t))", service_id, nas_ids, times)
    return n


@dataclass(frozen=True, slots=True)
class SessionChange:
    """A session that opened or closed in a batch: for the online index and the MQTT events."""

    unique_id: str
    service_id: int | None
    username: str
    framed_ip: str | None
    started_at: datetime
    stopped_at: datetime | None
    opened: bool  # first seen in this batch, and not stopped
    closed: bool  # stopped in this batch
    nas_id: int | None = None
    by_nas: bool = False  # closed because its NAS restarted (Accounting-On/Off)


@dataclass(frozen=True, slots=True)
class NasRestart:
    """An Accounting-On or -Off committed: every session its NAS had open before ``at`` is over."""

    nas_id: int
    status: int  # AcctStatus.ACCOUNTING_ON or ACCOUNTING_OFF
    at: float  # Unix seconds
    sessions_closed: int


_UPSERT_SESSIONS = """
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::float8[], $3::float8[], $4::text[], $5::text[], $6::bigint[],
                         $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
                         $14::text[], $15::bigint[], $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[],
                         $20::float8[], $21::text[])
    AS t(uid, started_at, event_time, username, acct_session_id, nas_id, service_id, nas_address, nas_port_id,
         calling, called, framed_ip, framed_v6, delegated, session_time, in_octets, out_octets, in_packets,
         out_packets, stopped_at, cause)
), known AS MATERIALIZED (
    -- Sessions seen before (every Interim-Update and Stop): read, not rewritten. LATERAL with
    -- LIMIT is an index lookup per record whatever the statistics said when the plan was made
    -- (a plan cached while the table was empty would otherwise scan it, ever longer).
    SELECT i.uid AS acct_unique_id, x.started_at FROM input i
    CROSS JOIN LATERAL (SELECT started_at FROM radius_session_index WHERE acct_unique_id = i.uid LIMIT 1) x
), added AS (
    -- New sessions. One that another radiusd added after this statement's snapshot conflicts:
    -- DO UPDATE waits for it and returns its started_at, so both agree on the partition.
    INSERT INTO radius_session_index AS x (acct_unique_id, started_at)
    SELECT uid, to_timestamp(started_at) FROM input WHERE uid NOT IN (SELECT acct_unique_id FROM known)
    ON CONFLICT (acct_unique_id) DO UPDATE SET started_at = x.started_at
    RETURNING acct_unique_id, started_at
), keys AS (
    SELECT acct_unique_id, started_at FROM known UNION ALL SELECT acct_unique_id, started_at FROM added
), prev AS MATERIALIZED (
    SELECT k.acct_unique_id, r.stopped_at FROM keys k
    CROSS JOIN LATERAL (SELECT stopped_at FROM radius_sessions
                        WHERE acct_unique_id = k.acct_unique_id AND started_at = k.started_at LIMIT 1) r
), up AS (
    INSERT INTO radius_sessions AS r (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id,
        nas_address, nas_port_id, calling_station_id, called_station_id, framed_ip, framed_ipv6_prefix,
        delegated_ipv6_prefix, updated_at, stopped_at, session_time_s, input_octets, output_octets,
        input_packets, output_packets, terminate_cause)
    SELECT i.uid, k.started_at, i.service_id, i.nas_id, i.username, i.acct_session_id, i.nas_address::inet,
        i.nas_port_id, i.calling, i.called, i.framed_ip::inet, i.framed_v6::cidr, i.delegated::cidr,
        to_timestamp(i.event_time), to_timestamp(i.stopped_at), i.session_time, i.in_octets, i.out_octets,
        i.in_packets, i.out_packets, i.cause
    FROM input i JOIN keys k ON k.acct_unique_id = i.uid
    ON CONFLICT (acct_unique_id, started_at) DO UPDATE SET
        updated_at = GREATEST(r.updated_at, EXCLUDED.updated_at),
        stopped_at = LEAST(r.stopped_at, EXCLUDED.stopped_at),
        session_time_s = GREATEST(r.session_time_s, EXCLUDED.session_time_s),
        input_octets = GREATEST(r.input_octets, EXCLUDED.input_octets),
        output_octets = GREATEST(r.output_octets, EXCLUDED.output_octets),
        input_packets = GREATEST(r.input_packets, EXCLUDED.input_packets),
        output_packets = GREATEST(r.output_packets, EXCLUDED.output_packets),
        terminate_cause = CASE WHEN EXCLUDED.stopped_at < r.stopped_at THEN EXCLUDED.terminate_cause
                               ELSE COALESCE(r.terminate_cause, EXCLUDED.terminate_cause) END,
        service_id = COALESCE(r.service_id, EXCLUDED.service_id),
        framed_ip = COALESCE(r.framed_ip, EXCLUDED.framed_ip),
        framed_ipv6_prefix = COALESCE(r.framed_ipv6_prefix, EXCLUDED.framed_ipv6_prefix),
        delegated_ipv6_prefix = COALESCE(r.delegated_ipv6_prefix, EXCLUDED.delegated_ipv6_prefix)
    RETURNING acct_unique_id, service_id, username, host(framed_ip) AS framed_ip, started_at, stopped_at, nas_id
), lease_input AS (
    -- A session's address, when it is in a lastmile pool: bound to the session (and kept alive)
    -- while it is open, freed when it stops. One row per address: the latest record decides.
    SELECT DISTINCT ON (framed_ip) uid, framed_ip::inet AS address, service_id, stopped_at IS NOT NULL AS stop
    FROM input WHERE framed_ip IS NOT NULL ORDER BY framed_ip, event_time DESC
), leases AS (
    UPDATE ip_leases l SET
        state = CASE WHEN li.stop THEN 'free' ELSE 'bound' END,
        acct_unique_id = CASE WHEN li.stop THEN NULL ELSE li.uid END,
        service_id = COALESCE(li.service_id, l.service_id),
        expires_at = CASE WHEN li.stop THEN NULL ELSE now() + make_interval(secs => $22) END,
        updated_at = now()
    FROM lease_input li
    -- The array (an InitPlan) makes this index lookups by address; a plain join on li sends the
    -- planner to a sequential scan of every pool address for a few hundred records.
    WHERE l.address = ANY ((SELECT array_agg(address) FROM lease_input)::inet[]) AND l.address = li.address
      AND (l.acct_unique_id = li.uid OR (l.state = 'reserved' AND l.service_id = li.service_id)
           OR (l.state = 'free' AND NOT li.stop))
)
-- Only what changed state comes back: an Interim-Update costs no row here.
SELECT up.acct_unique_id, up.service_id, up.username, up.framed_ip, up.started_at, up.stopped_at,
       prev.acct_unique_id IS NULL AND up.stopped_at IS NULL AS opened,
       up.stopped_at IS NOT NULL AND (prev.acct_unique_id IS NULL OR prev.stopped_at IS NULL) AS closed, up.nas_id
FROM up LEFT JOIN prev USING (acct_unique_id)
WHERE (prev.acct_unique_id IS NULL AND up.stopped_at IS NULL)
   OR (up.stopped_at IS NOT NULL AND (prev.acct_unique_id IS NULL OR prev.stopped_at IS NULL))
"""


_COLUMNS = [attrgetter(name) for name in (
    "unique_id", "started_at", "event_time", "username", "acct_session_id", "nas_id", "service_id", "nas_address",
    "nas_port_id", "calling_station_id", "called_station_id", "framed_ip", "framed_ipv6_prefix",
    "delegated_ipv6_prefix", "session_time", "input_octets", "output_octets", "input_packets", "output_packets",
    "stopped_at", "terminate_cause")]
"""The upsert's input arrays, in order, each taken from every record at once."""


async def write_sessions(conn: Connection, records: list[SessionRecord], lease_ttl: int) -> list[SessionChange]:
    """Upsert one record per session (see acct.merge_batch), keep pool leases in step, and return
    the sessions that opened or closed. Call inside a transaction: nothing is acknowledged
    before it commits.
    """
    rows = await conn.fetch(_UPSERT_SESSIONS, *(list(map(get, records)) for get in _COLUMNS), lease_ttl)
    return [SessionChange(*row) for row in rows]


_CLOSE_RETURNING = ("RETURNING acct_unique_id, service_id, username, host(framed_ip) AS framed_ip, started_at, "
                    "stopped_at, nas_id")


async def close_nas_sessions(conn: Connection, nas_id: int, when: float, cause: str) -> list[SessionChange]:
    """Accounting-On/Off: every session the NAS had open before ``when`` (Unix seconds) is over."""
    rows = await conn.fetch(
        "WITH w AS (SELECT to_timestamp($2::float8) AS t) "
        "UPDATE radius_sessions SET stopped_at = GREATEST(w.t, updated_at), terminate_cause = $3, updated_at = "
        f"GREATEST(w.t, updated_at) FROM w WHERE nas_id = $1 AND stopped_at IS NULL AND started_at <= w.t "
        f"{_CLOSE_RETURNING}",
        nas_id, when, cause)
    return await _freed(conn, rows, by_nas=True)


async def close_stale(conn: Connection, max_silence_s: int) -> list[SessionChange]:
    """Close sessions with no update for ``max_silence_s``: their NAS lost them or their Stop."""
    rows = await conn.fetch(
        "UPDATE radius_sessions SET stopped_at = updated_at, terminate_cause = 'Stale' "
        "WHERE stopped_at IS NULL AND updated_at < now() - make_interval(secs => $1) " + _CLOSE_RETURNING,
        max_silence_s)
    return await _freed(conn, rows)


async def _freed(conn: Connection, rows: list[Any], by_nas: bool = False) -> list[SessionChange]:
    if rows:
        await conn.execute(
            "UPDATE ip_leases SET state = 'free', acct_unique_id = NULL, expires_at = NULL, updated_at = now() "
            "WHERE state = 'bound' AND acct_unique_id = ANY($1::text[])", [r["acct_unique_id"] for r in rows])
    return [SessionChange(r["acct_unique_id"], r["service_id"], r["username"], r["framed_ip"], r["started_at"],
                          r["stopped_at"], False, True, r["nas_id"], by_nas) for r in rows]


async def expire_leases(conn: Connection, lease_ttl: int = 720) -> int:
    """Free reserved, stocked or bound addresses whose time ran out (no Accounting-Start, a lost
    session, a stock whose radiusd died). An address that an open session already uses is bound
    to it instead: a reservation whose Start raced the recording of a stock hand-out, or a stock
    address handed out by a radiusd that died before it could record it (the NAS's Start came,
    but found the row still in stock)."""
    await conn.execute(
        "UPDATE ip_leases l SET state = 'bound', acct_unique_id = s.acct_unique_id, service_id = s.service_id, "
        "holder = NULL, expires_at = now() + make_interval(secs => $1), updated_at = now() "
        "FROM radius_sessions s WHERE l.state IN ('reserved', 'stock') AND l.expires_at < now() "
        "AND s.stopped_at IS NULL AND s.framed_ip = l.address AND s.service_id IS NOT NULL "
        "AND (l.state = 'stock' OR s.service_id = l.service_id)", lease_ttl)
    result: str = await conn.execute(
        "UPDATE ip_leases SET state = 'free', acct_unique_id = NULL, holder = NULL, expires_at = NULL, "
        "updated_at = now() WHERE state <> 'free' AND expires_at < now()")
    return int(result.rsplit(maxsplit=1)[-1])


async def lease(conn: Connection, wants: list[tuple[int, int, bool]], reserve_s: int) -> list[str | None]:
    """Reserve an address for ``reserve_s`` for each (pool_id, service_id, single_session), in
    order; None where the pool is full (schema.sql ``lastmile_lease``: one call and one commit for a whole batch)."""
    rows = await conn.fetch("SELECT n, address FROM lastmile_lease($1::bigint[], $2::bigint[], $3::boolean[], $4)",
                            [w[0] for w in wants], [w[1] for w in wants], [w[2] for w in wants], reserve_s)
    return [r["address"] for r in sorted(rows, key=lambda r: r["n"])]


async def previous_addresses(conn: Connection) -> dict[int, tuple[int, str]]:
    """service id → (pool id, address) of the address each service had last (stickiness)."""
    rows = await conn.fetch("SELECT service_id, pool_id, host(address) AS address FROM ip_leases "
                            "WHERE service_id IS NOT NULL")
    return {r["service_id"]: (r["pool_id"], r["address"]) for r in rows}


async def stock_take(conn: Connection, pool_id: int, holder: str, count: int, hold_s: int) -> list[str]:
    """Take up to ``count`` free addresses of a pool into ``holder``'s stock for ``hold_s``
    seconds: first those no service had, then the longest free (a service's previous address
    stays available to it as long as possible)."""
    rows = await conn.fetch(
        "UPDATE ip_leases SET state = 'stock', holder = $2, expires_at = now() + make_interval(secs => $4), "
        "updated_at = now() WHERE address IN ("
        "    SELECT address FROM ip_leases WHERE pool_id = $1 AND state = 'free' "
        "    ORDER BY service_id IS NOT NULL, updated_at LIMIT $3 FOR UPDATE SKIP LOCKED) "
        "RETURNING host(address) AS address", pool_id, holder, count, hold_s)
    return [r["address"] for r in rows]


async def stock_handed(conn: Connection, holder: str, handed: list[tuple[str, int]], hold_s: int,
                       lease_ttl: int) -> set[str]:
    """Record which service each stock address went to: reserved for it for ``hold_s`` (or bound
    already, when its Accounting-Start came first). Returns the addresses recorded. (``= ANY``
    makes the rows index lookups: a join on the unnest alone plans a scan of every pool address.)"""
    rows = await conn.fetch(
        "UPDATE ip_leases l SET state = CASE WHEN s.uid IS NULL THEN 'reserved' ELSE 'bound' END, "
        "service_id = i.service_id, acct_unique_id = s.uid, holder = NULL, "
        "expires_at = now() + make_interval(secs => CASE WHEN s.uid IS NULL THEN $4::integer ELSE $5::integer END), "
        "updated_at = now() "
        "FROM unnest($2::inet[], $3::bigint[]) AS i(address, service_id) "
        "LEFT JOIN LATERAL (SELECT r.acct_unique_id AS uid FROM radius_sessions r WHERE r.framed_ip = i.address "
        "    AND r.stopped_at IS NULL AND r.service_id = i.service_id ORDER BY r.started_at DESC LIMIT 1) s ON true "
        "WHERE l.address = ANY ($2::inet[]) AND l.address = i.address AND l.state = 'stock' AND l.holder = $1 "
        "RETURNING host(l.address) AS address",
        holder, [a for a, _ in handed], [s for _, s in handed], hold_s, lease_ttl)
    return {r["address"] for r in rows}


async def stock_renew(conn: Connection, holder: str, hold_s: int) -> list[str]:
    """Push the expiry of ``holder``'s stock ``hold_s`` ahead; the addresses it still holds."""
    rows = await conn.fetch(
        "UPDATE ip_leases SET expires_at = now() + make_interval(secs => $2) WHERE state = 'stock' AND holder = $1 "
        "RETURNING host(address) AS address", holder, hold_s)
    return [r["address"] for r in rows]


async def stock_release(conn: Connection, holder: str) -> int:
    """Give ``holder``'s unused stock back to its pools (a clean shutdown)."""
    result: str = await conn.execute(
        "UPDATE ip_leases SET state = 'free', holder = NULL, expires_at = NULL, updated_at = now() "
        "WHERE state = 'stock' AND holder = $1", holder)
    return int(result.rsplit(maxsplit=1)[-1])


_INSERT_POSTAUTH = """
INSERT INTO radius_postauth (at, username, service_id, nas_id, result, reason, calling_station_id, framed_ip)
SELECT to_timestamp(at), username, service_id, nas_id, result, reason, calling, framed_ip::inet
FROM unnest($1::float8[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[])
    AS t(at, username, service_id, nas_id, result, reason, calling, framed_ip)
"""


PostAuthRow = tuple[float, str, int | None, int | None, str, str, str | None, object]


async def write_postauth(conn: Connection, rows: Sequence[PostAuthRow]) -> None:
    """Rows of (Unix time, username, service id, NAS id, result, reason, Calling-Station-Id,
    Framed-IP as text or an ipaddress object). One INSERT of arrays: a third of the client CPU
    of a binary COPY of the same rows (which encodes every value on its own), the same in
    PostgreSQL."""
    if not rows:
        return
    at, username, service_id, nas_id, result, reason, calling, framed = (list(c) for c in zip(*rows, strict=True))
    framed_ip = [None if a is None else str(a) for a in framed]
    await conn.execute(_INSERT_POSTAUTH, at, username, service_id, nas_id, result, reason, calling, framed_ip)


async def last_postauth(conn: Connection, username: str, nas_id: int) -> datetime | None:
    """When the newest post-auth row of ``username`` from the NAS ``nas_id`` was written, if any."""
    at: datetime | None = await conn.fetchval(
        "SELECT max(at) FROM radius_postauth WHERE username = $1 AND nas_id = $2", username, nas_id)
    return at


async def postauth_reason(conn: Connection, username: str, nas_id: int, result: str,
                          after: datetime | None) -> str | None:
    """The reason of the first post-auth row of ``username`` from ``nas_id`` with ``result``
    (``accept``/``reject``) newer than ``after``: the row of the request sent after ``after``
    was read (``lastmile radius test``)."""
    reason: str | None = await conn.fetchval(
        "SELECT reason FROM radius_postauth WHERE username = $1 AND nas_id = $2 AND result = $3 "
        "AND ($4::timestamptz IS NULL OR at > $4) ORDER BY at LIMIT 1", username, nas_id, result, after)
    return reason


async def service_id(conn: Connection, login: str) -> int | None:
    found: int | None = await conn.fetchval("SELECT id FROM services WHERE login = $1", login)
    return found


async def lastmile_pool_of(conn: Connection, login: str) -> str | None:
    """The name of the lastmile-managed pool the service ``login`` takes its address from, if any
    (and it has no static address)."""
    name: str | None = await conn.fetchval(
        "SELECT p.name FROM services s JOIN ip_pools p ON p.id = s.pool_id "
        "WHERE s.login = $1 AND s.ipv4 IS NULL AND p.managed_by = 'lastmile'", login)
    return name


@dataclass(frozen=True, slots=True)
class CoaTarget:
    """A live session a CoA/Disconnect request goes to."""

    unique_id: str
    started_at: datetime
    nas_id: int
    username: str
    acct_session_id: str
    framed_ip: str | None
    nas_address: str | None


async def claim_coa(conn: Connection) -> Any:
    """Take the oldest pending CoA request (or one whose sender vanished two minutes ago)."""
    return await conn.fetchrow(
        "UPDATE coa_requests SET state = 'sending' WHERE id = ("
        "    SELECT id FROM coa_requests"
        "    WHERE state = 'pending' OR (state = 'sending' AND updated_at < now() - interval '2 minutes')"
        "    ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) "
        "RETURNING id, service_id, action")


async def coa_targets(conn: Connection, service_id: int) -> list[CoaTarget]:
    rows = await conn.fetch(
        "SELECT acct_unique_id, started_at, nas_id, username, acct_session_id, host(framed_ip) AS framed_ip, "
        "host(nas_address) AS nas_address "
        "FROM radius_sessions WHERE service_id = $1 AND stopped_at IS NULL AND nas_id IS NOT NULL", service_id)
    return [CoaTarget(*r) for r in rows]


async def finish_coa(conn: Connection, request_id: int, state: str, result: str, attempts: int) -> None:
    await conn.execute("UPDATE coa_requests SET state = $2, result = $3, attempts = $4 WHERE id = $1",
                       request_id, state, result, attempts)


async def record_coa_on_session(conn: Connection, target: CoaTarget, result: str) -> None:
    await conn.execute(
        "UPDATE radius_sessions SET last_coa_at = now(), last_coa_result = $3 "
        "WHERE acct_unique_id = $1 AND started_at = $2", target.unique_id, target.started_at, result)


async def notify(conn: Connection, channel: str, payloads: list[str]) -> None:
    """NOTIFY ``channel`` once per payload, in one round trip (delivered when the transaction
    commits, if it does)."""
    if payloads:
        await conn.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
                           channel, payloads)
