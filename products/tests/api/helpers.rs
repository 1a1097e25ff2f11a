//! `spawn_app()`: a real products service on a free port with its own data directory and key
//! pair, plus typed helpers for requests and tokens.

#![allow(dead_code)] // each test module uses its own subset

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use biscuit_auth::KeyPair;
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

/// Starts a service on `dir` (keys under `dir/keys`, data under `dir/data`).
pub async fn spawn_in(dir: &Path, root: Arc<KeyPair>, revoked: Vec<String>) -> TestApp {
    let revoked_file = (!revoked.is_empty()).then(|| {
        let path = dir.join("revoked.txt");
        std::fs::write(&path, revoked.join("\n")).unwrap();
        path
    });
    let config = Config {
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
