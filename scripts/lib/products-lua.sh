# The wrk Lua bodies of the products benchmarks, written into directory $1: get.lua (GET of a
# random id from $IDS_FILE), list.lua (the request as given) and post.lua (a create), each
# with `Authorization: Bearer $TOKEN`. Sourced by bench-products.sh, ab-products.sh,
# bench-orders.sh and cpu-per-thread.sh.
write_products_lua() {
cat > "$1/get.lua" <<'LUA'
local ids, token = {}, os.getenv("TOKEN")
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
request = function()
  return wrk.format("GET", "/products/" .. ids[math.random(#ids)], { ["Authorization"] = "Bearer " .. token })
end
LUA
cat > "$1/list.lua" <<'LUA'
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
LUA
cat > "$1/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"name":"bench product","price":"9.99"}'
LUA
}
