//! `Idempotency-Key` on `POST /products`: retries return the first result, reuse is refused.

use futures_util::future::{Either, join_all};
use reqwest::{Method, Response};
use serde_json::Value;
use store_actor::fs::SimFs;

use crate::helpers::{
    TestApp, assert_problem, fresh_dir, id_of, redactions, scrub, spawn_app, spawn_in, spawn_on,
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

/// How many requests with one key are sent at once in the concurrency tests.
const BURST: usize = 16;

/// What a burst of same-key creates answered.
#[derive(Debug, Default)]
struct Outcomes {
    /// 201 without `Idempotent-Replayed`: (Location, body).
    originals: Vec<(String, Value)>,
    /// 201 with `Idempotent-Replayed: true`: (Location, body).
    replays: Vec<(String, Value)>,
    /// 409 conflict problems (already checked to be problem+json).
    conflicts: Vec<Value>,
}

/// Sends [`BURST`] creates with `key` and the same body at once and sorts the answers; any
/// other status, or a replay header other than `true`, fails the test.
async fn burst(app: &TestApp, key: &str, body: &str) -> Outcomes {
    let responses =
        join_all((0..BURST).map(|_| create_with_key(app, &app.writer, key, body))).await;
    let mut outcomes = Outcomes::default();
    for res in responses {
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        match (res.status().as_u16(), replayed(&res)) {
            (201, replay) => {
                assert_eq!(res.headers()["etag"], "\"1\"");
                let location = location.expect("a 201 has a Location");
                let product: Value = res.json().await.unwrap();
                match replay.as_deref() {
                    None => outcomes.originals.push((location, product)),
                    Some("true") => outcomes.replays.push((location, product)),
                    Some(other) => panic!("Idempotent-Replayed: {other:?}"),
                }
            }
            (409, replay) => {
                assert_eq!(replay, None, "a 409 is not a replay");
                assert_eq!(location, None, "a 409 points nowhere");
                let problem = assert_problem(res, 409, "conflict").await;
                assert!(
                    problem["detail"].as_str().unwrap().contains(key),
                    "{problem}"
                );
                outcomes.conflicts.push(problem);
            }
            (status, _) => panic!("unexpected {status} for a same-key retry"),
        }
    }
    outcomes
}

/// [`BURST`] concurrent requests with one key create exactly one product: exactly one 201
/// that is not a replay, and every other answer is either a replay of that very product
/// (same Location and body) or a 409 conflict because the first was still in flight.
///
/// Nothing else is allowed: no second original, no 5xx, no 422. Since exactly one of
/// `BURST` (> 1) answers is the original, at least one replay or 409 must occur: a service
/// that quietly created a product per request fails here. (Which of the two the other
/// answers are depends on timing: a 409 while the first create waits for its fsync, a replay
/// once it is done; [`retry_while_the_first_is_in_flight_is_conflict`] forces the 409.)
#[actix_web::test]
async fn concurrent_retries_create_one_product() {
    // Arrange
    let app = spawn_app().await;
    let body = r#"{"name":"Tea","price":"1.00"}"#;

    // Act
    let outcomes = burst(&app, "burst", body).await;

    // Assert
    assert_eq!(outcomes.originals.len(), 1, "{outcomes:?}");
    let (location, original) = &outcomes.originals[0];
    assert_eq!(
        outcomes.replays.len() + outcomes.conflicts.len(),
        BURST - 1,
        "{outcomes:?}"
    );
    assert!(
        !outcomes.replays.is_empty() || !outcomes.conflicts.is_empty(),
        "{outcomes:?}"
    );
    for (replay_location, replay) in &outcomes.replays {
        assert_eq!(replay_location, location);
        assert_eq!(replay, original);
    }
    // The in-flight mark is gone with the first request: a later retry is a replay.
    let later = create_with_key(&app, &app.writer, "burst", body).await;
    assert_eq!(later.status(), 201);
    assert_eq!(replayed(&later).as_deref(), Some("true"));
    assert_eq!(&later.json::<Value>().await.unwrap(), original);
    assert_eq!(app.all().await, std::slice::from_ref(original));
    app.stop().await;
}

/// A retry that arrives while the first request with its key is still being processed is
/// refused with 409 conflict (problem+json naming the key), and creates nothing.
///
/// Deterministic: the store runs on a simulated disk whose fsyncs are held, so whichever of the
/// two same-key requests claims the key first stays in flight until the test releases the
/// disk, and the other is answered 409 meanwhile.
#[actix_web::test]
async fn retry_while_the_first_is_in_flight_is_conflict() {
    // Arrange
    let fs = SimFs::new();
    let app = spawn_on(fs.clone()).await;
    let body = r#"{"name":"Tea","price":"1.00"}"#;
    fs.hold_syncs();

    // Act
    let (conflict, original) = {
        let first = Box::pin(create_with_key(&app, &app.writer, "in-flight", body));
        let retry = Box::pin(async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            create_with_key(&app, &app.writer, "in-flight", body).await
        });
        // Without the in-flight check both would wait for the held disk and neither answer.
        let raced = futures_util::future::select(first, retry);
        let answered = tokio::time::timeout(std::time::Duration::from_secs(10), raced).await;
        match answered.expect("one of two same-key requests answers 409 while the other waits") {
            Either::Left((answered, retry)) => {
                let conflict = assert_problem(answered, 409, "conflict").await;
                fs.release_syncs();
                (conflict, retry.await)
            }
            Either::Right((answered, first)) => {
                let conflict = assert_problem(answered, 409, "conflict").await;
                fs.release_syncs();
                (conflict, first.await)
            }
        }
    };

    // Assert
    assert!(conflict.get("errors").is_none(), "{conflict}");
    insta::assert_json_snapshot!(
        "problem_conflict_in_flight",
        scrub(&conflict, &[("in-flight", "[key]")])
    );
    assert_eq!(original.status(), 201);
    assert_eq!(replayed(&original), None);
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
