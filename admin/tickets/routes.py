"""The helpdesk: tickets, their messages (the customer's, staff replies, internal notes) and
attachments, the list and its filters, a ticket's page with its reply and fields forms, and the
API; merging and splitting (merge.py), the inboxes read into tickets (inboxes.py), groups and
shifts (groups.py), canned replies (canned.py), the automation's rules (rules.py), the automatic
tickets' settings (settings_page.py), the reports (reports.py), the statuses (statuses.py) and the
deny list every inbox shares (denylist_page.py). Declared on the one :data:`AREA` (common.py);
importing the modules declares them, in this order: tickets last, whose /tickets/{id} would
otherwise take /tickets/statuses, /tickets/denylist and the other pages' paths. Every write goes through
admin/tickets/store.py (the status automation and the SLA's first response are kept there).

A ticket belongs to its partner (``tickets.partner_id``): a partner's administrator never sees
another's (404).
"""

from __future__ import annotations

from admin.tickets import (
    canned,
    denylist_page,
    groups,
    inboxes,
    merge,
    reports,
    rules,
    settings_page,
    statuses,
    tickets,
)
from admin.tickets.common import AREA

__all__ = ["AREA", "canned", "denylist_page", "groups", "inboxes", "merge", "reports", "rules", "settings_page",
           "statuses", "tickets"]
