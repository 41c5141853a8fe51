"""The layering invariants of DESIGN.md, checked over a source tree by its syntax tree (AST).

:func:`check` reads every module of the kit (``daemons/``) and of the components under a root
directory and returns what breaks these rules:

- **codec**: a codec module imports nothing of lastmile but the other modules of its own codec
  (``radiusd.codec`` may import ``radiusd._packet``), and does no I/O (below);
- **pure**: the pure modules (policies, accounting merges, aggregation) do no I/O either;
- **kit**: no module of the kit imports a component (``lastmile <daemon>`` loads its component by
  dotted name through ``importlib``, which is allowed: the registry's way);
- **component**: components never import each other, statically or by ``importlib`` with a
  constant name (``daemons/provisiond/`` is a component, though it sits under ``daemons/``);
- **sql**: SQL appears only in store modules (``store.py``, ``<what>_store.py``, a ``store`` package, or an admin
  area's ``queries.py``), the kit's
  database modules and the demo loader; docstrings may talk about it.

"No I/O" means: no import of a module that does I/O (sockets, asyncio, the database, processes,
TLS, logging, HTTP, the kit's I/O modules) and no call that reads or writes files, the
environment or the terminal. The address conversions of :mod:`socket` (``inet_pton`` and the
like) are pure and allowed when imported by name.

The tree is read, never imported, so the same function checks the repository and the small
violating trees the tests write.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

#: Modules whose import is I/O: by their top-level package, or the kit's own I/O modules.
IO_MODULES = frozenset({
    "socket", "asyncio", "asyncpg", "subprocess", "ssl", "logging", "structlog", "urllib", "http", "aiohttp",
    "aiomqtt", "uvloop", "selectors", "select", "shutil", "tempfile", "fcntl", "mmap", "multiprocessing",
    "daemons.log", "daemons.db", "daemons.udp", "daemons.events", "daemons.sdnotify", "daemons.pgembed",
    "daemons.runtime", "daemons.metrics", "daemons.broker", "daemons.workers",
})
#: What a codec may take from :mod:`socket` by name: conversions between text and packed addresses.
PURE_SOCKET = frozenset({"AF_INET", "AF_INET6", "inet_pton", "inet_ntop", "inet_aton", "inet_ntoa",
                         "htons", "ntohs", "htonl", "ntohl"})
#: Calls (by qualified name, after resolving imports) that read or write files, processes or the terminal.
IO_CALLS = frozenset({
    "open", "print", "input", "io.open", "os.open", "os.read", "os.write", "os.system", "os.popen", "os.listdir",
    "os.scandir", "os.walk", "os.remove", "os.unlink", "os.rename", "os.replace", "os.mkdir", "os.makedirs",
    "os.fsync", "os.getenv", "os.putenv", "pyrad.dictionary.Dictionary",
})
#: Method names that are file I/O on :class:`pathlib.Path` (whatever the receiver is called).
IO_METHODS = frozenset({"read_text", "read_bytes", "write_text", "write_bytes", "open", "iterdir", "glob",
                        "rglob", "mkdir", "unlink", "touch", "rmdir"})
#: Attributes that are I/O to read.
IO_ATTRIBUTES = frozenset({"os.environ", "os.environb", "sys.stdin", "sys.stdout", "sys.stderr", "sys.argv"})

#: SQL as this codebase writes it (keywords in upper case), in a string constant or f-string part.
SQL = re.compile(
    r"\b(SELECT|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE|ALTER|DROP|COPY|TRUNCATE|LISTEN|UNLISTEN"
    r"|NOTIFY|WITH\s+\w+\s+AS|WHERE|ON\s+CONFLICT|RETURNING)\b"
    r"|\bANY\s*\(\s*\$\d|\$\d+::\w|[=<>]\s*\$\d+\b"  # fragments: "s.id = ANY($1::bigint[])", "s.id = $1"
)


@dataclass(frozen=True)
class Layout:
    """Where the layers are: which packages are components, which modules codecs, where SQL lives."""

    kit: str = "daemons"
    #: component roots, dotted; those not built yet are covered when they appear
    components: tuple[str, ...] = ("radiusd", "flowcollector", "acs", "admin", "daemons.provisiond")
    #: codec modules besides those named ``codec`` (or inside a ``codec`` package), which are codecs anyway
    codecs: frozenset[str] = frozenset()
    #: modules held to "no I/O" without being codecs
    pure: frozenset[str] = frozenset()
    #: modules besides the store modules where SQL may appear
    sql_homes: frozenset[str] = frozenset()
    #: (module, what) -> why: a rule's explicit exception; one that matches nothing is reported
    exceptions: Mapping[tuple[str, str], str] = field(default_factory=dict)

    def owner(self, module: str) -> str | None:
        """The component root ``module`` belongs to, the kit's name, or None (not lastmile)."""
        best = None
        for root in self.components:
            if (module == root or module.startswith(root + ".")) and (best is None or len(root) > len(best)):
                best = root
        if best is not None:
            return best
        return self.kit if module == self.kit or module.startswith(self.kit + ".") else None

    def is_codec(self, module: str) -> bool:
        return module in self.codecs or (self.owner(module) is not None and "codec" in module.split("."))

    def is_sql_home(self, module: str) -> bool:
        parts = module.split(".")[1:]
        return (module in self.sql_homes or "store" in parts or (bool(parts) and parts[-1].endswith("_store"))
                or (module.startswith("admin.") and parts[-1:] == ["queries"]))

    def store_of(self, module: str) -> str:
        """The file SQL found in ``module`` belongs in."""
        owner = self.owner(module) or self.kit
        if owner == self.kit:
            return f"{self.kit}/db.py"
        return owner.replace(".", "/") + "/store.py"


