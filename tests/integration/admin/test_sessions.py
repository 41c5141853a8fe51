"""Sessions and traffic in the admin: live sessions (filters, keyset pages, CSV, disconnect), the
history and "who had this address then", the post-auth log with its "why can't this customer log
in" panel, a service's traffic graph data, the revenue-leak report; partner scope and permissions."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp
import asyncpg

from admin.listing import encode_cursor
from admin.sessions import diagnose, traffic
from admin.sessions.schemas import REASONS
from daemons import demo
from radiusd import policy
from tests.integration.admin.conftest import Admin, api_key, make_admin

NOW = datetime.now(UTC).replace(microsecond=0)
IP_AT = "100.127.9.9"  # held by one login two to three hours ago, by another one since an hour ago


async def seed(conn: asyncpg.Connection) -> dict[str, Any]:
    """20 demo services (partner "Demo ISP") and one of "Other ISP"; live sessions of the first five
    demo services, of the other partner's service and of a login with no service; ended ones."""
    await demo.load(conn, 20, seed=1)
    other = await conn.fetchval("INSERT INTO partners (name) VALUES ('Other ISP') RETURNING id")
    customer = await conn.fetchval(
        "INSERT INTO customers (partner_id, number, name) VALUES ($1, 'X0000001', 'Olga Other') RETURNING id", other)
    other_service = await conn.fetchval(
        "INSERT INTO services (customer_id, tariff_id, login, password) "
        "SELECT $1, min(id), 'olga', 'pw-olga-123' FROM tariffs RETURNING id", customer)
    services = await conn.fetch("SELECT id, login, host(ipv4) AS ipv4 FROM services WHERE login <> 'olga' ORDER BY id")
    nas_id = await conn.fetchval("SELECT id FROM nas WHERE name = 'demo-bras'")
    rows: list[tuple[Any, ...]] = []  # (uid, started, service_id, login, ip, stopped, cause, in, out)
    for i, s in enumerate(services[:5]):
        rows.append((f"live-{s['login']}", NOW - timedelta(minutes=10 * (i + 1)), s["id"], s["login"],
                     s["ipv4"] or f"100.96.0.{i + 1}", None, None, 1000 * (i + 1), 5000 * (i + 1)))
    rows.append(("live-olga", NOW - timedelta(minutes=3), other_service, "olga", "100.127.1.1", None, None, 7, 8))
    rows.append(("live-ghost", NOW - timedelta(minutes=4), None, "ghost", "100.127.2.2", None, None, 1, 2))
    first, second = services[5], services[6]
    rows.append(("old-1", NOW - timedelta(hours=3), first["id"], first["login"], IP_AT, NOW - timedelta(hours=2),
                 "User-Request", 111, 222))
    rows.append(("old-2", NOW - timedelta(hours=1), second["id"], second["login"], IP_AT, None, None, 333, 444))
    rows.append(("old-3", NOW - timedelta(days=1), first["id"], first["login"], "100.127.3.3",
                 NOW - timedelta(hours=20), "Lost-Carrier", 1, 1))
    await conn.executemany("INSERT INTO radius_session_index VALUES ($1, $2)", [(r[0], r[1]) for r in rows])
    await conn.executemany(
        "INSERT INTO radius_sessions (acct_unique_id, started_at, service_id, nas_id, username, acct_session_id, "
        "framed_ip, calling_station_id, updated_at, stopped_at, terminate_cause, input_octets, output_octets) "
        "VALUES ($1, $2, $3, $10, $4, 'as-' || $1, $5::text::inet, '02:00:00:00:00:0' || length($1) % 10, now(), "
        "$6, $7, $8, $9)", [(*r, nas_id) for r in rows])
    return {"services": services, "other_service": other_service, "other_partner": other, "nas_id": nas_id,
            "first": first, "second": second, "customer": customer}


@contextlib.asynccontextmanager
async def connection(admin: Admin) -> AsyncIterator[asyncpg.Connection]:
    """A pool connection, typed as conftest's make_admin takes it."""
    async with admin.pool.acquire() as conn:
        yield cast(asyncpg.Connection, conn)


