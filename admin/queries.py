"""SQL pieces every area's queries use: keyset pagination and the partner and creator scope."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def keyset(sort_sql: str, direction: str, after: Sequence[Any] | None, first_param: int,
           id_sql: str = "id") -> tuple[str, str, list[Any]]:
    """``(condition, order, params)`` for a page sorted by ``sort_sql`` then ``id_sql``: the rows
    after the cursor ``after`` (the last row's sort value and id), in ``direction``. The sort
    column must not be NULL (coalesce it), so that the row order is total."""
    op, order = (">", "ASC") if direction == "asc" else ("<", "DESC")
    order_by = f"ORDER BY {sort_sql} {order}, {id_sql} {order}"
    if not after:
        return "true", order_by, []
    a, b = f"${first_param}", f"${first_param + 1}"
    return f"({sort_sql}, {id_sql}) {op} ({a}, {b}::bigint)", order_by, [after[0], after[1]]


CUSTOMER_SCOPE = "($1::bigint IS NULL OR c.partner_id = $1) AND ($2::bigint IS NULL OR c.created_by = $2)"
"""The customers a principal sees: ``$1`` its partner, ``$2`` the creator it is limited to (each may be NULL)."""
