//! End-to-end: the real `products` and `orders` binaries as child processes on loopback ports,
//! keys and tokens from the real `shop` binary. Needs `cargo build --workspace --bins` first.

use std::time::Duration;

use integration_tests::{Api, Keys, Method, Service, Shop, eventually};
use serde_json::{Value, json};

/// How long the products → orders feed may take to carry a change.
const FEED_DEADLINE: Duration = Duration::from_secs(10);
/// How long an answer may take while products is down.
const FAIL_FAST: Duration = Duration::from_secs(3);
/// How long a service may take to exit after SIGTERM (open event streams end at once; the
/// services' own forced-stop timeout is 5 s, so a stream holding the stop fails this).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(3);

fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

fn ids(list: &[Value]) -> Vec<String> {
    list.iter().map(id).collect()
}

/// Waits until order `order` (read as admin) is on hold, and returns it.
async fn wait_on_hold(shop: &Shop, order: &str) -> Value {
    eventually(
        &format!("order {order} to go on_hold"),
        FEED_DEADLINE,
        || async move {
            let reply = shop.get_order(&shop.tokens.admin, order).await;
            let body = reply.expect(200, "GET /orders/{id}");
            if body["status"] == "on_hold" {
                Ok(body.clone())
            } else {
                Err(body["status"].clone())
            }
        },
    )
    .await
}

/// Products are created through products, and an order of two lines is placed, re-quantified,
/// fulfilled; another is placed and cancelled; lists filter by status; orders keep the price
/// snapshot when the product's price changes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_place_update_fulfil_cancel_and_list() {
    let shop = Shop::start().await;
    let alice = &shop.tokens.alice;
    let tea = id(&shop.create_product("Green tea", "4.20").await);
    let cup = id(&shop.create_product("Cup", "12.50").await);

    // Place: two lines, priced by products, exact total.
    let placed = shop.place_order(alice, &[(&tea, 2), (&cup, 1)]).await;
    let order = placed.expect(201, "POST /orders").clone();
    let order_id = id(&order);
    assert_eq!(
        placed.header("location"),
        Some(format!("/orders/{order_id}").as_str())
    );
    assert_eq!(placed.header("etag"), Some("\"1\""));
    assert_eq!(order["owner"], "alice");
    assert_eq!(order["status"], "placed");
    assert_eq!(order["total"], "20.90");
    assert_eq!(order["version"], 1);
    let lines = order["items"].as_array().expect("items");
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["product_id"], tea.as_str());
    assert_eq!(lines[0]["product_name"], "Green tea");
    assert_eq!(lines[0]["unit_price"], "4.20");
    assert_eq!(lines[0]["line_total"], "8.40");
    assert_eq!(lines[1]["product_id"], cup.as_str());
    assert_eq!(lines[1]["line_total"], "12.50");
    assert_eq!(order["stock"], "pending");
    // Products confirms the sale moments later: the order's stock and version say so.
    let read = shop.settled(&order_id).await;
    assert_eq!(
        (&read["stock"], &read["version"], &read["items"]),
        (&json!("confirmed"), &json!(2), &order["items"])
    );

    // Update quantities, conditionally on the version read.
    let url = shop.orders.url(&format!("/orders/{order_id}"));
    let changed = shop
        .api
        .send(
            Method::PATCH,
            &url,
            Some(alice),
            &[("If-Match", "\"2\"")],
            Some(&json!({"items": [
                {"product_id": tea, "quantity": 3},
                {"product_id": cup, "quantity": 2},
            ]})),
        )
        .await;
    let changed = changed.expect(200, "PATCH items").clone();
    assert_eq!(changed["version"], 3);
    assert_eq!(changed["total"], "37.60");
    assert_eq!(changed["items"][0]["quantity"], 3);
    assert_eq!(changed["items"][1]["quantity"], 2);

    // A later price change in products does not rewrite the order's snapshot.
    shop.api
        .patch(
            &shop.products.url(&format!("/products/{tea}")),
            Some(&shop.tokens.catalog),
            &json!({"price": "5.00"}),
        )
        .await
        .expect(200, "PATCH /products/{id}");

    // Fulfil; a fulfilled order's items no longer change.
    let fulfilled = shop
        .api
        .patch(&url, Some(alice), &json!({"status": "fulfilled"}))
        .await;
    let fulfilled = fulfilled.expect(200, "PATCH status fulfilled").clone();
    assert_eq!(fulfilled["status"], "fulfilled");
    assert_eq!(fulfilled["items"][0]["unit_price"], "4.20");
    assert_eq!(fulfilled["total"], "37.60");
    shop.api
        .patch(
            &url,
            Some(alice),
            &json!({"items": [{"product_id": cup, "quantity": 1}]}),
        )
        .await
        .expect(409, "PATCH items of a fulfilled order");

    // Another order, in the single-product form, at the new price; then cancelled.
    let second = shop
        .api
        .post(
            &shop.orders.url("/orders"),
            Some(alice),
            &json!({"product_id": tea, "quantity": 1}),
        )
        .await;
    let second = second.expect(201, "POST /orders (single product)").clone();
    assert_eq!(second["total"], "5.00");
    let second_id = id(&second);
    shop.api
        .patch(
            &shop.orders.url(&format!("/orders/{second_id}")),
            Some(alice),
            &json!({"status": "cancelled"}),
        )
        .await
        .expect(200, "PATCH status cancelled");

    // Lists by status.
    assert_eq!(
        ids(&shop.list_orders(alice, "").await),
        [order_id.as_str(), second_id.as_str()]
    );
    assert_eq!(
        ids(&shop.list_orders(alice, "status=fulfilled").await),
        [order_id.as_str()]
    );
    assert_eq!(
        ids(&shop.list_orders(alice, "status=cancelled").await),
        [second_id.as_str()]
    );
    assert!(shop.list_orders(alice, "status=placed").await.is_empty());
}

