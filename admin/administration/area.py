"""The administration area's :class:`~admin.web.Area`, which its modules declare their routes on."""

from __future__ import annotations

from admin.web import Area

AREA = Area("administration", "Administration", nav=[
    ("Administrators", "/administrators", "administration.view"),
    ("Roles", "/roles", "administration.view"),
    ("API keys", "/api-keys", "administration.view"),
    ("Operations log", "/operations-log", "administration.view"),
    ("Custom fields", "/custom-fields", "config.view"),
    ("Settings", "/settings", "config.view"),
], order=90)
