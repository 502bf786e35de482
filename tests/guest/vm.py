"""Boot a throwaway qemu guest on Debian's kernel that runs this very checkout, and hand back what it wrote.

The guest sees the host's root read-only over 9p under a tmpfs overlay (so it runs exactly this checkout and its
.venv), mounts only cgroup2 at /sys/fs/cgroup, runs one shell script and powers off. Results come back through a
second, writable 9p share (`/guest-io` in the guest); the serial console is kept for the failure message.
KVM is used when a guest boots under it within a short probe, else TCG (nested KVM hangs at boot on some hosts).
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

QEMU = "qemu-system-x86_64"
# The 9p root and its writable overlay, the console and an entropy source, in load order (deps resolved below).
MODULES = ("9p", "9pnet_virtio", "virtio_pci", "overlay", "virtio_rng")
CMDLINE = ("console=ttyS0 panic=-1 loglevel=4 random.trust_cpu=on "
           "systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all")
KVM_PROBE_SECONDS = 10.0
IO_MOUNT = "/guest-io"
REPO = Path(__file__).resolve().parents[2]

INIT = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /modules.order); do insmod /mod/$m.ko || echo "guest: insmod $m failed"; done
mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /lower || echo "guest: no root"
mount -t tmpfs -o mode=755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || echo "guest: no overlay"
R=/newroot
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t cgroup2 -o nsdelegate cgroup2 $R/sys/fs/cgroup
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mount -t tmpfs -o mode=755 tmpfs $R/run
# A checkout under /tmp or /run (CI clones into /tmp) is hidden by those tmpfs mounts: show it again, read-only.
for d in @HIDDEN@; do mkdir -p $R$d && mount -o bind /lower$d $R$d || echo "guest: cannot show $d"; done
mkdir -p $R/run/lock $R@IO@
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 guestio $R@IO@ || echo "guest: no io share"
echo "guest: userspace at $(cut -d' ' -f1 /proc/uptime) s"
cut -d' ' -f1 /proc/uptime > $R@IO@/boot_uptime
if grep -q 'previewd.init=systemd' /proc/cmdline; then
    # Units and files the run brings (io/root mirrors /), then systemd as PID 1 on the overlay.
    [ -d $R@IO@/root ] && cp -a $R@IO@/root/. $R/
    # A host that is itself a container marks it in its root; systemd would then ignore /proc/cmdline.
    rm -f $R/.dockerenv $R/run/.containerenv
    exec switch_root $R /lib/systemd/systemd $(tr ' ' '\n' < /proc/cmdline | grep '^systemd\.unit=')
fi
chroot $R /bin/sh @IO@/run.sh > $R@IO@/run.log 2>&1
echo $? > $R@IO@/exit_code
sync
umount $R@IO@
echo "guest: done"
poweroff -f
"""


@dataclass(frozen=True)
class Kernel:
    """Debian's kernel image and its modules directory."""

    image: Path
    modules: Path


@dataclass(frozen=True)
class Boot:
    """One guest run: how it ran, how long, what it left in the io directory."""

    accel: str  # "kvm" or "tcg"
    wall_seconds: float
    boot_seconds: float | None  # guest uptime when the init script reached userspace; None if it never did
    exit_code: int | None  # the script's, None when it never finished
    io_dir: Path
    console: str

    def log(self) -> str:
        """What the script printed (stdout and stderr), '' if nothing."""
        path = self.io_dir / "run.log"
        return path.read_text(errors="replace") if path.exists() else ""


class GuestError(RuntimeError):
    """The guest could not be built or did not boot; the message says why and quotes the console."""


def find_kernel() -> Kernel:
    """The newest /boot/vmlinuz-* that has a modules directory (linux-image-amd64)."""
    found = []
    for image in Path("/boot").glob("vmlinuz-*"):
        version = image.name.removeprefix("vmlinuz-")
        mods = Path("/lib/modules") / version
        if (mods / "modules.dep").exists():
            found.append((image.stat().st_mtime, Kernel(image, mods)))
    if not found:
        raise GuestError("no Debian kernel with modules in /boot: scripts/install-system-deps.sh installs "
                         "linux-image-amd64")
    return max(found, key=lambda x: x[0])[1]


