"""The notifications area's :class:`~admin.web.Area`, which its modules declare their routes on."""

from __future__ import annotations

from admin.web import Area

AREA = Area("notifications", "Notifications", nav=[
    ("Messages", "/notifications/messages", "notifications.view"),
    ("Notices", "/notifications/notices", "notifications.view"),
    ("Templates", "/notifications/templates", "notifications.view"),
    ("Settings", "/notifications/settings", "notifications.view"),
    ("Webhooks", "/notifications/webhooks", "notifications.view"),
], order=45)
