//! The service on a disk that fails: the store runs on a simulated disk (`SimFs`) whose writes
//! the tests make fail, deterministically.

use std::io::ErrorKind;

use serde_json::json;

use crate::helpers::{TestApp, assert_problem, fresh_dir, id_of, spawn_on, spawn_on_in};

/// `GET path` (a health probe), without a token.
async fn probe(app: &TestApp, path: &str) -> reqwest::Response {
    app.request(reqwest::Method::GET, path, None)
        .send()
        .await
        .unwrap()
}

/// Creates the product the tests were refused until it is created (writes resumed), within
/// 10 s; every refusal meanwhile is the full disk's 503.
async fn create_once_writable(app: &TestApp) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let res = app
            .create(&json!({"name": "Oolong", "price": "6.00"}))
            .await;
        if res.status() == 201 {
            return;
        }
        assert_eq!(res.status(), 503);
        assert!(std::time::Instant::now() < deadline, "writes never resumed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
use store_actor::fs::SimFs;

/// A full disk refuses writes with 503 problem+json and a Retry-After of a few seconds, stores
/// nothing, and keeps serving reads; readiness says the store cannot write, liveness stays up
/// (no restart needed), and writes resume by themselves once the disk has room.
#[actix_web::test]
async fn a_full_disk_refuses_writes_and_keeps_serving_reads() {
    // Arrange
    let fs = SimFs::new();
    let app = spawn_on(fs.clone()).await;
    let tea = id_of(&app.create_ok("Green tea", "4.20").await);
    fs.fail_after_with(0, ErrorKind::StorageFull);

    // Act
    let refused = app
        .create(&json!({"name": "Oolong", "price": "6.00"}))
        .await;

    // Assert
    let retry_after = test_kit::http::retry_after(&refused);
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(refused, 503, "unavailable").await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("full") && detail.contains("resume by themselves"),
        "{problem}"
    );
    let read = app.get(&format!("/products/{tea}")).await;
    assert_eq!(read.status(), 200);
    assert_eq!(app.count().await, 1);
    let ready = probe(&app, "/readyz").await;
    assert_eq!(ready.status(), 503);
    let live = probe(&app, "/healthz").await;
    assert_eq!(live.status(), 200);

    // The disk has room again: within seconds, the same write succeeds.
    fs.heal();
    create_once_writable(&app).await;
    assert_eq!(app.count().await, 2);
    let ready = probe(&app, "/readyz").await;
    assert_eq!(ready.status(), 200);
    app.stop().await;
}

/// A service whose disk is full when it starts does not exit: it serves reads, refuses writes
/// with 503, and `/readyz` says why; writes resume once the disk has room.
#[actix_web::test]
async fn a_service_starts_read_only_on_a_full_disk() {
    // Arrange: a catalogue on disk, and then the disk fills up.
    let fs = SimFs::new();
    let (dir, root) = fresh_dir();
    let app = spawn_on_in(fs.clone(), dir.path(), root.clone()).await;
    let tea = id_of(&app.create_ok("Green tea", "4.20").await);
    app.stop().await;
    let fs = fs.crash();
    fs.fail_after_with(0, ErrorKind::StorageFull);

    // Act
    let app = spawn_on_in(fs.clone(), dir.path(), root).await;

    // Assert
    let read = app.get(&format!("/products/{tea}")).await;
    assert_eq!(read.status(), 200);
    let ready = probe(&app, "/readyz").await;
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    let reason = body["checks"]["store"].as_str().unwrap_or_default();
    assert!(
        reason.contains("opened read-only, the disk is full"),
        "{body}"
    );
    let refused = app
        .create(&json!({"name": "Oolong", "price": "6.00"}))
        .await;
    assert_problem(refused, 503, "unavailable").await;

    fs.heal();
    create_once_writable(&app).await;
    assert_eq!(app.count().await, 2);
    app.stop().await;
}
