//! Order figures (`GET /orders/stats`) and the admin's owner filter of `GET /orders`.

use serde_json::{Value, json};

use crate::helpers::{assert_problem, error_fields, id_of, ids, redactions, spawn_apps};

/// Users get the figures of their own orders, admins everyone's or one owner's; totals are
/// exact, averages rounded half up to the cent; a time range limits what counts.
#[actix_web::test]
async fn figures_per_status_for_the_caller_or_an_owner() {
    // Arrange: alice orders 2 × 0.15 and 1 × 3.33 and cancels the latter; bob orders 1.00.
    let app = spawn_apps().await;
    let tea = app.product("Tea", "0.15").await;
    let cake = app.product("Cake", "3.33").await;
    let bun = app.product("Bun", "1.00").await;
    app.place_ok(&app.alice, &[(&tea, 1)]).await;
    app.place_ok(&app.alice, &[(&tea, 1)]).await;
    let cancelled = id_of(&app.place_ok(&app.alice, &[(&cake, 1)]).await);
    app.patch_ok(&app.alice, &cancelled, &json!({"status": "cancelled"}))
        .await;
    app.place_ok(&app.bob, &[(&bun, 1)]).await;

    // Act
    let mine = app.get_json(&app.alice, "/orders/stats").await;
    let all = app.get_json(&app.admin, "/orders/stats").await;
    let bobs = app.get_json(&app.admin, "/orders/stats?owner=bob").await;
    let later = app
        .get_json(&app.admin, "/orders/stats?from=2999-01-01T00:00:00Z")
        .await;
    let not_mine = app.get(&app.alice, "/orders/stats?owner=bob").await;
    let bad = app.get(&app.alice, "/orders/stats?from=yesterday").await;

    // Assert
    assert_eq!(
        mine["all"],
        json!({"count": 3, "total": "3.63", "average": "1.21"})
    );
    assert_eq!(
        mine["by_status"]["placed"],
        json!({"count": 2, "total": "0.30", "average": "0.15"})
    );
    assert_eq!(mine["by_status"]["cancelled"]["count"], 1);
    redactions().bind(|| insta::assert_json_snapshot!("stats", mine));
    assert_eq!(all["all"]["count"], 4);
    assert!(all.get("owner").is_none(), "{all}");
    assert_eq!(
        bobs["all"],
        json!({"count": 1, "total": "1.00", "average": "1.00"})
    );
    assert_eq!(later["all"]["count"], 0);
    assert_eq!(later["all"]["average"], "0.00");
    assert_problem(not_mine, 403, "forbidden").await;
    let problem = assert_problem(bad, 400, "bad-request").await;
    assert_eq!(error_fields(&problem), ["from"]);
    app.stop().await;
}

/// An admin lists one owner's orders with `?owner=`; a user may name only themselves.
#[actix_web::test]
async fn admins_list_one_owners_orders() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let alices = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    app.place_ok(&app.bob, &[(&tea, 1)]).await;

    // Act
    let page = app.get_json(&app.admin, "/orders?owner=alice").await;
    let own = app.get_json(&app.alice, "/orders?owner=alice").await;
    let other = app.get(&app.alice, "/orders?owner=bob").await;

    // Assert
    let listed: Vec<Value> = page["items"].as_array().unwrap().clone();
    assert_eq!(ids(&listed), std::slice::from_ref(&alices));
    assert_eq!(ids(own["items"].as_array().unwrap()), [alices]);
    assert_problem(other, 403, "forbidden").await;
    app.stop().await;
}

/// Placed, cancelled and fulfilled orders and the placed value are counted in `/metrics`.
#[actix_web::test]
async fn order_outcomes_are_counted() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "2.50").await;
    let a = id_of(&app.place_ok(&app.alice, &[(&tea, 2)]).await);
    let b = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);

    // Act
    app.patch_ok(&app.alice, &a, &json!({"status": "fulfilled"}))
        .await;
    app.patch_ok(&app.alice, &b, &json!({"status": "cancelled"}))
        .await;

    // Assert
    assert_eq!(app.metric("orders_placed_total ").await, Some(2.0));
    assert_eq!(
        app.metric("orders_placed_value_cents_total ").await,
        Some(750.0)
    );
    assert_eq!(app.metric("orders_fulfilled_total ").await, Some(1.0));
    assert_eq!(app.metric("orders_cancelled_total ").await, Some(1.0));
    app.stop().await;
}