/// Archiving a product puts the still-placed orders containing it on hold, through the change
/// feed, with a reason naming the product; other orders (without it, or already fulfilled)
/// are not touched; new orders for it are refused with 422 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archiving_a_product_puts_its_open_orders_on_hold() {
    let shop = Shop::start().await;
    let (alice, bob) = (&shop.tokens.alice, &shop.tokens.bob);
    let tea = id(&shop.create_product("Green tea", "4.20").await);
    let cup = id(&shop.create_product("Cup", "12.50").await);
    let with_tea = shop.place_order(alice, &[(&tea, 2), (&cup, 1)]).await;
    let with_tea = id(with_tea.expect(201, "order with tea"));
    let without_tea = shop.place_order(alice, &[(&cup, 1)]).await;
    let without_tea = id(without_tea.expect(201, "order without tea"));
    let done = shop.place_order(bob, &[(&tea, 1)]).await;
    let done = id(done.expect(201, "bob's order with tea"));
    shop.api
        .patch(
            &shop.orders.url(&format!("/orders/{done}")),
            Some(bob),
            &json!({"status": "fulfilled"}),
        )
        .await
        .expect(200, "fulfil bob's order");
    // Each order as it stays once products confirmed its stock.
    shop.settled(&with_tea).await;
    let without_tea = shop.settled(&without_tea).await;
    let done = shop.settled(&done).await;

    shop.archive_product(&tea).await;

    let held = wait_on_hold(&shop, &with_tea).await;
    let reason = held["hold_reason"].as_str().expect("a hold_reason");
    assert!(reason.contains(&tea), "{reason:?} names the product id");
    assert!(reason.contains("Green tea"), "{reason:?} names the product");
    assert_eq!(held["version"], 3, "placed, confirmed, held");
    // Every effect of the archive event is stored once the feed position reaches it.
    shop.wait_feed_caught_up(FEED_DEADLINE).await;
    let reread = shop.get_order(alice, &id(&without_tea)).await;
    assert_eq!(reread.expect(200, "order without tea"), &without_tea);
    let reread = shop.get_order(bob, &id(&done)).await;
    assert_eq!(reread.expect(200, "fulfilled order"), &done);
    assert_eq!(
        ids(&shop.list_orders(alice, "status=on_hold").await),
        [with_tea.as_str()]
    );

    let refused = shop.place_order(alice, &[(&tea, 1)]).await;
    let problem = refused.expect(422, "order of an archived product");
    assert_eq!(problem["archived_product_ids"], json!([tea]));
    assert!(
        problem["detail"].as_str().unwrap_or("").contains(&tea),
        "{problem}"
    );
}

