"""schema.sql and its upgrade steps as text: version, hash, steps, statements, functions.

Pure: this module reads and splits SQL and runs none of it (``daemons/db.py`` does). The rules
the files follow are written at the top of schema.sql ("Changing the schema"); a file that
breaks one is refused here with one line that says what to fix.

- schema.sql starts with ``-- lastmile schema version N`` and ``-- lastmile schema hash H``.
- ``daemons/upgrades/NNN.sql`` is the step that makes version NNN from NNN-1; its first line is
  ``-- lastmile schema upgrade NNN-1 -> NNN``. The steps run without gaps up to schema.sql's
  version; the first one's starting version is the oldest a database may be to be upgraded.
- Every function of schema.sql is written ``CREATE OR REPLACE FUNCTION`` (or ``PROCEDURE``):
  those statements are the routines created again after the steps.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

_VERSION_RE = re.compile(r"^-- lastmile schema version (\d+)$", re.MULTILINE)
_HASH_RE = re.compile(r"^-- lastmile schema hash ([0-9a-f]{64})$", re.MULTILINE)
_STEP_NAME_RE = re.compile(r"^(\d{3})\.sql$")
_STEP_HEAD_RE = re.compile(r"-- lastmile schema upgrade (\d+) -> (\d+)")
_ROUTINE_RE = re.compile(r"CREATE\s+OR\s+REPLACE\s+(?:FUNCTION|PROCEDURE)\s+(?:\w+\.)?(\w+)\s*\(", re.IGNORECASE)
_PLAIN_ROUTINE_RE = re.compile(r"CREATE\s+(?:FUNCTION|PROCEDURE)\s+([\w.]+)", re.IGNORECASE)
_DOLLAR_RE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$")
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class SchemaError(Exception):
    """The database's schema cannot be used or brought up to date as asked, or schema.sql and
    the upgrade steps break their rules; ``str()`` is one line for the user."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement: ``sql`` as written (comments included), ``code`` without comments."""

    sql: str
    code: str

    @property
    def summary(self) -> str:
        """The statement on one line, cut to a length that fits a message."""
        line = " ".join(self.code.split())
        return line if len(line) <= 90 else line[:89] + "…"

    def words(self) -> set[str]:
        """Every identifier-like word in the statement, lowercased (string contents included:
        ``lastmile_partitioned('traffic_usage', …)`` names a table as a string)."""
        return {w.lower() for w in _WORD_RE.findall(self.code)}


@dataclass(frozen=True, slots=True)
class Routine:
    """A ``CREATE OR REPLACE FUNCTION``/``PROCEDURE`` statement of schema.sql."""

    name: str
    statement: Statement

    @property
    def sql(self) -> str:
        return self.statement.sql


@dataclass(frozen=True, slots=True)
class Step:
    """The upgrade step that makes ``version`` from ``version - 1``."""

    version: int
    sql: str
    source: str  # where it was read from, for messages

    @property
    def name(self) -> str:
        return f"upgrade {self.version - 1} -> {self.version}"

    def statements(self) -> list[Statement]:
        return statements(self.sql)


@dataclass(frozen=True, slots=True)
class Schema:
    """This lastmile's schema: schema.sql (``sql``, its ``version`` and ``hash``) and the steps
    that upgrade an older database to it, oldest first."""

    sql: str
    version: int
    hash: str
    steps: tuple[Step, ...]

    @property
    def oldest(self) -> int:
        """The oldest version the steps upgrade from (``version`` if there are none)."""
        return self.steps[0].version - 1 if self.steps else self.version

    def step_to(self, version: int) -> Step:
        return self.steps[version - self.oldest - 1]

    def routines(self) -> list[Routine]:
        return routines(self.sql)


def header(sql: str, source: str = "schema.sql") -> tuple[int, str]:
    """The version and hash recorded at the top of schema.sql."""
    version = _VERSION_RE.search(sql)
    if not version:
        raise SchemaError(f"{source} has no '-- lastmile schema version N' line")
    found = _HASH_RE.search(sql)
    if not found:
        raise SchemaError(
            f"{source} has no '-- lastmile schema hash H' line (64 hex digits; tests/db/test_schema_hash.py "
            "prints the one to record)"
        )
    return int(version.group(1)), found.group(1)


