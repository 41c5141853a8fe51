"""A tariff's portal settings through its form and the API: the plan-change mode, the tariffs its
customers may move to (tariff_portal_targets) and whether they may stop a service, in the log."""

from __future__ import annotations

from typing import Any

from tests.integration.admin.conftest import Admin, Client, api_key, call, logged_in

FORM = {"name": "Fibre 100", "download_kbps": "100000", "upload_kbps": "20000", "priority": "8",
        "contention": "1", "price": "29.90", "currency": "EUR"}


async def post(c: Client, path: str, fields: list[tuple[str, str]]) -> tuple[int, str, str]:
    """POST a form whose names may repeat (the targets' checkboxes)."""
    async with c.session.post(c.url + path, data=[*fields, ("_csrf", c.csrf)]) as r:
        return r.status, await r.text(), str(r.url)


async def tariff(admin: Admin, name: str) -> int:
    async with admin.pool.acquire() as conn:
        return int(await conn.fetchval("INSERT INTO tariffs (name, download_kbps, upload_kbps, price) "
                                       "VALUES ($1, 1000, 1000, 10) RETURNING id", name))


async def targets(admin: Admin, tariff_id: int) -> list[int]:
    async with admin.pool.acquire() as conn:
        return [r["target_id"] for r in await conn.fetch(
            "SELECT target_id FROM tariff_portal_targets WHERE tariff_id = $1 ORDER BY target_id", tariff_id)]


async def test_the_form_sets_the_portal_mode_targets_and_stop(admin: Admin) -> None:
    small, big = await tariff(admin, "Small"), await tariff(admin, "Big")
    async with await logged_in(admin) as c:
        status, body = await c.get("/admin/tariffs/new")
        assert status == 200 and 'name="portal_change"' in body and 'name="portal_targets"' in body
        assert "Small" in body and 'name="portal_stop"' in body
        fields: list[tuple[str, Any]] = [*FORM.items(), ("portal_change", "self_service"),
                                         ("portal_targets", str(small)), ("portal_targets", str(big)),
                                         ("portal_stop", "1")]
        status, body, url = await post(c, "/admin/tariffs/new", fields)
        assert status == 200 and "done=created" in url, body[:800]
        tid = int(url.split("/")[-1].split("?")[0])
        assert "plan change self-service, to 2 plans; stop and resume allowed" in body
        assert await targets(admin, tid) == sorted([small, big])

        status, body = await c.get(f"/admin/tariffs/{tid}/edit")
        assert status == 200 and body.count("portal_targets\" value=") == 2 and body.count("checked") >= 3
        status, body, url = await post(c, f"/admin/tariffs/{tid}/edit",
                                       [*FORM.items(), ("portal_change", "request"), ("portal_targets", str(big))])
        assert status == 200 and "done=saved" in url, body[:800]
        assert "plan change on request, to 1 plan; stop and resume not allowed" in body
        assert await targets(admin, tid) == [big]

        status, body, _ = await post(c, f"/admin/tariffs/{tid}/edit",
                                     [*FORM.items(), ("portal_change", "sometimes")])
        assert status == 422 and 'id="e-portal_change"' in body
    async with admin.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT portal_change, portal_stop FROM tariffs WHERE id = $1", tid)
        log = await conn.fetch("SELECT * FROM operations_log WHERE object_type = 'tariff' AND object_id = $1 "
                               "ORDER BY id", tid)
        tickets = await conn.fetchval("SELECT count(*) FROM tickets WHERE rule_key LIKE $1", f"tariff:{tid}:%")
    assert row is not None and (row["portal_change"], row["portal_stop"]) == ("request", False)
    assert [r["action"] for r in log] == ["create", "update"]
    assert log[1]["before"]["portal_targets"] == sorted([small, big]) and log[1]["after"]["portal_targets"] == [big]
    assert log[1]["after"]["portal_change"] == "request"
    assert tickets == 1  # the creation's; the portal settings alone open no tariff ticket


async def test_the_api_reads_and_changes_the_portal_settings(admin: Admin) -> None:
    small = await tariff(admin, "Small")
    async with admin.pool.acquire() as conn:
        key = await api_key(conn)
    status, t = await call(admin, key, "POST", "/tariffs", {"name": "API", "download_kbps": 1000, "upload_kbps": 1000})
    assert status == 201 and t["portal_change"] == "off" and t["portal_targets"] == [] and t["portal_stop"] is False
    status, t = await call(admin, key, "PATCH", f"/tariffs/{t['id']}", {"portal_change": "self_service",
                                                                        "portal_targets": [small],
                                                                        "portal_stop": True})
    assert status == 200, t
    assert (t["portal_change"], t["portal_targets"], t["portal_stop"]) == ("self_service", [small], True)
    status, problem = await call(admin, key, "PATCH", f"/tariffs/{t['id']}", {"portal_targets": [t["id"]]})
    assert status == 422 and "portal_targets" in problem["errors"], problem
    status, problem = await call(admin, key, "PATCH", f"/tariffs/{t['id']}", {"portal_targets": [987654]})
    assert status == 422 and "no such tariff" in problem["errors"]["portal_targets"], problem
    status, got = await call(admin, key, "GET", f"/tariffs/{t['id']}")
    assert got["portal_targets"] == [small]
