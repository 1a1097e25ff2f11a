//! Stock: products that track it, adjustments (idempotent, never below zero or the reserved
//! units), setting it directly only with `If-Match`, and adjustments in the change feed.

use futures_util::future::join_all;
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Events, TestApp, assert_problem, error_fields, id_of, redactions, spawn_app};

/// `POST /products/{id}/stock` with the writer's token and an optional `Idempotency-Key`.
async fn adjust(app: &TestApp, id: &str, body: &Value, key: Option<&str>) -> Response {
    let mut req = app
        .request(
            Method::POST,
            &format!("/products/{id}/stock"),
            Some(&app.writer),
        )
        .json(body);
    if let Some(key) = key {
        req = req.header("Idempotency-Key", key);
    }
    req.send().await.unwrap()
}

/// Creates a product with `stock` units; returns its body.
async fn stocked(app: &TestApp, stock: u64) -> Value {
    let res = app
        .create(&json!({"name": "Tea", "price": "2.00", "stock": stock}))
        .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

/// A product created with stock shows stock, reserved and available; one without shows them
/// as not tracked.
#[actix_web::test]
async fn products_show_stock_reserved_and_available() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let tracked = stocked(&app, 10).await;
    let untracked = app.create_ok("Cup", "3.00").await;

    // Assert
    assert_eq!(
        (
            &tracked["stock"],
            &tracked["reserved"],
            &tracked["available"]
        ),
        (&json!(10), &json!(0), &json!(10))
    );
    assert_eq!(
        (
            &untracked["stock"],
            &untracked["reserved"],
            &untracked["available"]
        ),
        (&Value::Null, &json!(0), &Value::Null)
    );
    redactions().bind(|| insta::assert_json_snapshot!("stocked_product", tracked));
    let read = app
        .get_json(&format!("/products/{}", id_of(&tracked)))
        .await;
    assert_eq!(read, tracked);
    app.stop().await;
}

/// Adjustments add and remove units, answer the adjustment with the stock after it, bump the
/// product's version, and are refused (409, nothing changed) below zero or on a product that
/// does not track stock.
#[actix_web::test]
async fn adjustments_move_stock_and_never_below_zero() {
    // Arrange
    let app = spawn_app().await;
    let tea = stocked(&app, 10).await;
    let id = id_of(&tea);
    let cup = id_of(&app.create_ok("Cup", "3.00").await);

    // Act
    let added = adjust(
        &app,
        &id,
        &json!({"delta": 5, "reason": "delivery 42"}),
        None,
    )
    .await;
    let removed = adjust(&app, &id, &json!({"delta": -3, "reason": "broken"}), None).await;
    let too_many = adjust(&app, &id, &json!({"delta": -13, "reason": "lost"}), None).await;
    let untracked = adjust(&app, &cup, &json!({"delta": 1, "reason": "found"}), None).await;

    // Assert
    assert_eq!(added.status(), 200);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["delta"], 5);
    assert_eq!(added["product_id"], json!(id));
    redactions().bind(|| insta::assert_json_snapshot!("stock_adjustment", added));
    assert_eq!(removed.status(), 200);
    let problem = assert_problem(too_many, 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("12 units available"),
        "{problem}"
    );
    let problem = assert_problem(untracked, 409, "conflict").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("does not track stock")
    );
    let now = app.get_json(&format!("/products/{id}")).await;
    assert_eq!((&now["stock"], &now["available"]), (&json!(12), &json!(12)));
    assert_eq!(now["version"], 3, "two adjustments, two versions");
    // The adjustment's id is no product's.
    let res = app.get(&format!("/products/{}", id_of(&added))).await;
    assert_problem(res, 404, "not-found").await;
    assert_eq!(
        app.count().await,
        2,
        "adjustments are not listed as products"
    );
    app.stop().await;
}

