"""The layering invariants of DESIGN.md hold in the repository, and the checker catches each one broken.

The checker (``tests/unit/layering.py``) reads a source tree; the first test runs it over this
repository, the others over small trees written here, clean and then broken on purpose.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.unit import layering
from tests.unit.layering import LAYOUT, Violation, check

ROOT = Path(__file__).resolve().parents[2]

# A tree with the repository's shape and nothing wrong in it: each test adds one module to break a rule.
CLEAN = {
    "daemons/__init__.py": "",
    "daemons/db.py": 'import asyncpg\nLOCK = "SELECT pg_advisory_lock($1)"\n',
    "daemons/log.py": "import structlog\n",
    "daemons/mqtt.py": "import struct\nfrom enum import IntEnum\n",
    "daemons/cli.py": textwrap.dedent("""\
        import importlib
        from daemons import config, db

        def dispatch(name: str) -> object:
            return importlib.import_module(f"{name}.__main__")

        def radiusd() -> object:
            return importlib.import_module("radiusd.__main__")
        """),
    "daemons/config.py": "",
    "daemons/provisiond/__init__.py": "",
    "daemons/provisiond/store.py": 'Q = "UPDATE routers SET synced = now() WHERE id = $1"\n',
    "daemons/provisiond/sync.py": "from daemons import db, log\nfrom daemons.provisiond import store\n",
    "radiusd/__init__.py": "",
    "radiusd/codec.py": textwrap.dedent('''\
        """Decodes packets; never runs "SELECT 1" (a docstring may say SQL)."""
        import hmac
        import os
        from socket import AF_INET, inet_ntop
        from radiusd._packet import parse
        from radiusd import _hiding

        def vector() -> bytes:
            return os.urandom(16)
        '''),
    "radiusd/_packet.py": "from radiusd._attrdefs import AttrDef\n",
    "radiusd/_attrdefs.py": "from pyrad.dictionary import Dictionary\n\ndef table() -> object:\n"
                            "    return Dictionary('dictionary')\n",
    "radiusd/_hiding.py": "import hashlib\n",
    "radiusd/authproto.py": "from Crypto.Hash import MD4\n",
    "radiusd/policy.py": "from radiusd.codec import Request\nfrom radiusd.cache import Subscriber\n",
    "radiusd/cache.py": "from daemons import log\nfrom radiusd import codec\n",
    "radiusd/store.py": 'NAS = """\nSELECT id, secret FROM nas\n"""\n'
                        'WHERE = {"services": "s.id = ANY($1::bigint[])"}\n',
    "radiusd/server.py": "import asyncio\nfrom daemons import db, udp\nfrom radiusd import store\n"
                         "from . import codec\n",
    "flowcollector/__init__.py": "",
    "flowcollector/codec.py": "import json\nimport struct\nfrom .templates import compile_plan\n",
    "flowcollector/templates.py": "import struct\n",
    "flowcollector/aggregate.py": "import numpy\nfrom .codec import FlowBatch\n",
    "flowcollector/store.py": 'ROLLUP = f"SELECT lastmile_rollup_traffic(now() - interval \'{3} hours\')"\n',
}


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def broken(tmp_path: Path, name: str, text: str) -> list[Violation]:
    """The violations of the clean tree with ``name`` written as ``text`` (added or replaced)."""
    return check(write(tmp_path, {**CLEAN, name: textwrap.dedent(text)}))


def test_the_repository_keeps_its_layers() -> None:
    violations = check(ROOT)
    assert not violations, "layering broken:\n" + "\n".join(map(str, violations))


def test_the_repository_has_what_the_rules_name() -> None:
    """A rule about a module that was renamed away would hold for nothing."""
    tree = layering.modules(ROOT)
    assert LAYOUT.codecs <= tree.keys()
    assert LAYOUT.pure <= tree.keys()
    assert LAYOUT.sql_homes <= tree.keys()
    assert {module for module, _ in LAYOUT.exceptions} <= tree.keys()
    assert {"radiusd", "flowcollector"} <= set(LAYOUT.components)


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    """The repository's ways (codec parts importing each other, socket's address conversions, the
    kit's importlib dispatch, components using the kit, SQL in stores) are no violations."""
    assert check(write(tmp_path, CLEAN)) == []


