//! Harness of the end-to-end tests: the REAL `products`, `orders` and `shop` binaries run as
//! child processes, each service on its own free loopback port with its own data directory,
//! with a root key pair and tokens made by `shop keygen` and `shop token mint`.
//!
//! - The binaries run as [`Service`]s, from the shared test kit ([`test_kit::process`]): found
//!   next to the test executable (run `cargo build --workspace --bins` first), each killed
//!   (SIGKILL) when dropped, its output in a log file whose tail is printed when a test panics
//!   (the test's temporary directory is then kept for inspection), readiness polled with a
//!   deadline, and no `SHOP_*` variable inherited.
//! - [`eventually`] polls any condition with a deadline, never a fixed sleep.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
pub use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;
/// The binaries as child processes live in the shared test kit.
pub use test_kit::process::{POLL_INTERVAL, START_TIMEOUT, Service, binary, command, free_port};

/// Timeout of one HTTP request made by a test (a hung service fails the test, not CI).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `check` every [`POLL_INTERVAL`] until it returns `Ok`, and returns that value; an
/// `Err` carries what was seen instead, for the message if time runs out.
///
/// # Panics
/// After `within`, naming `what` and the last observation.
pub async fn eventually<T, E, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    E: fmt::Debug,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + within;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}; last seen: {seen:?}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A root key pair made by `shop keygen`.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `DIR/private.key`.
    pub private_key: PathBuf,
    /// `DIR/public.key`: what the services are given.
    pub public_key: PathBuf,
}

impl Keys {
    /// Runs `shop keygen --out DIR`.
    ///
    /// # Panics
    /// If it fails or does not write both files.
    pub fn generate(dir: &Path) -> Self {
        let out = command("shop")
            .arg("keygen")
            .arg("--out")
            .arg(dir)
            .output()
            .expect("running shop keygen");
        assert!(
            out.status.success(),
            "shop keygen failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let keys = Self {
            private_key: dir.join("private.key"),
            public_key: dir.join("public.key"),
        };
        assert!(keys.private_key.is_file() && keys.public_key.is_file());
        keys
    }

    /// Runs `shop token mint --private-key K --user USER [--right R]... [--admin]` and returns
    /// the printed token.
    ///
    /// # Panics
    /// If it fails or prints anything but one token.
    pub fn mint(&self, user: &str, rights: &[&str], admin: bool) -> String {
        let mut cmd = command("shop");
        cmd.args(["token", "mint", "--private-key"])
            .arg(&self.private_key)
            .args(["--user", user]);
        for right in rights {
            cmd.args(["--right", right]);
        }
        if admin {
            cmd.arg("--admin");
        }
        let out = cmd.output().expect("running shop token mint");
        assert!(
            out.status.success(),
            "shop token mint failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).expect("a UTF-8 token");
        let token = token.trim();
        assert!(
            !token.is_empty() && !token.contains(char::is_whitespace),
            "shop token mint printed {token:?}, not one token"
        );
        token.to_owned()
    }
}

/// One HTTP answer, its body parsed as JSON when it is JSON (otherwise a JSON string of the
/// text; `Null` when empty).
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Value,
    /// From sending the request to having read the body.
    pub elapsed: Duration,
}

impl Reply {
    /// Asserts the status (`context` names the call in the message) and returns the body.
    #[track_caller]
    pub fn expect(&self, status: u16, context: &str) -> &Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{context}: unexpected status; body: {:#}",
            self.body
        );
        &self.body
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A small HTTP client for the tests: no connection pooling (a killed service must not leave
/// stale pooled connections behind), a timeout per request.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
}

impl Default for Api {
    fn default() -> Self {
        Self::new()
    }
}

impl Api {
    /// A client.
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        Self { client }
    }

