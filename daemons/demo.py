"""Demo data: a small ISP to try lastmile on (`lastmile demo --customers N`).

Customers with names and addresses, tariffs from 5/1 to 1000/100 Mbit/s, PPPoE services with
static addresses in 100.64.0.0/10 (CGNAT space) or from a pool, IPv6 prefixes from
2001:db8::/32, one NAS and one router on 127.0.0.1. Rows go in with COPY into staging tables
and one INSERT ... SELECT each, so 100,000 customers take seconds, and the NOTIFY triggers
send one "reload" per table rather than a notification per row.
"""

from __future__ import annotations

import ipaddress
import random
import string

import asyncpg

from daemons.secrets import ROUTER_PURPOSE, Keyring

# Demo credentials, printed by `lastmile up`; a real installation sets its own.
NAS_SECRET = "lastmile-demo-secret"  # noqa: S105
ROUTER_PASSWORD = "lastmile-demo"  # noqa: S105

FIRST = (
    "Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hugo", "Ida", "Jonas", "Klara", "Lukas",
    "Mia", "Noah", "Olivia", "Paul", "Quinn", "Rosa", "Sam", "Tina", "Uwe", "Vera", "Willi", "Xenia",
    "Yara", "Zoe", "Ahmed", "Bianca", "Carlos", "Dana", "Elif", "Farid", "Giulia", "Hana", "Igor", "Jana",
    "Kemal", "Lea", "Marek", "Nina", "Omar", "Petra", "Rafael", "Sofia", "Tomasz",
)  # fmt: skip
LAST = (
    "Müller", "Schmidt", "Novak", "Horvat", "Kowalski", "García", "Rossi", "Dubois", "Jansen", "Nielsen",
    "Silva", "Popescu", "Nagy", "Svoboda", "Ivanova", "Yilmaz", "Berg", "Lindqvist", "Moreau", "Costa",
    "Meyer", "Weber", "Fischer", "Wagner", "Becker", "Hoffmann", "Schulz", "Koch", "Richter", "Wolf", "Kaya",
    "Demir", "Šimić", "Dvořák", "Kovač", "Fernández",
)  # fmt: skip
STREETS = (
    "Hauptstraße", "Bahnhofstraße", "Lindenweg", "Kirchgasse", "Gartenstraße", "Schulstraße", "Bergweg",
    "Mühlenweg", "Am Markt", "Feldstraße", "Waldstraße", "Rosenweg", "Birkenallee", "Ringstraße",
)  # fmt: skip
CITIES = (
    ("Vienna", "1010"),
    ("Graz", "8010"),
    ("Linz", "4020"),
    ("Salzburg", "5020"),
    ("Innsbruck", "6020"),
    ("Klagenfurt", "9020"),
    ("St. Pölten", "3100"),
    ("Wels", "4600"),
)
# (name, down Mbit/s, up Mbit/s, monthly price)
TARIFFS = (
    ("Basic 5", 5, 1, "9.90"),
    ("Home 20", 20, 5, "19.90"),
    ("Home 50", 50, 10, "29.90"),
    ("Home 100", 100, 20, "39.90"),
    ("Fibre 250", 250, 50, "49.90"),
    ("Fibre 500", 500, 100, "59.90"),
    ("Fibre 1000", 1000, 100, "79.90"),
    ("Business 100", 100, 100, "89.00"),
)
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
V6_FRAMED = int(ipaddress.IPv6Address("2001:db8::"))  # a /64 per customer from 2001:db8::/33
V6_DELEGATED = int(ipaddress.IPv6Address("2001:db8:8000::"))  # a /56 per customer from 2001:db8:8000::/33


