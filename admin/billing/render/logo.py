"""A partner's logo: an uploaded SVG, taken only when it is a plain picture.

The logo is printed on every document (WeasyPrint draws it from a ``data:`` URI) and shown in
the admin, so what an administrator uploads must not be able to do anything but be drawn. It is
parsed with defusedxml (expat, with a DOCTYPE, entity declarations and external entities refused
before anything is expanded: no "billion laughs", no file read through an entity), then every
element and attribute is checked against what a static picture needs:

- elements: the SVG drawing, text, paint-server, clipping, masking, marker and filter-primitive
  elements of SVG 1.1/2 in the SVG namespace (:data:`ELEMENTS`), and ``<metadata>`` (whose
  contents, RDF and the like, are not drawn); ``<script>``, ``<foreignObject>`` (HTML inside),
  ``<a>``, the animation elements (which can rewrite a link), ``<feImage>`` and anything of
  another namespace are refused;
- attributes: no event handler (``on...``), no reference out of the file: ``href`` and
  ``xlink:href`` point into it (``#id``) or, on ``<image>``, hold a raster picture as a ``data:``
  URI; ``url(...)`` in an attribute or in CSS is ``url(#id)``; CSS has no ``@import``;
- no processing instruction (``<?xml-stylesheet href=...?>`` would fetch a style sheet);
- at most :data:`MAX_BYTES` of UTF-8 and :data:`MAX_ELEMENTS` elements, so one logo cannot make
  every document slow.

:func:`check` returns the text to keep (what was uploaded, its byte order mark dropped) or raises
:class:`LogoError`, whose ``str()`` is one sentence for the person who uploaded it. Pure: no I/O.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET  # the tree's types; parsing goes through admin/safexml.py
from collections.abc import Iterator

from admin import safexml

SVG_NS = "http://www.w3.org/2000/svg"
XLINK_NS = "http://www.w3.org/1999/xlink"
XML_NS = "http://www.w3.org/XML/1998/namespace"

MAX_BYTES = 256 * 1024
"""The largest logo: plenty for a vector logo (a typical one is 2-20 KiB), small enough for every PDF."""
MAX_ELEMENTS = 5_000

ELEMENTS = frozenset({
    # structure and shapes
    "svg", "g", "defs", "symbol", "use", "title", "desc", "metadata", "switch",
    "path", "rect", "circle", "ellipse", "line", "polyline", "polygon", "image",
    # text
    "text", "tspan", "textPath",
    # paint servers, clipping, masking, markers, style
    "linearGradient", "radialGradient", "stop", "pattern", "clipPath", "mask", "marker", "style",
    # filters (feImage, which loads a picture, is not here)
    "filter", "feBlend", "feColorMatrix", "feComponentTransfer", "feComposite", "feConvolveMatrix",
    "feDiffuseLighting", "feDisplacementMap", "feDistantLight", "feDropShadow", "feFlood", "feFuncA", "feFuncB",
    "feFuncG", "feFuncR", "feGaussianBlur", "feMerge", "feMergeNode", "feMorphology", "feOffset",
    "fePointLight", "feSpecularLighting", "feSpotLight", "feTile", "feTurbulence",
})
"""The SVG elements a logo may have."""

#: Said for the refused elements people meet most, instead of the generic sentence.
WHY = {
    "script": "a script", "foreignObject": "HTML inside", "a": "a link",
    "animate": "an animation", "animateMotion": "an animation", "animateTransform": "an animation",
    "set": "an animation", "feImage": "a picture loaded by a filter",
    "iframe": "an embedded page", "object": "an embedded object", "embed": "an embedded object",
}

_RASTER = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)
_URL = re.compile(r"url\s*\(\s*(['\"]?)(.*?)\1\s*\)", re.IGNORECASE | re.DOTALL)
_HREF = frozenset({"href", f"{{{XLINK_NS}}}href"})


class LogoError(ValueError):
    """A logo that is not taken: ``str()`` says why, for the person who uploaded it."""


def _local(tag: str) -> tuple[str, str]:
    """``{namespace}name`` -> (namespace, name); a name without a namespace -> ("", name)."""
    if tag.startswith("{"):
        namespace, _, name = tag[1:].partition("}")
        return namespace, name
    return "", tag


def _css(text: str, where: str) -> None:
    """CSS (a style element or attribute) that fetches nothing: no @import, no url() but #id."""
    if "\\" in text:  # CSS escapes (\69 mport, u\72l) would hide what is checked below
        raise LogoError(f"{where}: a style with CSS escapes (\\) is not taken")
    lowered = text.lower()
    if "@import" in lowered:
        raise LogoError(f"{where}: a style that imports another style sheet (@import) is not taken")
    if "expression(" in lowered or "javascript:" in lowered:
        raise LogoError(f"{where}: a style with a script in it is not taken")
    for match in _URL.finditer(text):
        if not match.group(2).strip().startswith("#"):
            raise LogoError(f"{where}: url({match.group(2).strip()[:60]}) points out of the file: a logo may only "
                            "refer to its own parts, url(#id)")