def parse(sql: str, steps: Mapping[str, str], source: str = "schema.sql") -> Schema:
    """A :class:`Schema` from schema.sql's text and the step files' (file name -> text)."""
    version, hash_ = header(sql, source)
    plain = [m.group(1) for s in statements(sql) if (m := _PLAIN_ROUTINE_RE.match(s.code))]
    if plain:
        raise SchemaError(
            f"{source}: write CREATE OR REPLACE FUNCTION {plain[0]} (every function is created again after an upgrade)"
        )
    parsed: list[Step] = []
    for name, text in steps.items():
        match = _STEP_NAME_RE.match(Path(name).name)
        if not match:
            raise SchemaError(f"{name}: an upgrade step is named NNN.sql, the version it makes in three digits")
        made = int(match.group(1))
        head = _STEP_HEAD_RE.fullmatch(text.split("\n", 1)[0])
        if not head or (int(head.group(1)), int(head.group(2))) != (made - 1, made):
            raise SchemaError(f"{name}: its first line must be '-- lastmile schema upgrade {made - 1} -> {made}'")
        parsed.append(Step(made, text, name))
    parsed.sort(key=lambda s: s.version)
    for before, after in itertools.pairwise(parsed):
        if after.version != before.version + 1:
            raise SchemaError(f"no upgrade step makes version {before.version + 1}: add {before.version + 1:03d}.sql")
    if parsed and parsed[-1].version != version:
        last = parsed[-1].version
        if last > version:
            raise SchemaError(f"{source} is version {version}, but an upgrade step makes {last}: bump {source}")
        raise SchemaError(
            f"{source} is version {version}, the last upgrade step makes {last}: add the step "
            f"{last} -> {last + 1} as {last + 1:03d}.sql"
        )
    return Schema(sql, version, hash_, tuple(parsed))


def load(schema_path: Path, upgrades: Path) -> Schema:
    """schema.sql and the ``*.sql`` steps of the ``upgrades`` directory."""
    steps = {str(p): p.read_text() for p in sorted(upgrades.glob("*.sql"))}
    return parse(schema_path.read_text(), steps, str(schema_path))


def routines(sql: str) -> list[Routine]:
    """The ``CREATE OR REPLACE FUNCTION``/``PROCEDURE`` statements of ``sql``, in order."""
    return [Routine(m.group(1), s) for s in statements(sql) if (m := _ROUTINE_RE.match(s.code))]


def statements(sql: str) -> list[Statement]:
    """Split a script into its statements at the semicolons outside quotes, dollar quotes and
    comments, as psql does; statements that are only comments are dropped."""
    return list(_split(sql))


def _split(sql: str) -> Iterator[Statement]:
    start = 0  # where the current statement begins in `sql`
    code: list[str] = []  # its text without comments
    plain = 0  # start of the run of plain text not yet copied into `code`
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end < 0 else end
            code += [sql[plain:i], " "]
            i = plain = end
        elif c == "/" and sql.startswith("/*", i):
            end = _block_comment_end(sql, i)
            code += [sql[plain:i], " "]
            i = plain = end
        elif c in "'\"":
            i = _quoted_end(sql, i)
        elif c == "$" and (m := _DOLLAR_RE.match(sql, i)) and not (i and _in_word(sql[i - 1])):
            end = sql.find(m.group(0), m.end())
            if end < 0:
                raise SchemaError(f"unterminated dollar quote {m.group(0)} at line {sql.count(chr(10), 0, i) + 1}")
            i = end + len(m.group(0))
        elif c == ";":
            code.append(sql[plain:i])
            yield from _statement(sql[start:i], code)
            start = plain = i = i + 1
            code = []
        else:
            i += 1
    code.append(sql[plain:n])
    yield from _statement(sql[start:n], code)


def _statement(text: str, code: list[str]) -> Iterator[Statement]:
    bare = "".join(code).strip()
    if bare:
        yield Statement(text.strip(), bare)


def _block_comment_end(sql: str, i: int) -> int:
    depth, j = 0, i
    while j < len(sql):
        if sql.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif sql.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    raise SchemaError(f"unterminated /* comment at line {sql.count(chr(10), 0, i) + 1}")


def _quoted_end(sql: str, i: int) -> int:
    """The end of the quoted string or identifier starting at ``i`` (a doubled quote is the quote
    itself; in an E'…' string a backslash escapes the next character)."""
    quote = sql[i]
    escapes = quote == "'" and i > 0 and sql[i - 1] in "eE" and not (i > 1 and _in_word(sql[i - 2]))
    j = i + 1
    while j < len(sql):
        ch = sql[j]
        if escapes and ch == "\\":
            j += 2
        elif ch == quote:
            if sql.startswith(quote * 2, j):
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise SchemaError(f"unterminated {quote} quote at line {sql.count(chr(10), 0, i) + 1}")


def _in_word(c: str) -> bool:
    """``c`` may be part of an identifier (so a quote or ``$`` after it does not start a literal)."""
    return c.isalnum() or c in "_$"
