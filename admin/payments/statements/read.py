"""A statement file read in its format: CAMT.053 and MT940 by their content, CSV through its
bank's mapping. Pure: no I/O."""

from __future__ import annotations

from admin.payments.statements import camt, csvfile, mt940
from admin.payments.statements.model import Statement, StatementError, check_size, detect


def read(data: bytes, mapping: csvfile.Mapping | None) -> Statement:
    """The statement in ``data``; a CSV file needs ``mapping`` (StatementError without one)."""
    check_size(data)
    kind = detect(data)
    if kind == "camt053":
        return camt.parse(data)
    if kind == "mt940":
        return mt940.parse(data)
    if mapping is None:
        raise StatementError("this is neither CAMT.053 XML nor MT940: a CSV file is read through its bank's column "
                             "mapping (choose one, or make one from the file)")
    return csvfile.parse(data, mapping)
