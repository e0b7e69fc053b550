#!/bin/sh
# Build the app's wheel from a clean copy of the checkout, reproducibly (SOURCE_DATE_EPOCH fixes the
# zip timestamps), so the same source gives the same bytes and a redeploy without changes changes
# nothing on the host. Prints the wheel's path. Usage: build-wheel.sh PYTHON SOURCE_DIR OUT_DIR
set -eu
python=$1
src=$2
out=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
# Only what the package needs: never .venv, .git, caches, or an old build/ that setuptools would reuse.
for f in pyproject.toml README.md LICENSE wsgi.py; do
  if [ -e "$src/$f" ]; then cp -p "$src/$f" "$work/"; fi
done
tar -C "$src" --exclude=__pycache__ --exclude='*.pyc' -cf - blog | tar -C "$work" -xf -
[ -e "$work/README.md" ] || echo "# engineering-log" > "$work/README.md"
rm -f "$out"/engineering_log-*.whl
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps --wheel-dir "$out" "$work" >&2
ls "$out"/engineering_log-*.whl
