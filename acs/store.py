"""The ACS's SQL. Every function takes a connection (a pool's, or one in the caller's
transaction) and does one job; the batching around the hot ones is acs/writer.py.

Times cross this module as POSIX seconds (float, UTC), as acs/model.py has them: the SQL turns
them into timestamptz (``to_timestamp``) and back (``extract(epoch ...)``), which costs the
client less than datetime objects.

Files (acs_files, acs_file_chunks) are stored in chunks of :data:`CHUNK` bytes (1 MiB): chunk
``n`` holds bytes ``n * CHUNK`` up to ``(n + 1) * CHUNK - 1`` of the file, every chunk but the
last is full, ``size`` is the total and ``sha256`` the hex digest of the whole; ``complete`` is
set (with size and sha256) once every chunk is written, and only complete files are served.
The admin writes its uploads into the same tables in the same layout.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from acs import datamodel
from acs.model import (
    ConnectionRequestCredentials,
    DataModel,
    Device,
    DeviceView,
    Effect,
    FaultRecorded,
    FileRef,
    Param,
    ParametersForgotten,
    ParametersKnown,
    Preset,
    PresetsApplied,
    Task,
    TaskDone,
    TaskFaulted,
    TaskWaiting,
    TransferEnded,
)
from daemons.db import Connection
from daemons.secrets import Keyring

Executor = Connection | asyncpg.Pool
"""A connection, or a pool (each statement then takes a connection for its own time only)."""

CHUNK = 1 << 20
"""The size of a file's chunks (acs_file_chunks.data) but the last."""
CONNECTION_REQUEST_PURPOSE = "acs-connection-request"
"""The sealing purpose of acs_devices.connection_request_password."""
RETRY_DELAY = 300.0
"""A faulted task's first retry comes this many seconds later, each next one twice as late."""
TRANSFER_TIMEOUT = 3600.0
"""A Download or Upload whose TransferComplete has not come in this long has failed."""



def _any_instance(path: str) -> str:
    """A pattern of ``path`` with each instance number (".1.") standing for any."""
    return r"\.\d+\.".join(re.escape(part) for part in re.split(r"\.\d+\.", path))


PPPOE_USERNAME = re.compile("|".join(_any_instance(p) for p in datamodel.pppoe_username_paths()))
"""The parameters that hold a PPPoE user name (acs/datamodel.py's, in any instance): one read or
set is kept in acs_devices.pppoe_username (searchable, and the device is linked to the service
of that login)."""

TASK_RPC: dict[str, str] = {
    "get": "GetParameterValues", "set": "SetParameterValues", "refresh": "GetParameterNames",
    "add_object": "AddObject", "delete_object": "DeleteObject", "get_attributes": "GetParameterAttributes",
    "set_attributes": "SetParameterAttributes", "reboot": "Reboot", "factory_reset": "FactoryReset",
    "download": "Download", "upload": "Upload",
}
"""The RPC a task kind runs (acs_faults.rpc of a task's fault)."""


# --- devices ---------------------------------------------------------------------------------

@dataclass(slots=True)
class InformRow:
    """What an Inform says of its device (acs/server.py fills it from the message and the peer)."""

    cwmp_id: str
    oui: str
    product_class: str
    serial: str
    manufacturer: str
    data_model: DataModel
    cwmp_version: str
    hardware_version: str
    software_version: str
    provisioning_code: str
    parameter_key: str
    connection_request_url: str
    address: str | None
    wan_address: str
    pppoe_username: str  # '' unless the Inform carried it
    bootstrap: bool  # "0 BOOTSTRAP": the device's known tree is wiped, and it is stale
    boot: bool  # "1 BOOT"
    at: float


@dataclass(frozen=True, slots=True)
class InformResult:
    """The device after its Inform's upsert; ``tasks_due``: a queued task of it is due now;
    ``new``: the Inform created the row."""

    device: Device
    tasks_due: bool
    new: bool


DEVICE_COLUMNS = """d.id, d.cwmp_id, d.oui, d.product_class, d.serial, d.data_model, d.software_version,
    d.hardware_version, d.manufacturer, d.tags, d.customer_id, d.service_id, d.presets_key, d.stale,
    extract(epoch FROM d.due_at)::float8 AS due_at, d.connection_request_url, d.connection_request_username,
    host(d.address) AS address"""


def _device(r: Any) -> Device:
    return Device(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], tuple(r[9]), r[10], r[11], r[12], r[13],
                  r[14], r[15], r[16], r[17])


