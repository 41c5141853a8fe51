"""SEPA direct debit without I/O: what an operator types is checked (IBAN with schwifty, BIC,
creditor identifier, mandate reference), collection dates keep to the TARGET2 calendar, every
pain.008 file made is valid against the official ISO 20022 XSD (sepaxml's copy), and the bank's
answers (pain.002, camt.054) are read back, hostile or broken XML refused with a clear message."""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
from decimal import Decimal
from importlib import resources

import pytest
import xmlschema
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from admin.payments import direct_debit as dd

D = Decimal
CREDITOR = dd.Creditor("DE98ZZZ09999999999", "Lastmile Netz GmbH", "DE89370400440532013000", "COBADEFFXXX")
NOW = dt.datetime(2026, 4, 1, 9, 30, tzinfo=dt.UTC)


@functools.cache
def pain008_schema() -> xmlschema.XMLSchema:
    """The official pain.008.001.02 XSD, as the sepaxml package ships it."""
    with resources.as_file(resources.files("sepaxml") / "schemas" / "pain.008.001.02.xsd") as path:
        return xmlschema.XMLSchema(str(path))


def assert_valid_pain008(xml: bytes | str) -> None:
    pain008_schema().validate(xml.decode() if isinstance(xml, bytes) else xml)


def iban_of(country: str, bban: str) -> str:
    """An IBAN with correct check digits (ISO 7064 MOD 97-10)."""
    n = int("".join(str(int(ch, 36)) for ch in bban + country + "00"))
    return f"{country}{98 - n % 97:02d}{bban}"


def debit(i: int, *, sequence: str = "RCUR", amount: str = "29.90", bic: str = "COBADEFFXXX") -> dd.Debit:
    return dd.Debit(f"LMDD1-{i}", D(amount), sequence, f"LM-C{i:05d}-1", dt.date(2025, 12, 1), f"Kundin Nr. {i}",
                    "DE89370400440532013000", bic, f"Invoice 2026040000{i:02d}")


# -- what operators type ----------------------------------------------------------------------------

def test_an_iban_is_taken_compact_with_its_bank_and_bic() -> None:
    found = dd.check_iban(" de89 3704 0044 0532 0130 00 ")
    assert found == dd.Account("DE89370400440532013000", "COBADEFFXXX", "Commerzbank")
    assert dd.check_iban("NL91ABNA0417164300").bic == "ABNANL2A"


@pytest.mark.parametrize(("iban", "said"), [
    ("DE89370400440532013001", "check digits (89) do not match"),
    ("DE98370400440532013000", "check digits (98) do not match"),
    ("XX89370400440532013000", "'XX' is not the code of a country"),
    (iban_of("DE", "123456780532013000"), "no bank of DE has the bank code 12345678"),
    ("BR1800360305000010009795493C1", "outside the SEPA zone"),
    ("DE8937040044053201300", "another length than 21"),
    ("", "the IBAN is required"),
    ("DE89 3704!0044", "not a valid IBAN"),
])
def test_a_wrong_iban_is_refused_saying_what_is_wrong(iban: str, said: str) -> None:
    with pytest.raises(dd.DirectDebitError, match=said.replace("(", r"\(").replace(")", r"\)")):
        dd.check_iban(iban)


def test_an_unknown_bank_code_where_schwifty_knows_only_some_banks_is_taken() -> None:
    found = dd.check_iban(iban_of("IE", "ZZZZ99999912345678"))  # Ireland: schwifty lists some banks
    assert found == dd.Account("IE25ZZZZ99999912345678", "", "")


@given(st.integers(min_value=0, max_value=10**10 - 1), st.data())
def test_one_mistyped_digit_of_an_iban_is_caught(account: int, data: st.DataObject) -> None:
    iban = iban_of("DE", f"37040044{account:010d}")
    try:
        dd.check_iban(iban)
    except dd.DirectDebitError as e:
        assert "account number's own check digit" in str(e)  # Commerzbank's national check digit
        return
    i = data.draw(st.integers(min_value=4, max_value=len(iban) - 1))
    wrong = data.draw(st.sampled_from([d for d in "0123456789" if d != iban[i]]))
    with pytest.raises(dd.DirectDebitError):
        dd.check_iban(iban[:i] + wrong + iban[i + 1:])


