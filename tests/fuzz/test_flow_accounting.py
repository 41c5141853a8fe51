"""Every data set that arrives is decoded, dropped with a reason, or still held (issue 8).

Random sequences of templates, data before and after its template, several exporters and
domains (more than the decoder keeps), expiry on the timer and time passing: the decoder's
own counts must add up, and so must what the test sent against what came out.  Each data
set carries its own number in every record's octets, so the test knows which sets came out
and that none came out in part.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowcollector.codec import Decoded, Decoder, DecoderSettings, Report
from tests.profiles import examples
from tests.unit.flow.flowbuild import data_set, ipfix, record, template_set, v9

FLOW = [(8, 4), (12, 4), (1, 4), (2, 4)]
NOT_FLOW = [(8, 4), (12, 4)]  # no octets: its data is counted as not_flow
NOW = 1_790_000_000.0
SET_REASONS = ("no_template", "bad_record", "not_flow")

STEP = st.one_of(
    st.tuples(st.just("data"), st.integers(0, 4), st.integers(256, 258), st.integers(1, 3)),
    st.tuples(st.just("template"), st.integers(0, 4), st.integers(256, 258), st.booleans()),
    st.tuples(st.just("short"), st.integers(0, 4), st.integers(256, 258), st.just(0)),
    st.tuples(st.just("expire"), st.just(0), st.just(0), st.just(0)),
    st.tuples(st.just("wait"), st.just(0), st.just(0), st.integers(1, 90)),
)


class Books:
    """The decoder's counts, summed over every result and report."""

    def __init__(self) -> None:
        self.data_sets = self.decoded = self.dropped = 0
        self.out: Counter[int] = Counter()  # set number -> records that came out

    def report(self, r: Report) -> None:
        self.dropped += sum(r.dropped.get(k, 0) for k in SET_REASONS) + sum(r.dropped_held.values())

    def result(self, r: Decoded) -> None:
        self.report(r)
        self.data_sets += r.data_sets
        self.decoded += r.sets_decoded
        for batch in r.batches:
            for f in batch.flows():
                self.out[f.octets] += 1


@settings(max_examples=examples(250), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(STEP, max_size=60), version=st.sampled_from([9, 10]))
def test_received_is_decoded_plus_dropped(steps: list[tuple[str, int, int, Any]], version: int) -> None:
    dec = Decoder(DecoderSettings(max_domains=3, hold_max_sets=6, hold_seconds=60, template_timeout=120))
    books = Books()
    now = NOW
    seq: Counter[tuple[str, int]] = Counter()
    sent: dict[int, int] = {}  # set number -> records in it
    for kind, who, tid, arg in steps:
        if kind == "wait":
            now += arg
            continue
        if kind == "expire":
            books.report(dec.expire(now))
            continue
        exporter, domain = f"192.0.2.{who % 3}", who // 3
        if kind == "template":
            body = template_set(version, [(tid, FLOW if arg else NOT_FLOW)])
        else:
            number = len(sent) + 1
            # "short": a record cut short (bad_record once its template is known)
            records = [record(FLOW, {8: "10.0.0.1", 12: "10.0.0.2", 1: number, 2: 1})] * max(arg, 1)
            if kind == "short":
                records = [records[0][:7]]
            body = data_set(tid, records, pad=False)
            sent[number] = arg
        key = (exporter, domain)
        dg = (v9([body], uptime=10_000_000, secs=int(now), seq=seq[key], source_id=domain) if version == 9
              else ipfix([body], export=int(now), seq=seq[key], domain=domain))
        seq[key] += 1
        result = dec.decode(dg, exporter, now)
        books.result(result)
        held = dec.gauges()["held_sets"]
        assert books.data_sets == books.decoded + books.dropped + held
    assert books.data_sets == len(sent)
    # Whole sets come out, or none of them; what did not come out is dropped or held.
    assert all(sent.get(number) == n for number, n in books.out.items())
    books.report(dec.expire(now + 3600))
    assert dec.gauges()["held_sets"] == 0
    assert books.data_sets == books.decoded + books.dropped
