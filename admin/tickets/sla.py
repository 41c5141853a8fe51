"""The SLA report's buckets: how long tickets waited for our first response. Pure.

A ticket's time is the seconds from its creation to the first staff reply (internal notes and
system messages are no response), or None while there is none. :func:`bucket` gives its index
into :data:`LABELS`; each bucket holds its upper bound (exactly 3 h is "≤ 3 h", 3 h and one
second is "3–6 h"), a negative time (clocks apart) counts as "≤ 3 h", no response is the last.

The report counts in the database, so the same buckets exist as SQL: :data:`BUCKET_SQL`, an
expression with a ``{x}`` placeholder for the seconds (``extract(epoch FROM first_response_at -
created_at)``, NULL without a response, not rounded). PostgreSQL's ``width_bucket(x, ARRAY[...])``
does **not** agree: its buckets hold their lower bound (it counts the bounds <= x, so exactly 3 h
would fall in "3–6 h"). :func:`bucket` and the CASE expression both take the first bound the
time is within (``x <= bound``), else "> 24 h": that is the number of bounds strictly below x, and
NaN (within no bound, as PostgreSQL orders it above every number) is "> 24 h"; an interval's
epoch is never NaN anyway.
"""

from __future__ import annotations

from collections.abc import Iterable

#: The buckets' upper bounds, in hours.
BUCKET_HOURS = (3, 6, 9, 12, 24)
LABELS = ("≤ 3 h", "3–6 h", "6–9 h", "9–12 h", "12–24 h", "> 24 h", "no response yet")
#: The index of "no response yet".
NO_RESPONSE = len(LABELS) - 1


def bounds_seconds() -> list[int]:
    """The buckets' upper bounds in seconds: [10800, 21600, 32400, 43200, 86400]."""
    return [hours * 3600 for hours in BUCKET_HOURS]


def bucket(seconds: float | None) -> int:
    """The index into :data:`LABELS` of a first response after ``seconds`` (None: none yet)."""
    if seconds is None:
        return NO_RESPONSE
    # as BUCKET_SQL reads: the first bound the time is within (NaN is within none)
    return next((index for index, bound in enumerate(bounds_seconds()) if seconds <= bound), len(BUCKET_HOURS))


def counts(times: Iterable[float | None]) -> list[int]:
    """How many of ``times`` fall in each bucket, in the order of :data:`LABELS`."""
    result = [0] * len(LABELS)
    for seconds in times:
        result[bucket(seconds)] += 1
    return result


def _bucket_sql() -> str:
    whens = " ".join(f"WHEN {{x}} <= {bound} THEN {index}" for index, bound in enumerate(bounds_seconds()))
    return f"CASE WHEN {{x}} IS NULL THEN {NO_RESPONSE} {whens} ELSE {len(BUCKET_HOURS)} END"


#: The bucket of ``{x}`` (seconds, NULL for no response) in SQL, agreeing with :func:`bucket`:
#: ``BUCKET_SQL.format(x="extract(epoch FROM t.first_response_at - t.created_at)")``. Put a
#: column or expression in, never a value (values go as parameters).
BUCKET_SQL = _bucket_sql()
