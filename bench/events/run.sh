#!/usr/bin/env bash
# MQTT event throughput (issue #8): daemons.events.EventPublisher to the embedded amqtt broker
# and to Debian's mosquitto (when installed: apt-get install -y mosquitto), on 127.0.0.1.
# See bench.py's docstring for what is measured.
#
#   bench/events/run.sh                          two measurements of 10 s per broker (~1 minute)
#   BENCH_SECONDS=3 bench/events/run.sh          quick
#   BENCH_BROKERS=mosquitto BENCH_RATE=30000 bench/events/run.sh
#
# Results: a Markdown table on stdout and in bench/results/events-<date>.md. The brokers it
# starts are stopped when it ends, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/../.."
python=.venv/bin/python
if [[ ! -x $python ]]; then
  echo "events bench: no .venv here; run 'make install' first" >&2
  exit 2
fi
exec "$python" bench/events/bench.py "$@"
