"""daemons.mqtt: MQTT 3.1.1 packets as bytes (OASIS MQTT 3.1.1, section 3)."""

import json
from pathlib import Path

import pytest

from daemons import mqtt


def test_connect_with_credentials() -> None:
    packet = mqtt.encode_connect("lm-1", keepalive=30, username="u", password="p")
    # fixed header, remaining length 22; "MQTT", level 4, flags user|password|clean, keep alive 30
    assert packet == (
        b"\x10\x16" + b"\x00\x04MQTT" + b"\x04" + b"\xc2" + b"\x00\x1e" + b"\x00\x04lm-1" + b"\x00\x01u" + b"\x00\x01p"
    )


def test_connect_anonymous() -> None:
    assert mqtt.encode_connect("x", keepalive=60)[:12] == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c"


def test_publish_qos1_and_qos0() -> None:
    assert mqtt.encode_publish(b"a/b", b"{}", 1, 10) == b"\x32\x09\x00\x03a/b\x00\x0a{}"
    assert mqtt.encode_publish(b"a/b", b"{}", 0) == b"\x30\x07\x00\x03a/b{}"


def test_remaining_length_of_several_bytes_reads_back() -> None:
    payload = b"x" * 20000
    packet = mqtt.encode_publish(b"t", payload, 1, 1)
    assert packet[1:4] == b"\xa5\x9c\x01"  # remaining length 20,005 = 0x25 + 0x1c * 128 + 1 * 128**2
    [(kind, flags, body)] = mqtt.Reader().feed(packet)
    assert kind is mqtt.PacketType.PUBLISH and flags == 0x02 and body.endswith(payload)
    assert len(body) == len(packet) - 4


@pytest.mark.parametrize("topic", [b"", b"a/+", b"a/#", b"a\0b"])
def test_invalid_topics_are_refused(topic: bytes) -> None:
    with pytest.raises(ValueError):
        mqtt.encode_publish(topic, b"", 1, 1)


def test_reader_splits_a_stream_cut_anywhere() -> None:
    stream = b"\x20\x02\x00\x00" + b"\x40\x02\x00\x07" + b"\xd0\x00" + b"\x70\x02\x01\x00"
    reader = mqtt.Reader()
    packets = []
    for i in range(len(stream)):  # one byte at a time
        packets += reader.feed(stream[i : i + 1])
    assert [(k, b) for k, _, b in packets] == [
        (mqtt.PacketType.CONNACK, b"\x00\x00"),
        (mqtt.PacketType.PUBACK, b"\x00\x07"),
        (mqtt.PacketType.PINGRESP, b""),
        (mqtt.PacketType.PUBCOMP, b"\x01\x00"),
    ]
    assert mqtt.packet_id(packets[1][2]) == 7 and mqtt.packet_id(packets[3][2]) == 256


def test_reader_refuses_garbage() -> None:
    with pytest.raises(mqtt.ProtocolError):
        mqtt.Reader().feed(b"\x40\xff\xff\xff\xff\x01")  # five length bytes
    with pytest.raises(mqtt.ProtocolError):
        mqtt.Reader().feed(b"\xf0\x00")  # reserved type 15


def test_connack_and_pubrel() -> None:
    assert mqtt.connack_error(b"\x00\x00") is None
    assert mqtt.connack_error(b"\x00\x04") == "bad user name or password"
    assert mqtt.encode_pubrel(513) == b"\x62\x02\x02\x01"


VECTORS = sorted((Path(__file__).parents[1] / "vectors" / "mqtt").glob("*.hex"))


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_reader_splits_what_mosquitto_sent(path: Path) -> None:
    """Golden streams captured from mosquitto (tests/vectors/mqtt/generate.py), whole and a byte at a time."""
    stream = bytes.fromhex(path.read_text())
    expected = [(p["type"], p["flags"], bytes.fromhex(p["body"]))
                for p in json.loads(path.with_suffix(".json").read_text())["packets"]]
    whole = mqtt.Reader().feed(stream)
    assert [(kind.name, flags, body) for kind, flags, body in whole] == expected
    reader = mqtt.Reader()
    trickled = [p for i in range(len(stream)) for p in reader.feed(stream[i : i + 1])]
    assert trickled == whole
    for kind, _, body in whole:
        if kind is mqtt.PacketType.CONNACK:
            assert mqtt.connack_error(body) in (None, "unacceptable protocol version")
        elif kind in (mqtt.PacketType.PUBACK, mqtt.PacketType.PUBREC, mqtt.PacketType.PUBCOMP):
            assert mqtt.packet_id(body) in (1, 2, 4, 5)


def test_vectors_are_there() -> None:
    assert {p.stem for p in VECTORS} >= {"publisher_session", "subscriber_session", "connack_refused"}
