"""SEPA direct debit without I/O: the checks of what an operator types (IBAN, BIC, creditor
identifier, mandate reference), the TARGET2 calendar a collection date must fall on, the
pain.008.001.02 file of a batch, and the bank's answers read back (a pain.002 status report, a
camt.054 notification or camt.053 statement of returns).

The file is written here rather than with sepaxml: a bank's pain.002 names our message and
payment-information ids, so they must be ours (sepaxml draws them at random), the creation time
is passed in (sepaxml reads the local clock), and a creditor without a BIC (IBAN-only, allowed
since 2016) is written as NOTPROVIDED. sepaxml is still what the files are checked against: its
copy of the official ISO 20022 XSD (direct_debit_schema.py).

References (the EPC's SEPA Core Direct Debit Rulebook and its Customer-to-Bank Implementation
Guidelines, v1.0 of 2023): identifiers use the Latin subset ``a-z A-Z 0-9 / - ? : ( ) . , ' +``
and space, never start or end with "/" nor hold "//"; names are at most 70 characters, the
remittance line 140; the creditor identifier's check digits are ISO 7064 MOD 97-10 over its
national part, as an IBAN's (the three characters after them, the business code, are not
checked); a collection is due on a TARGET2 day, at least the lead days (TARGET2 days) ahead.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import warnings
import xml.etree.ElementTree as ET  # writing, and the parsed tree's types; parsing goes through admin/safexml.py
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal

import holidays
import schwifty
from schwifty import exceptions as iban_errors
from schwifty import registry as banks

from admin import safexml

PAIN_008 = "urn:iso:std:iso:20022:tech:xsd:pain.008.001.02"
SEQUENCES = ("FRST", "RCUR")
SCHEMES = ("CORE", "B2B")
CURRENCY = "EUR"  # SEPA direct debits are in euro only
MAX_REPORT_BYTES = 4 * 1024 * 1024  # the admin's request limit (admin/app.py client_max_size)
MAX_AMOUNT = Decimal("999999999.99")  # the EPC's ceiling of one collection

#: What a bank gives as the reason of a reject or a return (ISO 20022 ExternalStatusReason1Code
#: and ExternalReturnReason1Code, as the EPC's guidance on R-transactions uses them).
REASONS = {
    "AC01": "account identifier incorrect (wrong IBAN)",
    "AC04": "account closed",
    "AC06": "account blocked, or blocked for direct debits by the debtor",
    "AC13": "the debtor's account is a consumer account (B2B)",
    "AG01": "direct debits are forbidden on this account",
    "AG02": "wrong operation or sequence code",
    "AM04": "insufficient funds",
    "AM05": "duplicate collection",
    "BE05": "the creditor identifier is unknown to the bank",
    "CNOR": "the creditor's bank is not reachable for SEPA",
    "DNOR": "the debtor's bank is not reachable for SEPA",
    "FF01": "the file or a transaction is malformed",
    "MD01": "no mandate (or the mandate was revoked)",
    "MD02": "the mandate's data are missing or wrong",
    "MD06": "refund requested by the debtor",
    "MD07": "the debtor has died",
    "MS02": "refused by the debtor, no reason given",
    "MS03": "refused by the bank, no reason given",
    "RC01": "bank identifier (BIC) incorrect",
    "RR01": "the debtor's account or identification is missing (regulatory)",
    "RR02": "the debtor's name or address is missing (regulatory)",
    "RR03": "the creditor's name or address is missing (regulatory)",
    "RR04": "regulatory reason",
    "SL01": "a service of the debtor's bank (a debit blocked or limited by the debtor)",
}


class DirectDebitError(ValueError):
    """Input refused, said for the person who typed or uploaded it."""


# -- what operators type ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Account:
    iban: str            # compact, upper case
    bic: str             # as given, or as schwifty found it from the bank code; "" when neither
    bank: str            # the bank's name when schwifty knows it


def compact(text: str) -> str:
    return re.sub(r"\s+", "", text).upper()


def check_iban(text: str) -> Account:
    """A SEPA account's IBAN, with its check digits, its country's format and (where schwifty
    knows the country's banks) its bank code checked; its BIC when schwifty knows it."""
    value = compact(text)
    if not value:
        raise DirectDebitError("the IBAN is required")
    shown = " ".join(value[i:i + 4] for i in range(0, len(value), 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NationalChecksumNotVerified: a country without a national check
        try:
            iban = schwifty.IBAN(value, validate_bban=True)
        except iban_errors.InvalidCountryCode:
            raise DirectDebitError(f"{shown}: {value[:2]!r} is not the code of a country that has IBANs") from None
        except iban_errors.InvalidChecksumDigits:
            raise DirectDebitError(f"{shown}: the check digits ({value[2:4]}) do not match the rest: a digit is "
                                   "mistyped or two are swapped") from None
        except iban_errors.InvalidBBANChecksum:
            raise DirectDebitError(f"{shown}: the account number's own check digit is wrong (the bank's national "
                                   "check): a digit is mistyped") from None
        except iban_errors.InvalidLength:
            raise DirectDebitError(f"{shown}: an IBAN of {value[:2]} has another length than {len(value)} "
                                   "characters") from None
        except iban_errors.SchwiftyException as e:
            raise DirectDebitError(f"{shown}: not a valid IBAN ({e})") from None
    if not iban.in_sepa_zone:
        raise DirectDebitError(f"{shown}: {iban.country_code} is outside the SEPA zone: no SEPA direct debit from "
                               "there")
    bank = iban.bank
    if bank is None and _registry_knows(iban.country_code):
        raise DirectDebitError(f"{shown}: no bank of {iban.country_code} has the bank code {iban.bank_code}: a "
                               "digit of it is mistyped")
    bic = iban.bic
    return Account(iban.compact, str(bic) if bic is not None else "", bank.name if bank is not None else "")


#: Countries whose every bank code schwifty lists, from the national bank's own directory
#: (Bundesbank, OeNB, NBB, Betaalvereniging, SIX, BCL): there an unknown bank code is a typo.
#: Elsewhere its lists are partial, and an unknown code is taken as it is.
COMPLETE_BANK_LISTS = frozenset({"DE", "AT", "BE", "NL", "CH", "LU"})


def _registry_knows(country: str) -> bool:
    return country in COMPLETE_BANK_LISTS and bool(banks.get_banks_by_country(country))


def check_bic(text: str) -> str:
    """A BIC (8 or 11 characters) as written for the file, or "" for none; a wrong one refused."""
    value = compact(text)
    if not value:
        return ""
    try:
        bic = schwifty.BIC(value)
    except iban_errors.SchwiftyException as e:
        raise DirectDebitError(f"{value}: not a valid BIC ({e})") from None
    return str(bic.compact)


_CREDITOR_ID = re.compile(r"([A-Z]{2})(\d{2})([A-Z0-9]{3})([A-Z0-9]{1,28})")


def _mod97(text: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in text)) % 97


def check_creditor_id(text: str) -> str:
    """A SEPA creditor identifier (``DE98ZZZ09999999999``): country, check digits, business code,
    national identifier; the check digits verified."""
    value = compact(text)
    m = _CREDITOR_ID.fullmatch(value)
    if m is None or len(value) > 35:
        raise DirectDebitError(f"{value or 'it'}: a creditor identifier is a country code, two check digits, a "
                               "three-character business code and the national identifier, like DE98ZZZ09999999999")
    country, digits, _business, national = m.groups()
    if _mod97(national + country + digits) != 1:
        raise DirectDebitError(f"{value}: the check digits ({digits}) do not match the national identifier: a "
                               "character is mistyped")
    return value


_ID = re.compile(r"[A-Za-z0-9/\-?:().,'+]{1,35}")


def check_reference(text: str, what: str = "the mandate reference") -> str:
    """A mandate reference (or another identifier of the file): 1 to 35 of the Latin subset, no
    spaces, not starting or ending with "/" and without "//"."""
    value = text.strip()
    if not _ID.fullmatch(value):
        raise DirectDebitError(f"{what} is 1 to 35 letters, digits and / - ? : ( ) . , ' + (no spaces, no "
                               "accents)")
    if value.startswith("/") or value.endswith("/") or "//" in value:
        raise DirectDebitError(f"{what} may not start or end with / nor hold //")
    return value


_LATIN_EXTRA = str.maketrans({"ß": "ss", "Æ": "AE", "æ": "ae", "Ø": "O", "ø": "o", "Œ": "OE", "œ": "oe",
                              "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Þ": "TH", "þ": "th", "&": "+"})
_NOT_LATIN = re.compile(r"[^A-Za-z0-9/\-?:().,'+ ]+")


def latin(text: str, limit: int) -> str:
    """``text`` in the EPC's Latin subset (accents dropped, other characters spaced out), at most
    ``limit`` characters: what a bank takes in a name or a remittance line."""
    flat = unicodedata.normalize("NFKD", text.translate(_LATIN_EXTRA))
    flat = "".join(ch for ch in flat if not unicodedata.combining(ch))
    return " ".join(_NOT_LATIN.sub(" ", flat).split())[:limit].strip()


# -- the calendar ------------------------------------------------------------------------------------

_TARGET = holidays.financial_holidays("XECB")


def is_target_day(day: dt.date) -> bool:
    """A TARGET2 working day: a weekday that is none of its closing days (New Year, Good Friday,
    Easter Monday, 1 May, 25 and 26 December)."""
    return day.weekday() < 5 and day not in _TARGET


def next_target_day(day: dt.date) -> dt.date:
    """``day`` itself when it is a TARGET2 day, else the next one."""
    while not is_target_day(day):
        day += dt.timedelta(days=1)
    return day


def earliest_collection(today: dt.date, lead_days: int) -> dt.date:
    """The first date a collection made today may ask for: ``lead_days`` TARGET2 days ahead."""
    day = today
    for _ in range(lead_days):
        day = next_target_day(day + dt.timedelta(days=1))
    return day


MAX_AHEAD_DAYS = 366
"""How far ahead a collection date may be: a bank takes a file some days before its date, so a
date years away is a typo."""


def check_collection_date(day: dt.date, today: dt.date, lead_days: int) -> None:
    first = earliest_collection(today, lead_days)
    if day < first:
        raise DirectDebitError(f"{day.isoformat()} is too soon: with {lead_days} lead day"
                               f"{'s' if lead_days != 1 else ''} the first collection date is {first.isoformat()}")
    if day > today + dt.timedelta(days=MAX_AHEAD_DAYS):
        raise DirectDebitError(f"{day.isoformat()} is more than a year ahead: a batch is made for a date within "
                               f"{MAX_AHEAD_DAYS} days")
    if not is_target_day(day):
        what = "a weekend" if day.weekday() >= 5 else f"a TARGET2 holiday ({_TARGET.get(day)})"
        raise DirectDebitError(f"{day.isoformat()} is {what}: banks collect on TARGET2 days only; the next is "
                               f"{next_target_day(day).isoformat()}")


def sequence(collected_before: bool) -> str:
    """FRST for a mandate's first collection, RCUR after (a first one the bank rejected before
    settling did not count: the next is FRST again)."""
    return "RCUR" if collected_before else "FRST"


def amount_text(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01')):f}"


# -- the pain.008.001.02 file ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Creditor:
    creditor_id: str
    name: str
    iban: str
    bic: str                       # "" : NOTPROVIDED (IBAN-only)
    scheme: str = "CORE"


@dataclass(frozen=True, slots=True)
class Debit:
    end_to_end_id: str
    amount: Decimal
    sequence: str                  # FRST or RCUR
    mandate_reference: str
    signed_on: dt.date
    debtor: str
    iban: str
    bic: str                       # "" : NOTPROVIDED
    remittance: str


def payment_info_id(message_id: str, sequence_type: str) -> str:
    """The id of a batch's part of one sequence type (a pain.002 may reject a part by it)."""
    return f"{message_id}/{sequence_type}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _path(parent: ET.Element, tags: str, text: str) -> None:
    """``Id/PrvtId/Othr/Id`` under ``parent``, the last holding ``text``."""
    for tag in tags.split("/"):
        parent = _sub(parent, tag)
    parent.text = text


def _agent(parent: ET.Element, tag: str, bic: str) -> None:
    institution = _sub(_sub(parent, tag), "FinInstnId")
    if bic:
        _sub(institution, "BIC", bic)
    else:
        _path(institution, "Othr/Id", "NOTPROVIDED")


def _check_debits(debits: Sequence[Debit]) -> None:
    if not debits:
        raise DirectDebitError("a batch has one collection at least")
    seen: set[str] = set()
    for d in debits:
        if d.sequence not in SEQUENCES:
            raise DirectDebitError(f"{d.end_to_end_id}: sequence {d.sequence!r} is not FRST nor RCUR")
        if not Decimal("0.01") <= d.amount <= MAX_AMOUNT or d.amount != d.amount.quantize(Decimal("0.01")):
            raise DirectDebitError(f"{d.end_to_end_id}: {d.amount} is no amount of euro cents from 0.01 to "
                                   f"{MAX_AMOUNT}")
        if d.end_to_end_id in seen:
            raise DirectDebitError(f"{d.end_to_end_id} is in the batch twice")
        seen.add(d.end_to_end_id)


def pain008(creditor: Creditor, message_id: str, created: dt.datetime, collection_date: dt.date,
            debits: Sequence[Debit]) -> bytes:
    """The batch as a pain.008.001.02 file (UTF-8): one payment information block per sequence
    type, in the order FRST, RCUR, each with its collections in the order given."""
    _check_debits(debits)
    if creditor.scheme not in SCHEMES:
        raise DirectDebitError(f"scheme {creditor.scheme!r} is not CORE nor B2B")
    check_reference(message_id, "the message id")
    root = ET.Element("Document", {"xmlns": PAIN_008})
    initiation = _sub(root, "CstmrDrctDbtInitn")
    header = _sub(initiation, "GrpHdr")
    _sub(header, "MsgId", message_id)
    _sub(header, "CreDtTm", created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    _sub(header, "NbOfTxs", str(len(debits)))
    _sub(header, "CtrlSum", amount_text(sum((d.amount for d in debits), Decimal(0))))
    _sub(_sub(header, "InitgPty"), "Nm", latin(creditor.name, 70))
    for kind in SEQUENCES:
        part = [d for d in debits if d.sequence == kind]
        if part:
            _payment_info(initiation, creditor, payment_info_id(message_id, kind), kind, collection_date, part)
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


def _payment_info(parent: ET.Element, creditor: Creditor, info_id: str, kind: str, collection_date: dt.date,
                  debits: Sequence[Debit]) -> None:
    info = _sub(parent, "PmtInf")
    _sub(info, "PmtInfId", info_id)
    _sub(info, "PmtMtd", "DD")
    _sub(info, "BtchBookg", "true")
    _sub(info, "NbOfTxs", str(len(debits)))
    _sub(info, "CtrlSum", amount_text(sum((d.amount for d in debits), Decimal(0))))
    kind_of = _sub(info, "PmtTpInf")
    _path(kind_of, "SvcLvl/Cd", "SEPA")
    _path(kind_of, "LclInstrm/Cd", creditor.scheme)
    _sub(kind_of, "SeqTp", kind)
    _sub(info, "ReqdColltnDt", collection_date.isoformat())
    _sub(_sub(info, "Cdtr"), "Nm", latin(creditor.name, 70))
    _path(_sub(info, "CdtrAcct"), "Id/IBAN", creditor.iban)
    _agent(info, "CdtrAgt", creditor.bic)
    _sub(info, "ChrgBr", "SLEV")
    scheme_id = _sub(_sub(info, "CdtrSchmeId"), "Id")
    other = _sub(_sub(scheme_id, "PrvtId"), "Othr")
    _sub(other, "Id", creditor.creditor_id)
    _path(other, "SchmeNm/Prtry", "SEPA")
    for d in debits:
        tx = _sub(info, "DrctDbtTxInf")
        _path(tx, "PmtId/EndToEndId", d.end_to_end_id)
        _sub(tx, "InstdAmt", amount_text(d.amount), Ccy=CURRENCY)
        mandate = _sub(_sub(tx, "DrctDbtTx"), "MndtRltdInf")
        _sub(mandate, "MndtId", d.mandate_reference)
        _sub(mandate, "DtOfSgntr", d.signed_on.isoformat())
        _agent(tx, "DbtrAgt", d.bic)
        _sub(_sub(tx, "Dbtr"), "Nm", latin(d.debtor, 70) or "NOTPROVIDED")
        _path(_sub(tx, "DbtrAcct"), "Id/IBAN", d.iban)
        _sub(_sub(tx, "RmtInf"), "Ustrd", latin(d.remittance, 140) or d.end_to_end_id)


# -- the bank's answers ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outcome:
    """What the bank said of one collection, or of a whole part or message (its ids ``None``)."""

    message_id: str                # our message (the batch), "" when the file does not say
    payment_info_id: str | None    # a part of it, when the reject is of a part
    end_to_end_id: str | None      # one collection, when the reject or return is of one
    status: str                    # "rejected" (before settlement) or "returned" (after)
    reason: str                    # the code (AC04, ...), "" when none given
    detail: str = ""               # the bank's additional words

    @property
    def reason_text(self) -> str:
        said = REASONS.get(self.reason, "")
        return " — ".join(p for p in (self.reason, said or self.detail) if p)


@dataclass(frozen=True, slots=True)
class Report:
    kind: str                      # "pain.002", "camt.054" or "camt.053"
    message_id: str                # the report's own MsgId
    outcomes: tuple[Outcome, ...]
    ignored: int = 0               # entries that are no reject nor return (accepted, other bookings)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element, name: str) -> ET.Element | None:
    for child in element:
        if _local(child.tag) == name:
            return child
    return None


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def _text(element: ET.Element | None, path: str = "") -> str:
    for name in filter(None, path.split("/")):
        if element is None:
            return ""
        element = _child(element, name)
    return (element.text or "").strip() if element is not None else ""


def _reason(status_info: Iterable[ET.Element]) -> tuple[str, str]:
    """The first reason code (``Rsn/Cd`` or ``Rsn/Prtry``) and additional words of StsRsnInf/RtrInf."""
    for info in status_info:
        reason = _child(info, "Rsn")
        code = _text(reason, "Cd") or _text(reason, "Prtry")
        words = " ".join(_text(a) for a in _children(info, "AddtlInf")).strip()
        if code or words:
            return code.upper(), words
    return "", ""


def parse(data: bytes) -> ET.Element:
    """The XML's root element, parsed with DTDs, entities and external references refused."""
    if not data.strip():
        raise DirectDebitError("the file is empty")
    if len(data) > MAX_REPORT_BYTES:
        raise DirectDebitError(f"the file is {len(data) // (1024 * 1024)} MiB: a report may be "
                               f"{MAX_REPORT_BYTES // (1024 * 1024)} MiB at most")
    try:
        return safexml.parse(data)
    except safexml.Refused as e:
        raise DirectDebitError({
            "dtd": "the file has a DOCTYPE (a DTD): a bank's ISO 20022 file has none; refused",
            "entity": "the file declares entities (<!ENTITY …>): refused",
            "external": "the file refers to an external entity: refused",
            "refused": f"the file is refused: {e.detail}",
            "broken": f"not an XML file: it is broken at line {e.line}, column {e.column} ({e.detail})",
        }[e.kind]) from None


def read_report(data: bytes) -> Report:
    """A pain.002 (customer payment status report) or a camt.054/camt.053 (returns among the
    entries) as outcomes; any other file refused."""
    root = parse(data)
    namespace = root.tag[1:].split("}")[0] if root.tag.startswith("{") else ""
    message = root[0] if _local(root.tag) == "Document" and len(root) else root
    name = _local(message.tag)
    if name == "CstmrPmtStsRpt" and (not namespace or ":pain.002." in namespace):
        return _pain002(message)
    if name in ("BkToCstmrDbtCdtNtfctn", "BkToCstmrStmt") and (not namespace or ":camt.05" in namespace):
        return _camt(message, "camt.054" if name == "BkToCstmrDbtCdtNtfctn" else "camt.053")
    raise DirectDebitError(f"not a pain.002 status report nor a camt.054 notification (the file is {name or 'empty'}"
                           f"{' in ' + namespace if namespace else ''})")


_REJECTED = ("RJCT",)


def _pain002(report: ET.Element) -> Report:
    header = _child(report, "GrpHdr")
    group = _child(report, "OrgnlGrpInfAndSts")
    if group is None:
        raise DirectDebitError("the pain.002 has no OrgnlGrpInfAndSts: which message it answers is not said")
    original = _text(group, "OrgnlMsgId")
    outcomes: list[Outcome] = []
    ignored = 0
    if _text(group, "GrpSts") in _REJECTED:
        code, words = _reason(_children(group, "StsRsnInf"))
        outcomes.append(Outcome(original, None, None, "rejected", code, words))
    for part in _children(report, "OrgnlPmtInfAndSts"):
        part_id = _text(part, "OrgnlPmtInfId")
        if _text(part, "PmtInfSts") in _REJECTED:
            code, words = _reason(_children(part, "StsRsnInf"))
            outcomes.append(Outcome(original, part_id, None, "rejected", code, words))
        for tx in _children(part, "TxInfAndSts"):
            if _text(tx, "TxSts") not in _REJECTED:
                ignored += 1
                continue
            end_to_end = _text(tx, "OrgnlEndToEndId")
            if not end_to_end:
                raise DirectDebitError("a rejected transaction of the pain.002 names no OrgnlEndToEndId")
            code, words = _reason(_children(tx, "StsRsnInf"))
            outcomes.append(Outcome(original, part_id, end_to_end, "rejected", code, words))
    return Report("pain.002", _text(header, "MsgId"), tuple(outcomes), ignored)


def _camt(message: ET.Element, kind: str) -> Report:
    outcomes: list[Outcome] = []
    ignored = 0
    for account in (*_children(message, "Ntfctn"), *_children(message, "Stmt")):
        for entry in _children(account, "Ntry"):
            details = [tx for d in _children(entry, "NtryDtls") for tx in _children(d, "TxDtls")]
            for tx in details or [entry]:
                returned = list(_children(tx, "RtrInf"))
                if not returned:
                    ignored += 1
                    continue
                refs = _child(tx, "Refs")
                end_to_end = _text(refs, "EndToEndId")
                if not end_to_end or end_to_end == "NOTPROVIDED":
                    raise DirectDebitError(f"a return in the {kind} names no EndToEndId (entry "
                                           f"{_text(entry, 'NtryRef') or _text(entry, 'AcctSvcrRef') or '?'})")
                code, words = _reason(returned)
                outcomes.append(Outcome(_text(refs, "MsgId"), _text(refs, "PmtInfId") or None, end_to_end,
                                        "returned", code, words))
    return Report(kind, _text(_child(message, "GrpHdr"), "MsgId"), tuple(outcomes), ignored)