    /// Sends a request with an optional bearer token, extra headers and JSON body.
    ///
    /// # Panics
    /// If the request cannot be sent or the body read (connection refused, timeout).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Reply {
        let started = Instant::now();
        let mut req = self.client.request(method.clone(), url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let status = res.status();
        let headers = res.headers().clone();
        let text = res
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: reading the body: {e}"));
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            headers,
            body,
            elapsed: started.elapsed(),
        }
    }

    /// `GET`.
    pub async fn get(&self, url: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, url, token, &[], None).await
    }

    /// `POST` with a JSON body.
    pub async fn post(&self, url: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(Method::POST, url, token, &[], Some(body)).await
    }

    /// `PATCH` with a JSON body.
    pub async fn patch(&self, url: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(Method::PATCH, url, token, &[], Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, url: &str, token: Option<&str>) -> Reply {
        self.send(Method::DELETE, url, token, &[], None).await
    }

    /// One sample of a Prometheus text exposition at `url`: the line whose series is exactly
    /// `series` (e.g. `store_last_sequence{store="products"}`), or `None` if absent.
    pub async fn metric(&self, url: &str, series: &str) -> Option<f64> {
        let reply = self.get(url, None).await;
        let text = reply.expect(200, "GET /metrics").as_str()?.to_owned();
        parse_metric(&text, series)
    }
}

/// Finds `series` in a Prometheus text exposition.
pub fn parse_metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(name, _)| *name == series)
        .and_then(|(_, value)| value.parse().ok())
}

/// The tokens a [`Shop`] mints with its root key.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// `alice`: orders:read, orders:write.
    pub alice: String,
    /// `bob`: orders:read, orders:write.
    pub bob: String,
    /// `root`: admin.
    pub admin: String,
    /// `catalog`: products:read, products:write (no orders rights).
    pub catalog: String,
}

/// Both services, started for one test in one temporary directory:
/// `keys/` (from `shop keygen`), `orders-products.token` (orders' service token, products:read
/// and products:reserve), `products-data/`, `orders-data/`, `products.log`, `orders.log`.
///
/// Dropping it kills both (orders first) and removes the directory, unless the test is
/// failing: then the logs' tails are printed and the directory is kept.
#[derive(Debug)]
pub struct Shop {
    /// The orders service (declared first: dropped, i.e. killed, first).
    pub orders: Service,
    /// The products service.
    pub products: Service,
    /// Tokens for the tests' callers.
    pub tokens: Tokens,
    /// An HTTP client.
    pub api: Api,
    /// The root key pair.
    pub keys: Keys,
    dir: Option<TempDir>,
}

impl Shop {
    /// Makes keys and tokens with `shop`, starts products, then orders pointed at it.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Like [`Shop::start`], with extra flags for products (e.g. `--reservation-ttl 10s`).
    pub async fn start_with(products_flags: &[&str]) -> Self {
        Self::start_in(Self::new_dir(), products_flags).await
    }

    /// A temporary directory for [`Shop::start_in`]: the services keep their data in
    /// `products-data/` and `orders-data/` under it.
    pub fn new_dir() -> TempDir {
        tempfile::Builder::new()
            .prefix("shop-e2e-")
            .tempdir()
            .expect("a temporary directory")
    }

    /// Like [`Shop::start_with`], in `dir` (which may already hold data).
    pub async fn start_in(dir: TempDir, products_flags: &[&str]) -> Self {
        let keys = Keys::generate(&dir.path().join("keys"));
        let tokens = Tokens {
            alice: keys.mint("alice", &["orders:read", "orders:write"], false),
            bob: keys.mint("bob", &["orders:read", "orders:write"], false),
            admin: keys.mint("root", &[], true),
            catalog: keys.mint("catalog", &["products:read", "products:write"], false),
        };
        let service_token = dir.path().join("orders-products.token");
        std::fs::write(
            &service_token,
            keys.mint(
                "orders-service",
                &["products:read", "products:reserve"],
                false,
            ),
        )
        .expect("writing orders' token file");
        let public_key = keys.public_key.display().to_string();
        let common = |extra: &[String]| {
            let mut args = vec![
                "--public-key-file".to_owned(),
                public_key.clone(),
                "--workers".to_owned(),
                "2".to_owned(),
            ];
            args.extend_from_slice(extra);
            args
        };
        let products_flags: Vec<String> = products_flags.iter().map(|f| f.to_string()).collect();
        let products =
            Service::start("products", "products", dir.path(), common(&products_flags)).await;
        let orders = Service::start(
            "orders",
            "orders",
            dir.path(),
            common(&[
                "--products-url".to_owned(),
                products.base_url(),
                "--products-token-file".to_owned(),
                service_token.display().to_string(),
            ]),
        )
        .await;
        Self {
            orders,
            products,
            tokens,
            api: Api::new(),
            keys,
            dir: Some(dir),
        }
    }

