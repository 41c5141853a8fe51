"""The smallest change that makes a router hold what billing says: ``plan(desired, observed)``.

Pure: items in, changes out. Per menu, objects are matched by their key (a queue's name, an
address-list entry's list and address, ...):

- desired and not on the router: ``add``;
- on the router with other values: ``set`` of the attributes that differ, by ``.id``;
- owned by lastmile and no longer desired, or a second owned object of the same key (an add
  whose answer was lost, retried): ``remove``, one command per menu for all of them;
- desired where an object without lastmile's tag has the key: nothing is written (it is not
  ours), and the plan names it as a conflict (``lastmile routers import`` adopts such objects).

Removes go first (they free names and addresses), then sets, then adds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from daemons.provisiond.model import MENUS, Item, Menu


@dataclass(frozen=True, slots=True)
class Change:
    op: str  # "add", "set", "remove"
    menu: Menu
    item: Item  # add: the new object; set: the object with its new values; remove: the object
    before: dict[str, str] = field(default_factory=dict)  # set: the values it had

    @property
    def attrs(self) -> dict[str, str]:
        """What the command sends, ``.id`` aside: an add's every attribute, a set's changed ones."""
        if self.op == "add":
            return dict(self.item.attrs)
        if self.op == "set":
            return {k: self.item.attrs[k] for k in self.before}
        return {}

    def describe(self) -> str:
        if self.op == "set":
            diffs = ", ".join(f"{k} changed" if k in self.menu.secret
                              else f"{k} {self.before[k]!r} -> {self.item.attrs[k]!r}" for k in self.before)
            return f"set {self.item.describe()}: {diffs}"
        return f"{self.op} {self.item.describe()}"


@dataclass(slots=True)
class Plan:
    changes: list[Change] = field(default_factory=list)
    conflicts: list[Item] = field(default_factory=list)  # desired, but the key is held by an unowned object
    owned: int = 0  # owned objects found on the router

    def count(self, op: str) -> int:
        return sum(1 for c in self.changes if c.op == op)

    @property
    def adds(self) -> int:
        return self.count("add")

    @property
    def sets(self) -> int:
        return self.count("set")

    @property
    def removes(self) -> int:
        return self.count("remove")

    def __bool__(self) -> bool:
        return bool(self.changes)

    def exceeds(self, share: float, floor: int = 10) -> bool:
        """Whether it removes more than ``share`` of the owned objects (and more than ``floor``):
        the safety valve against a billing mistake or a broken query emptying a router."""
        removes = self.removes
        return removes > floor and removes > share * self.owned


def plan(desired: Iterable[Item], observed: Iterable[Item]) -> Plan:
    """Changes from ``observed`` (everything read from the router, owned or not) to ``desired``."""
    result = Plan()
    wanted: dict[Menu, dict[tuple[str, ...], Item]] = {m: {} for m in MENUS}
    for it in desired:
        wanted.setdefault(it.menu, {})[it.key] = it
    owned: dict[Menu, dict[tuple[str, ...], list[Item]]] = {m: {} for m in wanted}
    foreign: dict[Menu, set[tuple[str, ...]]] = {m: set() for m in wanted}
    for it in observed:
        if it.owned:
            owned.setdefault(it.menu, {}).setdefault(it.key, []).append(it)
            result.owned += 1
        else:
            foreign.setdefault(it.menu, set()).add(it.key)
    removes: list[Change] = []
    sets: list[Change] = []
    adds: list[Change] = []
    for menu, want in wanted.items():
        have = owned.get(menu, {})
        for key, found in have.items():
            target = want.get(key)
            keep = found[0] if target is not None else None
            removes += [Change("remove", menu, it) for it in found if it is not keep]
            if target is not None and keep is not None:
                before = _differences(target, keep)
                if before:
                    sets.append(Change("set", menu, Item(menu, target.attrs, keep.id), before))
        for key, target in want.items():
            if key in have:
                continue
            if key in foreign.get(menu, ()):
                result.conflicts.append(target)
            else:
                adds.append(Change("add", menu, target))
    result.changes = removes + sets + adds
    return result


def _differences(target: Item, found: Item) -> dict[str, str]:
    """The attributes ``found`` has other values of: a secret one the router does not show is
    taken to differ when the comment, which carries its fingerprint, does."""
    comment_differs = found.attrs.get("comment", "") != target.attrs.get("comment", "")
    out = {}
    for a, v in target.attrs.items():
        if a in found.attrs:
            if found.attrs[a] != v:
                out[a] = found.attrs[a]
        elif a in target.menu.secret:
            if comment_differs:
                out[a] = "(not shown)"
        elif v != "":
            out[a] = ""
    return out
