"""A database of a previous release, lived in, upgraded by `lastmile db init` is the database a
fresh one is (DESIGN.md: the schema changes only through versioned upgrade steps that a test
replays from the previous release), and keeps its rows.

Each ``schema_v<N>.sql`` beside this file (tests/db/schemadb.py RELEASES says when to add one)
is upgraded here; a later issue that adds a step needs no change to this test, which then runs
the new step too. How the steps run (several, stopped half-way, a lock not to be had) is tried
on small schemas of the test's own, below.
"""

from __future__ import annotations

import difflib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from daemons import db, demo, schemafiles
from tests.conftest import one
from tests.db.schemadb import RELEASES, dump, lastmile_db_init, make_release, new_database, registrations

REWRITTEN: set[str] = set()
"""``table.column`` whose values a step changes on purpose: left out of the comparison of rows."""
FOLLOW_THE_CODE = {"admin_roles": "SELECT builtin, name, permissions, own_customers_only FROM admin_roles "
                                  "WHERE builtin IS NOT NULL ORDER BY builtin"}
"""Tables whose rows a step brings to what the code says (the built-in roles get a new area's
permissions, a new built-in role is added): compared with a fresh database's, by this query."""


def diff(before: str, after: str) -> str:
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), "fresh", "upgraded", lineterm=""))


async def live_in(conn: asyncpg.Connection) -> None:
    """Demo customers, and rows in every table radiusd and flowcollector write, in the columns the
    oldest release has: sessions open and closed (one in the default partition), addresses
    bound and in stock, post-auth lines, CoA requests, traffic by minute, its rollups."""
    await demo.load(conn, 300, seed=4)
    await conn.execute("""
        INSERT INTO radius_session_index
        SELECT 'uid' || s.id, date_trunc('minute', now()) - interval '1 hour' FROM services s WHERE s.id % 3 = 0;
        INSERT INTO radius_session_index VALUES ('uid-old', '2001-01-01');
        INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id,
                                     framed_ip, updated_at, stopped_at, session_time_s, input_octets, output_octets)
        SELECT i.acct_unique_id, i.started_at, s.id, n.id, s.login, 'sess' || s.id, s.ipv4, now(),
               CASE WHEN s.id % 2 = 0 THEN now() END, 3600, s.id * 1000, s.id * 10000
        FROM radius_session_index i JOIN services s ON i.acct_unique_id = 'uid' || s.id, nas n;
        INSERT INTO radius_sessions (acct_unique_id, started_at, username, acct_session_id, updated_at, stopped_at)
        VALUES ('uid-old', '2001-01-01', 'old', 'old', '2001-01-01', '2001-01-02');
        UPDATE ip_leases l SET state = 'bound', service_id = p.id, acct_unique_id = 'pool' || p.id,
                               expires_at = now() + interval '10 minutes', updated_at = now()
        FROM (SELECT s.id, row_number() OVER (ORDER BY s.id) AS n FROM services s
              WHERE s.pool_id IS NOT NULL LIMIT 20) p
        WHERE l.address = '100.96.0.0'::inet + p.n;
        UPDATE ip_leases SET state = 'stock', holder = 'radiusd-1', expires_at = now() + interval '1 minute'
        WHERE address BETWEEN '100.96.1.1' AND '100.96.1.50';
        INSERT INTO radius_postauth
        SELECT now() - g * interval '1 minute', s.login, s.id, n.id,
               CASE WHEN g = 2 THEN 'reject' ELSE 'accept' END, CASE WHEN g = 2 THEN 'wrong password' ELSE 'ok' END,
               '02:00:00:00:00:01', s.ipv4
        FROM services s, nas n, generate_series(1, 3) g;
        UPDATE services SET status = 'blocked' WHERE id % 50 = 0;
        UPDATE tariffs SET download_kbps = download_kbps + 1000 WHERE name = 'Home 20';
        -- Today's minutes (partitions begin with the current day: yesterday's would go to the default).
        INSERT INTO traffic_usage
        SELECT s.id, date_trunc('day', now()) + g * interval '1 minute', s.id * 100 + g, s.id * 10 + g, g + 1, g
        FROM services s, generate_series(0, 18) g;
        INSERT INTO traffic_usage VALUES (1, '2001-01-01', 1, 2, 3, 4);
        INSERT INTO traffic_unknown
        SELECT '127.0.0.1', date_trunc('minute', now()) - g * interval '1 minute', 1000 * g, g
        FROM generate_series(0, 30) g;
        SELECT lastmile_rollup_traffic(now() - interval '4 hours');
    """)
    assert await conn.fetchval("SELECT count(*) FROM coa_requests") > 0  # the triggers ran


