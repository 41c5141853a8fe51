"""Regenerate the MQTT golden vectors in this folder (a developer tool, not a test).

Each vector is the byte stream a real broker, mosquitto (Debian package mosquitto, an
implementation independent of lastmile), sent to a client over one TCP connection on
127.0.0.1 while the client went through a script of requests. ``<name>.hex`` holds that stream
(one line of hex), ``<name>.json`` the packets it is made of, split here by the fixed header
of MQTT 3.1.1 section 2.2 (no lastmile code involved), with what each one answers.

The client's requests are written by hand below (the encoders under test are not used either).

    apt-get install mosquitto
    python tests/vectors/mqtt/generate.py
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
TYPES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
         8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ", 13: "PINGRESP",
         14: "DISCONNECT"}


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def string(s: bytes) -> bytes:
    return len(s).to_bytes(2, "big") + s


def packet(first: int, body: bytes) -> bytes:
    return bytes((first,)) + varint(len(body)) + body


def connect(client_id: bytes, level: int = 4) -> bytes:
    return packet(0x10, string(b"MQTT") + bytes((level, 0x02)) + (30).to_bytes(2, "big") + string(client_id))


def publish(topic: bytes, payload: bytes, qos: int, pid: int = 0) -> bytes:
    return packet(0x30 | qos << 1, string(topic) + (pid.to_bytes(2, "big") if qos else b"") + payload)


PAYLOAD = json.dumps({"uid": "81e0000a", "service": 17, "ip": "100.64.3.17", "start": 1763712000.0,
                      "stop": None}).encode()
BIG = json.dumps({"sessions": [{"uid": f"{i:08x}", "service": i} for i in range(12)]}).encode()  # > 127 bytes

# name: (what it shows, client requests in order; each is sent after the broker went quiet)
SCRIPTS: dict[str, tuple[str, list[bytes]]] = {
    "publisher_session": (
        "a publisher's session: CONNACK, PUBACK for QoS 1, PUBREC and PUBCOMP for QoS 2, PINGRESP",
        [
            connect(b"lastmile-vector-pub"),
            publish(b"lastmile/session/start", PAYLOAD, 1, 1),
            publish(b"lastmile/session/start", PAYLOAD, 2, 2),
            packet(0x62, (2).to_bytes(2, "big")),  # PUBREL 2
            packet(0xC0, b""),  # PINGREQ
        ],
    ),
    "subscriber_session": (
        "a client that subscribes to lastmile/# and gets its own events back: SUBACK, then PUBLISH "
        "deliveries (QoS 0, QoS 1 with a packet id, a remaining length of two bytes) among PUBACKs",
        [
            connect(b"lastmile-vector-sub"),
            packet(0x82, (3).to_bytes(2, "big") + string(b"lastmile/#") + b"\x01"),  # SUBSCRIBE id 3, QoS 1
            publish(b"lastmile/customer/blocked", b'{"customer": 5}', 0),
            publish(b"lastmile/session/start", PAYLOAD, 1, 4),
            publish(b"lastmile/session/stop", BIG, 1, 5),
        ],
    ),
    "connack_refused": (
        "a CONNECT with protocol level 6, which mosquitto refuses (return code 1) before it closes",
        [connect(b"lastmile-vector-bad", level=6)],
    ),
}


def split(stream: bytes) -> list[dict[str, object]]:
    """The packets of ``stream`` by their fixed header (section 2.2); the stream must end on one."""
    out: list[dict[str, object]] = []
    pos = 0
    while pos < len(stream):
        length, shift, i = 0, 0, pos + 1
        while True:
            byte = stream[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        body = stream[i : i + length]
        assert len(body) == length, "the stream ends inside a packet"
        out.append({"type": TYPES[stream[pos] >> 4], "flags": stream[pos] & 0x0F, "body": body.hex()})
        pos = i + length
    return out


def receive_quietly(sock: socket.socket, quiet: float = 0.3) -> bytes:
    data = b""
    sock.settimeout(quiet)
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return data
        if not chunk:
            return data
        data += chunk


def main() -> None:
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto is not installed (apt-get install mosquitto)")
    version = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False).stdout.splitlines()[0]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    work = Path(tempfile.mkdtemp(prefix="lastmile-mqtt-vectors-"))
    conf = work / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        for name, (why, requests) in SCRIPTS.items():
            stream = b""
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                for request in requests:
                    sock.sendall(request)
                    stream += receive_quietly(sock)
            (HERE / f"{name}.hex").write_text(stream.hex() + "\n")
            vector = {"source": f"{version}, 127.0.0.1", "why": why, "packets": split(stream)}
            (HERE / f"{name}.json").write_text(json.dumps(vector, indent=2) + "\n")
            print(f"{name}: {len(stream)} bytes, {len(vector['packets'])} packets")
    finally:
        broker.terminate()
        broker.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
