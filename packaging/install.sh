#!/usr/bin/env bash
# Install (or upgrade, or remove) previewd on a Debian/Ubuntu droplet. Idempotent: a second run changes nothing.
#
#   sudo ./install.sh [--exe previewd.pyz] [--unit previewd.service]    install or upgrade, then start
#   sudo ./install.sh --uninstall [--purge]                             remove; --purge also drops config, data, user
#   ./install.sh --root DIR --no-systemctl                              lay everything out under DIR (tests, images)
#
# Places: /opt/previewd/bin/previewd (+ daemonctl symlink, previewd.prev = the one before the last upgrade),
# /opt/previewd/lib (unpacked dependencies), /opt/previewd/tools (pnpm), /etc/previewd/config.toml (root:previewd
# 0640), /etc/previewd/env (secrets, root 0600), /etc/systemd/system/previewd.service, /usr/local/bin/daemonctl,
# /var/lib/previewd (data, previewd 0700). Existing config and env files are never overwritten.
set -euo pipefail
# useradd, groupadd live in sbin, which a non-login root shell may not have on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

PNPM_VERSION="10.34.9"
NODE_MIN_MAJOR=20
# Used only when no Node.js 20+ is installed and apt offers none: the official tarball, checksum-verified.
NODE_TARBALL_VERSION="v20.18.1"
SERVICE="previewd"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT=""
EXE=""
UNIT=""
NODE=""
DO_SYSTEMCTL=1
MODE="install"
STAGE=""
PURGE=0
CHANGED=0

usage() {
  sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() { echo "install.sh: error: $*" >&2; exit 1; }
say() { echo "install.sh: $*"; }
changed() { CHANGED=$((CHANGED + 1)); say "$*"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --exe) EXE="${2:?--exe needs a file}"; shift 2 ;;
    --unit) UNIT="${2:?--unit needs a file}"; shift 2 ;;
    --node) NODE="${2:?--node needs an executable}"; shift 2 ;;
    --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
    --no-systemctl) DO_SYSTEMCTL=0; shift ;;
    --uninstall) MODE="uninstall"; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

if [ -n "$ROOT" ]; then
  mkdir -p "$ROOT"
  ROOT="$(cd "$ROOT" && pwd)"
  [ "$ROOT" != "/" ] || ROOT=""
fi
[ "$(id -u)" -eq 0 ] || [ -n "$ROOT" ] || die "run as root (sudo), or pass --root DIR"
if [ "$PURGE" -eq 1 ] && [ "$MODE" != "uninstall" ]; then die "--purge goes with --uninstall"; fi

# Paths as the droplet sees them; every write goes to $ROOT$path.
OPT=/opt/previewd
BIN=$OPT/bin
LIB=$OPT/lib
TOOLS=$OPT/tools
ETC=/etc/previewd
CONFIG=$ETC/config.toml
ENVFILE=$ETC/env
DATA=/var/lib/previewd
UNIT_DST=/etc/systemd/system/$SERVICE.service
CTL_WRAPPER=/usr/local/bin/daemonctl
PNPM_BIN=$TOOLS/node_modules/.bin/pnpm

systemctl_() {
  if [ "$DO_SYSTEMCTL" -eq 1 ]; then systemctl "$@"; fi
}

# --- small idempotent helpers --------------------------------------------------------------------------------

ensure_dir() {  # ensure_dir PATH MODE OWNER:GROUP
  local p="$ROOT$1"
  if [ ! -d "$p" ]; then
    mkdir -p "$p"
    changed "created $1"
  fi
  [ "$(stat -c %a "$p")" = "${2#0}" ] || { chmod "$2" "$p"; changed "chmod $2 $1"; }
  [ "$(stat -c %u:%g "$p")" = "$3" ] || { chown "$3" "$p"; changed "chown $3 $1"; }
}

place_file() {  # place_file SRC DEST MODE OWNER:GROUP  -- copy when the content differs, then fix mode/owner
  local src="$1" dst="$ROOT$2"
  if ! cmp -s "$src" "$dst"; then
    mkdir -p "$(dirname "$dst")"
    cp "$src" "$dst.new"
    chmod "$3" "$dst.new"
    mv -f "$dst.new" "$dst"
    changed "placed $2"
  fi
  [ "$(stat -c %a "$dst")" = "${3#0}" ] || { chmod "$3" "$dst"; changed "chmod $3 $2"; }
  [ "$(stat -c %u:%g "$dst")" = "$4" ] || { chown "$4" "$dst"; changed "chown $4 $2"; }
}