def _link(serial: str, login: str, unlinked: str) -> str:
    """The service a device belongs to when it has none (``unlinked``: the condition, which gates the
    lookup): the one whose cpe_serial is its serial, else the one whose login is its PPPoE user
    name (case-insensitive)."""
    return f"""SELECT s.id, s.customer_id FROM services s
        WHERE {unlinked} AND (s.cpe_serial = {serial} OR lower(s.login) = lower({login}))
        ORDER BY (s.cpe_serial = {serial}) IS TRUE DESC, s.id LIMIT 1"""


# One statement for a batch of Informs of distinct devices (acs/writer.py makes the batches).
# A device that is not linked to a service yet is linked here; 0 BOOTSTRAP wipes its tree.
INFORM_SQL = f"""
WITH input AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
                         $15::text[], $16::bool[], $17::bool[], $18::float8[])
        AS i(cwmp_id, oui, product_class, serial, manufacturer, data_model, cwmp_version, hardware_version,
             software_version, provisioning_code, parameter_key, connection_request_url, address, wan_address,
             pppoe_username, bootstrap, boot, at)
), up AS (
    INSERT INTO acs_devices AS d (cwmp_id, oui, product_class, serial, manufacturer, data_model, cwmp_version,
        hardware_version, software_version, provisioning_code, parameter_key, connection_request_url, address,
        wan_address, pppoe_username, service_id, customer_id, first_inform_at, last_inform_at, last_boot_at,
        last_bootstrap_at, stale)
    SELECT i.cwmp_id, i.oui, i.product_class, i.serial, i.manufacturer, i.data_model, i.cwmp_version,
           i.hardware_version, i.software_version, i.provisioning_code, i.parameter_key, i.connection_request_url,
           i.address::inet, i.wan_address, i.pppoe_username, link.id, link.customer_id, to_timestamp(i.at),
           to_timestamp(i.at), CASE WHEN i.boot THEN to_timestamp(i.at) END,
           CASE WHEN i.bootstrap THEN to_timestamp(i.at) END, true
    FROM input i
    LEFT JOIN acs_devices cur ON cur.cwmp_id = i.cwmp_id
    LEFT JOIN LATERAL ({_link("i.serial", "coalesce(nullif(i.pppoe_username, ''), cur.pppoe_username)",
                              "cur.service_id IS NULL")}) link ON true
    ORDER BY i.cwmp_id
    ON CONFLICT (cwmp_id) DO UPDATE SET
        oui = EXCLUDED.oui, product_class = EXCLUDED.product_class, serial = EXCLUDED.serial,
        manufacturer = EXCLUDED.manufacturer, data_model = EXCLUDED.data_model,
        cwmp_version = EXCLUDED.cwmp_version, hardware_version = EXCLUDED.hardware_version,
        software_version = EXCLUDED.software_version, provisioning_code = EXCLUDED.provisioning_code,
        parameter_key = EXCLUDED.parameter_key, connection_request_url = EXCLUDED.connection_request_url,
        address = EXCLUDED.address, wan_address = EXCLUDED.wan_address,
        pppoe_username = CASE WHEN EXCLUDED.pppoe_username <> '' THEN EXCLUDED.pppoe_username
                              ELSE d.pppoe_username END,
        service_id = coalesce(d.service_id, EXCLUDED.service_id),
        customer_id = CASE WHEN d.service_id IS NULL AND EXCLUDED.service_id IS NOT NULL THEN EXCLUDED.customer_id
                           ELSE d.customer_id END,
        first_inform_at = coalesce(d.first_inform_at, EXCLUDED.first_inform_at),
        last_inform_at = EXCLUDED.last_inform_at,
        last_boot_at = coalesce(EXCLUDED.last_boot_at, d.last_boot_at),
        last_bootstrap_at = coalesce(EXCLUDED.last_bootstrap_at, d.last_bootstrap_at),
        stale = d.stale OR EXCLUDED.last_bootstrap_at IS NOT NULL OR d.software_version <> EXCLUDED.software_version
                OR (d.service_id IS NULL AND EXCLUDED.service_id IS NOT NULL)
    RETURNING {DEVICE_COLUMNS}, d.xmax = 0 AS created
), wipe AS (
    DELETE FROM acs_parameters p USING up, input i
    WHERE i.cwmp_id = up.cwmp_id AND i.bootstrap AND NOT up.created AND p.device_id = up.id
)
SELECT up.*, EXISTS (SELECT FROM acs_tasks t WHERE t.device_id = up.id AND t.status = 'queued'
                     AND t.not_before <= to_timestamp(i.at)) AS tasks_due
FROM up JOIN input i ON i.cwmp_id = up.cwmp_id
"""