def _attributes(element: ET.Element, name: str) -> None:
    for key, value in element.attrib.items():
        namespace, attribute = _local(key)
        if attribute.lower().startswith("on"):
            raise LogoError(f"<{name}> has an event handler ({attribute}): a logo runs no script")
        if key in _HREF:
            target = value.strip()
            if target.startswith("#"):
                continue
            if name == "image" and _RASTER.fullmatch(target):
                continue
            shown = target[:60] + ("…" if len(target) > 60 else "")
            raise LogoError(f"<{name}> refers to {shown!r}: a logo may refer only to its own parts (#id), or "
                            "hold a PNG, JPEG, GIF or WebP picture as a data: URI")
        if namespace not in ("", XLINK_NS, XML_NS) and attribute.lower() in ("href", "src"):
            raise LogoError(f"<{name}> has a reference ({attribute}) of another namespace: not taken")
        if attribute == "style":
            _css(value, f"the style of <{name}>")
        elif "url" in value.lower():
            for match in _URL.finditer(value):
                if not match.group(2).strip().startswith("#"):
                    raise LogoError(f"<{name}> {attribute}=\"{value[:60]}\" points out of the file: a logo may "
                                    "only refer to its own parts, url(#id)")


def _walk(element: ET.Element, inside_metadata: bool = False) -> Iterator[tuple[ET.Element, bool]]:
    yield element, inside_metadata
    below = inside_metadata or element.tag == f"{{{SVG_NS}}}metadata"
    for child in element:
        yield from _walk(child, below)


class _Builder(ET.TreeBuilder):
    """The tree, and the processing instructions met anywhere (before the root element too)."""

    def __init__(self) -> None:
        super().__init__()
        self.instructions: list[str] = []

    def pi(self, target: str, text: str | None = None) -> ET.Element:
        self.instructions.append(target)
        return super().pi(target, text)


def _parse(text: str) -> ET.Element:
    builder = _Builder()
    try:
        root = safexml.parse(text, target=builder)
    except safexml.Refused as e:
        raise LogoError({
            "dtd": "the SVG has a DOCTYPE (a DTD): remove the <!DOCTYPE …> line, or save it as plain SVG "
                   "(a logo declares no entities)",
            "entity": "the SVG declares entities (<!ENTITY …>): not taken in a logo",
            "external": "the SVG refers to an external entity: not taken in a logo",
            "refused": f"the SVG is refused: {e.detail}",
            "broken": f"not an SVG file: the XML is broken at line {e.line}, column {e.column} ({e.detail})",
        }[e.kind]) from None
    if builder.instructions:
        raise LogoError(f"the SVG has a processing instruction (<?{builder.instructions[0]} …?>): not taken in a "
                        "logo")
    return root


def check(data: bytes | str) -> str:
    """The logo's text to keep, when ``data`` is a plain SVG picture; else :class:`LogoError`."""
    raw = data.encode() if isinstance(data, str) else data
    if not raw.strip():
        raise LogoError("the file is empty")
    if len(raw) > MAX_BYTES:
        raise LogoError(f"the file is {len(raw) // 1024} KiB: a logo may be {MAX_BYTES // 1024} KiB at most "
                        "(simplify it, or save it as plain or optimised SVG)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LogoError("not an SVG file: it is not UTF-8 text (a PNG or JPEG? upload the logo as SVG)") from None
    if "\x00" in text:
        raise LogoError("not an SVG file: it has NUL characters")
    root = _parse(text)
    if root.tag != f"{{{SVG_NS}}}svg":
        namespace, name = _local(str(root.tag))
        if name == "svg":
            raise LogoError('the <svg> element lacks its namespace: add xmlns="http://www.w3.org/2000/svg"')
        raise LogoError(f"not an SVG file: its root element is <{name}>, not <svg>")
    count = 0
    for element, in_metadata in _walk(root):
        count += 1
        if count > MAX_ELEMENTS:
            raise LogoError(f"the SVG has more than {MAX_ELEMENTS} elements: simplify it")
        namespace, name = _local(str(element.tag))
        if name in WHY or name.lower() in ("script", "foreignobject", "iframe"):
            raise LogoError(f"the SVG has {WHY.get(name, name)} (<{name}>): a logo is a picture, and nothing else")
        if in_metadata:
            _attributes(element, name)
            continue  # RDF and the like: not drawn
        if namespace != SVG_NS:
            raise LogoError(f"the SVG has an element <{name}> of another namespace ({namespace or 'none'}): "
                            "save it as plain SVG")
        if name not in ELEMENTS:
            raise LogoError(f"the SVG has a <{name}> element, which a logo may not have")
        _attributes(element, name)
        if name == "style":
            _css(element.text or "", "a <style> element")
    return text