def _tariff_row(name: str, down: int, up: int, price: str) -> tuple[object, ...]:
    down_k, up_k = down * 1000, up * 1000
    # Burst to twice the rate for 16 s while the average stays under 3/4 of it.
    return (name, down_k, up_k, down_k * 2, up_k * 2, down_k * 3 // 4, up_k * 3 // 4, 16, price)


async def has_customers(conn: asyncpg.Connection) -> bool:
    """Whether the database has any customer (``up`` loads the demo into one that has none)."""
    return bool(await conn.fetchval("SELECT EXISTS (SELECT 1 FROM customers)"))


async def load(conn: asyncpg.Connection, customers: int, seed: int | None = None,
               keyring: Keyring | None = None) -> int:
    """Add ``customers`` customers with one service each (plus the fixed rows once); return the count.

    ``keyring`` seals the demo router's password; without one it goes in as clear text, as a row
    written by hand would (provisiond seals it when it starts)."""
    rnd = random.Random(seed)
    async with conn.transaction():
        partner_id = await conn.fetchval(
            "INSERT INTO partners (name) VALUES ('Demo ISP') ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name "
            "RETURNING id"
        )
        await conn.executemany(
            "INSERT INTO tariffs (name, download_kbps, upload_kbps, burst_download_kbps, burst_upload_kbps, "
            "burst_threshold_download_kbps, burst_threshold_upload_kbps, burst_time_s, price) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::numeric) ON CONFLICT (name) DO NOTHING",
            [_tariff_row(*t) for t in TARIFFS],
        )
        router_id = await conn.fetchval(
            "INSERT INTO routers (name, host, username, password) VALUES ('demo-router', '127.0.0.1', 'admin', $1) "
            "ON CONFLICT (name) DO UPDATE SET host = EXCLUDED.host RETURNING id",
            ROUTER_PASSWORD if keyring is None else keyring.seal(ROUTER_PASSWORD, ROUTER_PURPOSE),
        )
        await conn.execute(
            "INSERT INTO nas (name, address, secret, router_id) VALUES ('demo-bras', '127.0.0.1/32', $1, $2) "
            "ON CONFLICT DO NOTHING",
            NAS_SECRET,
            router_id,
        )
        await conn.execute(
            "INSERT INTO flow_exporters (name, address, router_id) VALUES ('demo-bras', '127.0.0.1', $1) "
            "ON CONFLICT DO NOTHING",
            router_id,
        )
        pool_id = await conn.fetchval(
            "INSERT INTO ip_pools (name, network) VALUES ('demo-dynamic', '100.96.0.0/16') "
            "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id"
        )
        tariff_ids = [r["id"] for r in await conn.fetch("SELECT id FROM tariffs ORDER BY id")]
        start = await conn.fetchval("SELECT count(*) FROM customers")
        last_ip = await conn.fetchval("SELECT max(ipv4) FROM services WHERE ipv4 << '100.64.0.0/10'")
        await conn.execute(
            "CREATE TEMP TABLE demo_customers (partner_id bigint, number text, name text, email text, phone text, "
            "street text, city text, zip text, country text, status text) ON COMMIT DROP;"
            "CREATE TEMP TABLE demo_services (customer_number text, tariff_id bigint, router_id bigint, login text, "
            "password text, status text, ipv4 inet, ipv6_prefix cidr, delegated_ipv6_prefix cidr, mac text, "
            "simultaneous_use smallint, pool_id bigint) ON COMMIT DROP"
        )
        cust_rows, svc_rows = [], []
        ip_index = int(last_ip) - int(CGNAT.network_address) if last_ip else 0
        for n in range(start + 1, start + customers + 1):
            first, last = rnd.choice(FIRST), rnd.choice(LAST)
            city, zip_code = rnd.choice(CITIES)
            number = f"C{n:07d}"
            status = rnd.choices(("active", "blocked", "new"), (95, 4, 1))[0]
            cust_rows.append(
                (
                    partner_id,
                    number,
                    f"{first} {last}",
                    f"{_ascii(first)}.{_ascii(last)}{n}@example.net".lower(),
                    f"+43 {rnd.randint(600, 699)} {rnd.randint(100000, 9999999)}",
                    f"{rnd.choice(STREETS)} {rnd.randint(1, 180)}",
                    city,
                    zip_code,
                    "AT",
                    status,
                )
            )
            ipv4 = None
            if rnd.random() < 0.6:  # the rest get an address from a pool at login
                ipv4, ip_index = _next_host(ip_index)
            svc_rows.append(
                (
                    number,
                    rnd.choice(tariff_ids),
                    router_id,
                    f"{_ascii(first)[0]}{_ascii(last)}{n}".lower(),
                    _password(rnd),
                    "active" if status == "new" else status,
                    ipv4,
                    ipaddress.IPv6Network((V6_FRAMED + (n << 64), 64)),
                    ipaddress.IPv6Network((V6_DELEGATED + (n << 72), 56)),
                    _mac(rnd) if rnd.random() < 0.3 else None,
                    1,
                    None if ipv4 else pool_id,
                )
            )
        await conn.copy_records_to_table(
            "demo_customers",
            records=cust_rows,
            columns=[
                "partner_id",
                "number",
                "name",
                "email",
                "phone",
                "street",
                "city",
                "zip",
                "country",
                "status",
            ],
        )
        await conn.execute(
            "INSERT INTO customers (partner_id, number, name, email, phone, street, city, zip, country, status) "
            "SELECT partner_id, number, name, email, phone, street, city, zip, country, status FROM demo_customers"
        )
        await conn.copy_records_to_table(
            "demo_services",
            records=svc_rows,
            columns=[
                "customer_number",
                "tariff_id",
                "router_id",
                "login",
                "password",
                "status",
                "ipv4",
                "ipv6_prefix",
                "delegated_ipv6_prefix",
                "mac",
                "simultaneous_use",
                "pool_id",
            ],
        )
        await conn.execute(
            "INSERT INTO services (customer_id, tariff_id, router_id, login, password, status, ipv4, ipv6_prefix, "
            "delegated_ipv6_prefix, mac, simultaneous_use, pool_id) "
            "SELECT c.id, s.tariff_id, s.router_id, s.login, s.password, s.status, s.ipv4, s.ipv6_prefix, "
            "s.delegated_ipv6_prefix, s.mac::macaddr, s.simultaneous_use, s.pool_id "
            "FROM demo_services s JOIN customers c ON c.number = s.customer_number"
        )
    await conn.execute("ANALYZE customers; ANALYZE services")
    return customers


def _next_host(index: int) -> tuple[ipaddress.IPv4Address, int]:
    """The index-th usable host of 100.64.0.0/10, skipping the .0 and .255 of each /24."""
    while True:
        index += 1
        address = CGNAT.network_address + index
        if address not in CGNAT:
            raise ValueError("100.64.0.0/10 is full")
        if int(address) & 0xFF not in (0, 255):
            return address, index


def _password(rnd: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(rnd.choice(alphabet) for _ in range(12))


def _mac(rnd: random.Random) -> str:
    return "02:" + ":".join(f"{rnd.randrange(256):02x}" for _ in range(5))


def _ascii(name: str) -> str:
    table = str.maketrans(
        {
            "ü": "ue",
            "ö": "oe",
            "ä": "ae",
            "ß": "ss",
            "é": "e",
            "í": "i",
            "á": "a",
            "Š": "S",
            "š": "s",
            "ć": "c",
            "ř": "r",
            "Ř": "R",
            "č": "c",
        }
    )
    return name.translate(table).encode("ascii", "ignore").decode()


async def point_router(conn: asyncpg.Connection, port: int) -> None:
    """Point the demo router at the RouterOS API double `lastmile up` runs on 127.0.0.1:``port``."""
    await conn.execute("UPDATE routers SET host = '127.0.0.1', api_port = $1, api_tls = false "
                       "WHERE name = 'demo-router'", port)