async def upsert_informs(conn: Connection, rows: Sequence[InformRow]) -> list[InformResult]:
    """Record the Informs of ``rows`` (distinct devices: one statement cannot touch a row twice),
    in the caller's transaction; the results in the order of ``rows``."""
    records = await conn.fetch(
        INFORM_SQL, [r.cwmp_id for r in rows], [r.oui for r in rows], [r.product_class for r in rows],
        [r.serial for r in rows], [r.manufacturer for r in rows], [r.data_model for r in rows],
        [r.cwmp_version for r in rows], [r.hardware_version for r in rows], [r.software_version for r in rows],
        [r.provisioning_code for r in rows], [r.parameter_key for r in rows],
        [r.connection_request_url for r in rows], [r.address for r in rows], [r.wan_address for r in rows],
        [r.pppoe_username for r in rows], [r.bootstrap for r in rows], [r.boot for r in rows],
        [r.at for r in rows])
    by_id = {r[1]: InformResult(_device(r), r[19], r[18]) for r in records}
    return [by_id[r.cwmp_id] for r in rows]


async def load_device(conn: Connection, device_id: int) -> Device | None:
    r = await conn.fetchrow(f"SELECT {DEVICE_COLUMNS} FROM acs_devices d WHERE d.id = $1", device_id)
    return None if r is None else _device(r)


# --- what a session reads --------------------------------------------------------------------

CONTEXT_SQL = """
SELECT jsonb_build_object(
           'id', d.id, 'cwmp_id', d.cwmp_id, 'oui', d.oui, 'product_class', d.product_class, 'serial', d.serial,
           'manufacturer', d.manufacturer, 'data_model', d.data_model, 'software_version', d.software_version,
           'hardware_version', d.hardware_version, 'provisioning_code', d.provisioning_code, 'tags', d.tags,
           'pppoe_username', d.pppoe_username, 'wan_address', d.wan_address, 'address', host(d.address),
           'connection_request_username', d.connection_request_username) AS device,
       CASE WHEN s.id IS NOT NULL THEN jsonb_build_object(
           'id', s.id, 'login', s.login, 'password', s.password, 'status', s.status, 'ipv4', host(s.ipv4),
           'ipv6_prefix', s.ipv6_prefix::text, 'delegated_ipv6_prefix', s.delegated_ipv6_prefix::text,
           'mac', s.mac::text, 'cpe_serial', s.cpe_serial, 'custom', s.custom, 'tariff', t.name,
           'download_kbps', t.download_kbps, 'upload_kbps', t.upload_kbps) END AS service,
       CASE WHEN c.id IS NOT NULL THEN jsonb_build_object(
           'id', c.id, 'number', c.number, 'name', c.name, 'email', c.email, 'phone', c.phone,
           'street', c.street, 'city', c.city, 'zip', c.zip, 'country', c.country, 'status', c.status,
           'language', c.language, 'custom', c.custom) END AS customer
FROM acs_devices d
LEFT JOIN services s ON s.id = d.service_id
LEFT JOIN tariffs t ON t.id = s.tariff_id
LEFT JOIN customers c ON c.id = d.customer_id
WHERE d.id = $1
"""


async def template_context(conn: Connection, device_id: int, *, upload_url: str = "") -> dict[str, Any]:
    """What preset templates see: ``{"device": {...}, "service": {...} | None, "customer": {...} |
    None, "upload_url": ...}`` (the fields of CONTEXT_SQL; service and customer custom fields
    under ``custom``, the tariff's name under ``service.tariff``)."""
    r = await conn.fetchrow(CONTEXT_SQL, device_id)
    if r is None:
        return {"device": None, "service": None, "customer": None, "upload_url": upload_url}
    return {"device": r[0], "service": r[1], "customer": r[2], "upload_url": upload_url}


def _file_ids(tasks: Iterable[Task], presets: Iterable[Preset]) -> set[int]:
    ids = {t.args["file_id"] for t in tasks if t.kind == "download" and type(t.args.get("file_id")) is int}
    for preset in presets:
        actions: list[Any] = preset.actions  # as stored: acs/plan.py checks their shape, not this
        ids.update(a["download"] for a in actions if isinstance(a, dict) and type(a.get("download")) is int)
    return ids