CODEC_BREAKS = {
    "a codec imports lastmile": ("radiusd/codec.py", "from radiusd import store\n", "codec",
                                 "codec modules import nothing of lastmile"),
    "a codec imports the kit": ("flowcollector/templates.py", "from daemons import log\n", "codec",
                                "codec modules import nothing of lastmile"),
    "the kit's codec imports the kit": ("daemons/mqtt.py", "from daemons.config import MqttSettings\n", "codec",
                                        "imports daemons.config"),
    "a codec imports a pure module": ("flowcollector/codec.py", "from . import aggregate\n", "codec",
                                      "imports flowcollector.aggregate"),
    "a codec imports socket": ("radiusd/_packet.py", "import socket\n", "codec", "it does no I/O"),
    "a codec takes a socket from socket": ("radiusd/_packet.py", "from socket import inet_ntop, socket\n", "codec",
                                           "imports socket"),
    "a codec logs": ("radiusd/_hiding.py", "import logging\n", "codec", "imports logging"),
    "a codec awaits": ("flowcollector/codec.py", "import asyncio\n", "codec", "imports asyncio"),
    "a codec queries": ("radiusd/authproto.py", "def f():\n    import asyncpg\n", "codec", "imports asyncpg"),
    "a codec fetches": ("daemons/mqtt.py", "from urllib.request import urlopen\n", "codec", "imports urllib.request"),
    "a codec opens a file": ("flowcollector/templates.py", "def f(p):\n    return open(p).read()\n", "codec",
                             "calls open"),
    "a codec reads a path": ("radiusd/codec.py", "from pathlib import Path\nX = Path('d').read_text()\n", "codec",
                             "calls .read_text()"),
    "a codec prints": ("radiusd/codec.py", "print('decoded')\n", "codec", "calls print"),
    "a codec reads the environment": ("radiusd/codec.py", "import os\nSECRET = os.environ['S']\n", "codec",
                                      "reads os.environ"),
    "a codec parses a dictionary file": ("radiusd/_packet.py", "import pyrad.dictionary as d\nd.Dictionary('x')\n",
                                         "codec", "calls pyrad.dictionary.Dictionary"),
    "a future component's codec": ("acs/codec.py", "import ssl\n", "codec", "imports ssl"),
    "provisiond's codec": ("daemons/provisiond/codec.py", "from daemons import log\n", "codec",
                           "codec modules import nothing of lastmile"),
    "a pure module does I/O": ("radiusd/policy.py", "import asyncio\n", "pure", "pure module radiusd.policy"),
    "a pure module logs through the kit": ("flowcollector/aggregate.py", "from daemons import log\n", "pure",
                                           "imports daemons.log"),
}


@pytest.mark.parametrize(("name", "text", "rule", "says"), CODEC_BREAKS.values(), ids=CODEC_BREAKS.keys())
def test_codec_and_pure_rules_fail_when_broken(tmp_path: Path, name: str, text: str, rule: str, says: str) -> None:
    violations = broken(tmp_path, name, text)
    assert [v.rule for v in violations] == [rule], violations
    assert violations[0].path == name
    assert says in violations[0].message


IMPORT_BREAKS = {
    "the kit imports a component": ("daemons/up.py", "from radiusd import server\n", "kit",
                                    "the kit imports no component"),
    "the kit imports a component's module": ("daemons/cli.py", "import flowcollector.codec\n", "kit",
                                             "component flowcollector"),
    "the kit imports provisiond": ("daemons/cli.py", "from daemons import provisiond\n", "kit",
                                   "component daemons.provisiond"),
    "the kit imports provisiond relatively": ("daemons/runtime.py", "from .provisiond import sync\n", "kit",
                                              "daemons.provisiond.sync"),
    "the kit imports a component not built yet": ("daemons/up.py", "from admin import app\n", "kit",
                                                  "component admin"),
    "a component imports another": ("flowcollector/maps.py", "from radiusd.cache import NasTable\n", "component",
                                    "components meet in PostgreSQL (rows, NOTIFY) and MQTT, not by import"),
    "a component imports provisiond": ("radiusd/coa.py", "from daemons.provisiond import sync\n", "component",
                                       "of the component daemons.provisiond"),
    "provisiond imports a component": ("daemons/provisiond/plan.py", "import flowcollector.store\n", "component",
                                       "of the component flowcollector"),
    "a component imports another by importlib": ("radiusd/coa.py",
                                                 "import importlib\nm = importlib.import_module('acs.store')\n",
                                                 "component", "by importlib"),
}


