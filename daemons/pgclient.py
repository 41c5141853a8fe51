"""PostgreSQL's own client programs (pg_dump, pg_restore, psql) as backup and restore run them.

By default they are the PostgreSQL 16 clients inside the pgserver wheel (``pgembed.bin_dir()``),
for the embedded server and an external one alike; ``[backup] pg_bin_dir`` names others. pg_dump
dumps servers of its own major version and older only (a PostgreSQL 17 server needs a pg_dump
17 or newer), which :func:`check_dump_version` says before anything is written.

A URL's password never goes on a command line (where ``ps`` shows it): it is taken out of the
URL and handed over in ``PGPASSWORD``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from daemons.config import redact_url

APPLICATION = "lastmile-backup"
CHUNK = 1 << 20
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


class ClientError(Exception):
    """A client program failed or cannot be used; ``str()`` is one line for the operator."""


def bin_dir(configured: str) -> Path:
    if configured:
        return Path(configured)
    from daemons import pgembed

    return pgembed.bin_dir()


def program(configured: str, name: str) -> Path:
    path = bin_dir(configured) / name
    if not os.access(path, os.X_OK):
        where = "[backup] pg_bin_dir" if configured else "the pgserver package"
        raise ClientError(f"{path} is not an executable {name} ({where})")
    return path


def version(path: Path) -> tuple[int, str]:
    """The major version and the full version text of a client program (``pg_dump --version``)."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise ClientError(f"{path} does not run: {e}") from None
    match = _VERSION.search(out)
    if not match:
        raise ClientError(f"{path} --version says {out.strip()!r}: not a PostgreSQL client")
    return int(match.group(1)), f"{match.group(1)}.{match.group(2) or 0}"


def check_dump_version(pg_dump: Path, server_major: int, server_version: str) -> str:
    """pg_dump's version, if it can dump a server of ``server_major``; else ClientError saying what to do."""
    major, full = version(pg_dump)
    if major < server_major:
        raise ClientError(
            f"the database server is PostgreSQL {server_version} and {pg_dump} is version {full}: pg_dump must "
            f"be of the server's major version or newer; install the PostgreSQL {server_major} client and set "
            "[backup] pg_bin_dir to its bin directory"
        )
    return full


def split_password(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password, and the environment that carries it (``PGPASSWORD``)."""
    parts = urlsplit(url)
    env: dict[str, str] = {}
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        env["PGPASSWORD"] = unquote(password)
        netloc = f"{user}@{hosts}"
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in query if k != "password"]
    for key, value in query:
        if key == "password":
            env["PGPASSWORD"] = value
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(kept))), env


def with_database(url: str, name: str) -> str:
    """The URL of database ``name`` on the same server, as the same user."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def database_name(url: str) -> str:
    return unquote(urlsplit(url).path.lstrip("/")) or "postgres"


def _environment(url: str, connect_timeout: float) -> tuple[str, dict[str, str]]:
    dsn, secret = split_password(url)
    env = {**os.environ, "PGAPPNAME": APPLICATION, "PGCONNECT_TIMEOUT": str(max(1, round(connect_timeout)))}
    env.pop("PGPASSWORD", None)
    env.update(secret)
    return dsn, env


@contextlib.contextmanager
def dump(bin_configured: str, url: str, connect_timeout: float) -> Iterator[IO[bytes]]:
    """pg_dump's custom-format output as a stream; ClientError after the block if pg_dump failed.

    The dump is one consistent snapshot of the database (pg_dump's own transaction); it waits at
    most a minute for a table lock (a schema change running now), then fails rather than hang."""
    dsn, env = _environment(url, connect_timeout)
    argv = [str(program(bin_configured, "pg_dump")), "--format=custom", "--no-password", "--lock-wait-timeout=60s",
            f"--dbname={dsn}"]
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, env=env)
        assert proc.stdout is not None
        try:
            yield proc.stdout
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            proc.stdout.close()
        if proc.wait() != 0:
            raise ClientError(f"pg_dump of {redact_url(url)} failed: {_first_error(errors)}")


