"""The network area: NAS, routers (provisiond's sync state, "sync now"), IP pools and leases,
flow exporters. Each object's pages and operations live in its own module, declared on the one
:data:`AREA` (common.py); importing them here declares them.

These objects belong to no partner (their tables have no partner column): every administrator
with the ``networking`` permissions sees and changes them all, a partner's administrator included.
"""

from __future__ import annotations

from admin.network import exporters, nas, pools, routers
from admin.network.common import AREA

__all__ = ["AREA", "exporters", "nas", "pools", "routers"]
