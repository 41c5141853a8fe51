"""Permissions (admin/auth/permissions.py): what a role plus an administrator's own grants and
revokes allow. (That schema.sql inserts exactly BUILTIN is tests/db/test_admin_roles.py's.)"""

from __future__ import annotations

import pytest

from admin.auth import permissions
from admin.auth.permissions import ACTIONS, ALL, AREAS, BUILTIN, SUPER, effective
from admin.auth.principal import Principal


def test_every_area_has_every_action() -> None:
    assert len(ALL) == len(AREAS) * len(ACTIONS)
    assert "customers.view" in ALL and "config.delete" in ALL


def test_effective_is_the_role_plus_grants_minus_revokes() -> None:
    role = {"customers.view", "customers.edit", "tariffs.view"}
    got = effective(role, ["finance.view"], ["customers.edit"])
    assert got == {"customers.view", "tariffs.view", "finance.view"}


def test_a_revoke_wins_over_a_grant_of_the_same_permission() -> None:
    assert effective(["customers.view"], ["finance.view"], ["finance.view"]) == {"customers.view"}


def test_unknown_permissions_are_dropped() -> None:
    """A typo in a role or a grant (or a permission since renamed) grants nothing."""
    assert effective(["customers.view", "customers.fly", "*"], ["root", "customers"], []) == {"customers.view"}


def test_a_super_administrator_has_everything_whatever_its_revokes() -> None:
    assert effective([], [], sorted(ALL), super_role=True) == ALL
    assert effective(["customers.view"], [], ["customers.view"], super_role=True) == ALL


def test_an_empty_role_with_no_grants_may_do_nothing() -> None:
    assert effective([], [], []) == frozenset()


def test_effective_takes_any_iterables() -> None:
    assert effective(iter(["customers.view"]), (p for p in ["tariffs.view"]), ()) == {"customers.view", "tariffs.view"}


def test_the_builtin_roles() -> None:
    by_key = {b.key: b for b in BUILTIN}
    assert list(by_key) == ["super", "admin", "creator", "finance", "manager", "engineer", "technician", "cashier"]
    assert by_key[SUPER].permissions == ALL
    assert not any(p.startswith("config.") for p in by_key["admin"].permissions)
    assert by_key["creator"].own_customers_only and not any(b.own_customers_only for b in BUILTIN if b.key != "creator")
    assert "customers.delete" not in by_key["creator"].permissions
    assert {"finance.view", "finance.add", "finance.edit", "finance.delete"} <= by_key["finance"].permissions
    assert "networking.edit" not in by_key["technician"].permissions
    assert {"payments.view", "payments.add", "payments.edit", "payments.delete"} <= by_key["finance"].permissions
    assert by_key["cashier"].permissions == {"dashboard.view", "customers.view", "payments.view", "payments.add"}
    assert all(b.permissions <= ALL and "dashboard.view" in b.permissions for b in BUILTIN)
    assert len({b.name for b in BUILTIN}) == len(BUILTIN)


def test_wildcards_of_the_builtin_spec_expand_to_every_action() -> None:
    assert permissions._of("finance.*", "tariffs.view") == {
        "finance.view", "finance.add", "finance.edit", "finance.delete", "tariffs.view"}
    with pytest.raises(AssertionError):
        permissions._of("nowhere.view")


def test_sql_rows_names_every_builtin_role() -> None:
    rows = permissions.sql_rows()
    for b in BUILTIN:
        assert f"('{b.name}', '{b.key}', '{{{','.join(sorted(b.permissions))}}}', " in rows


@pytest.mark.parametrize(("own", "expected"), [(True, 7), (False, None)])
def test_a_principal_is_limited_to_its_own_customers_only_by_its_role(own: bool, expected: int | None) -> None:
    who = Principal(name="c", role="Customer creator", permissions=frozenset({"customers.view"}), admin_id=7,
                    own_customers_only=own)
    assert who.creator_id == expected
    assert who.can("customers.view") and not who.can("customers.delete")
