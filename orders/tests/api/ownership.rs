//! Who sees and changes which orders: owners, another user, the admin, tokens without orders
//! rights, and no token at all.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApps, assert_problem, header, id_of, ids, spawn_apps};

/// Alice's and Bob's orders of one product; returns (product, alice's order, bob's order).
async fn two_users(app: &TestApps) -> (String, Value, Value) {
    let tea = app.product("Tea", "1.00").await;
    let alices = app.place_ok(&app.alice, &[(&tea, 1)]).await;
    let bobs = app.place_ok(&app.bob, &[(&tea, 2)]).await;
    (tea, alices, bobs)
}

/// Alice cannot read, change or delete Bob's order: each answers 404 (not 403, so ids do not
/// leak), with the same problem as an id that does not exist, and the order is unchanged.
#[actix_web::test]
async fn another_users_order_is_not_found() {
    // Arrange
    let app = spawn_apps().await;
    let (_, _, bobs) = two_users(&app).await;
    let id = id_of(&bobs);

    // Act
    let get = app.get(&app.alice, &format!("/orders/{id}")).await;
    let patch = app
        .patch(&app.alice, &id, &json!({"status": "cancelled"}), None)
        .await;
    let delete = app.delete(&app.alice, &id).await;

    // Assert
    for res in [get, patch, delete] {
        let problem = assert_problem(res, 404, "not-found").await;
        assert_eq!(
            problem["detail"],
            format!("{id} does not exist"),
            "the same wording as a missing order"
        );
    }
    assert_eq!(app.order(&app.bob, &id).await, bobs);
    app.stop().await;
}

/// Lists hold only the caller's own orders; the admin's list holds everybody's.
#[actix_web::test]
async fn lists_hold_only_own_orders_except_for_the_admin() {
    // Arrange
    let app = spawn_apps().await;
    let (tea, alices, bobs) = two_users(&app).await;
    let alices_second = app.place_ok(&app.alice, &[(&tea, 3)]).await;

    // Act
    let alice_sees = app.all(&app.alice).await;
    let bob_sees = app.all(&app.bob).await;
    let admin_sees = app.all(&app.admin).await;

    // Assert
    assert_eq!(ids(&alice_sees), [id_of(&alices), id_of(&alices_second)]);
    assert_eq!(ids(&bob_sees), [id_of(&bobs)]);
    assert_eq!(
        ids(&admin_sees),
        [id_of(&alices), id_of(&bobs), id_of(&alices_second)]
    );
    app.stop().await;
}

/// The admin reads, changes and deletes any user's order; the owner stays the user.
#[actix_web::test]
async fn admin_sees_and_changes_all_orders() {
    // Arrange
    let app = spawn_apps().await;
    let (tea, alices, bobs) = two_users(&app).await;

    // Act
    let read = app.order(&app.admin, &id_of(&alices)).await;
    let changed = app
        .patch_ok(
            &app.admin,
            &id_of(&alices),
            &json!({"items": [{"product_id": tea, "quantity": 5}]}),
        )
        .await;
    let deleted = app.delete(&app.admin, &id_of(&bobs)).await;

    // Assert
    assert_eq!(read, alices);
    assert_eq!(changed["owner"], "alice");
    assert_eq!(changed["items"][0]["quantity"], 5);
    assert_eq!(app.order(&app.alice, &id_of(&alices)).await, changed);
    assert_eq!(deleted.status(), 204);
    assert_problem(
        app.get(&app.bob, &format!("/orders/{}", id_of(&bobs)))
            .await,
        410,
        "gone",
    )
    .await;
    app.stop().await;
}

/// A valid token with only products rights answers 403 forbidden on every orders endpoint.
#[actix_web::test]
async fn products_rights_are_forbidden_on_orders() {
    // Arrange
    let app = spawn_apps().await;
    let (tea, alices, _) = two_users(&app).await;
    let id = id_of(&alices);
    let token = app.products_writer.clone();

    // Act
    let responses: Vec<Response> = vec![
        app.place(&token, &json!({"product_id": tea, "quantity": 1}))
            .await,
        app.get(&token, "/orders").await,
        app.get(&token, &format!("/orders/{id}")).await,
        app.patch(&token, &id, &json!({"status": "cancelled"}), None)
            .await,
        app.delete(&token, &id).await,
        app.get(&token, "/orders/events?after=0").await,
    ];

    // Assert
    let mut first = None;
    for res in responses {
        let problem = assert_problem(res, 403, "forbidden").await;
        first.get_or_insert(problem);
    }
    insta::assert_json_snapshot!("problem_forbidden", first.unwrap());
    assert_eq!(app.count().await, 2);
    assert_eq!(app.order(&app.alice, &id).await, alices);
    app.stop().await;
}

/// A read-only orders token may read but not place: 403 on POST.
#[actix_web::test]
async fn read_only_token_cannot_write() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let reader = app.token("alice", &["orders:read"]);
    let alices = app.place_ok(&app.alice, &[(&tea, 1)]).await;

    // Act
    let read = app
        .get(&reader, &format!("/orders/{}", id_of(&alices)))
        .await;
    let write = app
        .place(&reader, &json!({"product_id": tea, "quantity": 1}))
        .await;

    // Assert
    assert_eq!(read.status(), 200);
    assert_problem(write, 403, "forbidden").await;
    assert_eq!(app.count().await, 1);
    app.stop().await;
}

/// Without a token (or with a garbled one) every orders endpoint answers 401 with
/// `WWW-Authenticate: Bearer`.
#[actix_web::test]
async fn missing_or_garbled_token_is_unauthorized() {
    // Arrange
    let app = spawn_apps().await;
    let (tea, alices, _) = two_users(&app).await;
    let id = id_of(&alices);
    let order_path = format!("/orders/{id}");
    let body = json!({"product_id": tea, "quantity": 1});

    // Act
    let responses = vec![
        app.request(Method::POST, "/orders", None)
            .json(&body)
            .send()
            .await
            .unwrap(),
        app.anonymous("/orders").await,
        app.anonymous(&order_path).await,
        app.request(Method::PATCH, &order_path, None)
            .json(&json!({"status": "cancelled"}))
            .send()
            .await
            .unwrap(),
        app.request(Method::DELETE, &order_path, None)
            .send()
            .await
            .unwrap(),
        app.anonymous("/orders/events?after=0").await,
        app.request(Method::GET, "/orders", Some("not-a-token"))
            .send()
            .await
            .unwrap(),
    ];

    // Assert
    let mut first = None;
    for res in responses {
        assert_eq!(header(&res, "www-authenticate").as_deref(), Some("Bearer"));
        let problem = assert_problem(res, 401, "unauthorized").await;
        first.get_or_insert(problem);
    }
    insta::assert_json_snapshot!("problem_unauthorized", first.unwrap());
    assert_eq!(app.count().await, 2);
    app.stop().await;
}
