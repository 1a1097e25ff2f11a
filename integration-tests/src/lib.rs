//! Harness of the end-to-end tests: the REAL `products`, `orders` and `shop` binaries run as
//! child processes, each service on its own free loopback port with its own data directory,
//! with a root key pair and tokens made by `shop keygen` and `shop token mint`.
//!
//! - The binaries are found next to the test executable (`TARGET/PROFILE/deps/e2e-…` →
//!   `TARGET/PROFILE/{products,orders,shop}`). Cargo does not build other packages' binaries for
//!   an integration test, so run `cargo build --workspace --bins` first (same profile, same
//!   `CARGO_TARGET_DIR`); a missing binary fails with a message that says so.
//! - A [`Service`] owns its child process and kills it (SIGKILL) when dropped, so a failing
//!   test leaves nothing running. Its stdout and stderr go to a log file in the test's
//!   temporary directory; when a test panics, the tail of every log is printed and the
//!   directory is kept for inspection.
//! - Readiness is polled (`GET /healthz`) with a deadline, never assumed after a fixed sleep;
//!   [`eventually`] does the same for any condition.
//! - Children get a clean environment for their settings: every `SHOP_*` variable of the test
//!   process is removed, so only the flags given here configure them.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::OpenOptions;
use std::future::Future;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
pub use reqwest::{Method, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

/// How long a service may take from spawn to answering `/healthz`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Pause between two polls of a condition.
pub const POLL_INTERVAL: Duration = Duration::from_millis(25);
/// Timeout of one HTTP request made by a test (a hung service fails the test, not CI).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 40;

/// The path of a workspace binary (`products`, `orders`, `shop`) built next to this test.
///
/// # Panics
/// If it is missing, with the command that builds it.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // TARGET/PROFILE/deps/e2e-HASH → TARGET/PROFILE
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in TARGET/PROFILE/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` (same profile and CARGO_TARGET_DIR) \
         before `cargo test -p integration-tests`; integration tests cannot build other \
         packages' binaries",
        path.display()
    );
    path
}

/// A command for a workspace binary, with no `SHOP_*` variables inherited from the test.
fn command(name: &str) -> Command {
    let mut cmd = Command::new(binary(name));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SHOP_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// A loopback port that was free a moment ago (bound to `127.0.0.1:0`, then released), never
/// the same twice in this process so that parallel tests do not race for one port.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0")
            .port();
        if HANDED_OUT.lock().unwrap().insert(port) {
            return port;
        }
    }
}

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

/// One service binary running as a child process on a fixed loopback port.
///
/// Dropping it kills the process (SIGKILL) and waits for it; if the thread is panicking, the
/// tail of its log is printed first.
pub struct Service {
    name: String,
    program: String,
    args: Vec<String>,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .finish_non_exhaustive()
    }
}

/// Why a child did not become healthy.
enum StartFailure {
    /// It exited; the flag tells whether it said it could not listen (a lost port race).
    Exited(ExitStatus, bool),
}

impl Service {
    /// Starts `program` (a workspace binary) as `name` with `--listen 127.0.0.1:PORT` on a free
    /// port, `--data-dir dir/NAME-data`, logs to `dir/NAME.log`, plus `args`; returns once it
    /// answers `/healthz`. If another process took the port meanwhile, retries on a new one.
    ///
    /// # Panics
    /// If it exits or is not healthy within [`START_TIMEOUT`].
    pub async fn start(name: &str, program: &str, dir: &Path, args: Vec<String>) -> Self {
        let mut service = Self {
            name: name.to_owned(),
            program: program.to_owned(),
            args,
            port: free_port(),
            data_dir: dir.join(format!("{name}-data")),
            log: dir.join(format!("{name}.log")),
            child: None,
            starts: 0,
        };
        for _ in 0..3 {
            service.spawn();
            match service.wait_healthy().await {
                Ok(()) => return service,
                Err(StartFailure::Exited(_, true)) => service.port = free_port(),
                Err(StartFailure::Exited(status, false)) => {
                    panic!("{} exited at start with {status}", service.name)
                }
            }
        }
        panic!("{} could not get a free port in 3 attempts", service.name)
    }

    fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the log file");
        writeln!(
            log,
            "===== start #{} of {} on port {} =====",
            self.starts, self.name, self.port
        )
        .expect("writing the log file");
        let stderr = log.try_clone().expect("cloning the log file handle");
        let child = command(&self.program)
            .args(&self.args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.name));
        self.child = Some(child);
    }

    /// Polls `/healthz` until it answers 200; fails early if the child exits.
    async fn wait_healthy(&mut self) -> Result<(), StartFailure> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .pool_max_idle_per_host(0)
            .build()
            .expect("an HTTP client");
        let url = self.url("/healthz");
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.child.as_mut().expect("spawned");
            if let Some(status) = child.try_wait().expect("polling the child") {
                self.child = None;
                let lost_port = self.log_tail(5).contains("cannot listen");
                if !lost_port {
                    eprintln!("{}", self.log_tail(LOG_TAIL_LINES));
                }
                return Err(StartFailure::Exited(status, lost_port));
            }
            if let Ok(res) = client.get(&url).send().await
                && res.status().is_success()
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer /healthz within {START_TIMEOUT:?}\n{}",
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Its name (`products`, `orders`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its port (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The URL of `path` (starting with `/`) on it.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// Its data directory (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// Kills it with SIGKILL (no chance to flush anything) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM (with the `kill` command) and waits for the exit.
    ///
    /// # Panics
    /// If it is not running, or still runs after `within` (it is then killed on drop).
    pub async fn terminate(&mut self, within: Duration) -> ExitStatus {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("{} is not running", self.name));
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("running kill -TERM");
        assert!(sent.success(), "kill -TERM {pid} failed: {sent}");
        let deadline = Instant::now() + within;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("polling the child") {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still runs {within:?} after SIGTERM\n{}",
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts it again with the same flags, port and data directory (after [`Self::kill`] or
    /// [`Self::terminate`]) and waits until it answers `/healthz`.
    ///
    /// # Panics
    /// If it is still running, exits, or is not healthy within [`START_TIMEOUT`].
    pub async fn restart(&mut self) {
        self.spawn();
        if let Err(StartFailure::Exited(status, _)) = self.wait_healthy().await {
            panic!(
                "{} exited at restart with {status}\n{}",
                self.name,
                self.log_tail(LOG_TAIL_LINES)
            );
        }
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "----- last {lines} lines of {} -----\n{tail}",
            self.log.display()
        )
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(LOG_TAIL_LINES));
        }
        self.kill();
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
/// only), `products-data/`, `orders-data/`, `products.log`, `orders.log`.
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
        let dir = tempfile::Builder::new()
            .prefix("shop-e2e-")
            .tempdir()
            .expect("a temporary directory");
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
            keys.mint("orders-service", &["products:read"], false),
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
        let products = Service::start("products", "products", dir.path(), common(&[])).await;
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
                    Some(seq) if seq == target => Ok(target),
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
