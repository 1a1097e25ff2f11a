#!/usr/bin/env bash
# The Helm chart checks (helm/tests/test_chart.py): strict lint, renders, Kubernetes schema
# validation, and consistency with the binaries' --help. Creates a virtualenv on first use
# (${VENV:-$HOME/.cache/shop-helm-venv}) and reinstalls only when requirements.txt or the Python
# version change. Needs the products, orders and shop binaries: SHOP_BIN_DIR (default
# ${CARGO_TARGET_DIR:-target}/debug). Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$HOME/.cache/shop-helm-venv}"
python="${PYTHON:-python3}"

bin_dir="${SHOP_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/debug}"
case "$bin_dir" in /*) ;; *) bin_dir="$PWD/$bin_dir" ;; esac
export SHOP_BIN_DIR="$bin_dir"

mkdir -p "$(dirname "$venv")"
# One setup at a time when several runs share the cached virtualenv.
if command -v flock >/dev/null; then
  exec 9>"$venv.lock"
  flock 9
fi
want="$({ cat "$here/requirements.txt"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.shop-requirements" 2>/dev/null)" != "$want" ]; then
  echo "== setting up $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$here/requirements.txt"
  echo "$want" >"$venv/.shop-requirements"
fi
if command -v flock >/dev/null; then flock -u 9; fi

cd "$repo"
# Leave no __pycache__ or .pytest_cache in the clone.
export PYTHONDONTWRITEBYTECODE=1
status=0
"$venv/bin/python" -m pytest -p no:cacheprovider -q "$here" "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "helm/tests/run.sh: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