find_input() {  # find_input NAME CANDIDATE...  -- first existing file
  local name="$1"; shift
  local c
  for c in "$@"; do
    if [ -f "$c" ]; then echo "$c"; return 0; fi
  done
  die "cannot find the $name (looked at: $*); pass it explicitly"
}

node_major() {  # node_major EXE -> major version, or nothing
  "$1" --version 2>/dev/null | sed -n 's/^v\([0-9][0-9]*\)\..*/\1/p'
}

ids_of() {  # ids_of USER -> uid:gid from $ROOT/etc/passwd
  [ -f "$ROOT/etc/passwd" ] || return 0
  awk -F: -v u="$1" '$1 == u { print $3 ":" $4 }' "$ROOT/etc/passwd"
}

# --- install steps -------------------------------------------------------------------------------------------

check_python() {
  command -v python3 >/dev/null || die "python3 is required (apt-get install python3); previewd needs Python 3.11+"
  python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || die "python3 is $(python3 -V 2>&1); previewd needs Python 3.11+ (Debian 12, Ubuntu 24.04 or newer)"
}

ensure_user() {
  if [ -n "$ROOT" ]; then
    # useradd --prefix edits $ROOT/etc/{passwd,group,shadow,gshadow}; they must exist first.
    mkdir -p "$ROOT/etc"
    local f
    for f in passwd group shadow gshadow; do [ -e "$ROOT/etc/$f" ] || install -m 0644 /dev/null "$ROOT/etc/$f"; done
  fi
  local prefix=()
  [ -z "$ROOT" ] || prefix=(--prefix "$ROOT")
  if ! awk -F: '$1 == "previewd" { found = 1 } END { exit !found }' "$ROOT/etc/group"; then
    groupadd "${prefix[@]}" --system previewd
    changed "created group previewd"
  fi
  if [ -z "$(ids_of previewd)" ]; then
    useradd "${prefix[@]}" --system --gid previewd --home-dir "$DATA" --no-create-home \
      --shell /usr/sbin/nologin --comment "previewd build daemon" previewd
    changed "created user previewd"
  fi
}

install_node_tarball() {
  local arch
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) die "no Node.js tarball for $(uname -m); install Node.js ${NODE_MIN_MAJOR}+ and pass --node" ;;
  esac
  local name="node-$NODE_TARBALL_VERSION-linux-$arch.tar.xz"
  local base="https://nodejs.org/dist/$NODE_TARBALL_VERSION"
  if [ -z "$ROOT" ] && ! { command -v curl && command -v xz; } >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q curl xz-utils ca-certificates >/dev/null
  fi
  local tmp
  tmp="$(mktemp -d)"
  say "downloading Node.js $NODE_TARBALL_VERSION ($name)"
  curl -fsSL -o "$tmp/$name" "$base/$name"
  curl -fsSL -o "$tmp/SHASUMS256.txt" "$base/SHASUMS256.txt"
  (cd "$tmp" && grep " $name\$" SHASUMS256.txt | sha256sum -c --quiet -) || die "Node.js tarball checksum mismatch"
  mkdir -p "$ROOT$OPT/node"
  tar -xJf "$tmp/$name" -C "$ROOT$OPT/node" --strip-components=1
  rm -rf "$tmp"
  changed "installed Node.js $NODE_TARBALL_VERSION in $OPT/node"
}

