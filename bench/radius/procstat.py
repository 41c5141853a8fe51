"""CPU time and memory of process trees, from /proc.

The CPU time of a tree is the sum over its live processes of utime + stime (all threads) +
cutime + cstime (children that exited and were reaped), so a worker or a PostgreSQL backend
that exits during a run is still counted: its time moves into its parent's cutime/cstime.
"""

from __future__ import annotations

import os
from pathlib import Path

HZ = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields from "state" on (stat(5) field 3)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))):
            children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    children = _children()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_seconds(*roots: int) -> float:
    """CPU seconds used so far by the trees under ``roots`` (see the module docstring)."""
    ticks = 0
    for pid in {pid for root in roots for pid in tree(root)}:
        fields = _stat_fields(pid)
        if fields:
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / HZ


def rss_mb(root: int) -> list[float]:
    """Resident memory of each process of the tree, in MB (VmRSS)."""
    sizes = []
    for pid in tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def udp_rcvbuf_errors() -> int:
    """Host-wide count of UDP datagrams dropped for a full receive buffer."""
    lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
    header, values = lines[0], lines[1]
    return int(values[header.index("RcvbufErrors")])


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])
