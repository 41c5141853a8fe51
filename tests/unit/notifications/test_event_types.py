"""The outbox's event catalogue (admin/notifications/event_types.py): types unique and well formed,
every example as its fields, docs/webhooks.md current, and what goes to MQTT."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from admin.notifications import event_types

ROOT = Path(__file__).resolve().parents[3]


def test_docs_webhooks_lists_the_catalogue_as_it_is() -> None:
    text = (ROOT / "docs" / "webhooks.md").read_text()
    assert event_types.describe() in text, "run: python -c 'from admin.notifications import event_types; " \
                                           "print(event_types.describe())' and paste it into docs/webhooks.md"


def test_every_type_is_unique_documented_and_its_example_has_its_fields() -> None:
    types = [e.type for e in event_types.CATALOGUE]
    assert len(set(types)) == len(types)
    for e in event_types.CATALOGUE:
        assert event_types.PATTERN.fullmatch(e.type) and "*" not in e.type
        assert e.summary and all(f.doc and f.type for f in e.fields), e.type
        assert list(e.example) == [f.name for f in e.fields], e.type
    assert "webhook.ping" not in event_types.SUBSCRIBABLE
    assert {e.type for e in event_types.CATALOGUE if not e.mqtt} == {"session.started", "session.stopped",
                                                                    "webhook.ping"}


def test_the_envelope_keeps_every_digit_of_an_amount_as_a_string() -> None:
    body = event_types.envelope(7, "invoice.created", dt.datetime(2026, 4, 2, 10, 0, tzinfo=dt.UTC),
                                '{"total": 20.4000, "id": 3, "due_on": "2026-04-15", "big": 12345678901234.5678}')
    assert json.loads(body) == {"id": 7, "type": "invoice.created", "occurred_at": "2026-04-02T10:00:00+00:00",
                                "data": {"total": "20.4000", "id": 3, "due_on": "2026-04-15",
                                         "big": "12345678901234.5678"}}
    assert event_types.decode_payload('{"a": 0.1}') == {"a": Decimal("0.1")}
