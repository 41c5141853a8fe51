"""A lastmile daemon run as a real subprocess, as systemd would: started, read, metered, stopped."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[str]
    metrics_port: int
    output: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            body: bytes = response.read()
        return body.decode()

    def metric(self, name: str, **labels: str) -> float:
        """Sum of a metric's samples whose labels include ``labels``."""
        total = 0.0
        for line in self.metrics().splitlines():
            if not line.startswith(name) or line.startswith("#"):
                continue
            match = re.match(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if not match:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def logs(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(self.output) if line.startswith("{")]

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._drain_output()
        return self.proc.returncode

    def _drain_output(self) -> None:
        assert self.proc.stdout and self.reader
        self.reader.join(5)
        self.proc.stdout.close()


D = TypeVar("D", bound=Daemon)


def start_daemon(cls: type[D], name: str, db_url: str, tmp: Path, env: dict[str, str], **fields: Any) -> D:
    """Run ``lastmile <name>`` against ``db_url``; return once /metrics says it is ready."""
    metrics_port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    full.update(PYTHONPATH=str(ROOT), LASTMILE_DATABASE__URL=db_url, LASTMILE_LOG__FORMAT="json",
                LASTMILE_DATABASE__POOL_MIN="1", **{f"LASTMILE_{name.upper()}__METRICS_PORT": str(metrics_port)})
    full.update(env)
    proc = subprocess.Popen([sys.executable, "-m", "daemons.cli", name], env=full, cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    daemon = cls(name=name, proc=proc, metrics_port=metrics_port, **fields)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            daemon._drain_output()
            raise AssertionError(f"{name} exited:\n" + "\n".join(daemon.output))
        try:
            if f'lastmile_ready{{daemon="{name}"}} 1.0' in daemon.metrics():
                return daemon
        except OSError:
            pass
        time.sleep(0.05)
    daemon.stop()
    raise AssertionError(f"{name} did not become ready:\n" + "\n".join(daemon.output))
