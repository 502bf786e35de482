"""The guest's pieces that need no boot: module order from modules.dep, and an initramfs the kernel can unpack."""

from __future__ import annotations

import gzip
import subprocess
from pathlib import Path

from tests.guest.harness import REPO
from tests.guest.vm import _modname, build_initramfs, find_kernel, hidden_paths, module_order


def test_modules_come_after_their_dependencies() -> None:
    names = [_modname(p.name) for p in module_order(find_kernel().modules)]
    for dep, user in (("9pnet", "9pnet_virtio"), ("netfs", "9p"), ("virtio", "virtio_pci"), ("9pnet", "9p")):
        assert names.index(dep) < names.index(user), names
    assert len(names) == len(set(names))


def test_initramfs_lists_init_busybox_and_the_modules(tmp_path: Path) -> None:
    kernel = find_kernel()
    image = build_initramfs(tmp_path / "initrd.gz", kernel)
    listing = subprocess.run(["/bin/busybox", "cpio", "-t"], input=gzip.decompress(image.read_bytes()),
                             capture_output=True, check=True).stdout.decode().split()
    assert {"init", "bin/busybox", "bin/sh", "mod/9p.ko", "mod/overlay.ko", "modules.order"} <= set(listing)


def test_a_checkout_under_the_guests_own_tmpfs_is_shown_again() -> None:
    # CI clones into /tmp, which the guest mounts a fresh tmpfs over: the checkout must be bound back.
    assert hidden_paths(Path("/tmp/ci")) == "/tmp/ci"
    assert hidden_paths(Path("/run/user/0/x")) == "/run/user/0/x"
    assert hidden_paths(Path("/work/main")) == ""
    assert hidden_paths(Path("/tmpx/ci")) == ""


def test_the_drivers_signature_is_the_daemons() -> None:
    from daemon.core.signing import sign_v2 as daemon_sign
    from tests.guest.service_driver import sign_v2

    args = ("POST", "/build-preview-for-new-project?wait=false", "1765000000.123456", b'{"userId": "alice"}')
    assert sign_v2("s3cret", *args) == daemon_sign("s3cret", *args)


def test_the_guests_config_is_installs_with_the_test_generator(tmp_path: Path) -> None:
    from daemon.core.config import load
    from tests.guest.service import guest_config

    installed = (REPO / "config.example.toml").read_text()
    path = tmp_path / "config.toml"
    path.write_text(guest_config(installed))
    cfg = load(path, env={"PREVIEWD_HMAC_SECRET": "x" * 32})
    assert cfg.generator.backend == "command" and cfg.generator.command[0] == "/usr/bin/python3"
    assert (cfg.limits.memory_mb, cfg.server.shutdown_grace_s, cfg.render.enabled) == (256, 5.0, False)