/// With products killed, placing an order answers 503 with Retry-After within a few seconds and
/// stores nothing; once products is back (same data, same port) orders succeed again without
/// restarting orders; the refused orders held no stock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_down_gives_fast_503s_and_orders_recover_by_themselves() {
    let mut shop = Shop::start().await;
    let (alice, admin) = (shop.tokens.alice.clone(), shop.tokens.admin.clone());
    let (alice, admin) = (alice.as_str(), admin.as_str());
    let tea = id(&shop.create_stocked("Green tea", "4.20", 10).await);
    let first = shop.place_order(alice, &[(&tea, 1)]).await;
    let first = id(first.expect(201, "order while products is up"));
    assert_eq!(shop.list_orders(admin, "limit=100").await.len(), 1);

    let orders_pid = shop.orders.pid();
    shop.products.kill();

    // Enough attempts to go through retries and into the open circuit.
    for attempt in 0..6 {
        let reply = shop.place_order(alice, &[(&tea, 1)]).await;
        let problem = reply.expect(
            503,
            &format!("POST /orders #{attempt} while products is down"),
        );
        assert_eq!(problem["type"], "urn:shop:problem:unavailable");
        let retry_after: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a numeric Retry-After");
        assert!(retry_after > 0);
        assert!(
            reply.elapsed < FAIL_FAST,
            "attempt {attempt} took {:?}",
            reply.elapsed
        );
    }
    assert_eq!(
        shop.list_orders(admin, "limit=100").await.len(),
        1,
        "nothing stored while products was down"
    );
    let ready = shop.api.get(&shop.orders.url("/readyz"), None).await;
    ready.expect(503, "orders /readyz while products is down");
    shop.api
        .get(&shop.orders.url("/healthz"), None)
        .await
        .expect(200, "orders /healthz while products is down");

    shop.products.restart().await;
    let product = shop
        .api
        .get(
            &shop.products.url(&format!("/products/{tea}")),
            Some(&shop.tokens.catalog),
        )
        .await;
    product.expect(200, "the product survived SIGKILL");

    // The same Idempotency-Key on every try: at most one order, however the retries go.
    let key = uuid::Uuid::new_v4().to_string();
    let url = shop.orders.url("/orders");
    let body = json!({"items": [{"product_id": tea, "quantity": 2}]});
    let (shop, key, url, body) = (&shop, key.as_str(), url.as_str(), &body);
    let placed = eventually(
        "an order to succeed after products is back",
        Duration::from_secs(15),
        || async move {
            let reply = shop
                .api
                .send(
                    Method::POST,
                    url,
                    Some(alice),
                    &[("Idempotency-Key", key)],
                    Some(body),
                )
                .await;
            match reply.status.as_u16() {
                201 => Ok(reply.body),
                503 => Err(reply.body),
                other => panic!("unexpected {other}: {}", reply.body),
            }
        },
    )
    .await;
    assert_eq!(placed["total"], "8.40");
    assert_eq!(shop.list_orders(admin, "limit=100").await.len(), 2);
    assert_eq!(shop.orders.pid(), orders_pid, "orders was not restarted");
    // Nothing was held for the refused orders: only the two placed ones took stock.
    for order in [first, id(&placed)] {
        assert_eq!(shop.settled(&order).await["stock"], "confirmed");
    }
    let product = shop
        .api
        .get(
            &shop.products.url(&format!("/products/{tea}")),
            Some(&shop.tokens.catalog),
        )
        .await;
    let product = product.expect(200, "GET /products/{id}");
    assert_eq!(
        (&product["stock"], &product["reserved"]),
        (&json!(7), &json!(0))
    );
}

