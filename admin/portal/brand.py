"""A partner's white label for the portal: its name, colours, texts, custom CSS, the menu and
dashboard items shown and the customer fields a customer may see or change. Pure: what is stored
(``portal_brands.published`` / ``draft``, JSON) is decoded here, a bad stored value falls back to
the default field by field, so a brand edited badly never takes the portal down.

The logo is the partner's document logo (``partner_branding.logo_svg``, checked safe when it was
saved: admin/billing/render/svg_logo.py); the name falls back to the partner's company name.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

MENU = ("dashboard", "finance", "services", "usage", "equipment", "support", "profile")
"""The portal's sections, in menu order (each a page the brand may hide, but not the dashboard)."""
DASHBOARD = ("balance", "invoices", "next_invoice", "online", "traffic", "messages", "tickets")
"""The dashboard's items, in the order they show."""
FIELDS = ("name", "email", "billing_email", "phone", "street", "city", "zip")
"""The customer's contact fields the portal's profile shows."""
Access = Literal["hidden", "view", "edit"]
DEFAULT_ACCESS: dict[str, Access] = {"name": "view", "email": "edit", "billing_email": "edit", "phone": "edit",
                                     "street": "view", "city": "view", "zip": "view"}

Color = Annotated[str, msgspec.Meta(pattern=r"^#[0-9a-fA-F]{6}$")]
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class Brand(msgspec.Struct, frozen=True, kw_only=True):
    """What a portal shows of its brand. Every field has a default: ``Brand()`` is the plain one."""

    name: str = ""                 # the brand's name ("" : the partner's company name)
    accent_color: Color = "#1f6feb"  # links, buttons (the documents' accent unless set here)
    background_color: Color = "#f5f6f8"
    text_color: Color = "#1b1f24"
    custom_css: str = ""           # appended to the portal's stylesheet (served as a file: CSP)
    header_text: str = ""
    footer_text: str = ""
    menu: tuple[str, ...] = MENU
    dashboard: tuple[str, ...] = DASHBOARD
    fields: dict[str, Access] = msgspec.field(default_factory=lambda: dict(DEFAULT_ACCESS))
    logo_svg: str | None = None    # filled from partner_branding, not stored in the brand's JSON


def decode(stored: object) -> Brand:
    """The brand a stored JSON object describes; a field that does not decode keeps its default."""
    if not isinstance(stored, dict):
        return Brand()
    good: dict[str, object] = {}
    for key, value in stored.items():
        if key not in Brand.__struct_fields__ or key == "logo_svg":
            continue
        try:
            msgspec.convert({key: value}, Brand)
        except msgspec.ValidationError:
            continue
        good[key] = value
    brand = msgspec.convert(good, Brand)
    return msgspec.structs.replace(
        brand,
        menu=tuple(m for m in MENU if m in brand.menu or m == "dashboard"),
        dashboard=tuple(d for d in DASHBOARD if d in brand.dashboard),
        fields={f: brand.fields.get(f, DEFAULT_ACCESS[f]) for f in FIELDS})


def encode(brand: Brand) -> dict[str, object]:
    """What is stored of ``brand`` (everything but the logo, which is the partner's)."""
    out = msgspec.to_builtins(brand)
    assert isinstance(out, dict)
    out.pop("logo_svg", None)
    return out


def is_color(text: str) -> bool:
    return bool(_COLOR.fullmatch(text))