async def load_view(conn: Connection, device: Device, events: Sequence[str], now: float, *,
                    file_url: Callable[[int, str], str], upload_url: str,
                    presets: Sequence[Preset] = ()) -> DeviceView:
    """Everything a session with work needs of ``device``: its whole known tree, its due tasks
    (queued, not_before passed) in id order, the template context, and the files its download
    tasks and ``presets``' download actions name (complete, not a device's upload), each with
    the URL ``file_url(file_id, name)`` gives."""
    tree = {r[0]: Param(r[0], r[1], r[2], r[3], r[4]) for r in await conn.fetch(
        "SELECT path, value, type, writable, extract(epoch FROM read_at)::float8 FROM acs_parameters "
        "WHERE device_id = $1", device.id)}
    tasks = [Task(r[0], r[1], r[2], r[3], r[4]) for r in await conn.fetch(
        "SELECT id, kind, args, attempts, max_attempts FROM acs_tasks "
        "WHERE device_id = $1 AND status = 'queued' AND not_before <= to_timestamp($2) ORDER BY id", device.id, now)]
    context = await template_context(conn, device.id, upload_url=upload_url)
    files: dict[int, FileRef] = {}
    wanted = _file_ids(tasks, presets)
    if wanted:
        for r in await conn.fetch("SELECT id, name, file_type, size, version FROM acs_files "
                                  "WHERE id = ANY($1::bigint[]) AND complete AND device_id IS NULL", list(wanted)):
            files[r[0]] = FileRef(r[0], r[1], r[2], r[3], file_url(r[0], r[1]), r[4])
    return DeviceView(device, tree, tasks, context, tuple(events), now, files)


async def presets(conn: Connection) -> list[Preset]:
    """The enabled presets, in the order their actions apply (weight, then id)."""
    return [Preset(r[0], r[1], r[2], r[3], r[4], r[5]) for r in await conn.fetch(
        "SELECT id, name, weight, match, actions, enabled FROM acs_presets WHERE enabled ORDER BY weight, id")]


async def cpe_passwords(conn: Connection, cwmp_id: str | None = None) -> dict[str, str]:
    """cwmp_id -> sealed password (purpose "acs-cpe") of the devices that have their own (all, or
    the one ``cwmp_id``): the cache acs/auth.py checks a CPE against, refreshed on NOTIFY
    lastmile_acs_credentials (its payload: the cwmp_id)."""
    rows = await conn.fetch("SELECT cwmp_id, cpe_password FROM acs_devices "
                            "WHERE cpe_password IS NOT NULL AND ($1::text IS NULL OR cwmp_id = $1)", cwmp_id)
    return {r[0]: r[1] for r in rows}


async def due_task_count(conn: Connection) -> int:
    """Queued tasks whose time has come (a gauge)."""
    n: int = await conn.fetchval("SELECT count(*) FROM acs_tasks WHERE status = 'queued' AND not_before <= now()")
    return n


# --- what a session changes ------------------------------------------------------------------

def _merge(params: Iterable[Param]) -> list[Param]:
    """One Param per path (a statement cannot upsert a row twice): a later field that is known
    wins over an earlier one, an unknown one (None, "", 0.0) keeps it."""
    by_path: dict[str, Param] = {}
    for p in params:
        old = by_path.get(p.path)
        by_path[p.path] = p if old is None else Param(
            p.path, old.value if p.value is None else p.value, p.type or old.type,
            old.writable if p.writable is None else p.writable, p.read_at or old.read_at)
    return list(by_path.values())


async def _known(conn: Connection, device_id: int, params: Sequence[Param], now: float) -> None:
    merged = _merge(params)
    await conn.execute(
        """INSERT INTO acs_parameters AS p (device_id, path, value, type, writable, read_at)
        SELECT $1, x.path, x.value, x.type, x.writable, to_timestamp(x.read_at)
        FROM unnest($2::text[], $3::text[], $4::text[], $5::bool[], $6::float8[])
            AS x(path, value, type, writable, read_at)
        ON CONFLICT (device_id, path) DO UPDATE SET
            value = coalesce(EXCLUDED.value, p.value),
            type = CASE WHEN EXCLUDED.type <> '' THEN EXCLUDED.type ELSE p.type END,
            writable = coalesce(EXCLUDED.writable, p.writable),
            read_at = CASE WHEN EXCLUDED.value IS NOT NULL THEN EXCLUDED.read_at ELSE p.read_at END""",
        device_id, [p.path for p in merged], [p.value for p in merged], [p.type for p in merged],
        [p.writable for p in merged], [p.read_at or now for p in merged])
    logins = [p.value for p in merged if p.value and PPPOE_USERNAME.fullmatch(p.path)]
    if logins:
        await set_pppoe_username(conn, device_id, logins[-1])


