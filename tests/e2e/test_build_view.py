"""A build step's view of the host (bubblewrap): the system read-only, the daemon's state and secret hidden."""

from __future__ import annotations

from pathlib import Path

from tests.fakes.tiny_generator import generator_config, write_generator
from tests.support.live import LiveDaemon

# The build reports what it could see and write into its own page.
PROBE = '''
data = "DATA_DIR"
build = ("mkdir -p dist && { "
         f"test -s {data}/state.db && echo state=visible || echo state=hidden; "
         f"test -s {data}/hmac_secret && echo secret=visible || echo secret=hidden; "
         "touch /etc/previewd-probe 2>/dev/null && echo etc=writable || echo etc=readonly; "
         f"ls {data}/logs 2>/dev/null | grep -q log && echo logs=visible || echo logs=hidden; "
         "} > dist/index.html")
files = {"README.md": req["prompt"]}
'''


def test_build_sees_the_host_read_only_and_not_the_daemon_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gen = write_generator(tmp_path, PROBE.replace("DATA_DIR", str(data)))
    d = LiveDaemon(tmp_path, generator_config(gen, "[render]\nenabled = false\n")).start()
    try:
        (data / "hmac_secret").write_text("not for builds\n")
        first = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "a", "prompt": "x"}).json()
        assert first["success"] is True, first
        second = d.post("/build-preview-for-new-project", {"userId": "u", "projectId": "b", "prompt": "y"}).json()
        page = d.preview(second["previewUrl"]).text.split()
        assert page == ["state=hidden", "secret=hidden", "etc=readonly", "logs=hidden"], page
        assert (data / "state.db").stat().st_size > 0 and any((data / "logs").iterdir())
        assert not Path("/etc/previewd-probe").exists()
    finally:
        d.stop()
