//! `spawn_apps()`: a real products service and a real orders service, both in-process on free
//! loopback ports, each with its own data directory, sharing one generated root key pair; orders
//! calls products with its own service token (products:read only). Plus typed helpers for
//! requests, tokens, polling and Server-Sent Events.

#![allow(dead_code)] // each test module uses its own subset

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use biscuit_auth::KeyPair;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use service_kit::auth::{keys, tokens};
use service_kit::config::CommonArgs;
use service_kit::telemetry::LogFormat;
use store_actor::Durability;
use tokio::task::JoinHandle;

/// How long to wait for something asynchronous (a hold, an event) before failing. Generous:
/// CI machines are slow; the wait ends as soon as the condition holds.
pub const DEADLINE: Duration = Duration::from_secs(10);
/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(50);

/// One running server and the task that runs it until stopped.
struct Running {
    handle: ServerHandle,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self, graceful: bool) {
        self.handle.stop(graceful).await;
        self.task.await.unwrap().unwrap();
    }
}

/// A running products service and a running orders service that uses it.
pub struct TestApps {
    /// `http://127.0.0.1:PORT` of orders.
    pub address: String,
    /// `http://127.0.0.1:PORT` of products.
    pub products_address: String,
    pub client: reqwest::Client,
    pub root: Arc<KeyPair>,
    /// `user("alice")` with orders:read and orders:write.
    pub alice: String,
    /// `user("bob")` with orders:read and orders:write.
    pub bob: String,
    /// `user("admin")` with `admin(true)`.
    pub admin: String,
    /// `user("merchant")` with products:read and products:write only (no orders rights).
    pub products_writer: String,
    /// orders' own data directory.
    pub orders_data: PathBuf,
    orders: Option<Running>,
    products: Option<Running>,
    _dir: tempfile::TempDir,
}

fn mint(root: &KeyPair, user: &str, rights: &[&str], admin: bool) -> String {
    tokens::mint(
        root,
        &tokens::TokenSpec {
            user: user.into(),
            rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
            admin,
            ttl: Some(Duration::from_secs(3600)),
        },
    )
    .unwrap()
}

/// Starts products, then orders pointed at it, each with a fresh data directory.
pub async fn spawn_apps() -> TestApps {
    spawn(None, 2000).await
}

/// Starts orders alone, pointed at `products_url` (a [`FakeProducts`]), with a products
/// timeout of `timeout_ms`. `products_address` is the fake's; there is no products to stop.
pub async fn spawn_orders_with_products(products_url: &str, timeout_ms: u64) -> TestApps {
    spawn(Some(products_url), timeout_ms).await
}

async fn spawn(fake_products: Option<&str>, products_timeout_ms: u64) -> TestApps {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let root = Arc::new(keys::generate(&keys_dir).unwrap());
    let common = |name: &str| CommonArgs {
        data_dir: dir.path().join(name),
        public_key_file: keys::public_key_path(&keys_dir),
        durability: Durability::Always,
        log_format: LogFormat::Pretty,
        revoked_tokens_file: None,
        body_limit: 16 * 1024,
        workers: Some(2),
    };

    let (products_address, products) = match fake_products {
        Some(url) => (url.to_owned(), None),
        None => {
            let products = products::startup::Application::build(
                products::configuration::Config {
                    listen: "127.0.0.1:0".into(),
                    common: common("products"),
                },
                false,
            )
            .await
            .expect("products starts");
            let address = format!("http://127.0.0.1:{}", products.port());
            let products = Running {
                handle: products.handle(),
                task: tokio::spawn(products.run_until_stopped()),
            };
            (address, Some(products))
        }
    };

    let token_file = dir.path().join("orders-products.token");
    std::fs::write(
        &token_file,
        mint(&root, "orders-service", &["products:read"], false),
    )
    .unwrap();
    let orders = orders::startup::Application::build(
        orders::configuration::Config {
            listen: "127.0.0.1:0".into(),
            products_url: products_address.clone(),
            products_token_file: token_file,
            products_timeout_ms,
            common: common("orders"),
        },
        false,
    )
    .await
    .expect("orders starts");
    let address = format!("http://127.0.0.1:{}", orders.port());
    let orders = Running {
        handle: orders.handle(),
        task: tokio::spawn(orders.run_until_stopped()),
    };

    TestApps {
        address,
        products_address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        alice: mint(&root, "alice", &["orders:read", "orders:write"], false),
        bob: mint(&root, "bob", &["orders:read", "orders:write"], false),
        admin: mint(&root, "admin", &[], true),
        products_writer: mint(
            &root,
            "merchant",
            &["products:read", "products:write"],
            false,
        ),
        root,
        orders_data: dir.path().join("orders"),
        orders: Some(orders),
        products,
        _dir: dir,
    }
}

