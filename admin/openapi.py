"""The OpenAPI 3.1 document of the REST API, made from the operations the areas declare
(admin/web.py ``Area.api``) and the msgspec types that decode and encode them: what validates a
request is what the document says, so the two cannot drift."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from admin.idempotency import METHODS as IDEMPOTENT_METHODS
from admin.idempotency import PARAMETER as IDEMPOTENCY_KEY
from admin.schemas import Problem
from admin.web import PUBLIC, Area, Operation

REF = "#/components/schemas/{name}"
_PATH_PARAM = re.compile(r"{(\w+)}")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": {"$ref": REF.format(name="Problem")}}}}


def document(areas: list[Area], version: str, server: str = "/api/v1") -> dict[str, Any]:
    operations = [op for area in areas for op in area.operations]
    types: list[Any] = [Problem]
    for op in operations:
        types += [t for t in (op.query, op.body, op.response) if t is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF)
    by_type = dict(zip(map(id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, by_type, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "lastmile REST API", "version": version,
                 "description": "Every operation needs an API key (`Authorization: Bearer lm_...`, created under "
                                "Administration → API keys) whose role has the operation's permission "
                                "(`x-permission`). Lists are pages: pass the `next` of a page as `after`."},
        "servers": [{"url": server}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": components,
                       "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                                      "description": "an API key, lm_<prefix>_<secret>"}}},
        "security": [{"apiKey": []}],
    }


def _operation(op: Operation, by_type: dict[int, Any], components: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True,
         "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1} if name == "id" else {"type": "string"}}
        for name in _PATH_PARAM.findall(op.path)]
    if op.method in IDEMPOTENT_METHODS and op.permission != PUBLIC:
        params.append(IDEMPOTENCY_KEY)
    if op.query is not None:
        ref = by_type[id(op.query)]
        schema = components[ref["$ref"].rsplit("/", 1)[1]]
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    out: dict[str, Any] = {
        "summary": op.summary, "tags": [op.tag], "operationId": f"{op.method.lower()}_{_slug(op.path)}",
        "x-permission": op.permission,
        "responses": {str(op.status): {"description": "OK" if op.status < 300 else "done"}},
    }
    if op.description:
        out["description"] = op.description
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": by_type[id(op.body)]}}}
    if op.response is not None:
        out["responses"][str(op.status)]["content"] = {"application/json": {"schema": by_type[id(op.response)]}}
    if op.permission == PUBLIC:
        out["security"] = []
    else:
        out["responses"]["401"] = _problem("no API key, or an unknown or revoked one")
        out["responses"]["403"] = _problem("the key's role lacks the permission, or its address is not allowed")
    if params or op.body is not None:
        out["responses"]["422"] = _problem("invalid input: `errors` says which field and why")
        out["responses"]["400"] = _problem("a malformed request (a bad page cursor)")
    if _PATH_PARAM.search(op.path):
        out["responses"]["404"] = _problem("no such object, or not one this key may see")
    if op.method in ("POST", "PATCH", "PUT", "DELETE"):
        out["responses"]["409"] = _problem("the change conflicts with the object's state or its references")
    return out


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", path.lower()).strip("_")
