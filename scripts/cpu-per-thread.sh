#!/usr/bin/env bash
# Where the CPU of one request goes: each server thread's CPU time (utime + stime from
# /proc/PID/task/*/stat) and voluntary context switches over a fixed wrk load, divided by the
# requests completed. Context switches are counts, so they hold steady on a noisy machine
# where CPU time does not. Every load is bounded in time.
#
#   scripts/cpu-per-thread.sh BIN_DIR products-post [always|never]   # durable or not
#   scripts/cpu-per-thread.sh BIN_DIR orders                         # POST /orders, 3 lines
#
# BIN_DIR holds the release `products`, `orders`, `shop` and the `seed` example. For orders,
# the CPU of both services is counted, settling included: the count ends once the settler's
# backlog has drained.
set -euo pipefail
. "$(dirname "$0")/lib/products-lua.sh"
. "$(dirname "$0")/lib/orders-lua.sh"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
BIN=${1:?usage: scripts/cpu-per-thread.sh BIN_DIR products-post [always|never] | orders}
WHAT=${2:?usage: scripts/cpu-per-thread.sh BIN_DIR products-post [always|never] | orders}
DURABILITY=${3:-always}
SECS=${SECS:-6}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/cpu-per-thread.XXXXXX")
trap 'kill $(jobs -p) 2>/dev/null || true; wait; rm -rf "$W"' EXIT

"$BIN/shop" keygen --out "$W/keys" >/dev/null
mint() { "$BIN/shop" token mint --private-key "$W/keys/private.key" --ttl 1h "$@"; }
TOKEN=$(mint --user bench --right orders:read --right orders:write --right products:read --right products:write)
export TOKEN
mint --user orders-service --right products:read --right products:reserve >"$W/service.token"
# Stock enough that no order of the run is refused.
"$BIN/seed" "$W/products" 10000 "$W/ids.txt" 1000000000 2>/dev/null
export IDS_FILE="$W/ids.txt"
write_products_lua "$W"
write_order_lua "$W"

RUST_LOG=info "$BIN/products" --listen 127.0.0.1:18181 --data-dir "$W/products" --workers 2 \
  --durability "$DURABILITY" --public-key-file "$W/keys/public.key" >/dev/null 2>&1 &
PIDS=($!)
if [ "$WHAT" = orders ]; then
  RUST_LOG=info "$BIN/orders" --listen 127.0.0.1:18182 --data-dir "$W/orders" --workers 2 \
    --public-key-file "$W/keys/public.key" --products-url http://127.0.0.1:18181 \
    --products-token-file "$W/service.token" >/dev/null 2>&1 &
  PIDS+=($!)
  URL=http://127.0.0.1:18182/orders; LUA=$W/order.lua
else
  URL=http://127.0.0.1:18181/products; LUA=$W/post.lua
fi
for port in 18181 18182; do
  [ "$port" = 18182 ] && [ "$WHAT" != orders ] && continue
  for _ in $(seq 200); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
done
wrk -t2 -c64 -d1s -s "$LUA" "$URL" >/dev/null
unsettled() { curl -fs http://127.0.0.1:18182/metrics | awk '$1 ~ /^orders_unsettled/ {v = int($2)} END {print v}'; }
drain() { [ "$WHAT" = orders ] || return 0; for _ in $(seq 600); do [ "$(unsettled)" = 0 ] && return; sleep 0.05; done; }
drain
snap() {
  for pid in "${PIDS[@]}"; do
    for t in /proc/"$pid"/task/*; do
      # A short-lived thread (a compaction's) may be gone between the listing and the reads.
      line=$( { echo "$pid:${t##*/}:$(tr ' ' _ <"$t/comm") $(awk '{print $14 + $15}' "$t/stat") $(awk '/^voluntary_ctxt/ {print $2}' "$t/status")"; } 2>/dev/null) || continue
      echo "$line"
    done
  done | sort
}
snap >"$W/before"
r=$(wrk -t2 -c64 -d"${SECS}s" -s "$LUA" "$URL" | awk '/Requests\/sec/ {print int($2)}')
drain
snap >"$W/after"
echo "$WHAT ($DURABILITY): $r req/s; per request, by thread (clock ticks of 10 ms over ${SECS} s):"
join -a2 -e0 -o 0,1.2,1.3,2.2,2.3 "$W/before" "$W/after" | awk -v r="$r" -v s="$SECS" -v p="${PIDS[0]}" '
  { split($1, a, ":"); who = (a[1] == p ? "products" : "orders"); cpu = $4 - $2; cs = $5 - $3
    all += cpu; sw += cs; by[who] += cpu
    if (cpu > 0) printf "  %-8s %-18s %7.2f us %5.2f switches\n", who, a[3], cpu * 10000 / (r * s), cs / (r * s) }
  END { for (w in by) printf "  %-8s %-18s %7.2f us\n", w, "all threads", by[w] * 10000 / (r * s)
        printf "  total %7.2f us CPU, %5.2f voluntary context switches per request\n", all * 10000 / (r * s), sw / (r * s) }'
