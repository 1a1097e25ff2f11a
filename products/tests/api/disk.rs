//! The service on a disk that fails: the store runs on a simulated disk (`SimFs`) whose writes
//! the tests make fail, deterministically.

use std::io::ErrorKind;

use serde_json::json;

use crate::helpers::{assert_problem, id_of, spawn_on};
use store_actor::fs::SimFs;

/// A full disk refuses writes with 503 problem+json and a Retry-After, stores nothing, and
/// keeps serving reads; readiness says the store cannot write.
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
    assert!(
        refused.headers().contains_key("retry-after"),
        "{:?}",
        refused.headers()
    );
    let problem = assert_problem(refused, 503, "unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("full"),
        "{problem}"
    );
    let read = app.get(&format!("/products/{tea}")).await;
    assert_eq!(read.status(), 200);
    assert_eq!(app.count().await, 1);
    let ready = app
        .request(reqwest::Method::GET, "/readyz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    app.stop().await;
}
