"""The site's RADIUS dictionaries (``[radiusd] dictionary_dir``) on top of the shipped ones.

A NOC adds a device's vendor attributes by dropping its dictionary, in the FreeRADIUS format
(``VENDOR``, ``BEGIN-VENDOR``/``END-VENDOR``, ``ATTRIBUTE``, ``VALUE``, ``$INCLUDE``), into that
directory; radiusd, CoA and ``lastmile radius test`` then decode and encode those attributes, and
tariffs may name them in ``radius_reply``. Every regular file of the directory is read, in name
order, except hidden ones and editor backups (``*~``).

A file that is not right stops start-up with one line naming the file and the line
(:class:`DictionaryError`), as a bad setting does: a syntax error, a keyword this format does not
have (a typo would otherwise lose its attributes without a word), a vendor attribute numbered
above 255, or a definition that changes one of the shipped attributes or gives another type to
its number (the decoder's typed accessors rely on the RFC types); a second name for a number
with the same type is an alias, as in FreeRADIUS's own files. Attributes of a kind the codec cannot carry
(RFC 6929 extended types, vendors with another format than ``format=1,1``) are skipped, and
named in :attr:`Loaded.skipped`.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pyrad.dictionary import Dictionary, ParseError

from radiusd._attrdefs import DICTIONARY_PATH
from radiusd.codec import AttributeTable, compile_table, default_table

#: The keywords of the format pyrad reads (and ``$INCLUDE-``: include if it exists).
_KEYWORDS = frozenset({"ATTRIBUTE", "VALUE", "VENDOR", "BEGIN-VENDOR", "END-VENDOR", "$INCLUDE", "$INCLUDE-"})
#: FreeRADIUS keywords of other dictionary features, refused by name rather than as typos.
_UNSUPPORTED = frozenset({"BEGIN-TLV", "END-TLV", "FLAGS", "PROTOCOL", "BEGIN-PROTOCOL", "END-PROTOCOL", "ALIAS",
                          "MEMBER", "STRUCT", "ENUM", "DEFINE"})
_TOO_BIG = re.compile(r"attribute (\S+): number")
T = TypeVar("T")


class DictionaryError(Exception):
    """A site dictionary cannot be used; ``str(error)`` is one line naming the file and line."""


@dataclass(frozen=True, slots=True)
class Loaded:
    table: AttributeTable
    files: tuple[Path, ...]
    #: attributes of the site files that the codec cannot carry (and so does not know)
    skipped: tuple[str, ...]


@functools.cache
def load(directory: str) -> Loaded:
    """The shipped dictionary plus every file of ``directory`` ("": the shipped one alone)."""
    if not directory:
        return Loaded(default_table(), (), ())
    where = Path(directory)
    if not where.is_dir():
        raise DictionaryError(f"radiusd.dictionary_dir = {directory}: no such directory")
    files = tuple(sorted(p for p in where.iterdir() if p.is_file() and not p.name.startswith(".")
                         and not p.name.endswith("~")))
    for path in files:
        _scan(path, [])
    try:
        table = _quietly(lambda: load_table(*files))
    except ParseError as e:
        raise DictionaryError(f"radiusd.dictionary_dir: {_path_of(e.file, files)}, line {e.line}: {e.msg}") from None
    except OSError as e:
        raise DictionaryError(f"radiusd.dictionary_dir: {e}") from None
    except ValueError as e:  # load_table: "attribute NAME: number N does not fit the RFC 2865 format"
        match = _TOO_BIG.match(str(e))
        place = _locate(match.group(1), files) if match else ", ".join(map(str, files))
        raise DictionaryError(f"radiusd.dictionary_dir: {place}: {e}") from None
    _check_against_shipped(table, files)
    shipped = _quietly(lambda: Dictionary(str(DICTIONARY_PATH)).skipped_attributes)
    skipped = _quietly(lambda: Dictionary(str(DICTIONARY_PATH), *map(str, files)).skipped_attributes)
    return Loaded(table, files, tuple(sorted(skipped - shipped)))


def load_table(*extra: str | Path) -> AttributeTable:
    """Read the shipped dictionary, then the site-local dictionary files ``extra``, into a table.

    The shipped files come first; site files add vendors and attributes and must not redefine the
    shipped ones (the typed accessors rely on their RFC types; :func:`load` checks).
    Raises ``pyrad.dictionary.ParseError`` or ``OSError`` for a bad or missing file, and
    :class:`ValueError` for an attribute number above 255 (only the RFC 2865 VSA format is
    supported).
    """
    return compile_table(Dictionary(str(DICTIONARY_PATH), *(str(p) for p in extra)))


def _quietly(read: Callable[[], T]) -> T:
    """pyrad warns on its logger about skipped attributes: :attr:`Loaded.skipped` says it, once."""
    logger = logging.getLogger("pyrad")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return read()
    finally:
        logger.setLevel(level)


def _scan(path: Path, including: list[Path]) -> None:
    """Refuse keywords the format does not have, in ``path`` and what it includes."""
    real = path.resolve()
    if real in including:
        return  # pyrad reports the recursion, with its line
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise DictionaryError(f"radiusd.dictionary_dir: {path}: cannot read: {e}") from None
    for number, line in enumerate(text.splitlines(), 1):
        tokens = line.split("#", 1)[0].split()
        if not tokens:
            continue
        keyword = tokens[0].upper()
        if keyword in _UNSUPPORTED:
            raise DictionaryError(f"radiusd.dictionary_dir: {path}, line {number}: {tokens[0]} is not supported "
                                  "(vendor attributes in the RFC 2865 format only)")
        if keyword not in _KEYWORDS:
            raise DictionaryError(f"radiusd.dictionary_dir: {path}, line {number}: unknown keyword {tokens[0]}")
        if keyword.startswith("$INCLUDE") and len(tokens) > 1:
            included = path.parent / " ".join(tokens[1:])
            if included.is_file():
                _scan(included, [*including, real])
            elif keyword == "$INCLUDE":
                raise DictionaryError(f"radiusd.dictionary_dir: {path}, line {number}: {included}: no such file")


def _check_against_shipped(table: AttributeTable, files: tuple[Path, ...]) -> None:
    shipped = default_table()
    for name, d in shipped.by_name.items():
        mine = table.by_name[name]
        if (mine.key, mine.datatype, mine.encrypt, mine.has_tag) != (d.key, d.datatype, d.encrypt, d.has_tag):
            raise DictionaryError(f"radiusd.dictionary_dir: {_locate(name, files)}: redefines {name}, which the "
                                  "shipped dictionary defines (site files may only add attributes)")
    for name, d in table.by_name.items():
        first = table.by_key[d.key]  # the name defined first for this number (shipped ones come first)
        if first is d or (first.datatype, first.encrypt, first.has_tag) == (d.datatype, d.encrypt, d.has_tag):
            continue  # its own number, or an alias of the same type (FreeRADIUS's files have a few)
        shipped_too = " (shipped)" if first.name in shipped.by_name else ""
        raise DictionaryError(f"radiusd.dictionary_dir: {_locate(name, files)}: {name} ({d.datatype}) has the "
                              f"number of {first.name}{shipped_too} ({first.datatype})")


_ATTRIBUTE = re.compile(r"^\s*ATTRIBUTE\s+(\S+)\s", re.IGNORECASE)


def _locate(name: str, files: tuple[Path, ...]) -> str:
    """``FILE, line N`` of the last definition of attribute ``name`` in the site files (pyrad keeps
    no line numbers once a file is read), or the directory's files when it is not found."""
    found = ""
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            match = _ATTRIBUTE.match(line)
            if match and match.group(1) == name:
                found = f"{path}, line {number}"
    return found or ", ".join(map(str, files))


def _path_of(name: str, files: tuple[Path, ...]) -> str:
    """pyrad names a file by its base name: the path of the site file (or the included file) it is."""
    for path in files:
        if path.name == name:
            return str(path)
    for path in files:
        candidate = path.parent / name
        if candidate.is_file():
            return str(candidate)
    return name
