//! `Idempotency-Key` on `POST /orders`: a retry returns the first order, a reuse is refused.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{
    FakeProducts, TestApps, assert_problem, eventually, header, http_json, id_of, reservation_of,
    spawn_apps, spawn_orders_with_products,
};

/// `POST /orders` with `token`, an `Idempotency-Key` and a JSON body.
async fn place_with_key(app: &TestApps, token: &str, key: &str, body: &Value) -> Response {
    app.request(Method::POST, "/orders", Some(token))
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The same key and body twice: both 201 with the same order, the second marked
/// `Idempotent-Replayed: true`; one order stored.
#[actix_web::test]
async fn retry_returns_the_first_order() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let body = json!({"items": [{"product_id": tea, "quantity": 2}]});
    let first = place_with_key(&app, &app.alice, "checkout-42", &body).await;
    assert_eq!(first.status(), 201);
    assert_eq!(header(&first, "idempotent-replayed"), None);
    let location = header(&first, "location");
    let first: Value = first.json().await.unwrap();

    // Act
    let second = place_with_key(&app, &app.alice, "checkout-42", &body).await;

    // Assert
    assert_eq!(second.status(), 201);
    assert_eq!(
        header(&second, "idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(header(&second, "location"), location);
    assert_eq!(header(&second, "etag").as_deref(), Some("\"1\""));
    assert_eq!(second.json::<Value>().await.unwrap(), first);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// The same key with another body answers 422 unprocessable and stores nothing more.
#[actix_web::test]
async fn same_key_with_another_body_is_refused() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let first = place_with_key(
        &app,
        &app.alice,
        "k1",
        &json!({"product_id": tea, "quantity": 1}),
    )
    .await;
    assert_eq!(first.status(), 201);

    // Act
    let other = place_with_key(
        &app,
        &app.alice,
        "k1",
        &json!({"product_id": tea, "quantity": 2}),
    )
    .await;

    // Assert
    let problem = assert_problem(other, 422, "unprocessable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("k1"),
        "{problem}"
    );
    insta::assert_json_snapshot!("problem_unprocessable_idempotency", problem);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// Keys belong to their user: bob's order with alice's key is a new order, not her replay.
#[actix_web::test]
async fn keys_are_per_user() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let body = json!({"product_id": tea, "quantity": 1});
    let alices = place_with_key(&app, &app.alice, "shared", &body).await;
    assert_eq!(alices.status(), 201);
    let alices: Value = alices.json().await.unwrap();

    // Act
    let bobs = place_with_key(&app, &app.bob, "shared", &body).await;

    // Assert
    assert_eq!(bobs.status(), 201);
    assert_eq!(header(&bobs, "idempotent-replayed"), None);
    let bobs: Value = bobs.json().await.unwrap();
    assert_ne!(id_of(&bobs), id_of(&alices));
    assert_eq!(bobs["owner"], "bob");
    assert_eq!(app.count().await, 2);
    app.stop().await;
}

/// A refused create (unknown product) does not use up its key: the same key with a fixed body
/// places the order.
#[actix_web::test]
async fn a_refused_create_does_not_use_up_the_key() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let ghost = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";
    let refused = place_with_key(
        &app,
        &app.alice,
        "k2",
        &json!({"product_id": ghost, "quantity": 1}),
    )
    .await;
    assert_problem(refused, 422, "unprocessable").await;

    // Act
    let placed = place_with_key(
        &app,
        &app.alice,
        "k2",
        &json!({"product_id": tea, "quantity": 1}),
    )
    .await;

    // Assert
    assert_eq!(placed.status(), 201);
    assert_eq!(header(&placed, "idempotent-replayed"), None);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// A retry with the same body reformatted (key order, whitespace) is the same request.
#[actix_web::test]
async fn retry_with_reformatted_body_is_the_same_request() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let first = app
        .request(Method::POST, "/orders", Some(&app.alice))
        .header("Idempotency-Key", "k3")
        .header("content-type", "application/json")
        .body(format!(r#"{{"product_id":"{tea}","quantity":1}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let id = id_of(&first.json().await.unwrap());

    // Act
    let again = app
        .request(Method::POST, "/orders", Some(&app.alice))
        .header("Idempotency-Key", "k3")
        .header("content-type", "application/json")
        .body(format!(
            "{{\n  \"quantity\" : 1,\n  \"product_id\" : \"{tea}\"\n}}"
        ))
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(again.status(), 201);
    assert_eq!(
        header(&again, "idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(id_of(&again.json().await.unwrap()), id);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// A retry after the order was changed creates nothing: the same order id, one order.
#[actix_web::test]
async fn retry_after_a_change_creates_nothing() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let body = json!({"product_id": tea, "quantity": 1});
    let first = place_with_key(&app, &app.alice, "k4", &body).await;
    let id = id_of(&first.json().await.unwrap());
    app.patch_ok(&app.alice, &id, &json!({"status": "cancelled"}))
        .await;

    // Act
    let retry = place_with_key(&app, &app.alice, "k4", &body).await;

    // Assert
    assert_eq!(retry.status(), 201);
    assert_eq!(
        header(&retry, "idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(id_of(&retry.json().await.unwrap()), id);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// A replay answers the first result as it was (as products does since its fix: version 1,
/// ETag "1"), even after the order changed or was deleted, and never a body carrying the
/// feed-only `archived` member.
#[actix_web::test]
async fn replay_returns_the_first_result_after_a_change_or_delete() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let body = json!({"product_id": tea, "quantity": 1});
    let first = place_with_key(&app, &app.alice, "k5", &body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let id = id_of(&first);
    app.patch_ok(&app.alice, &id, &json!({"status": "cancelled"}))
        .await;

    // Act
    let after_change = place_with_key(&app, &app.alice, "k5", &body).await;
    assert_eq!(app.delete(&app.alice, &id).await.status(), 204);
    let after_delete = place_with_key(&app, &app.alice, "k5", &body).await;

    // Assert
    for replay in [after_change, after_delete] {
        assert_eq!(replay.status(), 201);
        assert_eq!(
            header(&replay, "idempotent-replayed").as_deref(),
            Some("true")
        );
        assert_eq!(header(&replay, "etag").as_deref(), Some("\"1\""));
        let replayed: Value = replay.json().await.unwrap();
        assert!(replayed.get("archived").is_none(), "{replayed}");
        assert_eq!(replayed, first);
    }
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A retry with the same key while the first request is still in flight (its reservation
/// held by a fake products) answers 409 conflict and stores nothing; the first then completes
/// as the one order.
#[actix_web::test]
async fn retry_while_the_first_is_in_flight_is_a_conflict() {
    // Arrange
    let tea = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = std::sync::Mutex::new(held);
    let products = FakeProducts::start(move |head| {
        if !head.starts_with("PUT /reservations/") {
            return None;
        }
        let _ = held.lock().unwrap().recv();
        Some(http_json("200 OK", &reservation_of(head, &[(tea, 1)])))
    });
    let app = spawn_orders_with_products(&products.url, 10_000).await;
    let body = json!({"product_id": tea, "quantity": 1});
    let first = {
        let request = app
            .request(Method::POST, "/orders", Some(&app.alice))
            .header("Idempotency-Key", "k6")
            .json(&body);
        actix_web::rt::spawn(async move { request.send().await.unwrap() })
    };
    let in_flight = eventually(|| async { products.requests("PUT /reservations/") == 1 }).await;
    assert!(in_flight, "the first request never reached products");

    // Act
    let retry = place_with_key(&app, &app.alice, "k6", &body).await;

    // Assert
    let problem = assert_problem(retry, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("k6"),
        "{problem}"
    );
    insta::assert_json_snapshot!("problem_conflict_in_flight", problem);
    assert_eq!(app.count().await, 0);
    assert_eq!(products.requests("PUT /reservations/"), 1);
    release.send(()).unwrap();
    let first = first.await.unwrap();
    assert_eq!(first.status(), 201);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}
