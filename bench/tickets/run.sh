#!/usr/bin/env bash
# tickets benchmark: e-mail to ticket through a real IMAP server (issue 16's "within 5 s of
# arrival with IDLE"). See bench.py's docstring.
#
#   bench/tickets/run.sh                  # 300 live mails, a backlog of 3,000 (~2 minutes)
#
# Needs dovecot (apt-get install dovecot-imapd) and root. Results: a table on stdout and
# results.json in the work directory. It holds /tmp/bench.lock.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PYTHON="$ROOT/.venv/bin/python"

if [ ! -x "$PYTHON" ]; then
  echo "bench/tickets: no .venv here; run 'make install' first" >&2
  exit 2
fi

cd "$ROOT"
. "$ROOT/bench/driver.sh"
PYTHONPATH="$ROOT:$ROOT/bench/radius" run_driver tickets "$PYTHON" "$HERE/bench.py" "$@"
