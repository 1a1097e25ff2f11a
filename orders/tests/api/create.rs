//! `POST /orders`: both body forms, snapshots of each line, exact totals, merged lines, and
//! every way a create is refused (each storing nothing).

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    TestApps, assert_problem, error_fields, header, id_of, redactions, scrub, spawn_apps,
};

/// Asserts that `body` from alice answers 422 validation naming exactly `fields`, and that no
/// order was stored; returns the problem.
async fn assert_invalid(app: &TestApps, body: Value, fields: &[&str]) -> Value {
    let before = app.count().await;
    let res = app.place(&app.alice, &body).await;
    let problem = assert_problem(res, 422, "validation").await;
    assert_eq!(error_fields(&problem), fields, "{body} → {problem}");
    for error in problem["errors"].as_array().unwrap() {
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{problem}"
        );
    }
    assert_eq!(app.count().await, before, "{body} stored something");
    problem
}

/// Sends a create with a raw body and content type.
async fn place_raw(app: &TestApps, content_type: &str, body: &str) -> reqwest::Response {
    app.request(Method::POST, "/orders", Some(&app.alice))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// An `items` order answers 201 with Location, ETag "1", the caller as owner, status placed,
/// each line's product name and price snapshot with its line total, and the exact sum.
#[actix_web::test]
async fn items_order_is_placed_with_snapshots_and_an_exact_total() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "0.10").await;
    let cup = app.product("Cup", "3.33").await;

    // Act
    let res = app
        .place(
            &app.alice,
            &json!({"items": [
                {"product_id": tea, "quantity": 3},
                {"product_id": cup, "quantity": 3},
            ]}),
        )
        .await;

    // Assert
    assert_eq!(res.status(), 201);
    assert_eq!(header(&res, "etag").as_deref(), Some("\"1\""));
    let location = header(&res, "location").unwrap();
    let body: Value = res.json().await.unwrap();
    let id = id_of(&body);
    assert_eq!(location, format!("/orders/{id}"));
    assert_eq!(body["owner"], "alice");
    assert_eq!(body["status"], "placed");
    assert!(body.get("hold_reason").is_none(), "{body}");
    assert_eq!(body["version"], 1);
    assert_eq!(
        body["items"],
        json!([
            {"product_id": tea, "quantity": 3, "product_name": "Tea", "unit_price": "0.10", "line_total": "0.30"},
            {"product_id": cup, "quantity": 3, "product_name": "Cup", "unit_price": "3.33", "line_total": "9.99"},
        ])
    );
    assert_eq!(body["total"], "10.29");
    // The settler may already have recorded products' commit (in the background, racing this
    // read): then the order is one change further, its stock confirmed, and otherwise the same.
    let mut read = app.order(&app.alice, &id).await;
    if read["version"] == 2 {
        assert_eq!(read["stock"], "confirmed", "{read}");
        for settled in ["version", "updated_at", "stock"] {
            read[settled] = body[settled].clone();
        }
    }
    assert_eq!(read, body, "GET matches the 201");
    redactions().bind(|| insta::assert_json_snapshot!("created_order", body));
    app.stop().await;
}

/// The single-product body `{"product_id", "quantity"}` places a one-line order.
#[actix_web::test]
async fn single_product_body_is_accepted() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "4.20").await;

    // Act
    let res = app
        .place(&app.bob, &json!({"product_id": tea, "quantity": 2}))
        .await;

    // Assert
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["owner"], "bob");
    assert_eq!(
        body["items"],
        json!([{"product_id": tea, "quantity": 2, "product_name": "Tea", "unit_price": "4.20", "line_total": "8.40"}])
    );
    assert_eq!(body["total"], "8.40");
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// Lines of the same product are merged into one line in first position, quantities summed.
#[actix_web::test]
async fn duplicate_product_lines_are_merged() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.50").await;
    let cup = app.product("Cup", "2.00").await;

    // Act
    let res = app
        .place(
            &app.alice,
            &json!({"items": [
                {"product_id": tea, "quantity": 2},
                {"product_id": cup, "quantity": 1},
                {"product_id": tea, "quantity": 5},
            ]}),
        )
        .await;

    // Assert
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let lines: Vec<(&str, u64)> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["product_id"].as_str().unwrap(),
                i["quantity"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(lines, [(tea.as_str(), 7), (cup.as_str(), 1)]);
    assert_eq!(body["items"][0]["line_total"], "10.50");
    assert_eq!(body["total"], "12.50");
    app.stop().await;
}

