"""Where backups go and what they take, and which archives the retention keeps."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemons import backup, config


def settings(env: dict[str, str]) -> config.Settings:
    return config.load(env, path=None)


def test_state_directories_are_where_each_daemon_keeps_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert backup.state_directories(settings({})) == [Path("var/radiusd"), Path("var/flowcollector")]
    configured = settings({"LASTMILE_RADIUSD__SPOOL_DIR": "/srv/spool", "LASTMILE_FLOWCOLLECTOR__STATE_DIR": "/srv/f"})
    assert backup.state_directories(configured) == [Path("/srv/spool"), Path("/srv/f")]
    # Under systemd $STATE_DIRECTORY is the backup unit's own; each daemon's is beside it.
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/lastmile/backup")
    assert backup.state_directories(settings({})) == [Path("/var/lib/lastmile/radiusd"),
                                                      Path("/var/lib/lastmile/flowcollector")]
    assert backup.state_directories(configured)[0] == Path("/srv/spool")


def test_the_backup_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    assert backup.backup_directory(settings({})) == Path("var/backups")
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/lastmile/backup")
    assert backup.backup_directory(settings({})) == Path("/var/lib/lastmile/backup")
    s = settings({"LASTMILE_BACKUP__DIRECTORY": "/srv/backups"})
    assert backup.backup_directory(s) == Path("/srv/backups")
    assert backup.backup_directory(s, "/mnt/usb") == Path("/mnt/usb")


def test_state_directories_are_named_by_their_component(monkeypatch: pytest.MonkeyPatch) -> None:
    """Archives name them by component, so a machine whose directories are elsewhere restores them."""
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/lastmile/backup")
    configured = settings({"LASTMILE_RADIUSD__SPOOL_DIR": "/srv/spool"})
    assert backup.named_state_directories(configured) == [
        ("radiusd", Path("/srv/spool")), ("flowcollector", Path("/var/lib/lastmile/flowcollector"))]
    assert os.environ["STATE_DIRECTORY"] == "/var/lib/lastmile/backup"  # as it was


def make(directory: Path, *stamps: str) -> list[Path]:
    paths = [directory / f"lastmile-{s}.tar" for s in stamps]
    for p in paths:
        p.write_bytes(b"archive")
    return paths


def test_retention_keeps_the_newest_by_name_and_always_the_new_one(tmp_path: Path) -> None:
    old = make(tmp_path, "20260101T030000Z", "20260102T030000Z", "20270101T030000Z")  # one from a clock ahead
    (new,) = make(tmp_path, "20260103T030000Z")
    (tmp_path / "lastmile-20260101T030000Z.tar.bak").write_text("not ours")
    assert backup.retain(tmp_path, 2, new) == [old[1], old[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([old[2].name, new.name,
                                                                "lastmile-20260101T030000Z.tar.bak"])
    assert backup.retain(tmp_path, 1, new) == [old[2]]
    assert [p.name for p in tmp_path.glob("*.tar")] == [new.name]


def test_keep_0_keeps_everything(tmp_path: Path) -> None:
    *_, new = make(tmp_path, "20260101T030000Z", "20260102T030000Z", "20260103T030000Z")
    assert backup.retain(tmp_path, 0, new) == []
    assert len(list(tmp_path.iterdir())) == 3


def test_backup_settings_are_checked() -> None:
    with pytest.raises(config.SettingsError, match=r"backup\.keep = '-1' must be 0 or more"):
        settings({"LASTMILE_BACKUP__KEEP": "-1"})
    assert settings({"LASTMILE_BACKUP__KEEP": "3"}).backup.keep == 3
