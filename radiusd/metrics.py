"""radiusd's Prometheus metrics (served by the daemon kit's /metrics listener)."""

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from daemons.metrics import REGISTRY

REQUESTS = Counter("lastmile_radiusd_requests_total", "Requests answered, by type, NAS and result.",
                   ["type", "nas", "result"], registry=REGISTRY)
LATENCY = Histogram("lastmile_radiusd_request_seconds", "Time from receipt to reply, by type.", ["type"],
                    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                    registry=REGISTRY)
DROPPED = Counter("lastmile_radiusd_dropped_total", "Requests dropped without a reply, by reason.", ["reason"],
                  registry=REGISTRY)
DUPLICATES = Counter("lastmile_radiusd_duplicates_total", "Retransmissions answered from the duplicate cache.",
                     registry=REGISTRY)
CACHE = Gauge("lastmile_radiusd_cache_entries", "Entries in memory, by cache.", ["cache"], registry=REGISTRY)
SPOOL_DEPTH = Gauge("lastmile_radiusd_spool_records", "Accounting records in the spool, waiting for PostgreSQL.",
                    registry=REGISTRY)
SPOOLED = Counter("lastmile_radiusd_spooled_total", "Accounting records acknowledged from the spool.",
                  registry=REGISTRY)
REPLAYED = Counter("lastmile_radiusd_replayed_total", "Spooled accounting records written to PostgreSQL.",
                   registry=REGISTRY)
ACCT_UNRECORDED = Counter("lastmile_radiusd_acct_unrecorded_total",
                          "Accounting requests not acknowledged because neither the database nor the spool "
                          "could take them (the NAS retransmits).", registry=REGISTRY)
ACCT_BATCH = Histogram("lastmile_radiusd_acct_batch_records", "Accounting records per transaction.",
                       buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000), registry=REGISTRY)
ACCT_COMMIT_SECONDS = Histogram("lastmile_radiusd_acct_commit_seconds", "Time to commit (or spool) a batch.",
                                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
                                registry=REGISTRY)
STALE_CLOSED = Counter("lastmile_radiusd_stale_sessions_closed_total",
                       "Sessions closed because their NAS stopped reporting them.", registry=REGISTRY)
POSTAUTH_DROPPED = Counter("lastmile_radiusd_postauth_dropped_total",
                           "Post-auth log lines dropped while PostgreSQL was away and the buffer was full.",
                           registry=REGISTRY)
COA = Counter("lastmile_radiusd_coa_total", "CoA and Disconnect requests sent to NAS, by action and result.",
              ["action", "result"], registry=REGISTRY)
LEASES = Counter("lastmile_radiusd_pool_addresses_total",
                 "Pool addresses given to logins, by where they came from: held (the service's reservation, "
                 "from memory), stock (this instance's stock), database (a lease call); unrecorded: stock "
                 "addresses whose hand-out could not be recorded in time.", ["source"], registry=REGISTRY)
DB_DEADLINE = Counter("lastmile_radiusd_db_deadline_total",
                      "Times PostgreSQL did not answer within db_deadline, by what was waiting: commit (the "
                      "batch was spooled and acknowledged; also a slow commit still running after 10 s), "
                      "simultaneous_use (the login was decided from memory), pool_lease (the login got an "
                      "address from memory or was dropped).", ["step"],
                      registry=REGISTRY)
SLOW_COMMITS = Counter("lastmile_radiusd_slow_commits_total",
                       "Accounting commits still running at db_deadline while PostgreSQL answered a probe: "
                       "waited for (up to 10 s, then spooled), not spooled at once.", registry=REGISTRY)
FROM_SNAPSHOT = Gauge("lastmile_radiusd_cache_from_snapshot",
                      "1 while the caches come from the snapshot on disk: radiusd started while PostgreSQL was "
                      "unreachable, and it has not answered since.", registry=REGISTRY)
REPLY_SKIPPED = Counter("lastmile_radiusd_reply_attributes_skipped_total",
                        "Tariff reply attributes left out of Access-Accepts because no dictionary defines them "
                        "or their value does not fit (counted once per tariff and version of its radius_reply).",
                        registry=REGISTRY)

# The hot path's counters, their label children looked up once: ``labels()`` costs more than ``inc()``.
_drops: dict[str, Any] = {}
_requests: dict[tuple[str, str, str], Any] = {}


def drop(reason: str) -> None:
    """A request dropped without a reply (``lastmile_radiusd_dropped_total{reason}``)."""
    counter = _drops.get(reason)
    if counter is None:
        counter = _drops[reason] = DROPPED.labels(reason)
    counter.inc()


def count(kind: str, nas: str, result: str, n: int = 1) -> None:
    """Requests answered (``lastmile_radiusd_requests_total{type,nas,result}``)."""
    key = (kind, nas, result)
    counter = _requests.get(key)
    if counter is None:
        counter = _requests[key] = REQUESTS.labels(*key)
    counter.inc(n)
