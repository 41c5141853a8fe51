"""admin.billing.render.logo: a partner's uploaded SVG logo is taken when it is a plain picture
(shapes, text, gradients, filters, an embedded raster, Inkscape's metadata), refused with its
reason when it could do more (scripts, event handlers, HTML, links, animations, anything fetched,
a DTD or entities) or is too big; and whatever bytes come, the check raises LogoError or nothing."""

from __future__ import annotations

import base64
import contextlib
import xml.etree.ElementTree as ET  # parses only what the check took

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.billing.render import logo, samples
from admin.billing.render.model import Branding

NS = 'xmlns="http://www.w3.org/2000/svg"'
XLINK = 'xmlns:xlink="http://www.w3.org/1999/xlink"'
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")).decode()


def svg(body: str, attrs: str = "") -> str:
    return f'<svg {NS} {XLINK} viewBox="0 0 100 40"{" " + attrs if attrs else ""}>{body}</svg>'


TAKEN = {
    "the sample logo": samples._LOGO,
    "a gradient, referred to by url(#id)": svg(
        '<defs><linearGradient id="g"><stop offset="0" stop-color="#fff"/><stop offset="1" stop-color="#000"/>'
        '</linearGradient></defs><rect width="100" height="40" fill="url(#g)" style="stroke: url(\'#g\')"/>'),
    "use and xlink:href into the file": svg('<defs><path id="p" d="M0 0L10 10"/></defs>'
                                            '<use href="#p"/><use xlink:href="#p" x="20"/>'),
    "a style element with classes": svg('<style>.a { fill: #1f6feb } .b { font: bold 12px "DejaVu Sans" }</style>'
                                        '<rect class="a" width="10" height="10"/><text class="b" y="30">ISP</text>'),
    "a filter": svg('<filter id="f"><feGaussianBlur stdDeviation="2"/><feOffset dx="1"/></filter>'
                    '<circle r="5" cx="10" cy="10" filter="url(#f)"/>'),
    "an embedded PNG": svg(f'<image width="10" height="10" href="data:image/png;base64,{PNG}"/>'),
    "Inkscape's plain SVG metadata (RDF)": (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!-- Created with Inkscape -->\n'
        f'<svg {NS} xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:cc="http://creativecommons.org/ns#"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" width="100" height="40"><metadata><rdf:RDF><cc:Work '
        'rdf:about=""><dc:format>image/svg+xml</dc:format><cc:license rdf:resource="http://creativecommons.org/'
        'licenses/by/4.0/"/></cc:Work></rdf:RDF></metadata><g><rect width="10" height="10"/></g></svg>'),
    "a byte order mark": "\ufeff" + svg("<rect width='1' height='1'/>"),
}


@pytest.mark.parametrize("name", TAKEN)
def test_a_plain_svg_is_taken_as_uploaded(name: str) -> None:
    text = TAKEN[name]
    assert logo.check(text.encode()) == text.removeprefix("\ufeff")
    assert Branding(company_name="x", logo_svg=logo.check(text)).logo_uri  # and it is what the renderer takes


