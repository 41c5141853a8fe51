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
import time
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

    def wal_bytes(self) -> int:
        """Bytes of WAL written since the cluster was made (the insert position)."""
        return int(self.value("SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')::bigint"))

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

    # -- the auth storm (storm.py): a BRAS whose subscribers are all online ------------------------

    def storm_online(self, service_ids: list[int]) -> None:
        """``bench_storm_online``: the storm's subscribers (service id, k = their order) with the
        address of their open session: the static one, else a free address of their lastmile
        pool (the one that session was given)."""
        ids = ",".join(str(i) for i in service_ids)
        self.run(f"""
            DROP TABLE IF EXISTS bench_storm_online;
            CREATE TABLE bench_storm_online AS
            WITH d AS (SELECT s.id, s.login, s.ipv4, s.pool_id, t.k,
                              row_number() OVER (PARTITION BY s.ipv4 IS NULL, s.pool_id ORDER BY s.id) AS n
                       FROM unnest('{{{ids}}}'::bigint[]) WITH ORDINALITY AS t(id, k) JOIN services s ON s.id = t.id),
            f AS (SELECT address, pool_id, row_number() OVER (PARTITION BY pool_id ORDER BY address) AS n
                  FROM ip_leases WHERE state = 'free')
            SELECT d.id AS service_id, d.login, d.k::integer - 1 AS k, coalesce(d.ipv4, f.address) AS address,
                   d.ipv4 IS NULL AS pooled
            FROM d LEFT JOIN f ON d.ipv4 IS NULL AND f.pool_id = d.pool_id AND f.n = d.n;
            ALTER TABLE bench_storm_online ADD PRIMARY KEY (service_id);
        """)
        missing = self.value("SELECT count(*) FROM bench_storm_online WHERE address IS NULL")
        if missing != "0":
            raise RuntimeError(f"{missing} storm subscribers found no free address in their pool")

    def storm_radacct(self, nas_ip: str) -> None:
        """An open radacct session at the BRAS ``nas_ip`` for every storm subscriber (started in
        the last days, last Interim-Update within the last 300 s), added to radacct_baseline, which
        reset_freeradius_tables() restores."""
        self.run(f"""
            SET search_path = freeradius, public;
            INSERT INTO radacct (acctsessionid, acctuniqueid, username, nasipaddress, nasportid, nasporttype,
                acctstarttime, acctupdatetime, acctsessiontime, acctauthentic, acctinputoctets, acctoutputoctets,
                calledstationid, callingstationid, servicetype, framedprotocol, framedipaddress, acctinterval)
            SELECT 'on-' || o.k, md5('on-' || o.k), o.login, '{nas_ip}', 'vlan' || (100 + o.service_id % 50),
                'Ethernet', now() - make_interval(secs => 3600 + o.k % 259200),
                now() - make_interval(secs => o.k % 300), 3600 + o.k % 259200, 'RADIUS', o.k * 1000, o.k * 9000,
                'pppoe-bench', '4C:5E:0C:00:00:00', 'Framed-User', 'PPP',
                CASE WHEN o.pooled THEN '10.128.0.0'::inet + o.service_id ELSE o.address END, 300
            FROM public.bench_storm_online o;
            DROP TABLE radacct_baseline;
            CREATE TABLE radacct_baseline AS SELECT * FROM radacct;
            ANALYZE radacct;
        """)

    def storm_sessions(self) -> None:
        """The same for lastmile: an open radius_sessions row (and its radius_session_index row) at
        the demo NAS for every storm subscriber, and its pool address bound to it in ip_leases
        (expiring 2 x 300 + 120 s after the last Interim-Update, as radiusd keeps it). The session
        started this month (the partition the history is in) and was last updated within 300 s."""
        self.run("""
            CREATE TEMP TABLE o AS
            SELECT b.*, 'on-' || b.k AS uid,
                   greatest(date_trunc('month', now()), now() - make_interval(secs => 3600 + b.k % 259200)) AS t,
                   now() - make_interval(secs => b.k % 300) AS u
            FROM bench_storm_online b;
            INSERT INTO radius_session_index (acct_unique_id, started_at) SELECT uid, t FROM o;
            INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id,
                nas_address, nas_port_id, calling_station_id, called_station_id, framed_ip, updated_at,
                session_time_s, input_octets, output_octets, input_packets, output_packets)
            SELECT o.uid, o.t, o.service_id, (SELECT id FROM nas WHERE address = '127.0.0.1/32'), o.login, o.uid,
                '127.0.0.1', 'vlan' || (100 + o.service_id % 50), '4C:5E:0C:00:00:00', 'pppoe-bench', o.address, o.u,
                extract(epoch FROM o.u - o.t)::bigint, o.k * 1000, o.k * 9000, o.k, o.k * 9
            FROM o;
            UPDATE ip_leases l SET state = 'bound', service_id = o.service_id, acct_unique_id = o.uid,
                expires_at = o.u + interval '720 seconds', updated_at = o.u
            FROM o WHERE o.pooled AND l.address = o.address;
            ANALYZE radius_sessions;
            ANALYZE radius_session_index;
            ANALYZE ip_leases;
        """)

    def storm_reset_lastmile(self) -> None:
        """Undo a lastmile storm: its sessions and the pre-reboot ones deleted (with their
        radius_session_index rows), every pool address free and unused again; storm_sessions()
        then writes the pre-reboot state once more."""
        self.run("""
            WITH d AS (DELETE FROM radius_sessions WHERE acct_unique_id LIKE 'on-%' OR acct_session_id LIKE 'st%'
                       RETURNING acct_unique_id)
            DELETE FROM radius_session_index WHERE acct_unique_id IN (SELECT acct_unique_id FROM d);
            UPDATE ip_leases SET state = 'free', service_id = NULL, acct_unique_id = NULL, holder = NULL,
                expires_at = NULL, updated_at = now()
            WHERE state <> 'free' OR service_id IS NOT NULL;
            VACUUM ANALYZE radius_sessions, radius_session_index, ip_leases;
        """)

    def storm_lastmile_state(self, prefix: str) -> dict[str, int]:
        """What lastmile's tables say after the storm: the storm's sessions open (and how many
        of them twice for one service or one address), the pre-reboot sessions closed as
        NAS-Reboot, pool addresses bound to a storm session, and how many pool subscribers got
        the address they had before the reboot."""
        row = self.value(f"""
            WITH s AS (SELECT * FROM radius_sessions WHERE stopped_at IS NULL AND acct_session_id LIKE '{prefix}%')
            SELECT (SELECT count(*) FROM s),
                   (SELECT count(*) FROM (SELECT service_id FROM s GROUP BY 1 HAVING count(*) > 1) x),
                   (SELECT count(*) FROM (SELECT framed_ip FROM s GROUP BY 1 HAVING count(*) > 1) x),
                   (SELECT count(*) FROM radius_sessions r JOIN bench_storm_online o ON r.acct_unique_id = 'on-' || o.k
                    WHERE r.stopped_at IS NOT NULL AND r.terminate_cause = 'NAS-Reboot'),
                   (SELECT count(*) FROM ip_leases l JOIN s ON s.acct_unique_id = l.acct_unique_id
                    WHERE l.state = 'bound'),
                   (SELECT count(*) FROM s JOIN bench_storm_online o ON o.service_id = s.service_id
                    WHERE o.pooled AND s.framed_ip = o.address),
                   (SELECT count(*) FROM bench_storm_online WHERE pooled)
        """)
        keys = (
            "open",
            "services_twice",
            "addresses_twice",
            "closed_by_reboot",
            "leases_bound",
            "same_address",
            "pooled",
        )
        return dict(zip(keys, map(int, row.split("\t")), strict=True))

    def storm_radacct_state(self, prefix: str) -> dict[str, int]:
        """The same for radacct: the storm's sessions open (twice for one user), the
        pre-reboot sessions closed as NAS-Reboot."""
        row = self.value(f"""
            SET search_path = freeradius, public;
            WITH s AS (SELECT * FROM radacct WHERE acctstoptime IS NULL AND acctsessionid LIKE '{prefix}%')
            SELECT (SELECT count(*) FROM s),
                   (SELECT count(*) FROM (SELECT username FROM s GROUP BY 1 HAVING count(*) > 1) x),
                   (SELECT count(*) FROM radacct WHERE acctsessionid LIKE 'on-%' AND acctstoptime IS NOT NULL
                    AND acctterminatecause = 'NAS-Reboot')
        """)
        keys = ("open", "services_twice", "closed_by_reboot")
        return dict(zip(keys, map(int, row.split("\t")[-3:]), strict=True))

    # -- sizes of the large tables (for docs/scaling.md) -----------------------------------------

    def table_bytes(self, table: str) -> tuple[int, int]:
        """(rows, bytes on disk: heap, TOAST and indexes, of every partition if it has any) of ``table``."""
        row = self.value(
            f"SELECT (SELECT count(*) FROM {table}), CASE WHEN c.relkind = 'p' THEN "
            f"(SELECT coalesce(sum(pg_total_relation_size(relid)), 0) FROM pg_partition_tree(c.oid)) "
            f"ELSE pg_total_relation_size(c.oid) END FROM pg_class c WHERE c.oid = '{table}'::regclass"
        )
        rows, size = row.split("\t")
        return int(rows), int(size)

    def copy_traffic(self, service_ids: list[int], minutes: int) -> int:
        """COPY one traffic_usage row per service for each of the ``minutes`` minutes before now:
        the row flowcollector writes per (service, minute) and flush (four counters, no billing
        flag); and a traffic_unknown row per minute for each of 1,000 addresses. Returns the
        traffic_usage rows written."""
        now = int(time.time()) // 60 * 60
        stamps = [time.strftime("%Y-%m-%d %H:%M:00+00", time.gmtime(now - 60 * m)) for m in range(1, minutes + 1)]
        usage = "".join(
            f"{sid}\t{minute}\t{sid * 7919 % 90_000_000}\t{sid * 104729 % 9_000_000}\t{sid % 60_000}\t{sid % 9_000}\n"
            for minute in stamps
            for sid in service_ids
        )
        unknown = "".join(
            f"127.0.0.1\t{minute}\t{a * 1500}\t{a}\t100.127.{a // 256}.{a % 256}\n"
            for minute in stamps
            for a in range(1, 1001)
        )
        self.run(
            "COPY traffic_usage (service_id, minute, bytes_down, bytes_up, packets_down, packets_up) FROM STDIN;\n"
            + usage
            + "\\.\nCOPY traffic_unknown (exporter, minute, bytes, packets, address) FROM STDIN;\n"
            + unknown
            + "\\.\n"
        )
        return len(service_ids) * minutes
