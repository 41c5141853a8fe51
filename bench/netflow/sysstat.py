"""What the benchmark reads from Linux: CPU time of process sessions and trees, UDP socket
queues and drops, machine-wide CPU, free ports; and ``Session``, a process group the
harness starts, accounts for and stops.

CPU of a session (a collector and everything it forks) is the sum, over the processes still
in /proc with that session id (zombies included), of their own and their reaped children's
user + system time, plus the rusage of the processes the harness itself reaped.  The harness
is a child subreaper (``become_subreaper``), so a process orphaned inside the session (pmacct's
SQL writers outlive the core) is reparented to it rather than to init, and its time is
counted when the harness reaps it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CLK = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True, slots=True)
class Stat:
    pid: int
    ppid: int
    sid: int
    state: str
    own: float  # utime + stime, seconds
    children: float  # cutime + cstime: reaped children, seconds
    start: int  # start time in clock ticks since boot (tells a reused PID apart)


def stat(pid: int) -> Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = text[text.rindex(")") + 2 :].split()
    return Stat(
        pid, int(f[1]), int(f[3]), f[0], (int(f[11]) + int(f[12])) / CLK, (int(f[13]) + int(f[14])) / CLK, int(f[19])
    )


def all_stats() -> list[Stat]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (s := stat(int(name))) is not None:
            out.append(s)
    return out


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` and its live descendants, their reaped children included."""
    stats = all_stats()
    kids: dict[int, list[Stat]] = {}
    for s in stats:
        kids.setdefault(s.ppid, []).append(s)
    top = next((s for s in stats if s.pid == root), None)
    todo, total = ([top] if top else []), 0.0
    while todo:
        s = todo.pop()
        total += s.own + s.children
        todo.extend(kids.get(s.pid, []))
    return total


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


# ------------------------------------------------------------------------------ sockets
@dataclass(frozen=True, slots=True)
class UdpState:
    sockets: int
    queued: int  # bytes waiting in the receive queues
    drops: int  # datagrams the kernel dropped (full receive buffer)
    inodes: frozenset[int]


def udp_state(ports: list[int]) -> UdpState:
    """The UDP sockets bound to any of ``ports`` (IPv4 and IPv6), from /proc/net/udp[6]."""
    count = queued = drops = 0
    inodes = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(FileNotFoundError), open(table) as f:
            next(f)
            for line in f:
                col = line.split()
                if int(col[1].rsplit(":", 1)[1], 16) in ports:
                    count += 1
                    queued += int(col[4].split(":")[1], 16)
                    drops += int(col[12])
                    inodes.add(int(col[9]))
    return UdpState(count, queued, drops, frozenset(inodes))


def socket_owners(inodes: frozenset[int]) -> set[int]:
    """PIDs holding any of the socket inodes."""
    wanted = {f"socket:[{i}]" for i in inodes}
    owners = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{name}/fd/{fd}") in wanted:
                        owners.add(int(name))
                        break
    return owners


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port free for ``kind`` on 127.0.0.1 (and for TCP when asked for UDP: metrics share nothing)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port on 127.0.0.1")


# ------------------------------------------------------------------------------ machine
def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot, from /proc/stat."""
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(x) for x in f[:8]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# ------------------------------------------------------------------------------ sessions
class Session:
    """A command started in its own session; its CPU time is that of everything in it."""

    def __init__(self, argv: list[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                argv,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.popen.pid
        self.log = log
        self.reaped_cpu = 0.0
        self.returncode: int | None = None

    def members(self) -> list[Stat]:
        return [s for s in all_stats() if s.sid == self.pid]

    def cpu(self) -> float:
        """CPU seconds used so far by the session, including processes already gone."""
        self.reap()
        return self.reaped_cpu + sum(s.own + s.children for s in self.members())

    def reap(self) -> None:
        """Reap the session's zombies that are our children (the leader, and orphans reparented
        to us as subreaper), adding their rusage (which includes their own reaped children)."""
        me = os.getpid()
        for s in self.members():
            if s.ppid != me or s.state != "Z":
                continue
            with contextlib.suppress(ChildProcessError):
                pid, status, usage = os.wait4(s.pid, os.WNOHANG)
                if pid:
                    self.reaped_cpu += usage.ru_utime + usage.ru_stime
                    if pid == self.pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
                        self.popen.returncode = self.returncode

    def running(self) -> bool:
        self.reap()
        return self.returncode is None

    def signal(self, sig: signal.Signals) -> None:
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait_leader(self, timeout: float) -> bool:
        """Wait for the session leader to exit; True if it did."""
        return _until(lambda: not self.running(), timeout)

    def wait_empty(self, timeout: float) -> bool:
        """Wait until no process is left in the session (reaping ours); True if so."""
        return _until(lambda: not self.running() and not self.members(), timeout)

    def kill(self) -> None:
        """SIGKILL every process left in the session (all of them started by us), then reap."""
        for s in self.members():
            if s.state != "Z":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.pid, signal.SIGKILL)
        self.wait_empty(10)

    def tail(self, chars: int = 600) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def register(registry: Path, pid: int) -> None:
    """Note a session the harness started (PID and start time), so that a cleanup after a
    driver killed outright ends exactly these processes and no others."""
    s = stat(pid)
    with registry.open("a") as f:
        f.write(f"{pid} {s.start if s else 0}\n")


def _until(done: Callable[[], bool], timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)