async def set_pppoe_username(conn: Connection, device_id: int, username: str) -> None:
    """Keep the device's PPPoE user name, and link it to its service if it has none yet."""
    await conn.execute(
        f"""UPDATE acs_devices d SET pppoe_username = $2,
            service_id = coalesce(d.service_id, link.id),
            customer_id = CASE WHEN d.service_id IS NULL AND link.id IS NOT NULL THEN link.customer_id
                               ELSE d.customer_id END,
            stale = d.stale OR (d.service_id IS NULL AND link.id IS NOT NULL)
        FROM (SELECT serial, service_id FROM acs_devices WHERE id = $1) cur
        LEFT JOIN LATERAL ({_link("cur.serial", "$2", "cur.service_id IS NULL")}) link ON true
        WHERE d.id = $1 AND (d.pppoe_username IS DISTINCT FROM $2 OR (d.service_id IS NULL AND link.id IS NOT NULL))""",
        device_id, username)


async def _forgotten(conn: Connection, device_id: int, prefix: str) -> None:
    if prefix:
        await conn.execute("DELETE FROM acs_parameters WHERE device_id = $1 AND left(path, length($2)) = $2",
                           device_id, prefix)
    else:
        await conn.execute("DELETE FROM acs_parameters WHERE device_id = $1", device_id)


FAULT_SQL = """INSERT INTO acs_faults (device_id, at, source, task_id, rpc, code, message, detail)
VALUES ($1, to_timestamp($2), $3, $4, $5, $6, $7, $8)"""


async def _task_faulted(conn: Connection, device_id: int, e: TaskFaulted, now: float, retry_delay: float) -> None:
    await conn.execute(
        """WITH t AS (
            UPDATE acs_tasks SET attempts = attempts + 1,
                status = CASE WHEN attempts + 1 >= max_attempts THEN 'fault' ELSE 'queued' END,
                not_before = CASE WHEN attempts + 1 >= max_attempts THEN not_before
                    ELSE to_timestamp($3) + make_interval(secs => $4 * 2 ^ least(attempts, 20)) END,
                finished_at = CASE WHEN attempts + 1 >= max_attempts THEN to_timestamp($3) END,
                fault_code = $5, fault_string = $6, updated_at = to_timestamp($3)
            WHERE id = $1 AND device_id = $2 AND status IN ('queued', 'waiting')
            RETURNING id, kind, attempts, status)
        INSERT INTO acs_faults (device_id, at, source, task_id, rpc, code, message, detail)
        SELECT $2, to_timestamp($3), 'task', t.id, coalesce($7::jsonb ->> t.kind, ''), $5, $6,
               $8::jsonb || jsonb_build_object('attempts', t.attempts, 'final', t.status = 'fault')
        FROM t""",
        e.task_id, device_id, now, retry_delay, e.code, e.string, TASK_RPC, e.detail)


async def _transfer_ended(conn: Connection, device_id: int, e: TransferEnded, now: float) -> None:
    await conn.execute(
        """WITH t AS (
            UPDATE acs_tasks SET status = CASE WHEN $3::int = 0 THEN 'done' ELSE 'fault' END,
                fault_code = CASE WHEN $3::int = 0 THEN fault_code ELSE $3::int END,
                fault_string = CASE WHEN $3::int = 0 THEN fault_string ELSE $4 END,
                finished_at = to_timestamp($5), updated_at = to_timestamp($5)
            WHERE device_id = $1 AND command_key = $2 AND status = 'waiting'
            RETURNING id, kind)
        INSERT INTO acs_faults (device_id, at, source, task_id, rpc, code, message)
        SELECT $1, to_timestamp($5), 'task', t.id, 'TransferComplete', $3::int, $4 FROM t WHERE $3::int <> 0""",
        device_id, e.command_key, e.fault_code, e.fault_string, now)