def module_order(modules: Path, wanted: tuple[str, ...] = MODULES) -> list[Path]:
    """The .ko files for `wanted` and their dependencies, dependencies first (from modules.dep)."""
    deps: dict[str, tuple[Path, list[str]]] = {}
    for line in (modules / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[_modname(path)] = (modules / path, [_modname(d) for d in rest.split()])
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        if key not in deps:
            raise GuestError(f"kernel module {name} not found under {modules}")
        seen.add(key)
        for dep in deps[key][1]:
            visit(dep)
        order.append(deps[key][0])

    for name in wanted:
        visit(name)
    return order


def _modname(path: str) -> str:
    name = Path(path).name
    for suffix in (".xz", ".zst", ".gz"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".ko").replace("-", "_")


class _Cpio:
    """A minimal newc archive writer (what the kernel unpacks as its initramfs)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def add(self, name: str, mode: int, data: bytes = b"") -> None:
        self.ino += 1
        encoded = name.encode() + b"\0"
        fields = (self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        self.buf.write(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_initramfs(dest: Path, kernel: Kernel) -> Path:
    """Write a gzipped initramfs: static busybox, the 9p/overlay modules (decompressed), and the init script."""
    busybox = Path("/bin/busybox")
    if not busybox.exists() or not _is_static(busybox):
        raise GuestError("/bin/busybox is missing or not static: scripts/install-system-deps.sh installs "
                         "busybox-static")
    cpio = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "mod", "tmp"):
        cpio.add(d, 0o040755)
    cpio.add("bin/busybox", 0o100755, busybox.read_bytes())
    for applet in ("sh", "mount", "umount", "insmod", "mkdir", "cut", "cat", "grep", "echo", "chroot", "sync",
                   "poweroff", "switch_root", "sleep", "cp", "rm", "tr"):
        cpio.add(f"bin/{applet}", 0o120777, b"busybox")
    names = []
    for ko in module_order(kernel.modules):
        name = _modname(ko.name)
        names.append(name)
        cpio.add(f"mod/{name}.ko", 0o100644, _decompress(ko))
    cpio.add("modules.order", 0o100644, ("\n".join(names) + "\n").encode())
    cpio.add("init", 0o100755, INIT.replace("@IO@", IO_MOUNT).replace("@HIDDEN@", hidden_paths()).encode())
    dest.write_bytes(gzip.compress(cpio.finish(), compresslevel=1))
    return dest


def hidden_paths(repo: Path = REPO) -> str:
    """The checkout's path when the guest's own tmpfs mounts (/tmp, /run, /dev/shm) would hide it, else nothing."""
    for top in ("/tmp", "/run", "/dev/shm"):
        if repo == Path(top) or Path(top) in repo.parents:
            return str(repo)
    return ""


def _is_static(path: Path) -> bool:
    # No PT_INTERP program header means no dynamic loader: good enough without `file`.
    return b"/lib64/ld-linux" not in path.read_bytes()[:8192]


def _decompress(ko: Path) -> bytes:
    data = ko.read_bytes()
    if ko.suffix == ".xz":
        import lzma

        return lzma.decompress(data)
    if ko.suffix == ".gz":
        return gzip.decompress(data)
    if ko.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(ko)], check=True, capture_output=True).stdout
    return data


def kvm_usable() -> bool:
    """Whether /dev/kvm can be opened for writing (the probe boot below decides whether it really boots)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def qemu_argv(kernel: Kernel, initrd: Path, io_dir: Path, accel: str, *, memory_mb: int, cpus: int,
              extra_cmdline: str = "") -> list[str]:
    """The qemu command line for one guest."""
    if shutil.which(QEMU) is None:
        raise GuestError(f"{QEMU} not found: scripts/install-system-deps.sh installs qemu-system-x86")
    accel_args = ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg,thread=multi",
                                                                            "-cpu", "max"]
    return [
        QEMU, *accel_args, "-m", str(memory_mb), "-smp", str(cpus),
        "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
        "-serial", "stdio", "-monitor", "none",
        "-kernel", str(kernel.image), "-initrd", str(initrd),
        "-append", f"{CMDLINE} {extra_cmdline}".strip(),
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
        "-fsdev", f"local,id=io,path={io_dir},security_model=none",
        "-device", "virtio-9p-pci,fsdev=io,mount_tag=guestio",
        "-device", "virtio-rng-pci",
    ]