# The repository's layout (docs/architecture.md, "Code map"), with the reasons for each list.
LAYOUT = Layout(
    codecs=frozenset({
        # radiusd's codec is codec.py and its private parts: packet parsing, compiled attribute
        # definitions, attribute hiding; authproto.py is the protocol's authentication arithmetic
        # (PAP, CHAP, MS-CHAPv2, MPPE keys): bytes in, bytes out
        "radiusd.codec", "radiusd._packet", "radiusd._attrdefs", "radiusd._hiding", "radiusd.authproto",
        # the NetFlow/IPFIX decoder and the template compiler it runs
        "flowcollector.codec", "flowcollector.templates",
        # the kit's MQTT 3.1.1 packets
        "daemons.mqtt",
        # the ACS's CWMP messages and their SOAP codec (XML parsed with DTDs and entities refused),
        # with its reader and writer
        "acs.messages", "acs.soap", "acs._soapread", "acs._soapwrite",
    }),
    pure=frozenset({
        # decisions and arithmetic that the transports call: tested without I/O, as codecs are
        "radiusd.policy", "radiusd.acct", "radiusd.dedup", "radiusd.logsummary", "flowcollector.addressmap",
        "flowcollector.aggregate", "flowcollector.bulk",
        # the admin's rules: a customer's lifecycle, the login log's diagnosis, traffic buckets,
        # permissions, the second factor; billing's engines (money, taxes, periods and proration,
        # allocation, dunning dates, document numbers)
        "admin.customers.lifecycle", "admin.sessions.diagnose", "admin.sessions.traffic", "admin.auth.permissions",
        "admin.auth.totp", "admin.billing.money", "admin.billing.taxes", "admin.billing.periods",
        "admin.billing.proration", "admin.billing.allocation", "admin.billing.dunning", "admin.billing.numbering",
        # billing documents: what they show, their sandboxed templates (which read only the shipped
        # template files, through Jinja2's loader), the sample documents, the CSV exports;
        # render.pdf is not here: WeasyPrint reads fonts and the system's libraries
        "admin.billing.render", "admin.billing.render.model", "admin.billing.render.templates",
        "admin.billing.render.samples", "admin.billing.render.csv_export", "admin.csvcells",
        # XML from outside parsed with DTDs, entities and external references refused
        "admin.safexml",
        # a partner's uploaded SVG logo, checked to be a plain picture (parsed from the bytes given)
        "admin.billing.render.logo",
        # payments: the customer's payment reference (ISO 11649 check digits)
        "admin.payments.reference",
        # bank statements: the file formats read from bytes (CSV through a mapping, CAMT.053 with
        # defusedxml, MT940), and matching a line to a customer from what its store loaded
        "admin.payments.statements.model", "admin.payments.statements.csvfile", "admin.payments.statements.camt",
        "admin.payments.statements.mt940", "admin.payments.statements.read", "admin.payments.matching",
        # SEPA direct debit: IBAN/BIC/creditor-id checks, the TARGET2 calendar, the pain.008 writer and the
        # pain.002/camt.054 reader (parsed from the bytes given)
        "admin.payments.direct_debit",
        # online payments: what a gateway does and answers (the interface, statuses, minor units)
        "admin.payments.gateways",
        # notifications: the send windows, reminder days and prepaid outlook; the message templates
        # (sandboxed; they read only the shipped message files, through Jinja2's loader), their
        # sandbox's budget, the e-mail's text alternative and the sample contexts
        "admin.notifications.schedule", "admin.notifications.templates", "admin.notifications.sandbox",
        "admin.notifications.plaintext", "admin.notifications.samples", "admin.notifications.sign",
        "admin.notifications.event_types",
        # the ACS: its data types, the session state machine, presets and the minimal RPCs, the
        # TR-098/TR-181 aliases, tasks as RPCs, CPE authentication arithmetic (digest, signed
        # cookies and nonces), file byte ranges, connection request URLs checked
        "acs.model", "acs.session", "acs.plan", "acs.datamodel", "acs.tasks", "acs.auth", "acs.ranges",
        "acs.targets",
        # tickets: a received e-mail read from its bytes, the sender deny-list, mail-loop detection;
        # status automation, rules and assignment, mail threading, the SLA report's buckets
        "admin.tickets.inbound", "admin.tickets.denylist", "admin.tickets.loops",
        "admin.tickets.automation", "admin.tickets.threading", "admin.tickets.sla",
        # portal: a brand decoded from its stored JSON, the balance explained
        "admin.portal.brand", "admin.portal.balance",
        # resellers: percentage mode's rate choice and the split of a payment over an invoice's lines
        "admin.partners.commissions",
    }),
    sql_homes=frozenset({
        "daemons.db",  # pools, the schema, partitions
        "daemons.pgembed",  # creates the database with psql before anything can connect
        "daemons.demo",  # the demo loader
        "daemons.schemafiles",  # reads schema.sql and the upgrade steps: SQL is its text, not its queries
    }),
    exceptions={
        ("radiusd._attrdefs", "pyrad.dictionary.Dictionary"):
            "default_table() parses the shipped dictionary (radiusd/dictionary/, package data) once, on first "
            "use, so that the codec works from bytes alone in tests, the fuzzer and the benchmarks; the site's "
            "dictionary files are read by radiusd/dictionaries.py, which hands the codec the parsed Dictionary",
    },
)