async def apply(conn: Connection, device_id: int, effects: Sequence[Effect], *, keyring: Keyring, now: float,
                retry_delay: float = RETRY_DELAY) -> None:
    """Apply a session's effects in order, in the caller's transaction. Repeating them is
    harmless where a CPE may repeat itself: a task ends once (a second TaskDone, TaskWaiting or
    TransferEnded of it changes nothing). A faulted task is queued again ``retry_delay *
    2^attempts`` seconds on, or ends as 'fault' when it reaches max_attempts; each fault is also
    a line of acs_faults."""
    known: list[Param] = []
    for e in effects:
        if isinstance(e, ParametersKnown):
            known.extend(e.params)
            continue
        if known:
            await _known(conn, device_id, known, now)
            known = []
        if isinstance(e, ParametersForgotten):
            await _forgotten(conn, device_id, e.prefix)
        elif isinstance(e, TaskDone):
            await conn.execute(
                "UPDATE acs_tasks SET status = 'done', result = $3, finished_at = to_timestamp($4), "
                "updated_at = to_timestamp($4) WHERE id = $1 AND device_id = $2 AND status IN ('queued', 'waiting')",
                e.task_id, device_id, e.result, now)
        elif isinstance(e, TaskWaiting):
            await conn.execute(
                "UPDATE acs_tasks SET status = 'waiting', command_key = $3, updated_at = to_timestamp($4) "
                "WHERE id = $1 AND device_id = $2 AND status = 'queued'", e.task_id, device_id, e.command_key, now)
        elif isinstance(e, TaskFaulted):
            await _task_faulted(conn, device_id, e, now, retry_delay)
        elif isinstance(e, TransferEnded):
            await _transfer_ended(conn, device_id, e, now)
        elif isinstance(e, FaultRecorded):
            await conn.execute(FAULT_SQL, device_id, now, e.source, e.task_id, e.rpc, e.code, e.message, e.detail)
        elif isinstance(e, PresetsApplied):
            # The device stays stale if linked to a service since the plan was made (that service's
            # values are owed), or if its service or customer changed since its view was read.
            await conn.execute(
                "UPDATE acs_devices d SET presets_key = $2, due_at = to_timestamp($3), stale = stale AND ("
                "service_id IS DISTINCT FROM $4 OR $5::float8 IS NOT NULL AND ("
                "EXISTS (SELECT 1 FROM services s WHERE s.id = d.service_id AND s.updated_at > to_timestamp($5)) "
                "OR EXISTS (SELECT 1 FROM customers c WHERE c.id = d.customer_id AND c.updated_at > to_timestamp($5))"
                ")) WHERE id = $1", device_id, e.presets_key, e.due_at, e.service_id, e.since)
        elif isinstance(e, ConnectionRequestCredentials):
            await conn.execute(
                "UPDATE acs_devices SET connection_request_username = $2, connection_request_password = $3 "
                "WHERE id = $1", device_id, e.username, keyring.seal(e.password, CONNECTION_REQUEST_PURPOSE))
    if known:
        await _known(conn, device_id, known, now)


async def expire_transfers(conn: Connection, now: float, timeout: float = TRANSFER_TIMEOUT, *,
                           success: bool = False) -> int:
    """End the waiting downloads and uploads that have had no TransferComplete for ``timeout``
    seconds: as 'fault' (with an acs_faults line), or as 'done' with ``success`` (GenieACS's
    downloadSuccessOnTimeout, for CPEs that never send one). A reboot that no ``M Reboot`` Inform
    has ended in that time is a fault whatever ``success`` says (the CPE did not come back, or
    did not say it rebooted). Returns how many ended."""
    rows = await conn.fetch(
        """WITH t AS (
            UPDATE acs_tasks SET status = CASE WHEN $3::bool AND kind <> 'reboot' THEN 'done' ELSE 'fault' END,
                fault_string = CASE WHEN $3::bool AND kind <> 'reboot' THEN fault_string
                                    WHEN kind = 'reboot' THEN $5 ELSE $4 END,
                finished_at = to_timestamp($1), updated_at = to_timestamp($1)
            WHERE status = 'waiting' AND kind IN ('download', 'upload', 'reboot')
                AND updated_at < to_timestamp($1::float8 - $2::float8)
            RETURNING id, device_id, kind, status)
        , f AS (
            INSERT INTO acs_faults (device_id, at, source, task_id, rpc, message)
            SELECT t.device_id, to_timestamp($1), 'task', t.id,
                   CASE WHEN t.kind = 'reboot' THEN 'Reboot' ELSE 'TransferComplete' END,
                   CASE WHEN t.kind = 'reboot' THEN $5 ELSE $4 END
            FROM t WHERE t.status = 'fault')
        SELECT id FROM t""",
        now, timeout, success, f"no TransferComplete within {timeout:g} s",
        f"no Inform with M Reboot within {timeout:g} s")
    return len(rows)


# --- live sessions ---------------------------------------------------------------------------

async def save_live(conn: Connection, sid: str, device_id: int, step: int, state: dict[str, Any],
                    expires_at: float) -> None:
    await conn.execute(
        "INSERT INTO acs_live_sessions (id, device_id, step, state, expires_at) VALUES ($1, $2, $3, $4, "
        "to_timestamp($5)) ON CONFLICT (id) DO UPDATE SET device_id = EXCLUDED.device_id, step = EXCLUDED.step, "
        "state = EXCLUDED.state, expires_at = EXCLUDED.expires_at", sid, device_id, step, state, expires_at)


async def load_live(conn: Connection, sid: str, now: float | None = None) -> tuple[int, int, dict[str, Any]] | None:
    """(step, device_id, state) of a live session that has not expired (at ``now``, else the
    database's clock), or None."""
    r = await conn.fetchrow("SELECT step, device_id, state FROM acs_live_sessions "
                            "WHERE id = $1 AND expires_at > coalesce(to_timestamp($2), now())", sid, now)
    return None if r is None else (r[0], r[1], r[2])


