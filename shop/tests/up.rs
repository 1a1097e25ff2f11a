//! `shop up` as a user runs it: both services, first-run keys and admin token, a request
//! through each, SIGTERM, and a second run on the same data.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child if the test fails before it exits.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `shop up` on free ports; returns the process and the two base URLs it printed.
fn start(data: &std::path::Path) -> (Running, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .args([
            "up",
            "--products-addr",
            "127.0.0.1:0",
            "--orders-addr",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(data)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (mut products, mut orders) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    while products.is_none() || orders.is_none() {
        assert!(Instant::now() < deadline, "shop up printed no URLs");
        let line = lines.next().expect("shop up exited early").unwrap();
        let url = || line.split_whitespace().nth(1).unwrap().to_owned();
        if line.trim_start().starts_with("products ") {
            products = Some(url());
        } else if line.trim_start().starts_with("orders ") {
            orders = Some(url());
        }
    }
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Running(child), products.unwrap(), orders.unwrap())
}

fn stop(mut running: Running) -> std::process::ExitStatus {
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = running.0.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "shop up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// First run creates keys and an admin token that work on both services through loopback HTTP;
/// SIGTERM stops cleanly; the second run reuses the keys and finds the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_serves_both_services_and_restarts_on_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let (running, products, orders) = start(dir.path());
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let public_key = std::fs::read_to_string(dir.path().join("keys/public.key")).unwrap();
    let http = reqwest::Client::new();
    let product: serde_json::Value = http
        .post(format!("{products}/products"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"name": "Green tea", "price": "4.20"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let order = http
        .post(format!("{orders}/orders"))
        .bearer_auth(admin.trim())
        .json(&serde_json::json!({"product_id": product["id"], "quantity": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), 201);
    let order: serde_json::Value = order.json().await.unwrap();
    assert_eq!(order["total"], "12.60");
    let ready = http.get(format!("{orders}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "orders is ready and reaches products");
    assert!(stop(running).success());

    let (running, _products, orders) = start(dir.path());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("keys/public.key")).unwrap(),
        public_key,
        "the second run reuses the key pair"
    );
    let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
    let again: serde_json::Value = http
        .get(format!("{orders}/orders/{}", order["id"].as_str().unwrap()))
        .bearer_auth(admin.trim())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["total"], "12.60");
    assert!(stop(running).success());
}
