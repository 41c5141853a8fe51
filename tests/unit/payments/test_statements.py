"""The statement parsers from bytes alone: CSV through a mapping (and the mapping screen's guess),
CAMT.053 (versions 02 and 08, hostile XML refused), MT940 (checked against the mt-940 library
on the same samples); every refusal names where; line hashes."""

from __future__ import annotations

import contextlib
import datetime as dt
import typing
from decimal import Decimal
from pathlib import Path

import mt940 as mt940_library
import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.finance import statements_schemas
from admin.payments.statements import camt, csvfile, model, mt940, read
from admin.payments.statements.model import Line, Statement, StatementError

D = Decimal
VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "statements"
DE = csvfile.Mapping({"date": (0,), "payer_name": (1,), "payer_account": (2,), "description": (3,), "amount": (4,),
                      "currency": (5,)}, ";", "utf-8", 3, True, "%d.%m.%Y", True)


def vector(name: str) -> bytes:
    return (VECTORS / name).read_bytes()


# -- CSV ------------------------------------------------------------------------------------------

def test_a_csv_file_reads_through_its_mapping() -> None:
    s = csvfile.parse(vector("bank_de.csv"), DE)
    assert [(line.booked_on, line.amount, line.payer_name) for line in s.lines] == [
        (dt.date(2026, 4, 2), D("31.00"), "Anna Berger"), (dt.date(2026, 4, 2), D("-12.00"), "Telco Supplies GmbH"),
        (dt.date(2026, 4, 3), D("1022.40"), "Müller, Jürgen"), (dt.date(2026, 4, 3), D("31.00"), "Anna Berger")]
    assert s.lines[0].payer_account == "AT611904300234573201"  # spaces out, as IBANs are compared
    assert s.lines[2].description == "Invoice 202604000017; April"  # a quoted delimiter stays in its cell


def test_the_mapping_screen_guesses_a_german_banks_file() -> None:
    guessed = csvfile.guess(vector("bank_de.csv"), "EUR")
    assert (guessed.delimiter, guessed.skip_lines, guessed.has_header, guessed.date_format, guessed.decimal_comma) == \
        (";", 3, True, "%d.%m.%Y", True)
    assert guessed.columns == DE.columns
    sample = csvfile.sample(vector("bank_de.csv"), guessed)
    assert sample.header[0] == "Buchungstag" and sample.rows[2][1] == "Müller, Jürgen" and not sample.error
    zahler = csvfile.guess(b"Buchungstag;Zahler;Verwendungszweck;Betrag\n02.12.2026;Anna Berger;Internet;31,00\n",
                           "EUR")
    assert zahler.columns.get("payer_name") == (1,)  # German banks' own word for the payer
    wrong = csvfile.sample(vector("bank_de.csv"), csvfile.Mapping({}, ",", "utf-8", 0, True))
    assert wrong.width >= 1 and not wrong.error  # a wrong delimiter reads, badly: the person sees it


def test_debit_and_credit_columns_and_written_amounts() -> None:
    data = b"Date,Text,Out,In\n2026-04-01,fee,\"1,234.50\",\n2026-04-02,pay,,20\n2026-04-03,x,(3.10),\n"
    m = csvfile.Mapping({"date": (0,), "description": (1,), "debit": (2,), "credit": (3,)}, ",", currency="CHF")
    assert [line.amount for line in csvfile.parse(data, m).lines] == [D("-1234.50"), D("20"), D("-3.10")]
    assert {line.currency for line in csvfile.parse(data, m).lines} == {"CHF"}
    for text, comma, value in (("1.234,50", True, "1234.50"), ("12,50-", True, "-12.50"), ("-0.5", False, "-0.5"),
                               ("+7", False, "7"), ("1 234,5", True, "1234.5"), ("1,000,000.01", False, "1000000.01")):
        assert csvfile.parse_amount(text, comma) == D(value), text
    for text, comma in (("1,23,4.5", False), ("12.5", True), ("abc", False), ("", False), ("1.2.3", False)):
        with pytest.raises(ValueError):
            csvfile.parse_amount(text, comma)


