//! Bad input: the right 4xx, as problem+json, and nothing changes.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, error_fields, id_of, spawn_app};

/// Sends a create with `body` as raw bytes and `content_type`.
async fn create_raw(
    app: &TestApp,
    content_type: &str,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    app.request(Method::POST, "/products", Some(&app.writer))
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Asserts that a create with `body` answers 422 validation naming exactly `fields`, and that
/// no product was stored.
async fn assert_create_invalid(body: Value, fields: &[&str]) -> Value {
    let app = spawn_app().await;
    let res = app.create(&body).await;
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(error_fields(&problem), fields, "{body} → {problem}");
    for error in problem["errors"].as_array().unwrap() {
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{problem}"
        );
    }
    assert_eq!(app.count().await, 0, "{body} stored something");
    app.stop().await;
    problem
}

/// Malformed JSON answers 400 bad-request and stores nothing.
#[actix_web::test]
async fn malformed_json_is_bad_request() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = create_raw(&app, "application/json", r#"{"name": "Tea", "price": "#).await;

    // Assert
    let problem = assert_problem(res, 400, "bad-request").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("malformed JSON"),
        "{problem}"
    );
    insta::assert_json_snapshot!("problem_bad_request", problem);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A body sent as text/plain answers 415 unsupported-media-type and stores nothing.
#[actix_web::test]
async fn wrong_content_type_is_unsupported() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = create_raw(&app, "text/plain", r#"{"name": "Tea", "price": "1.00"}"#).await;

    // Assert
    let problem = assert_problem(res, 415, "unsupported-media-type").await;
    insta::assert_json_snapshot!("problem_unsupported_media_type", problem);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A body over the limit (16 KiB in tests) answers 413 payload-too-large and stores nothing.
#[actix_web::test]
async fn oversized_body_is_too_large() {
    // Arrange
    let app = spawn_app().await;
    let body = json!({"name": "x".repeat(17 * 1024), "price": "1.00"}).to_string();

    // Act
    let res = create_raw(&app, "application/json", body).await;

    // Assert
    let problem = assert_problem(res, 413, "payload-too-large").await;
    insta::assert_json_snapshot!("problem_payload_too_large", problem);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// An unknown field answers 422 naming it, and stores nothing.
#[actix_web::test]
async fn unknown_field_is_refused() {
    let problem = assert_create_invalid(
        json!({"name": "Tea", "price": "1.00", "colour": "green"}),
        &["colour"],
    )
    .await;
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field")
    );
}

/// A body without name and price answers 422 listing both fields.
#[actix_web::test]
async fn missing_fields_are_all_listed() {
    let problem = assert_create_invalid(json!({}), &["name", "price"]).await;
    insta::assert_json_snapshot!("problem_validation", problem);
}

/// A blank name is refused.
#[actix_web::test]
async fn empty_name_is_refused() {
    assert_create_invalid(json!({"name": "   ", "price": "1.00"}), &["name"]).await;
}

/// A name of 201 characters is refused.
#[actix_web::test]
async fn too_long_name_is_refused() {
    assert_create_invalid(json!({"name": "n".repeat(201), "price": "1.00"}), &["name"]).await;
}

/// A name that is not a string is refused.
#[actix_web::test]
async fn non_string_name_is_refused() {
    assert_create_invalid(json!({"name": 42, "price": "1.00"}), &["name"]).await;
}

/// A negative price is refused, as a string and as a number.
#[actix_web::test]
async fn negative_price_is_refused() {
    let problem = assert_create_invalid(json!({"name": "Tea", "price": "-1.00"}), &["price"]).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("negative"),
        "{problem}"
    );
    assert_create_invalid(json!({"name": "Tea", "price": -1}), &["price"]).await;
}

/// A price with three fraction digits is refused, not rounded (string and number).
#[actix_web::test]
async fn over_precise_price_is_refused() {
    let problem = assert_create_invalid(json!({"name": "Tea", "price": "1.234"}), &["price"]).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("two fraction digits"),
        "{problem}"
    );
    assert_create_invalid(json!({"name": "Tea", "price": 1.234}), &["price"]).await;
}

/// "NaN" is not a price.
#[actix_web::test]
async fn nan_price_is_refused() {
    assert_create_invalid(json!({"name": "Tea", "price": "NaN"}), &["price"]).await;
}

/// A boolean is not a price.
#[actix_web::test]
async fn boolean_price_is_refused() {
    assert_create_invalid(json!({"name": "Tea", "price": true}), &["price"]).await;
}

/// A body that is JSON but not an object answers 422 naming `body`.
#[actix_web::test]
async fn non_object_body_is_refused() {
    assert_create_invalid(json!(["Tea", "1.00"]), &["body"]).await;
}

/// A name with a control character is refused.
#[actix_web::test]
async fn control_character_in_name_is_refused() {
    assert_create_invalid(json!({"name": "Tea\u{7}", "price": "1.00"}), &["name"]).await;
}

/// Content after the JSON document (trailing garbage, a second document) is malformed JSON:
/// 400, nothing stored and nothing changed.
#[actix_web::test]
async fn trailing_data_after_the_json_document_is_refused() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);
    let before = app.get_json(&format!("/products/{id}")).await;

    // Act
    let create = create_raw(
        &app,
        "application/json",
        r#"{"name": "Coffee", "price": "2.00"} xyz"#,
    )
    .await;
    let patch = app
        .request(Method::PATCH, &format!("/products/{id}"), Some(&app.writer))
        .header("content-type", "application/json")
        .body(r#"{"price": "3.00"}{"price": "4.00"}"#)
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(create, 400, "bad-request").await;
    assert_problem(patch, 400, "bad-request").await;
    assert_eq!(app.all().await, [before]);
    app.stop().await;
}