class Launcher:
    """Builds the initramfs once and boots guests from it; picks KVM or TCG once per instance."""

    def __init__(self, workdir: Path, *, memory_mb: int = 3072, cpus: int = 2) -> None:
        self.workdir = workdir
        self.kernel = find_kernel()
        self.initrd = build_initramfs(workdir / "initrd.gz", self.kernel)
        self.memory_mb = memory_mb
        self.cpus = cpus
        self._accel: str | None = None
        self.accel_why = ""

    def accel(self) -> str:
        """'kvm' when a guest boots and powers off under KVM within the probe's timeout, else 'tcg'."""
        if self._accel is None:
            self._accel = "tcg"
            if os.environ.get("PREVIEWD_GUEST_ACCEL") == "tcg":
                self.accel_why = "TCG: PREVIEWD_GUEST_ACCEL=tcg"
            elif not kvm_usable():
                self.accel_why = "TCG: /dev/kvm cannot be opened"
            else:
                try:
                    probe = self._boot("true", "kvm", KVM_PROBE_SECONDS)
                except GuestError as err:
                    self.accel_why = f"TCG: a KVM guest did not boot within {KVM_PROBE_SECONDS:g} s ({err})"
                else:
                    if probe.exit_code == 0:
                        self._accel = "kvm"
                        self.accel_why = f"KVM: probe guest booted in {probe.wall_seconds:.1f} s"
                    else:
                        last = [ln for ln in probe.console.splitlines() if ln.strip()][-1:] or ["no output"]
                        self.accel_why = f"TCG: the KVM probe guest did not run its script ({last[0].strip()[:200]})"
        return self._accel

    def boot(self, script: str, timeout: float, *, extra_cmdline: str = "",
             prepare: Callable[[Path], None] | None = None) -> Boot:
        """Boot one guest that runs `script` (sh) as root in the shared root, then powers off.

        `prepare(io_dir)` may add files first: `io_dir/root` is copied over the guest's / in systemd mode.
        """
        return self._boot(script, self.accel(), timeout, extra_cmdline, prepare)

    def _boot(self, script: str, accel: str, timeout: float, extra_cmdline: str = "",
              prepare: Callable[[Path], None] | None = None) -> Boot:
        io_dir = Path(tempfile.mkdtemp(prefix=f"io-{accel}-", dir=self.workdir))
        io_dir.chmod(0o755)
        (io_dir / "run.sh").write_text(script + "\n")
        if prepare is not None:
            prepare(io_dir)
        argv = qemu_argv(self.kernel, self.initrd, io_dir, accel, memory_mb=self.memory_mb, cpus=self.cpus,
                         extra_cmdline=extra_cmdline)
        console_path = io_dir.parent / f"{io_dir.name}.console"
        t0 = time.monotonic()
        with open(console_path, "wb") as console:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                tail = console_path.read_text(errors="replace")[-3000:]
                raise GuestError(f"{accel} guest still running after {timeout:g} s; console tail:\n{tail}") from None
        wall = time.monotonic() - t0
        text = console_path.read_text(errors="replace")
        code_file = io_dir / "exit_code"
        uptime_file = io_dir / "boot_uptime"
        return Boot(
            accel=accel,
            wall_seconds=wall,
            boot_seconds=float(uptime_file.read_text()) if uptime_file.exists() else None,
            exit_code=int(code_file.read_text()) if code_file.exists() else None,
            io_dir=io_dir,
            console=text,
        )
