"""The admin joins lastmile here (daemons/registry.py): its command, settings and tools."""

from __future__ import annotations

from admin.settings import AdminSettings
from daemons.config import Settings
from daemons.registry import Component, Tool


def _url(settings: Settings) -> str:
    s = settings.section("admin")
    return s.public_url or f"http://{s.bind}:{s.port}"


def _addresses(settings: Settings) -> list[tuple[str, str]]:
    url = _url(settings)
    return [("admin", f"{url}/admin/ (log in as an administrator: `lastmile create-admin` makes one)"),
            ("portal", f"{url}/portal/ (customers: a customer's page in the admin sets its portal login)"),
            ("API", f"{url}/api/v1/ (reference: {url}/api/v1/docs)")]


def _ready(settings: Settings) -> str:
    s = settings.section("admin")
    return f"http://{s.bind}:{s.port}/metrics"


COMPONENT = Component(
    name="admin",
    summary="the web admin, the REST API and /metrics (aiohttp)",
    settings=AdminSettings,
    main="admin.__main__:main",
    addresses=_addresses,
    ready_url=_ready,
    tools=(Tool("create-admin", "create an administrator (the first one is a Super administrator)",
                "admin.tool:create_admin", "`[--login L] [--name N] [--email E] [--role KEY] [--password-stdin]`"),
           Tool("billing", "billing runs, prepaid charges and dunning", "admin.billing.tool:main",
                "`run [--date D] [--partner P] [--preview | --confirm RUN]`, `prepaid [--date D]`, "
                "`dunning [--date D]`")),
    demo="admin.tool:demo_admin",
    order=60,
)