/// After a graceful restart of orders, the products feed resumes at its durable cursor: a new
/// archive still puts its order on hold, the order held before the restart is not written
/// again (same version and updated_at), the events before the restart are not replayed, and
/// `products_feed_last_seq` catches up with products' last sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_orders_resume_the_feed_without_repeating_side_effects() {
    let mut shop = Shop::start().await;
    let alice = shop.tokens.alice.clone();
    let alice = alice.as_str();
    let tea = id(&shop.create_product("Green tea", "4.20").await);
    let cup = id(&shop.create_product("Cup", "12.50").await);
    let first = shop.place_order(alice, &[(&tea, 1)]).await;
    let first = id(first.expect(201, "order with tea"));
    let second = shop.place_order(alice, &[(&cup, 1)]).await;
    let second = id(second.expect(201, "order with cup"));
    shop.archive_product(&tea).await;
    let held_before = wait_on_hold(&shop, &first).await;
    shop.wait_feed_caught_up(FEED_DEADLINE).await;
    let order_writes = shop.store_seq(&shop.orders, "orders").await;
    let cursor_writes = shop.store_seq(&shop.orders, "products-feed").await;

    let status = shop.orders.terminate(SHUTDOWN_DEADLINE).await;
    assert!(
        status.success(),
        "orders exited with {status} after SIGTERM"
    );
    shop.orders.restart().await;
    shop.archive_product(&cup).await;

    let held_after = wait_on_hold(&shop, &second).await;
    let reason = held_after["hold_reason"].as_str().unwrap_or("");
    assert!(reason.contains(&cup), "{reason:?} names the product");
    let last = shop.wait_feed_caught_up(FEED_DEADLINE).await;
    assert_eq!(last, shop.products_last_seq().await);
    let reread = shop.get_order(alice, &first).await;
    assert_eq!(
        reread.expect(200, "the order held before the restart"),
        &held_before,
        "the order held before the restart is not written again"
    );
    assert_eq!(
        shop.store_seq(&shop.orders, "orders").await - order_writes,
        1.0,
        "exactly one order write since the restart: the new hold"
    );
    assert!(
        shop.store_seq(&shop.orders, "products-feed").await - cursor_writes <= 1.0,
        "the feed resumed at its cursor: at most one cursor save for the one new event, \
         not a replay of the events handled before the restart"
    );
}

/// After a restart of orders, before any new product change, `products_feed_last_seq` reports
/// the durable cursor (the last sequence handled), not 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_position_metric_survives_an_orders_restart() {
    let mut shop = Shop::start().await;
    shop.create_product("Green tea", "4.20").await;
    let caught_up = shop.wait_feed_caught_up(FEED_DEADLINE).await;
    assert!(caught_up > 0.0);

    let status = shop.orders.terminate(SHUTDOWN_DEADLINE).await;
    assert!(
        status.success(),
        "orders exited with {status} after SIGTERM"
    );
    shop.orders.restart().await;

    let shop = &shop;
    eventually(
        "products_feed_last_seq to report the cursor after the restart",
        FEED_DEADLINE,
        || async move {
            match shop.orders_feed_seq().await {
                Some(seq) if seq == caught_up => Ok(()),
                seen => Err(seen),
            }
        },
    )
    .await;
}

