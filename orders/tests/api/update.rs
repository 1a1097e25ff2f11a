//! `PATCH /orders/{id}`: new lines re-priced against products, the status machine, `If-Match`,
//! and invalid bodies (each leaving the order unchanged).

use serde_json::{Value, json};

use crate::helpers::{TestApps, assert_problem, error_fields, header, id_of, spawn_apps};

/// An order of `lines` by alice moved to `status` (if not placed); returns its body.
async fn order_in(app: &TestApps, lines: &[(&str, u32)], status: &str) -> Value {
    let order = app.place_ok(&app.alice, lines).await;
    if status == "placed" {
        return order;
    }
    app.patch_ok(&app.alice, &id_of(&order), &json!({ "status": status }))
        .await
}

/// Archives `product` and waits until the placed order `id` containing it is on hold.
async fn hold_by_archiving(app: &TestApps, id: &str, product: &str) -> Value {
    app.archive_product(product).await;
    app.wait_for_order(id, |o| o["status"] == "on_hold").await
}

/// New items are priced at the products' CURRENT prices (not the first snapshot), with a new
/// version, ETag and total.
#[actix_web::test]
async fn new_items_are_repriced_at_current_prices() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let cup = app.product("Cup", "5.00").await;
    let order = app.place_ok(&app.alice, &[(&tea, 2)]).await;
    let id = id_of(&order);
    app.reprice(&tea, "1.25").await;

    // Act
    let res = app
        .patch(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": tea, "quantity": 4}, {"product_id": cup, "quantity": 1}]}),
            Some("\"2\""),
        )
        .await;

    // Assert: placed (1), confirmed (2), new lines (3), reserved anew at products.
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "etag").as_deref(), Some("\"3\""));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["version"], 3);
    assert_eq!(body["stock"], "pending");
    assert_eq!(body["status"], "placed");
    assert_eq!(
        body["items"],
        json!([
            {"product_id": tea, "quantity": 4, "product_name": "Tea", "unit_price": "1.25", "line_total": "5.00"},
            {"product_id": cup, "quantity": 1, "product_name": "Cup", "unit_price": "5.00", "line_total": "5.00"},
        ])
    );
    assert_eq!(body["total"], "10.00");
    assert_eq!(body["created_at"], order["created_at"]);
    // Moments later products confirms the new reservation: only the stock state and the
    // version move.
    let settled = app.settled(&id).await;
    assert_eq!(
        (&settled["stock"], &settled["version"]),
        (&json!("confirmed"), &json!(4))
    );
    assert_eq!(
        (&settled["items"], &settled["total"]),
        (&body["items"], &body["total"])
    );
    app.stop().await;
}

/// A status change alone keeps the price snapshot: placed → fulfilled after a price rise still
/// shows the price at order time.
#[actix_web::test]
async fn status_change_keeps_the_snapshot() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let order = app.place_ok(&app.alice, &[(&tea, 3)]).await;
    app.reprice(&tea, "9.99").await;

    // Act
    let fulfilled = app
        .patch_ok(&app.alice, &id_of(&order), &json!({"status": "fulfilled"}))
        .await;

    // Assert
    assert_eq!(fulfilled["status"], "fulfilled");
    assert_eq!(fulfilled["items"], order["items"]);
    assert_eq!(fulfilled["total"], "3.00");
    assert_eq!(fulfilled["version"], 3, "placed, confirmed, fulfilled");
    app.stop().await;
}

/// placed → fulfilled and placed → cancelled are allowed.
#[actix_web::test]
async fn placed_orders_can_be_fulfilled_or_cancelled() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let a = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let b = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);

    // Act
    let fulfilled = app
        .patch_ok(&app.alice, &a, &json!({"status": "fulfilled"}))
        .await;
    let cancelled = app
        .patch_ok(&app.alice, &b, &json!({"status": "cancelled"}))
        .await;

    // Assert
    assert_eq!(fulfilled["status"], "fulfilled");
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(app.order(&app.alice, &a).await["status"], "fulfilled");
    assert_eq!(app.order(&app.alice, &b).await["status"], "cancelled");
    app.stop().await;
}

