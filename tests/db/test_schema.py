"""schema.sql against a real PostgreSQL: idempotent, checked by `db init` and daemons, constrained,
partitioned, and notifying."""

import asyncio
import json
import re

import asyncpg
import pytest

from daemons import db
from tests.conftest import one
from tests.db.schemadb import dump, lastmile_db_init


async def test_schema_sql_run_again_over_itself_changes_nothing(db_url: str, conn: asyncpg.Connection) -> None:
    """A fresh apply may be retried (or schema.sql run by hand): its statements are idempotent."""
    before = dump(db_url)
    version_before = await conn.fetchrow("SELECT * FROM schema_version")
    await conn.execute(db.schema_sql())
    assert dump(db_url) == before
    assert await conn.fetchrow("SELECT * FROM schema_version") == version_before


async def test_db_init_of_a_current_database_touches_no_table(db_url: str, conn: asyncpg.Connection) -> None:
    """Every table but schema_version (read) and partitioned_tables (read by the partition
    maintenance) locked ACCESS EXCLUSIVE by another session, as the worst a busy server holds:
    `db init` still ends at once, having done nothing."""
    await conn.execute("SELECT lastmile_maintain_partitions()")  # none left for db init to make
    applied_at = await conn.fetchval("SELECT applied_at FROM schema_version")
    tables = [r["relname"] for r in await conn.fetch(
        "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p') "
        "AND relname NOT IN ('schema_version', 'partitioned_tables') ORDER BY relname")]
    assert {"services", "nas", "ip_leases", "radius_sessions", "traffic_usage"} <= set(tables)
    async with conn.transaction():
        await conn.execute(f"LOCK TABLE {', '.join(tables)} IN ACCESS EXCLUSIVE MODE")
        init = await asyncio.to_thread(lastmile_db_init, db_url, lock_timeout="2")
    # It asked for no lock: any lock on these tables waits for this transaction, which ends only
    # after db init does, so a wait fails after lock_timeout. (No timing: a loaded machine takes
    # seconds to start a Python process.)
    assert init.returncode == 0, init.stderr
    assert init.stdout == f"lastmile db init: already at schema version {db.schema_version()}\n"
    assert await conn.fetchval("SELECT applied_at FROM schema_version") == applied_at


async def test_daemons_refuse_any_other_version_or_hash_and_say_what_to_run(conn: asyncpg.Connection) -> None:
    version, hash_ = db.schema_version(), db.load_schema().hash
    await db.check_schema(conn)
    cases = [
        ((version - 1, hash_), f"the database schema is version {version - 1}, this lastmile needs {version}: "
                               "run `lastmile db init`"),
        ((version + 1, hash_), f"the database schema is version {version + 1}, newer than this lastmile's "
                               f"({version}): run the lastmile that upgraded it"),
        ((version, None), f"the upgrade of the database to schema version {version} did not finish: "
                          "run `lastmile db init`"),
        ((version, "f" * 64), f"the database has another schema of version {version} than this lastmile "
                              f"(hash ffffffffffff, this one {hash_[:12]}): it was made by another build"),
    ]
    for (v, h), message in cases:
        await conn.execute("UPDATE schema_version SET version = $1, hash = $2", v, h)
        with pytest.raises(db.SchemaError) as refused:
            await db.check_schema(conn)
        assert str(refused.value).startswith(message)


async def test_db_init_refuses_what_it_cannot_upgrade_and_changes_nothing(
    db_url: str, conn: asyncpg.Connection
) -> None:
    version, schema = db.schema_version(), db.load_schema()
    before = dump(db_url)
    cases = [
        ((version + 1, schema.hash), "newer than this lastmile's"),
        ((schema.oldest - 1, None), f"older than this lastmile upgrades from ({schema.oldest}): run `lastmile db init` "
                                    f"of a release with schema version {schema.oldest} first"),
        ((version, "f" * 64), "it was made by another build"),
    ]
    for (v, h), message in cases:
        await conn.execute("UPDATE schema_version SET version = $1, hash = $2", v, h)
        with pytest.raises(db.SchemaError, match=re.escape(message)):
            await db.apply_schema(conn)
        assert tuple(await one(conn, "SELECT version, hash FROM schema_version")) == (v, h)
    init = await asyncio.to_thread(lastmile_db_init, db_url)
    assert init.returncode == 1 and init.stdout == ""
    assert init.stderr.startswith(f"lastmile: the database has another schema of version {version}")
    assert init.stderr.count("\n") == 1
    assert dump(db_url) == before