/// Orders belong to their owner across real processes: bob gets 404 for alice's order (read,
/// change, delete) and does not see it in lists; an admin reads, lists and changes it; a token
/// without orders rights gets 403, no token 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_see_only_their_own_orders_and_admins_see_all() {
    let shop = Shop::start().await;
    let (alice, bob, admin) = (&shop.tokens.alice, &shop.tokens.bob, &shop.tokens.admin);
    let tea = id(&shop.create_product("Green tea", "4.20").await);
    let alices = shop.place_order(alice, &[(&tea, 1)]).await;
    let alices_id = id(alices.expect(201, "alice's order"));
    let alices = shop.settled(&alices_id).await;
    let bobs = shop.place_order(bob, &[(&tea, 2)]).await;
    let bobs_id = id(bobs.expect(201, "bob's order"));
    let url = shop.orders.url(&format!("/orders/{alices_id}"));

    let problem = shop.get_order(bob, &alices_id).await;
    let problem = problem.expect(404, "bob reads alice's order");
    assert_eq!(problem["type"], "urn:shop:problem:not-found");
    shop.api
        .patch(&url, Some(bob), &json!({"status": "cancelled"}))
        .await
        .expect(404, "bob cancels alice's order");
    shop.api
        .delete(&url, Some(bob))
        .await
        .expect(404, "bob deletes alice's order");
    assert_eq!(ids(&shop.list_orders(bob, "").await), [bobs_id.as_str()]);
    assert_eq!(
        ids(&shop.list_orders(alice, "").await),
        [alices_id.as_str()]
    );

    let read = shop.get_order(admin, &alices_id).await;
    assert_eq!(read.expect(200, "admin reads alice's order"), &alices);
    assert_eq!(
        ids(&shop.list_orders(admin, "").await),
        [alices_id.as_str(), bobs_id.as_str()]
    );
    let cancelled = shop
        .api
        .patch(&url, Some(admin), &json!({"status": "cancelled"}))
        .await;
    cancelled.expect(200, "admin cancels alice's order");
    let cancelled = shop.settled(&alices_id).await;
    assert_eq!(cancelled["owner"], "alice");
    assert_eq!(cancelled["stock"], "released");
    let read = shop.get_order(alice, &alices_id).await;
    assert_eq!(read.expect(200, "alice reads her order"), &cancelled);

    shop.get_order(&shop.tokens.catalog, &alices_id)
        .await
        .expect(403, "a token without orders rights");
    shop.api.get(&url, None).await.expect(401, "no token");
}

/// SIGTERM makes an idle products (running alone, no request or event stream open) exit 0
/// within a few seconds; restarted on the same data directory, its products are all there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_products_exits_promptly_on_sigterm_and_keeps_its_data() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let keys = Keys::generate(&dir.path().join("keys"));
    let catalog = keys.mint("catalog", &["products:read", "products:write"], false);
    let args = vec![
        "--public-key-file".to_owned(),
        keys.public_key.display().to_string(),
    ];
    let mut products = Service::start("products", "products", dir.path(), args).await;
    let api = Api::new();
    let mut created = Vec::new();
    for (name, price) in [("Green tea", "4.20"), ("Cup", "12.50")] {
        let reply = api
            .post(
                &products.url("/products"),
                Some(&catalog),
                &json!({"name": name, "price": price}),
            )
            .await;
        created.push(reply.expect(201, "POST /products").clone());
    }

    let started = std::time::Instant::now();
    let status = products.terminate(SHUTDOWN_DEADLINE).await;
    let took = started.elapsed();
    assert!(
        status.success(),
        "products exited with {status} after SIGTERM"
    );
    eprintln!("idle products exited {took:?} after SIGTERM");

    products.restart().await;
    let list = api.get(&products.url("/products"), Some(&catalog)).await;
    assert_eq!(list.expect(200, "GET /products")["items"], json!(created));
}