/// An order on hold goes back to placed when its lines are replaced by available products in
/// the same PATCH; the hold reason is gone.
#[actix_web::test]
async fn on_hold_order_can_be_placed_again_with_new_items() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let cup = app.product("Cup", "2.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1), (&cup, 1)]).await);
    let held = hold_by_archiving(&app, &id, &tea).await;
    assert!(held["hold_reason"].is_string(), "{held}");

    // Act
    let res = app
        .patch(
            &app.alice,
            &id,
            &json!({"status": "placed", "items": [{"product_id": cup, "quantity": 2}]}),
            Some(&format!("\"{}\"", held["version"])),
        )
        .await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "placed");
    assert!(body.get("hold_reason").is_none(), "{body}");
    assert_eq!(body["total"], "4.00");
    let settled = app.settled(&id).await;
    assert_eq!(settled["stock"], "confirmed");
    assert_eq!(
        (&settled["status"], &settled["items"], &settled["total"]),
        (&body["status"], &body["items"], &body["total"])
    );
    app.stop().await;
}

/// New items for an order on hold are accepted (re-priced) but do not release the hold: that
/// takes an explicit status.
#[actix_web::test]
async fn new_items_keep_an_order_on_hold() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let cup = app.product("Cup", "2.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1), (&cup, 1)]).await);
    let held = hold_by_archiving(&app, &id, &tea).await;

    // Act
    let body = app
        .patch_ok(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": cup, "quantity": 3}]}),
        )
        .await;

    // Assert
    assert_eq!(body["status"], "on_hold");
    assert_eq!(body["hold_reason"], held["hold_reason"]);
    assert_eq!(body["total"], "6.00");
    app.stop().await;
}

/// Releasing a hold without changing the lines re-checks them: with the archived product still
/// in the order, on_hold → placed answers 422 naming it and the order stays on hold.
#[actix_web::test]
async fn releasing_a_hold_rechecks_the_products() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let held = hold_by_archiving(&app, &id, &tea).await;

    // Act
    let res = app
        .patch(&app.alice, &id, &json!({"status": "placed"}), None)
        .await;

    // Assert
    let problem = assert_problem(res, 422, "unprocessable").await;
    assert_eq!(problem["archived_product_ids"], json!([tea]));
    assert_eq!(app.order(&app.alice, &id).await, held);
    app.stop().await;
}

/// An order on hold may be cancelled or fulfilled directly.
#[actix_web::test]
async fn on_hold_order_can_be_cancelled_or_fulfilled() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let a = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let b = id_of(&app.place_ok(&app.alice, &[(&tea, 2)]).await);
    hold_by_archiving(&app, &a, &tea).await;
    app.wait_for_order(&b, |o| o["status"] == "on_hold").await;

    // Act
    let cancelled = app
        .patch_ok(&app.alice, &a, &json!({"status": "cancelled"}))
        .await;
    let fulfilled = app
        .patch_ok(&app.alice, &b, &json!({"status": "fulfilled"}))
        .await;

    // Assert
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(fulfilled["status"], "fulfilled");
    assert!(cancelled.get("hold_reason").is_none(), "{cancelled}");
    app.stop().await;
}

/// fulfilled → placed, cancelled → fulfilled, placed → on_hold and placed → placed answer 409
/// conflict and change nothing.
#[actix_web::test]
async fn invalid_status_moves_are_conflicts() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let fulfilled = order_in(&app, &[(&tea, 1)], "fulfilled").await;
    let cancelled = order_in(&app, &[(&tea, 1)], "cancelled").await;
    let placed = order_in(&app, &[(&tea, 1)], "placed").await;

    for (order, to) in [
        (&fulfilled, "placed"),
        (&fulfilled, "cancelled"),
        (&cancelled, "fulfilled"),
        (&cancelled, "placed"),
        (&placed, "on_hold"),
        (&placed, "placed"),
    ] {
        // Act
        let res = app
            .patch(&app.alice, &id_of(order), &json!({ "status": to }), None)
            .await;

        // Assert
        let problem = assert_problem(res, 409, "conflict").await;
        assert!(
            problem["detail"].as_str().unwrap().contains(to),
            "{} → {to}: {problem}",
            order["status"]
        );
        if order["status"] == "fulfilled" && to == "placed" {
            insta::assert_json_snapshot!("problem_conflict", problem);
        }
        assert_eq!(&app.order(&app.alice, &id_of(order)).await, order);
    }
    app.stop().await;
}