impl TestApps {
    /// A token for `user` with `rights` ("orders:read", ...).
    pub fn token(&self, user: &str, rights: &[&str]) -> String {
        mint(&self.root, user, rights, false)
    }

    // ------------------------------------------------------------------ orders

    /// A request to orders' `path` with `token` (if any).
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.address, path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// `POST /orders` with `token` and a JSON body.
    pub async fn place(&self, token: &str, body: &Value) -> Response {
        self.request(Method::POST, "/orders", Some(token))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Places an order of `lines` (product id, quantity), asserting 201; returns its body.
    pub async fn place_ok(&self, token: &str, lines: &[(&str, u32)]) -> Value {
        let items: Vec<Value> = lines
            .iter()
            .map(|(id, q)| json!({"product_id": id, "quantity": q}))
            .collect();
        let res = self.place(token, &json!({ "items": items })).await;
        assert_eq!(res.status(), 201, "placing {lines:?}");
        res.json().await.unwrap()
    }

    /// `GET path` on orders with `token`.
    pub async fn get(&self, token: &str, path: &str) -> Response {
        self.request(Method::GET, path, Some(token))
            .send()
            .await
            .unwrap()
    }

    /// `GET path` with `token`, asserting 200, as JSON.
    pub async fn get_json(&self, token: &str, path: &str) -> Value {
        let res = self.get(token, path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    /// `GET /orders/{id}` with `token`, asserting 200, as JSON.
    pub async fn order(&self, token: &str, id: &str) -> Value {
        self.get_json(token, &format!("/orders/{id}")).await
    }

    /// `PATCH /orders/{id}` with `token`, a JSON body and an optional `If-Match`.
    pub async fn patch(
        &self,
        token: &str,
        id: &str,
        body: &Value,
        if_match: Option<&str>,
    ) -> Response {
        let mut req = self
            .request(Method::PATCH, &format!("/orders/{id}"), Some(token))
            .json(body);
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        req.send().await.unwrap()
    }

    /// `PATCH /orders/{id}` asserting 200; returns the new body.
    pub async fn patch_ok(&self, token: &str, id: &str, body: &Value) -> Value {
        let res = self.patch(token, id, body, None).await;
        assert_eq!(res.status(), 200, "PATCH {id} with {body}");
        res.json().await.unwrap()
    }

    /// `DELETE /orders/{id}` with `token`.
    pub async fn delete(&self, token: &str, id: &str) -> Response {
        self.request(Method::DELETE, &format!("/orders/{id}"), Some(token))
            .send()
            .await
            .unwrap()
    }

    /// Every order `token` may see, following the pages of `GET /orders` (creation order).
    pub async fn all(&self, token: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut path = "/orders?limit=100".to_owned();
        loop {
            let page = self.get_json(token, &path).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => path = next.to_owned(),
                None => return items,
            }
        }
    }

    /// How many live orders there are (as the admin sees them).
    pub async fn count(&self) -> usize {
        self.all(&self.admin).await.len()
    }

    /// An anonymous `GET path` on orders.
    pub async fn anonymous(&self, path: &str) -> Response {
        self.request(Method::GET, path, None).send().await.unwrap()
    }

    // ---------------------------------------------------------------- products

    /// A request to products' `path` with the products writer's token.
    pub fn products_request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.products_address, path))
            .bearer_auth(&self.products_writer)
    }

    /// Creates a product through products' API; returns its id.
    pub async fn product(&self, name: &str, price: &str) -> String {
        let res = self
            .products_request(Method::POST, "/products")
            .json(&json!({"name": name, "price": price}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "create product {name}");
        id_of(&res.json().await.unwrap())
    }

    /// Changes a product's price through products' API.
    pub async fn reprice(&self, id: &str, price: &str) {
        let res = self
            .products_request(Method::PATCH, &format!("/products/{id}"))
            .json(&json!({ "price": price }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "reprice {id}");
    }

    /// Archives (deletes) a product through products' API.
    pub async fn archive_product(&self, id: &str) {
        let res = self
            .products_request(Method::DELETE, &format!("/products/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "archive {id}");
    }

    /// Polls `GET /orders/{id}` (as the admin) until `done` holds, failing after
    /// [`DEADLINE`]; returns the order.
    pub async fn wait_for_order(&self, id: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let order = self.order(&self.admin, id).await;
            if done(&order) {
                return order;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {id} did not get there within {DEADLINE:?}: {order}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// The value of the metric line starting with `prefix` (e.g. `products_feed_last_seq `).
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let text = self.anonymous("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Waits until orders has handled the products feed up to `seq`.
    pub async fn wait_for_feed(&self, seq: u64) {
        let reached = eventually(|| async {
            self.metric("products_feed_last_seq ")
                .await
                .is_some_and(|v| v >= seq as f64)
        })
        .await;
        assert!(
            reached,
            "the products feed did not reach {seq} within {DEADLINE:?}"
        );
    }

    // ---------------------------------------------------------------- lifecycle

    /// Stops products (not gracefully: orders' feed stream would hold a graceful stop) and
    /// waits until its store is closed. Orders keeps running.
    pub async fn stop_products(&mut self) {
        self.products
            .take()
            .expect("products is running")
            .stop(false)
            .await;
    }

    /// Stops orders, then products, each waiting for its stores to close.
    pub async fn stop(mut self) {
        if let Some(orders) = self.orders.take() {
            orders.stop(false).await;
        }
        if let Some(products) = self.products.take() {
            products.stop(false).await;
        }
    }
}

// ---------------------------------------------------------------- a fake products

/// A stand-in for products on a free loopback port: each connection is served on its own
/// thread, which records the request head (request line and headers) and answers with what
/// `answer` returns for it (a raw HTTP response, sent with `Connection: close`), or, for
/// `None`, accepts the request and never answers (the connection is held until the client
/// closes it). `answer` may block, e.g. to hold a request until the test releases it.
pub struct FakeProducts {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeProducts {
    pub fn start(answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let recorded = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (answer, recorded) = (answer.clone(), recorded.clone());
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    recorded.lock().unwrap().push(head.clone());
                    match answer(&head) {
                        Some(reply) => {
                            let _ = stream.write_all(reply.as_bytes());
                        }
                        // Hold the connection until the client gives up on it.
                        None => while matches!(stream.read(&mut buf), Ok(n) if n > 0) {},
                    }
                });
            }
        });
        Self { url, heads }
    }

    /// How many requests whose request line starts with `prefix` (e.g. `POST /products/lookup`)
    /// arrived so far.
    pub fn requests(&self, prefix: &str) -> usize {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.starts_with(prefix))
            .count()
    }
}

/// A raw HTTP/1.1 response with a JSON body, closing the connection.
pub fn http_json(status: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Products' answer to a lookup of `ids`, each a live product named `Tea` at 1.00.
pub fn lookup_of(ids: &[&str]) -> Value {
    let products: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "name": "Tea",
                "price": "1.00",
                "version": 1,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            })
        })
        .collect();
    json!({"products": products, "unknown": [], "archived": []})
}

