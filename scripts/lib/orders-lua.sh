# The wrk Lua body of an order placement, written into directory $1: order.lua, a POST /orders
# of 3 random products from $IDS_FILE (quantities 1, 2, 3) with `Authorization: Bearer $TOKEN`.
# Sourced by bench-orders.sh and cpu-per-thread.sh.
write_order_lua() {
cat > "$1/order.lua" <<'LUA'
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
}
