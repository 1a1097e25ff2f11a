#!/usr/bin/env bash
# Orders benchmarks with wrk on loopback against real products: POST /orders with 3 items
# (64 connections) beside products' own batch lookup of 3 ids, and the feed lag under a burst of
# product updates. Every load is bounded in time. Usage: scripts/bench-orders.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
CONNS=${CONNS:-64}
WORKERS=${WORKERS:-2}
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }

cargo build -q --release -p products --bin products --example seed
cargo build -q --release -p orders --bin orders
cargo build -q --release -p shop
BIN=${CARGO_TARGET_DIR:-target}/release
WORK=$(mktemp -d "${BENCH_DIR:-/work}/bench-orders.XXXXXX")
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

"$BIN/shop" keygen --out "$WORK/keys" >/dev/null
mint() { "$BIN/shop" token mint --private-key "$WORK/keys/private.key" --ttl 1h "$@"; }
TOKEN=$(mint --user bench --right orders:read --right orders:write --right products:read --right products:write)
mint --user orders-service --right products:read > "$WORK/service.token"
export TOKEN

"$BIN/examples/seed" "$WORK/products" 10000 "$WORK/ids.txt" 2>/dev/null
export IDS_FILE="$WORK/ids.txt"
RUST_LOG=warn "$BIN/products" --listen 127.0.0.1:18181 --data-dir "$WORK/products" --workers "$WORKERS" \
  --public-key-file "$WORK/keys/public.key" >"$WORK/products.log" 2>&1 &
PIDS+=($!)
RUST_LOG=warn "$BIN/orders" --listen 127.0.0.1:18182 --data-dir "$WORK/orders" --workers "$WORKERS" \
  --public-key-file "$WORK/keys/public.key" --products-url http://127.0.0.1:18181 \
  --products-token-file "$WORK/service.token" >"$WORK/orders.log" 2>&1 &
PIDS+=($!)
for port in 18181 18182; do
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
done
echo "machine: $(nproc) cores; both services with $WORKERS workers each, on the same 2 cores as wrk; wrk -t2 -c$CONNS -d${SECS}s"

cat > "$WORK/order.lua" <<'LUA'
local ids, token = {}, os.getenv("TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
local function pick() return ids[math.random(#ids)] end
request = function()
  local body = string.format('{"items":[{"product_id":"%s","quantity":1},{"product_id":"%s","quantity":2},{"product_id":"%s","quantity":3}]}', pick(), pick(), pick())
  return wrk.format(nil, nil, nil, body)
end
LUA
cat > "$WORK/lookup.lua" <<'LUA'
local ids, token = {}, os.getenv("TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
local function pick() return ids[math.random(#ids)] end
request = function()
  return wrk.format(nil, nil, nil, string.format('{"ids":["%s","%s","%s"]}', pick(), pick(), pick()))
end
LUA
cat > "$WORK/patch.lua" <<'LUA'
local ids, token = {}, os.getenv("TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
wrk.method = "PATCH"
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["Content-Type"] = "application/json"
request = function()
  return wrk.format(nil, "/products/" .. ids[math.random(#ids)], nil, string.format('{"price":"%d.%02d"}', math.random(0, 999), math.random(0, 99)))
end
LUA

run() { # name, url, script
  local out rps p50 p99 non2xx
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$3" "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-38s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
run "products POST /products/lookup (3 ids)" http://127.0.0.1:18181/products/lookup "$WORK/lookup.lua"
run "orders POST /orders (3 items, durable)" http://127.0.0.1:18182/orders "$WORK/order.lua"

metric() { curl -fs "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m {print $2; exit}'; }
BEFORE=$(metric 18181 'store_last_sequence')
wrk -t2 -c"$CONNS" -d3s -s "$WORK/patch.lua" http://127.0.0.1:18181/ >/dev/null
AFTER=$(metric 18181 'store_last_sequence')
START=$(date +%s.%N)
while :; do
  SEEN=$(metric 18182 'products_feed_last_seq')
  [ "${SEEN%.*}" -ge "${AFTER%.*}" ] && break
  if (( $(echo "$(date +%s.%N) - $START > 30" | bc) )); then echo "feed did not catch up in 30 s (at $SEEN of $AFTER)"; exit 1; fi
  sleep 0.01
done
END=$(date +%s.%N)
echo "feed: burst of $(( ${AFTER%.*} - ${BEFORE%.*} )) product updates in 3 s; orders caught up $(echo "$END - $START" | bc) s after the burst ended (last seq $AFTER)"
