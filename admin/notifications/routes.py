"""Notifications: the messages log (messages.py), notice rules and the reminders' calendar
(notices.py), message templates (templates_page.py), per-partner settings (settings.py) and
webhooks (webhooks_page.py). Each module declares its pages and API operations on the one
:data:`AREA` (area.py)."""

from __future__ import annotations

from admin.notifications import announcements, messages, notices, settings, templates_page, webhooks_page
from admin.notifications.area import AREA

# The modules are imported for what they declare on AREA: the messages log and announcements, notice
# rules and the calendar, templates, per-partner settings, webhooks (their deliveries, the events API).
__all__ = ["AREA", "announcements", "messages", "notices", "settings", "templates_page", "webhooks_page"]
