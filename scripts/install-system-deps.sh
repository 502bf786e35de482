#!/usr/bin/env bash
# Debian packages previewd uses, installed when missing; idempotent.
#   scripts/install-system-deps.sh            everything the test suite exercises for real:
#       chromium   - the render check (headless, DevTools pipe)
#       bubblewrap - the isolation layer every build step runs in
#       haproxy    - the fleet's example proxy config (packaging/haproxy-fleet.cfg), run by its test
#       qemu-system-x86, linux-image-amd64, busybox-static - the cgroup v2 guest tests/guest boots (Debian's
#                    kernel with the 9p modules, a busybox initramfs)
#   scripts/install-system-deps.sh --run      what `make run` uses: bubblewrap, and chromium when it can.
#       Installs them when this shell is root (or has sudo). Without root, a missing bubblewrap is an error that
#       prints the exact command (the daemon refuses every build without it: sandbox_unavailable); a missing
#       chromium is a note with the command, and the daemon runs without screenshots (render status unavailable).
set -euo pipefail
wanted=(chromium bubblewrap haproxy qemu-system-x86 linux-image-amd64 busybox-static)
if [ "${1:-}" = "--run" ]; then
  wanted=(bubblewrap)
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; then
      wanted+=(chromium)
    else
      echo "note: Chromium is not installed, so previews get no screenshots and no visual diff (render status" >&2
      echo "      'unavailable'); builds and previews work without it. To add it:  sudo apt-get install -y chromium" >&2
    fi
  fi
fi
missing=()
for pkg in "${wanted[@]}"; do
  case $pkg in
    chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
    bubblewrap) command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap) ;;
    haproxy) command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy) ;;
    qemu-system-x86) command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86) ;;
    linux-image-amd64) ls /boot/vmlinuz-* >/dev/null 2>&1 && ls -d /lib/modules/*/kernel/fs/9p >/dev/null 2>&1 \
                         || missing+=(linux-image-amd64) ;;
    busybox-static) dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static) ;;
  esac
done
if [ ${#missing[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "previewd needs ${missing[*]} and apt-get is not available: install them with your package manager" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if [ "${1:-}" = "--run" ] && ! sudo -n true 2>/dev/null; then
      echo "previewd refuses to build without its isolation layer. Install it, then run make run again:" >&2
      echo "    sudo apt-get install -y ${missing[*]}" >&2
      echo "(or, on a developer laptop only, set [sandbox] allow_unconfined = true in your config)" >&2
      exit 1
    fi
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  plain=() guest=()
  for pkg in "${missing[@]}"; do
    case $pkg in qemu-system-x86|linux-image-amd64|busybox-static) guest+=("$pkg") ;; *) plain+=("$pkg") ;; esac
  done
  [ ${#plain[@]} -eq 0 ] || $SUDO apt-get install -y -q "${plain[@]}"
  # The guest needs no firmware, UEFI or network-boot ROMs: recommends would add hundreds of MB.
  [ ${#guest[@]} -eq 0 ] || $SUDO apt-get install -y -q --no-install-recommends "${guest[@]}"
fi
# Installed is not enough: Ubuntu 24.04's AppArmor blocks the unprivileged user namespaces bubblewrap uses.
if printf '%s\n' "${wanted[@]}" | grep -qx bubblewrap \
   && ! bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --unshare-net -- true 2>/dev/null; then
  echo "bubblewrap is installed but cannot create its namespaces here. Either run the daemon as root, or allow" >&2
  echo "unprivileged user namespaces:  sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" >&2
  exit 1
fi