REFUSED: dict[str, tuple[str | bytes, str]] = {
    "a script": (svg("<script>alert(1)</script>"), "a script (<script>)"),
    "a script of the SVG namespace, with a prefix": (
        '<s:svg xmlns:s="http://www.w3.org/2000/svg"><s:script>alert(1)</s:script></s:svg>', "a script"),
    "an event attribute": (svg("<rect/>", 'onload="alert(1)"'), "event handler (onload)"),
    "an event attribute in upper case": (svg('<rect ONCLICK="x()"/>'), "event handler"),
    "foreignObject": (svg("<foreignObject><div xmlns='http://www.w3.org/1999/xhtml'>hi</div></foreignObject>"),
                      "HTML inside (<foreignObject>)"),
    "a link": (svg('<a href="https://evil.example/"><rect/></a>'), "a link (<a>)"),
    "an animation that rewrites a link": (svg('<set attributeName="href" to="javascript:alert(1)"/>'),
                                          "an animation"),
    "an external picture": (svg('<image href="https://evil.example/track.png"/>'), "refers to 'https://evil"),
    "a file picture": (svg('<image xlink:href="file:///etc/passwd"/>'), "refers to 'file:///etc/passwd'"),
    "an SVG inside a data: URI": (svg('<image href="data:image/svg+xml;base64,PHN2Zy8+"/>'), "refers to"),
    "use of another file": (svg('<use href="other.svg#x"/>'), "refers to 'other.svg#x'"),
    "javascript: href": (svg('<use href="javascript:alert(1)"/>'), "refers to 'javascript:"),
    "a paint from outside": (svg('<rect fill="url(https://evil.example/p.svg#g)"/>'), "points out of the file"),
    "a paint from outside, quoted in a style": (svg("<rect style=\"fill: url('//evil.example/x')\"/>"),
                                                "points out of the file"),
    "@import": (svg("<style>@import url(#x); rect { fill: red }</style>"), "@import"),
    "a CSS escape": (svg("<style>rect { background: u\\72l(http://x) }</style>"), "CSS escapes"),
    "a style element fetching": (svg("<style>rect { fill: url(http://x/y) }</style>"), "points out of the file"),
    "a style sheet processing instruction": (
        '<?xml-stylesheet type="text/css" href="https://evil.example/s.css"?>' + svg(""), "processing instruction"),
    "a DOCTYPE": ('<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" '
                  '"http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">' + svg(""), "DOCTYPE"),
    "entities (billion laughs)": ('<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
                                  + svg("<text>&b;</text>"), "DOCTYPE"),
    "an external entity": ('<!DOCTYPE svg [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + svg("<text>&x;</text>"),
                           "DOCTYPE"),
    "feImage": (svg('<filter id="f"><feImage href="https://evil.example/x.png"/></filter>'),
                "a picture loaded by a filter"),
    "an HTML element": (svg('<iframe xmlns="http://www.w3.org/1999/xhtml" src="https://evil.example"/>'),
                        "an embedded page"),
    "an element of another namespace": (svg('<x:thing xmlns:x="urn:x"/>'), "another namespace (urn:x)"),
    "an unknown SVG element": (svg("<cursor/>"), "a <cursor> element"),
    "no namespace": ("<svg><rect/></svg>", "lacks its namespace"),
    "not SVG": ('<html xmlns="http://www.w3.org/1999/xhtml"/>', "its root element is <html>"),
    "broken XML": (svg("<rect>"), "the XML is broken at line 1"),
    "a PNG": (base64.b64decode(PNG), "not UTF-8"),
    "nothing": (b"  \n", "empty"),
    "too big": (svg("<!--" + "x" * logo.MAX_BYTES + "-->"), "KiB at most"),
    "too many elements": (svg("<g/>" * (logo.MAX_ELEMENTS + 1)), "more than 5000 elements"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_anything_more_than_a_picture_is_refused_with_its_reason(name: str) -> None:
    data, reason = REFUSED[name]
    with pytest.raises(logo.LogoError) as e:
        logo.check(data)
    assert reason in str(e.value), str(e.value)
    assert "\n" not in str(e.value)


@given(st.binary(max_size=2000))
def test_any_bytes_are_taken_or_refused_never_a_crash(data: bytes) -> None:
    with contextlib.suppress(logo.LogoError):
        logo.check(data)


@given(st.text(alphabet=st.sampled_from([*"<>/=\"' &;#!?-:[]x svgrectonloadhrefurl()", "\x00", "é"]),
               max_size=300))
def test_xml_like_text_is_taken_or_refused_never_a_crash(body: str) -> None:
    try:
        text = logo.check(svg(body))
    except logo.LogoError:
        return
    for element in ET.fromstring(text).iter():  # what was taken is SVG's drawing and nothing else
        assert element.tag.removeprefix("{http://www.w3.org/2000/svg}") in logo.ELEMENTS, element.tag
        assert not any(k.lower().startswith("on") for k in element.attrib), element.attrib
