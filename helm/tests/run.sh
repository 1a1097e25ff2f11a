#!/usr/bin/env bash
# The Helm chart checks (helm/tests/test_chart.py): strict lint, renders, Kubernetes schema
# validation, and consistency with the binaries' --help. Creates a virtualenv on first use
# (${VENV:-$HOME/.cache/shop-helm-venv}) and reinstalls only when requirements.txt or the Python
# version change. Needs the products, orders and shop binaries: SHOP_BIN_DIR (default
# ${CARGO_TARGET_DIR:-target}/debug). Extra arguments go to pytest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=../../scripts/lib/venv.sh
. "$repo/scripts/lib/venv.sh"
venv="$(cached_venv shop-helm-venv "$here/requirements.txt")"

bin_dir="${SHOP_BIN_DIR:-${CARGO_TARGET_DIR:-$repo/target}/debug}"
case "$bin_dir" in /*) ;; *) bin_dir="$PWD/$bin_dir" ;; esac
export SHOP_BIN_DIR="$bin_dir"

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
