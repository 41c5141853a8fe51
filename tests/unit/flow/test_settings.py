"""flowcollector's settings: what the listeners and the new bounds accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons import config
from flowcollector.settings import FlowcollectorSettings


@pytest.mark.parametrize("key", ["NETFLOW_PORT", "IPFIX_PORT"])
def test_listener_port_0_is_refused_in_one_line(key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 0 would bind a random port no exporter sends to: refused, not silently accepted."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(config.SettingsError) as info:
        config.load({f"LASTMILE_FLOWCOLLECTOR__{key}": "0"}).of(FlowcollectorSettings)
    line = str(info.value)
    assert "\n" not in line and f"flowcollector.{key.lower()} = '0'" in line and "1 to 65535" in line


def test_own_prefixes_and_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = config.load({"LASTMILE_FLOWCOLLECTOR__OWN_PREFIXES": "100.64.0.0/10, 2001:db8::/32"}).of(FlowcollectorSettings)
    assert s.own_prefixes == ("100.64.0.0/10", "2001:db8::/32")
    assert (s.max_sampling_rate, s.max_unknown_addresses, s.late_window) == (65535, 10000, 86400.0)
    for key, value, words in [("OWN_PREFIXES", "100.64.0.1/10", "host bits set"),
                              ("OWN_PREFIXES", "nonsense", "IPv4/IPv6 prefixes"),
                              ("MAX_SAMPLING_RATE", "2000000", "from 1 to 1048576"),
                              ("MAX_UNKNOWN_ADDRESSES", "0", "greater than 0")]:
        with pytest.raises(config.SettingsError, match=words):
            config.load({f"LASTMILE_FLOWCOLLECTOR__{key}": value}).of(FlowcollectorSettings)