async def test_empty_database_is_refused(pg_server: str) -> None:
    conn = await db.connect(pg_server)
    try:
        with pytest.raises(db.SchemaError, match="no lastmile schema"):
            await db.check_schema(conn)
    finally:
        await conn.close()


async def test_every_constraint_is_named(conn: asyncpg.Connection) -> None:
    """No PostgreSQL-generated names (<table>_<column>_check/fkey/key): every constraint maps to a message.
    pgqueuer's tables are as its installer writes them (section 9 of schema.sql)."""
    generated = await conn.fetch(
        "SELECT conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace "
        "WHERE n.nspname = 'public' AND c.conislocal AND c.contype <> 'n' "
        "AND (conname ~ '_(check|fkey|key|pkey|excl)$') AND c.conrelid::regclass::text NOT LIKE 'pgqueuer%'"
    )
    assert [r["conname"] for r in generated] == []


PARTS_OF_A_WHOLE = {"ip_leases_pool_fk",  # an address row is part of its pool
                    "router_sync_router_fk",  # provisiond's state of a router, of that router
                    "admin_sessions_admin_fk",  # a login session of its administrator
                    # billing: a customer's billing settings and status history, a partner's branding, a
                    # group's rates, a service's pauses, a preview's items
                    "customer_billing_customer_fk", "customer_status_changes_customer_fk",
                    "partner_branding_partner_fk", "tax_group_rates_group_fk", "service_pauses_service_fk",
                    "billing_run_items_run_fk", "billing_run_items_customer_fk",
                    "document_templates_partner_fk",  # a partner's own document templates
                    # notifications: a partner's own settings, rules, templates and webhooks; a webhook's
                    # deliveries (and an event's: pruned with it), a delivery's attempts
                    "notification_settings_partner_fk", "notice_rules_partner_fk", "message_templates_partner_fk",
                    "webhooks_partner_fk", "webhook_deliveries_webhook_fk", "webhook_deliveries_event_fk",
                    "webhook_attempts_delivery_fk",
                    # acs: a device's parameters, tasks, faults, connection requests and uploaded files; a
                    # task's faults; a file's chunks
                    "acs_parameters_device_fk", "acs_tasks_device_fk", "acs_faults_device_fk", "acs_faults_task_fk",
                    "acs_wakeups_device_fk", "acs_dry_runs_device_fk", "acs_files_device_fk", "acs_file_chunks_file_fk",
                    # tickets: a group's members and shifts, an inbox's deny-list lines, a ticket's watchers
                    "ticket_group_members_group_fk", "ticket_shifts_group_fk", "ticket_denylist_inbox_fk",
                    "ticket_watchers_ticket_fk",
                    # portal: a customer's login, sessions and reset codes; a session "logged in as" by an
                    # administrator; a partner's brand and host names
                    "portal_accounts_customer_fk", "portal_sessions_customer_fk", "portal_codes_customer_fk",
                    "portal_sessions_impersonator_fk", "portal_brands_partner_fk", "portal_hosts_partner_fk",
                    # a tariff's list of the tariffs its customers may move to in the portal
                    "tariff_portal_targets_tariff_fk", "tariff_portal_targets_target_fk",
                    # resellers: a partner's modes and commission rates; the tariffs a partner may sell
                    "partner_modes_partner_fk", "partner_commission_rates_partner_fk",
                    "partner_commission_rates_tariff_fk", "tariff_partners_tariff_fk", "tariff_partners_partner_fk"}


async def test_foreign_keys_restrict(conn: asyncpg.Connection) -> None:
    rules = await conn.fetch("SELECT conname, confdeltype FROM pg_constraint WHERE contype = 'f'")
    assert rules
    for r in rules:
        assert r["confdeltype"] == (b"c" if r["conname"] in PARTS_OF_A_WHOLE else b"r"), r["conname"]


async def add_customer(conn: asyncpg.Connection) -> int:
    partner = await conn.fetchval("INSERT INTO partners (name) VALUES ('p') RETURNING id")
    cid: int = await conn.fetchval(
        "INSERT INTO customers (partner_id, number, name) VALUES ($1, 'C1', 'Ann') RETURNING id", partner
    )
    return cid