/// Polls `check` every [`POLL`] until it returns true (→ true) or [`DEADLINE`] passes
/// (→ false).
pub async fn eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(POLL).await;
    }
}

// -------------------------------------------------------------------- assertions

/// Redactions for snapshots: ids, timestamps, cursors and owners (so one snapshot holds for
/// any user).
pub fn redactions() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (path, placeholder) in [
        (".id", "[id]"),
        (".owner", "[owner]"),
        (".created_at", "[created_at]"),
        (".updated_at", "[updated_at]"),
        (".items[].product_id", "[product_id]"),
        (".items[].id", "[id]"),
        (".items[].owner", "[owner]"),
        (".items[].created_at", "[created_at]"),
        (".items[].updated_at", "[updated_at]"),
        (".items[].items[].product_id", "[product_id]"),
        (".next_cursor", "[next_cursor]"),
        (".next", "[next]"),
        (".order.id", "[id]"),
        (".order.owner", "[owner]"),
        (".order.created_at", "[created_at]"),
        (".order.updated_at", "[updated_at]"),
        (".order.items[].product_id", "[product_id]"),
        (".unknown_product_ids[]", "[product_id]"),
        (".archived_product_ids[]", "[product_id]"),
    ] {
        settings.add_redaction(path, placeholder);
    }
    settings
}