/// The items of a fulfilled or cancelled order cannot change: 409, unchanged.
#[actix_web::test]
async fn items_of_a_closed_order_cannot_change() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let fulfilled = order_in(&app, &[(&tea, 1)], "fulfilled").await;
    let cancelled = order_in(&app, &[(&tea, 1)], "cancelled").await;

    for order in [&fulfilled, &cancelled] {
        // Act
        let res = app
            .patch(
                &app.alice,
                &id_of(order),
                &json!({"items": [{"product_id": tea, "quantity": 9}]}),
                None,
            )
            .await;

        // Assert
        assert_problem(res, 409, "conflict").await;
        assert_eq!(&app.order(&app.alice, &id_of(order)).await, order);
    }
    app.stop().await;
}

/// `If-Match` with a stale ETag answers 412 precondition-failed and changes nothing; with the
/// current one the change applies.
#[actix_web::test]
async fn stale_if_match_is_precondition_failed() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let v2 = app
        .patch_ok(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": tea, "quantity": 2}]}),
        )
        .await;

    // Act
    let stale = app
        .patch(
            &app.alice,
            &id,
            &json!({"status": "cancelled"}),
            Some("\"1\""),
        )
        .await;
    let current = app
        .patch(
            &app.alice,
            &id,
            &json!({"status": "cancelled"}),
            Some("\"4\""),
        )
        .await;

    // Assert
    let problem = assert_problem(stale, 412, "precondition-failed").await;
    insta::assert_json_snapshot!("problem_precondition_failed", problem);
    // Placed, confirmed, new lines, their reservations settled.
    assert_eq!(v2["version"], 4);
    assert_eq!(current.status(), 200);
    let current: Value = current.json().await.unwrap();
    assert_eq!(current["status"], "cancelled");
    assert_eq!(current["version"], 5);
    app.stop().await;
}

/// Invalid PATCH bodies answer 422 naming the field and change nothing: an unknown field, an
/// unknown status, an empty body, bad items, and an unknown product (unprocessable).
#[actix_web::test]
async fn invalid_patches_change_nothing() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let order = app.place_ok(&app.alice, &[(&tea, 1)]).await;
    let id = id_of(&order);

    for (body, field) in [
        (json!({"owner": "bob"}), "owner"),
        (json!({"status": "cancelled", "total": "0.00"}), "total"),
        (json!({"status": "shipped"}), "status"),
        (json!({}), "body"),
        (json!({"items": []}), "items"),
        (
            json!({"items": [{"product_id": tea, "quantity": 0}]}),
            "items[0].quantity",
        ),
    ] {
        // Act
        let res = app.patch(&app.alice, &id, &body, None).await;

        // Assert
        let problem = assert_problem(res, 422, "validation").await;
        assert_eq!(error_fields(&problem), [field], "{body}: {problem}");
    }
    let ghost = app
        .patch(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b", "quantity": 1}]}),
            None,
        )
        .await;
    assert_problem(ghost, 422, "unprocessable").await;
    assert_eq!(app.order(&app.alice, &id).await, order);
    app.stop().await;
}

/// If-Match per RFC 9110 on orders: a tag never issued or a weak tag is 412 (not 400), a list
/// naming the current version applies, and an unknown order stays 404 whatever the header.
#[actix_web::test]
async fn if_match_lists_and_foreign_tags() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let order = app.place_ok(&app.alice, &[(&tea, 1)]).await;
    let (id, version) = (id_of(&order), order["version"].as_u64().unwrap());
    let fulfil = json!({"status": "fulfilled"});

    // Act
    let foreign = app
        .patch(&app.alice, &id, &fulfil, Some("\"stale-etag\""))
        .await;
    let weak = app
        .patch(&app.alice, &id, &fulfil, Some(&format!("W/\"{version}\"")))
        .await;
    let unknown = app
        .patch(
            &app.alice,
            &uuid::Uuid::now_v7().to_string(),
            &fulfil,
            Some("\"stale-etag\""),
        )
        .await;
    let listed = app
        .patch(
            &app.alice,
            &id,
            &fulfil,
            Some(&format!("\"99\", \"{version}\"")),
        )
        .await;

    // Assert
    assert_problem(foreign, 412, "precondition-failed").await;
    assert_problem(weak, 412, "precondition-failed").await;
    assert_problem(unknown, 404, "not-found").await;
    assert_eq!(listed.status(), 200);
    assert_eq!(listed.json::<Value>().await.unwrap()["status"], "fulfilled");
    app.stop().await;
}