ensure_node() {
  # Prefer: --node, then our own tarball install, then node on PATH, then apt (if it offers 20+), then the tarball.
  if [ -n "$NODE" ]; then
    [ "$(node_major "$NODE")" -ge "$NODE_MIN_MAJOR" ] 2>/dev/null || die "--node $NODE is not Node.js ${NODE_MIN_MAJOR}+"
    return
  fi
  if [ -x "$ROOT$OPT/node/bin/node" ] && [ "$(node_major "$ROOT$OPT/node/bin/node")" -ge "$NODE_MIN_MAJOR" ]; then
    NODE="$OPT/node/bin/node"
    return
  fi
  local found
  found="$(command -v node || true)"
  if [ -n "$found" ] && [ "$(node_major "$found")" -ge "$NODE_MIN_MAJOR" ] 2>/dev/null; then
    NODE="$(readlink -f "$found")"
    return
  fi
  if [ -z "$ROOT" ] && command -v apt-get >/dev/null; then
    apt-get update -q >/dev/null
    local cand
    cand="$(apt-cache policy nodejs | sed -n 's/^ *Candidate: \([0-9]*\)\..*/\1/p')"
    if [ -n "$cand" ] && [ "$cand" -ge "$NODE_MIN_MAJOR" ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
      changed "installed nodejs $(node --version) and npm from apt"
      NODE="$(readlink -f "$(command -v node)")"
      return
    fi
  fi
  install_node_tarball
  NODE="$OPT/node/bin/node"
}

ensure_system_packages() {
  # bubblewrap gives builds their read-only view of the host (and, for this non-root service, their empty
  # network namespace); chromium runs the render check. Both are optional: without them `previewd doctor`
  # says what is off. Only on the real system, never into a --root scratch tree.
  [ -z "$ROOT" ] && command -v apt-get >/dev/null || return 0
  local missing=()
  command -v bwrap >/dev/null || missing+=(bubblewrap)
  command -v chromium >/dev/null || missing+=(chromium)
  [ ${#missing[@]} -gt 0 ] || return 0
  say "installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null || \
    say "warning: could not install ${missing[*]}; previewd runs without them (see previewd doctor)"
}

ensure_pnpm() {
  local pnpm="$ROOT$PNPM_BIN" nodedir
  # NODE is the droplet's path: under $ROOT when we installed it, else the host's own node.
  if [ -x "$ROOT$NODE" ]; then nodedir="$(dirname "$ROOT$NODE")"; else nodedir="$(dirname "$NODE")"; fi
  if [ -x "$pnpm" ] && [ "$(PATH="$nodedir:$PATH" "$pnpm" --version 2>/dev/null)" = "$PNPM_VERSION" ]; then
    return
  fi
  local npm="$nodedir/npm"
  [ -x "$npm" ] || npm="$(command -v npm || true)"
  [ -n "$npm" ] || die "npm not found next to $NODE or on PATH (apt-get install npm)"
  mkdir -p "$ROOT$TOOLS"
  PATH="$nodedir:$PATH" "$npm" install --prefix "$ROOT$TOOLS" --no-fund --no-audit --loglevel=error \
    "pnpm@$PNPM_VERSION" >/dev/null
  [ "$(PATH="$nodedir:$PATH" "$pnpm" --version)" = "$PNPM_VERSION" ] || die "pnpm $PNPM_VERSION did not install"
  changed "installed pnpm $PNPM_VERSION in $TOOLS"
}

run_previewd() {  # the installed executable, unpacking into (and reading from) $LIB
  SHIV_ROOT="$ROOT$LIB" "$ROOT$BIN/previewd" "$@"
}

check_exe() {  # check_exe PYZ -- a previewd build whose compiled parts match this python3, or die
  python3 - "$1" <<'PY' || die "$1 cannot run on this machine (see above)"
import re, sys, zipfile
try:
    src = zipfile.ZipFile(sys.argv[1]).read("site-packages/previewd_build_info.py").decode()
except (OSError, KeyError, zipfile.BadZipFile) as exc:
    sys.exit(f"{sys.argv[1]}: not a previewd build from `make package` ({exc})")
want = re.search(r'"python": "([0-9.]+)"', src).group(1)
have = f"{sys.version_info[0]}.{sys.version_info[1]}"
if want != have:
    sys.exit(f"{sys.argv[1]} was built for Python {want}, but python3 here is {have}. "
             f"Try: `make package PYTHON=python{have}` on a machine with that Python.")
PY
}

build_id() {  # build_id PYZ -> shiv build id
  python3 -c 'import json, sys, zipfile; print(json.loads(zipfile.ZipFile(sys.argv[1]).read("environment.json"))["build_id"])' "$1"
}

ensure_executable() {
  local dst="$ROOT$BIN/previewd"
  ensure_dir "$OPT" 0755 0:0
  ensure_dir "$BIN" 0755 0:0
  ensure_dir "$LIB" 0755 0:0
  if [ -f "$dst" ] && ! cmp -s "$EXE" "$dst"; then
    cp -p "$dst" "$dst.prev"
    changed "kept the previous executable as $BIN/previewd.prev (rollback: install.sh --exe $BIN/previewd.prev)"
  fi
  place_file "$EXE" "$BIN/previewd" 0755 0:0
  if [ "$(readlink "$ROOT$BIN/daemonctl" 2>/dev/null)" != "previewd" ]; then
    ln -sfn previewd "$ROOT$BIN/daemonctl"
    changed "linked $BIN/daemonctl -> previewd"
  fi
  # Unpack the dependencies as root, world-readable, so the service only ever reads them (ProtectSystem=strict).
  local id
  id="$(build_id "$dst")"
  if [ ! -d "$ROOT$LIB/previewd_$id" ]; then
    (umask 022 && run_previewd build-info >/dev/null)
    changed "unpacked build $id into $LIB"
  fi
  # Keep the unpacked trees of the current and the previous executable only.
  local keep_prev="" d
  [ ! -f "$dst.prev" ] || keep_prev="$(build_id "$dst.prev")"
  for d in "$ROOT$LIB"/previewd_* "$ROOT$LIB"/.previewd_*_lock; do
    [ -e "$d" ] || continue
    case "$d" in *"$id"*) continue ;; esac
    if [ -n "$keep_prev" ]; then case "$d" in *"$keep_prev"*) continue ;; esac; fi
    rm -rf "$d"
    changed "removed old unpacked build ${d#"$ROOT"}"
  done
}

ensure_config() {
  ensure_dir "$ETC" 0750 "0:$(ids_of previewd | cut -d: -f2)"
  if [ -e "$ROOT$CONFIG" ]; then
    say "kept existing $CONFIG"
  else
    local tmp
    tmp="$(mktemp)"
    # The executable prints config.example.toml for exactly its own keys; set the droplet's paths in [paths].
    run_previewd config-example | awk -v data="$DATA" -v pnpm="$PNPM_BIN" -v node="$NODE" '
      /^\[/ { section = $0 }
      section == "[paths]" && /^data_dir = / { print "data_dir = \"" data "\""; next }
      section == "[paths]" && /^pnpm = / { print "pnpm = \"" pnpm "\""; next }
      section == "[paths]" && /^node = / { print "node = \"" node "\""; next }
      { print }' >"$tmp"
    if ! PREVIEWD_DATA_DIR="" run_previewd --config "$tmp" check-config >/dev/null; then
      rm -f "$tmp"
      die "the generated config does not validate (see above)"
    fi
    place_file "$tmp" "$CONFIG" 0640 "0:$(ids_of previewd | cut -d: -f2)"
    rm -f "$tmp"
  fi
  [ "$(stat -c %u "$ROOT$CONFIG")" = 0 ] || { chown 0 "$ROOT$CONFIG"; changed "chown root $CONFIG"; }
}

ensure_secrets() {
  if [ -e "$ROOT$ENVFILE" ]; then
    say "kept existing $ENVFILE"
  else
    local tmp
    tmp="$(umask 077 && mktemp)"
    {
      echo "# previewd secrets: read by systemd (EnvironmentFile=) as root. Keep this file root-only, mode 0600."
      echo "PREVIEWD_HMAC_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
      echo "PREVIEWD_CF_WEBHOOK_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
      echo "# Needed by the remote backends chosen in config.toml:"
      echo "#CLOUDFLARE_API_TOKEN="
      echo "#PREVIEWD_PG_DSN="
      echo "#PREVIEWD_S3_ACCESS_KEY_ID="
      echo "#PREVIEWD_S3_SECRET_ACCESS_KEY="
    } >"$tmp"
    place_file "$tmp" "$ENVFILE" 0600 0:0
    rm -f "$tmp"
    say "generated secrets in $ENVFILE (not printed)"
  fi
  [ "$(stat -c %a "$ROOT$ENVFILE")" = 600 ] || { chmod 0600 "$ROOT$ENVFILE"; changed "chmod 0600 $ENVFILE"; }
  [ "$(stat -c %u:%g "$ROOT$ENVFILE")" = 0:0 ] || { chown 0:0 "$ROOT$ENVFILE"; changed "chown root $ENVFILE"; }
}

ensure_ctl_wrapper() {
  local tmp
  tmp="$(mktemp)"
  cat >"$tmp" <<EOF
#!/bin/sh
# Written by previewd's install.sh: daemonctl with the service's config and secrets (run it as root).
set -eu
if [ -r $ENVFILE ]; then
  while IFS= read -r line; do
    case "\$line" in ''|'#'*) continue ;; *=*) export "\${line%%=*}=\${line#*=}" ;; esac
  done < $ENVFILE
fi
export PREVIEWD_CONFIG="\${PREVIEWD_CONFIG:-$CONFIG}" PREVIEWD_DATA_DIR="\${PREVIEWD_DATA_DIR:-$DATA}"
export SHIV_ROOT="\${SHIV_ROOT:-$LIB}"
exec $BIN/previewd daemonctl "\$@"
EOF
  place_file "$tmp" "$CTL_WRAPPER" 0755 0:0
  rm -f "$tmp"
}

