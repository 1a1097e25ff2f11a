#!/usr/bin/env bash
# HTTP benchmarks of the products service with wrk on loopback, beside a minimal actix-web
# handler returning a constant JSON body (the framework's ceiling) and this disk's fsync rate.
# Every load is bounded in time. Usage: scripts/bench-products.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
. "$(dirname "$0")/lib/products-lua.sh"
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${2:-64}
WORKERS=${WORKERS:-2}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }

cargo build -q --release -p products --bin products --example ceiling --example seed
cargo build -q --release -p shop
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d "${BENCH_DIR:-/work}/bench-products.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/shop" keygen --out "$WORK/keys" >/dev/null
TOKEN=$("$BIN/shop" token mint --private-key "$WORK/keys/private.key" --user bench \
          --right products:read --right products:write --ttl 1h)
export TOKEN

wait_ready() { for _ in $(seq 200); do curl -fs "$1/readyz" >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "not ready: $1"; exit 1; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

echo "machine: $(nproc) cores, $(free -h | awk '/Mem:/ {print $2}') RAM; products workers: $WORKERS; wrk -t2 -c$CONNS -d${SECS}s"

# The disk's own rate: one small write + fdatasync in a loop, in the data directory.
python3 - "$WORK" <<'PY'
import os, sys, time
path = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
n, start = 0, time.monotonic()
while time.monotonic() - start < 3:
    os.write(fd, b"x" * 200); os.fdatasync(fd); n += 1
print(f"fsync rate: {n / (time.monotonic() - start):.0f}/s (200-byte append + fdatasync, 3 s)")
os.close(fd); os.remove(path)
PY

# 10,000 products for reads and writes.
"$BIN/examples/seed" "$WORK/data" 10000 "$WORK/ids.txt" 2>/dev/null
cp -r "$WORK/data" "$WORK/data-index"   # the same products for the index-mode rows
export IDS_FILE="$WORK/ids.txt"
RUST_LOG=${PRODUCTS_LOG:-info} "$BIN/products" --listen 127.0.0.1:18081 --data-dir "$WORK/data" --workers "$WORKERS" \
  --public-key-file "$WORK/keys/public.key" >/dev/null 2>&1 &
PIDS+=($!); PRODUCTS_PID=$!
"$BIN/examples/ceiling" 127.0.0.1:18090 "$WORKERS" >/dev/null 2>&1 &
PIDS+=($!)
wait_ready http://127.0.0.1:18081
sleep 0.3

write_products_lua "$WORK"

run() { # name, url, script
  local out
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency ${3:+-s "$3"} "$2")
  local rps p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-28s %10s req/s   p99 %8s   non-2xx %s\n' "$1" "$rps" "$p99" "${non2xx:-0}"
}
run "constant JSON (ceiling)" http://127.0.0.1:18090/c
run "GET /products/{id}" http://127.0.0.1:18081/ "$WORK/get.lua"
run "GET /products?limit=20" "http://127.0.0.1:18081/products?limit=20" "$WORK/list.lua"
run "POST /products (durable)" http://127.0.0.1:18081/products "$WORK/post.lua"
echo "products RSS after the runs: $(rss_mb "$PRODUCTS_PID") MB"
kill "$PRODUCTS_PID"; wait "$PRODUCTS_PID" 2>/dev/null || true

# The same in index mode (records read from the files through an 8 MiB cache: the 10,000
# products fit in it, so reads are mostly cache hits).
"$BIN/products" --listen 127.0.0.1:18083 --data-dir "$WORK/data-index" --workers "$WORKERS" \
  --memory index --cache-mb 8 --public-key-file "$WORK/keys/public.key" >/dev/null 2>&1 &
PIDS+=($!); INDEX_PID=$!
wait_ready http://127.0.0.1:18083
sleep 0.3
run "index: GET /products/{id}" http://127.0.0.1:18083/ "$WORK/get.lua"
run "index: GET /products?limit=20" "http://127.0.0.1:18083/products?limit=20" "$WORK/list.lua"
run "index: POST /products" http://127.0.0.1:18083/products "$WORK/post.lua"
echo "index mode: products RSS after the runs: $(rss_mb "$INDEX_PID") MB"
kill "$INDEX_PID"; wait "$INDEX_PID" 2>/dev/null || true

# Resident memory with 100,000 products loaded.
"$BIN/examples/seed" "$WORK/big" 100000 "$WORK/big-ids.txt" 2>/dev/null
"$BIN/products" --listen 127.0.0.1:18082 --data-dir "$WORK/big" --workers "$WORKERS" \
  --public-key-file "$WORK/keys/public.key" >/dev/null 2>&1 &
PIDS+=($!); BIG_PID=$!
wait_ready http://127.0.0.1:18082
echo "100,000 products: products.json $(du -m "$WORK/big/products.json" | cut -f1) MB, products RSS $(rss_mb "$BIG_PID") MB"
kill "$BIG_PID"; wait "$BIG_PID" 2>/dev/null || true
"$BIN/products" --listen 127.0.0.1:18084 --data-dir "$WORK/big" --workers "$WORKERS" \
  --memory index --cache-mb 8 --public-key-file "$WORK/keys/public.key" >/dev/null 2>&1 &
PIDS+=($!); BIG_INDEX_PID=$!
wait_ready http://127.0.0.1:18084
echo "100,000 products, index mode (8 MiB cache): products RSS $(rss_mb "$BIG_INDEX_PID") MB"