/// SIGTERM makes products exit 0 within a few seconds even while orders holds its change feed
/// open (the stream ends instead of holding the stop); restarted on the same data and port,
/// orders (not restarted) place orders with it again and follow its feed again (an archive
/// puts an order on hold).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_with_a_feed_consumer_exits_on_sigterm_and_orders_reconnect() {
    let mut shop = Shop::start().await;
    let tea = shop.create_product("Green tea", "4.20").await;
    let tea_id = id(&tea);
    let cup_id = id(&shop.create_product("Cup", "12.50").await);
    let alice = shop.tokens.alice.clone();
    let alice = alice.as_str();
    let with_cup = shop.place_order(alice, &[(&cup_id, 1)]).await;
    let with_cup = id(with_cup.expect(201, "order with cup"));
    // Orders follows the feed: its event stream is open during the shutdown.
    shop.wait_feed_caught_up(FEED_DEADLINE).await;
    let orders_pid = shop.orders.pid();

    let started = std::time::Instant::now();
    let status = shop.products.terminate(SHUTDOWN_DEADLINE).await;
    let took = started.elapsed();
    assert!(
        status.success(),
        "products exited with {status} after SIGTERM"
    );
    eprintln!("products with a feed consumer exited {took:?} after SIGTERM");

    shop.products.restart().await;
    let read = shop
        .api
        .get(
            &shop.products.url(&format!("/products/{tea_id}")),
            Some(&shop.tokens.catalog),
        )
        .await;
    assert_eq!(read.expect(200, "the product after the restart"), &tea);
    let (shop_ref, tea_ref) = (&shop, tea_id.as_str());
    let placed = eventually(
        "an order after products restarted",
        Duration::from_secs(15),
        || async move {
            let reply = shop_ref.place_order(alice, &[(tea_ref, 1)]).await;
            if reply.status == 201 {
                Ok(reply.body)
            } else {
                Err((reply.status, reply.body))
            }
        },
    )
    .await;
    assert_eq!(placed["total"], "4.20");
    shop.archive_product(&cup_id).await;
    wait_on_hold(&shop, &with_cup).await;
    assert_eq!(shop.orders.pid(), orders_pid, "orders was not restarted");
}

/// Sends `raw` bytes to `port` and returns what comes back before the server closes.
fn raw_exchange(port: u16, raw: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    s.write_all(raw).expect("send");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Requests the HTTP layer refuses by itself (garbage request line, both Content-Length and
/// Transfer-Encoding, a head over the limit) get their 4xx, are counted by kind in `/metrics`,
/// and leave no ERROR line in the log (any client could otherwise fill it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_are_counted_not_logged_as_errors() {
    let shop = Shop::start().await;
    let port = shop.products.port();
    let garbage = raw_exchange(port, b"GARBAGE\r\n\r\n");
    let smuggled = raw_exchange(
        port,
        b"POST /products HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let mut huge = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 300_000));
    huge.extend_from_slice(b"\r\n\r\n");
    let too_large = raw_exchange(port, &huge);

    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    assert!(smuggled.starts_with("HTTP/1.1 400"), "{smuggled}");
    assert!(too_large.starts_with("HTTP/1.1 431"), "{too_large}");
    let metrics = shop.products.url("/metrics");
    let malformed = shop
        .api
        .metric(&metrics, "http_protocol_errors_total{kind=\"malformed\"}")
        .await;
    let head = shop
        .api
        .metric(
            &metrics,
            "http_protocol_errors_total{kind=\"head_too_large\"}",
        )
        .await;
    assert_eq!((malformed, head), (Some(2.0), Some(1.0)));
    let log = shop.products.log_tail(200);
    assert!(
        !log.lines()
            .any(|l| l.contains("ERROR") && l.contains("actix_http")),
        "{log}"
    );
    // The service still answers.
    shop.api
        .get(&shop.products.url("/healthz"), None)
        .await
        .expect(200, "GET /healthz after protocol errors");
}

/// Logs an operator can use, from the products binary on its default filter writing to a file:
/// plain text (no colour codes), a start-up line naming the service (and none of actix's
/// anonymous ones), and each refused request at info with service, request id, method, route
/// and status (successful ones stay at debug).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_logs_are_plain_name_the_service_and_show_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Keys::generate(&dir.path().join("keys"));
    let port = integration_tests::free_port();
    let log_path = dir.path().join("products.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = integration_tests::command("products")
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--public-key-file",
        ])
        .arg(&keys.public_key)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let api = Api::new();
    let health = format!("{base}/healthz");
    let health = health.as_str();
    eventually(
        "products to answer",
        Duration::from_secs(15),
        || async move {
            match reqwest::get(health).await {
                Ok(res) if res.status() == 200 => Ok(()),
                other => Err(other.map(|r| r.status())),
            }
        },
    )
    .await;
    let token = keys.mint("alice", &["products:read"], false);
    let missing = format!("{base}/products/{}", uuid::Uuid::now_v7());
    api.send(
        Method::GET,
        &missing,
        Some(&token),
        &[("X-Request-Id", "log-check-1")],
        None,
    )
    .await
    .expect(404, "GET an unknown product");
    api.get(&format!("{base}/products"), Some(&token))
        .await
        .expect(200, "GET /products");
    let text = eventually(
        "the refusal to be logged",
        Duration::from_secs(5),
        || async {
            let text = std::fs::read_to_string(&log_path).unwrap();
            if text.contains("log-check-1") {
                Ok(text)
            } else {
                Err(text)
            }
        },
    )
    .await;
    let _ = child.kill();
    let _ = child.wait();

    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file:\n{text}"
    );
    assert!(text.contains("products bound"), "{text}");
    assert!(!text.contains("actix_server"), "{text}");
    let refused = text
        .lines()
        .find(|l| l.contains("log-check-1"))
        .expect("the refused request's line");
    for part in [
        "INFO",
        "service=\"products\"",
        "method=GET",
        "route=\"/products/{id}\"",
        "status=404",
        "request refused",
    ] {
        assert!(refused.contains(part), "{part} in {refused}");
    }
    assert!(
        !text.contains("request done"),
        "successes stay at debug:\n{text}"
    );
}

