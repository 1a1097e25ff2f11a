//! `GET /orders/{id}` and `GET /orders`: not found, bad ids, conditional reads, pages, filters,
//! sort order and query errors.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{
    TestApps, assert_problem, error_fields, header, id_of, ids, redactions, scrub, spawn_apps,
};

/// An id that no order has.
const UNKNOWN: &str = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";

/// Places `n` one-line orders of `product` for `token` (quantities 1..=n); returns their ids.
async fn place_many(app: &TestApps, token: &str, product: &str, n: u32) -> Vec<String> {
    let mut out = Vec::new();
    for q in 1..=n {
        out.push(id_of(&app.place_ok(token, &[(product, q)]).await));
    }
    out
}

/// `GET /orders/{id}` answers 200 with the order and its ETag.
#[actix_web::test]
async fn get_returns_the_order_with_its_etag() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "2.50").await;
    let placed = app.place_ok(&app.alice, &[(&tea, 2)]).await;

    // Act
    let res = app
        .get(&app.alice, &format!("/orders/{}", id_of(&placed)))
        .await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_eq!(
        header(&res, "etag").as_deref(),
        Some("\"2\""),
        "placed (1), then its stock confirmed (2)"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, placed);
    assert_eq!(body["stock"], "confirmed");
    redactions().bind(|| insta::assert_json_snapshot!("order", body));
    app.stop().await;
}

/// An unknown id answers 404 not-found naming it.
#[actix_web::test]
async fn unknown_order_is_not_found() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let res = app.get(&app.alice, &format!("/orders/{UNKNOWN}")).await;

    // Assert
    let problem = assert_problem(res, 404, "not-found").await;
    assert!(
        problem["detail"].as_str().unwrap().contains(UNKNOWN),
        "{problem}"
    );
    insta::assert_json_snapshot!("problem_not_found", scrub(&problem, &[(UNKNOWN, "[id]")]));
    app.stop().await;
}

/// A path id that is not a UUID answers 400 bad-request on GET, PATCH and DELETE.
#[actix_web::test]
async fn malformed_id_is_bad_request() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let get = app.get(&app.alice, "/orders/not-a-uuid").await;
    let patch = app
        .patch(
            &app.alice,
            "not-a-uuid",
            &json!({"status": "cancelled"}),
            None,
        )
        .await;
    let delete = app.delete(&app.alice, "not-a-uuid").await;

    // Assert
    let problem = assert_problem(get, 400, "bad-request").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("not-a-uuid"),
        "{problem}"
    );
    assert_problem(patch, 400, "bad-request").await;
    assert_problem(delete, 400, "bad-request").await;
    app.stop().await;
}

/// `If-None-Match` with the current ETag answers 304 with no body; with an older one, 200.
#[actix_web::test]
async fn if_none_match_answers_not_modified() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let path = format!("/orders/{id}");
    let changed = app
        .patch_ok(
            &app.alice,
            &id,
            &json!({"items": [{"product_id": tea, "quantity": 2}]}),
        )
        .await;
    // Placed, confirmed, new lines, their reservations settled.
    assert_eq!(changed["version"], 4);

    // Act
    let current = app
        .request(Method::GET, &path, Some(&app.alice))
        .header("If-None-Match", "\"4\"")
        .send()
        .await
        .unwrap();
    let stale = app
        .request(Method::GET, &path, Some(&app.alice))
        .header("If-None-Match", "\"1\"")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(current.status(), 304);
    assert_eq!(header(&current, "etag").as_deref(), Some("\"4\""));
    assert!(current.bytes().await.unwrap().is_empty());
    assert_eq!(stale.status(), 200);
    assert_eq!(stale.json::<Value>().await.unwrap()["version"], 4);
    app.stop().await;
}

/// Pages of `limit` follow each other through `next` (and `next_cursor`) in creation order,
/// without gaps or repeats; the last page has neither.
#[actix_web::test]
async fn list_is_paginated() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let placed = place_many(&app, &app.alice, &tea, 5).await;

    // Act
    let first = app.get_json(&app.alice, "/orders?limit=2").await;
    let second = app
        .get_json(&app.alice, first["next"].as_str().unwrap())
        .await;
    let third = app
        .get_json(
            &app.alice,
            &format!(
                "/orders?limit=2&cursor={}",
                second["next_cursor"].as_str().unwrap()
            ),
        )
        .await;

    // Assert
    let page = |p: &Value| ids(p["items"].as_array().unwrap());
    assert_eq!(page(&first), placed[0..2]);
    assert_eq!(page(&second), placed[2..4]);
    assert_eq!(page(&third), placed[4..5]);
    assert!(
        third.get("next").is_none() && third.get("next_cursor").is_none(),
        "{third}"
    );
    assert!(
        first["next"].as_str().unwrap().starts_with("/orders?"),
        "{first}"
    );
    redactions().bind(|| insta::assert_json_snapshot!("list_page", first));
    app.stop().await;
}

