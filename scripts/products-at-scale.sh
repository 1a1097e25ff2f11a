#!/usr/bin/env bash
# The products service with many products in index mode under a hard memory limit, the way a
# Kubernetes limit holds it: seeds COUNT products, starts the service inside a memory cgroup
# of LIMIT_MB (v1 or v2, as root; without one it runs unlimited and says so), then measures
# start time, memory and a few bounded loads. Usage:
#   scripts/products-at-scale.sh [COUNT] [LIMIT_MB] [CACHE_MB]   (defaults 10000000 1024 64)
# DATA=DIR keeps the seeded data there and, on later runs, starts from a copy of it (the loads
# write); every load is bounded in time.
set -euo pipefail
. "$(dirname "$0")/lib/products-lua.sh"
cd "$(dirname "$0")/.."
COUNT=${1:-10000000}
LIMIT_MB=${2:-1024}
CACHE_MB=${3:-64}
SECS=${SECS:-5}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }

cargo build -q --release -p products --bin products --example seed
cargo build -q --release -p shop
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d "${BENCH_DIR:-/work}/products-at-scale.XXXXXX")
DATA=${DATA:-$WORK/data}
PID=
CG=
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
  [ -n "$CG" ] && rmdir "$CG" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ ! -f "$DATA/products.json" ]; then
  t0=$(date +%s.%N)
  "$BIN/examples/seed" "$DATA" "$COUNT" "$DATA/ids.txt" 2>/dev/null
  echo "seeded $COUNT products in $(echo "$(date +%s.%N) - $t0" | bc | xargs printf %.0f) s"
fi
shuf -n 100000 "$DATA/ids.txt" > "$WORK/ids.txt"
if [ "$DATA" != "$WORK/data" ]; then
  cp -r "$DATA" "$WORK/data"
  rm -f "$WORK/data/ids.txt"
  DATA=$WORK/data
fi
JSON_MB=$(( $(stat -c %s "$DATA/products.json") / 1048576 ))
export IDS_FILE="$WORK/ids.txt"

"$BIN/shop" keygen --out "$WORK/keys" >/dev/null
TOKEN=$("$BIN/shop" token mint --private-key "$WORK/keys/private.key" --user bench \
          --right products:read --right products:write --ttl 1h)
export TOKEN
write_products_lua "$WORK"

# A memory cgroup of LIMIT_MB for the service alone (the page cache of its files is charged
# to it too, and reclaimed under the limit, as in a container).
mem_usage() { :; }
if [ -d /sys/fs/cgroup/memory ] && [ -w "/sys/fs/cgroup/memory$(awk -F: '$2=="memory" {print $3}' /proc/self/cgroup)" ]; then
  CG="/sys/fs/cgroup/memory$(awk -F: '$2=="memory" {print $3}' /proc/self/cgroup)/products-at-scale-$$"
  mkdir "$CG"
  echo $((LIMIT_MB << 20)) > "$CG/memory.limit_in_bytes"
  echo $((LIMIT_MB << 20)) > "$CG/memory.memsw.limit_in_bytes" 2>/dev/null || true
  mem_usage() { echo "cgroup peak $(( $(cat "$CG/memory.max_usage_in_bytes") >> 20 )) MB (files' page cache included), limit hits $(cat "$CG/memory.failcnt"), $(grep oom_kill "$CG/memory.oom_control" || echo 'oom_kill ?')"; }
elif [ -w /sys/fs/cgroup/cgroup.subtree_control ] || [ -w "/sys/fs/cgroup$(awk -F: '$1=="0" {print $3}' /proc/self/cgroup)" ]; then
  CG="/sys/fs/cgroup$(awk -F: '$1=="0" {print $3}' /proc/self/cgroup)/products-at-scale-$$"
  mkdir "$CG"
  echo $((LIMIT_MB << 20)) > "$CG/memory.max"
  echo 0 > "$CG/memory.swap.max" 2>/dev/null || true
  mem_usage() { echo "cgroup peak $(( $(cat "$CG/memory.peak" 2>/dev/null || echo 0) >> 20 )) MB (files' page cache included), $(grep oom_kill "$CG/memory.events")"; }
else
  echo "no writable memory cgroup here: running WITHOUT a memory limit (figures below are the process's own)"
fi

echo "machine: $(nproc) cores; $COUNT products, products.json $JSON_MB MB; index mode, cache $CACHE_MB MiB; limit ${LIMIT_MB} MiB; wrk -t2 -c32 -d${SECS}s"
t0=$(date +%s.%N)
RUST_LOG=warn sh -c '[ -n "$0" ] && echo $$ > "$0/cgroup.procs"; exec "$@"' "$CG" \
  "$BIN/products" --listen 127.0.0.1:18181 --data-dir "$DATA" --workers 2 \
  --memory index --cache-mb "$CACHE_MB" --public-key-file "$WORK/keys/public.key" \
  > "$WORK/products.log" 2>&1 &
PID=$!
URL=http://127.0.0.1:18181
for _ in $(seq 1200); do
  curl -fs "$URL/readyz" >/dev/null 2>&1 && break
  kill -0 "$PID" 2>/dev/null || { echo "products exited while opening:"; tail -5 "$WORK/products.log"; mem_usage; exit 1; }
  sleep 0.1
done
curl -fs "$URL/readyz" >/dev/null || { echo "not ready after 120 s"; exit 1; }
echo "ready in $(echo "$(date +%s.%N) - $t0" | bc | xargs printf %.1f) s"
status() { awk '/VmHWM|VmRSS/ {printf "%s %.0f MB  ", $1, $2/1024}' "/proc/$PID/status"; echo; }
echo -n "after open: "; status

run() { # name, url, script
  local out rps non2xx
  out=$(wrk -t2 -c32 -d"${SECS}s" ${3:+-s "$3"} "$2")
  rps=$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '  %-44s %8s req/s  non-2xx %s\n' "$1" "$rps" "${non2xx:-0}"
}
run "GET /products/{id} (100k random ids)" "$URL" "$WORK/get.lua"
run "GET /products?limit=20" "$URL/products?limit=20" "$WORK/list.lua"
run "GET /products?min_price=10.00&max_price=10.50" "$URL/products?min_price=10.00&max_price=10.50&limit=20" "$WORK/list.lua"
run "GET /products?name_contains=x (budgeted)" "$URL/products?name_contains=zzz&limit=20" "$WORK/list.lua"
run "POST /products (durable)" "$URL/products" "$WORK/post.lua"
echo -n "after the loads: "; status
kill -0 "$PID" 2>/dev/null && echo "products still serving" || echo "products DIED"
mem_usage