    /// The temporary directory of this test.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// `POST /products` with the catalog token; asserts 201 and returns the product.
    pub async fn create_product(&self, name: &str, price: &str) -> Value {
        self.api
            .post(
                &self.products.url("/products"),
                Some(&self.tokens.catalog),
                &serde_json::json!({ "name": name, "price": price }),
            )
            .await
            .expect(201, "POST /products")
            .clone()
    }

    /// `POST /products` of a product tracking `stock` units; asserts 201 and returns it.
    pub async fn create_stocked(&self, name: &str, price: &str, stock: u64) -> Value {
        self.api
            .post(
                &self.products.url("/products"),
                Some(&self.tokens.catalog),
                &serde_json::json!({ "name": name, "price": price, "stock": stock }),
            )
            .await
            .expect(201, "POST /products")
            .clone()
    }

    /// `DELETE /products/{id}` with the catalog token; asserts 204.
    pub async fn archive_product(&self, id: &str) {
        self.api
            .delete(
                &self.products.url(&format!("/products/{id}")),
                Some(&self.tokens.catalog),
            )
            .await
            .expect(204, "DELETE /products/{id}");
    }

    /// `POST /orders` as `token` with `items` as (product id, quantity).
    pub async fn place_order(&self, token: &str, items: &[(&str, u32)]) -> Reply {
        let items: Vec<Value> = items
            .iter()
            .map(|(id, quantity)| serde_json::json!({ "product_id": id, "quantity": quantity }))
            .collect();
        self.api
            .post(
                &self.orders.url("/orders"),
                Some(token),
                &serde_json::json!({ "items": items }),
            )
            .await
    }

    /// `GET /orders/{id}` as `token`.
    pub async fn get_order(&self, token: &str, id: &str) -> Reply {
        self.api
            .get(&self.orders.url(&format!("/orders/{id}")), Some(token))
            .await
    }

    /// Waits (10 s at most) until order `id` owes products nothing: its stock confirmed,
    /// released or expired; returns it then (read as the admin).
    pub async fn settled(&self, id: &str) -> Value {
        eventually(
            &format!("order {id} to settle with products"),
            Duration::from_secs(10),
            || async move {
                let reply = self.get_order(&self.tokens.admin, id).await;
                let order = reply.expect(200, "GET /orders/{id}").clone();
                match order["stock"].as_str() {
                    Some("pending" | "releasing") => Err(order),
                    _ => Ok(order),
                }
            },
        )
        .await
    }

    /// `GET /orders?QUERY` as `token` (one page); asserts 200 and returns the items.
    pub async fn list_orders(&self, token: &str, query: &str) -> Vec<Value> {
        let reply = self
            .api
            .get(&self.orders.url(&format!("/orders?{query}")), Some(token))
            .await;
        let body = reply.expect(200, "GET /orders");
        body["items"].as_array().expect("items").clone()
    }

    /// The last durable sequence of one store of a service
    /// (`store_last_sequence{store="STORE"}`): how many writes it has taken, restarts included.
    pub async fn store_seq(&self, service: &Service, store: &str) -> f64 {
        let series = format!("store_last_sequence{{store=\"{store}\"}}");
        self.api
            .metric(&service.url("/metrics"), &series)
            .await
            .unwrap_or_else(|| panic!("{} exports {series}", service.name()))
    }

    /// products' last change-feed sequence (`store_last_sequence{store="products"}`).
    pub async fn products_last_seq(&self) -> f64 {
        self.store_seq(&self.products, "products").await
    }

    /// The last products sequence orders says it handled (`products_feed_last_seq`).
    pub async fn orders_feed_seq(&self) -> Option<f64> {
        self.api
            .metric(&self.orders.url("/metrics"), "products_feed_last_seq")
            .await
    }

    /// Waits until orders has handled every products event so far (its metric
    /// `products_feed_last_seq` equals products' last sequence), so that the effects of
    /// earlier product changes are all stored.
    pub async fn wait_feed_caught_up(&self, within: Duration) -> f64 {
        let target = self.products_last_seq().await;
        eventually(
            &format!("orders' products_feed_last_seq to reach {target}"),
            within,
            || async move {
                match self.orders_feed_seq().await {
                    Some(seq) if seq >= target => Ok(seq),
                    seen => Err(seen),
                }
            },
        )
        .await
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.dir.take()
        {
            // The services print their logs' tails as they drop, after this.
            eprintln!("test directory kept: {}", dir.keep().display());
        }
    }
}
