"""The benchmark's PostgreSQL: lastmile's embedded server, lastmile's schema and demo data,
the tables nfacctd writes into, and the per-service comparison with what was sent.

Everything lives in one private cluster in the run's work directory.  lastmile's own tables
(``services``, ``traffic_usage``) are used as lastmile creates them; the benchmark adds a
schema ``bench`` holding the expected totals of the last load and nfacctd's two tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from daemons.pgembed import EmbeddedPostgres  # noqa: E402

LASTMILE = REPO / ".venv" / "bin" / "lastmile"

BENCH_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE IF NOT EXISTS bench.expected (
    address inet PRIMARY KEY, bytes_down bigint NOT NULL, bytes_up bigint NOT NULL,
    packets_down bigint NOT NULL, packets_up bigint NOT NULL);
-- pmacct's tables (its v1 layout reduced to the primitives aggregated; COPY mode)
CREATE TABLE IF NOT EXISTS bench.pmacct_down (ip_dst inet NOT NULL, packets bigint NOT NULL,
    bytes bigint NOT NULL, stamp_inserted timestamp NOT NULL DEFAULT now(), stamp_updated timestamp);
CREATE TABLE IF NOT EXISTS bench.pmacct_up (ip_src inet NOT NULL, packets bigint NOT NULL,
    bytes bigint NOT NULL, stamp_inserted timestamp NOT NULL DEFAULT now(), stamp_updated timestamp);
"""

# Per service: what was sent (bench.expected joined to services.ipv4) against what a
# collector stored (its usage query, one row per service_id), compared to the byte.  Records
# missing / extra are counted per service and direction (packets = 1 per record), so a loss
# somewhere cannot hide behind a double count elsewhere.
COMPARE = """
WITH sent AS (
    SELECT s.id AS service_id, e.bytes_down, e.bytes_up, e.packets_down, e.packets_up
    FROM bench.expected e JOIN services s ON s.ipv4 = e.address),
got AS ({usage}),
pair AS (
    SELECT sent.service_id IS NOT NULL AS was_sent, got.service_id IS NOT NULL AS was_stored,
        coalesce(sent.bytes_down, 0) AS sbd, coalesce(sent.bytes_up, 0) AS sbu,
        coalesce(sent.packets_down, 0) AS spd, coalesce(sent.packets_up, 0) AS spu,
        coalesce(got.bytes_down, 0) AS gbd, coalesce(got.bytes_up, 0) AS gbu,
        coalesce(got.packets_down, 0) AS gpd, coalesce(got.packets_up, 0) AS gpu
    FROM sent FULL JOIN got USING (service_id))
SELECT
    count(*) FILTER (WHERE was_sent) AS services_sent,
    count(*) FILTER (WHERE was_stored) AS services_stored,
    count(*) FILTER (WHERE was_sent AND sbd + sbu = gbd + gbu) AS services_bytes_exact,
    count(*) FILTER (WHERE was_sent AND (sbd, sbu, spd, spu) = (gbd, gbu, gpd, gpu)) AS services_all_exact,
    coalesce(sum(sbd + sbu), 0)::bigint AS bytes_sent,
    coalesce(sum(gbd + gbu), 0)::bigint AS bytes_stored,
    coalesce(sum(spd + spu), 0)::bigint AS packets_sent,
    coalesce(sum(gpd + gpu), 0)::bigint AS packets_stored,
    coalesce(sum(greatest(spd - gpd, 0) + greatest(spu - gpu, 0)), 0)::bigint AS records_missing,
    coalesce(sum(greatest(gpd - spd, 0) + greatest(gpu - spu, 0)), 0)::bigint AS records_extra
FROM pair
"""


@dataclass(frozen=True, slots=True)
class Comparison:
    services_sent: int
    services_stored: int
    services_bytes_exact: int  # sum(bytes_down + bytes_up) equal for the service
    services_all_exact: int  # bytes and packets, each direction, equal
    bytes_sent: int
    bytes_stored: int
    packets_sent: int
    packets_stored: int
    records_missing: int  # per service and direction, records sent and not stored
    records_extra: int  # per service and direction, records stored beyond those sent

    @property
    def exact(self) -> bool:
        """Every service sent to has exactly its bytes and packets, each way; no other has any."""
        return self.services_all_exact == self.services_sent == self.services_stored


class Database:
    """The embedded server, with one connection for the harness's own queries."""

    def __init__(self, datadir: Path, port: int) -> None:
        self.server = EmbeddedPostgres(datadir, port, durable=True)
        self.url = ""
        self._runner: asyncio.Runner | None = None
        self._conn: Any = None

    # -- life -------------------------------------------------------------------------
    def start(self) -> str:
        self.url = self.server.start()
        return self.url

    def connect(self) -> None:
        self._runner = asyncio.Runner()
        self._conn = self._run(asyncpg.connect(self.url))

    def stop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, TimeoutError):
                self._run(self._conn.close(timeout=5))
            self._conn = None
        if self._runner is not None:
            self._runner.close()
            self._runner = None
        self.server.stop()

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.server.datadir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    def server_version(self) -> str:
        return str(self.fetchval("SHOW server_version"))

    # -- lastmile ---------------------------------------------------------------------
    def lastmile(self, *args: str, cwd: Path) -> str:
        """Run a ``lastmile`` command against this database; return its output."""
        env = {**os.environ, "LASTMILE_DATABASE__URL": self.url, "LASTMILE_LOG__LEVEL": "warning"}
        result = subprocess.run(
            [str(LASTMILE), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"lastmile {' '.join(args)} failed ({result.returncode}): {result.stderr[-800:]}")
        return result.stdout.strip()

    def subscriber_addresses(self) -> list[str]:
        """The static IPv4 addresses of services, the flow load's subscribers."""
        rows = self._run(self._conn.fetch("SELECT host(ipv4) AS a FROM services WHERE ipv4 IS NOT NULL ORDER BY id"))
        return [r["a"] for r in rows]

    # -- queries ----------------------------------------------------------------------
    def execute(self, sql: str) -> None:
        self._run(self._conn.execute(sql))

    def fetchval(self, sql: str) -> Any:
        return self._run(self._conn.fetchval(sql))

    def fetchrow(self, sql: str) -> Any:
        return self._run(self._conn.fetchrow(sql))

    def load_expected(self, csv: Path) -> None:
        self.execute("TRUNCATE bench.expected")
        self._run(self._conn.copy_to_table("expected", schema_name="bench", source=str(csv), format="csv", header=True))

    def compare(self, usage_sql: str) -> Comparison:
        row = self.fetchrow(COMPARE.format(usage=usage_sql))
        return Comparison(**{k: int(v) for k, v in dict(row).items()})

    def _run(self, coro: Any) -> Any:
        assert self._runner is not None
        return self._runner.run(asyncio.wait_for(coro, 600))
