"""The helpdesk: tickets, their messages (the customer's, staff replies, internal notes) and
attachments, the list and its filters, a ticket's page with its reply and fields forms, and the
API; merging and splitting (merge.py), the inboxes read into tickets (inboxes.py), groups and
shifts (groups.py), canned replies (canned.py), the automation's rules (rules.py), the automatic
tickets' settings (settings_page.py) and the reports (reports.py). Declared on the one
:data:`AREA` (common.py); importing the modules declares them. Every write goes through
admin/tickets/store.py (the status automation and the SLA's first response are kept there).

A ticket belongs to its partner (``tickets.partner_id``): a partner's administrator never sees
another's (404).
"""

from __future__ import annotations

from admin.tickets import canned, groups, inboxes, merge, reports, rules, settings_page, tickets
from admin.tickets.common import AREA

__all__ = ["AREA", "canned", "groups", "inboxes", "merge", "reports", "rules", "settings_page", "tickets"]
