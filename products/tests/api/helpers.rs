//! `spawn_app()`: a real products service on a free port with its own data directory and key
//! pair, plus typed helpers for requests and tokens.

#![allow(dead_code)] // each test module uses its own subset

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use biscuit_auth::KeyPair;
use futures_util::{Stream, StreamExt};
use products::configuration::Config;
use products::startup::Application;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use service_kit::auth::{keys, tokens};
use service_kit::config::CommonArgs;
use service_kit::telemetry::LogFormat;
use store_actor::Durability;

/// A running products service.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub root: Arc<KeyPair>,
    /// `user("admin")` with `admin(true)`.
    pub admin: String,
    /// `user("alice")` with products:read and products:write.
    pub writer: String,
    /// `user("reader")` with products:read only.
    pub reader: String,
    pub data_dir: PathBuf,
    handle: ServerHandle,
    running: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts a service with a fresh data directory and key pair.
pub async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let root = Arc::new(keys::generate(&dir.path().join("keys")).unwrap());
    let mut app = spawn_in(dir.path(), root, Vec::new()).await;
    app._dir = Some(dir);
    app
}

/// A fresh directory with a root key pair under `dir/keys`, for [`spawn_in`] (restarts,
/// revocation lists).
pub fn fresh_dir() -> (tempfile::TempDir, Arc<KeyPair>) {
    let dir = tempfile::tempdir().unwrap();
    let root = Arc::new(keys::generate(&dir.path().join("keys")).unwrap());
    (dir, root)
}

/// Starts a service on `dir` (keys under `dir/keys`, data under `dir/data`).
pub async fn spawn_in(dir: &Path, root: Arc<KeyPair>, revoked: Vec<String>) -> TestApp {
    spawn_with(dir, root, revoked, |_| {}).await
}

/// Like [`spawn_in`], with a chance to change the configuration (e.g. the body limit).
pub async fn spawn_with(
    dir: &Path,
    root: Arc<KeyPair>,
    revoked: Vec<String>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let revoked_file = (!revoked.is_empty()).then(|| {
        let path = dir.join("revoked.txt");
        std::fs::write(&path, revoked.join("\n")).unwrap();
        path
    });
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        common: CommonArgs {
            data_dir: dir.join("data"),
            public_key_file: keys::public_key_path(&dir.join("keys")),
            durability: Durability::Always,
            log_format: LogFormat::Pretty,
            revoked_tokens_file: revoked_file,
            body_limit: 16 * 1024,
            workers: Some(2),
        },
    };
    adjust(&mut config);
    let app = Application::build(config, false)
        .await
        .expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let running = tokio::spawn(app.run_until_stopped());
    let mint = |user: &str, rights: &[&str], admin: bool| {
        tokens::mint(
            &root,
            &tokens::TokenSpec {
                user: user.into(),
                rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
                admin,
                ttl: Some(Duration::from_secs(3600)),
            },
        )
        .unwrap()
    };
    TestApp {
        admin: mint("admin", &[], true),
        writer: mint("alice", &["products:read", "products:write"], false),
        reader: mint("reader", &["products:read"], false),
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        root,
        data_dir: dir.join("data"),
        handle,
        running,
        _dir: None,
    }
}

impl TestApp {
    /// A token for `user` with `rights` ("products:read", ...).
    pub fn token(&self, user: &str, rights: &[&str]) -> String {
        tokens::mint(
            &self.root,
            &tokens::TokenSpec {
                user: user.into(),
                rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
                admin: false,
                ttl: Some(Duration::from_secs(3600)),
            },
        )
        .unwrap()
    }

