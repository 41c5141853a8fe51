"""flowcollector's settings: what the listeners and the new bounds accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons import config


@pytest.mark.parametrize("key", ["NETFLOW_PORT", "IPFIX_PORT"])
def test_listener_port_0_is_refused_in_one_line(key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Port 0 would bind a random port no exporter sends to: refused, not silently accepted."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(config.SettingsError) as info:
        config.load({f"LASTMILE_FLOWCOLLECTOR__{key}": "0"})
    line = str(info.value)
    assert "\n" not in line and f"flowcollector.{key.lower()} = '0'" in line and "1 to 65535" in line
