"""Drives both services through clients generated from their openapi.json by
openapi-python-client: create a product and an order, list both, read a validation error's
fields, read the change feed whole. Env: CLIENTS (where products_client and orders_client were
generated), P and O (base URLs), T (a token that may write products and orders)."""

import os
import sys

sys.path.insert(0, os.environ["CLIENTS"])

from orders_client import AuthenticatedClient as OrdersClient  # noqa: E402
from orders_client.api.orders import list_orders, place_order  # noqa: E402
from orders_client.models import ItemRequest, OrderBody, OrderPage  # noqa: E402
from products_client import AuthenticatedClient as ProductsClient  # noqa: E402
from products_client.api.products import (  # noqa: E402
    create_product,
    follow_products,
    list_products,
)
from products_client.models import (  # noqa: E402
    CreateProduct,
    Problem,
    ProductBody,
    ProductPage,
    SortOrder,
)


def check(ok, what):
    if not ok:
        sys.exit(f"python client: {what}")


token = os.environ["T"]
products = ProductsClient(base_url=os.environ["P"], token=token)
orders = OrdersClient(base_url=os.environ["O"], token=token)

product = create_product.sync(client=products, body=CreateProduct(name="Generated tea", price="3.10", stock=5))
check(isinstance(product, ProductBody), f"create a product: {product!r}")

order = place_order.sync(client=orders, body=ItemRequest(product_id=product.id, quantity=2))
check(isinstance(order, OrderBody), f"place an order: {order!r}")
check(order.total == "6.20", f"order total {order.total}")

# Newest first: the fuzzer may have left many products before this one.
page = list_products.sync(client=products, limit=10, order=SortOrder.DESC)
check(isinstance(page, ProductPage) and any(p.id == product.id for p in page.items), "list products")

order_page = list_orders.sync(client=orders, product_id=product.id)
check(isinstance(order_page, OrderPage) and [o.id for o in order_page.items] == [order.id], "list orders")

refused = create_product.sync(client=products, body=CreateProduct(name=" padded", price="1.234"))
check(isinstance(refused, Problem) and refused.status == 422, f"a validation error: {refused!r}")
check(sorted(e.field for e in refused.errors) == ["name", "price"], f"error fields {refused.errors!r}")

# The change feed, read whole: `follow=False` ends it at the current end.
feed = follow_products.sync(client=products, after=0, follow=False)
check(isinstance(feed, str) and f'"id":"{product.id}"' in feed, f"the change feed: {feed!r}"[:200])

print("python client OK")