/// A JSON number whose exact value has more than two fraction digits is refused even when the
/// nearest binary float prints as two digits (4.999999999999999999 is not 5.00).
#[actix_web::test]
async fn json_number_price_beyond_float_precision_is_refused() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = create_raw(
        &app,
        "application/json",
        r#"{"name": "Tea", "price": 4.999999999999999999}"#,
    )
    .await;

    // Assert
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["price"]);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// An invalid patch answers 422 and leaves the product as it was.
#[actix_web::test]
async fn invalid_patch_changes_nothing() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);
    let before = app.get_json(&format!("/products/{id}")).await;

    // Act
    let empty = app.patch(&id, &json!({}), None).await;
    let bad = app
        .patch(&id, &json!({"name": "New", "price": "-5"}), Some("\"1\""))
        .await;
    let unknown = app
        .patch(&id, &json!({"name": "New", "id": "x"}), None)
        .await;

    // Assert
    assert_eq!(
        error_fields(&assert_problem(empty, 422, "validation").await),
        ["body"]
    );
    assert_eq!(
        error_fields(&assert_problem(bad, 422, "validation").await),
        ["price"]
    );
    assert_eq!(
        error_fields(&assert_problem(unknown, 422, "validation").await),
        ["id"]
    );
    assert_eq!(app.get_json(&format!("/products/{id}")).await, before);
    app.stop().await;
}

/// An unknown route answers a 404 problem, with or without a token.
#[actix_web::test]
async fn unknown_route_is_a_not_found_problem() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let anonymous = app
        .request(Method::GET, "/nope", None)
        .send()
        .await
        .unwrap();
    let deeper = app.get("/products/a/b").await;

    // Assert
    let problem = assert_problem(anonymous, 404, "not-found").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("/nope"),
        "{problem}"
    );
    assert_problem(deeper, 404, "not-found").await;
    app.stop().await;
}

/// List query errors answer 400: an unknown parameter, limit 0 and 101, a bad number, a bad
/// price bound, a malformed cursor and a cursor of another sort.
#[actix_web::test]
async fn bad_list_queries_are_bad_requests() {
    // Arrange
    let app = spawn_app().await;
    for i in 0..3 {
        app.create_ok(&format!("p{i}"), "1.00").await;
    }
    let page = app.get_json("/products?limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();

    for (query, param) in [
        ("colour=red".to_owned(), "colour"),
        ("limit=0".to_owned(), "limit"),
        ("limit=101".to_owned(), "limit"),
        ("limit=ten".to_owned(), "limit"),
        ("sort=weight".to_owned(), "sort"),
        ("min_price=cheap".to_owned(), "min_price"),
        ("max_price=1.001".to_owned(), "max_price"),
        ("name_contains=%FF%FE".to_owned(), "name_contains"),
        ("cursor=zz".to_owned(), "cursor"),
        ("cursor=7b7d".to_owned(), "cursor"),
        (format!("limit=1&sort=price&cursor={cursor}"), "cursor"),
        (format!("limit=1&order=desc&cursor={cursor}"), "cursor"),
    ] {
        // Act
        let res = app.get(&format!("/products?{query}")).await;

        // Assert: the same problem shape as body errors, naming the parameter.
        let problem = assert_problem(res, 400, "bad-request").await;
        assert_eq!(error_fields(&problem), [param], "{query}: {problem}");
    }
    assert_eq!(app.count().await, 3);
    app.stop().await;
}

/// A known path with another method is 405 with `Allow`, as a problem.
#[actix_web::test]
async fn wrong_method_is_405_with_allow() {
    let app = crate::helpers::spawn_app().await;
    for (method, path, allow) in [
        (
            reqwest::Method::PUT,
            "/products/0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b",
            "GET, PATCH, DELETE",
        ),
        (reqwest::Method::DELETE, "/products", "GET, POST"),
        (reqwest::Method::GET, "/products/lookup", "POST"),
    ] {
        let res = app
            .request(method.clone(), path, Some(&app.writer))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["allow"], allow, "{method} {path}");
        let problem = crate::helpers::assert_problem(res, 405, "method-not-allowed").await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains(method.as_str())
        );
        if method == reqwest::Method::PUT {
            insta::assert_json_snapshot!("problem_method_not_allowed", problem);
        }
    }
    app.stop().await;
}

/// A key given twice is refused naming it (the last one does not silently win); names of only
/// invisible characters and prices with spaces are refused; nothing is stored.
#[actix_web::test]
async fn duplicate_keys_invisible_names_and_spaced_prices_are_refused() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let duplicate = create_raw(
        &app,
        "application/json",
        r#"{"name":"Tea","price":"-1","price":"2.00"}"#,
    )
    .await;
    let invisible = app
        .create(&json!({"name": "\u{200B}\u{2060}", "price": "1.00"}))
        .await;
    let spaced = app.create(&json!({"name": "Tea", "price": " 4.20"})).await;

    // Assert
    let problem = assert_problem(duplicate, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["price"], "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("duplicate key")
    );
    let problem = assert_problem(invisible, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["name"], "{problem}");
    let problem = assert_problem(spaced, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["price"], "{problem}");
    assert_eq!(app.count().await, 0);
    app.stop().await;
}