/// Asserts that `res` is a problem+json with `status` and type `urn:shop:problem:{slug}`, a
/// title, a matching `status` member and a non-empty detail; returns the body.
pub async fn assert_problem(res: Response, status: u16, slug: &str) -> Value {
    assert_eq!(res.status(), status, "status of {}", res.url());
    assert_eq!(
        res.headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned()),
        Some(service_kit::problem::PROBLEM_JSON.to_owned()),
        "content type of a {status}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], format!("urn:shop:problem:{slug}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// The `field` members of a validation problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

/// Replaces every occurrence of each `(text, placeholder)` in a JSON value (ids in details).
pub fn scrub(value: &Value, pairs: &[(&str, &str)]) -> Value {
    let mut text = value.to_string();
    for (from, to) in pairs {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

/// The `id` of a body, as a string.
pub fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_owned()
}

/// The ids of a list of orders, in order.
pub fn ids(orders: &[Value]) -> Vec<String> {
    orders.iter().map(id_of).collect()
}

/// A header as a string.
pub fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

// ---------------------------------------------------------------- Server-Sent Events

/// One Server-Sent Event.
#[derive(Debug)]
pub struct Frame {
    pub id: Option<u64>,
    pub event: Option<String>,
    pub data: Value,
}

/// Reads Server-Sent Events from a streaming response.
pub struct Events {
    res: Response,
    buffer: String,
}

impl Events {
    pub fn new(res: Response) -> Self {
        Self {
            res,
            buffer: String::new(),
        }
    }

    /// The next event with data (skipping `retry:` and comments), failing after [`DEADLINE`].
    pub async fn next(&mut self) -> Frame {
        match tokio::time::timeout(DEADLINE, self.next_frame()).await {
            Ok(frame) => frame,
            Err(_) => panic!("no event within {DEADLINE:?}; buffered: {:?}", self.buffer),
        }
    }

    async fn next_frame(&mut self) -> Frame {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                if let Some(frame) = parse_frame(&raw) {
                    return frame;
                }
            }
            let chunk = self
                .res
                .chunk()
                .await
                .expect("the stream failed")
                .expect("the stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

fn parse_frame(raw: &str) -> Option<Frame> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in raw.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).unwrap());
        }
    }
    data.map(|data| Frame { id, event, data })
}
