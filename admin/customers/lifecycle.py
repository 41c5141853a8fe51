"""A customer's lifecycle: new -> active -> blocked -> inactive -> deleted. Pure.

- new: signed up, not yet connected (radiusd refuses its logins; provisiond may list it as "new").
- active: served and billed.
- blocked: unpaid or suspended: its addresses go to the router's "blocked" list, sessions are
  limited or refused (radiusd's blocked_action); still billed.
- inactive: services stopped and no billing (a customer who left, kept for its history).
- deleted: only from inactive; the row stays (invoices and payments need it) but lists hide it.
"""

from __future__ import annotations

STATUSES = ("new", "active", "blocked", "inactive", "deleted")

ACTIONS: dict[str, tuple[str, frozenset[str], str]] = {
    # action: (new status, from which statuses, what the button says)
    "activate": ("active", frozenset({"new", "inactive"}), "Activate"),
    "block": ("blocked", frozenset({"active"}), "Block"),
    "unblock": ("active", frozenset({"blocked"}), "Unblock"),
    "deactivate": ("inactive", frozenset({"new", "active", "blocked"}), "Make inactive"),
}


class LifecycleError(ValueError):
    pass


def move(status: str, action: str) -> str:
    """The status ``action`` leads to from ``status``; LifecycleError when it cannot."""
    if action not in ACTIONS:
        raise LifecycleError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    target, sources, _ = ACTIONS[action]
    if status not in sources:
        raise LifecycleError(f"a customer in status {status} cannot be moved by {action!r}")
    return target


def actions(status: str) -> list[tuple[str, str]]:
    """The (action, label) a customer in ``status`` offers."""
    return [(a, label) for a, (_, sources, label) in ACTIONS.items() if status in sources]


def deletable(status: str) -> bool:
    return status == "inactive"
