//! `spawn_apps()`: a real orders service in-process on a free loopback port, and the real
//! `products` binary as a child process (orders' tests do not build the products crate), each
//! with its own data directory, sharing one generated root key pair; orders calls products with
//! its own service token (products:read and products:reserve). Plus typed requests of this API. What every
//! suite shares is in `test_kit`.

#![allow(dead_code)] // each test module uses its own subset

use std::path::PathBuf;
use std::sync::Arc;

use biscuit_auth::KeyPair;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use service_kit::auth::keys;
use service_kit::config::CommonArgs;
use service_kit::server::Stopper;
use store_actor::fs::SimFs;
pub use test_kit::fake_products::{FakeProducts, http_json, reservation_of};
use test_kit::process::Service;
use test_kit::tokens::mint;
pub use test_kit::{
    DEADLINE, Events, Frame, POLL, assert_problem, error_fields, eventually, header, id_of, ids,
    redactions, scrub,
};
use tokio::task::JoinHandle;

/// The in-process orders server and the task that runs it until stopped.
struct Running {
    stopper: Stopper,
    task: JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) {
        self.stopper.stop_now().await;
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
    products: Option<Service>,
    _dir: tempfile::TempDir,
}

/// Starts products, then orders pointed at it, each with a fresh data directory.
pub async fn spawn_apps() -> TestApps {
    spawn(None, 2000, None).await
}

/// Like [`spawn_apps`], with orders' stores on the simulated disk `fs` (to fail its writes).
pub async fn spawn_apps_on(fs: SimFs) -> TestApps {
    spawn(None, 2000, Some(fs)).await
}

/// Starts orders alone, pointed at `products_url` (a [`FakeProducts`]), with a products
/// timeout of `timeout_ms`. `products_address` is the fake's; there is no products to stop.
pub async fn spawn_orders_with_products(products_url: &str, timeout_ms: u64) -> TestApps {
    spawn(Some(products_url), timeout_ms, None).await
}

async fn spawn(
    fake_products: Option<&str>,
    products_timeout_ms: u64,
    fs: Option<SimFs>,
) -> TestApps {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    let root = Arc::new(keys::generate(&keys_dir).unwrap());
    let common = |name: &str| CommonArgs {
        body_limit: 16 * 1024,
        workers: Some(2),
        ..CommonArgs::new(dir.path().join(name), keys::public_key_path(&keys_dir))
    };

    let (products_address, products) = match fake_products {
        Some(url) => (url.to_owned(), None),
        None => {
            let public_key = keys::public_key_path(&keys_dir);
            let args = ["--public-key-file", &public_key.to_string_lossy()]
                .into_iter()
                .chain(["--durability", "always", "--workers", "2"])
                .chain(["--body-limit", "16384"])
                .map(str::to_owned)
                .collect();
            let products = Service::start("products", "products", dir.path(), args).await;
            (products.base_url(), Some(products))
        }
    };

    let token_file = dir.path().join("orders-products.token");
    std::fs::write(
        &token_file,
        mint(
            &root,
            "orders-service",
            &["products:read", "products:reserve"],
            false,
        ),
    )
    .unwrap();
    let config = orders::configuration::Config {
        listen: "127.0.0.1:0".into(),
        products_url: products_address.clone(),
        products_token_file: token_file,
        products_timeout_ms,
        common: common("orders"),
    };
    let orders = match fs {
        Some(fs) => orders::startup::build_on(config, Arc::new(fs)).await,
        None => orders::startup::build(config).await,
    }
    .expect("orders starts");
    let address = format!("http://127.0.0.1:{}", orders.port());
    let orders = Running {
        stopper: orders.stopper(),
        task: tokio::spawn(orders.run_until_stopped()),
    };

    TestApps {
        address,
        products_address,
        client: test_kit::http::client(),
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
        test_kit::http::request(&self.client, &self.address, method, path, token)
    }

    /// `POST /orders` with `token` and a JSON body.
    pub async fn place(&self, token: &str, body: &Value) -> Response {
        self.request(Method::POST, "/orders", Some(token))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Places an order of `lines` (product id, quantity), asserting 201, and waits until
    /// products confirmed its stock (so its version no longer moves on its own); returns it
    /// as it is then.
    pub async fn place_ok(&self, token: &str, lines: &[(&str, u32)]) -> Value {
        let items: Vec<Value> = lines
            .iter()
            .map(|(id, q)| json!({"product_id": id, "quantity": q}))
            .collect();
        let res = self.place(token, &json!({ "items": items })).await;
        assert_eq!(res.status(), 201, "placing {lines:?}");
        let placed: Value = res.json().await.unwrap();
        assert_eq!(placed["stock"], "pending", "{placed}");
        self.settled(&id_of(&placed)).await
    }

    /// Waits until order `id` owes products nothing (its stock confirmed, released or
    /// expired); returns it then.
    pub async fn settled(&self, id: &str) -> Value {
        self.wait_for_order(id, |o| {
            !matches!(o["stock"].as_str(), Some("pending" | "releasing"))
        })
        .await
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

    /// `PATCH /orders/{id}` asserting 200; returns the new body once the order owes products
    /// nothing (a cancel's release, new lines' commit), as [`Self::settled`].
    pub async fn patch_ok(&self, token: &str, id: &str, body: &Value) -> Value {
        let res = self.patch(token, id, body, None).await;
        assert_eq!(res.status(), 200, "PATCH {id} with {body}");
        self.settled(id).await
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
        test_kit::http::all_pages(&self.client, &self.address, token, "/orders?limit=100").await
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

    /// Creates a product tracking `stock` units through products' API; returns its id.
    pub async fn stocked(&self, name: &str, price: &str, stock: u64) -> String {
        let res = self
            .products_request(Method::POST, "/products")
            .json(&json!({"name": name, "price": price, "stock": stock}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "create product {name}");
        id_of(&res.json().await.unwrap())
    }

    /// `(stock, reserved, available)` of a product, as products shows it.
    pub async fn stock_of(&self, id: &str) -> (Value, Value, Value) {
        let res = self
            .products_request(Method::GET, &format!("/products/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "get product {id}");
        let p: Value = res.json().await.unwrap();
        (
            p["stock"].clone(),
            p["reserved"].clone(),
            p["available"].clone(),
        )
    }

    /// The reservation `id` at products (as the products writer, an admin of nothing: it needs
    /// products:reserve, so this uses orders' own rights).
    pub async fn reservation(&self, id: &str) -> Value {
        let token = self.token("orders-service", &["products:read", "products:reserve"]);
        let res = self
            .client
            .get(format!("{}/reservations/{id}", self.products_address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "get reservation {id}");
        res.json().await.unwrap()
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

    /// Kills products (SIGKILL) and waits for it to exit. Orders keeps running.
    pub async fn stop_products(&mut self) {
        self.products.take().expect("products is running").kill();
    }

    /// Stops orders, waiting for its stores to close, then kills products.
    pub async fn stop(mut self) {
        if let Some(orders) = self.orders.take() {
            orders.stop().await;
        }
        if let Some(mut products) = self.products.take() {
            products.kill();
        }
    }
}
