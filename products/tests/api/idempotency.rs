//! `Idempotency-Key` on `POST /products`: retries return the first result, reuse is refused.

use futures_util::future::join_all;
use reqwest::{Method, Response};
use serde_json::Value;

use crate::helpers::{
    TestApp, assert_problem, fresh_dir, id_of, redactions, spawn_app, spawn_in,
};

/// `POST /products` with `token`, an `Idempotency-Key` and a raw JSON body.
async fn create_with_key(app: &TestApp, token: &str, key: &str, body: &str) -> Response {
    app.request(Method::POST, "/products", Some(token))
        .header("Idempotency-Key", key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn replayed(res: &Response) -> Option<String> {
    res.headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// The same key and body twice: both 201 with the same product, the second marked replayed,
/// one product stored.
#[actix_web::test]
async fn retry_returns_the_first_result() {
    // Arrange
    let app = spawn_app().await;
    let body = r#"{"name": "Tea", "price": "1.00"}"#;
    let first = create_with_key(&app, &app.writer, "order-42", body).await;
    assert_eq!(first.status(), 201);
    assert_eq!(replayed(&first), None);
    let first_location = first.headers()["location"].clone();
    let first: Value = first.json().await.unwrap();

    // Act
    let second = create_with_key(&app, &app.writer, "order-42", body).await;

    // Assert
    assert_eq!(second.status(), 201);
    assert_eq!(replayed(&second).as_deref(), Some("true"));
    assert_eq!(second.headers()["location"], first_location);
    assert_eq!(second.headers()["etag"], "\"1\"");
    let second: Value = second.json().await.unwrap();
    assert_eq!(second, first);
    redactions().bind(|| insta::assert_json_snapshot!("replayed_product", second));
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// A retry whose JSON differs only in key order and whitespace is the same request.
#[actix_web::test]
async fn retry_with_reformatted_body_is_the_same_request() {
    // Arrange
    let app = spawn_app().await;
    let first = create_with_key(&app, &app.writer, "k1", r#"{"name":"Tea","price":"1.00"}"#).await;
    assert_eq!(first.status(), 201);
    let id = id_of(&first.json().await.unwrap());

    // Act
    let again = create_with_key(
        &app,
        &app.writer,
        "k1",
        "{\n  \"price\" : \"1.00\",\n  \"name\" : \"Tea\"\n}",
    )
    .await;

    // Assert
    assert_eq!(again.status(), 201);
    assert_eq!(replayed(&again).as_deref(), Some("true"));
    assert_eq!(id_of(&again.json().await.unwrap()), id);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// A retry after the product was changed still finds it: same id, no second product.
#[actix_web::test]
async fn retry_after_a_change_creates_nothing() {
    // Arrange
    let app = spawn_app().await;
    let body = r#"{"name":"Tea","price":"1.00"}"#;
    let first = create_with_key(&app, &app.writer, "k1", body).await;
    let id = id_of(&first.json().await.unwrap());
    assert_eq!(
        app.patch(&id, &serde_json::json!({"price": "2.00"}), None)
            .await
            .status(),
        200
    );

    // Act
    let retry = create_with_key(&app, &app.writer, "k1", body).await;

    // Assert
    assert_eq!(retry.status(), 201);
    assert_eq!(replayed(&retry).as_deref(), Some("true"));
    assert_eq!(id_of(&retry.json().await.unwrap()), id);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// The same key with another body answers 422 unprocessable and stores nothing new.
#[actix_web::test]
async fn reuse_with_another_body_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let first = create_with_key(&app, &app.writer, "k1", r#"{"name":"Tea","price":"1.00"}"#).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();

    // Act
    let res = create_with_key(&app, &app.writer, "k1", r#"{"name":"Tea","price":"2.00"}"#).await;

    // Assert
    let problem = assert_problem(res, 422, "unprocessable").await;
    assert!(problem.get("errors").is_none(), "{problem}");
    insta::assert_json_snapshot!("problem_unprocessable_idempotency", problem);
    assert_eq!(app.all().await, [first]);
    app.stop().await;
}

/// Keys belong to their caller: the same key from two users creates two products.
#[actix_web::test]
async fn keys_are_per_user() {
    // Arrange
    let app = spawn_app().await;
    let bob = app.token("bob", &["products:write"]);
    let body = r#"{"name":"Tea","price":"1.00"}"#;

    // Act
    let alice_res = create_with_key(&app, &app.writer, "shared", body).await;
    let bob_res = create_with_key(&app, &bob, "shared", body).await;

    // Assert
    assert_eq!(alice_res.status(), 201);
    assert_eq!(bob_res.status(), 201);
    assert_eq!(replayed(&bob_res), None);
    let alice_id = id_of(&alice_res.json().await.unwrap());
    let bob_id = id_of(&bob_res.json().await.unwrap());
    assert_ne!(alice_id, bob_id);
    assert_eq!(app.count().await, 2);
    app.stop().await;
}

/// A key is remembered across a restart: the retry after it is a replay of the same product.
#[actix_web::test]
async fn key_survives_a_restart() {
    // Arrange
    let (dir, root) = fresh_dir();
    let body = r#"{"name":"Tea","price":"1.00"}"#;
    let app = spawn_in(dir.path(), root.clone(), Vec::new()).await;
    let first = create_with_key(&app, &app.writer, "before-crash", body).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    app.stop().await;

    // Act
    let app = spawn_in(dir.path(), root, Vec::new()).await;
    let retry = create_with_key(&app, &app.writer, "before-crash", body).await;

    // Assert
    assert_eq!(retry.status(), 201);
    assert_eq!(replayed(&retry).as_deref(), Some("true"));
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// A key with a space (or empty, or over 255 characters) answers 400 and stores nothing.
#[actix_web::test]
async fn bad_keys_are_refused() {
    // Arrange
    let app = spawn_app().await;
    let body = r#"{"name":"Tea","price":"1.00"}"#;
    let long = "k".repeat(256);

    for key in ["a b", "", long.as_str()] {
        // Act
        let res = create_with_key(&app, &app.writer, key, body).await;

        // Assert
        let problem = assert_problem(res, 400, "bad-request").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{key:?}"
        );
    }
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// Ten concurrent requests with one key create exactly one product: one 201 that is not a
/// replay, the others replays (201) or 409 while the first is in flight.
#[actix_web::test]
async fn concurrent_retries_create_one_product() {
    // Arrange
    let app = spawn_app().await;
    let body = r#"{"name":"Tea","price":"1.00"}"#;

    // Act
    let responses =
        join_all((0..10).map(|_| create_with_key(&app, &app.writer, "burst", body))).await;

    // Assert
    let mut originals = 0;
    let mut ids = Vec::new();
    for res in responses {
        match (res.status().as_u16(), replayed(&res)) {
            (201, None) => {
                originals += 1;
                ids.push(id_of(&res.json().await.unwrap()));
            }
            (201, Some(_)) => ids.push(id_of(&res.json().await.unwrap())),
            (409, _) => {
                assert_problem(res, 409, "conflict").await;
            }
            (status, _) => panic!("unexpected {status}"),
        }
    }
    assert_eq!(originals, 1);
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// An invalid body sent with a key stores nothing and does not burn the key.
#[actix_web::test]
async fn invalid_body_does_not_burn_the_key() {
    // Arrange
    let app = spawn_app().await;
    let invalid = create_with_key(&app, &app.writer, "k1", r#"{"name":"","price":"1.00"}"#).await;
    assert_problem(invalid, 422, "validation").await;

    // Act
    let valid = create_with_key(&app, &app.writer, "k1", r#"{"name":"Tea","price":"1.00"}"#).await;

    // Assert
    assert_eq!(valid.status(), 201);
    assert_eq!(replayed(&valid), None);
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// A replay answers the first result as it was (version 1, the first price), even after the
/// product changed.
#[actix_web::test]
async fn replay_returns_the_first_result_not_the_current_state() {
    let app = crate::helpers::spawn_app().await;
    let body = serde_json::json!({"name": "Kettle", "price": "20.00"});
    let first = app
        .request(reqwest::Method::POST, "/products", Some(&app.writer))
        .header("Idempotency-Key", "kettle-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    let first: serde_json::Value = first.json().await.unwrap();
    let id = first["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.patch(&id, &serde_json::json!({"price": "25.00"}), None)
            .await
            .status(),
        200
    );
    let replay = app
        .request(reqwest::Method::POST, "/products", Some(&app.writer))
        .header("Idempotency-Key", "kettle-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["etag"], "\"1\"");
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let replay: serde_json::Value = replay.json().await.unwrap();
    assert_eq!(replay, first);
    app.stop().await;
}
