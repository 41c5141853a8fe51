"""The benchmark's PostgreSQL: lastmile's embedded one, holding lastmile's schema and demo data,
plus FreeRADIUS's stock tables in a schema of their own.

FreeRADIUS's tables go into the schema ``freeradius`` of the same database because its stock
``schema.sql`` has a ``nas`` table of its own, which would collide with lastmile's. FreeRADIUS
connects as the role ``radius``, whose ``search_path`` is ``freeradius, public``, so the stock
queries (``radacct``, ``radpostauth``, ``nasreload``) run unchanged, and the check and reply
queries read lastmile's ``services`` (as ``public.services``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from daemons.pgembed import DATABASE, bin_dir

FR_SCHEMA_SQL = Path("/etc/freeradius/3.0/mods-config/sql/main/postgresql/schema.sql")
FR_ROLE = "radius"

ACTIVE_SERVICES = """
    SELECT s.id, s.login, s.password, coalesce(host(s.ipv4), ''),
           t.upload_kbps || 'k/' || t.download_kbps || 'k', coalesce(upper(s.mac::text), '')
    FROM services s JOIN customers c ON c.id = s.customer_id JOIN tariffs t ON t.id = s.tariff_id
    WHERE s.status = 'active' AND c.status = 'active'
    ORDER BY s.id