@pytest.mark.parametrize(("name", "text", "rule", "says"), IMPORT_BREAKS.values(), ids=IMPORT_BREAKS.keys())
def test_import_rules_fail_when_broken(tmp_path: Path, name: str, text: str, rule: str, says: str) -> None:
    violations = broken(tmp_path, name, text)
    assert [v.rule for v in violations] == [rule], violations
    assert violations[0].path == name
    assert says in violations[0].message


SQL_BREAKS = {
    "a query in a cache": ("radiusd/cache.py", 'Q = """\nSELECT id FROM nas\n"""\n', "radiusd/store.py"),
    "a WHERE fragment": ("radiusd/loader.py", 'W = {"tariffs": "s.tariff_id = ANY($1::bigint[])"}\n',
                         "radiusd/store.py"),
    "a condition": ("radiusd/coa.py", 'async def f(store, conn):\n    await store.load(conn, "s.id = $1", 5)\n',
                    "radiusd/store.py"),
    "an f-string statement": ("flowcollector/writer.py", 'def f(t):\n    return f"INSERT INTO {t} VALUES ($1)"\n',
                              "flowcollector/store.py"),
    "a NOTIFY in a writer": ("radiusd/writer.py", "X = \"SELECT pg_notify('lastmile_sessions', $1)\"\n",
                             "radiusd/store.py"),
    "a query in the kit": ("daemons/up.py", 'X = "SELECT EXISTS (SELECT 1 FROM customers)"\n', "daemons/db.py"),
    "a query in provisiond": ("daemons/provisiond/sync.py", 'X = "DELETE FROM router_jobs WHERE id = $1"\n',
                              "daemons/provisiond/store.py"),
    "a query in a component's __main__": ("flowcollector/__main__.py", 'X = "UPDATE t SET a = 1"\n',
                                          "flowcollector/store.py"),
}


@pytest.mark.parametrize(("name", "text", "store"), SQL_BREAKS.values(), ids=SQL_BREAKS.keys())
def test_sql_rule_fails_when_broken(tmp_path: Path, name: str, text: str, store: str) -> None:
    violations = broken(tmp_path, name, text)
    assert [v.rule for v in violations] == ["sql"], violations
    assert violations[0].path == name
    assert f"move this SQL to {store}" in violations[0].message


def test_sql_in_docstrings_comments_and_prose_is_not_sql(tmp_path: Path) -> None:
    violations = broken(tmp_path, "radiusd/writer.py", '''\
        """Group commit: one INSERT INTO radius_sessions ... ON CONFLICT per batch."""
        # SELECT in a comment
        def f() -> str:
            """Runs UPDATE sessions SET stopped_at for the batch."""
            return "select the NAS, then drop it if it is unknown"
        ''')
    assert violations == []


def test_an_exception_that_matches_nothing_is_reported(tmp_path: Path) -> None:
    """The one exception (the codec parsing its shipped dictionary) must not outlive its reason."""
    violations = broken(tmp_path, "radiusd/_attrdefs.py", "def table() -> None:\n    return None\n")
    assert [v.rule for v in violations] == ["exception"]
    assert "remove it" in violations[0].message


def test_the_exception_covers_only_its_module(tmp_path: Path) -> None:
    violations = broken(tmp_path, "radiusd/codec.py", "from pyrad.dictionary import Dictionary\nDictionary('d')\n")
    assert [v.rule for v in violations] == ["codec"]
