//! Orders take stock through reservations at products: all lines or none, never more than
//! there is, given back when an order is cancelled, deleted or changed.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    FakeProducts, TestApps, assert_problem, http_json, id_of, redactions, reservation_of, scrub,
    spawn_apps, spawn_orders_with_products,
};

fn units(n: u64) -> Value {
    json!(n)
}

/// Placing takes the units at products (committed as a sale once products confirms); the
/// order's reservation is named by its id.
#[actix_web::test]
async fn placing_takes_the_stock() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.stocked("Tea", "2.00", 10).await;

    // Act
    let order = app.place_ok(&app.alice, &[(&tea, 3)]).await;

    // Assert
    assert_eq!(order["stock"], "confirmed");
    assert_eq!(order["total"], "6.00");
    assert_eq!(app.stock_of(&tea).await, (units(7), units(0), units(7)));
    let reservation = app.reservation(&id_of(&order)).await;
    assert_eq!(reservation["state"], "committed");
    app.stop().await;
}

/// An order of more than is available is refused with 409 out-of-stock naming each short line
/// (requested and available), and nothing is stored or held; lines that fit are not held either.
#[actix_web::test]
async fn out_of_stock_is_refused_naming_the_short_lines() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.stocked("Tea", "1.00", 2).await;
    let cup = app.stocked("Cup", "3.00", 5).await;
    let pot = app.product("Pot", "9.00").await;

    // Act
    let res = app
        .place(
            &app.alice,
            &json!({"items": [
                {"product_id": tea, "quantity": 3},
                {"product_id": cup, "quantity": 5},
                {"product_id": pot, "quantity": 100},
            ]}),
        )
        .await;

    // Assert
    let problem = assert_problem(res, 409, "out-of-stock").await;
    assert_eq!(
        problem["lines"],
        json!([{"product_id": tea, "requested": 3, "available": 2}])
    );
    insta::assert_json_snapshot!(
        "problem_out_of_stock",
        scrub(&problem, &[(&tea, "[product_id]")])
    );
    assert_eq!(app.count().await, 0);
    assert_eq!(app.stock_of(&tea).await, (units(2), units(0), units(2)));
    assert_eq!(app.stock_of(&cup).await, (units(5), units(0), units(5)));
    app.stop().await;
}

/// Cancelling gives the units back; so does deleting an open order. A fulfilled order's units
/// stay sold when it is deleted.
#[actix_web::test]
async fn cancelling_or_deleting_an_open_order_gives_the_stock_back() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.stocked("Tea", "1.00", 10).await;
    let cancelled = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let deleted = id_of(&app.place_ok(&app.alice, &[(&tea, 2)]).await);
    let fulfilled = id_of(&app.place_ok(&app.alice, &[(&tea, 4)]).await);
    app.patch_ok(&app.alice, &fulfilled, &json!({"status": "fulfilled"}))
        .await;
    assert_eq!(app.stock_of(&tea).await.0, units(3));

    // Act
    let after_cancel = app
        .patch_ok(&app.alice, &cancelled, &json!({"status": "cancelled"}))
        .await;
    for id in [&deleted, &fulfilled] {
        assert_eq!(app.delete(&app.alice, id).await.status(), 204);
    }

    // Assert
    assert_eq!(after_cancel["stock"], "released");
    let released =
        test_kit::eventually(|| async { app.reservation(&deleted).await["state"] == "released" })
            .await;
    assert!(released, "the deleted order's reservation was not released");
    assert_eq!(app.stock_of(&tea).await, (units(6), units(0), units(6)));
    assert_eq!(app.reservation(&cancelled).await["state"], "released");
    assert_eq!(app.reservation(&fulfilled).await["state"], "committed");
    for id in [&deleted, &fulfilled] {
        assert_problem(
            app.get(&app.alice, &format!("/orders/{id}")).await,
            410,
            "gone",
        )
        .await;
    }
    app.stop().await;
}

