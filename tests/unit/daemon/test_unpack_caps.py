"""Unpacking is capped wherever an artifact or a pack is expanded (issue 24): artifact zips are held to the build
output's caps and name rules before anything is written; a pack zip's entries to caps of their own."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path

import pytest

from daemon.history import HistoryError
from daemon.history.packing import read_zip
from daemon.publish.artifacts import extract_artifact
from sandbox import export

CAPS = export.Caps(total_bytes=10_000, entries=20, file_bytes=4_000)


def _zip(path: Path, entries: dict[str, bytes], link: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/shadow")
    return path


def test_an_artifact_within_the_caps_unpacks_and_reports_what_it_cost(tmp_path: Path) -> None:
    z = _zip(tmp_path / "a.zip", {"index.html": b"<h1>x</h1>", "assets/a.js": b"js"})
    (tmp_path / "out").mkdir()
    rep = extract_artifact(z, tmp_path / "out", CAPS)
    assert (rep.files, rep.bytes) == (2, 12)
    assert (tmp_path / "out" / "assets" / "a.js").read_bytes() == b"js"


@pytest.mark.parametrize(("entries", "link", "words"), [
    ({f"e{i}": b"" for i in range(21)}, None, "over the cap of 20"),  # empty files: no byte, but each counts
    ({"big.bin": b"\0" * 4_001}, None, "over the per-file cap"),
    ({f"f{i}": b"\0" * 3_000 for i in range(4)}, None, "unpacks past 10000 bytes"),  # a bomb: deflates to nothing
    ({"index.html": b"x"}, "passwd", "is a link"),
    ({"../escape.html": b"x"}, None, "'.' or '..'"),
    ({"a\x01b.html": b"x"}, None, "control character"),
])
def test_an_artifact_past_a_cap_or_with_a_bad_entry_writes_nothing(tmp_path: Path, entries: dict[str, bytes],
                                                                   link: str | None, words: str) -> None:
    z = _zip(tmp_path / "a.zip", entries, link)
    (tmp_path / "out").mkdir()
    with pytest.raises(ValueError) as exc:
        extract_artifact(z, tmp_path / "out", CAPS)
    assert words in str(exc.value)
    assert not any((tmp_path / "out").iterdir()) and not (tmp_path / "escape.html").exists()


def test_a_pack_zip_whose_manifest_inflates_past_its_cap_is_corrupt(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b" " * (9 * 2**20))  # 9 MiB of blanks: a few KiB deflated
        zf.writestr("objects.pack", b"PACK")
        zf.writestr("objects.idx", b"IDX")
    assert len(buf.getvalue()) < 64 * 1024
    with pytest.raises(HistoryError) as exc:
        read_zip("bomb.pack.zip", buf.getvalue())
    assert exc.value.code == "corrupt_pack" and "manifest.json declares more than" in str(exc.value.message)