async def test_constraints_refuse_bad_rows(conn: asyncpg.Connection) -> None:
    cid = await add_customer(conn)
    tariff = await conn.fetchval(
        "INSERT INTO tariffs (name, download_kbps, upload_kbps) VALUES ('t', 10000, 2000) RETURNING id"
    )
    insert = (
        "INSERT INTO services (customer_id, tariff_id, login, password, ipv4) VALUES ($1, $2, $3, 'pw', $4)"
    )
    await conn.execute(insert, cid, tariff, "a", "100.64.0.1")
    cases = [
        (("a", None), "services_login_unique"),
        (("b", "100.64.0.1"), "services_ipv4_unique"),
        (("c", "100.64.0.0/24"), "services_ipv4_host"),
        (("", None), "services_login_nonempty"),
    ]
    for (login, ip), constraint in cases:
        with pytest.raises(asyncpg.IntegrityConstraintViolationError) as info:
            await conn.execute(insert, cid, tariff, login, ip)
        assert info.value.constraint_name == constraint
    with pytest.raises(asyncpg.ForeignKeyViolationError) as fk:
        await conn.execute("DELETE FROM customers WHERE id = $1", cid)
    assert fk.value.constraint_name == "services_customer_fk"
    with pytest.raises(asyncpg.CheckViolationError) as status:
        await conn.execute("UPDATE customers SET status = 'gone' WHERE id = $1", cid)
    assert status.value.constraint_name == "customers_status_valid"


async def test_nas_prefixes_may_not_overlap(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO nas (name, address, secret) VALUES ('a', '10.0.0.0/24', 's')")
    await conn.execute("INSERT INTO nas (name, address, secret) VALUES ('b', '10.0.1.1/32', 's')")
    with pytest.raises(asyncpg.ExclusionViolationError) as info:
        await conn.execute("INSERT INTO nas (name, address, secret) VALUES ('c', '10.0.0.7/32', 's')")
    assert info.value.constraint_name == "nas_address_no_overlap"


async def test_partitions_made_ahead_and_rows_land_in_them(conn: asyncpg.Connection) -> None:
    parts = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent IN ('traffic_usage'::regclass, 'radius_sessions'::regclass)"
        )
    }
    assert sum(p.startswith("traffic_usage_p") for p in parts) == 8  # today + 7 days
    assert sum(p.startswith("radius_sessions_p") for p in parts) == 3  # this month + 2
    assert await conn.fetchval("SELECT lastmile_maintain_partitions()") == 0
    await conn.execute("INSERT INTO traffic_usage VALUES (1, now(), 10, 20, 1, 2)")
    where = await conn.fetchval("SELECT tableoid::regclass::text FROM traffic_usage")
    assert where.startswith("traffic_usage_p") and where != "traffic_usage_default"
    await conn.execute("INSERT INTO traffic_usage VALUES (1, '2001-01-01', 1, 1, 1, 1)")
    assert await conn.fetchval("SELECT count(*) FROM traffic_usage_default") == 1


async def test_lastmile_partitioned_sets_up_a_time_series(conn: asyncpg.Connection) -> None:
    """What a later issue's table (voice calls, say) gets from one call: its default partition,
    its registration, and from the maintenance its partitions ahead, all with its fillfactor."""
    await conn.execute("CREATE TABLE calls (at timestamptz NOT NULL, seconds integer) PARTITION BY RANGE (at)")
    await conn.execute("SELECT lastmile_partitioned('calls', 'month', 1, fillfactor => 70)")
    await conn.execute("SELECT lastmile_partitioned('calls', 'month', 1, fillfactor => 70)")  # again: no change
    assert tuple(await one(conn, "SELECT unit, ahead, fillfactor FROM partitioned_tables "
                                     "WHERE parent = 'calls'::regclass")) == ("month", 1, 70)
    assert await conn.fetchval("SELECT lastmile_maintain_partitions()") == 2  # this month and the next
    options = {r["relname"]: r["reloptions"] for r in await conn.fetch(
        "SELECT c.relname, c.reloptions FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'calls'::regclass")}
    assert len(options) == 3 and "calls_default" in options
    assert all(o == ["fillfactor=70"] for o in options.values())
    await conn.execute("SELECT lastmile_partitioned('calls', 'day', 3)")  # a new registration, for what comes
    assert tuple(await one(conn, "SELECT unit, ahead, fillfactor FROM partitioned_tables "
                                     "WHERE parent = 'calls'::regclass")) == ("day", 3, 100)
    await conn.execute("CREATE TABLE plain (at timestamptz)")
    with pytest.raises(asyncpg.RaiseError, match=r"^lastmile_partitioned: plain is not a table partitioned by range$"):
        await conn.execute("SELECT lastmile_partitioned('plain', 'day', 7)")
    with pytest.raises(asyncpg.CheckViolationError) as unit:
        await conn.execute("SELECT lastmile_partitioned('calls', 'week', 7)")
    assert unit.value.constraint_name == "partitioned_tables_unit_valid"