/// `order=desc` lists newest first, and its `next` link keeps the order.
#[actix_web::test]
async fn list_sorts_descending() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let mut placed = place_many(&app, &app.alice, &tea, 3).await;
    placed.reverse();

    // Act
    let first = app.get_json(&app.alice, "/orders?order=desc&limit=2").await;
    let second = app
        .get_json(&app.alice, first["next"].as_str().unwrap())
        .await;

    // Assert
    let page = |p: &Value| ids(p["items"].as_array().unwrap());
    assert_eq!(page(&first), placed[0..2]);
    assert_eq!(page(&second), placed[2..3]);
    app.stop().await;
}

/// `status=` lists only orders in that status, and its pages keep the filter.
#[actix_web::test]
async fn list_filters_by_status() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let placed = place_many(&app, &app.alice, &tea, 4).await;
    for id in [&placed[0], &placed[2], &placed[3]] {
        app.patch_ok(&app.alice, id, &json!({"status": "cancelled"}))
            .await;
    }
    app.patch_ok(&app.alice, &placed[1], &json!({"status": "fulfilled"}))
        .await;

    // Act
    let cancelled = app
        .get_json(&app.alice, "/orders?status=cancelled&limit=2")
        .await;
    let cancelled_next = app
        .get_json(&app.alice, cancelled["next"].as_str().unwrap())
        .await;
    let fulfilled = app.get_json(&app.alice, "/orders?status=fulfilled").await;
    let placed_now = app.get_json(&app.alice, "/orders?status=placed").await;
    let on_hold = app.get_json(&app.alice, "/orders?status=on_hold").await;

    // Assert
    let page = |p: &Value| ids(p["items"].as_array().unwrap());
    assert_eq!(page(&cancelled), [placed[0].clone(), placed[2].clone()]);
    assert_eq!(page(&cancelled_next), [placed[3].clone()]);
    assert_eq!(page(&fulfilled), [placed[1].clone()]);
    assert!(page(&placed_now).is_empty());
    assert!(page(&on_hold).is_empty());
    app.stop().await;
}

/// `product_id=` lists only orders containing that product (in any line), alone or with
/// `status=`, for a user and for the admin.
#[actix_web::test]
async fn list_filters_by_product() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let cup = app.product("Cup", "2.00").await;
    let tea_only = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let cup_only = id_of(&app.place_ok(&app.alice, &[(&cup, 1)]).await);
    let both = id_of(&app.place_ok(&app.alice, &[(&cup, 1), (&tea, 1)]).await);
    let bobs_cup = id_of(&app.place_ok(&app.bob, &[(&cup, 3)]).await);
    app.patch_ok(&app.alice, &both, &json!({"status": "fulfilled"}))
        .await;

    // Act
    let alices_cups = app
        .get_json(&app.alice, &format!("/orders?product_id={cup}"))
        .await;
    let alices_teas = app
        .get_json(&app.alice, &format!("/orders?product_id={tea}"))
        .await;
    let fulfilled_cups = app
        .get_json(
            &app.alice,
            &format!("/orders?product_id={cup}&status=fulfilled"),
        )
        .await;
    let all_cups = app
        .get_json(&app.admin, &format!("/orders?product_id={cup}"))
        .await;
    let placed_cups = app
        .get_json(
            &app.admin,
            &format!("/orders?product_id={cup}&status=placed&order=desc"),
        )
        .await;

    // Assert
    let page = |p: &Value| ids(p["items"].as_array().unwrap());
    assert_eq!(page(&alices_cups), [cup_only.clone(), both.clone()]);
    assert_eq!(page(&alices_teas), [tea_only, both.clone()]);
    assert_eq!(page(&fulfilled_cups), std::slice::from_ref(&both));
    assert_eq!(page(&all_cups), [cup_only.clone(), both, bobs_cup.clone()]);
    assert_eq!(page(&placed_cups), [bobs_cup, cup_only]);
    let first = app
        .get_json(&app.admin, &format!("/orders?product_id={cup}&limit=1"))
        .await;
    let second = app
        .get_json(&app.admin, first["next"].as_str().unwrap())
        .await;
    assert_eq!(page(&first), page(&all_cups)[0..1]);
    assert_eq!(
        page(&second),
        page(&all_cups)[1..2],
        "the next link keeps the filter"
    );
    app.stop().await;
}

/// List query errors answer 400: an unknown parameter, limit 0, 101 or not a number, an unknown
/// status, a product id that is not a UUID, a bad sort order and a malformed cursor.
#[actix_web::test]
async fn bad_list_queries_are_bad_requests() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    place_many(&app, &app.alice, &tea, 2).await;

    for (query, param) in [
        ("colour=red", "colour"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("status=shipped", "status"),
        ("product_id=tea", "product_id"),
        ("order=sideways", "order"),
        ("cursor=zz", "cursor"),
        ("status=%FF", "status"),
    ] {
        // Act
        let res = app.get(&app.alice, &format!("/orders?{query}")).await;

        // Assert: the same problem shape as body errors, naming the parameter.
        let problem = assert_problem(res, 400, "bad-request").await;
        assert_eq!(error_fields(&problem), [param], "{query}: {problem}");
    }
    app.stop().await;
}
