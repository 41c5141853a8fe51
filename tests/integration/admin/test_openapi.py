"""The OpenAPI document: made from the declared operations, valid, and what the API does."""

from __future__ import annotations

import aiohttp

from tests.integration.admin.conftest import Admin


async def test_the_document_lists_every_operation_with_its_permission(admin: Admin) -> None:
    async with aiohttp.ClientSession() as s, s.get(admin.url + "/api/v1/openapi.json") as r:
        assert r.status == 200
        doc = await r.json()
    assert doc["openapi"] == "3.1.0"
    declared = {(op.method.lower(), op.path) for area in admin.app[__import__("admin.keys").keys.AREAS]
                for op in area.operations}
    documented = {(m, p) for p, methods in doc["paths"].items() for m in methods}
    assert declared == documented
    op = doc["paths"]["/customers"]["get"]
    assert op["x-permission"] == "customers.view" and any(p["name"] == "after" for p in op["parameters"])
    assert doc["paths"]["/customers"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CustomerIn"}
    async with aiohttp.ClientSession() as s, s.get(admin.url + "/api/v1/docs") as r:
        assert r.status == 200
        page = await r.text()
    assert "/customers/{id}" in page and "customers.view" in page and 'id="schema-CustomerIn"' in page