async def api(admin: Admin, key: str, method: str, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {key}"}) as s, \
            s.request(method, admin.url + "/api/v1" + path) as r:
        return r.status, await r.json(content_type=None)


def logins(body: str) -> list[str]:
    """The logins of a list page's rows, in order."""
    return re.findall(r'<td class="mono"><a href="/admin/sessions/[a-z-]+\?login=[^"]*"[^>]*>([^<]+)</a>', body)


def next_link(body: str) -> str | None:
    m = re.search(r'<a href="([^"]+)" rel="next">', body)
    return m.group(1).replace("&amp;", "&") if m else None


async def test_live_sessions_list_filter_page_by_keyset_and_export(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "root")
    live = [s["login"] for s in data["services"][:5]]
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get("/admin/sessions")
        assert status == 200, body
        shown = logins(body)
        # newest first: olga (3 min), ghost (4), the five demo ones (10..50), the one since an hour
        assert shown == ["olga", "ghost", *live, data["second"]["login"]]
        assert f'href="/admin/customers/{data["customer"]}"' in body and "Olga Other" in body
        assert "demo-bras" in body and "100.127.1.1" in body and "Disconnect" in body
        for label in ("Sessions online", "Session history", "Login log", "Unknown traffic"):
            assert label in body

        prefix = live[0][:3]
        status, body = await c.get(f"/admin/sessions?login={prefix.upper()}")
        assert status == 200 and logins(body) == [x for x in shown if x.startswith(prefix)]
        status, body = await c.get("/admin/sessions?ip=100.127.0.0/16")
        assert logins(body) == ["olga", "ghost", data["second"]["login"]]
        status, body = await c.get(f"/admin/sessions?nas={data['nas_id']}&ip=100.127.1.1")
        assert logins(body) == ["olga"]
        status, body = await c.get("/admin/sessions?ip=not-an-ip")
        assert status == 422 and "not an IP address or network" in body

        # keyset pages of 3, in two sorts: together they are the whole list, once each
        for sort, expected in (("started&dir=desc", shown), ("login&dir=asc", sorted(shown))):
            path: str | None = f"/admin/sessions?sort={sort}&limit=3"
            seen: list[str] = []
            while path:
                status, body = await c.get(path)
                assert status == 200, body
                seen += logins(body)
                path = next_link(body)
            assert seen == expected
        status, _ = await c.get("/admin/sessions?after=garbage")
        assert status == 400

        status, text = await c.get("/admin/sessions?format=csv&login=olga")
        assert status == 200
        table = list(csv.reader(io.StringIO(text)))
        assert table[0][:3] == ["acct_unique_id", "login", "service_id"] and len(table) == 2
        assert table[1][:3] == ["live-olga", "olga", str(data["other_service"])]

    key = await _key(admin, "super")
    status, page = await api(admin, key, "GET", "/sessions?limit=4")
    assert status == 200 and [s["login"] for s in page["items"]] == shown[:4] and page["next"]
    status, rest = await api(admin, key, "GET", f"/sessions?limit=4&after={page['next']}")
    assert [s["login"] for s in rest["items"]] == shown[4:] and rest["next"] is None
    ghost = page["items"][1]
    assert ghost["service_id"] is None and ghost["customer"] is None and ghost["stopped_at"] is None
    assert ghost["framed_ip"] == "100.127.2.2" and ghost["duration_s"] >= 240 and ghost["output_octets"] == 2
    assert (await api(admin, key, "GET", "/sessions?sort=nonsense"))[0] == 422
    assert (await api(admin, key, "GET", "/sessions?login=a%00b"))[0] == 422
    assert (await api(admin, key, "GET", f"/sessions?after={encode_cursor(['not a time', 'x'])}"))[0] == 400
    assert (await api(admin, key, "GET", f"/sessions?after={encode_cursor([1, 2])}"))[0] == 400


async def _key(admin: Admin, role: str, partner_id: int | None = None) -> str:
    async with connection(admin) as conn:
        return await api_key(conn, role, partner_id=partner_id)


async def test_history_finds_who_had_an_address_at_a_time(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "root")
    first, second = data["first"]["login"], data["second"]["login"]
    then = (NOW - timedelta(minutes=150)).strftime("%Y-%m-%dT%H:%M")
    later = (NOW - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M")
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get(f"/admin/sessions/history?ip={IP_AT}&at={then}")
        assert status == 200 and logins(body) == [first], body
        assert "User-Request" in body
        status, body = await c.get(f"/admin/sessions/history?ip={IP_AT}&at={later}")
        assert logins(body) == [second] and "online" in body
        status, body = await c.get(f"/admin/sessions/history?ip={IP_AT}")
        assert logins(body) == [second, first]
        status, body = await c.get(f"/admin/sessions/history?login={first}")
        assert logins(body) == [first, first] and "Lost-Carrier" in body
        status, body = await c.get("/admin/sessions/history?at=yesterday")
        assert status == 422 and "not a time" in body
        # every session, newest first, in pages of 4
        path: str | None = "/admin/sessions/history?limit=4"
        seen: list[str] = []
        while path:
            status, body = await c.get(path)
            seen += logins(body)
            path = next_link(body)
        assert len(seen) == 10 and seen[:2] == ["olga", "ghost"] and seen[-1] == first

    key = await _key(admin, "engineer")
    status, page = await api(admin, key, "GET", f"/sessions/history?ip={IP_AT}&at={then}Z")
    assert status == 200 and [s["login"] for s in page["items"]] == [first]
    assert page["items"][0]["terminate_cause"] == "User-Request" and page["items"][0]["duration_s"] == 3600
    status, _ = await api(admin, key, "GET", "/sessions/history?ip=100.64.0.0.1")
    assert status == 422


async def test_disconnect_queues_a_coa_request_and_writes_the_operations_log(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "root")
        await make_admin(conn, "watcher", "manager")  # networking.view, not networking.edit
    target = data["services"][0]
    async with admin.client() as c:
        await c.login("root")
        await c.get("/admin/sessions")
        status, body, url = await c.post("/admin/sessions/disconnect", {"session": f"live-{target['login']}"})
        assert status == 200 and "/admin/sessions?queued=" in url, body
        assert "Disconnect queued" in body and "CoA requests waiting" in body
    async with connection(admin) as conn:
        coa = await conn.fetch("SELECT service_id, action, state FROM coa_requests WHERE action = 'disconnect'")
        assert [tuple(r) for r in coa] == [(target["id"], "disconnect", "pending")]
        log = await conn.fetchrow("SELECT actor, action, object_type, object_id, customer_id, after "
                                  "FROM operations_log WHERE action = 'disconnect'")
        assert log is not None and log["actor"] == "root" and log["object_type"] == "service"
        assert log["object_id"] == target["id"] and log["customer_id"] is not None
        assert log["after"]["acct_unique_id"] == f"live-{target['login']}"
    async with admin.client() as c:
        await c.login("watcher")
        status, body = await c.get("/admin/sessions")
        assert status == 200 and "Disconnect</button>" not in body
        status, _, _ = await c.post("/admin/sessions/disconnect", {"session": f"live-{target['login']}"})
        assert status == 403

    key = await _key(admin, "engineer")
    status, queued = await api(admin, key, "POST", "/sessions/old-2/disconnect")
    assert status == 202 and queued["service_id"] == data["second"]["id"] and queued["state"] == "pending"
    assert (await api(admin, key, "POST", "/sessions/old-1/disconnect"))[0] == 409  # ended
    assert (await api(admin, key, "POST", "/sessions/live-ghost/disconnect"))[0] == 409  # no service
    assert (await api(admin, key, "POST", "/sessions/nothing/disconnect"))[0] == 404
    assert (await api(admin, await _key(admin, "manager"), "POST", "/sessions/live-olga/disconnect"))[0] == 403
    async with connection(admin) as conn:
        assert await conn.fetchval("SELECT count(*) FROM coa_requests WHERE action = 'disconnect'") == 2
        assert await conn.fetchval("SELECT count(*) FROM operations_log WHERE action = 'disconnect'") == 2


async def test_the_login_log_filters_and_says_why_a_login_is_refused(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "root")
        s = data["services"][0]
        await conn.execute("UPDATE services SET mac = '02:aa:bb:cc:dd:ee', simultaneous_use = 1 WHERE id = $1", s["id"])
        await conn.executemany(
            "INSERT INTO radius_postauth (at, username, service_id, nas_id, result, reason, calling_station_id) "
            "VALUES ($1, $2, $3, $4, $5, $6, '02:11:22:33:44:55')",
            [(NOW - timedelta(minutes=m), s["login"], s["id"], data["nas_id"], result, reason)
             for m, result, reason in ((1, "reject", policy.SIMULTANEOUS_USE), (2, "reject", policy.MAC_MISMATCH),
                                       (3, "accept", policy.ACCEPTED))]
            + [(NOW - timedelta(minutes=5), "nobody", None, data["nas_id"], "reject", policy.UNKNOWN_USER),
               (NOW - timedelta(minutes=6), "olga", data["other_service"], data["nas_id"], "accept", policy.ACCEPTED)])
        tariff = await conn.fetchval("SELECT t.name FROM services s JOIN tariffs t ON t.id = s.tariff_id "
                                     "WHERE s.id = $1", s["id"])
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get("/admin/sessions/auth-log?result=reject")
        assert status == 200 and logins(body) == [s["login"], s["login"], "nobody"], body
        status, body = await c.get(f"/admin/sessions/auth-log?reason={policy.UNKNOWN_USER}")
        assert logins(body) == ["nobody"]
        status, body = await c.get(f"/admin/sessions/auth-log?login={s['login']}")
        assert status == 200 and logins(body) == [s["login"]] * 3
        why = body.split('id="why"')[1].split("</section>")[0]
        assert tariff in why and "02:aa:bb:cc:dd:ee" in why and "1 open of 1" in why
        assert "simultaneous use exceeded" in why and "The last attempt was rejected" in why
        status, body = await c.get("/admin/sessions/auth-log?login=nobody")
        assert "No service has this login" in body
        status, body = await c.get("/admin/sessions/auth-log?result=maybe")
        assert status == 422
        path: str | None = "/admin/sessions/auth-log?limit=2"
        seen: list[str] = []
        while path:
            status, body = await c.get(path)
            seen += logins(body)
            path = next_link(body)
        assert seen == [s["login"]] * 3 + ["nobody", "olga"]

    status, page = await api(admin, await _key(admin, "technician"), "GET", "/auth-log?result=reject&limit=1")
    assert status == 200 and page["items"][0]["reason"] == policy.SIMULTANEOUS_USE and page["next"]
    assert page["items"][0]["customer_id"] is not None and page["items"][0]["nas"] == "demo-bras"


async def test_a_partner_administrator_sees_only_its_partners_sessions(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "other", "admin", partner_id=data["other_partner"])
        await conn.execute("INSERT INTO radius_postauth (at, username, service_id, result, reason) VALUES "
                           "(now(), 'olga', $1, 'accept', 'ok'), (now(), 'ghost', NULL, 'reject', 'unknown user'), "
                           "(now(), $2, $3, 'accept', 'ok')",
                           data["other_service"], data["first"]["login"], data["first"]["id"])
    demo_service = data["services"][0]
    async with admin.client() as c:
        await c.login("other")
        status, body = await c.get("/admin/sessions")
        assert status == 200 and logins(body) == ["olga"]
        status, body = await c.get("/admin/sessions/history")
        assert logins(body) == ["olga"]
        status, body = await c.get(f"/admin/sessions/history?ip={IP_AT}")
        assert logins(body) == []
        status, body = await c.get("/admin/sessions/auth-log")
        assert logins(body) == ["olga"]
        status, body = await c.get(f"/admin/sessions/auth-log?login={demo_service['login']}")
        assert "No service has this login" in body
        assert (await c.get(f"/admin/services/{demo_service['id']}/traffic"))[0] == 404
        assert (await c.get(f"/admin/services/{demo_service['id']}/traffic.json"))[0] == 404
        assert (await c.get(f"/admin/services/{data['other_service']}/traffic"))[0] == 200
        await c.get("/admin/sessions")
        status, _, _ = await c.post("/admin/sessions/disconnect", {"session": f"live-{demo_service['login']}"})
        assert status == 404

    key = await _key(admin, "admin", data["other_partner"])
    status, page = await api(admin, key, "GET", "/sessions")
    assert status == 200 and [s["login"] for s in page["items"]] == ["olga"]
    assert (await api(admin, key, "GET", f"/services/{demo_service['id']}/traffic"))[0] == 404
    assert (await api(admin, key, "POST", "/sessions/live-ghost/disconnect"))[0] == 404
    assert (await api(admin, key, "POST", "/sessions/live-olga/disconnect"))[0] == 202


async def test_roles_without_networking_get_403(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "money", "finance")  # customers.view, no networking
    async with admin.client() as c:
        await c.login("money")
        for path in ("/admin/sessions", "/admin/sessions/history", "/admin/sessions/auth-log", "/admin/traffic/leaks"):
            assert (await c.get(path))[0] == 403, path
        status, body = await c.get("/admin/")
        assert status == 200 and "Sessions online" not in body
        # the traffic graph is the customers' (customers.view)
        assert (await c.get(f"/admin/services/{data['first']['id']}/traffic"))[0] == 200
    key = await _key(admin, "finance")
    for path in ("/sessions", "/sessions/history", "/auth-log", "/traffic/leaks"):
        assert (await api(admin, key, "GET", path))[0] == 403, path
    assert (await api(admin, key, "GET", f"/services/{data['first']['id']}/traffic"))[0] == 200


async def test_the_traffic_graph_sums_minutes_hours_and_days(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "root")
        sid = data["first"]["id"]
        minute = NOW.replace(second=0) - timedelta(minutes=5)
        # two flushes in one minute, one the minute after; another service's row is not counted
        await conn.executemany("INSERT INTO traffic_usage VALUES ($1, $2, $3, $4, 1, 1)", [
            (sid, minute, 1000, 10), (sid, minute, 500, 5), (sid, minute + timedelta(minutes=1), 7, 3),
            (data["second"]["id"], minute, 99999, 99999)])
        await conn.execute("SELECT lastmile_rollup_traffic(now() - interval '2 days')")
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get(f"/admin/services/{sid}/traffic?range=hours")
        assert status == 200 and 'data-url="/admin/services/' in body and "uPlot-1.6.32.iife.min.js" in body
        assert "traffic.js" in body and "<script>" not in body and " style=" not in body
        status, js = await c.get("/admin/static/traffic.js")
        assert status == 200 and "uPlot" in js
        status, text = await c.get(f"/admin/services/{sid}/traffic.json?range=minutes")
        assert status == 200
    series = json.loads(text)
    assert series["step_s"] == 60 and len(series["t"]) == 360
    i = series["t"].index(int(minute.timestamp()))
    assert series["bytes_down"][i:i + 2] == [1500, 7] and series["bytes_up"][i:i + 2] == [15, 3]
    assert series["total_down"] == 1507 and series["total_up"] == 18
    key = await _key(admin, "technician")
    for range_, step, buckets in (("hours", 3600, 168), ("days", 86400, 90)):
        status, s = await api(admin, key, "GET", f"/services/{sid}/traffic?range={range_}")
        assert status == 200 and s["step_s"] == step and len(s["t"]) == buckets
        assert (s["total_down"], s["total_up"]) == (1507, 18), range_
    assert (await api(admin, key, "GET", f"/services/{sid}/traffic?range=years"))[0] == 422
    assert (await api(admin, key, "GET", "/services/999999/traffic"))[0] == 404


async def test_the_leak_report_lists_unknown_and_unbilled_traffic(admin: Admin) -> None:
    async with connection(admin) as conn:
        data = await seed(conn)
        await make_admin(conn, "root")
        await make_admin(conn, "other", "admin", partner_id=data["other_partner"])
        minute = NOW.replace(second=0) - timedelta(minutes=10)
        await conn.execute("INSERT INTO traffic_unknown VALUES ('127.0.0.1', $1, 5000000, 10, '100.127.200.1'), "
                           "('127.0.0.1', $2, 4000, 4, '100.127.200.2')", minute, minute - timedelta(hours=3))
        await conn.execute("UPDATE services SET status = 'blocked' WHERE id = $1", data["other_service"])
        await conn.execute("INSERT INTO traffic_usage (service_id, minute, bytes_down, bytes_up, packets_down, "
                           "packets_up, billing) VALUES ($1, $2, 3000, 1000, 3, 1, 'service_blocked')",
                           data["other_service"], minute)
    async with admin.client() as c:
        await c.login("root")
        status, body = await c.get("/admin/traffic/leaks?since=1h")
        assert status == 200 and "100.127.200.1" in body and "no service" in body and "service blocked" in body
        assert "100.127.200.2" not in body and "olga" in body
        status, body = await c.get("/admin/traffic/leaks?since=24h")
        assert "100.127.200.2" in body
        status, text = await c.get("/admin/traffic/leaks?since=24h&format=csv")
        table = list(csv.reader(io.StringIO(text)))
        assert [r[0] for r in table[1:]] == ["100.127.200.1", "100.127.1.1", "100.127.200.2"]
        assert table[2][2] == "olga" and table[2][5] == "service_blocked" and table[2][6] == "4000"
        assert (await c.get("/admin/traffic/leaks?since=forever"))[0] == 422
    async with admin.client() as c:
        await c.login("other")
        status, body = await c.get("/admin/traffic/leaks?since=24h")
        assert "olga" in body and "100.127.200.1" not in body
    status, report = await api(admin, await _key(admin, "engineer"), "GET", "/traffic/leaks?since=7d&limit=2")
    assert status == 200 and [(r["address"], r["billing"]) for r in report["items"]] == [
        ("100.127.200.1", "no_service"), ("100.127.1.1", "service_blocked")]
    assert report["items"][1]["customer_id"] == data["customer"] and report["items"][1]["bytes"] == 4000


def test_the_reasons_are_radiusds() -> None:
    constants = {v for k, v in vars(policy).items() if k.isupper() and isinstance(v, str)}
    assert set(REASONS) == constants


def test_findings_read_a_login_as_radiusd_does() -> None:
    facts = {"status": "active", "customer_status": "active", "mac": None, "simultaneous_use": 1, "online": 0}
    assert [f.level for f in diagnose.findings(facts, [{"result": "accept", "reason": "ok"}])] == ["ok", "ok"]
    bad = diagnose.findings({**facts, "status": "disabled", "customer_status": "new", "online": 1}, [])
    assert [f.level for f in bad] == ["bad", "bad", "bad", "warn"]
    assert "unknown user" in diagnose.findings(None, [])[0].text


def test_traffic_buckets_are_filled_and_summed() -> None:
    now = datetime(2026, 12, 1, 10, 30, 15, tzinfo=UTC)
    start, end = traffic.window("minutes", now)
    assert end == now and start == datetime(2026, 12, 1, 4, 31, tzinfo=UTC)
    t, down, up = traffic.fill("minutes", start, [(start, 1, 2), (start, 3, 4), (now.replace(second=0), 5, 6),
                                                 (start - timedelta(minutes=1), 100, 100)])
    assert len(t) == 360 and (down[0], up[0], down[-1], up[-1], sum(down)) == (4, 6, 5, 6, 9)
    assert traffic.window("days", now)[0] == datetime(2026, 9, 3, tzinfo=UTC)
