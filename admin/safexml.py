"""XML from outside (an uploaded logo, a bank's statement, a direct-debit report), parsed by
defusedxml over expat with any DTD, entity declaration or external reference refused: nothing
is expanded (no billion laughs) and nothing is fetched. One refusal, :class:`Refused`, whose
``kind`` each reader words for its own file."""

from __future__ import annotations

import xml.etree.ElementTree as ET  # the tree's types and ParseError; parsing goes through defusedxml
from typing import Any, Literal

import defusedxml  # type: ignore[import-untyped]  # no py.typed
import defusedxml.ElementTree as SafeET  # type: ignore[import-untyped]

Kind = Literal["dtd", "entity", "external", "refused", "broken"]


class Refused(ValueError):
    """Why the XML was not parsed: ``kind``, and ``detail`` (an entity's name, where the XML is
    broken and how, what defusedxml said)."""

    def __init__(self, kind: Kind, detail: str = "", line: int = 0, column: int = 0) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: Kind = kind
        self.detail = detail
        self.line = line
        self.column = column  # 1-based


def parse(data: bytes | str, target: Any = None) -> ET.Element:
    """The root element of ``data`` (through ``target``, a TreeBuilder, when given)."""
    parser = SafeET.DefusedXMLParser(target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except defusedxml.DTDForbidden:
        raise Refused("dtd") from None
    except defusedxml.EntitiesForbidden as e:
        raise Refused("entity", str(e.name)) from None
    except defusedxml.ExternalReferenceForbidden:
        raise Refused("external") from None
    except defusedxml.DefusedXmlException as e:
        raise Refused("refused", str(e)) from None
    except ET.ParseError as e:
        line, column = e.position
        raise Refused("broken", str(e).split(":")[0], line, column + 1) from None
    return root
