"""The plain-text alternative of an HTML e-mail, made with the standard library's HTML parser. Pure.

Blocks (paragraphs, headings, tables, lists) become paragraphs, ``<br>`` and table rows lines,
list items "- item" or "1. item" (indented when nested), links "text (url)" (the address alone
when it is the text: a ``mailto:`` link showing its address), ``<hr>`` a line of dashes; the
head, styles and scripts are left out and whitespace is collapsed as a browser does (not in
``<pre>``).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: What HTML collapses: ASCII whitespace (a no-break space stays, as it does in a browser).
_SPACES = re.compile(r"[ \t\n\r\f]+")

_BLOCKS = frozenset({"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "blockquote", "pre",
                     "address", "section", "article", "header", "footer", "dl"})
_LINES = frozenset({"tr", "li", "dt", "dd"})
_HIDDEN = frozenset({"head", "title", "style", "script", "template"})


class _TextMaker(HTMLParser):
    """HTML to readable plain text: blocks as paragraphs, ``<br>`` and rows as lines, lists as
    "- item" or "1. item", links as "text (url)", table cells apart by a space."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.pending = 0  # 0: nothing, 1: a new line, 2: a blank line, before the next text
        self.hidden = 0
        self.pre = 0
        self.lists: list[list[int]] = []  # per open list: [next number] (ol) or [] (ul)
        self.links: list[tuple[str, int]] = []  # (href, where its text starts in out)
        self.cells = 0

    def _break(self, level: int) -> None:
        self.pending = max(self.pending, level)

    def _emit(self, text: str) -> None:
        if self.pending and self.out:
            tail = "".join(self.out[-2:])
            have = len(tail) - len(tail.rstrip("\n"))
            if self.pending > have:
                self.out.append("\n" * (self.pending - have))
        self.pending = 0
        if text:
            self.out.append(text)

    def _at_line_start(self) -> bool:
        return not self.out or self.pending > 0 or self.out[-1].endswith(("\n", " "))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN:
            self.hidden += 1
        elif tag in _BLOCKS:
            self._break(1 if tag in ("ul", "ol") and self.lists else 2)
            if tag == "ul":
                self.lists.append([])
            elif tag == "ol":
                self.lists.append([1])
            elif tag == "pre":
                self.pre += 1
        elif tag in _LINES:
            self._break(1)
            self.cells = 0
            if tag == "li" and self.lists:
                numbers = self.lists[-1]
                marker = f"{numbers[0]}. " if numbers else "- "
                if numbers:
                    numbers[0] += 1
                self._emit("  " * (len(self.lists) - 1) + marker)
        elif tag in ("td", "th"):
            if self.cells and not self._at_line_start():
                self._emit(" ")
            self.cells += 1
        elif tag == "br":
            self._emit("\n")
        elif tag == "hr":
            self._break(2)
            self._emit("-" * 20)
            self._break(2)
        elif tag == "a":
            self.links.append((dict(attrs).get("href") or "", len(self.out)))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                self._emit(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "hr", "img"):
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN:
            self.hidden = max(self.hidden - 1, 0)
        elif tag in _BLOCKS:
            if tag in ("ul", "ol") and self.lists:
                self.lists.pop()
            elif tag == "pre":
                self.pre = max(self.pre - 1, 0)
            self._break(1 if tag in ("ul", "ol") and self.lists else 2)
        elif tag in _LINES:
            self._break(1)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            text = "".join(self.out[start:]).strip()
            shown = href.removeprefix("mailto:").removeprefix("tel:")
            if href and not href.startswith("#") and text not in (shown, href):
                self._emit(f" ({shown})" if text else shown)

    def handle_data(self, data: str) -> None:
        if self.hidden:
            return
        if self.pre:
            self._emit(data)
            return
        text = _SPACES.sub(" ", data).strip(" ")
        if not text:
            if data and not self._at_line_start():
                self._emit(" ")
            return
        if _SPACES.match(data[:1]) and not self._at_line_start():
            text = " " + text
        if _SPACES.match(data[-1:]):
            text += " "
        self._emit(text)

    def text(self) -> str:
        text = "\n".join(line.rstrip() for line in "".join(self.out).split("\n"))
        while "\n\n\n" in text:
            text = text.replace("\n\n\n", "\n\n")
        return text.strip() + "\n"


def html_to_text(html: str) -> str:
    """The plain-text alternative of an e-mail's HTML."""
    maker = _TextMaker()
    maker.feed(html)
    maker.close()
    return maker.text()