"""


class Database:
    def __init__(self, port: int) -> None:
        self.port = port
        self.psql_bin = str(bin_dir() / "psql")

    def run(self, sql: str) -> str:
        """Run SQL (one or more statements) as postgres in lastmile's database; return the rows
        as tab-separated lines."""
        argv = [self.psql_bin, "-X", "-q", "-t", "-A", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"]
        argv += ["-p", str(self.port), "-U", "postgres", "-d", DATABASE]
        result = subprocess.run(argv, input=sql, capture_output=True, text=True, check=False, timeout=600)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()[-800:]}")
        return result.stdout

    def value(self, sql: str) -> str:
        return self.run(sql).strip()

    def active_services(self) -> list[list[str]]:
        """id, login, password, ipv4, rate limit, MAC of every service that may log in."""
        return [line.split("\t") for line in self.run(ACTIVE_SERVICES).splitlines() if line]

    def create_freeradius_tables(self) -> None:
        """The stock FreeRADIUS PostgreSQL schema, in schema ``freeradius``, and its role."""
        self.run(
            f"CREATE ROLE {FR_ROLE} LOGIN;\n"
            f"ALTER ROLE {FR_ROLE} SET search_path = freeradius, public;\n"
            f"CREATE SCHEMA freeradius AUTHORIZATION {FR_ROLE};\n"
            "SET search_path = freeradius;\n"
            + FR_SCHEMA_SQL.read_text()
            + f"\nGRANT ALL ON ALL TABLES IN SCHEMA freeradius TO {FR_ROLE};\n"
            f"GRANT ALL ON ALL SEQUENCES IN SCHEMA freeradius TO {FR_ROLE};\n"
            f"GRANT SELECT ON public.services, public.customers, public.tariffs TO {FR_ROLE};\n"
        )

    def fill_radacct_baseline(self, history: int, online: int) -> None:
        """A lived-in radacct, kept as radacct_baseline: ``history`` closed sessions of the
        subscribers and ``online`` open sessions of other users (so Simultaneous-Use = 1 still
        lets every benchmark login in), on other NAS addresses than the load's."""
        self.run(f"""
            SET search_path = freeradius, public;
            WITH u AS (SELECT array_agg(login ORDER BY id) AS logins FROM public.services WHERE status = 'active')
            INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nasportid, nasporttype,
                acctstarttime, acctupdatetime, acctstoptime, acctsessiontime, acctauthentic, acctinputoctets,
                acctoutputoctets, calledstationid, callingstationid, acctterminatecause, servicetype,
                framedprotocol, framedipaddress)
            SELECT 'h-' || g, md5('h-' || g),
                CASE WHEN g <= {online} THEN 'offline' || g
                     ELSE u.logins[1 + g % array_length(u.logins, 1)] END,
                ('10.255.0.' || (1 + g % 8))::inet, 'vlan' || (g % 50), 'Ethernet',
                now() - make_interval(hours => g % 2000) - interval '1 day',
                now() - make_interval(hours => g % 2000) - interval '12 hours',
                CASE WHEN g > {online} THEN now() - make_interval(hours => g % 2000) - interval '12 hours' END,
                43200, 'RADIUS', g * 1000, g * 9000, 'pppoe-bench', '4C:5E:0C:00:00:00',
                CASE WHEN g > {online} THEN 'User-Request' END, 'Framed-User', 'PPP',
                '172.16.0.0'::inet + g
            FROM generate_series(1, {online + history}) AS g, u;
            CREATE TABLE radacct_baseline AS SELECT * FROM radacct;
            ANALYZE;
        """)

    def fill_sessions_baseline(self, history: int) -> None:
        """The same lived-in history for lastmile: ``history`` closed sessions of the subscribers in
        ``radius_sessions`` (this month's partition) and ``radius_session_index``. Without it
        radiusd would start on empty tables, and PostgreSQL would keep the plans it made for
        empty tables (sequential scans) while the timed runs fill them, until autovacuum's next
        ANALYZE; a production database is not empty."""
        self.run(f"""
            WITH u AS (SELECT array_agg(id ORDER BY id) AS ids, array_agg(login ORDER BY id) AS logins
                       FROM services WHERE status = 'active'),
            g AS (SELECT g, 1 + g % array_length(u.ids, 1) AS k,
                         date_trunc('month', now()) + (now() - date_trunc('month', now())) * (g % 997) / 1000.0 AS t
                  FROM generate_series(1, {history}) AS g, u),
            x AS (INSERT INTO radius_session_index (acct_unique_id, started_at)
                  SELECT 'h-' || g, t FROM g RETURNING 1)
            INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id,
                nas_address, nas_port_id, calling_station_id, called_station_id, framed_ip, updated_at, stopped_at,
                session_time_s, input_octets, output_octets, input_packets, output_packets, terminate_cause)
            SELECT 'h-' || g, t, u.ids[k], (SELECT min(id) FROM nas), u.logins[k], 'h-' || g, '10.255.0.1',
                'vlan' || (g % 50), '4C:5E:0C:00:00:00', 'pppoe-bench', '172.16.0.0'::inet + g, t, t,
                0, g * 1000, g * 9000, g, g * 9, 'User-Request'
            FROM g, u;
            ANALYZE radius_sessions;
            ANALYZE radius_session_index;
        """)

    def add_simul_index(self) -> None:
        """The radacct index the FreeRADIUS tuning guide recommends for Simultaneous-Use (the stock
        schema has no index that starts with UserName, so the simul count scans a whole index)."""
        self.run("CREATE INDEX radacct_user_stop_idx ON freeradius.radacct (UserName, AcctStopTime)")

    def settle(self) -> None:
        """VACUUM ANALYZE and CHECKPOINT after the bulk loads, so that no autovacuum or checkpoint
        of the setup lands in a timed run."""
        self.run("VACUUM ANALYZE")
        self.checkpoint()

    def reset_freeradius_tables(self) -> None:
        """radacct back to the baseline, radpostauth empty, fresh statistics."""
        self.run(
            "SET search_path = freeradius; TRUNCATE radacct, radpostauth;"
            "INSERT INTO radacct SELECT * FROM radacct_baseline; ANALYZE radacct; ANALYZE radpostauth;"
        )

    def checkpoint(self) -> None:
        self.run("CHECKPOINT")

    def radacct_sessions(self, prefix: str) -> tuple[int, int]:
        """(sessions, stopped sessions) in radacct whose Acct-Session-Id starts with ``prefix``."""
        row = self.value(
            f"SELECT count(*), count(acctstoptime) FROM freeradius.radacct WHERE acctsessionid LIKE '{prefix}%'"
        )
        total, stopped = row.split("\t")
        return int(total), int(stopped)

    def lastmile_sessions(self, prefix: str) -> tuple[int, int]:
        """(sessions, stopped sessions) in lastmile's radius_sessions with that prefix."""
        row = self.value(
            f"SELECT count(*), count(stopped_at) FROM radius_sessions WHERE acct_session_id LIKE '{prefix}%'"
        )
        total, stopped = row.split("\t")
        return int(total), int(stopped)

    def lastmile_rejects(self) -> str:
        """lastmile's reasons for Access-Reject so far, from radius_postauth ("" when none)."""
        rows = self.run(
            "SELECT reason, count(*) FROM radius_postauth WHERE result = 'reject' GROUP BY reason ORDER BY 2 DESC"
        )
        return ", ".join(f"{reason}: {n}" for reason, n in (line.split("\t") for line in rows.splitlines() if line))

    def count(self, table: str) -> int | None:
        """Rows in ``table``, or None when there is no such table."""
        if self.value(f"SELECT to_regclass('{table}') IS NOT NULL") != "t":
            return None
        return int(self.value(f"SELECT count(*) FROM {table}"))