/// Changing the lines reserves only the units they need beyond what the order holds (so the
/// last units of a product can be added to an order that holds the others); fewer units give
/// the difference back; lines that do not fit are refused with 409 out-of-stock naming the
/// missing units, and the order and the stock stay as they were.
#[actix_web::test]
async fn changing_the_lines_reserves_only_the_difference_or_changes_nothing() {
    // Arrange: 4 of 5 teas ordered, one cup in stock.
    let app = spawn_apps().await;
    let tea = app.stocked("Tea", "1.00", 5).await;
    let cup = app.stocked("Cup", "2.00", 1).await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 4)]).await);

    // Act
    let more = app
        .patch_ok(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": tea, "quantity": 5}, {"product_id": cup, "quantity": 1}]}),
        )
        .await;
    let after_more = (app.stock_of(&tea).await, app.stock_of(&cup).await);
    let too_many = app
        .patch(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": tea, "quantity": 5}, {"product_id": cup, "quantity": 2}]}),
            None,
        )
        .await;
    let unchanged = app.order(&app.alice, &id).await;
    let fewer = app
        .patch_ok(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": tea, "quantity": 1}]}),
        )
        .await;

    // Assert
    assert_eq!(more["total"], "7.00");
    assert_eq!(more["stock"], "confirmed");
    assert_eq!(
        after_more.0,
        (units(0), units(0), units(0)),
        "the fifth tea taken"
    );
    assert_eq!(after_more.1, (units(0), units(0), units(0)));
    let problem = assert_problem(too_many, 409, "out-of-stock").await;
    assert_eq!(
        problem["lines"],
        json!([{"product_id": cup, "requested": 1, "available": 0}]),
        "only the missing cup is asked for"
    );
    assert_eq!(unchanged, more);
    assert_eq!(fewer["total"], "1.00");
    assert_eq!(fewer["stock"], "confirmed");
    assert_eq!(app.stock_of(&tea).await, (units(4), units(0), units(4)));
    assert_eq!(app.stock_of(&cup).await, (units(1), units(0), units(1)));
    let first = app.reservation(&id).await;
    assert_eq!(first["state"], "committed");
    assert_eq!(
        first["lines"][0]["quantity"], 1,
        "shrunk to one tea: {first}"
    );
    app.stop().await;
}