def restore(
    bin_configured: str,
    url: str,
    source: IO[bytes],
    connect_timeout: float,
    *,
    before: str = "",
    progress: Callable[[int], None] | None = None,
) -> None:
    """Restore a custom-format dump read from ``source`` into the database at ``url``, in one
    transaction: ``before`` (SQL), then everything pg_restore makes of the dump, then COMMIT, sent
    only when pg_restore ended well. Any error rolls it all back (ClientError), so the database is
    as it was. Objects belong to the role that restores (no owners or grants are restored)."""
    dsn, env = _environment(url, connect_timeout)
    pg_restore = program(bin_configured, "pg_restore")
    psql = program(bin_configured, "psql")
    with tempfile.TemporaryFile() as restore_errors, tempfile.TemporaryFile() as psql_errors:
        maker = subprocess.Popen(
            [str(pg_restore), "--format=custom", "--no-owner", "--no-privileges", "--exit-on-error", "--file=-"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=restore_errors)
        runner = subprocess.Popen(
            [str(psql), "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--file=-",
             f"--dbname={dsn}"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_errors, env=env)
        assert maker.stdin is not None and maker.stdout is not None and runner.stdin is not None
        fed: list[BaseException] = []
        feeder = threading.Thread(target=_feed, args=(source, maker.stdin, progress, fed), daemon=True)
        feeder.start()
        committed = False
        try:
            alive = _write(runner.stdin, b"BEGIN;\nSET client_min_messages = warning;\n" + before.encode() + b"\n")
            while alive and (chunk := maker.stdout.read(CHUNK)):
                alive = _write(runner.stdin, chunk)
            if not alive:
                maker.kill()  # psql failed: stop pg_restore, which unblocks the feeder
            made = maker.wait()
            feeder.join()
            if made == 0 and not fed:
                committed = _write(runner.stdin, b"\nCOMMIT;\n")
        finally:
            with contextlib.suppress(OSError):
                runner.stdin.close()  # without COMMIT: psql ends, the server rolls the transaction back
            maker.kill()
            maker.wait()
            ran = runner.wait()
        if ran != 0:
            raise ClientError(f"restore into {redact_url(url)} failed: {_first_error(psql_errors)}")
        if fed:
            raise ClientError(f"reading the dump failed: {fed[0]}")
        if not committed:
            raise ClientError(f"pg_restore failed: {_first_error(restore_errors)}")


def _feed(source: IO[bytes], sink: IO[bytes], progress: Callable[[int], None] | None,
          failed: list[BaseException]) -> None:
    """Copy the dump into pg_restore (a thread: pg_restore's output is read meanwhile)."""
    done = 0
    try:
        while chunk := source.read(CHUNK):
            try:
                sink.write(chunk)
            except OSError:
                return  # pg_restore stopped reading: it failed, and says why
            done += len(chunk)
            if progress is not None:
                progress(done)
    except Exception as e:  # reading the archive failed
        failed.append(e)
    finally:
        with contextlib.suppress(OSError):
            sink.close()


def _write(sink: IO[bytes], data: bytes) -> bool:
    """Write to psql; False if it has stopped reading (it failed on an error and says which)."""
    try:
        sink.write(data)
    except OSError:
        return False
    return True


def _first_error(errors: IO[bytes]) -> str:
    """The line of a client's stderr that says what went wrong, without the program's prefix."""
    errors.seek(0)
    lines = [line.strip() for line in errors.read().decode(errors="replace").splitlines() if line.strip()]
    for marker in ("ERROR:", "FATAL:", "error:"):
        line = next((line for line in lines if marker in line), None)
        if line is not None:
            return line.split(marker, 1)[1].strip()
    return lines[-1] if lines else "no error message"