async def test_changes_notify_with_table_operation_and_id(conn: asyncpg.Connection, db_url: str) -> None:
    listener = await db.connect(db_url)
    received: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    await listener.add_listener("lastmile_customers", lambda *args: received.put_nowait(json.loads(args[3])))
    try:
        cid = await add_customer(conn)
        assert await asyncio.wait_for(received.get(), 5) == {"table": "customers", "op": "INSERT", "id": cid}
        await conn.execute("UPDATE customers SET status = 'blocked' WHERE id = $1", cid)
        assert await asyncio.wait_for(received.get(), 5) == {"table": "customers", "op": "UPDATE", "id": cid}
        partner = await conn.fetchval("SELECT partner_id FROM customers WHERE id = $1", cid)
        await conn.execute(
            "INSERT INTO customers (partner_id, number, name) SELECT $1, 'N' || g, 'x' FROM generate_series(1, 500) g",
            partner,
        )
        bulk = await asyncio.wait_for(received.get(), 5)
        assert bulk == {"table": "customers", "op": "INSERT", "id": None}
        await asyncio.sleep(0.2)
        assert received.empty(), "a bulk statement sends one reload, not a notification per row"
        await conn.execute("DELETE FROM customers WHERE number = 'N1'")
        deleted = await asyncio.wait_for(received.get(), 5)
        assert deleted["op"] == "DELETE" and isinstance(deleted["id"], int)
    finally:
        await listener.close()


async def test_updated_at_is_touched(conn: asyncpg.Connection) -> None:
    cid = await add_customer(conn)
    before = await conn.fetchval("SELECT updated_at FROM customers WHERE id = $1", cid)
    async with conn.transaction():  # now() is the transaction's start: use a new one
        await conn.execute("UPDATE customers SET name = 'Bea' WHERE id = $1", cid)
    assert await conn.fetchval("SELECT updated_at FROM customers WHERE id = $1", cid) > before


async def test_type_codecs(conn: asyncpg.Connection) -> None:
    import ipaddress

    row = await conn.fetchrow(
        "SELECT '100.64.0.1'::inet AS host, '10.0.0.0/8'::cidr AS net, '2001:db8::/56'::cidr AS v6, "
        "'[[\"Session-Timeout\", 60]]'::jsonb AS reply"
    )
    assert row is not None
    assert row["host"] == ipaddress.IPv4Address("100.64.0.1")
    assert row["net"] == ipaddress.IPv4Network("10.0.0.0/8")
    assert row["v6"] == ipaddress.IPv6Network("2001:db8::/56")
    assert row["reply"] == [["Session-Timeout", 60]]
    assert await conn.fetchval("SELECT $1::jsonb -> 'a'", {"a": 1}) == 1


async def test_money_is_numeric(conn: asyncpg.Connection) -> None:
    """No column of the money type, and every column named like an amount is numeric(14,4), never a
    float (reliability.md D-2; floats stay for durations and rates)."""
    money = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                             "WHERE table_schema = 'public' AND data_type = 'money'")
    assert [tuple(r) for r in money] == []
    named = await conn.fetch(
        "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns "
        "WHERE table_schema = 'public' AND column_name ~ '(amount|price|total|balance|subtotal|fee|^net$|^tax$|"
        "^gross$|^paid$|^open$)' AND data_type NOT IN ('boolean', 'jsonb') AND table_name NOT LIKE 'pgqueuer%'")
    assert named, "no money columns found: the pattern is wrong"
    wrong = [tuple(r) for r in named if (r["data_type"], r["numeric_precision"], r["numeric_scale"])
             != ("numeric", 14, 4) and r["table_name"] not in ("customer_balances", "billing_documents_state")]
    assert wrong == []