@pytest.mark.parametrize(("data", "mapping", "said"), [
    (b"Date;Amount\n2026-04-01;1\n2026-13-01;2\n", csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"),
     r"line 3, column 1 \('Date'\): '2026-13-01' is not a date written YYYY-MM-DD"),
    (b"Date;Amount\n2026-04-01;1,5\n", csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"),
     r"line 2, column 2 \('Amount'\): '1,5' is not an amount written with a decimal point"),
    (b"Date;Amount\n2026-04-01\n", csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"),
     r"line 2: 1 columns, the mapping reads column 2 \(is the delimiter right\?\)"),
    (b"Date;Amount\n2026-04-01;\"1\n", csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"), r"line 2: unexpected end"),
    ("Date;Amount\n2026-04-01;1\n".encode("utf-16-le"), csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"),
     r"line 1: the text has NUL characters, so it is not utf-8 \(UTF-16\?\)"),
    (b"Date;Amount\n2026-04-01;1\xff\n", csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"),
     r"line 2: this is not utf-8 text \(byte 0xff\)"),
    (b"Date;Amount;Cur\n2026-04-01;1;euro\n", csvfile.Mapping({"date": (0,), "amount": (1,), "currency": (2,)}, ";"),
     r"line 2, column 3 \('Cur'\): 'euro' is not a currency code"),
    (b"Date;Amount\n2026-04-01;1.00001\n", csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"),
     r"has more than 4 decimals"),
    (b"Date;Amount\n", csvfile.Mapping({"date": (0,), "amount": (1,)}, ";"), r"no lines to import"),
    (b"Date;Amount\n2026-04-01;1\n", csvfile.Mapping({"date": (0,), "amount": (0,)}, ";"), r"mapping is incomplete"),
])
def test_a_broken_csv_file_is_refused_naming_the_line(data: bytes, mapping: csvfile.Mapping, said: str) -> None:
    with pytest.raises(StatementError, match=said):
        csvfile.parse(data, mapping)


def test_a_mappings_problems_are_named_by_field() -> None:
    wrong = csvfile.problems(csvfile.Mapping({"date": (0,), "amount": (1,), "credit": (2,), "payer_name": (1,),
                                              "nonsense": (5,)}, ";;", "klingon", 200, True, "%H:%M", currency="eur"))
    assert set(wrong) == {"delimiter", "encoding", "skip_lines", "date_format", "columns", "payer_name", "amount",
                          "currency"}
    assert csvfile.problems(DE) == {}
    assert csvfile.human_date_format("%d.%m.%Y") == "DD.MM.YYYY"


def test_the_apis_encodings_are_the_readers() -> None:
    assert typing.get_args(statements_schemas.Encoding) == csvfile.ENCODINGS


# -- CAMT.053 ---------------------------------------------------------------------------------------

def test_camt053_v02_reads_booked_entries_and_splits_a_batch() -> None:
    s = camt.parse(vector("camt053_v02.xml"))
    assert (s.format, s.account) == ("camt053", "DE89370400440532013000")
    assert [(line.amount, line.payer_name, line.reference) for line in s.lines] == [
        (D("31.00"), "Anna Berger", "RF7400000001"), (D("-12.00"), "Telco Supplies GmbH", ""),
        (D("22.40"), "Jürgen Müller", "E2E-4711"), (D("31.00"), "Olga Nováková", "")]
    assert s.lines[0].payer_account == "AT611904300234573201" and s.lines[0].bank_ref == "B2604020001"
    assert s.lines[2].description == "Invoice 202604000017 April"  # two Ustrd, joined; the pending entry left out


def test_camt053_v08_reads_parties_under_pty_and_status_codes() -> None:
    [line] = camt.parse(vector("camt053_v08.xml")).lines
    assert line == Line(dt.date(2026, 5, 1), D("31.00"), "EUR", "ACME Networks s.r.o.", "CZ6508000000192000145399",
                        "RF3400000042", "May SEPA credit transfer", "TX-42")


@pytest.mark.parametrize("name", ["billion_laughs.xml", "external_entity.xml"])
def test_hostile_xml_is_refused_before_anything_is_expanded(name: str) -> None:
    with pytest.raises(StatementError, match=r"declares a DTD .* no entity in it is expanded"):
        camt.parse(vector(name))


@pytest.mark.parametrize(("text", "said"), [
    ("<Document><x>", r"not well-formed XML at line 1, column 14: no element found"),
    ('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.08"/>', r"a debit/credit notification \(camt.054\)"),
    ('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt/></Document>', r"no statement"),
    ("<html/>", r"<html>, not a CAMT.053 bank statement"),
])
def test_other_xml_is_refused_saying_what_it_is(text: str, said: str) -> None:
    with pytest.raises(StatementError, match=said):
        camt.parse(text.encode())


def _camt(entries: str, closing: str = "31.00") -> bytes:
    return (
        '<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt><Id>S9</Id>'
        '<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>'
        '<Bal><Tp><CdOrPrtry><Cd>OPBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">0.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></Bal>'
        f'<Bal><Tp><CdOrPrtry><Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{closing}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f'</Bal>{entries}</Stmt></BkToCstmrStmt></Document>').encode()


ENTRY = ('<Ntry><Amt Ccy="EUR">31.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-04-02</Dt>'
         '</BookgDt><AcctSvcrRef>R1</AcctSvcrRef></Ntry>')


@pytest.mark.parametrize(("entries", "closing", "said"), [
    (ENTRY, "40.00", r"Stmt 1 \(S9\): the opening balance 0.00 and the booked entries \(\+31.00\) do not make the "
                     r"closing balance 40.00: the file is incomplete"),
    (ENTRY.replace("CRDT", "CREDIT"), "31.00", r"Stmt 1 \(S9\), Ntry 1 \(R1\): CdtDbtInd 'CREDIT'"),
    (ENTRY.replace("<BookgDt><Dt>2026-04-02</Dt></BookgDt>", ""), "31.00", r"Ntry 1 \(R1\): no booking date"),
    (ENTRY.replace("31.00</Amt>", "31,00</Amt>"), "31.00", r"Ntry 1 \(R1\): Amt '31,00' is not an amount"),
    (ENTRY.replace('Ccy="EUR"', 'Ccy="E"'), "31.00", r"Amt/@Ccy: 'E' is not a currency code"),
])
def test_a_broken_camt_entry_is_refused_naming_it(entries: str, closing: str, said: str) -> None:
    with pytest.raises(StatementError, match=said):
        camt.parse(_camt(entries, closing))


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(model, "MAX_BYTES", 1000)
    with pytest.raises(StatementError, match="more than the 1,000 a statement may have"):
        camt.parse(_camt(ENTRY * 10, "310.00"))


# -- MT940 ----------------------------------------------------------------------------------------

def test_mt940_reads_the_three_shapes_of_information() -> None:
    s = mt940.parse(vector("mt940_bank.sta"))
    assert (s.format, s.account) == ("mt940", "37040044/0532013000")
    anna, telco, juergen, olga = s.lines
    assert (anna.amount, anna.payer_name, anna.payer_account, anna.reference, anna.description) == (
        D("31.00"), "Anna Berger", "AT611904300234573201", "RF7400000001", "Internet April")  # ?20 EREF+, SVWZ+
    assert (telco.amount, telco.payer_name, telco.bank_ref) == (D("-12.00"), "Telco Supplies GmbH", "B2604020002")
    assert (juergen.payer_name, juergen.payer_account, juergen.reference, juergen.description) == (
        "Juergen Mueller", "DE02120300000000202051", "E2E-4711", "Invoice 202604000017 April")  # /CNTP/, /REMI/
    assert (olga.description, olga.booked_on) == ("Internet April Olga Novakova", dt.date(2026, 4, 3))


def test_mt940_agrees_with_the_mt940_library_on_the_bank_sample() -> None:
    """Dates, amounts and the bank's references as the mt-940 library reads them (it is the
    reference here, not the parser: see mt940.py for why)."""
    ours = mt940.parse(vector("mt940_bank.sta")).lines
    theirs = mt940_library.models.Transactions()
    theirs.parse(vector("mt940_bank.sta").decode())
    assert [(t.data["entry_date"], t.data["amount"].amount, t.data["bank_reference"]) for t in theirs] == [
        (line.booked_on, line.amount, line.bank_ref) for line in ours]
    assert theirs.data["account_identification"] == "37040044/0532013000"


def _mt940(body: str) -> bytes:
    return (":20:REF\n:25:DE89370400440532013000\n:28C:1/1\n:60F:C260401EUR0,00\n" + body).encode()


@pytest.mark.parametrize(("body", "said"), [
    (":61:2604020402C31,00NTRFNONREF\n:62F:C260402EUR30,00\n",
     r"the statement of line 1: the opening balance 0.00 and the bookings \(\+31.00\) do not make the closing"),
    (":61:26040X0402C31,00NTRFNONREF\n:62F:C260402EUR31,00\n", r"line 5, :61: '26040X0402C31,00NTRFNONREF' does not"),
    (":61:2604020402C31,00NTRFNONREF\n:99:what\n:62F:C260402EUR31,00\n", r"line 6: :99: is not a field"),
    (":61:2604021302C31,00NTRFNONREF\n:62F:C260402EUR31,00\n", r"line 5, :61:: entry date '1302' is not a date"),
    (":61:2604020402C31.00NTRFNONREF\n:62F:C260402EUR31,00\n", r"line 5, :61: '2604020402C31.00NTRFNONREF'"),
    (":61:2604020402C31,00NTRFNONREF\n", r"has no closing balance \(:62F:\)"),
    (":62F:C260402USD0,00\n", r"its balances are in EUR and USD"),
])
def test_a_broken_mt940_file_is_refused_naming_the_line(body: str, said: str) -> None:
    with pytest.raises(StatementError, match=said):
        mt940.parse(_mt940(body))


@pytest.mark.parametrize("data", [b"garbage\nmore", b"hello :20: world", b":20:X\n:25:A\n:86:text\n"])
def test_what_is_no_mt940_is_refused_where_the_library_returns_nothing(data: bytes) -> None:
    theirs = mt940_library.models.Transactions()
    theirs.parse(data.decode())
    assert len(theirs) == 0  # nothing, and no word: why the library is not the parser
    with pytest.raises(StatementError):
        mt940.parse(data)


def test_a_file_whose_text_names_a_file_is_text_not_a_path(tmp_path: Path) -> None:
    """The library's parse() reads the file its input names; ours reads bytes only."""
    with pytest.raises(StatementError, match="outside any field"):
        mt940.parse(str(tmp_path).encode())


# -- the whole, and hashes --------------------------------------------------------------------------

def test_the_format_is_known_by_the_content() -> None:
    assert model.detect(vector("camt053_v02.xml")) == "camt053"
    assert model.detect(vector("mt940_bank.sta")) == "mt940"
    assert model.detect(vector("bank_de.csv")) == "csv"
    with pytest.raises(StatementError, match="column mapping"):
        read.read(vector("bank_de.csv"), None)
    with pytest.raises(StatementError, match="empty"):
        read.read(b"  \n", None)


def test_hashes_tell_equal_lines_of_one_file_apart_and_find_them_in_another() -> None:
    line = Line(dt.date(2026, 4, 2), D("10.00"), "EUR", "Anna", "AT61", "RF74", "x", "")
    first = model.line_hashes(Statement("csv", "DE89", (line, line)))
    assert len(set(first)) == 2
    overlap = model.line_hashes(Statement("csv", "DE89", (line, line, line)))
    assert overlap[:2] == first and overlap[2] not in first
    assert model.line_hashes(Statement("csv", "DE89", (line,)))[0] == first[0]
    # what the bank says of it decides, the free text does not; the account does
    other_text = Line(line.booked_on, D("10.0"), "EUR", "Anna", "AT61", "RF74", "another text", "")
    assert model.line_hashes(Statement("csv", "DE89", (other_text,)))[0] == first[0]
    assert model.line_hashes(Statement("csv", "AT99", (line,)))[0] != first[0]


@given(st.binary(max_size=400))
def test_any_bytes_are_read_or_refused_with_a_statement_error(data: bytes) -> None:
    for parse in (camt.parse, mt940.parse, lambda d: csvfile.parse(d, csvfile.Mapping({"date": (0,), "amount": (1,)}))):
        with contextlib.suppress(StatementError):
            parse(data)
