"""MQTT event throughput: daemons.events.EventPublisher to a real broker on 127.0.0.1.

Each broker runs as its own process: the embedded amqtt broker exactly as `lastmile up` starts
it (`python -m daemons.cli broker --port P`), and Debian's mosquitto (`mosquitto -p P`) when it
is installed. The publisher runs in this process under uvloop, as in a daemon, with the
settings of a daemon (QoS 1, every event acknowledged by the broker).

Two measurements per broker:

* **sustained**: the publisher's queue is kept topped up for `BENCH_SECONDS` (after one second
  of warm-up) and the events acknowledged by the broker (``lastmile_events_published_total``)
  are counted: the most this publisher sends per second to that broker. Also the CPU time of
  this process per event (publish() with its JSON encoding, the client, the loop) and of the
  broker per event, from /proc: those do not depend on who else shares the machine.
* **offered**: `BENCH_RATE` events/s (default 8,000: one event per accounting Start or Stop,
  at 8,000 accounting requests/s, radiusd's measured peak) for `BENCH_SECONDS`, with the
  default `queue_size`, paced in 1 ms slices; how many were sent, dropped (by reason), and the
  deepest the queue got.

Results: a Markdown table on stdout and in bench/results/events-<date>.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from daemons import events  # noqa: E402
from daemons import log as daemon_log  # noqa: E402
from daemons.config import LogSettings, MqttSettings  # noqa: E402
from daemons.metrics import REGISTRY  # noqa: E402

HZ = os.sysconf("SC_CLK_TCK")
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
RATE = int(os.environ.get("BENCH_RATE", "8000"))
INFLIGHT = int(os.environ.get("BENCH_INFLIGHT", "0"))  # 0: the default of [mqtt] max_inflight
BROKERS = [b for b in os.environ.get("BENCH_BROKERS", "amqtt,mosquitto").split(",") if b]
EVENT = events.SessionStarted(  # what radiusd publishes for every session that opens
    acct_unique_id="5f0c9a3e8b7d4c21a6e0f3b2c1d4e5f6", service_id=48213, login="c48213@demo",
    framed_ip="100.64.188.213", started_at="2026-11-21T10:24:00+00:00", nas_id=12)


def log(text: str) -> None:
    print(f"bench/events: {text}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(f) for f in fields[11:13]) / HZ  # utime stime


@contextmanager
def broker(kind: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    if kind == "amqtt":
        argv = [sys.executable, "-m", "daemons.cli", "broker", "--port", str(port)]
    else:
        argv = [shutil.which("mosquitto") or "mosquitto", "-p", str(port)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(PYTHONPATH=str(ROOT), LASTMILE_LOG__FORMAT="json", LASTMILE_LOG__LEVEL="warning")
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None:
                raise RuntimeError(f"{kind} exited with code {proc.returncode}")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def queued(publisher: events.EventPublisher) -> int:
    """Events in the publisher's queue (also for the publisher before issue #8, whose queue was an
    asyncio.Queue: `git checkout 3a823ba -- daemons/events.py` measures that one)."""
    if hasattr(publisher, "queued"):
        return int(publisher.queued)
    return int(publisher.queue.qsize())  # type: ignore[attr-defined]


def published() -> float:
    return REGISTRY.get_sample_value("lastmile_events_published_total", {"subject": "session"}) or 0.0


def dropped() -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in REGISTRY.collect():
        if metric.name == "lastmile_events_dropped":
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.value:
                    out[sample.labels["reason"]] = sample.value
    return out


async def sustained(url: str, broker_pid: int) -> dict[str, float]:
    settings = MqttSettings(url=url, max_inflight=INFLIGHT) if INFLIGHT else MqttSettings(url=url)
    publisher = events.EventPublisher(settings, f"bench-{os.getpid()}")
    publisher.start()
    await asyncio.wait_for(publisher.connected.wait(), 10)
    limit = settings.queue_size

    async def top_up(until: float) -> None:
        while time.monotonic() < until:
            for _ in range(limit - queued(publisher)):
                publisher.publish(EVENT)
            await asyncio.sleep(0.001)

    await top_up(time.monotonic() + 1.0)
    n0, t0, c0, b0 = published(), time.monotonic(), time.process_time(), cpu_seconds(broker_pid)
    await top_up(t0 + SECONDS)
    n1, t1, c1, b1 = published(), time.monotonic(), time.process_time(), cpu_seconds(broker_pid)
    await publisher.close(timeout=30)
    sent = n1 - n0
    return {
        "events_s": sent / (t1 - t0),
        "cpu_us": (c1 - c0) / sent * 1e6 if sent else float("nan"),
        "broker_cpu_us": (b1 - b0) / sent * 1e6 if sent else float("nan"),
    }


async def offered(url: str) -> dict[str, float]:
    settings = MqttSettings(url=url, max_inflight=INFLIGHT) if INFLIGHT else MqttSettings(url=url)
    publisher = events.EventPublisher(settings, f"bench-{os.getpid()}")
    publisher.start()
    await asyncio.wait_for(publisher.connected.wait(), 10)
    drops0, n0 = dropped(), published()
    deepest, due, start = 0, 0, time.monotonic()
    while (now := time.monotonic()) < start + SECONDS:
        target = int((now - start) * RATE)
        for _ in range(target - due):
            publisher.publish(EVENT)
        due = target
        deepest = max(deepest, queued(publisher))
        await asyncio.sleep(0.001)
    await publisher.close(timeout=30)
    drops = {k: v - drops0.get(k, 0.0) for k, v in dropped().items() if v - drops0.get(k, 0.0)}
    result = {"offered": float(due), "sent": published() - n0, "deepest": float(deepest)}
    return result | {f"dropped_{k}": v for k, v in drops.items()}


async def measure(kind: str) -> dict[str, float]:
    port = free_port()
    url = f"mqtt://127.0.0.1:{port}"
    with broker(kind, port) as proc:
        log(f"{kind}: sustained, {SECONDS:g} s")
        result = await sustained(url, proc.pid)
    with broker(kind, port) as proc:
        log(f"{kind}: offered {RATE}/s, {SECONDS:g} s")
        result |= await offered(url)
    return result


def version(kind: str) -> str:
    if kind == "amqtt":
        from importlib.metadata import version as dist_version

        return f"amqtt {dist_version('amqtt')}"
    out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else "mosquitto"


def main() -> int:
    daemon_log.setup(LogSettings(level="warning", format="console"), "bench")
    kinds = [k for k in BROKERS if k == "amqtt" or shutil.which("mosquitto")]
    skipped = [k for k in BROKERS if k not in kinds]
    if skipped:
        log(f"not installed, skipped: {', '.join(skipped)} (apt-get install -y mosquitto)")
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT,
                         check=False).stdout.strip()
    rows = []
    for kind in kinds:
        r = uvloop.run(measure(kind))
        drops = ", ".join(f"{k[8:]} {v:,.0f}" for k, v in r.items() if k.startswith("dropped_")) or "0"
        rows.append(
            f"| {version(kind)} | {r['events_s']:,.0f} | {r['cpu_us']:.0f} | {r['broker_cpu_us']:.0f} "
            f"| {r['offered']:,.0f} | {r['sent']:,.0f} | {drops} | {r['deepest']:,.0f} |"
        )
    window = INFLIGHT or getattr(MqttSettings(), "max_inflight", 1)  # 1: the publisher before issue #8
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join(
        [
            f"MQTT events, {stamp}, git {git}, QoS 1, max_inflight {window}, {SECONDS:g} s per measurement",
            "",
            f"| broker | sustained events/s | publisher CPU µs/event | broker CPU µs/event "
            f"| offered at {RATE:,}/s | sent | dropped | deepest queue |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
            *rows,
            "",
        ]
    )
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"events-{datetime.now(UTC):%Y%m%d-%H%M}.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