def test_a_bic_is_checked_and_compacted() -> None:
    assert dd.check_bic(" cobadeff xxx") == "COBADEFFXXX" and dd.check_bic("cobadeff") == "COBADEFF"
    assert dd.check_bic("") == ""
    for wrong in ("COBADEF", "12345678", "COBAXXFF"):
        with pytest.raises(dd.DirectDebitError, match="not a valid BIC"):
            dd.check_bic(wrong)


def test_the_creditor_identifier_has_its_check_digits_verified() -> None:
    assert dd.check_creditor_id("de98 zzz 09999999999") == "DE98ZZZ09999999999"
    assert dd.check_creditor_id("AT61ZZZ01234567890") == "AT61ZZZ01234567890"
    with pytest.raises(dd.DirectDebitError, match=r"check digits \(97\) do not match"):
        dd.check_creditor_id("DE97ZZZ09999999999")
    with pytest.raises(dd.DirectDebitError, match="a country code, two check digits"):
        dd.check_creditor_id("ZZZ09999999999")


@given(st.sampled_from(["DE", "AT", "FR", "NL", "IT"]), st.text("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3,
                                                                  max_size=20), st.data())
def test_a_creditor_identifier_with_one_character_changed_is_refused(country: str, national: str,
                                                                    data: st.DataObject) -> None:
    n = int("".join(str(int(ch, 36)) for ch in national + country + "00"))
    cid = f"{country}{98 - n % 97:02d}ZZZ{national}"
    assert dd.check_creditor_id(cid) == cid
    digits = [i for i in range(7, len(cid)) if cid[i].isdigit()]  # MOD 97-10 catches any one digit changed
    assume(digits)
    i = data.draw(st.sampled_from(digits))
    other = data.draw(st.sampled_from([c for c in "0123456789" if c != cid[i]]))
    with pytest.raises(dd.DirectDebitError):
        dd.check_creditor_id(cid[:i] + other + cid[i + 1:])


def test_a_mandate_reference_keeps_to_the_epc_identifier_rules() -> None:
    assert dd.check_reference(" LM-C00001/2026 ") == "LM-C00001/2026"
    for wrong in ("", "with space", "Müller-1", "/LM1", "LM1/", "LM//1", "x" * 36):
        with pytest.raises(dd.DirectDebitError):
            dd.check_reference(wrong)


def test_names_are_written_in_the_epc_latin_subset() -> None:
    assert dd.latin("Müller & Söhne GmbH — Straße Ørsted", 70) == "Muller + Sohne GmbH Strasse Orsted"
    assert dd.latin("Łódź «Café»", 70) == "Lodz Cafe"
    assert dd.latin("x" * 80, 70) == "x" * 70


# -- the calendar ------------------------------------------------------------------------------------

def test_collection_dates_are_target2_days_the_lead_days_ahead() -> None:
    assert not dd.is_target_day(dt.date(2026, 4, 3)) and not dd.is_target_day(dt.date(2026, 4, 6))  # Easter
    assert not dd.is_target_day(dt.date(2026, 4, 4)) and dd.is_target_day(dt.date(2026, 4, 7))
    assert not dd.is_target_day(dt.date(2026, 5, 1)) and not dd.is_target_day(dt.date(2026, 12, 26))
    # Thursday before Easter, two lead days: Good Friday and Easter Monday do not count
    assert dd.earliest_collection(dt.date(2026, 4, 2), 2) == dt.date(2026, 4, 8)
    assert dd.earliest_collection(dt.date(2026, 4, 10), 1) == dt.date(2026, 4, 13)
    dd.check_collection_date(dt.date(2026, 4, 8), dt.date(2026, 4, 2), 2)
    with pytest.raises(dd.DirectDebitError, match="too soon: with 2 lead days the first collection date is 2026-04-08"):
        dd.check_collection_date(dt.date(2026, 4, 7), dt.date(2026, 4, 2), 2)
    with pytest.raises(dd.DirectDebitError, match=r"a TARGET2 holiday .* the next is 2026-05-04"):
        dd.check_collection_date(dt.date(2026, 5, 1), dt.date(2026, 4, 2), 2)
    with pytest.raises(dd.DirectDebitError, match="is a weekend"):
        dd.check_collection_date(dt.date(2026, 4, 11), dt.date(2026, 4, 2), 2)
    with pytest.raises(dd.DirectDebitError, match="more than a year ahead"):
        dd.check_collection_date(dt.date(9999, 12, 31), dt.date(2026, 4, 2), 2)


