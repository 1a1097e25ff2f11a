# Sourced by scripts that need Python packages: `venv=$(cached_venv NAME REQUIREMENTS_FILE)`
# gives a virtualenv under ~/.cache (or $VENV) holding exactly those requirements, created on
# first use and rebuilt only when the requirements or the Python version change. One setup at a
# time when several runs share it.
cached_venv() {
  local venv="${VENV:-$HOME/.cache/$1}" requirements="$2" python="${PYTHON:-python3}" want
  mkdir -p "$(dirname "$venv")"
  if command -v flock >/dev/null; then
    exec 9>"$venv.lock"
    flock 9
  fi
  want="$({ cat "$requirements"; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
  if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.shop-requirements" 2>/dev/null)" != "$want" ]; then
    echo "== setting up $venv" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" >&2
    echo "$want" >"$venv/.shop-requirements"
  fi
  if command -v flock >/dev/null; then flock -u 9; fi
  echo "$venv"
}