/// Places `n` orders of `lines` at once as alice; returns the statuses and the problem types.
async fn place_at_once(app: &TestApps, n: usize, lines: Vec<Vec<(String, u32)>>) -> Vec<Value> {
    let mut tasks = Vec::new();
    for i in 0..n {
        let items: Vec<Value> = lines[i % lines.len()]
            .iter()
            .map(|(id, q)| json!({"product_id": id, "quantity": q}))
            .collect();
        let request = app
            .request(Method::POST, "/orders", Some(&app.alice))
            .json(&json!({ "items": items }));
        tasks.push(actix_web::rt::spawn(async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            json!({"status": status, "type": body.get("type"), "body": body})
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

fn count(answers: &[Value], status: u16) -> usize {
    answers.iter().filter(|a| a["status"] == status).count()
}

/// Stock 10 and 64 concurrent orders of one unit: exactly ten are placed, 54 are refused as out
/// of stock, and nothing is left available or held.
#[actix_web::test]
async fn sixty_four_buyers_of_the_last_ten_units() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.stocked("Tea", "1.00", 10).await;

    // Act
    let answers = place_at_once(&app, 64, vec![vec![(tea.clone(), 1)]]).await;

    // Assert
    assert_eq!(count(&answers, 201), 10, "{answers:?}");
    assert_eq!(count(&answers, 409), 54, "{answers:?}");
    assert!(
        answers
            .iter()
            .filter(|a| a["status"] == 409)
            .all(|a| a["type"] == "urn:shop:problem:out-of-stock")
    );
    assert_eq!(app.count().await, 10);
    for order in app.all(&app.admin).await {
        app.settled(&id_of(&order)).await;
    }
    assert_eq!(app.stock_of(&tea).await, (units(0), units(0), units(0)));
    app.stop().await;
}

/// Orders of several lines over overlapping products, all at once: no line is ever half-held,
/// so every product's stock falls by exactly the units of the orders placed, never below zero.
#[actix_web::test]
async fn overlapping_multi_line_orders_never_half_hold() {
    // Arrange
    let app = spawn_apps().await;
    let a = app.stocked("A", "1.00", 7).await;
    let b = app.stocked("B", "1.00", 9).await;
    let c = app.stocked("C", "1.00", 5).await;
    let shapes = vec![
        vec![(a.clone(), 1), (b.clone(), 2)],
        vec![(b.clone(), 1), (c.clone(), 1)],
        vec![(a.clone(), 2), (c.clone(), 1), (b.clone(), 1)],
    ];

    // Act
    let answers = place_at_once(&app, 48, shapes).await;

    // Assert
    assert_eq!(
        count(&answers, 201) + count(&answers, 409),
        48,
        "{answers:?}"
    );
    let orders = app.all(&app.admin).await;
    assert_eq!(orders.len(), count(&answers, 201));
    let mut sold = std::collections::HashMap::<String, u64>::new();
    for order in &orders {
        app.settled(&id_of(order)).await;
        for line in order["items"].as_array().unwrap() {
            *sold
                .entry(line["product_id"].as_str().unwrap().to_owned())
                .or_default() += line["quantity"].as_u64().unwrap();
        }
    }
    for (id, start) in [(&a, 7), (&b, 9), (&c, 5)] {
        let left = start - sold.get(id.as_str()).copied().unwrap_or(0);
        assert_eq!(app.stock_of(id).await, (units(left), units(0), units(left)));
    }
    // Something ran out: refusals happened, and one more of each shape is refused now.
    assert!(count(&answers, 409) > 0, "{answers:?}");
    app.stop().await;
}

/// A commit products refuses (the reservation expired first) puts the order on hold with its
/// stock `expired`; placing it again reserves the lines anew.
#[actix_web::test]
async fn an_expired_reservation_holds_the_order_until_it_is_placed_again() {
    // Arrange: a products whose first reservation lapses before it is committed.
    let tea = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";
    let commits = std::sync::atomic::AtomicUsize::new(0);
    let products = FakeProducts::start(move |head| {
        let expired = json!({"type": "urn:shop:problem:conflict", "title": "Conflict",
            "status": 409, "detail": "reservation was expired: it can no longer be committed"});
        if head.starts_with("PUT /reservations/") {
            Some(http_json("200 OK", &reservation_of(head, &[(tea, 1)])))
        } else if head.starts_with("POST /reservations/commit ") {
            // The batch answers for none of them: the settler then commits one by one.
            let none = json!({"committed": [], "ended": [], "unknown": []});
            Some(http_json("200 OK", &none))
        } else if head.starts_with("POST /reservations/") && head.contains("/commit ") {
            let first = commits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
            let id = head
                .trim_start_matches("POST /reservations/")
                .split('/')
                .next()
                .unwrap();
            let mut held = reservation_of(&format!("PUT /reservations/{id} "), &[(tea, 1)]);
            held["state"] = "committed".into();
            Some(if first {
                http_json("409 Conflict", &expired)
            } else {
                http_json("200 OK", &held)
            })
        } else {
            None
        }
    });
    let app = spawn_orders_with_products(&products.url, 2000).await;
    let placed = app
        .place(&app.alice, &json!({"product_id": tea, "quantity": 1}))
        .await;
    assert_eq!(placed.status(), 201);
    let id = id_of(&placed.json().await.unwrap());

    // Act
    let lapsed = app.settled(&id).await;
    let again = app
        .patch_ok(&app.alice, &id, &json!({"status": "placed"}))
        .await;

    // Assert
    assert_eq!(
        (&lapsed["status"], &lapsed["stock"]),
        (&json!("on_hold"), &json!("expired"))
    );
    assert!(
        lapsed["hold_reason"].as_str().unwrap().contains("expired"),
        "{lapsed}"
    );
    redactions().bind(|| insta::assert_json_snapshot!("order_expired", lapsed));
    assert_eq!(
        (&again["status"], &again["stock"]),
        (&json!("placed"), &json!("confirmed"))
    );
    assert_eq!(products.requests("PUT /reservations/"), 2, "reserved anew");
    app.stop().await;
}
