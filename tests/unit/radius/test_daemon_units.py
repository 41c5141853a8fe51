"""radiusd's pure pieces: duplicate cache, record merging, rate strings, MAC normalising, the spool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemons import workers
from radiusd.acct import SessionRecord, merge, merge_batch
from radiusd.cache import mikrotik_rate_limit, normalise_mac
from radiusd.dedup import IN_FLIGHT, DuplicateCache
from radiusd.spool import Spool, SpoolBusy

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_duplicate_cache_answers_retransmissions_once_answered() -> None:
    cache = DuplicateCache(ttl=10)
    key = ("10.0.0.1", 1234, 7)
    assert cache.check(key, b"A" * 16, now=0) is None  # new
    assert cache.check(key, b"A" * 16, now=1) == IN_FLIGHT  # retransmission while in flight: drop
    cache.answered(key, b"A" * 16, b"reply", now=1)
    assert cache.check(key, b"A" * 16, now=2) == b"reply"
    assert cache.check(key, b"B" * 16, now=3) is None  # same id, new authenticator: a new request
    assert cache.check(key, b"B" * 16, now=14) is None  # expired: handled again
    cache.forget(key, b"B" * 16)
    assert cache.check(key, b"B" * 16, now=15) is None


def test_duplicate_cache_expires_in_order() -> None:
    cache = DuplicateCache(ttl=5)
    for i in range(100):
        cache.check(("h", i, 0), b"x", now=i * 0.1)
    cache.check(("h", 1000, 0), b"x", now=12.0)
    assert len(cache) == 100 - 71 + 1  # entries made at or before 7.0 s (expiring by 12.0) are gone


def rec(status: int, octets: int, seconds: int, stop: bool = False, ip: str | None = None) -> SessionRecord:
    when = (T0 + timedelta(seconds=seconds)).timestamp()
    return SessionRecord("u1", status, when, T0.timestamp(), "ann", "s", 1, 5, "127.0.0.1", None, None, None, ip, None,
                         None, seconds, octets, octets * 2, octets // 100, octets // 50, when if stop else None,
                         "User-Request" if stop else None)


records = st.lists(
    st.builds(lambda s, o, t, ip: rec(s, o, t, stop=s == 2, ip=ip), st.sampled_from([1, 2, 3]),
              st.integers(0, 2**40), st.integers(0, 10**6), st.sampled_from([None, "100.64.0.1"])),
    min_size=1, max_size=8)


@given(records, st.randoms())
def test_merging_is_order_independent_and_monotonic(rs: list[SessionRecord], rnd: object) -> None:
    shuffled = list(rs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = merge_batch(rs), merge_batch(shuffled)
    assert len(a) == 1 and a == b
    merged = a[0]
    assert merged.input_octets == max(r.input_octets for r in rs)
    assert merged.session_time == max(r.session_time for r in rs)
    assert (merged.stopped_at is not None) == any(r.status == 2 for r in rs)


def test_merge_keeps_the_first_stop_time() -> None:
    first_stop = rec(2, 10, 100, stop=True)
    late_stop = rec(2, 20, 200, stop=True)
    assert merge(first_stop, late_stop).stopped_at == first_stop.stopped_at
    assert merge(late_stop, first_stop).stopped_at == first_stop.stopped_at


def tariff(**over: object) -> dict[str, object]:
    row: dict[str, object] = {"download_kbps": 50000, "upload_kbps": 10000, "burst_download_kbps": None,
                              "burst_upload_kbps": None, "burst_threshold_download_kbps": None,
                              "burst_threshold_upload_kbps": None, "burst_time_s": None, "priority": 8}
    row.update(over)
    return row


def test_mikrotik_rate_limit() -> None:
    assert mikrotik_rate_limit(tariff()) == "10M/50M"
    assert mikrotik_rate_limit(tariff(download_kbps=512, upload_kbps=256)) == "256k/512k"
    burst = tariff(burst_download_kbps=100000, burst_upload_kbps=20000, burst_threshold_download_kbps=40000,
                   burst_threshold_upload_kbps=8000, burst_time_s=16, priority=5)
    assert mikrotik_rate_limit(burst) == "10M/50M 20M/100M 8M/40M 16/16 5"


def test_normalise_mac() -> None:
    for text in ("02:AB:cd:00:11:22", "02-ab-cd-00-11-22", "02ab.cd00.1122", "02abcd001122"):
        assert normalise_mac(text) == "02abcd001122"
    assert normalise_mac("not a mac") is None
    assert normalise_mac(None) is None


def test_spool_round_trip_torn_tail_and_consume(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    first, second = rec(1, 1, 0), rec(2, 5, 60, stop=True)
    spool.append([first, second])
    spool.append([rec(3, 3, 30)])
    assert spool.depth == 3
    with spool.path.open("ab") as f:
        f.write(b'{"t":"s","unique_id":"torn')  # a crash mid-append: never acknowledged
    again = Spool(tmp_path)
    assert again.depth == 3
    entries, offset = again.read(2)
    assert entries == [first, second]
    again.consume(offset, 2)
    assert again.depth == 1
    assert Spool(tmp_path).read(10)[0] == [rec(3, 3, 30)]  # the read offset survives a restart
    rest, end = again.read(10)
    again.consume(end, len(rest))
    assert again.depth == 0 and spool.path.stat().st_size == 0 and not again.offset_path.exists()


def test_spools_of_another_layout_are_adopted_once_and_live_ones_never(tmp_path: Path) -> None:
    base = tmp_path / "radiusd"
    for name, n in (("worker-1", 3), ("worker-2", 2), ("worker-3", 1)):
        Spool(base / name).append([rec(1, i, 0) for i in range(n)])
    (base / "worker-4").mkdir()  # a directory without a spool
    # Two workers now: worker-3 is nobody's; worker-1 and worker-2 are the live ones.
    assert Spool.orphans(base, workers.layout(base, 2)) == [base / "worker-3"]
    # One process now (the base itself): every worker-N spool is an orphan.
    assert Spool.orphans(base, workers.layout(base, 1)) == [base / "worker-1", base / "worker-2", base / "worker-3"]

    own = Spool(base)
    own.claim()
    live = Spool(base / "worker-2")
    live.claim()  # a process still running holds it: not adopted
    with pytest.raises(SpoolBusy):
        Spool(base / "worker-2").claim()
    assert own.adopt(Spool.orphans(base, workers.layout(base, 1))) == 3 + 1
    assert own.depth == 4 and len(own.read(10)[0]) == 4
    assert not (base / "worker-1" / "accounting.spool").exists()
    assert (base / "worker-2" / "accounting.spool").stat().st_size > 0
    assert Spool.orphans(base, workers.layout(base, 1)) == [base / "worker-2"]
