"""The MQTT event catalogue (daemons/events.py): documented, every topic unique and valid."""

from __future__ import annotations

from pathlib import Path

from daemons import events

ROOT = Path(__file__).resolve().parents[2]


def test_docs_events_is_current() -> None:
    assert (ROOT / "docs" / "events.md").read_text() == events.describe() + "\n"


def test_every_event_has_a_unique_topic_and_documented_fields() -> None:
    topics = [(cls.subject, cls.name) for cls in events.CATALOGUE]
    assert len(set(topics)) == len(topics)
    assert ("session", "start") in topics and ("session", "stop") in topics
    for cls in events.CATALOGUE:
        assert cls.__doc__ and all(part.isidentifier() for part in (cls.subject, cls.name))
        assert all(f.metadata.get("doc") for f in cls.__dataclass_fields__.values())  # type: ignore[attr-defined]
