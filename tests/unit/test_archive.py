"""The backup archive format: streamed members, the manifest, and refusing anything not intact."""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from daemons import archive

LONG = "state/radiusd/" + "worker-1/" * 12 + "cache.snapshot"  # past tar's 100-character name field


class Pipe:
    """A source read in odd-sized pieces, of unknown length, like pg_dump's stdout."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, n: int) -> bytes:
        piece = self.data[self.at : self.at + min(n, 777)]
        self.at += len(piece)
        return piece


def manifest(members: list[archive.Member]) -> archive.Manifest:
    return archive.Manifest(created_at="2026-03-01T02:03:04Z", lastmile_version="0.1.0", schema_version=5,
                            host="noc1", database={"name": "lastmile"}, state=[], members=members)


def write(path: Path, contents: dict[str, bytes], *, listed: dict[str, bytes] | None = None) -> Path:
    with path.open("wb") as out:
        writer = archive.Writer(out)
        for name, data in contents.items():
            writer.add(name, Pipe(data), mode=0o640, mtime=1_700_000_000)
        members = writer.members if listed is None else [
            archive.Member(n, len(d), hashlib.sha256(d).hexdigest()) for n, d in listed.items()]
        writer.add_bytes(archive.MANIFEST, manifest(members).to_json())
        writer.close()
    return path


CONTENTS = {
    "state/radiusd/accounting.spool": b'{"t":"s"}\n' * 301,
    "state/radiusd/empty": b"",
    LONG: bytes(range(256)) * 9,
    archive.DUMP: b"PGDMP" + bytes(7000),
}


def test_members_stream_in_and_come_back_checked(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tar", CONTENTS)
    with archive.Archive.open(path) as a:
        assert [m.name for m in a.manifest.members] == list(CONTENTS)
        for name, data in CONTENTS.items():
            assert a.read(name).read() == data
        assert sorted(str(p) for p, *_ in a.state_files("radiusd")) == sorted(
            n.removeprefix("state/radiusd/") for n in CONTENTS if n.startswith("state/"))
    with tarfile.open(path) as tar:
        assert {m.name: m.size for m in tar.getmembers()} == {
            **{n: len(d) for n, d in CONTENTS.items()}, archive.MANIFEST: tar.getmember(archive.MANIFEST).size}


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar is not installed")
def test_gnu_tar_reads_it(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tar", CONTENTS)
    listed = subprocess.run(["tar", "-tf", str(path)], capture_output=True, text=True, check=True).stdout
    assert listed.splitlines() == [*CONTENTS, archive.MANIFEST]
    out = subprocess.run(["tar", "-xOf", str(path), LONG], capture_output=True, check=True).stdout
    assert out == CONTENTS[LONG]


def test_a_header_keeps_its_length_whatever_the_size() -> None:
    """The writer rewrites each header in place once the size is known: GNU headers encode sizes
    past tar's 8 GiB octal field in the same 512 bytes, long names or not."""
    for name in ("database.dump", LONG):
        small = tarfile.TarInfo(name)
        big = tarfile.TarInfo(name)
        big.size = 50 << 30
        assert len(small.tobuf(tarfile.GNU_FORMAT)) == len(big.tobuf(tarfile.GNU_FORMAT))


def test_an_archive_cut_anywhere_is_refused(tmp_path: Path) -> None:
    data = write(tmp_path / "a.tar", CONTENTS).read_bytes()
    cuts = sorted({*range(0, len(data) - 1024, 512), *range(100, len(data) - 1024, 1500)})
    for cut in cuts:
        bad = tmp_path / "cut.tar"
        bad.write_bytes(data[:cut])
        with pytest.raises(archive.ArchiveError) as info:
            archive.Archive.open(bad).close()
        assert "\n" not in str(info.value), cut


def test_any_changed_byte_of_a_member_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tar", CONTENTS)
    with tarfile.open(path) as tar:
        offsets = [(m.name, m.offset_data, m.size) for m in tar.getmembers() if m.name != archive.MANIFEST and m.size]
    data = path.read_bytes()
    for name, offset, size in offsets:
        for at in (offset, offset + size - 1):
            (tmp_path / "bad.tar").write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
            with pytest.raises(archive.ArchiveError, match=f"{name} does not match its checksum"):
                archive.Archive.open(tmp_path / "bad.tar")


@pytest.mark.parametrize(
    ("contents", "listed", "problem"),
    [
        ({archive.DUMP: b"x", "state/radiusd/extra": b"y"}, {archive.DUMP: b"x"}, "is not in the manifest"),
        ({archive.DUMP: b"x"}, {archive.DUMP: b"x", "state/radiusd/gone": b"y"}, "state/radiusd/gone is missing"),
        ({archive.DUMP: b"x", "state/../../etc/passwd": b"y"}, None, "points outside the archive"),
        ({archive.DUMP: b"x", "/etc/passwd": b"y"}, None, "points outside the archive"),
        ({archive.DUMP: b"x", "notes.txt": b"y"}, None, "not part of a lastmile archive"),
        ({"state/radiusd/spool": b"y"}, None, "holds no database.dump"),
    ],
)
def test_an_archive_lastmile_did_not_write_is_refused(
        tmp_path: Path, contents: dict[str, bytes], listed: dict[str, bytes] | None, problem: str) -> None:
    path = write(tmp_path / "a.tar", contents, listed=listed)
    with pytest.raises(archive.ArchiveError, match=problem):
        archive.Archive.open(path)


def test_not_a_tar_and_a_foreign_manifest_are_refused(tmp_path: Path) -> None:
    (tmp_path / "text.tar").write_text("hello\n" * 200)
    with pytest.raises(archive.ArchiveError, match="not a tar file"):
        archive.Archive.open(tmp_path / "text.tar")
    with pytest.raises(archive.ArchiveError, match="no such file"):
        archive.Archive.open(tmp_path / "missing.tar")
    for text, problem in ((b'{"format": "other"}', "not a lastmile backup manifest"),
                          (b'{"format": "lastmile-backup", "format_version": 2}', "of format 2"),
                          (b'{"format": "lastmile-backup", "format_version": 1}', "manifest.json is damaged"),
                          (b"not json", "manifest.json is damaged")):
        with (tmp_path / "m.tar").open("wb") as out:
            writer = archive.Writer(out)
            writer.add_bytes(archive.DUMP, b"x")
            writer.add(archive.MANIFEST, io.BytesIO(text))
            writer.close()
        with pytest.raises(archive.ArchiveError, match=problem):
            archive.Archive.open(tmp_path / "m.tar")
