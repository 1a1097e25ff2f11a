//! Products unavailable: orders answers 503 with `Retry-After` quickly, stores nothing, fails
//! faster once the circuit is open, and reports itself not ready.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    FakeProducts, assert_problem, header, id_of, spawn_apps, spawn_orders_with_products,
};

/// With products stopped, POST /orders answers 503 unavailable with `Retry-After` within 5 s,
/// stores nothing, and a later call (circuit open) answers faster than the first.
#[actix_web::test]
async fn products_down_is_unavailable_quickly_and_stores_nothing() {
    // Arrange
    let mut app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let existing = app.place_ok(&app.alice, &[(&tea, 1)]).await;
    app.stop_products().await;
    let body = json!({"items": [{"product_id": tea, "quantity": 2}]});

    // Act
    let started = Instant::now();
    let first = app.place(&app.alice, &body).await;
    let first_took = started.elapsed();
    let second = app.place(&app.alice, &body).await;
    let started = Instant::now();
    let later = app.place(&app.alice, &body).await;
    let later_took = started.elapsed();

    // Assert
    assert!(
        first_took < Duration::from_secs(5),
        "the first 503 took {first_took:?}"
    );
    assert_eq!(header(&first, "retry-after").as_deref(), Some("5"));
    let problem = assert_problem(first, 503, "unavailable").await;
    // The transport error's wording is reqwest's (and names a port): keep only ours.
    let detail = problem["detail"].as_str().unwrap();
    let ours = "products cannot be reached to check the order: products is unavailable: ";
    assert!(detail.starts_with(ours), "{problem}");
    let mut shown = problem.clone();
    shown["detail"] = format!("{ours}[cause]").into();
    insta::assert_json_snapshot!("problem_unavailable", shown);
    assert_problem(second, 503, "unavailable").await;
    assert_eq!(header(&later, "retry-after").as_deref(), Some("5"));
    let later_problem = assert_problem(later, 503, "unavailable").await;
    assert!(
        later_problem["detail"]
            .as_str()
            .unwrap()
            .contains("circuit open"),
        "{later_problem}"
    );
    assert!(
        later_took * 2 < first_took,
        "with the circuit open a call should fail fast: first {first_took:?}, later {later_took:?}"
    );
    let stored: Vec<Value> = app.all(&app.admin).await;
    assert_eq!(
        stored.iter().map(id_of).collect::<Vec<_>>(),
        [id_of(&existing)]
    );
    app.stop().await;
}

/// Products accepts connections but never answers: POST /orders answers 503 with
/// `Retry-After` within orders' products timeout (one deadline for the whole call, retries
/// included, not one per attempt) and stores nothing.
#[actix_web::test]
async fn a_hung_products_is_unavailable_within_the_timeout_and_stores_nothing() {
    // Arrange
    let products = FakeProducts::start(|_| None);
    let app = spawn_orders_with_products(&products.url, 1000).await;
    let body =
        json!({"items": [{"product_id": "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b", "quantity": 1}]});

    // Act
    let started = Instant::now();
    let res = app.place(&app.alice, &body).await;
    let took = started.elapsed();

    // Assert
    assert_eq!(header(&res, "retry-after").as_deref(), Some("5"));
    assert_problem(res, 503, "unavailable").await;
    assert!(products.requests("PUT /reservations/") >= 1);
    // Within the 1 s timeout, with slack (three attempts of 1 s each would take over 3 s).
    assert!(took < Duration::from_secs(2), "the 503 took {took:?}");
    assert_eq!(app.all(&app.admin).await, Vec::<Value>::new());
    app.stop().await;
}

/// With products stopped, changing an order's items answers 503 and leaves it unchanged, while
/// reads and status changes (which need no products) still work.
#[actix_web::test]
async fn products_down_blocks_only_what_needs_products() {
    // Arrange
    let mut app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let order = app.place_ok(&app.alice, &[(&tea, 1)]).await;
    let other = app.place_ok(&app.alice, &[(&tea, 2)]).await;
    app.stop_products().await;

    // Act
    let items = app
        .patch(
            &app.alice,
            &id_of(&order),
            &json!({"items": [{"product_id": tea, "quantity": 3}]}),
            None,
        )
        .await;
    let status = app
        .patch(
            &app.alice,
            &id_of(&other),
            &json!({"status": "cancelled"}),
            None,
        )
        .await;

    // Assert
    assert!(header(&items, "retry-after").is_some());
    assert_problem(items, 503, "unavailable").await;
    assert_eq!(app.order(&app.alice, &id_of(&order)).await, order);
    assert_eq!(status.status(), 200);
    let cancelled: Value = status.json().await.unwrap();
    assert_eq!(
        (&cancelled["status"], &cancelled["stock"]),
        (&json!("cancelled"), &json!("releasing")),
        "the release waits for products: {cancelled}"
    );
    app.stop().await;
}

/// `/readyz` answers 503 naming products as not ready once products is stopped (and 200
/// before), while the stores stay ok.
#[actix_web::test]
async fn readiness_reports_products_down() {
    // Arrange
    let mut app = spawn_apps().await;
    let before = app.anonymous("/readyz").await;
    assert_eq!(before.status(), 200);
    app.stop_products().await;

    // Act
    let res = app.anonymous("/readyz").await;

    // Assert
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["store"], "ok");
    assert_eq!(body["checks"]["feed_cursor"], "ok");
    let products = body["checks"]["products"].as_str().unwrap();
    assert_ne!(products, "ok");
    assert!(!products.is_empty());
    insta::assert_json_snapshot!("readyz_not_ready", body, {".checks.products" => "[cause]"});
    app.stop().await;
}
