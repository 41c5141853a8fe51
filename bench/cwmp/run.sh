#!/usr/bin/env bash
# CWMP benchmark: PERIODIC Inform sessions/s and the CPU ms per session of `lastmile acs` and
# of a do-nothing stub, and a BOOTSTRAP with a PPPoE + Wi-Fi preset, from a load client in a
# second process (see bench.py's docstring). It holds /tmp/bench.lock while the ACS runs.
#
#   bench/cwmp/run.sh             # ~5 minutes: stub and ACS, TR-098 and TR-181, 30 s each
#   bench/cwmp/run.sh --record    # and write the "ACS (CWMP)" section of docs/benchmarks.md
#
# BENCH_SECONDS, BENCH_CPES (connections), BENCH_DEVICES (distinct serials) change the run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ]; then
  echo "bench/cwmp: no .venv here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"
PYTHONPATH="$ROOT:$ROOT/bench/radius" run_driver cwmp "$PYTHON" "$HERE/bench.py" "$@"
