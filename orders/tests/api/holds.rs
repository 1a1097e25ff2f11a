//! The products change feed: archiving a product puts the still-placed orders containing it on
//! hold, and nothing else.

use crate::helpers::{id_of, redactions, scrub, spawn_apps};

/// Archiving product A (through products' API) puts every placed order containing A on hold
/// with a reason naming A, for every user; fulfilled, cancelled and deleted orders containing A
/// and an order of only B are unchanged.
#[actix_web::test]
async fn archiving_a_product_holds_its_placed_orders() {
    // Arrange
    let app = spawn_apps().await;
    let a = app.product("Tea", "1.00").await;
    let b = app.product("Cup", "2.00").await;
    let alices_a = id_of(&app.place_ok(&app.alice, &[(&a, 1)]).await);
    let bobs_ab = id_of(&app.place_ok(&app.bob, &[(&b, 1), (&a, 2)]).await);
    let fulfilled_a = id_of(&app.place_ok(&app.alice, &[(&a, 3)]).await);
    let fulfilled_a = app
        .patch_ok(
            &app.alice,
            &fulfilled_a,
            &serde_json::json!({"status": "fulfilled"}),
        )
        .await;
    let cancelled_a = id_of(&app.place_ok(&app.bob, &[(&a, 5)]).await);
    let cancelled_a = app
        .patch_ok(
            &app.bob,
            &cancelled_a,
            &serde_json::json!({"status": "cancelled"}),
        )
        .await;
    let deleted_a = id_of(&app.place_ok(&app.bob, &[(&a, 6)]).await);
    assert_eq!(app.delete(&app.bob, &deleted_a).await.status(), 204);
    let only_b = app.place_ok(&app.alice, &[(&b, 4)]).await;

    // Act
    app.archive_product(&a).await;

    // Assert
    for id in [&alices_a, &bobs_ab] {
        let held = app.wait_for_order(id, |o| o["status"] == "on_hold").await;
        let reason = held["hold_reason"].as_str().unwrap_or_default();
        assert!(reason.contains(&a), "{held}");
        assert!(!reason.contains(&b), "{held}");
        assert_eq!(held["version"], 3, "placed, confirmed, held: {held}");
        assert_eq!(
            held["items"].as_array().unwrap().len(),
            if *id == bobs_ab { 2 } else { 1 }
        );
        if *id == alices_a {
            redactions().bind(|| {
                insta::assert_json_snapshot!("order_on_hold", scrub(&held, &[(&a, "[product_id]")]))
            });
        }
    }
    // Products' events so far: 2 creates and 1 archive; once handled, nothing else may change.
    app.wait_for_feed(3).await;
    assert_eq!(
        app.order(&app.alice, &id_of(&fulfilled_a)).await,
        fulfilled_a
    );
    assert_eq!(app.order(&app.bob, &id_of(&cancelled_a)).await, cancelled_a);
    assert_eq!(app.order(&app.alice, &id_of(&only_b)).await, only_b);
    let deleted = app.get(&app.admin, &format!("/orders/{deleted_a}")).await;
    assert_eq!(deleted.status(), 410, "a deleted order stays deleted");
    let on_hold: Vec<String> = app.get_json(&app.admin, "/orders?status=on_hold").await["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(on_hold, [alices_a, bobs_ab]);
    app.stop().await;
}

/// Product changes other than archiving (a new price) put nothing on hold and leave the
/// snapshot alone.
#[actix_web::test]
async fn repricing_a_product_changes_no_order() {
    // Arrange
    let app = spawn_apps().await;
    let a = app.product("Tea", "1.00").await;
    let order = app.place_ok(&app.alice, &[(&a, 1)]).await;

    // Act
    app.reprice(&a, "7.00").await;

    // Assert
    app.wait_for_feed(2).await;
    assert_eq!(app.order(&app.alice, &id_of(&order)).await, order);
    app.stop().await;
}