def test_a_mandate_is_first_collected_frst_then_rcur() -> None:
    assert (dd.sequence(False), dd.sequence(True)) == ("FRST", "RCUR")


# -- the pain.008 file -------------------------------------------------------------------------------

def test_a_batch_is_one_valid_file_with_a_part_per_sequence_type() -> None:
    debits = [debit(1, sequence="FRST"), debit(2), debit(3, amount="0.01", bic=""), debit(4, sequence="FRST",
                                                                                          amount="1234.56")]
    xml = dd.pain008(CREDITOR, "LMDD20260401093000-1", NOW, dt.date(2026, 4, 8), debits)
    assert_valid_pain008(xml)
    root = dd.parse(xml)
    ns = {"p": dd.PAIN_008}
    assert root.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:MsgId", namespaces=ns) == "LMDD20260401093000-1"
    assert root.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:CreDtTm", namespaces=ns) == "2026-04-01T09:30:00Z"
    assert root.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:NbOfTxs", namespaces=ns) == "4"
    assert root.findtext("p:CstmrDrctDbtInitn/p:GrpHdr/p:CtrlSum", namespaces=ns) == "1294.37"
    parts = root.findall("p:CstmrDrctDbtInitn/p:PmtInf", ns)
    assert [(p.findtext("p:PmtInfId", namespaces=ns), p.findtext("p:PmtTpInf/p:SeqTp", namespaces=ns),
             p.findtext("p:NbOfTxs", namespaces=ns), p.findtext("p:CtrlSum", namespaces=ns)) for p in parts] == [
        ("LMDD20260401093000-1/FRST", "FRST", "2", "1264.46"), ("LMDD20260401093000-1/RCUR", "RCUR", "2", "29.91")]
    rcur = parts[1].findall("p:DrctDbtTxInf", ns)
    assert [t.findtext("p:PmtId/p:EndToEndId", namespaces=ns) for t in rcur] == ["LMDD1-2", "LMDD1-3"]
    assert rcur[1].findtext("p:DbtrAgt/p:FinInstnId/p:Othr/p:Id", namespaces=ns) == "NOTPROVIDED"
    assert rcur[0].findtext("p:DrctDbtTx/p:MndtRltdInf/p:MndtId", namespaces=ns) == "LM-C00002-1"
    assert parts[0].findtext("p:CdtrSchmeId/p:Id/p:PrvtId/p:Othr/p:Id", namespaces=ns) == "DE98ZZZ09999999999"
    assert parts[0].findtext("p:PmtTpInf/p:LclInstrm/p:Cd", namespaces=ns) == "CORE"
    assert parts[0].findtext("p:ReqdColltnDt", namespaces=ns) == "2026-04-08"


def test_an_iban_only_creditor_of_the_b2b_scheme_is_valid_too() -> None:
    creditor = dd.Creditor("DE98ZZZ09999999999", "B2B & Co", "DE89370400440532013000", "", "B2B")
    assert_valid_pain008(dd.pain008(creditor, "M-1", NOW, dt.date(2026, 4, 8), [debit(1)]))


def test_a_batch_that_cannot_be_a_file_is_refused() -> None:
    for debits, said in (([], "one collection at least"), ([debit(1), debit(1)], "in the batch twice"),
                         ([debit(1, amount="0.001")], "no amount of euro cents"),
                         ([debit(1, amount="0")], "no amount of euro cents"),
                         ([dd.Debit("E", D("1"), "OOFF", "M", dt.date(2026, 1, 1), "x", "DE89370400440532013000", "",
                                    "")], "not FRST nor RCUR")):
        with pytest.raises(dd.DirectDebitError, match=said):
            dd.pain008(CREDITOR, "M-1", NOW, dt.date(2026, 4, 8), debits)
    with pytest.raises(dd.DirectDebitError, match="message id"):
        dd.pain008(CREDITOR, "M 1", NOW, dt.date(2026, 4, 8), [debit(1)])