@dataclass(frozen=True, order=True)
class Violation:
    path: str
    line: int
    rule: str
    message: str
    #: what broke the rule (an imported module, a call), to match the layout's exceptions
    what: str = ""

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: [{self.rule}] {self.message}"


def modules(root: Path, layout: Layout = LAYOUT) -> dict[str, Path]:
    """Every module of the kit and the components under ``root``, by dotted name."""
    tops = {layout.kit, *(c.split(".")[0] for c in layout.components)}
    found: dict[str, Path] = {}
    for top in sorted(tops):
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def check(root: Path, layout: Layout = LAYOUT) -> list[Violation]:
    """Every violation of the layering rules under ``root``, sorted by place."""
    tree = modules(root, layout)
    found: list[Violation] = []
    for name, path in tree.items():
        found += _check_module(name, path.relative_to(root).as_posix(), ast.parse(path.read_bytes(), str(path)),
                               tree, layout)
    used = set()
    kept = []
    for v in found:
        module = _module_of(v.path)
        if (module, v.what) in layout.exceptions:
            used.add((module, v.what))
        else:
            kept.append(v)
    for (module, what), why in layout.exceptions.items():
        if (module, what) not in used and module in tree:
            kept.append(Violation(tree[module].relative_to(root).as_posix(), 1, "exception",
                                  f"the exception for {what} ({why[:60]}...) matches nothing any more: remove it"))
    return sorted(kept)


def _module_of(path: str) -> str:
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@dataclass
class _Module:
    """One module being checked, and what was found in it."""

    name: str
    path: str
    tree: ast.Module
    package: str
    owner: str
    layout: Layout
    found: list[Violation] = field(default_factory=list)

    @property
    def held(self) -> str | None:
        """``"codec"`` or ``"pure"`` for a module held to no I/O, else None."""
        if self.layout.is_codec(self.name):
            return "codec"
        return "pure" if self.name in self.layout.pure else None

    def add(self, node: ast.AST, rule: str, message: str, what: str = "") -> None:
        self.found.append(Violation(self.path, getattr(node, "lineno", 1), rule, message, what))


def _check_module(name: str, path: str, tree: ast.Module, modules: Mapping[str, Path],
                  layout: Layout) -> list[Violation]:
    owner = layout.owner(name)
    assert owner is not None
    package = name if modules[name].name == "__init__.py" else name.rpartition(".")[0]
    m = _Module(name, path, tree, package, owner, layout)
    _check_imports(m, {*modules, *layout.components})
    _check_calls(m)
    if not layout.is_sql_home(name):
        _check_sql(m)
    return m.found