health_check() {
  local url
  url="$(python3 - "$ROOT$CONFIG" <<'PY'
import sys, tomllib
server = tomllib.load(open(sys.argv[1], "rb")).get("server", {})
host = server.get("host", "127.0.0.1")
host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
print(f"http://{host}:{server.get('port', 8080)}/healthz")
PY
)"
  if [ "$DO_SYSTEMCTL" -eq 1 ]; then
    local i
    for i in $(seq 1 60); do
      if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url" 2>/dev/null
      then say "previewd is up: $url"; break; fi
      [ "$i" -lt 60 ] || say "previewd did not answer $url within 60 s; see: journalctl -u $SERVICE -n 50"
      sleep 1
    done
  fi
  echo "health check:  curl -fsS $url"
  echo "operator CLI:  sudo daemonctl status"
  echo "logs:          journalctl -u $SERVICE -f"
}

do_install() {
  check_python
  EXE="$(find_input "executable (previewd.pyz)" ${EXE:+"$EXE"} "$HERE/previewd.pyz" "$HERE/../dist/previewd.pyz")"
  UNIT="$(find_input "unit file" ${UNIT:+"$UNIT"} "$HERE/previewd.service" "$HERE/../systemd/previewd.service")"
  check_exe "$EXE"
  # Work on a copy: installing $BIN/previewd.prev (a rollback) moves the current file onto that very path.
  STAGE="$(mktemp -d)"
  trap 'rm -rf "$STAGE"' EXIT
  cp "$EXE" "$STAGE/previewd"
  EXE="$STAGE/previewd"
  ensure_user
  local ids
  ids="$(ids_of previewd)"
  ensure_node
  ensure_system_packages
  ensure_executable
  ensure_pnpm
  ensure_dir "$DATA" 0700 "$ids"  # previewd serve checks (and repairs) 0700 at start too
  ensure_config
  ensure_secrets
  ensure_ctl_wrapper
  place_file "$UNIT" "$UNIT_DST" 0644 0:0
  systemctl_ daemon-reload
  systemctl_ enable --quiet "$SERVICE"
  # Anything new (executable, unit, config) takes effect by a restart; otherwise just make sure it runs.
  if [ "$CHANGED" -gt 0 ]; then systemctl_ restart "$SERVICE"; else systemctl_ start "$SERVICE"; fi
  [ "$CHANGED" -gt 0 ] || say "no changes"
  health_check
}

