"""The embedded PostgreSQL from a checkout in a private directory: it must start there (under
root it runs in a user namespace, so nothing needs to be made reachable for another user), and
leave every directory outside the checkout as it found it."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from daemons.pgembed import EmbeddedPostgres, bin_dir
from tests.conftest import free_port


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="the private-directory case is root's (PostgreSQL refuses root)")
def test_a_checkout_in_a_private_directory_serves_and_stays_private() -> None:
    private = Path(tempfile.mkdtemp(prefix="lastmile-private-"))  # mode 700, as `mktemp -d` makes it
    outside = {p: mode(p) for p in private.parents}
    try:
        # The binaries inside it too, where a clone's .venv has them (with the libraries their
        # RPATH names, beside the package).
        site = private / "clone" / ".venv" / "site-packages"
        installed = bin_dir().parents[2]
        for part in ("pgserver/pginstall", "pgserver.libs"):
            shutil.copytree(installed / part, site / part, copy_function=_link_or_copy, symlinks=True)
        pginstall = site / "pgserver" / "pginstall"
        server = EmbeddedPostgres(private / "clone" / "var" / "pg", free_port())
        server.bin = pginstall / "bin"
        server.start()
        try:
            assert server.psql("SELECT 40 + 2").strip() == "42"
            assert (server.datadir / "PG_VERSION").stat().st_uid == os.geteuid()  # the checkout's owner's files
        finally:
            server.stop()
        assert not server.is_running()
        assert mode(private) == 0o700
        assert {p: mode(p) for p in private.parents} == outside
    finally:
        shutil.rmtree(private, ignore_errors=True)