/// Merged lines adding up to more than 10,000 units are refused (422 naming `items`), although
/// each line alone is within bounds; nothing is stored.
#[actix_web::test]
async fn merged_quantity_over_the_limit_is_refused() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;

    // Act + Assert
    let problem = assert_invalid(
        &app,
        json!({"items": [
            {"product_id": tea, "quantity": 6000},
            {"product_id": tea, "quantity": 4001},
        ]}),
        &["items"],
    )
    .await;
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("10001"),
        "{problem}"
    );
    app.stop().await;
}

/// Quantities 0, 10001, 1.5 and "2" are each refused with 422 naming `items[i].quantity`
/// (and `quantity` in the single-product form); nothing is stored. 10,000 is accepted.
#[actix_web::test]
async fn out_of_range_or_non_integer_quantities_are_refused() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "0.01").await;
    let cup = app.product("Cup", "1.00").await;

    for bad in [
        json!(0),
        json!(10001),
        json!(1.5),
        json!("2"),
        json!(-1),
        json!(null),
    ] {
        // Act + Assert
        let problem = assert_invalid(
            &app,
            json!({"items": [
                {"product_id": cup, "quantity": 1},
                {"product_id": tea, "quantity": bad},
            ]}),
            &["items[1].quantity"],
        )
        .await;
        if bad == json!(0) {
            insta::assert_json_snapshot!("problem_validation", problem);
        }
        assert_invalid(
            &app,
            json!({"product_id": tea, "quantity": bad}),
            &["quantity"],
        )
        .await;
    }
    let max = app
        .place(&app.alice, &json!({"product_id": tea, "quantity": 10000}))
        .await;
    assert_eq!(max.status(), 201);
    let max: Value = max.json().await.unwrap();
    assert_eq!(max["total"], "100.00");
    app.stop().await;
}

/// A product id that is not a UUID (or missing), an empty or non-array `items`, unknown fields
/// and a non-object body are each refused with 422 naming the field; nothing is stored.
#[actix_web::test]
async fn malformed_items_are_refused_naming_the_field() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;

    // Act + Assert
    assert_invalid(
        &app,
        json!({"items": [{"product_id": "not-a-uuid", "quantity": 1}]}),
        &["items[0].product_id"],
    )
    .await;
    assert_invalid(
        &app,
        json!({"items": [{"product_id": tea, "quantity": 1}, {"quantity": 1}]}),
        &["items[1].product_id"],
    )
    .await;
    assert_invalid(
        &app,
        json!({"product_id": 42, "quantity": 1}),
        &["product_id"],
    )
    .await;
    assert_invalid(&app, json!({"items": []}), &["items"]).await;
    assert_invalid(&app, json!({"items": {"product_id": tea}}), &["items"]).await;
    assert_invalid(
        &app,
        json!({"items": [{"product_id": tea, "quantity": 1, "price": "0.01"}]}),
        &["items[0].price"],
    )
    .await;
    assert_invalid(
        &app,
        json!({"items": [{"product_id": tea, "quantity": 1}], "owner": "bob"}),
        &["owner"],
    )
    .await;
    assert_invalid(&app, json!([{"product_id": tea, "quantity": 1}]), &["body"]).await;
    app.stop().await;
}

/// An order naming a product that never existed answers 422 unprocessable whose
/// `unknown_product_ids` and detail name exactly that id; nothing is stored.
#[actix_web::test]
async fn unknown_product_is_refused_naming_it() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let ghost = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";

    // Act
    let res = app
        .place(
            &app.alice,
            &json!({"items": [
                {"product_id": tea, "quantity": 1},
                {"product_id": ghost, "quantity": 1},
            ]}),
        )
        .await;

    // Assert
    let problem = assert_problem(res, 422, "unprocessable").await;
    assert_eq!(problem["unknown_product_ids"], json!([ghost]));
    assert!(problem.get("archived_product_ids").is_none(), "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(ghost), "{problem}");
    assert!(!detail.contains(&tea), "names a known product: {problem}");
    assert_eq!(app.count().await, 0);
    redactions().bind(|| {
        insta::assert_json_snapshot!(
            "problem_unknown_product",
            scrub(&problem, &[(ghost, "[product_id]")])
        )
    });
    app.stop().await;
}