async def drop_live(conn: Connection, sid: str) -> None:
    await conn.execute("DELETE FROM acs_live_sessions WHERE id = $1", sid)


async def purge_live(conn: Connection, now: float) -> list[dict[str, Any]]:
    """Forget the live sessions that expired (their CPE went quiet in the middle); returns their
    saved states, for the access log."""
    return [r[0] for r in await conn.fetch(
        "DELETE FROM acs_live_sessions WHERE expires_at <= to_timestamp($1) RETURNING state", now)]


SESSION_LOCK_SPACE = 0x6C6D_6163  # "lmac": advisory locks of devices (key: space, device id)


async def claim_device_session(conn: Connection, device_id: int, sid: str, now: float) -> bool:
    """Whether session ``sid`` may run the device's work: no other live session of the device
    (one with work in flight, saved by :func:`save_live`) is unexpired. Call it in the
    transaction that then saves ``sid``'s live row: the device's advisory lock, held to its end,
    makes two instances that check at once take turns."""
    await conn.execute("SELECT pg_advisory_xact_lock($1, hashtext($2::bigint::text))", SESSION_LOCK_SPACE,
                       device_id)
    busy: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT FROM acs_live_sessions WHERE device_id = $1 AND id <> $2 "
        "AND expires_at > to_timestamp($3))", device_id, sid, now)
    return not busy


# --- connection requests and dry runs (acs/wakeup.py, acs/server.py) ----------------------------

async def claim_wakeups(conn: Connection, limit: int) -> list[tuple[int, int, str, str | None, str | None]]:
    """Pending connection requests, oldest first, locked for the caller's transaction (SKIP
    LOCKED: another instance takes others): (id, device_id, URL, username, sealed password)."""
    rows = await conn.fetch(
        "SELECT w.id, w.device_id, d.connection_request_url, d.connection_request_username, "
        "d.connection_request_password FROM acs_wakeups w JOIN acs_devices d ON d.id = w.device_id "
        "WHERE w.status = 'pending' ORDER BY w.id LIMIT $1 FOR UPDATE OF w SKIP LOCKED", limit)
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def finish_wakeup(conn: Connection, wakeup_id: int, status: Literal["sent", "failed"],
                        http_status: int | None, error: str = "") -> None:
    await conn.execute("UPDATE acs_wakeups SET status = $2, http_status = $3, error = $4, done_at = now() "
                       "WHERE id = $1", wakeup_id, status, http_status, error)


