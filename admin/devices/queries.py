"""The SQL of CPE devices (partner-scoped), their tasks, connection requests and dry runs, the
presets and files (global), and the ACS's access log.

A device belongs to the partner of the customer it is linked to. The scope of a principal is
``$1`` its partner and ``$2`` the creator it is limited to (each may be NULL, as
admin/queries.py CUSTOMER_SCOPE): it sees the devices of the customers it sees, and a device
linked to no customer only when it is limited to neither (an operator's, not a partner's).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.devices.schemas import ONLINE_WITHOUT_INTERVAL_S
from admin.queries import keyset

Record = asyncpg.Record

DEVICE_SCOPE = ("(CASE WHEN d.customer_id IS NULL THEN $1::bigint IS NULL AND $2::bigint IS NULL "
                "ELSE ($1::bigint IS NULL OR c.partner_id = $1) AND ($2::bigint IS NULL OR c.created_by = $2) END)")
"""The devices a principal sees (``d`` a device, ``c`` its customer, LEFT JOINed)."""
_INTERVAL = ("LEFT JOIN LATERAL (SELECT p.value::integer AS seconds FROM acs_parameters p WHERE p.device_id = d.id "
             "AND p.path = CASE d.data_model WHEN 'tr098' THEN 'InternetGatewayDevice.ManagementServer."
             "PeriodicInformInterval' ELSE 'Device.ManagementServer.PeriodicInformInterval' END "
             "AND p.value ~ '^[0-9]{1,9}$') i ON true")
"""The device's PeriodicInformInterval as last read (its tree's primary key: one row)."""
STATUS = (f"CASE WHEN d.last_inform_at > now() - make_interval(secs => coalesce(2 * i.seconds, "
          f"{ONLINE_WITHOUT_INTERVAL_S})) THEN 'online' "
          "WHEN d.last_inform_at > now() - interval '24 hours' THEN 'today' ELSE 'offline' END")
INTERVAL_JOIN = _INTERVAL
"""What :data:`STATUS` needs beside ``d`` (the portal's equipment page joins it too)."""
_FROM = ("FROM acs_devices d LEFT JOIN customers c ON c.id = d.customer_id "
         f"LEFT JOIN services s ON s.id = d.service_id {_INTERVAL}")
_DEVICE = ("d.id, d.cwmp_id, d.oui, d.product_class, d.serial, d.manufacturer, d.data_model, d.cwmp_version, "
           "d.hardware_version, d.software_version, d.provisioning_code, d.connection_request_url, "
           "host(d.address) AS address, d.wan_address, d.pppoe_username, d.tags, d.customer_id, "
           "c.number AS customer_number, c.name AS customer_name, c.partner_id, d.service_id, "
           "s.login AS service_login, d.first_inform_at, d.last_inform_at, d.last_boot_at, d.last_bootstrap_at, "
           f"d.stale, d.cpe_password IS NOT NULL AS own_password, d.created_at, d.updated_at, "
           f"i.seconds AS inform_interval, {STATUS} AS status")
DEVICE_SORTS = {"last_inform": "coalesce(d.last_inform_at, 'epoch'::timestamptz)", "serial": "d.serial",
                "software_version": "d.software_version", "cwmp_id": "d.cwmp_id"}
PARAMETERS_SHOWN = 20_000
"""The most parameters a device page or GET /cpe/devices/{id} shows (a home router has a few thousand)."""


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _Args:
    """Parameters of a statement built from the filters given: ``add`` returns a value's ``$n``."""

    def __init__(self, *first: Any) -> None:
        self.values = list(first)

    def add(self, value: Any) -> str:
        self.values.append(value)
        return f"${len(self.values)}"


async def _one(conn: Connection, sql: str, *args: Any) -> Record:
    row = await conn.fetchrow(sql, *args)
    assert row is not None
    return row


# -- devices ----------------------------------------------------------------------------------

async def list_devices(conn: Connection, partner: int | None, creator: int | None, *, q: str | None = None,
                       customer: str | None = None, customer_id: int | None = None,
                       software_version: str | None = None, tag: str | None = None, param: str | None = None,
                       value: str | None = None, status: str | None = None, sort: str = "last_inform",
                       direction: str = "desc", after: Sequence[Any] | None = None, limit: int = 50) -> list[Record]:
    """A page of the devices the principal sees that match every filter given (``param`` and
    ``value``: a parameter whose path is or ends with ``.param`` holding exactly ``value``,
    looked up by the parameters' value index)."""
    a = _Args(partner, creator)
    where = [DEVICE_SCOPE]
    if q:
        prefix, part = a.add(_escape(q) + "%"), a.add("%" + _escape(q) + "%")
        where.append(f"(d.serial ILIKE {prefix} OR d.pppoe_username ILIKE {prefix} OR d.cwmp_id ILIKE {part})")
    if customer:
        number, part = a.add(customer), a.add("%" + _escape(customer) + "%")
        where.append(f"(c.number = {number} OR c.number = upper({number}) OR c.name ILIKE {part})")
    if customer_id is not None:
        where.append(f"d.customer_id = {a.add(customer_id)}")
    if software_version:
        where.append(f"d.software_version = {a.add(software_version)}")
    if tag:
        where.append(f"d.tags @> ARRAY[{a.add(tag)}::text]")
    paths = ""
    if param:
        exact, suffix = a.add(param), a.add("%." + _escape(param.lstrip(".")))
        paths = f" AND (p.path = {exact} OR p.path LIKE {suffix})"
    if value:
        v = a.add(value)
        where.append(f"d.id IN (SELECT p.device_id FROM acs_parameters p WHERE left(p.value, 200) = left({v}, 200) "
                     f"AND p.value <> '' AND p.value = {v}{paths})")
    elif paths:
        where.append(f"EXISTS (SELECT FROM acs_parameters p WHERE p.device_id = d.id{paths})")
    if status:
        where.append(f"{STATUS} = {a.add(status)}")
    limit_at = a.add(limit)
    condition, order, params = keyset(DEVICE_SORTS[sort], direction, after, len(a.values) + 1, "d.id")
    return list(await conn.fetch(
        f"SELECT {_DEVICE}, {DEVICE_SORTS[sort]} AS sort_value {_FROM} WHERE {' AND '.join(where)} AND {condition} "
        f"{order} LIMIT {limit_at}", *a.values, *params))


async def device(conn: Connection, partner: int | None, creator: int | None, device_id: int,
                 *, lock: bool = False) -> Record | None:
    return await conn.fetchrow(f"SELECT {_DEVICE} {_FROM} WHERE d.id = $3 AND {DEVICE_SCOPE}"
                               + (" FOR UPDATE OF d" if lock else ""), partner, creator, device_id)


async def parameters(conn: Connection, device_id: int, limit: int = PARAMETERS_SHOWN) -> list[Record]:
    """The device's tree in path order."""
    return list(await conn.fetch("SELECT path, value, type, writable, read_at FROM acs_parameters "
                                 "WHERE device_id = $1 ORDER BY path LIMIT $2", device_id, limit))


async def update_device(conn: Connection, device_id: int, values: dict[str, Any]) -> None:
    """Change tags or the customer/service link; the device's presets are applied again in its
    next session (stale: they read the tags, the service and the customer)."""
    assert set(values) <= {"tags", "customer_id", "service_id"}, values
    sets = ", ".join(f"{k} = ${i}" for i, k in enumerate(values, start=2))
    await conn.execute(f"UPDATE acs_devices SET {sets}, stale = true WHERE id = $1", device_id, *values.values())


async def set_cpe_password(conn: Connection, device_id: int, sealed: str | None) -> None:
    """Give the device its own CWMP password (sealed), or take it away (None: the shared login
    again). The acs instances hear of it (trigger lastmile_acs_credentials) and use it at once."""
    await conn.execute("UPDATE acs_devices SET cpe_password = $2 WHERE id = $1", device_id, sealed)


async def customer_in_scope(conn: Connection, partner: int | None, creator: int | None,
                            customer_id: int) -> Record | None:
    return await conn.fetchrow("SELECT c.id, c.number, c.name, c.partner_id FROM customers c WHERE c.id = $3 "
                               "AND c.status <> 'deleted' AND ($1::bigint IS NULL OR c.partner_id = $1) "
                               "AND ($2::bigint IS NULL OR c.created_by = $2)", partner, creator, customer_id)


async def service_in_scope(conn: Connection, partner: int | None, creator: int | None, *,
                           service_id: int | None = None, login: str | None = None) -> Record | None:
    """A service (by id, or by its login) of a customer the principal sees, with its customer."""
    return await conn.fetchrow(
        "SELECT s.id, s.login, s.customer_id, c.number, c.name, c.partner_id FROM services s "
        "JOIN customers c ON c.id = s.customer_id WHERE (s.id = $3 OR lower(s.login) = lower($4)) "
        "AND c.status <> 'deleted' AND ($1::bigint IS NULL OR c.partner_id = $1) "
        "AND ($2::bigint IS NULL OR c.created_by = $2) LIMIT 1", partner, creator, service_id, login)


async def customer_by_number(conn: Connection, partner: int | None, creator: int | None,
                             number: str) -> Record | None:
    return await conn.fetchrow("SELECT c.id FROM customers c WHERE (c.number = $3 OR c.number = upper($3)) "
                               "AND c.status <> 'deleted' AND ($1::bigint IS NULL OR c.partner_id = $1) "
                               "AND ($2::bigint IS NULL OR c.created_by = $2)", partner, creator, number)


# -- tasks, connection requests, dry runs -----------------------------------------------------

_TASK = ("t.id, t.device_id, t.kind, t.args, t.status, t.attempts, t.max_attempts, t.not_before, t.command_key, "
         "t.result, t.fault_code, t.fault_string, t.created_by, t.created_at, t.updated_at, t.finished_at")
_SCOPED = "JOIN acs_devices d ON d.id = {0}.device_id LEFT JOIN customers c ON c.id = d.customer_id"


async def tasks_of(conn: Connection, device_id: int, limit: int = 50) -> list[Record]:
    return list(await conn.fetch(f"SELECT {_TASK} FROM acs_tasks t WHERE t.device_id = $1 ORDER BY t.id DESC "
                                 "LIMIT $2", device_id, limit))


async def task(conn: Connection, partner: int | None, creator: int | None, task_id: int,
               *, lock: bool = False) -> Record | None:
    """A task of a device the principal sees, with its device's cwmp id and customer."""
    return await conn.fetchrow(
        f"SELECT {_TASK}, d.cwmp_id, d.customer_id, c.partner_id FROM acs_tasks t {_SCOPED.format('t')} "
        f"WHERE t.id = $3 AND {DEVICE_SCOPE}" + (" FOR UPDATE OF t" if lock else ""), partner, creator, task_id)


async def create_task(conn: Connection, device_id: int, kind: str, args: dict[str, Any], max_attempts: int,
                      created_by: str) -> Record:
    return await _one(conn, "INSERT INTO acs_tasks AS t (device_id, kind, args, max_attempts, created_by) "
                            f"VALUES ($1, $2, $3, $4, $5) RETURNING {_TASK}",
                      device_id, kind, args, max_attempts, created_by)


async def queue_task(conn: Connection, device_id: int, kind: str, args: dict[str, Any], max_attempts: int,
                     created_by: str, *, connect: bool = False) -> tuple[Record, int | None]:
    """Queue a task (args checked by the caller: schemas.task_problems) and, with ``connect``, a
    connection request so it runs now; (the task, the connection request's id). The admin's
    device pages and API and the portal's equipment page queue this way."""
    task = await create_task(conn, device_id, kind, args, max_attempts, created_by)
    wakeup_id = int((await create_wakeup(conn, device_id, created_by))["id"]) if connect else None
    return task, wakeup_id


async def cancel_task(conn: Connection, task_id: int) -> Record | None:
    """Cancel a queued task (None: it is not queued any more)."""
    return await conn.fetchrow("UPDATE acs_tasks AS t SET status = 'cancelled', finished_at = now() "
                               f"WHERE t.id = $1 AND t.status = 'queued' RETURNING {_TASK}", task_id)


async def retry_task(conn: Connection, task_id: int) -> Record | None:
    """Queue a failed task again from its first attempt (None: it is not failed)."""
    return await conn.fetchrow(
        "UPDATE acs_tasks AS t SET status = 'queued', attempts = 0, not_before = now(), fault_code = NULL, "
        f"fault_string = NULL, finished_at = NULL WHERE t.id = $1 AND t.status = 'fault' RETURNING {_TASK}", task_id)


async def faults_of(conn: Connection, device_id: int, limit: int = 20) -> list[Record]:
    return list(await conn.fetch("SELECT id, at, source, task_id, rpc, code, message, detail FROM acs_faults "
                                 "WHERE device_id = $1 ORDER BY at DESC, id DESC LIMIT $2", device_id, limit))


_WAKEUP = ("w.id, w.device_id, w.status, w.requested_at, w.done_at, w.http_status, w.error, "
           "extract(epoch FROM now() - w.requested_at)::float8 AS age")
"""A connection request, and how many seconds ago it was asked."""


async def create_wakeup(conn: Connection, device_id: int, requested_by: str) -> Record:
    """A connection request for one acs instance to send (acs/wakeup.py)."""
    return await _one(conn, "INSERT INTO acs_wakeups AS w (device_id, requested_by) VALUES ($1, $2) "
                            f"RETURNING {_WAKEUP}", device_id, requested_by)


async def wakeup(conn: Connection, partner: int | None, creator: int | None, wakeup_id: int) -> Record | None:
    return await conn.fetchrow(
        f"SELECT {_WAKEUP} FROM acs_wakeups w {_SCOPED.format('w')} WHERE w.id = $3 AND {DEVICE_SCOPE}",
        partner, creator, wakeup_id)


async def last_wakeup(conn: Connection, device_id: int) -> Record | None:
    return await conn.fetchrow(f"SELECT {_WAKEUP} FROM acs_wakeups w WHERE w.device_id = $1 ORDER BY w.id DESC "
                               "LIMIT 1", device_id)


async def create_dry_run(conn: Connection, device_id: int, preset: dict[str, Any], requested_by: str) -> int:
    """A dry run of the draft ``preset`` ({"match", "actions"}) for one acs instance to compute."""
    return int(await conn.fetchval("INSERT INTO acs_dry_runs (device_id, preset, requested_by) VALUES ($1, $2, $3) "
                                   "RETURNING id", device_id, preset, requested_by))


async def dry_run(conn: Connection, partner: int | None, creator: int | None, dry_run_id: int) -> Record | None:
    return await conn.fetchrow(
        "SELECT r.id, r.device_id, d.cwmp_id, r.status, r.result, r.requested_at, r.done_at, "
        "now() - r.requested_at AS waited FROM acs_dry_runs r "
        f"{_SCOPED.format('r')} WHERE r.id = $3 AND {DEVICE_SCOPE}", partner, creator, dry_run_id)


async def device_by_name(conn: Connection, partner: int | None, creator: int | None, name: str) -> Record | None:
    """A device the principal sees, by its cwmp id or serial (a dry run's target, as typed)."""
    return await conn.fetchrow(
        "SELECT d.id, d.cwmp_id FROM acs_devices d LEFT JOIN customers c ON c.id = d.customer_id "
        f"WHERE (d.cwmp_id = $3 OR d.serial = $3) AND {DEVICE_SCOPE} ORDER BY d.cwmp_id = $3 DESC, d.id LIMIT 1",
        partner, creator, name)


# -- presets ----------------------------------------------------------------------------------

_PRESET = "id, name, enabled, weight, match, actions, created_at, updated_at"


async def list_presets(conn: Connection) -> list[Record]:
    """Every preset, in the order the ACS applies them (weight, then id)."""
    return list(await conn.fetch(f"SELECT {_PRESET} FROM acs_presets ORDER BY weight, id"))


async def preset(conn: Connection, preset_id: int, *, lock: bool = False) -> Record | None:
    return await conn.fetchrow(f"SELECT {_PRESET} FROM acs_presets WHERE id = $1" + (" FOR UPDATE" if lock else ""),
                               preset_id)


async def create_preset(conn: Connection, values: dict[str, Any]) -> Record:
    return await _one(conn, "INSERT INTO acs_presets (name, enabled, weight, match, actions) "
                            f"VALUES ($1, $2, $3, $4, $5) RETURNING {_PRESET}",
                      values["name"], values["enabled"], values["weight"], values["match"], values["actions"])


async def update_preset(conn: Connection, preset_id: int, values: dict[str, Any]) -> Record:
    return await _one(conn, "UPDATE acs_presets SET name = $2, enabled = $3, weight = $4, match = $5, actions = $6 "
                            f"WHERE id = $1 RETURNING {_PRESET}", preset_id, values["name"], values["enabled"],
                      values["weight"], values["match"], values["actions"])


async def delete_preset(conn: Connection, preset_id: int) -> bool:
    return bool(await conn.execute("DELETE FROM acs_presets WHERE id = $1", preset_id) == "DELETE 1")


# -- files ------------------------------------------------------------------------------------

_FILE = "f.id, f.name, f.file_type, f.oui, f.product_class, f.version, f.size, f.sha256, f.complete, " \
        "f.created_by, f.created_at"
FILE_SORTS = {"name": "f.name", "created_at": "f.created_at"}


async def list_files(conn: Connection, *, q: str | None, file_type: str | None, sort: str, direction: str,
                     after: Sequence[Any] | None, limit: int) -> list[Record]:
    """The files the ACS serves (the files devices uploaded aside)."""
    condition, order, params = keyset(FILE_SORTS[sort], direction, after, 4, "f.id")
    return list(await conn.fetch(
        f"SELECT {_FILE}, {FILE_SORTS[sort]} AS sort_value "
        "FROM acs_files f WHERE f.device_id IS NULL AND ($1::text IS NULL OR f.name ILIKE $1) "
        f"AND ($2::text IS NULL OR f.file_type = $2) AND {condition} {order} LIMIT $3",
        "%" + _escape(q) + "%" if q else None, file_type, limit, *params))


async def file(conn: Connection, file_id: int, *, lock: bool = False) -> Record | None:
    return await conn.fetchrow(f"SELECT {_FILE} FROM acs_files f WHERE f.id = $1 AND f.device_id IS NULL"
                               + (" FOR UPDATE" if lock else ""), file_id)


async def file_to_read(conn: Connection, partner: int | None, creator: int | None, file_id: int) -> Record | None:
    """A complete file to download: one of the ACS's (firmware, configuration), or one a device
    uploaded (an Upload task's result) when the principal sees that device."""
    return await conn.fetchrow(
        "SELECT f.id, f.name, f.size, f.device_id FROM acs_files f LEFT JOIN acs_devices d ON d.id = f.device_id "
        "LEFT JOIN customers c ON c.id = d.customer_id WHERE f.id = $3 AND f.complete "
        f"AND (f.device_id IS NULL OR {DEVICE_SCOPE})", partner, creator, file_id)


async def file_chunk(conn: Connection, file_id: int, n: int) -> bytes | None:
    """The ``n``-th chunk of a file (from 0), or None past its last."""
    data: bytes | None = await conn.fetchval("SELECT data FROM acs_file_chunks WHERE file_id = $1 AND n = $2",
                                             file_id, n)
    return data


async def file_choices(conn: Connection) -> list[Record]:
    """The complete files a task may download (id, name, file type, version)."""
    return list(await conn.fetch("SELECT id, name, file_type, version FROM acs_files WHERE device_id IS NULL "
                                 "AND complete ORDER BY name LIMIT 500"))


async def create_file(conn: Connection, values: dict[str, Any], created_by: str) -> int:
    """A file's row, incomplete until :func:`finish_file` (its chunks come between)."""
    return int(await conn.fetchval(
        "INSERT INTO acs_files (name, file_type, oui, product_class, version, created_by) "
        "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id", values["name"], values["file_type"], values["oui"],
        values["product_class"], values["version"], created_by))


async def add_chunk(conn: Connection, file_id: int, n: int, data: bytes) -> None:
    await conn.execute("INSERT INTO acs_file_chunks (file_id, n, data) VALUES ($1, $2, $3)", file_id, n, data)


async def finish_file(conn: Connection, file_id: int, size: int, sha256: str) -> Record:
    return await _one(conn, "UPDATE acs_files f SET size = $2, sha256 = $3, complete = true WHERE f.id = $1 "
                            f"RETURNING {_FILE}", file_id, size, sha256)


async def file_users(conn: Connection, file_id: int) -> Record:
    """What names a file: queued or waiting download tasks (their devices' cwmp ids) and presets (names)."""
    return await _one(conn, """
        SELECT ARRAY(SELECT d.cwmp_id FROM acs_tasks t JOIN acs_devices d ON d.id = t.device_id
                     WHERE t.kind = 'download' AND t.status IN ('queued', 'waiting')
                       AND t.args->'file_id' = to_jsonb($1::bigint) ORDER BY t.id LIMIT 5) AS devices,
               (SELECT count(*) FROM acs_tasks t WHERE t.kind = 'download' AND t.status IN ('queued', 'waiting')
                  AND t.args->'file_id' = to_jsonb($1::bigint)) AS tasks,
               ARRAY(SELECT p.name FROM acs_presets p WHERE p.actions @> jsonb_build_array(
                     jsonb_build_object('download', $1::bigint)) ORDER BY p.name) AS presets""", file_id)


async def delete_file(conn: Connection, file_id: int) -> bool:
    """Delete a file and its chunks (ON DELETE CASCADE)."""
    return bool(await conn.execute("DELETE FROM acs_files WHERE id = $1 AND device_id IS NULL", file_id)
                == "DELETE 1")


# -- the access log ---------------------------------------------------------------------------

async def list_sessions(conn: Connection, partner: int | None, creator: int | None, *, device_id: int | None,
                        q: str | None, outcome: str | None, event: str | None, direction: str,
                        after: Sequence[Any] | None, limit: int) -> list[Record]:
    """A page of the access log, newest first by default (the cursor: started_at, device id)."""
    a = _Args(partner, creator)
    where = [DEVICE_SCOPE]
    if device_id is not None:
        where.append(f"l.device_id = {a.add(device_id)}")
    if q:
        prefix, part = a.add(_escape(q) + "%"), a.add("%" + _escape(q) + "%")
        where.append(f"(d.serial ILIKE {prefix} OR d.cwmp_id ILIKE {part})")
    if outcome:
        where.append(f"l.outcome = {a.add(outcome)}")
    if event:
        where.append(f"l.events @> ARRAY[{a.add(event)}::text]")
    limit_at = a.add(limit)
    condition, order, params = keyset("l.started_at", direction, after, len(a.values) + 1, "l.device_id")
    return list(await conn.fetch(
        "SELECT l.started_at, l.device_id, d.cwmp_id, host(l.address) AS address, l.events, l.rpcs, l.faults, "
        "l.duration_ms, l.outcome, l.instance, l.started_at AS sort_value FROM acs_sessions l "
        f"{_SCOPED.format('l')} WHERE {' AND '.join(where)} AND {condition} {order} LIMIT {limit_at}",
        *a.values, *params))


async def sessions_of(conn: Connection, device_id: int, limit: int = 10) -> list[Record]:
    return list(await conn.fetch(
        "SELECT started_at, host(address) AS address, events, rpcs, faults, duration_ms, outcome, instance "
        "FROM acs_sessions WHERE device_id = $1 ORDER BY started_at DESC LIMIT $2", device_id, limit))
