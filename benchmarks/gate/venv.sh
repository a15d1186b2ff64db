#!/usr/bin/env bash
# A venv with squall built from a source tree as `pip install .` builds it
# (compiled where a C compiler is), and what the gate and bench-ab need,
# at the versions of benchmarks/gate/constraints.txt (the build's mypy and
# setuptools included: PIP_CONSTRAINT reaches pip's isolated build).
#   benchmarks/gate/venv.sh PYTHON SOURCE_DIR VENV [EXTRA_PACKAGE...]
# The source is copied first (VENV.src): two builds of one tree at once
# share its build/ and one can fall back to pure Python. The venv is
# stamped (VENV/.installed) only when squall runs compiled modules, unless
# SQUALL_NO_EXTENSIONS=1 asked for a pure install (no compiler run: the
# pure build's gate alone, in a minute).
set -euo pipefail
python=$1 src=$(cd "$2" && pwd) venv=$(realpath -m "$3")
shift 3
here=$(cd "$(dirname "$0")" && pwd)
constraints=$here/constraints.txt
start=$(date +%s)
rm -rf "$venv" "$venv.src"
mkdir -p "$venv.src"
for f in squall speedups setup.py pyproject.toml MANIFEST.in README.md LICENSE _squall_pytest_plugin.py; do
  [ -e "$src/$f" ] && cp -a "$src/$f" "$venv.src/"
done
rm -rf "$venv.src/build" "$venv.src/speedups/build"
find "$venv.src" -name '*.so' -delete
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -c "$constraints" uvloop httptools starlette fastapi h2 qh3 aioquic mypy 'redis[hiredis]' "$@"
PIP_CONSTRAINT=$constraints "$venv/bin/python" -m pip install -q --no-deps "$venv.src"
rm -rf "$venv.src"
if [ "${SQUALL_NO_EXTENSIONS:-}" = 1 ]; then
  touch "$venv/.installed"
  echo "== $venv: squall from $src, pure Python (SQUALL_NO_EXTENSIONS=1), in $(( $(date +%s) - start ))s"
elif (cd /tmp && env -u PYTHONPATH "$venv/bin/python" -c 'import squall.speedups as s; raise SystemExit(0 if s.compiled else 1)'); then
  touch "$venv/.installed"
  echo "== $venv: squall from $src, $(cd /tmp && "$venv/bin/python" -c 'import squall.speedups as s; print(len(s.compiled_modules()))') modules compiled, in $(( $(date +%s) - start ))s"
else
  echo "== $venv: the build fell back to pure Python (not stamped)" >&2
  exit 1
fi
