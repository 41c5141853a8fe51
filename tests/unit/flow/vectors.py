"""Golden vectors under tests/vectors/netflow: ``<name>.hex`` in, ``<name>.json`` expected.

A ``.hex`` file holds one datagram per line after ``#`` comment lines; the second comment
line gives ``exporter=<address> now=<unix seconds>``.  The ``.json`` file is what a fresh
``Decoder`` makes of them, datagram by datagram (``summarize``).  To add a vector, write the
``.hex`` file, run the tests once with ``LASTMILE_UPDATE_VECTORS=1`` to write its ``.json``,
and review that file by hand (and against the differential decoders) before committing.
The same files seed the fuzzer (tests/fuzz).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from flowcollector.codec import CodecError, Decoded, Decoder

VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "netflow"


def load(name: str) -> tuple[str, float, list[bytes]]:
    """(exporter, now, datagrams) of one vector."""
    lines = (VECTORS / f"{name}.hex").read_text().splitlines()
    params = dict(kv.split("=") for kv in lines[1].lstrip("# ").split())
    datagrams = [bytes.fromhex(line) for line in lines if line and not line.startswith("#")]
    return params["exporter"], float(params["now"]), datagrams


def summarize(result: Decoded) -> dict[str, Any]:
    return {
        "records": result.records, "lost": result.lost, "dropped": result.dropped, "events": result.events,
        "batches": [{"family": b.family, "rate": b.rate, "sampling": b.sampling, "times": b.times,
                     "flows": [list(f) for f in b.flows()]} for b in result.batches],
    }


def run(name: str, decoder: Decoder | None = None) -> list[dict[str, Any]]:
    """Decode a vector's datagrams in order with one decoder."""
    exporter, now, datagrams = load(name)
    decoder = decoder or Decoder()
    out: list[dict[str, Any]] = []
    for dg in datagrams:
        try:
            out.append(summarize(decoder.decode(dg, exporter, now)))
        except CodecError as exc:
            out.append({"error": exc.reason})
    return out


def check(name: str) -> list[dict[str, Any]]:
    """Compare a vector with its golden JSON (or write it, with LASTMILE_UPDATE_VECTORS=1)."""
    got = run(name)
    path = VECTORS / f"{name}.json"
    if os.environ.get("LASTMILE_UPDATE_VECTORS") == "1":
        path.write_text(_dump(got))
    assert got == json.loads(path.read_text()), f"{name} differs from its golden JSON"
    return got


def _dump(obj: object) -> str:
    """JSON with every list of plain values (a flow) on one line, for reviewable diffs."""
    text = json.dumps(obj, indent=1)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text) + "\n"


def flows(results: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """All flows of a vector's results as (src, dst, octets, packets, start_ms, end_ms)."""
    return [tuple(f[:6]) for r in results for b in r.get("batches", ()) for f in b["flows"]]


def names() -> list[str]:
    return sorted(p.stem for p in VECTORS.glob("*.hex"))
