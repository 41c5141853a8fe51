"""Logging in: passwords, sessions and their timeouts, throttling, CSRF, the second factor."""

from __future__ import annotations

from tests.integration.admin.conftest import Admin, make_admin


async def test_a_super_administrator_logs_in_and_sees_the_dashboard(admin: Admin) -> None:
    async with admin.pool.acquire() as conn:
        await make_admin(conn, "root")
    async with admin.client() as c:
        status, _, url = await c.get("/admin/", allow_redirects=True) + ("",)
        assert "/admin/login" in _ or status == 200
        status, body, url = await c.login("root")
        assert status == 200 and url.endswith("/admin/"), body
        assert "Dashboard" in body and "root" in body
