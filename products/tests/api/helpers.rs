//! `spawn_app()`: a real products service on a free port with its own data directory and key
//! pair, plus typed requests of this API. What every suite shares is in `test_kit`.

#![allow(dead_code)] // each test module uses its own subset

use std::path::{Path, PathBuf};
use std::sync::Arc;

use biscuit_auth::KeyPair;
use products::configuration::Config;
use products::domain::Entry;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;
use service_kit::auth::keys;
use service_kit::config::CommonArgs;
use service_kit::server::Stopper;
use store_actor::StoreOptions;
use store_actor::fs::{Fs, SimFs};
use test_kit::tokens::mint;
pub use test_kit::{
    DEADLINE, Events, Frame, assert_problem, error_fields, id_of, redactions, scrub,
};

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
    stopper: Stopper,
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

/// Starts a service whose store lives on the simulated disk `fs` (to fail or hold its
/// writes and fsyncs deterministically).
pub async fn spawn_on(fs: SimFs) -> TestApp {
    let (dir, root) = fresh_dir();
    let mut app = spawn_on_in(fs, dir.path(), root).await;
    app._dir = Some(dir);
    app
}

/// Like [`spawn_on`], with the data (on the simulated disk) under `dir/data`: a second service
/// started on the same `fs` and `dir` finds the first one's data.
pub async fn spawn_on_in(fs: SimFs, dir: &Path, root: Arc<KeyPair>) -> TestApp {
    let fs: Arc<dyn Fs> = Arc::new(fs);
    spawn_configured(dir, root, Vec::new(), |_| {}, |o| o.fs(fs)).await
}

/// Like [`spawn_in`], with a chance to change the configuration (e.g. the body limit).
pub async fn spawn_with(
    dir: &Path,
    root: Arc<KeyPair>,
    revoked: Vec<String>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    spawn_configured(dir, root, revoked, adjust, |o| o).await
}

async fn spawn_configured(
    dir: &Path,
    root: Arc<KeyPair>,
    revoked: Vec<String>,
    adjust: impl FnOnce(&mut Config),
    store_options: impl FnOnce(StoreOptions<Entry>) -> StoreOptions<Entry>,
) -> TestApp {
    let revoked_file = (!revoked.is_empty()).then(|| {
        let path = dir.join("revoked.txt");
        std::fs::write(&path, revoked.join("\n")).unwrap();
        path
    });
    let mut config = Config {
        listen: "127.0.0.1:0".into(),
        reservation_ttl: std::time::Duration::from_secs(300),
        common: CommonArgs {
            revoked_tokens_file: revoked_file,
            body_limit: 16 * 1024,
            workers: Some(2),
            ..CommonArgs::new(dir.join("data"), keys::public_key_path(&dir.join("keys")))
        },
    };
    adjust(&mut config);
    let app = products::startup::build_with(config, store_options)
        .await
        .expect("the app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stopper = app.stopper();
    let running = tokio::spawn(app.run_until_stopped());
    TestApp {
        admin: mint(&root, "admin", &[], true),
        writer: mint(&root, "alice", &["products:read", "products:write"], false),
        reader: mint(&root, "reader", &["products:read"], false),
        address,
        client: test_kit::http::client(),
        root,
        data_dir: dir.join("data"),
        stopper,
        running,
        _dir: None,
    }
}

impl TestApp {
    /// A token for `user` with `rights` ("products:read", ...).
    pub fn token(&self, user: &str, rights: &[&str]) -> String {
        mint(&self.root, user, rights, false)
    }

    /// A request to `path` with `token` (if any).
    pub fn request(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        test_kit::http::request(&self.client, &self.address, method, path, token)
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
        test_kit::http::all_pages(
            &self.client,
            &self.address,
            &self.reader,
            "/products?limit=100",
        )
        .await
    }

    /// How many live products there are.
    pub async fn count(&self) -> usize {
        self.all().await.len()
    }

    /// Stops the server without waiting for open connections (an event stream would hold a
    /// graceful stop for the 5 s shutdown timeout), then waits until the store is closed.
    pub async fn stop_now(self) {
        self.stopper.stop_now().await;
        self.running.await.unwrap().unwrap();
    }

    /// Stops the server gracefully and waits until the store is closed.
    pub async fn stop(self) {
        self.stopper.stop().await;
        self.running.await.unwrap().unwrap();
    }
}