_NAMES = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=90)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(dd.SEQUENCES), st.integers(min_value=1, max_value=99_999_999_999),
                          _NAMES, _NAMES, st.booleans()), min_size=1, max_size=12),
       _NAMES.filter(lambda n: dd.latin(n, 70) != ""))
def test_every_file_made_is_valid_against_the_official_xsd(rows: list[tuple[str, int, str, str, bool]],
                                                            creditor_name: str) -> None:
    debits = [dd.Debit(f"LMDD7-{i}", D(cents) / 100, seq, f"M-{i}", dt.date(2026, 1, 1), name,
                       "DE89370400440532013000", "COBADEFFXXX" if bic else "", text)
              for i, (seq, cents, name, text, bic) in enumerate(rows)]
    creditor = dd.Creditor("DE98ZZZ09999999999", creditor_name, "DE89370400440532013000", "COBADEFF")
    xml = dd.pain008(creditor, "LMDD7", NOW, dt.date(2026, 4, 8), debits)
    assert_valid_pain008(xml)
    total = sum((d.amount for d in debits), D(0))
    assert f"<CtrlSum>{dd.amount_text(total)}</CtrlSum>".encode() in xml


# -- the bank's answers ------------------------------------------------------------------------------

def pain002(body: str, group_status: str = "PART", group_reason: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.03">
  <CstmrPmtStsRpt>
    <GrpHdr><MsgId>BANK-STS-1</MsgId><CreDtTm>2026-04-09T07:00:00</CreDtTm></GrpHdr>
    <OrgnlGrpInfAndSts><OrgnlMsgId>LMDD-1</OrgnlMsgId><OrgnlMsgNmId>pain.008.001.02</OrgnlMsgNmId>
      <GrpSts>{group_status}</GrpSts>{group_reason}</OrgnlGrpInfAndSts>
    {body}
  </CstmrPmtStsRpt>
</Document>""".encode()


def tx_status(end_to_end: str, status: str, code: str, tag: str = "Cd") -> str:
    return (f"<TxInfAndSts><StsId>S-{end_to_end}</StsId><OrgnlEndToEndId>{end_to_end}</OrgnlEndToEndId>"
            f"<TxSts>{status}</TxSts><StsRsnInf><Rsn><{tag}>{code}</{tag}></Rsn><AddtlInf>as the bank says</AddtlInf>"
            "</StsRsnInf></TxInfAndSts>")


def test_a_pain002_names_each_rejected_collection_with_its_reason() -> None:
    report = dd.read_report(pain002(
        "<OrgnlPmtInfAndSts><OrgnlPmtInfId>LMDD-1/RCUR</OrgnlPmtInfId>"
        + tx_status("LMDD1-7", "RJCT", "AC04") + tx_status("LMDD1-8", "ACCP", "")
        + tx_status("LMDD1-9", "RJCT", "XY99", "Prtry") + "</OrgnlPmtInfAndSts>"))
    assert (report.kind, report.message_id, report.ignored) == ("pain.002", "BANK-STS-1", 1)
    assert [(o.message_id, o.payment_info_id, o.end_to_end_id, o.status, o.reason) for o in report.outcomes] == [
        ("LMDD-1", "LMDD-1/RCUR", "LMDD1-7", "rejected", "AC04"),
        ("LMDD-1", "LMDD-1/RCUR", "LMDD1-9", "rejected", "XY99")]
    assert report.outcomes[0].reason_text == "AC04 — account closed"
    assert report.outcomes[1].reason_text == "XY99 — as the bank says"


def test_a_pain002_rejecting_a_part_or_the_whole_message_says_so() -> None:
    part = dd.read_report(pain002("<OrgnlPmtInfAndSts><OrgnlPmtInfId>LMDD-1/FRST</OrgnlPmtInfId><PmtInfSts>RJCT"
                                  "</PmtInfSts><StsRsnInf><Rsn><Cd>FF01</Cd></Rsn></StsRsnInf></OrgnlPmtInfAndSts>"))
    assert [(o.payment_info_id, o.end_to_end_id, o.reason) for o in part.outcomes] == [("LMDD-1/FRST", None, "FF01")]
    whole = dd.read_report(pain002("", "RJCT", "<StsRsnInf><Rsn><Cd>BE05</Cd></Rsn></StsRsnInf>"))
    assert [(o.message_id, o.payment_info_id, o.end_to_end_id, o.reason) for o in whole.outcomes] == [
        ("LMDD-1", None, None, "BE05")]


def camt054(entries: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">
  <BkToCstmrDbtCdtNtfctn>
    <GrpHdr><MsgId>CAMT54-1</MsgId><CreDtTm>2026-04-14T06:00:00</CreDtTm></GrpHdr>
    <Ntfctn><Id>N-1</Id><CreDtTm>2026-04-14T06:00:00</CreDtTm><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct>
      {entries}
    </Ntfctn>
  </BkToCstmrDbtCdtNtfctn>
</Document>""".encode()


def returned_entry(end_to_end: str, code: str) -> str:
    return f"""<Ntry><Amt Ccy="EUR">29.90</Amt><CdtDbtInd>DBIT</CdtDbtInd><Sts>BOOK</Sts>
      <BookgDt><Dt>2026-04-14</Dt></BookgDt><ValDt><Dt>2026-04-14</Dt></ValDt><AcctSvcrRef>R-{end_to_end}</AcctSvcrRef>
      <BkTxCd><Domn><Cd>PMNT</Cd><Fmly><Cd>RDDT</Cd><SubFmlyCd>UPDD</SubFmlyCd></Fmly></Domn></BkTxCd>
      <NtryDtls><TxDtls><Refs><MsgId>LMDD-1</MsgId><PmtInfId>LMDD-1/RCUR</PmtInfId><EndToEndId>{end_to_end}</EndToEndId>
        <MndtId>LM-C1-1</MndtId></Refs><RtrInf><Rsn><Cd>{code}</Cd></Rsn></RtrInf></TxDtls></NtryDtls></Ntry>"""


def test_a_camt054_names_the_returned_collections() -> None:
    credit = ('<Ntry><Amt Ccy="EUR">59.80</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts>BOOK</Sts><BookgDt><Dt>2026-04-08</Dt>'
              "</BookgDt><NtryDtls><TxDtls><Refs><EndToEndId>LMDD1-1</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>")
    report = dd.read_report(camt054(returned_entry("LMDD1-2", "AM04") + credit + returned_entry("LMDD1-3", "MD06")))
    assert (report.kind, report.message_id, report.ignored) == ("camt.054", "CAMT54-1", 1)
    assert [(o.message_id, o.end_to_end_id, o.status, o.reason) for o in report.outcomes] == [
        ("LMDD-1", "LMDD1-2", "returned", "AM04"), ("LMDD-1", "LMDD1-3", "returned", "MD06")]
    assert report.outcomes[1].reason_text == "MD06 — refund requested by the debtor"
    with pytest.raises(dd.DirectDebitError, match="names no EndToEndId"):
        dd.read_report(camt054(returned_entry("NOTPROVIDED", "AM04")))


_HOSTILE = {
    "billion laughs": (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
                       b"<Document>&lol2;</Document>", "DOCTYPE"),
    "external entity": (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                        b"<Document>&x;</Document>", "DOCTYPE"),
    "a DTD alone": (b'<?xml version="1.0"?><!DOCTYPE Document SYSTEM "http://example.invalid/x.dtd"><Document/>',
                    "DOCTYPE"),
    "broken": (b"<Document><CstmrPmtStsRpt></Document>", r"broken at line 1, column 29 \(mismatched tag\)"),
    "not XML": (b"AC04;LMDD1-7;29.90\n", "not an XML file"),
    "empty": (b"  \n", "the file is empty"),
    "another message": (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"><CstmrCdtTrfInitn/>'
                        b"</Document>", "not a pain.002 status report nor a camt.054 notification"),
    "too large": (b"<Document>" + b" " * dd.MAX_REPORT_BYTES + b"</Document>", "at most"),
}


@pytest.mark.parametrize("name", list(_HOSTILE))
def test_hostile_or_broken_xml_is_refused_with_a_clear_message(name: str) -> None:
    data, said = _HOSTILE[name]
    with pytest.raises(dd.DirectDebitError, match=said):
        dd.read_report(data)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_any_bytes_are_read_or_refused_never_crash(data: bytes) -> None:
    with contextlib.suppress(dd.DirectDebitError):
        dd.read_report(data)
