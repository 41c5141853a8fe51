#!/usr/bin/env bash
# NetFlow v5/v9/IPFIX benchmark (issue #4): lastmile's flowcollector against pmacct's nfacctd,
# on a private embedded PostgreSQL with 50,000 demo customers. See bench.py's docstring.
#
#   bench/netflow/run.sh                                 full run (about 20 minutes)
#   BENCH_QUICK=1 bench/netflow/run.sh                   quick run (5 s steps, no 60 s hold)
#   BENCH_COLLECTORS=nfacctd BENCH_VERSIONS=9 bench/netflow/run.sh
#
# Results: bench/results/netflow-<date>[-quick].{csv,md}. Everything it starts is stopped on
# exit, failure or Ctrl-C; BENCH_KEEP=1 keeps the work directory (logs, configs, per-step files).
set -euo pipefail
cd "$(dirname "$0")/../.."
python=.venv/bin/python
if [[ ! -x $python ]]; then
  echo "netflow bench: no .venv here; run 'make install' first" >&2
  exit 2
fi
if ! command -v nfacctd >/dev/null; then
  echo "netflow bench: nfacctd (pmacct) is not installed" >&2
  exit 2
fi
# The collectors ask for 64 MB receive buffers; the kernel caps SO_RCVBUF at rmem_max.
if (($(sysctl -n net.core.rmem_max) < 67108864)); then
  sysctl -qw net.core.rmem_max=67108864 || echo "netflow bench: could not raise net.core.rmem_max" >&2
fi

work=$(mktemp -d /tmp/lastmile-bench-netflow.XXXXXX)
export BENCH_WORKDIR=$work
driver=""
finish() {
  local status=$?
  trap - EXIT INT TERM
  if [[ -n $driver ]] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    wait "$driver" 2>/dev/null || true
  fi
  "$python" bench/netflow/bench.py --cleanup "$work" || true # a driver killed outright leaves these
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then
    echo "netflow bench: work directory kept: $work"
  else
    rm -rf "$work"
  fi
  exit "$status"
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$python" bench/netflow/bench.py "$@" &
driver=$!
wait "$driver"
