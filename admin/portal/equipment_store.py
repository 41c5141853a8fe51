"""The SQL of the portal's equipment page (equipment.py): the customer's CPEs, their Wi-Fi networks
as last read, the tasks the customer queued for them, and how many it queued lately.

Every statement is scoped by the customer logged in (``$1``): a device is the customer's when it is
linked to the customer or to one of its services (acs_devices.customer_id / service_id, which the
ACS or the admin set); another customer's device is not found, whatever its id. A task is queued
as the admin queues one (admin/devices/queries.py ``queue_task``): a row of acs_tasks and a
connection request, both named after the customer (``customer:<number>``), which is also how the
page finds the tasks the customer asked for and counts them for the hourly limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from admin.auth.store import Connection
from admin.devices.queries import INTERVAL_JOIN, STATUS, queue_task

Record = asyncpg.Record

__all__ = ["customer_number", "device", "devices", "lock_customer", "queue_task", "recent_count", "tasks",
           "wifi_parameters"]

_MINE = "(d.customer_id = $1 OR s.customer_id = $1)"
_FROM = f"FROM acs_devices d LEFT JOIN services s ON s.id = d.service_id {INTERVAL_JOIN}"
_DEVICE = ("d.id, d.cwmp_id, d.manufacturer, d.product_class, d.serial, d.software_version, d.hardware_version, "
           f"d.data_model, d.last_inform_at, d.last_boot_at, s.login AS service_login, {STATUS} AS status")
_WIFI_LEAVES = r"\.(SSID|Enable|OperatingFrequencyBand|LowerLayers|SSIDReference)$"
"""The Wi-Fi parameters the page reads (names, bands, which access point serves which SSID): never
a key (KeyPassphrase, PreSharedKey), whose value the tree keeps as the ACS set it."""


async def devices(conn: Connection, customer_id: int) -> list[Record]:
    """The customer's devices, the one seen last first."""
    return list(await conn.fetch(
        f"SELECT {_DEVICE} {_FROM} WHERE {_MINE} ORDER BY d.last_inform_at DESC NULLS LAST, d.id", customer_id))


async def device(conn: Connection, customer_id: int, device_id: int) -> Record | None:
    """One of the customer's devices (None: not its own), with the customer's number."""
    return await conn.fetchrow(
        f"SELECT {_DEVICE}, (SELECT c.number FROM customers c WHERE c.id = $1) AS customer_number {_FROM} "
        f"WHERE d.id = $2 AND {_MINE}", customer_id, device_id)


async def wifi_parameters(conn: Connection, device_ids: Sequence[int]) -> list[Record]:
    """(device_id, path, value) of the devices' Wi-Fi networks as last read (no key among them)."""
    return list(await conn.fetch(
        "SELECT device_id, path, value FROM acs_parameters WHERE device_id = ANY($1::bigint[]) "
        "AND (path LIKE 'InternetGatewayDevice.LANDevice.1.WLANConfiguration.%' OR path LIKE 'Device.WiFi.%') "
        "AND path ~ $2 ORDER BY device_id, path", list(device_ids), _WIFI_LEAVES))


async def tasks(conn: Connection, device_ids: Sequence[int], created_by: str, *, days: int = 14,
                per_device: int = 10) -> list[Record]:
    """The tasks ``created_by`` (the customer) queued for the devices in the last ``days``, newest
    first, at most ``per_device`` of each."""
    return list(await conn.fetch(
        "SELECT t.id, t.device_id, t.kind, t.args, t.status, t.attempts, t.max_attempts, t.fault_code, "
        "t.fault_string, t.created_at, t.finished_at FROM (SELECT t.*, row_number() OVER (PARTITION BY t.device_id "
        "ORDER BY t.id DESC) AS n FROM acs_tasks t WHERE t.device_id = ANY($1::bigint[]) AND t.created_by = $2 "
        "AND t.created_at > now() - make_interval(days => $3)) t WHERE t.n <= $4 ORDER BY t.id DESC",
        list(device_ids), created_by, days, per_device))


async def customer_number(conn: Connection, customer_id: int) -> str:
    """The customer's number (the operations log and acs_tasks.created_by name the customer by it)."""
    return str(await conn.fetchval("SELECT number FROM customers WHERE id = $1", customer_id))


async def lock_customer(conn: Connection, customer_id: int) -> None:
    """Hold the customer's row until the transaction ends: its queueing is one at a time, so the
    hourly limit counts every task (two tabs posting at once included)."""
    await conn.execute("SELECT 1 FROM customers WHERE id = $1 FOR UPDATE", customer_id)


async def recent_count(conn: Connection, customer_id: int, created_by: str, seconds: int) -> tuple[int, Any]:
    """(how many tasks ``created_by`` queued for the customer's devices in the last ``seconds``,
    when the oldest of them was); by the devices' index (acs_tasks_device_idx)."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, min(t.created_at) AS oldest FROM acs_tasks t WHERE t.device_id IN "
        f"(SELECT d.id FROM acs_devices d LEFT JOIN services s ON s.id = d.service_id WHERE {_MINE}) "
        "AND t.created_by = $2 AND t.created_at > now() - make_interval(secs => $3)",
        customer_id, created_by, float(seconds))
    assert row is not None
    return int(row["n"]), row["oldest"]