/// An order naming an archived product answers 422 unprocessable whose `archived_product_ids`
/// and detail name it; nothing is stored.
#[actix_web::test]
async fn archived_product_is_refused_naming_it() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let old = app.product("Old cup", "2.00").await;
    app.archive_product(&old).await;

    // Act
    let res = app
        .place(
            &app.alice,
            &json!({"items": [
                {"product_id": tea, "quantity": 1},
                {"product_id": old, "quantity": 1},
            ]}),
        )
        .await;

    // Assert
    let problem = assert_problem(res, 422, "unprocessable").await;
    assert_eq!(problem["archived_product_ids"], json!([old]));
    assert!(problem.get("unknown_product_ids").is_none(), "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains(&old),
        "{problem}"
    );
    assert_eq!(app.count().await, 0);
    redactions().bind(|| {
        insta::assert_json_snapshot!(
            "problem_archived_product",
            scrub(&problem, &[(&old, "[product_id]")])
        )
    });
    app.stop().await;
}

/// Unknown and archived products in one order are both named, each in its own member.
#[actix_web::test]
async fn unknown_and_archived_products_are_named_together() {
    // Arrange
    let app = spawn_apps().await;
    let old = app.product("Old cup", "2.00").await;
    app.archive_product(&old).await;
    let ghost = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";

    // Act
    let res = app
        .place(
            &app.alice,
            &json!({"items": [
                {"product_id": old, "quantity": 1},
                {"product_id": ghost, "quantity": 1},
            ]}),
        )
        .await;

    // Assert
    let problem = assert_problem(res, 422, "unprocessable").await;
    assert_eq!(problem["unknown_product_ids"], json!([ghost]));
    assert_eq!(problem["archived_product_ids"], json!([old]));
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(ghost) && detail.contains(&old), "{problem}");
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// More than 100 lines are refused (422 naming `items`), even of one product; nothing is
/// stored.
#[actix_web::test]
async fn more_than_100_lines_are_refused() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let lines: Vec<Value> = (0..101)
        .map(|_| json!({"product_id": tea, "quantity": 1}))
        .collect();

    // Act + Assert
    assert_invalid(&app, json!({ "items": lines }), &["items"]).await;
    app.stop().await;
}

/// Malformed JSON answers 400 bad-request and stores nothing.
#[actix_web::test]
async fn malformed_json_is_bad_request() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let res = place_raw(&app, "application/json", r#"{"items": [{"product_id": "#).await;

    // Assert
    let problem = assert_problem(res, 400, "bad-request").await;
    insta::assert_json_snapshot!("problem_bad_request", problem);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A body over the limit (16 KiB in tests) answers 413 payload-too-large and stores nothing.
#[actix_web::test]
async fn oversized_body_is_too_large() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let lines: Vec<Value> = (0..400)
        .map(|_| json!({"product_id": tea, "quantity": 1}))
        .collect();
    let body = json!({ "items": lines }).to_string();
    assert!(body.len() > 16 * 1024);

    // Act
    let res = place_raw(&app, "application/json", &body).await;

    // Assert
    let problem = assert_problem(res, 413, "payload-too-large").await;
    insta::assert_json_snapshot!("problem_payload_too_large", problem);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A body sent as text/plain answers 415 unsupported-media-type and stores nothing.
#[actix_web::test]
async fn wrong_content_type_is_unsupported() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;

    // Act
    let res = place_raw(
        &app,
        "text/plain",
        &json!({"product_id": tea, "quantity": 1}).to_string(),
    )
    .await;

    // Assert
    let problem = assert_problem(res, 415, "unsupported-media-type").await;
    insta::assert_json_snapshot!("problem_unsupported_media_type", problem);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// The value of the counter lines of `text` starting with `name{` that contain every one of
/// `labels`, summed (0 if none).
fn counter(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A 3-item order is reserved and priced with ONE call to products (no lookup): orders' client
/// counts one reserve call and products serves one `PUT /reservations/{id}`.
#[actix_web::test]
async fn a_three_item_order_makes_one_reserve_call() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let cup = app.product("Cup", "3.33").await;
    let pot = app.product("Pot", "20.00").await;
    let calls = || async {
        let orders = app.anonymous("/metrics").await.text().await.unwrap();
        let products = app
            .products_request(Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        [
            counter(
                &orders,
                "products_client_requests_total",
                &["call=\"reserve\""],
            ),
            counter(
                &products,
                "http_requests_total",
                &["method=\"PUT\"", "route=\"/reservations/{id}\""],
            ),
            counter(
                &orders,
                "products_client_requests_total",
                &["call=\"lookup\""],
            ),
        ]
    };
    let before = calls().await;

    // Act
    let placed = app
        .place_ok(&app.alice, &[(&tea, 1), (&cup, 2), (&pot, 3)])
        .await;

    // Assert
    let after = calls().await;
    let made: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    assert_eq!(made, [1.0, 1.0, 0.0], "reserve calls made, served; lookups");
    assert_eq!(placed["total"], "67.66");
    app.stop().await;
}