/// The same key and body answer the first adjustment again (applied once); the same key with
/// another body is refused; bad bodies, unknown and archived products are refused.
#[actix_web::test]
async fn adjustments_are_idempotent_and_checked() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&stocked(&app, 10).await);
    let body = json!({"delta": -2, "reason": "sample"});

    // Act
    let first = adjust(&app, &id, &body, Some("adj-1")).await;
    let again = adjust(&app, &id, &body, Some("adj-1")).await;
    let reused = adjust(
        &app,
        &id,
        &json!({"delta": -3, "reason": "sample"}),
        Some("adj-1"),
    )
    .await;
    let invalid = adjust(&app, &id, &json!({"delta": 0, "reason": ""}), None).await;
    let unknown = adjust(&app, &uuid::Uuid::new_v4().to_string(), &body, None).await;

    // Assert
    assert_eq!(first.status(), 200);
    assert_eq!(again.status(), 200);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.to_str().unwrap()),
        Some("true")
    );
    let (first, again): (Value, Value) = (first.json().await.unwrap(), again.json().await.unwrap());
    assert_eq!(first, again);
    assert_problem(reused, 422, "unprocessable").await;
    let problem = assert_problem(invalid, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["delta", "reason"]);
    assert_problem(unknown, 404, "not-found").await;
    let now = app.get_json(&format!("/products/{id}")).await;
    assert_eq!(now["stock"], 8, "applied once");
    assert_eq!(app.delete(&id, None).await.status(), 204);
    let gone = adjust(&app, &id, &body, None).await;
    assert_problem(gone, 410, "gone").await;
    app.stop().await;
}

/// Setting stock directly needs `If-Match` (428 without it); with it the stock is set or, with
/// `null`, no longer tracked. Creating with a negative or fractional stock is refused.
#[actix_web::test]
async fn stock_is_set_directly_only_with_if_match() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&stocked(&app, 10).await);

    // Act
    let blind = app.patch(&id, &json!({"stock": 3}), None).await;
    let set = app.patch(&id, &json!({"stock": 3}), Some("\"1\"")).await;
    let untrack = app.patch(&id, &json!({"stock": null}), Some("\"2\"")).await;
    let negative = app
        .create(&json!({"name": "Tea", "price": "1.00", "stock": -1}))
        .await;
    let fraction = app
        .create(&json!({"name": "Tea", "price": "1.00", "stock": 1.5}))
        .await;

    // Assert
    let problem = assert_problem(blind, 428, "precondition-required").await;
    insta::assert_json_snapshot!("problem_precondition_required", problem);
    assert_eq!(set.status(), 200);
    let set: Value = set.json().await.unwrap();
    assert_eq!((&set["stock"], &set["available"]), (&json!(3), &json!(3)));
    assert_eq!(untrack.status(), 200);
    let untracked: Value = untrack.json().await.unwrap();
    assert_eq!(untracked["stock"], Value::Null);
    for res in [negative, fraction] {
        let problem = assert_problem(res, 422, "validation").await;
        assert_eq!(error_fields(&problem), ["stock"]);
    }
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// Many concurrent adjustments of -1 on a stock of 20: exactly 20 succeed, the rest are
/// refused, and the stock ends at 0 (never below).
#[actix_web::test]
async fn concurrent_adjustments_never_go_below_zero() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&stocked(&app, 20).await);

    // Act
    let answers = join_all((0..50).map(|i| {
        let (app, id) = (&app, &id);
        async move {
            adjust(
                app,
                id,
                &json!({"delta": -1, "reason": format!("sale {i}")}),
                None,
            )
            .await
            .status()
            .as_u16()
        }
    }))
    .await;

    // Assert
    let ok = answers.iter().filter(|s| **s == 200).count();
    let refused = answers.iter().filter(|s| **s == 409).count();
    assert_eq!((ok, refused), (20, 30), "{answers:?}");
    let now = app.get_json(&format!("/products/{id}")).await;
    assert_eq!(now["stock"], 0);
    app.stop().await;
}

/// An adjustment reaches the change feed as an `updated` event of its product carrying the
/// new stock (the adjustment record itself is not a product event).
#[actix_web::test]
async fn adjustments_are_in_the_change_feed() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&stocked(&app, 4).await);
    let feed = app
        .request(Method::GET, "/products/events?after=0", Some(&app.reader))
        .send()
        .await
        .unwrap();
    let mut events = Events::new(feed);
    assert_eq!(events.next().await.event.as_deref(), Some("created"));

    // Act
    assert_eq!(
        adjust(&app, &id, &json!({"delta": 6, "reason": "delivery"}), None)
            .await
            .status(),
        200
    );
    app.create_ok("Next", "1.00").await;

    // Assert
    let updated = events.next().await;
    assert_eq!(updated.event.as_deref(), Some("updated"));
    assert_eq!(updated.data["product"]["stock"], 10);
    let next = events.next().await;
    assert_eq!(
        next.event.as_deref(),
        Some("created"),
        "no event for the adjustment record"
    );
    assert_eq!(next.data["product"]["name"], "Next");
    app.stop_now().await;
}
