"""A real IMAP server for the mail intake's tests: Debian's dovecot, started by the fixture on
127.0.0.1 with a dovecot.conf written under a temporary directory.

It listens on two free ports: plain IMAP (STARTTLS offered) and implicit TLS, with a certificate
for 127.0.0.1 signed by a test CA (:attr:`Dovecot.ca_file`). Users come from a passwd-file written
before the start (:meth:`Dovecot.user` hands out one per test); mail is maildir under the
directory, owned by the ``dovecot`` system user (dovecot refuses to serve mail as root). Failed
logins are not delayed (``auth_failure_delay = 0``). The master runs in the foreground
(``dovecot -F -c conf``) in a session of its own and is stopped by its PID, with its process group
(the logged-in sessions' imap processes); :meth:`Dovecot.restart` starts it again on the same ports.

Needs ``dovecot-imapd`` (``.ci/run`` installs it) and root; the tests skip, saying which, when
either is missing.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import aioimaplib  # type: ignore[import-untyped]  # no type information shipped
import pytest

from tests.conftest import free_port
from tests.fakes.routeros import make_certificates

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"  # /usr/sbin may not be on a user's PATH
_USERS = 100  # users in the passwd-file: one per test


class Dovecot:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port()
        certificates = make_certificates(root / "tls", name="lastmile imap test")
        self.ca_file = str(certificates.ca)
        owner = pwd.getpwnam("dovecot")
        for name in ("mail", "home"):
            (root / name).mkdir()
            os.chown(root / name, owner.pw_uid, owner.pw_gid)
        root.chmod(0o755)
        # written once, before the start: dovecot notices a changed passwd-file by its mtime, in
        # whole seconds, so users added while it runs would be missed for up to a second
        self._users = [(f"agent{n}", secrets.token_urlsafe(8)) for n in range(1, _USERS + 1)]
        self.passwd = root / "passwd"
        self.passwd.write_text("".join(f"{name}:{{PLAIN}}{password}\n" for name, password in self._users))
        self.log = root / "dovecot.log"
        self.conf = root / "dovecot.conf"
        self.conf.write_text(f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{certificates.certificate}
ssl_key = <{certificates.key}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.passwd}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
  }}
}}
""")
        self.process: subprocess.Popen[bytes] | None = None

    def user(self) -> tuple[str, str]:
        """A user nobody took yet, with an empty inbox: (name, password)."""
        return self._users.pop(0)

    def start(self) -> None:
        self.process = subprocess.Popen([DOVECOT, "-F", "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"dovecot exited: {said}{self.log.read_text() if self.log.exists() else ''}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5), \
                        socket.create_connection((self.host, self.tls_port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen within 10 s: {self.log.read_text() if self.log.exists() else ''}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # the master's process group: a logged-in session's imap process outlives the master
            # alone, as a restart of the service (systemd's control group) would not let it
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None and process.stderr is not None:
            process.stderr.close()

    def restart(self) -> None:
        self.stop()
        self.start()


def _skip_reason() -> str:
    if not Path(DOVECOT).exists():
        return "dovecot is not installed (apt-get install dovecot-imapd; .ci/run does)"
    if os.geteuid() != 0:
        return "dovecot's test server runs as root (it serves mail as the dovecot user)"
    try:
        pwd.getpwnam("dovecot")
    except KeyError:
        return "no dovecot system user (dovecot-core makes it)"
    return ""


def _server() -> Iterator[Dovecot]:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="lastmile-dovecot-"))
    server = Dovecot(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One dovecot for the session (each test takes its own user)."""
    yield from _server()


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A dovecot for one test, to restart."""
    yield from _server()


async def deliver(server: Dovecot, user: tuple[str, str], raw: bytes, *, seen: bool = False,
                  when: datetime | None = None) -> None:
    """Put ``raw`` in the user's inbox by IMAP APPEND from another client (flagged read when
    ``seen``, with ``when`` as its arrival date)."""
    client = aioimaplib.IMAP4(host=server.host, port=server.port, timeout=5)
    await client.wait_hello_from_server()
    try:
        assert (await client.login(*user)).result == "OK"
        response = await client.append(raw, mailbox="INBOX", flags="(\\Seen)" if seen else None, date=when)
        assert response.result == "OK", response
    finally:
        await client.logout()


def message(n: int, subject: str = "") -> bytes:
    return (f"From: Anna Bauer <anna@example.at>\r\nTo: support@isp.example\r\nSubject: {subject or f'Frage {n}'}\r\n"
            f"Message-ID: <m{n}.{secrets.token_hex(4)}@example.at>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
            f"\r\nNachricht {n}\r\n").encode()
