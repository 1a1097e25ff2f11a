#!/usr/bin/env bash
# A/B of two products builds (directories holding the release `products`, `shop`, and the
# `seed` and `ceiling` examples): alternating wrk runs, one service at a time, on the same
# 10,000 seeded products, with the server's CPU per request from /proc. Every load is bounded.
#   WHAT=get|list|post ROUNDS=3 SECS=6 CONNS=64 scripts/ab-products.sh DIR_A DIR_B
# EXTRA="--memory index --cache-mb 8" passes more arguments to both services.
# `get` and `list` also run B's ceiling, statically and driven by the same Lua script as the GET.
set -euo pipefail
. "$(dirname "$0")/lib/products-lua.sh"
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
A=${1:?usage: scripts/ab-products.sh DIR_A DIR_B (each with products, shop, seed, ceiling)}
B=${2:?usage: scripts/ab-products.sh DIR_A DIR_B}
W=$(mktemp -d "${BENCH_DIR:-/tmp}/ab-products.XXXXXX"); trap 'rm -rf "$W"' EXIT
"$B/seed" "$W/seed" 10000 "$W/ids.txt" 2>/dev/null
export IDS_FILE="$W/ids.txt"; export TOKEN=unused
write_products_lua "$W"
rps() { wrk -t2 -c${CONNS:-64} -d${SECS:-6}s ${3:+-s "$3"} "$2" | awk '/Requests\/sec/ {print int($2)}'; }
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
busy() { awk '/^cpu / {print $2+$3+$4+$7+$8}' /proc/stat; } # the whole machine: wrk and kernel threads too
idle() { awk '/^cpu / {print $5+$6}' /proc/stat; } # idle and iowait, both cores
one() { # bin label durability url script
  local bin=$1 label=$2 dur=$3 url=$4 script=$5
  rm -rf "$W/data"; cp -r "$W/seed" "$W/data"
  "$bin/shop" keygen --out "$W/keys" >/dev/null 2>&1 || true
  export TOKEN=$("$bin/shop" token mint --private-key "$W/keys/private.key" --user bench --right products:read --right products:write --ttl 1h)
  RUST_LOG=info "$bin/products" --listen 127.0.0.1:18181 --data-dir "$W/data" --workers 2 --durability "$dur" \
    --public-key-file "$W/keys/public.key" ${EXTRA:-} >/dev/null 2>&1 &
  local pid=$!
  for _ in $(seq 200); do curl -fs http://127.0.0.1:18181/readyz >/dev/null 2>&1 && break; sleep 0.05; done
  wrk -t2 -c64 -d1s ${script:+-s "$script"} "$url" >/dev/null
  local c0 m0 i0; c0=$(cpu $pid); m0=$(busy); i0=$(idle)
  local r; r=$(rps "$label" "$url" "$script")
  local c1 m1 i1; c1=$(cpu $pid); m1=$(busy); i1=$(idle)
  kill $pid; wait $pid 2>/dev/null || true
  local us mus; us=$(awk -v c=$((c1-c0)) -v r="$r" -v s="${SECS:-6}" 'BEGIN {printf "%.1f", c*10000/(r*s)}')
  mus=$(awk -v c=$((m1-m0)) -v r="$r" -v s="${SECS:-6}" 'BEGIN {printf "%.1f", c*10000/(r*s)}')
  local idl; idl=$(awk -v i=$((i1-i0)) -v s="${SECS:-6}" 'BEGIN {printf "%.0f", i/(2*s)}')
  echo "$label $r req/s ${us} us/req (machine ${mus} us/req, ${idl}% idle)"
}
ceiling() { # B's ceiling always: it serves /products/{id} too, for the same Lua script
  "$B/ceiling" 127.0.0.1:18190 2 >/dev/null 2>&1 &
  local pid=$!; sleep 0.3
  wrk -t2 -c64 -d1s http://127.0.0.1:18190/c >/dev/null
  echo "$2 static $(rps x http://127.0.0.1:18190/c) req/s, same-lua $(rps x http://127.0.0.1:18190/ "$W/get.lua") req/s"
  kill $pid; wait $pid 2>/dev/null || true
}
for round in $(seq ${ROUNDS:-3}); do
  for pair in "A $A" "B $B"; do
    set -- $pair
    case "${WHAT:-get}" in
      get) ceiling "$2" "$1-ceiling"; one "$2" "$1-get" always http://127.0.0.1:18181/ "$W/get.lua" ;;
      list) ceiling "$2" "$1-ceiling"; one "$2" "$1-list" always "http://127.0.0.1:18181/products?limit=20" "$W/list.lua" ;;
      post) one "$2" "$1-post-always" always http://127.0.0.1:18181/products "$W/post.lua"
            one "$2" "$1-post-never" never http://127.0.0.1:18181/products "$W/post.lua" ;;
    esac
  done
done