do_uninstall() {
  if [ "$DO_SYSTEMCTL" -eq 1 ] && systemctl list-unit-files "$SERVICE.service" >/dev/null 2>&1; then
    systemctl disable --now --quiet "$SERVICE" 2>/dev/null || true
  fi
  local p
  for p in "$UNIT_DST" "$CTL_WRAPPER"; do
    if [ -e "$ROOT$p" ]; then rm -f "$ROOT$p"; changed "removed $p"; fi
  done
  if [ -e "$ROOT$OPT" ]; then rm -rf "$ROOT$OPT"; changed "removed $OPT"; fi
  systemctl_ daemon-reload
  if [ "$PURGE" -eq 1 ]; then
    for p in "$ETC" "$DATA"; do
      if [ -e "$ROOT$p" ]; then rm -rf "$ROOT$p"; changed "removed $p"; fi
    done
    local prefix=()
    [ -z "$ROOT" ] || prefix=(--prefix "$ROOT")
    if [ -n "$(ids_of previewd 2>/dev/null)" ]; then userdel "${prefix[@]}" previewd; changed "removed user previewd"; fi
    if [ -f "$ROOT/etc/group" ] && awk -F: '$1 == "previewd" { f = 1 } END { exit !f }' "$ROOT/etc/group"; then
      groupdel "${prefix[@]}" previewd
      changed "removed group previewd"
    fi
  else
    say "kept $ETC (config, secrets), $DATA (data) and the previewd user; --purge removes them"
  fi
}

if [ "$MODE" = "uninstall" ]; then do_uninstall; else do_install; fi
