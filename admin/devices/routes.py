"""The CPE area: the devices the ACS (acs/) manages, their tasks and connection requests, the
presets and files, and the ACS's access log. Each object's pages and operations live in its own
module, declared on the one :data:`AREA` (common.py); importing them here declares them. The
admin and the ACS meet in PostgreSQL only (schema.sql section 11): rows to act on, rows of what
was done.

Devices, their tasks and sessions belong to the partner of the customer a device is linked to
(a partner's administrator never sees another's: 404); a device linked to no customer is the
operator's. Presets and files belong to no partner (their tables have no partner column): every
administrator with the ``networking`` permissions sees and changes them all.
"""

from __future__ import annotations

from admin.devices import access_log, devices, files, presets
from admin.devices.common import AREA

__all__ = ["AREA", "access_log", "devices", "files", "presets"]
