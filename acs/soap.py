"""The CWMP SOAP 1.1 codec: one HTTP body to an :class:`~acs.messages.Envelope` and back.

Pure: bytes in, typed messages out (:func:`parse`), and the reverse (:func:`render`); no I/O.
The tree walk is in :mod:`acs._soapread`, the templates in :mod:`acs._soapwrite`.

Hardening: the body must be UTF-8 and is handed to expat (through ElementTree's C parser) as
text, so no encoding declaration can change how it is read; before that, any markup
declaration (``<!DOCTYPE``, ``<!ENTITY`` or any ``<!`` that opens neither a comment nor a
CDATA section) is refused, so expat never sees a document type: no entity is declared,
expanded or fetched (no billion laughs, no XXE). Documents with more than
:data:`MAX_MARKUP` tags are refused before parsing, which bounds the tree's memory; the tree
builder and the walk are iterative, so deep nesting costs no recursion.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError, XMLParser

from acs._soapread import SoapError, read_envelope
from acs._soapwrite import write_envelope
from acs.messages import AcsFault, CpeFault, Envelope, Message

__all__ = ["MAX_MARKUP", "SoapError", "method", "parse", "render"]

MAX_MARKUP = 200_000
"""The most ``<`` a body may hold: a GetParameterNamesResponse of a whole rich data model has
some 20,000; each costs about 100 bytes of tree."""
_DECLARATION = re.compile(r"<!(?!--|\[CDATA\[)")
_WHITESPACE = "\ufeff \t\r\n"  # a byte order mark and blank lines before the XML declaration


def parse(data: bytes) -> Envelope:
    """The envelope of one HTTP body (``Envelope(None)`` for an empty one); :class:`SoapError`
    if it is not a CWMP envelope the ACS can read."""
    if not data or data.isspace():
        return Envelope(None)
    return read_envelope(_tree(data))


def _tree(data: bytes) -> Element:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SoapError(f"the body is not UTF-8 (byte {e.start})") from None
    if "!" in text and _DECLARATION.search(text) is not None:
        raise SoapError("XML with a document type or entity declaration refused", refused=True)
    if len(text) > MAX_MARKUP and text.count("<") > MAX_MARKUP:
        raise SoapError(f"the body holds more than {MAX_MARKUP} tags", 8004)
    # expat through ElementTree's C parser, twice as fast as defusedxml's Python one: what
    # defusedxml refuses cannot reach it, as no document type got past the check above
    parser = XMLParser()  # noqa: S314
    try:
        parser.feed(text.lstrip(_WHITESPACE))
        root: Element = parser.close()
    except ParseError as e:
        raise SoapError(f"not well-formed XML: {e}") from None
    return root


def render(envelope: Envelope) -> bytes:
    """The UTF-8 XML of ``envelope`` (b"" when it has no body: the server answers 204);
    ValueError if a text holds a character XML 1.0 cannot carry."""
    if envelope.body is None:
        return b""
    return write_envelope(envelope, envelope.body).encode()


def method(message: Message) -> str:
    """The CWMP method name of ``message`` ("Inform", "GetParameterValuesResponse", "Fault"),
    for logs and metrics."""
    if isinstance(message, CpeFault | AcsFault):
        return "Fault"
    return type(message).__name__