async def claim_dry_runs(conn: Connection, limit: int) -> list[tuple[int, int, dict[str, Any]]]:
    """Pending dry runs, oldest first, locked for the caller's transaction: (id, device_id, preset)."""
    rows = await conn.fetch("SELECT id, device_id, preset FROM acs_dry_runs WHERE status = 'pending' "
                            "ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
    return [(r[0], r[1], r[2]) for r in rows]


async def finish_dry_run(conn: Connection, dry_run_id: int, status: Literal["done", "failed"],
                         result: dict[str, Any]) -> None:
    await conn.execute("UPDATE acs_dry_runs SET status = $2, result = $3, done_at = now() WHERE id = $1",
                       dry_run_id, status, result)


# --- the access log --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SessionLine:
    """A line of acs_sessions: one session, written when it ends."""

    started_at: float
    device_id: int
    address: str | None
    events: tuple[str, ...]
    rpcs: tuple[str, ...]
    faults: tuple[str, ...]
    duration_ms: int
    outcome: Literal["ok", "fault", "timeout", "error"]
    instance: str = ""


SESSION_COLUMNS = ("started_at", "device_id", "address", "events", "rpcs", "faults", "duration_ms", "outcome",
                   "instance")


async def copy_sessions(conn: Connection, lines: Sequence[SessionLine]) -> None:
    await conn.copy_records_to_table(
        "acs_sessions", columns=SESSION_COLUMNS,
        records=[(datetime.fromtimestamp(x.started_at, UTC), x.device_id, x.address, list(x.events), list(x.rpcs),
                  list(x.faults), x.duration_ms, x.outcome, x.instance) for x in lines])


# --- files -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class StoredFile:
    """A complete row of acs_files, as the file server needs it."""

    id: int
    name: str
    file_type: str
    size: int
    sha256: str
    created_at: float
    device_id: int | None = None
    chunks: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "chunks", -(-self.size // CHUNK))


async def stored_file(conn: Executor, file_id: int) -> StoredFile | None:
    """The file ``file_id`` if it is complete."""
    r = await conn.fetchrow("SELECT id, name, file_type, size, sha256, extract(epoch FROM created_at)::float8, "
                            "device_id FROM acs_files WHERE id = $1 AND complete", file_id)
    return None if r is None else StoredFile(r[0], r[1], r[2], r[3], r[4], r[5], r[6])


async def read_chunk(conn: Executor, file_id: int, n: int, offset: int = 0, length: int = CHUNK) -> bytes:
    """Bytes ``offset`` to ``offset + length - 1`` of chunk ``n`` (the database cuts them)."""
    data: bytes | None = await conn.fetchval(
        "SELECT substring(data FROM $3 FOR $4) FROM acs_file_chunks WHERE file_id = $1 AND n = $2",
        file_id, n, offset + 1, length)
    return data or b""


async def create_file(conn: Executor, name: str, file_type: str, *, device_id: int | None = None, oui: str = "",
                      product_class: str = "", version: str = "", created_by: str = "") -> int:
    """A new, incomplete row of acs_files: add its chunks, then :func:`finish_file`."""
    file_id: int = await conn.fetchval(
        "INSERT INTO acs_files (name, file_type, device_id, oui, product_class, version, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id", name, file_type, device_id, oui, product_class, version,
        created_by)
    return file_id


async def add_chunk(conn: Executor, file_id: int, n: int, data: bytes) -> None:
    await conn.execute("INSERT INTO acs_file_chunks (file_id, n, data) VALUES ($1, $2, $3)", file_id, n, data)


async def finish_file(conn: Executor, file_id: int, size: int, sha256: str) -> None:
    await conn.execute("UPDATE acs_files SET size = $2, sha256 = $3, complete = true WHERE id = $1",
                       file_id, size, sha256)


async def delete_file(conn: Executor, file_id: int) -> None:
    await conn.execute("DELETE FROM acs_files WHERE id = $1", file_id)


async def store_file(conn: Connection, name: str, file_type: str, data: bytes | AsyncIterable[bytes], *,
                     device_id: int | None = None, oui: str = "", product_class: str = "", version: str = "",
                     created_by: str = "") -> int:
    """Write a whole file (in the caller's transaction), cut in chunks as it comes; its id."""
    file_id = await create_file(conn, name, file_type, device_id=device_id, oui=oui, product_class=product_class,
                                version=version, created_by=created_by)
    writer = ChunkWriter(conn, file_id)
    if isinstance(data, bytes):
        await writer.write(data)
    else:
        async for piece in data:
            await writer.write(piece)
    await writer.finish()
    return file_id


class ChunkWriter:
    """Cuts a stream into the chunks of one file and writes each as it fills."""

    def __init__(self, conn: Executor, file_id: int) -> None:
        self.conn = conn
        self.file_id = file_id
        self.size = 0
        self._n = 0
        self._buffer = bytearray()
        self._digest = hashlib.sha256()

    async def write(self, data: bytes) -> None:
        self._digest.update(data)
        self.size += len(data)
        self._buffer += data
        while len(self._buffer) >= CHUNK:
            await add_chunk(self.conn, self.file_id, self._n, bytes(self._buffer[:CHUNK]))
            del self._buffer[:CHUNK]
            self._n += 1

    async def finish(self) -> str:
        """Write the last chunk and mark the file complete; its sha256."""
        if self._buffer:
            await add_chunk(self.conn, self.file_id, self._n, bytes(self._buffer))
            self._buffer.clear()
        digest = self._digest.hexdigest()
        await finish_file(self.conn, self.file_id, self.size, digest)
        return digest


async def upload_task(conn: Executor, device_id: int, task_id: int = 0) -> tuple[int, str] | None:
    """The upload task of this device a file it puts is for, and the file type it asked for:
    task ``task_id``, or (0) its newest upload task not ended yet (the Upload's URL names no
    task). None if there is no such task."""
    r = await conn.fetchrow(
        "SELECT id, coalesce(args->>'file_type', '') FROM acs_tasks WHERE device_id = $1 AND kind = 'upload' "
        "AND CASE WHEN $2::bigint = 0 THEN status IN ('queued', 'waiting') ELSE id = $2 END "
        "ORDER BY id DESC LIMIT 1", device_id, task_id)
    return None if r is None else (r[0], r[1])


async def attach_upload(conn: Executor, task_id: int, file_id: int) -> None:
    """Name the uploaded file in its task's result (``{"file_id": N}``)."""
    await conn.execute("UPDATE acs_tasks SET result = coalesce(result, '{}') "
                       "|| jsonb_build_object('file_id', $2::bigint) WHERE id = $1", task_id, file_id)