    /// A request to `path` with `token` (if any).
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let req = self
            .client
            .request(method, format!("{}{}", self.address, path));
        match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// `POST /products` with the writer's token.
    pub async fn create(&self, body: &Value) -> Response {
        self.request(Method::POST, "/products", Some(&self.writer))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// Creates a product and returns its JSON body.
    pub async fn create_ok(&self, name: &str, price: &str) -> Value {
        let res = self
            .create(&serde_json::json!({"name": name, "price": price}))
            .await;
        assert_eq!(res.status(), 201, "create {name}");
        res.json().await.unwrap()
    }

    /// `GET path` with the reader's token.
    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path, Some(&self.reader))
            .send()
            .await
            .unwrap()
    }

    /// `method path` with `token` and a JSON body.
    pub async fn send_json(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> Response {
        self.request(method, path, token)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `PATCH /products/{id}` with the writer's token and an optional `If-Match`.
    pub async fn patch(&self, id: &str, body: &Value, if_match: Option<&str>) -> Response {
        let mut req = self
            .request(
                Method::PATCH,
                &format!("/products/{id}"),
                Some(&self.writer),
            )
            .json(body);
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        req.send().await.unwrap()
    }

    /// `DELETE /products/{id}` with the writer's token and an optional `If-Match`.
    pub async fn delete(&self, id: &str, if_match: Option<&str>) -> Response {
        let mut req = self.request(
            Method::DELETE,
            &format!("/products/{id}"),
            Some(&self.writer),
        );
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        req.send().await.unwrap()
    }

    /// `GET path` with the reader's token, asserting 200, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self.get(path).await;
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    /// `POST /products/lookup` with the reader's token.
    pub async fn lookup(&self, ids: &[&str]) -> Response {
        self.send_json(
            Method::POST,
            "/products/lookup",
            Some(&self.reader),
            &serde_json::json!({ "ids": ids }),
        )
        .await
    }

    /// Every live product, following the pages of `GET /products` (creation order).
    pub async fn all(&self) -> Vec<Value> {
        let mut items = Vec::new();
        let mut path = "/products?limit=100".to_owned();
        loop {
            let page = self.get_json(&path).await;
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => path = next.to_owned(),
                None => return items,
            }
        }
    }

    /// How many live products there are.
    pub async fn count(&self) -> usize {
        self.all().await.len()
    }

    /// Stops the server without waiting for open connections (an event stream would hold a
    /// graceful stop for the 5 s shutdown timeout), then waits until the store is closed.
    pub async fn stop_now(self) {
        self.handle.stop(false).await;
        self.running.await.unwrap().unwrap();
    }

    /// Stops the server gracefully and waits until the store is closed.
    pub async fn stop(self) {
        self.handle.stop(true).await;
        self.running.await.unwrap().unwrap();
    }
}

/// Redactions for ids and timestamps in snapshots.
pub fn redactions() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for path in [
        ".id",
        ".created_at",
        ".updated_at",
        ".items[].id",
        ".items[].created_at",
        ".items[].updated_at",
        ".next_cursor",
        ".next",
        ".products[].id",
        ".products[].created_at",
        ".products[].updated_at",
        ".unknown[]",
        ".archived[]",
    ] {
        settings.add_redaction(
            path,
            format!("[{}]", path.trim_start_matches('.').replace("[]", "")),
        );
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

/// The `id` of a product body, as a string.
pub fn id_of(product: &Value) -> String {
    product["id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- Server-Sent Events

/// How long to wait for an event before failing (generous: CI machines are slow).
pub const DEADLINE: Duration = Duration::from_secs(10);

/// One Server-Sent Event.
#[derive(Debug)]
pub struct Frame {
    pub id: Option<u64>,
    pub event: Option<String>,
    pub data: Value,
}

/// Reads Server-Sent Events from a streaming response.
pub struct Events {
    stream: Pin<Box<dyn Stream<Item = reqwest::Result<actix_web::web::Bytes>>>>,
    buffer: String,
}

impl Events {
    pub fn new(res: Response) -> Self {
        Self {
            stream: Box::pin(res.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event with data (skipping `retry:` and comments), failing after [`DEADLINE`].
    pub async fn next(&mut self) -> Frame {
        tokio::time::timeout(DEADLINE, self.next_frame())
            .await
            .unwrap_or_else(|_| panic!("no event within {DEADLINE:?}; buffered: {:?}", self.buffer))
    }

    async fn next_frame(&mut self) -> Frame {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let raw: String = self.buffer.drain(..end + 2).collect();
                if let Some(frame) = parse(&raw) {
                    return frame;
                }
            }
            let chunk = self
                .stream
                .next()
                .await
                .expect("the stream ended")
                .expect("the stream failed");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

fn parse(raw: &str) -> Option<Frame> {
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
