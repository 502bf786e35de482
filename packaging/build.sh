#!/usr/bin/env bash
# Build the single-file previewd (a shiv zipapp) for the Python that runs this script: packaging/build.sh [OUT]
# PYTHON picks the target interpreter (default python3); the compiled wheels inside match its version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/dist/previewd.pyz}"
PYTHON="${PYTHON:-python3}"
SHIV_VERSION="1.0.8"
# The shiv build venv is cached per target Python under build/ (ignored by git).
PYVER="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "build.sh: $PYTHON is Python $PYVER; previewd needs 3.11+" >&2; exit 2; }
TOOLVENV="$ROOT/build/shiv-venv-$PYVER"

mkdir -p "$ROOT/build"
# Two builds at once (parallel test sessions) must not both recreate the tool venv.
exec 9>"$ROOT/build/.shiv-venv.lock"
flock 9
if ! "$TOOLVENV/bin/python" -c "import shiv, sys; sys.exit(shiv.__version__ != '$SHIV_VERSION')" 2>/dev/null; then
  rm -rf "$TOOLVENV"
  "$PYTHON" -m venv "$TOOLVENV"
  "$TOOLVENV/bin/pip" install -q --disable-pip-version-check "shiv==$SHIV_VERSION"
fi
flock -u 9

STAGE="$(mktemp -d)"
trap 'rm -rf "$STAGE"' EXIT
# Build from a copy of the package sources so setuptools leaves no build/ or egg-info in the work tree.
mkdir -p "$STAGE/src" "$STAGE/extra"
cp "$ROOT/pyproject.toml" "$STAGE/src/"
for pkg in daemon sandbox sync; do
  (cd "$ROOT" && find "$pkg" -name __pycache__ -prune -o -type f -print) | while read -r f; do
    mkdir -p "$STAGE/src/$(dirname "$f")"
    cp -p "$ROOT/$f" "$STAGE/src/$f"
  done
done
cp "$ROOT/packaging/entry/previewd_entry.py" "$STAGE/extra/"
COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
DIRTY="$(git -C "$ROOT" status --porcelain -- daemon sandbox sync pyproject.toml 2>/dev/null | head -c1)"
VERSION="$("$PYTHON" -c 'import tomllib,sys; print(tomllib.load(open(sys.argv[1],"rb"))["project"]["version"])' \
  "$ROOT/pyproject.toml")"
cat > "$STAGE/extra/previewd_build_info.py" <<INFO
"""Facts about this build, written by packaging/build.sh."""
BUILD = {"version": "$VERSION", "commit": "$COMMIT${DIRTY:+-dirty}", "python": "$PYVER",
         "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "shiv": "$SHIV_VERSION"}
INFO

mkdir -p "$(dirname "$OUT")"
# Constrain every dependency to requirements.lock, so the file holds exactly what the tests ran against.
"$TOOLVENV/bin/shiv" --quiet \
  --python "/usr/bin/env python3" \
  --entry-point previewd_entry:main \
  --site-packages "$STAGE/extra" \
  --compile-pyc \
  --output-file "$OUT.tmp" \
  -- "$STAGE/src" --constraint "$ROOT/requirements.lock" --disable-pip-version-check
mv -f "$OUT.tmp" "$OUT"
chmod 0755 "$OUT"
echo "built $OUT ($(du -h "$OUT" | cut -f1), Python $PYVER, commit $COMMIT${DIRTY:+-dirty})"