/// Every metric the Helm chart's Grafana dashboard queries is exported by products or orders
/// once they have served an order (so the dashboard shows data, not empty panels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_queries_only_metrics_the_services_export() {
    let shop = Shop::start().await;
    let tea = id(&shop.create_product("Green tea", "4.20").await);
    let order = shop.place_order(&shop.tokens.alice, &[(&tea, 1)]).await;
    let order = id(order.expect(201, "POST /orders"));
    shop.settled(&order).await;
    shop.wait_feed_caught_up(FEED_DEADLINE).await;
    let mut exported = String::new();
    for service in [&shop.products, &shop.orders] {
        let reply = shop.api.get(&service.url("/metrics"), None).await;
        exported.push_str(reply.expect(200, "GET /metrics").as_str().unwrap());
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../helm/shop/dashboards/shop.json"
    );
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = std::collections::BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            // Metric names have an underscore; label names here do not; drop label values.
            let mut in_quotes = false;
            let bare: String = expr
                .chars()
                .filter(|c| {
                    if *c == '"' {
                        in_quotes = !in_quotes;
                    }
                    !in_quotes && *c != '"'
                })
                .collect();
            for word in bare.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if word.contains('_') && word != "histogram_quantile" {
                    queried.insert(word.to_owned());
                }
            }
        }
    }
    assert!(queried.len() >= 10, "{queried:?}");
    for name in &queried {
        let sampled = exported
            .lines()
            .any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")));
        assert!(
            sampled,
            "the dashboard queries {name}, which has no sample:\n{exported}"
        );
    }
}

/// Every service binary runs on mimalloc (service-kit's `Allocator`), built with the option
/// `.cargo/config.toml` sets: its option names are in the binary only if it is linked in.
#[test]
fn the_binaries_are_linked_with_mimalloc() {
    for name in ["products", "orders", "shop"] {
        let bytes = std::fs::read(integration_tests::binary(name)).unwrap();
        let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        assert!(
            has(b"arena_eager_commit"),
            "{name} is not linked with mimalloc"
        );
    }
}
