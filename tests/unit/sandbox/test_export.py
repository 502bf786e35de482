"""sandbox.export, the one door out of a step's view: links at any depth are never followed (a link inside the
exported dir to a regular file crosses as a copy), only regular files with one name cross, caps are checked on
fstat before reading, names are checked, and a thread racing the walk with swapped links gets nothing outside."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from sandbox import export

SECRET = b"the-data-dirs-hmac-secret"
CAPS = export.Caps(total_bytes=1 << 20, entries=100, file_bytes=1 << 19, depth=8)


def _tree(root: Path) -> dict[str, bytes]:
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for n in files:
            p = Path(dirpath) / n
            assert not p.is_symlink()
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "hmac_secret").write_bytes(SECRET)
    return d


def test_links_are_dropped_at_any_depth_and_inside_links_cross_as_copies(tmp_path: Path, outside: Path) -> None:
    dist = tmp_path / "work" / "dist"
    (dist / "sub" / "deep").mkdir(parents=True)
    (dist / "index.html").write_text("<h1>hi</h1>")
    (dist / "sub" / "deep" / "a.js").write_text("js")
    os.symlink(outside, dist / "data")  # a dir link out
    os.symlink(outside / "hmac_secret", dist / "sub" / "deep" / "key")  # a file link out, deep
    os.symlink("../../../outside/hmac_secret", dist / "sub" / "rel")  # relative, climbing out
    os.symlink("../index.html", dist / "sub" / "alias.html")  # inside: crosses as a copy
    os.symlink("sub", dist / "subdir-alias")  # a link to a dir inside: dropped
    os.mkfifo(dist / "pipe")  # would block a plain open
    os.link(outside / "hmac_secret", dist / "hard")  # a second name of a file outside
    (dist / ".git").mkdir()
    (dist / ".git" / "config").write_text("x")
    lines: list[str] = []
    rep = export.export_tree(tmp_path / "work", ["dist"], tmp_path / "staged", CAPS, lines.append)
    got = _tree(tmp_path / "staged")
    assert got == {"index.html": b"<h1>hi</h1>", "sub/deep/a.js": b"js", "sub/alias.html": b"<h1>hi</h1>"}
    assert (rep.files, rep.bytes) == (3, 2 * len("<h1>hi</h1>") + 2)
    text = "\n".join(lines)
    for expected in ("dropped link data -> ", "dropped link sub/deep/key -> ", "dropped link sub/rel -> ",
                     "dropped link subdir-alias -> sub", "dropped pipe: not a regular file",
                     "dropped hard: a hard link", "resolved link sub/alias.html -> ../index.html",
                     "dropped .git: never exported"):
        assert expected in text, (expected, text)


def test_the_start_must_be_a_real_dir_below_the_root(tmp_path: Path, outside: Path) -> None:
    (tmp_path / "work" / "apps").mkdir(parents=True)
    os.symlink(outside, tmp_path / "work" / "apps" / "web")  # an intermediate component is a link
    os.symlink(outside, tmp_path / "work" / "dist")
    for rel in (["apps", "web", "dist"], ["dist"], ["missing"]):
        with pytest.raises(export.Refused) as exc:
            export.export_tree(tmp_path / "work", rel, tmp_path / "staged", CAPS)
        assert exc.value.kind == "no_dir"
        assert not (tmp_path / "staged").exists()


@pytest.mark.parametrize(("name", "why"), [(b"caf\xe9.html", "not valid UTF-8"), (b"a\nb.html", "control"),
                                           (b"a\\b.html", "backslash")])
def test_bad_names_refuse_the_export_naming_the_file(tmp_path: Path, name: bytes, why: str) -> None:
    dist = tmp_path / "work" / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("x")
    with open(os.path.join(os.fsencode(dist / "assets"), name), "wb") as fh:
        fh.write(b"x")
    with pytest.raises(export.Refused) as exc:
        export.export_tree(tmp_path / "work", ["dist"], tmp_path / "staged", CAPS)
    assert exc.value.kind == "invalid_name" and why in exc.value.why
    shown = export.shown(exc.value.rel)
    assert shown.startswith("assets/") and shown.isprintable() and shown.isascii()
    assert not (tmp_path / "staged").exists()  # nothing half-copied left


@pytest.mark.parametrize(("files", "size", "kind", "words"), [
    (3, (1 << 19) + 1, "too_big", "byte cap per file"),  # one file past the per-file cap
    (3, 400_000, "too_big", "passes 1048576 bytes"),  # all together past the total
    (150, 0, "too_many", "more than 100 files"),  # empty files cost no byte but count
])
def test_caps_are_checked_before_reading(tmp_path: Path, files: int, size: int, kind: str, words: str) -> None:
    dist = tmp_path / "work" / "dist"
    dist.mkdir(parents=True)
    for i in range(files):
        with open(dist / f"f{i:03d}", "wb") as fh:
            fh.truncate(size)  # sparse: apparent size counts, not what the disk pays
    with pytest.raises(export.Refused) as exc:
        export.export_tree(tmp_path / "work", ["dist"], tmp_path / "staged", CAPS)
    assert exc.value.kind == kind and words in exc.value.why


def test_depth_is_capped(tmp_path: Path) -> None:
    deep = tmp_path / "work" / "dist" / "/".join(["d"] * 12)
    deep.mkdir(parents=True)
    with pytest.raises(export.Refused) as exc:
        export.export_tree(tmp_path / "work", ["dist"], tmp_path / "staged", CAPS)
    assert exc.value.kind == "too_many" and "deeper than 8" in exc.value.why


def test_a_racing_thread_swapping_entries_for_links_gets_nothing_outside(tmp_path: Path, outside: Path) -> None:
    work = tmp_path / "work"
    dist = work / "dist"
    (dist / "sub").mkdir(parents=True)
    for i in range(40):
        (dist / f"a{i:02d}.txt").write_text("page " * 200)
    (dist / "sub" / "hmac_secret").write_text("benign")
    (dist / "z.txt").write_text("benign")
    stop = threading.Event()
    swaps = 0

    def attacker() -> None:  # flips sub/ and z.txt between the real thing and links to the secret, nonstop
        nonlocal swaps
        while not stop.is_set():
            for real, link, target in ((dist / "sub", dist / "sub.link", outside),
                                       (dist / "z.txt", dist / "z.link", outside / "hmac_secret")):
                os.symlink(target, link)
                os.rename(real, real.with_suffix(".real"))
                os.rename(link, real)
                os.unlink(real)
                os.rename(real.with_suffix(".real"), real)
                swaps += 1

    t = threading.Thread(target=attacker, daemon=True)
    t.start()
    try:
        for i in range(60):
            export.export_tree(work, ["dist"], tmp_path / f"s{i}", CAPS)
            got = _tree(tmp_path / f"s{i}")
            assert not any(SECRET in v for v in got.values()), i
    finally:
        stop.set()
        t.join()
    assert swaps > 0


def test_never_more_than_the_size_counted_is_copied(tmp_path: Path) -> None:
    """A file the code keeps growing after the fstat crosses at the size counted against the caps."""
    (tmp_path / "big").write_bytes(b"x" * 5000)
    src = os.open(tmp_path / "big", os.O_RDONLY)
    dst = os.open(tmp_path / "copy", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        assert export._copy(src, dst, 1234) == 1234
    finally:
        os.close(src)
        os.close(dst)
    assert (tmp_path / "copy").stat().st_size == 1234
