"""provisiond's pure core: normal forms, the planner, the desired state, the import's grouping."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons.provisiond import importer
from daemons.provisiond.desired import Policy, Service, Tariff, desired
from daemons.provisiond.model import ADDRESS_LIST, DHCP_LEASE, PPP_SECRET, QUEUE, Item, item, make, normal, owner_tag
from daemons.provisiond.plan import Change, plan


@pytest.mark.parametrize(("attr", "raw", "expected"), [
    ("max-limit", "10M/20M", "10000000/20000000"),
    ("max-limit", "10000000/20000000", "10000000/20000000"),
    ("max-limit", "512k/1M", "512000/1000000"),
    ("max-limit", "1.5M/3M", "1500000/3000000"),
    ("max-limit", "10M", "10000000/10000000"),
    ("burst-time", "8s/8s", "8/8"),
    ("burst-time", "00:00:08/00:01:00", "8/60"),
    ("burst-time", "1m30s/0s", "90/0"),
    ("priority", "8", "8/8"),
    ("disabled", "yes", "true"),
    ("disabled", False, "false"),
    ("target", "10.0.0.5", "10.0.0.5/32"),
    ("target", "10.0.0.5/32,10.0.0.6", "10.0.0.5/32,10.0.0.6/32"),
    ("mac-address", "aa:bb:cc:00:11:22", "AA:BB:CC:00:11:22"),
    ("comment", 123, "123"),  # librouteros turns "123" into an int
    ("name", "0123", "0123"),
])
def test_values_compare_in_one_normal_form(attr: str, raw: str | int | bool, expected: str) -> None:
    assert normal(attr, raw) == expected
    assert normal(attr, expected) == expected  # idempotent


def tagged(menu: object, sid: int, **attrs: str) -> dict[str, str]:
    return {**attrs, "comment": owner_tag(sid)}


def test_the_plan_adds_sets_and_removes_only_what_differs() -> None:
    want = [item(QUEUE, name="a", target="10.0.0.1", max_limit="1M/2M", comment=owner_tag(1)),
            item(QUEUE, name="b", target="10.0.0.2", max_limit="1M/2M", comment=owner_tag(2)),
            item(QUEUE, name="c", target="10.0.0.3", max_limit="1M/2M", comment=owner_tag(3))]
    seen = [item(QUEUE, "*1", name="a", target="10.0.0.1/32", max_limit="1000000/2000000", comment=owner_tag(1)),
            item(QUEUE, "*2", name="b", target="10.0.0.2/32", max_limit="5M/5M", comment=owner_tag(2)),
            item(QUEUE, "*3", name="old", target="10.0.0.9/32", comment=owner_tag(9)),
            item(QUEUE, "*4", name="theirs", target="10.0.0.8/32", comment="made by hand")]
    p = plan(want, seen)
    assert [(c.op, c.item.attrs["name"], c.item.id) for c in p.changes] == [
        ("remove", "old", "*3"), ("set", "b", "*2"), ("add", "c", None)]
    assert p.changes[1].attrs == {"max-limit": "1000000/2000000"}  # only what differs is sent
    assert p.owned == 3 and not p.conflicts


def test_an_object_without_the_tag_is_never_written_and_named_as_a_conflict() -> None:
    want = [item(QUEUE, name="a", target="10.0.0.1", comment=owner_tag(1))]
    seen = [item(QUEUE, "*7", name="a", target="10.0.0.1/32", comment="Jane's queue")]
    p = plan(want, seen)
    assert not p.changes
    assert [c.key for c in p.conflicts] == [("a",)]


def test_a_second_owned_object_of_one_key_is_removed() -> None:
    """An add whose answer was lost and was retried leaves two: one stays."""
    want = [item(ADDRESS_LIST, list="blocked", address="10.0.0.1", comment=owner_tag(1))]
    seen = [item(ADDRESS_LIST, "*1", list="blocked", address="10.0.0.1", comment=owner_tag(1)),
            item(ADDRESS_LIST, "*2", list="blocked", address="10.0.0.1", comment=owner_tag(1))]
    assert [(c.op, c.item.id) for c in plan(want, seen).changes] == [("remove", "*2")]


def test_a_secret_the_router_does_not_show_is_written_when_its_fingerprint_changes() -> None:
    want = item(PPP_SECRET, name="a", password="new", comment=owner_tag(1, fingerprint="f2"))
    same = item(PPP_SECRET, "*1", name="a", comment=owner_tag(1, fingerprint="f2"))  # no password shown
    old = item(PPP_SECRET, "*1", name="a", comment=owner_tag(1, fingerprint="f1"))
    assert not plan([want], [same]).changes
    (change,) = plan([want], [old]).changes
    assert change.attrs == {"password": "new", "comment": owner_tag(1, fingerprint="f2")}
    assert "new" not in change.describe()  # a password is never printed


def test_the_safety_valve() -> None:
    seen = [item(QUEUE, f"*{i}", name=f"q{i}", comment=owner_tag(i)) for i in range(100)]
    keep = [item(QUEUE, name=f"q{i}", comment=owner_tag(i)) for i in range(60)]
    assert not plan(keep, seen).exceeds(0.5)  # 40 of 100
    assert plan(keep[:40], seen).exceeds(0.5)  # 60 of 100
    assert not plan([], seen[:10]).exceeds(0.5)  # 10 removes: at most the floor


keys = st.sampled_from([f"q{i}" for i in range(8)])
values = st.sampled_from(["1000/1000", "2000/2000", "3000/3000"])
wanted = st.dictionaries(keys, values, max_size=8)
found = st.lists(st.tuples(keys, values, st.booleans()), max_size=12)


def simulate(observed: list[Item], changes: list[Change]) -> list[Item]:
    """A router: removes by id, sets by id, adds with a new id."""
    rows = {it.id: it for it in observed}
    ids = itertools.count(1000)
    for c in changes:
        if c.op == "remove":
            del rows[c.item.id]
        elif c.op == "set":
            rows[c.item.id] = Item(c.menu, {**rows[c.item.id].attrs, **c.attrs}, c.item.id)
        else:
            new = f"*{next(ids)}"
            rows[new] = Item(c.menu, dict(c.item.attrs), new)
    return list(rows.values())


@given(wanted, found)
def test_after_the_plan_is_applied_a_second_plan_is_empty(want: dict[str, str],
                                                           seen: list[tuple[str, str, bool]]) -> None:
    desired_items = [item(QUEUE, name=k, max_limit=v, comment=owner_tag(1)) for k, v in want.items()]
    observed = [item(QUEUE, f"*{i}", name=k, max_limit=v, comment=owner_tag(1) if mine else "by hand")
                for i, (k, v, mine) in enumerate(seen)]
    p = plan(desired_items, observed)
    after = simulate(observed, p.changes)
    again = plan(desired_items, after)
    assert not again.changes
    foreign_before = sorted((it.id, dict(it.attrs)) for it in observed if not it.owned)
    foreign_after = sorted((it.id, dict(it.attrs)) for it in after if not it.owned)
    assert foreign_after == foreign_before  # never touched
    owned = {it.key: it.attrs["max-limit"] for it in after if it.owned}
    conflicts = {c.key for c in p.conflicts}
    assert owned == {(k,): "".join(normal("max-limit", v)) for k, v in want.items() if (k,) not in conflicts}


TARIFF = Tariff(20000, 10000, limit_at_download_kbps=5000, limit_at_upload_kbps=2000, burst_download_kbps=40000,
                burst_upload_kbps=20000, burst_time_s=8, priority=5)


def service(sid: int, **kw: object) -> Service:
    base: dict[str, object] = {"id": sid, "login": f"user{sid}", "password": "pw", "status": "active",
                               "customer_status": "active", "customer_name": "Jörg Müller", "ipv4": f"10.0.0.{sid}",
                               "mac": None, "tariff": TARIFF}
    base.update(kw)
    return Service(**base)  # type: ignore[arg-type]


def fp(text: str) -> str:
    return "fp" + str(len(text))


def test_desired_state_of_a_router() -> None:
    services = [service(1), service(2, customer_status="blocked", mac="02:00:00:00:00:02"),
                service(3, status="disabled"), service(4, ipv4=None), service(5, customer_status="new")]
    items = desired(services, Policy(list_new=True), api_auth=False, fingerprint=fp)
    by_menu = {(it.menu.path, it.key) for it in items}
    assert by_menu == {
        (QUEUE.path, ("user1",)), (QUEUE.path, ("user2",)), (QUEUE.path, ("user5",)),
        (ADDRESS_LIST.path, ("blocked", "10.0.0.2")), (ADDRESS_LIST.path, ("new", "10.0.0.5")),
        (DHCP_LEASE.path, ("02:00:00:00:00:02",)),
    }
    q = next(it for it in items if it.key == ("user1",))
    assert dict(q.attrs) == {
        "name": "user1", "target": "10.0.0.1/32", "max-limit": "10000000/20000000", "limit-at": "2000000/5000000",
        "burst-limit": "20000000/40000000", "burst-threshold": "10000000/20000000", "burst-time": "8/8",
        "priority": "5/5", "comment": "lastmile:s1 Jörg Müller", "disabled": "false"}


def test_desired_ppp_secrets_on_an_api_router() -> None:
    items = desired([service(1), service(4, ipv4=None, status="blocked")], Policy(), api_auth=True, fingerprint=fp)
    secrets = {it.key: it for it in items if it.menu is PPP_SECRET}
    assert secrets[("user1",)].attrs["remote-address"] == "10.0.0.1"
    assert secrets[("user1",)].attrs["disabled"] == "false"
    assert secrets[("user4",)].attrs["disabled"] == "true"  # blocked, and no address to list
    assert secrets[("user1",)].attrs["comment"].startswith("lastmile:s1 #fp2 ")


def test_the_import_groups_one_subscribers_objects() -> None:
    seen = [
        make(PPP_SECRET, {"name": "anna", "password": "s3cret", "remote-address": "10.1.0.2", "comment": "Anna K"},
             "*1"),
        make(QUEUE, {"name": "anna", "target": "10.1.0.2/32", "max-limit": "10000000/50000000"}, "*2"),
        make(DHCP_LEASE, {"address": "10.1.0.2", "mac-address": "02:00:00:00:00:aa"}, "*3"),
        make(ADDRESS_LIST, {"list": "blocked", "address": "10.1.0.2"}, "*4"),
        make(QUEUE, {"name": "bob-queue", "target": "10.1.0.3/32", "max-limit": "5M/20M", "comment": "Bob"}, "*5"),
        make(PPP_SECRET, {"name": "hidden"}, "*6"),  # password not shown
        make(QUEUE, {"name": "known", "target": "10.1.0.9/32"}, "*7"),
        make(QUEUE, {"name": "mine", "target": "10.1.0.8/32", "comment": owner_tag(3)}, "*8"),
        make(DHCP_LEASE, {"address": "10.1.0.4", "mac-address": "02:00:00:00:00:BB", "comment": "printer"}, "*9"),
    ]
    p = importer.propose(seen, importer.Known({}, {"10.1.0.9": (77, "Known Customer")}), "blocked")
    subs = {s.login: s for s in p.subscribers}
    assert set(subs) == {"anna", "bob-queue", "dhcp-0200000000bb"}
    anna = subs["anna"]
    assert (anna.password, anna.ipv4, anna.mac, anna.blocked, anna.name) == (
        "s3cret", "10.1.0.2", "02:00:00:00:00:AA", True, "Anna K")
    assert (anna.down_kbps, anna.up_kbps) == (50000, 10000)
    assert sorted(o.id or "" for o in anna.objects) == ["*1", "*2", "*3", "*4"]
    assert subs["bob-queue"].speeds == (20000, 5000)
    assert subs["dhcp-0200000000bb"].speeds == (importer.UNSHAPED_KBPS, importer.UNSHAPED_KBPS)
    assert [(o.id, sid) for o, sid, _ in p.adopt] == [("*7", 77)]
    assert any("hidden" in s and "sensitive" in s for s in p.skipped)
    assert importer.tariff_name(50000, 10000) == "Imported 50M/10M"
