"""Administration: administrators (admins.py), roles (roles.py), API keys (apikeys.py), the
operations log (oplog.py), the admin settings and custom field definitions (config.py). Each
module declares its pages and API operations on the one :data:`AREA` (area.py)."""

from __future__ import annotations

from admin.administration import admins, apikeys, config, oplog, roles
from admin.administration.area import AREA

__all__ = ["AREA", "admins", "apikeys", "config", "oplog", "roles"]