def _check_imports(m: _Module, known: Collection[str]) -> None:
    layout, held = m.layout, m.held
    for statement, target, names in _imports(m.tree, m.package, known):
        target_owner = layout.owner(target)
        if held == "codec" and target_owner is not None and not (
            target_owner == m.owner and any(layout.is_codec(p) for p in _prefixes(target))
        ):
            m.add(statement, "codec", f"codec {m.name} imports {target}: codec modules import nothing of lastmile "
                  "(give the codec what it needs as arguments, or move this code out of the codec)", target)
        elif held and _is_io_module(target) and not (target == "socket" and names and names <= PURE_SOCKET):
            m.add(statement, held, f"{held} module {m.name} imports {target}: it does no I/O (leave sockets, files, "
                  "the database and logs to the transport, the loader or the store, and pass it bytes or parsed "
                  "input)", target)
        if target_owner is None or target_owner == m.owner:
            continue
        if m.owner == layout.kit and target_owner != layout.kit:
            m.add(statement, "kit", f"{m.name} imports the component {target_owner} ({target}): the kit imports no "
                  "component; `lastmile` loads one by its dotted name through the registry (importlib) at dispatch",
                  target)
        elif layout.kit not in (m.owner, target_owner):
            m.add(statement, "component", f"{m.name} imports {target} of the component {target_owner}: components "
                  "meet in PostgreSQL (rows, NOTIFY) and MQTT, not by import", target)


def _check_calls(m: _Module) -> None:
    """Imports of another component by importlib; calls and attributes that are I/O."""
    layout, held = m.layout, m.held
    aliases = _aliases(m.tree, m.package)
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Call):
            called = _qualified(node.func, aliases)
            if m.owner != layout.kit and called in ("importlib.import_module", "__import__") and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    other = layout.owner(first.value)
                    if other is not None and other not in (m.owner, layout.kit):
                        m.add(node, "component", f"{m.name} imports {first.value} of the component {other} by "
                              "importlib: components meet in PostgreSQL (rows, NOTIFY) and MQTT, not by import",
                              first.value)
            if held:
                io = called if called in IO_CALLS else None
                if io is None and isinstance(node.func, ast.Attribute) and node.func.attr in IO_METHODS:
                    io = f".{node.func.attr}()"
                if io is not None:
                    m.add(node, held, f"{held} module {m.name} calls {io}: it does no I/O (read files in the loader "
                          "and give the codec their parsed content)", io)
        elif isinstance(node, ast.Attribute) and held:
            attr = _qualified(node, aliases)
            if attr in IO_ATTRIBUTES:
                m.add(node, held, f"{held} module {m.name} reads {attr}: it does no I/O (pass settings as "
                      "arguments)", attr)


def _check_sql(m: _Module) -> None:
    docstrings = {id(d) for d in _docstrings(m.tree)}
    for node in ast.walk(m.tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            match = SQL.search(node.value)
            if match:
                text = " ".join(node.value.split())
                m.add(node, "sql", f"SQL in {m.name} ({text[:50]!r}): move this SQL to "
                      f"{m.layout.store_of(m.name)} (SQL lives in store modules)", match.group(0))


def _prefixes(module: str) -> Iterator[str]:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        yield ".".join(parts[:i])


def _is_io_module(target: str) -> bool:
    return any(p in IO_MODULES for p in _prefixes(target))


def _resolve(node: ast.ImportFrom, package: str) -> str:
    """The absolute module of ``from ... import``, relative imports included."""
    if not node.level:
        return node.module or ""
    base = package.split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _imports(module: ast.Module, package: str,
             known: Collection[str]) -> Iterator[tuple[ast.stmt, str, frozenset[str]]]:
    """(statement, imported module, names taken from it) for every import, nested ones included.

    ``from a import b`` imports the module ``a.b`` when it is ``known`` (a module of the tree, or a
    component root, built or not), else the name ``b`` of ``a``."""
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name, frozenset()
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            names = set()
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:
                    yield node, sub, frozenset()
                else:
                    names.add(alias.name)
            if names:
                yield node, base, frozenset(names)


def _aliases(module: ast.Module, package: str) -> dict[str, str]:
    """Local name -> the qualified name it was imported as."""
    names: dict[str, str] = {}
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, package)
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    return names


def _qualified(node: ast.expr, aliases: Mapping[str, str]) -> str | None:
    """``a.b.c`` for a name or an attribute chain, its first part resolved through the imports."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(aliases.get(node.id, node.id))
    return ".".join(reversed(parts))


def _docstrings(module: ast.Module) -> Iterator[ast.Constant]:
    for node in ast.walk(module):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                yield first.value
