// Drives both services through clients generated from their openapi.json (openapi-typescript
// types, openapi-fetch calls): create a product and an order, list both, read a validation
// error's fields. Type-checked with `tsc --strict` first, so a document a strict client cannot
// type fails here. Env: P and O (base URLs), T (a token that may write products and orders).
import createClient from "openapi-fetch";
import type { paths as ProductsPaths } from "./generated/products.js";
import type { paths as OrdersPaths } from "./generated/orders.js";

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

function check(ok: boolean, what: string): asserts ok {
  if (!ok) throw new Error(`typescript client: ${what}`);
}

const headers = { Authorization: `Bearer ${need("T")}` };
const products = createClient<ProductsPaths>({ baseUrl: need("P"), headers });
const orders = createClient<OrdersPaths>({ baseUrl: need("O"), headers });

const created = await products.POST("/products", {
  body: { name: "Typed tea", price: "2.50", stock: 4 },
});
check(created.response.status === 201 && created.data !== undefined, "create a product");
const product = created.data;

const placed = await orders.POST("/orders", {
  body: { product_id: product.id, quantity: 2 },
});
check(placed.data !== undefined, `place an order: ${placed.response.status}`);
check(placed.data.total === "5.00", `order total ${placed.data.total}`);

// Newest first: the fuzzer may have left many products before this one.
const productPage = await products.GET("/products", {
  params: { query: { limit: 10, order: "desc" } },
});
check(productPage.data?.items.some((p) => p.id === product.id) === true, "list products");

const orderPage = await orders.GET("/orders", {
  params: { query: { product_id: product.id } },
});
check(orderPage.data?.items.length === 1, "list orders of the product");

const refused = await products.POST("/products", {
  body: { name: " padded", price: "1.234" },
});
check(refused.response.status === 422 && refused.error !== undefined, "a validation error");
const fields = (refused.error.errors ?? []).map((e) => e.field).sort();
check(JSON.stringify(fields) === '["name","price"]', `error fields ${fields.join(",")}`);

console.log("typescript client OK");
