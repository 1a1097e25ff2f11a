#!/usr/bin/env bash
# Orders benchmarks with wrk on loopback against real products (seeded with 10,000 products that
# track stock): POST /orders of 3 stock-tracked lines (64 connections; one reservation at
# products, the durable order, then the commit in the background) beside products' own
# POST /products and batch lookup of 3 ids in the same run, and the feed lag under a burst of
# 10,000 product updates. Every load is bounded in time. Usage: scripts/bench-orders.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/products-lua.sh
. scripts/lib/orders-lua.sh
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
mint --user orders-service --right products:read --right products:reserve > "$WORK/service.token"
export TOKEN

# Enough stock that no order of the run is refused.
"$BIN/examples/seed" "$WORK/products" 10000 "$WORK/ids.txt" 1000000000 2>/dev/null
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

# order.lua, and post.lua (a product create) from the products scripts.
write_order_lua "$WORK"
write_products_lua "$WORK"
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
-- Each of the two threads stops after its share of the burst.
local done = 0
response = function()
  done = done + 1
  if done >= tonumber(os.getenv("BURST_PER_THREAD")) then wrk.thread:stop() end
end
LUA

metric() { curl -fs "http://127.0.0.1:$1/metrics" | awk -v m="$2" '!done && $1 ~ "^"m {print $2; done = 1}'; }
run() { # name, url, script
  local out rps p50 p99 non2xx
  out=$(wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$3" "$2")
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-38s %10s req/s   p50 %8s   p99 %8s   non-2xx %s\n' "$1" "$rps" "$p50" "$p99" "${non2xx:-0}"
}
# Orders first: the POST /products row adds ~10^5 products, which would make every later
# reservation work on a store ten times the seeded size.
run "orders POST /orders (3 stocked lines)" http://127.0.0.1:18182/orders "$WORK/order.lua"
# The settler commits in the background: report how long the backlog took to drain.
DRAIN_START=$(date +%s.%N)
for _ in $(seq 6000); do
  [ "$(metric 18182 'orders_unsettled' | cut -d. -f1)" = "0" ] && break; sleep 0.01
done
echo "settler: backlog drained $(echo "$(date +%s.%N) - $DRAIN_START" | bc) s after the load ended"
run "products POST /products (durable)" http://127.0.0.1:18181/products "$WORK/post.lua"
run "products POST /products/lookup (3 ids)" http://127.0.0.1:18181/products/lookup "$WORK/lookup.lua"

BEFORE=$(metric 18181 'store_last_sequence')
TARGET=$(( ${BEFORE%.*} + 10000 ))
# Poll both sides while the burst runs: when products has stored the 10,000th update, and when
# orders has handled it.
(
  P_AT=""; while :; do
    NOW=$(date +%s.%N)
    if [ -z "$P_AT" ] && [ "$(metric 18181 'store_last_sequence' | cut -d. -f1)" -ge "$TARGET" ]; then P_AT=$NOW; fi
    if [ -n "$P_AT" ] && [ "$(metric 18182 'products_feed_last_seq' | cut -d. -f1)" -ge "$TARGET" ]; then
      echo "$P_AT $NOW" > "$WORK/feed.times"; break
    fi
    sleep 0.005
  done
) &
POLLER=$!
BURST_START=$(date +%s.%N)
BURST_PER_THREAD=5000 wrk -t2 -c"$CONNS" -d5s -s "$WORK/patch.lua" http://127.0.0.1:18181/ >/dev/null
for _ in $(seq 3000); do [ -s "$WORK/feed.times" ] && break; sleep 0.01; done
kill "$POLLER" 2>/dev/null || true
[ -s "$WORK/feed.times" ] || { echo "orders did not handle the burst within 30 s"; exit 1; }
read -r P_AT O_AT < "$WORK/feed.times"
echo "feed: 10,000 product updates stored by products $(echo "$P_AT - $BURST_START" | bc) s after the burst began; orders had handled the last of them $(echo "$O_AT - $P_AT" | bc) s later"
