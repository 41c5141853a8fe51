"""The embedded PostgreSQL: real PostgreSQL 16 binaries from the ``pgserver`` wheel.

``lastmile up`` and the test suite use it when no database URL is set. We drive the binaries
ourselves (initdb, pg_ctl) rather than through pgserver's ``get_server``, because that listens
on a Unix socket only and stops the server from an ``atexit`` hook; here the server listens
on 127.0.0.1:``port`` (so FreeRADIUS in the benchmark and a psql by hand can reach it), and
its life is the caller's: started by ``start()``, stopped by ``stop()``, reused when a
previous run left it running.

PostgreSQL refuses to run as root. Under root every server binary runs in a user namespace of
its own (``unshare --user``) where it is the system user ``pgserver`` (the one pgserver itself
creates), while the kernel still checks its file access as root's: so a checkout in a private
directory (``mktemp -d``, root's home) works, the cluster's files belong to root, and nothing
outside the data directory has its permissions changed. Where user namespaces are not
allowed, the binaries run as ``pgserver`` itself, which then must be able to reach the data
directory and the binaries; if it cannot, ``start()`` says so in one line instead.
"""

from __future__ import annotations

import fcntl
import functools
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

DATABASE = "lastmile"
RUN_AS = "pgserver"


def bin_dir() -> Path:
    """The PostgreSQL binaries inside the pgserver wheel (found without importing pgserver,
    whose import registers an atexit hook and a lock file we do not want)."""
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the pgserver package is not installed: pip install pgserver")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedError(RuntimeError):
    """The embedded server cannot be used as asked; ``str()`` is one line for the user."""


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``datadir`` serving 127.0.0.1:``port``."""

    def __init__(self, datadir: Path, port: int, *, durable: bool = True) -> None:
        self.datadir = datadir.resolve()
        self.port = port
        self.durable = durable
        self.bin = bin_dir()
        self.user: pwd.struct_passwd | None = _system_user() if os.geteuid() == 0 else None
        #: Under root: run the binaries in a user namespace (True), or as the pgserver user itself.
        self.userns = self.user is not None and _userns_works(self.user)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def is_running(self) -> bool:
        if not (self.datadir / "PG_VERSION").exists():
            return False
        result = self._pg_ctl("status", check=False)
        return result.returncode == 0

    def running_port(self) -> int | None:
        """The port a running server of this data directory listens on (its postmaster.pid says),
        None if it does not run or does not say."""
        return self._pid_port() if self.is_running() else None

    def _pid_port(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().splitlines()[3])
        except (OSError, ValueError, IndexError):
            return None

    def start(self) -> str:
        """Create the cluster if needed, start it unless it runs, create the database; return its URL."""
        self._check_reachable()
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb()
        running = self.is_running()
        port = self._pid_port() if running else None
        if port is not None and port != self.port:
            raise EmbeddedError(
                f"{self.datadir} is already served on port {port}, not {self.port} (another lastmile with "
                "another port_offset?): run this one from its own directory or set [database] embedded_dir"
            )
        if not running:
            options = f"-h 127.0.0.1 -p {self.port} -k {self.datadir}"
            log_file = self.datadir / "postgresql.log"
            self._pg_ctl("start", "-w", "-t", "60", "-l", str(log_file), "-o", options)
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'").strip()
        if exists != "1":
            self.psql(f"CREATE DATABASE {DATABASE}")
        return self.url

    def stop(self, timeout: int = 10) -> None:
        """Stop the server: fast shutdown (active sessions are rolled back, nothing committed is lost)."""
        if self.is_running():
            self._pg_ctl("stop", "-w", "-m", "fast", "-t", str(timeout))

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = subprocess.run(
            [
                str(self.bin / "psql"),
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def _owner(self) -> tuple[int, int]:
        """Who the cluster's files must belong to for the server to accept them."""
        if self.user is None or self.userns:
            return os.geteuid(), os.getegid()
        return self.user.pw_uid, self.user.pw_gid

    def _check_reachable(self) -> None:
        """Without a user namespace, the pgserver user must be able to reach what it runs and writes."""
        if self.user is None or self.userns:
            return
        for path in (self.bin, self.datadir.parent):
            blocked = next((p for p in (path, *path.parents) if p.exists() and not p.stat().st_mode & stat.S_IXOTH),
                           None)
            if blocked is not None:
                raise EmbeddedError(
                    f"the embedded PostgreSQL runs as user {self.user.pw_name}, which cannot reach {path} "
                    f"({blocked} is private) and user namespaces are not allowed here: move the checkout, "
                    "or set [database] url")

    def _adopt_datadir(self) -> None:
        """A cluster made by an earlier lastmile for another owner (the pgserver user) becomes ours."""
        if not self.datadir.exists():
            return
        uid, gid = self._owner()
        if self.datadir.stat().st_uid == uid:
            return
        for root, dirs, files in os.walk(self.datadir):
            for name in (*dirs, *files):
                os.lchown(os.path.join(root, name), uid, gid)
        os.chown(self.datadir, uid, gid)

    def _initdb(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        os.chown(self.datadir, *self._owner())
        self.datadir.chmod(0o700)
        self._run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ]
        )
        settings = [
            "listen_addresses = '127.0.0.1'",
            "max_connections = 200",
            "shared_buffers = 128MB",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
        ]
        if not self.durable:
            # Test clusters: losing them in a crash costs nothing, fsyncs cost seconds.
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with (self.datadir / "postgresql.conf").open("a") as f:
            f.write("\n# lastmile\n" + "\n".join(settings) + "\n")

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        self._adopt_datadir()
        return self._run([str(self.bin / "pg_ctl"), "-D", str(self.datadir), *args], check=check)

    def _run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
        name = Path(argv[0]).name
        switch = self.user is not None and not self.userns
        if self.user is not None and self.userns:
            argv = [*_unshare(self.user), *argv]
        # Drop root's groups too: with gid 0 a root-owned parent's group bits would apply.
        with open(os.devnull, "w") as devnull:
            result = subprocess.run(
                argv,
                stdout=devnull,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
                timeout=120,
                cwd="/",
                user=self.user.pw_uid if self.user and switch else None,
                group=self.user.pw_gid if self.user and switch else None,
                extra_groups=[] if self.user and switch else None,
            )
        if check and result.returncode != 0:
            raise RuntimeError(f"{name} failed: {result.stderr.strip()[-500:]}")
        return result


def _system_user() -> pwd.struct_passwd:
    """The unprivileged user the binaries run as, created on first use. Processes starting at once
    (test workers) take a lock first: two useradds of one name at a time leave a broken entry."""
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        pass
    with open(os.path.join(tempfile.gettempdir(), f"lastmile-useradd-{RUN_AS}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(RUN_AS)
        except KeyError:
            made = subprocess.run(
                ["/usr/sbin/useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
                check=False,
                capture_output=True,
                text=True,
            )
        try:
            return pwd.getpwnam(RUN_AS)
        except KeyError:
            raise EmbeddedError(f"cannot create the user {RUN_AS}: {made.stderr.strip()}") from None


def _unshare(user: pwd.struct_passwd) -> list[str]:
    """The command prefix that runs a binary as ``user`` in a user namespace of its own, mapped to root."""
    return [shutil.which("unshare") or "/usr/bin/unshare", "--user", f"--map-user={user.pw_uid}",
            f"--map-group={user.pw_gid}", "--"]


@functools.cache
def _userns_works(user: pwd.struct_passwd) -> bool:
    try:
        return subprocess.run([*_unshare(user), "true"], capture_output=True, check=False, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