async def tables(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every table that holds rows itself (partitions, not their parents): its columns. Not
    partitioned_tables, which a step adds to (its rows are compared with a fresh database's)."""
    rows = await conn.fetch(
        "SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum) AS columns FROM pg_class c "
        "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
        "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' "
        "AND c.relname NOT IN ('schema_version', 'partitioned_tables') "
        "GROUP BY c.relname"
    )
    return {r["relname"]: r["columns"] for r in rows if r["relname"] not in FOLLOW_THE_CODE}


async def contents(conn: asyncpg.Connection, columns: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Per table: the number of rows and a digest of their values in ``columns``."""
    result = {}
    for table, cols in columns.items():
        kept = ", ".join(f'"{c}"' for c in cols if f"{table}.{c}" not in REWRITTEN)
        result[table] = tuple(await one(conn,
            f'SELECT count(*), md5(coalesce(string_agg(x, E\'\\n\' ORDER BY x), \'\')) '
            f'FROM (SELECT ROW({kept})::text AS x FROM "{table}") t'))
    return result


@pytest.fixture
async def fresh(pg_server: str) -> AsyncIterator[str]:
    """A database `lastmile db init` made from schema.sql just now (so of the same day's partitions)."""
    async with new_database(pg_server, "fresh") as url:
        conn = await db.connect(url)
        try:
            await db.apply_schema(conn)
        finally:
            await conn.close()
        yield url


@pytest.mark.parametrize("release", RELEASES, ids=lambda p: p.stem)
async def test_a_lived_in_database_of_a_release_upgrades_to_what_a_fresh_one_is(
    release: Path, pg_server: str, fresh: str
) -> None:
    current = db.schema_version()
    async with new_database(pg_server, "upgrade") as url:
        conn = await db.connect(url)
        try:
            old = await make_release(conn, release)
            await live_in(conn)
            columns = await tables(conn)
            before = await contents(conn, columns)
        finally:
            await conn.close()

        first = lastmile_db_init(url)
        assert first.returncode == 0, first.stderr
        steps = f"{current - old} step{'s' * (current - old > 1)}"
        assert first.stdout == f"lastmile db init: upgraded schema {old} -> {current} ({steps})\n"
        again = lastmile_db_init(url)
        assert again.returncode == 0, again.stderr
        assert again.stdout == f"lastmile db init: already at schema version {current}\n"

        upgraded, made = dump(url), dump(fresh)
        assert upgraded == made, diff(made, upgraded)
        conn = await db.connect(url)
        fresh_conn = await db.connect(fresh)
        try:
            await db.check_schema(conn)  # what a daemon checks at start
            assert await registrations(conn) == await registrations(fresh_conn)
            for query in FOLLOW_THE_CODE.values():
                assert [tuple(r) for r in await conn.fetch(query)] == [tuple(r) for r in await fresh_conn.fetch(query)]
            after = await contents(conn, columns)
        finally:
            await conn.close()
            await fresh_conn.close()
        assert after == before
        assert before["customers"][0] == 300 and before["traffic_usage_default"][0] == 1


def test_every_release_kept_is_one_the_steps_upgrade_from() -> None:
    schema = db.load_schema()
    versions = [int(p.stem.removeprefix("schema_v")) for p in RELEASES]
    assert versions, "tests/db/ keeps the previous release's schema.sql as schema_v<N>.sql"
    assert schema.oldest <= versions[0] and versions[-1] < schema.version


# -- how steps run, on small schemas of the test's own ------------------------------------------

KIT = """
CREATE TABLE IF NOT EXISTS schema_version (
    singleton boolean DEFAULT true PRIMARY KEY CHECK (singleton),
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    hash text
);
"""
HASH = "c" * 64
CURRENT = f"""-- lastmile schema version 3
-- lastmile schema hash {HASH}
{KIT}
CREATE TABLE IF NOT EXISTS t (a integer, b integer);
CREATE TABLE IF NOT EXISTS u (a integer, c integer);
CREATE OR REPLACE FUNCTION doubled(x integer) RETURNS integer LANGUAGE sql AS $$ SELECT 2 * x $$;
-- An SQL function reading a column that only the last step makes.
CREATE OR REPLACE FUNCTION total() RETURNS bigint LANGUAGE sql AS $$ SELECT sum(b) + sum(c) FROM t, u $$;
"""
STEPS = {
    # calls doubled(), which version 1 does not have
    "002.sql": "-- lastmile schema upgrade 1 -> 2\nALTER TABLE t ADD COLUMN b integer;\nUPDATE t SET b = doubled(a);\n",
    "003.sql": "-- lastmile schema upgrade 2 -> 3\nALTER TABLE u ADD COLUMN c integer;\nUPDATE u SET c = 1;\n",
}


@pytest.fixture
async def version_1(pg_server: str) -> AsyncIterator[str]:
    """A database of version 1 of the small schema: t (a) and u (a), a row each, no functions."""
    async with new_database(pg_server, "steps") as url:
        conn = await db.connect(url)
        try:
            await conn.execute(KIT + "CREATE TABLE t (a integer); CREATE TABLE u (a integer);"
                               "INSERT INTO t VALUES (21); INSERT INTO u VALUES (1);"
                               f"INSERT INTO schema_version (version, hash) VALUES (1, '{'a' * 64}')")
        finally:
            await conn.close()
        yield url


async def test_steps_run_in_order_with_what_they_call_and_the_functions_after(version_1: str) -> None:
    schema = schemafiles.parse(CURRENT, STEPS)
    conn = await db.connect(version_1)
    try:
        change = await db.apply_schema(conn, schema=schema)
        assert str(change) == "upgraded schema 1 -> 3 (2 steps)"
        assert await conn.fetchval("SELECT b FROM t") == 42
        assert await conn.fetchval("SELECT total()") == 43
        assert tuple(await one(conn, "SELECT version, hash FROM schema_version")) == (3, HASH)
        assert str(await db.apply_schema(conn, schema=schema)) == "already at schema version 3"
    finally:
        await conn.close()


async def test_a_step_that_cannot_get_its_lock_stops_and_the_next_run_goes_on(version_1: str) -> None:
    schema = schemafiles.parse(CURRENT, STEPS)
    conn = await db.connect(version_1)
    reader = await asyncpg.connect(version_1, server_settings={"application_name": "report"})
    try:
        reading = reader.transaction()
        await reading.start()
        await reader.fetchval("SELECT count(*) FROM u")  # holds u, which step 3 alters
        with pytest.raises(db.SchemaError) as stopped:
            await db.apply_schema(conn, lock_timeout=0.2, schema=schema)
        message = str(stopped.value)
        assert message.startswith("upgrade 2 -> 3 could not get a lock within 0.2 s ([database] lock_timeout) at "
                                  "`ALTER TABLE u ADD COLUMN c integer`: u is held by pid ")
        assert f"pid {reader.get_server_pid()} (report, idle in transaction" in message
        assert "; the database stays at version 2: run `lastmile db init` again" in message
        assert "\n" not in message
        # Step 2 is in, without a hash: only db init goes on from there (check_schema refuses it too).
        assert tuple(await one(conn, "SELECT version, hash FROM schema_version")) == (2, None)
        assert await conn.fetchval("SELECT count(*) FROM pg_attribute WHERE attrelid = 'u'::regclass "
                                   "AND attname = 'c'") == 0
        await reading.rollback()
        assert str(await db.apply_schema(conn, lock_timeout=0.2, schema=schema)) == "upgraded schema 2 -> 3 (1 step)"
        assert tuple(await one(conn, "SELECT version, hash FROM schema_version")) == (3, HASH)
    finally:
        await reader.close()
        await conn.close()


async def test_an_upgrade_recorded_without_its_hash_is_finished(version_1: str) -> None:
    """A version reached by steps of a newer lastmile that stopped there has no hash: this version's
    db init creates its functions and records its hash."""
    schema = schemafiles.parse(CURRENT, STEPS)
    conn = await db.connect(version_1)
    try:
        await conn.execute("ALTER TABLE t ADD COLUMN b integer; ALTER TABLE u ADD COLUMN c integer;"
                           "UPDATE schema_version SET version = 3, hash = NULL")
        assert str(await db.apply_schema(conn, schema=schema)) == "finished the upgrade to schema version 3"
        assert await conn.fetchval("SELECT doubled(2)") == 4
        assert tuple(await one(conn, "SELECT version, hash FROM schema_version")) == (3, HASH)
    finally:
        await conn.close()


async def test_a_failing_step_names_its_statement_and_changes_nothing(version_1: str) -> None:
    failing = ("-- lastmile schema upgrade 1 -> 2\n"
               "ALTER TABLE t ADD COLUMN b integer;\nALTER TABLE nowhere ADD COLUMN x int;\n")
    schema = schemafiles.parse(CURRENT, {**STEPS, "002.sql": failing})
    conn = await db.connect(version_1)
    try:
        with pytest.raises(db.SchemaError, match=r'^upgrade 1 -> 2 failed at `ALTER TABLE nowhere ADD COLUMN x int`: '
                           r'relation "nowhere" does not exist; the database stays at version 1$'):
            await db.apply_schema(conn, schema=schema)
        assert await conn.fetchval("SELECT version FROM schema_version") == 1
        assert await conn.fetchval("SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass "
                                   "AND attname = 'b'") == 0
    finally:
        await conn.close()


async def test_a_real_step_that_cannot_get_its_lock_leaves_the_release_as_it_was(pg_server: str) -> None:
    """The 4 -> 5 step against a flowcollector report reading traffic_usage: `db init` says who holds
    it and changes nothing; once the report is done, it upgrades."""
    async with new_database(pg_server, "locked") as url:
        conn = await db.connect(url)
        reader = await asyncpg.connect(url, server_settings={"application_name": "usage-report"})
        try:
            await make_release(conn, RELEASES[0])
            await conn.execute("INSERT INTO traffic_usage VALUES (1, now(), 10, 20, 1, 2)")
            reading = reader.transaction()
            await reading.start()
            await reader.fetchval("SELECT sum(bytes_down) FROM traffic_usage")
            stopped = lastmile_db_init(url, lock_timeout="0.3")
            assert stopped.returncode == 1
            line = stopped.stderr.strip()
            assert "\n" not in line and "Traceback" not in stopped.stderr
            assert line.startswith(
                "lastmile: upgrade 4 -> 5 could not get a lock within 0.3 s ([database] lock_timeout) at "
                "`LOCK TABLE traffic_usage, traffic_unknown IN ACCESS EXCLUSIVE MODE`: traffic_usage")
            assert f"is held by pid {reader.get_server_pid()} (usage-report, idle in transaction for " in line
            assert line.endswith("the database stays at version 4: run `lastmile db init` again when that is done, "
                                 "or raise lock_timeout")
            assert await conn.fetchval("SELECT version FROM schema_version") == 4
            assert "hash" not in await conn.fetchval("SELECT to_jsonb(s) FROM schema_version s")
            await reading.rollback()
            done = lastmile_db_init(url, lock_timeout="0.3")
            steps = db.schema_version() - 4
            assert done.stdout == (f"lastmile db init: upgraded schema 4 -> {db.schema_version()} "
                                   f"({steps} step{'s' * (steps > 1)})\n"), done.stderr
            assert await conn.fetchval("SELECT sum(bytes_down) FROM traffic_usage WHERE billing IS NULL") == 10
        finally:
            await reader.close()
            await conn.close()


async def test_a_second_db_init_waits_for_the_first_no_longer_than_lock_timeout(version_1: str) -> None:
    schema = schemafiles.parse(CURRENT, STEPS)
    conn = await db.connect(version_1)
    first = await asyncpg.connect(version_1)
    try:
        async with first.transaction():
            await first.execute("SELECT pg_advisory_xact_lock(hashtext('lastmile schema'))")  # as apply_schema does
            with pytest.raises(db.SchemaError, match=(
                    rf"^another `lastmile db init` is running \(pid {first.get_server_pid()}\) and holds the schema "
                    r"lock \(0.2 s waited\): run this one again when it is done$")):
                await db.apply_schema(conn, lock_timeout=0.2, schema=schema)
        assert await conn.fetchval("SELECT version FROM schema_version") == 1
    finally:
        await first.close()
        await conn.close()


async def test_functions_that_cannot_be_made_stop_the_upgrade_in_one_line(version_1: str) -> None:
    broken = CURRENT + "CREATE OR REPLACE FUNCTION broken() RETURNS bigint LANGUAGE sql AS $$ SELECT 1 FROM nowhere $$;"
    conn = await db.connect(version_1)
    try:
        with pytest.raises(db.SchemaError, match=(
                r"^upgrade 2 -> 3 failed at `CREATE OR REPLACE FUNCTION broken\(\) RETURNS bigint LANGUAGE sql AS \$\$ "
                r'SELECT 1 FROM nowhe…`: relation "nowhere" does not exist; the database stays at version 2$')):
            await db.apply_schema(conn, schema=schemafiles.parse(broken, STEPS))
        await conn.execute("ALTER TABLE u ADD COLUMN c integer; UPDATE schema_version SET version = 3, hash = NULL")
        with pytest.raises(db.SchemaError, match=r"^finishing the upgrade failed at `CREATE OR REPLACE FUNCTION bro"):
            await db.apply_schema(conn, schema=schemafiles.parse(broken, STEPS))
    finally:
        await conn.close()
