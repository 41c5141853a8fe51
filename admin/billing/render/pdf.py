"""Billing documents as PDF, with WeasyPrint; and as HTML, for a template's preview.

WeasyPrint lays out with Pango and HarfBuzz, which come from Debian, not from pip:
``libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core`` (.ci/run installs them).
Without them :func:`render_pdf` refuses with one line naming the packages (WeasyPrint's own
import prints a banner and fails on the first library it misses).

Nothing is fetched: the renderer's URL fetcher gives WeasyPrint ``data:`` URIs (the logo) and
the package's own stylesheet and refuses everything else, and a document whose template asked for
anything else is refused (:class:`RenderError`), so that what is kept is what was previewed.
Fonts are the system's (fontconfig: DejaVu); the shared stylesheet is parsed once per process.

Cost (two shared cores): the first PDF of a process takes about 0.6 s, most of it WeasyPrint's
import (0.4 s), so a worker calls :func:`warm_up` when it starts; afterwards a one-page invoice
takes 80-90 ms (a receipt 45), far from the 300 ms a document may take
(tests/unit/billing/test_render.py holds it). Flex layout is avoided in the stylesheet: in
WeasyPrint it cost a third of a page's time.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from typing import Any

from admin.billing.render import templates
from admin.billing.render.model import Branding
from admin.billing.render.templates import Printable, TemplateError, TemplateKind

#: What WeasyPrint loads (its text/ffi.py), and the Debian 12 package that has it.
LIBRARIES = {
    "libgobject-2.0.so.0": "libglib2.0-0",
    "libpango-1.0.so.0": "libpango-1.0-0",
    "libpangoft2-1.0.so.0": "libpangoft2-1.0-0",
    "libharfbuzz.so.0": "libharfbuzz0b",
    "libharfbuzz-subset.so.0": "libharfbuzz-subset0",
    "libfontconfig.so.1": "libfontconfig1",
}


class RenderError(RuntimeError):
    """A document that cannot be rendered as PDF: the libraries are missing, or its template asked
    for a resource the renderer does not fetch."""


def missing_libraries() -> list[str]:
    """The Debian packages whose libraries WeasyPrint needs and cannot load (none when all is well)."""
    missing = []
    for library, package in LIBRARIES.items():
        try:
            ctypes.CDLL(library)
        except OSError:
            missing.append(package)
    return missing


_lock = threading.Lock()


@functools.cache
def _weasyprint() -> Any:
    """WeasyPrint, imported on first use (it costs ~0.3 s and needs the system libraries)."""
    missing = missing_libraries()
    if missing:
        raise RenderError(f"PDF rendering needs Debian's {' '.join(missing)}: apt-get install {' '.join(missing)}")
    import weasyprint  # type: ignore[import-untyped]  # no py.typed

    return weasyprint


@functools.cache
def _stylesheet() -> tuple[Any, Any]:
    """The shared CSS parsed once, with the font configuration it was parsed for."""
    weasyprint = _weasyprint()
    from weasyprint.text.fonts import FontConfiguration  # type: ignore[import-untyped]

    fonts = FontConfiguration()
    css = weasyprint.CSS(string=templates.stylesheet(), font_config=fonts, url_fetcher=_fetcher([]))
    return css, fonts


def _fetcher(refused: list[str]) -> Any:
    """A URL fetcher that serves ``data:`` URIs and the package's stylesheet, and records anything
    else in ``refused`` (and fails it)."""
    weasyprint = _weasyprint()
    own = (templates.TEMPLATE_DIR / templates.STYLESHEET).as_uri()

    base: Any = weasyprint.URLFetcher

    class Fetcher(base):  # type: ignore[misc]  # WeasyPrint has no types
        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("data:"):
                return super().fetch(url, headers)
            if url.split("#", 1)[0].split("?", 1)[0] == own:
                return weasyprint.urls.URLFetcherResponse(own, templates.stylesheet(),
                                                          {"Content-Type": "text/css; charset=utf-8"})
            refused.append(url)
            raise ValueError(f"{url}: documents fetch nothing (only data: URIs)")

    return Fetcher(timeout=1, allowed_protocols=("data", "file"), allow_redirects=False)


def render_html(doc: Printable, branding: Branding, template_source: str | None = None) -> str:
    """``doc`` as a self-contained HTML page (the stylesheet inlined): the template's preview."""
    return templates.render(doc, branding, template_source, inline_css=True)


def render_pdf(doc: Printable, branding: Branding, template_source: str | None = None) -> bytes:
    """``doc`` as PDF, with the operator's template ``template_source`` or the shipped one.

    Raises :class:`~admin.billing.render.templates.TemplateError` for a template that fails, and
    :class:`RenderError` when the libraries are missing or the template asks for a URL."""
    html = templates.render(doc, branding, template_source)
    weasyprint = _weasyprint()
    css, fonts = _stylesheet()
    refused: list[str] = []
    try:
        with _lock:  # WeasyPrint's font configuration is not meant for two threads at once
            pdf: bytes = weasyprint.HTML(string=html, base_url=templates.TEMPLATE_DIR.as_uri() + "/",
                                         url_fetcher=_fetcher(refused)).write_pdf(
                stylesheets=[css], font_config=fonts, uncompressed_pdf=False)
    except (OSError, SyntaxError) as e:  # Pillow, reading a picture lazily while the page is drawn
        raise RenderError(f"a picture on the document (the logo?) cannot be read: {type(e).__name__}: {e}") from None
    if refused:
        raise RenderError(f"the template asks for {', '.join(sorted(set(refused)))}: documents fetch nothing; "
                          "put images in the template as data: URIs (the logo is the branding's)")
    return pdf


def check(source: str, kind: TemplateKind) -> list[str]:
    """:func:`templates.check`, and then the PDF of the sample document: what only the renderer
    refuses (a URL) is an error too. The admin calls this before it saves an operator's template."""
    errors = templates.check(source, kind)
    if errors:
        return errors
    from admin.billing.render import samples

    doc = samples.sample(kind)
    try:
        render_pdf(doc, samples.branding(), source)
    except (TemplateError, RenderError) as e:
        return [str(e)]
    return []


def warm_up() -> None:
    """Pay the first document's costs now (WeasyPrint's import, fontconfig, the stylesheet, the
    fonts' first layout): a worker calls this when it starts, so that no document waits for it."""
    from admin.billing.render import samples

    render_pdf(samples.document("invoice"), samples.branding())
