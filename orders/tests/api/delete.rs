//! `DELETE /orders/{id}`: 204, then the order is gone (410) and out of lists.

use serde_json::json;

use crate::helpers::{assert_problem, id_of, scrub, spawn_apps};

/// DELETE answers 204 with no body; then GET, PATCH and a second DELETE answer 410 gone, and
/// the order is no longer listed.
#[actix_web::test]
async fn deleted_order_is_gone() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let kept = id_of(&app.place_ok(&app.alice, &[(&tea, 2)]).await);

    // Act
    let res = app.delete(&app.alice, &id).await;

    // Assert
    assert_eq!(res.status(), 204);
    assert!(res.bytes().await.unwrap().is_empty());
    let get = app.get(&app.alice, &format!("/orders/{id}")).await;
    let problem = assert_problem(get, 410, "gone").await;
    assert!(
        problem["detail"].as_str().unwrap().contains(&id),
        "{problem}"
    );
    insta::assert_json_snapshot!("problem_gone", scrub(&problem, &[(&id, "[id]")]));
    assert_problem(
        app.patch(&app.alice, &id, &json!({"status": "cancelled"}), None)
            .await,
        410,
        "gone",
    )
    .await;
    assert_problem(app.delete(&app.alice, &id).await, 410, "gone").await;
    let listed: Vec<String> = app.all(&app.admin).await.iter().map(id_of).collect();
    assert_eq!(listed, [kept]);
    app.stop().await;
}

/// Another user's deleted order is still 404 to alice, not 410: deletion does not reveal it.
#[actix_web::test]
async fn another_users_deleted_order_is_not_found() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let id = id_of(&app.place_ok(&app.bob, &[(&tea, 1)]).await);
    assert_eq!(app.delete(&app.bob, &id).await.status(), 204);

    // Act
    let get = app.get(&app.alice, &format!("/orders/{id}")).await;
    let delete = app.delete(&app.alice, &id).await;

    // Assert
    assert_problem(get, 404, "not-found").await;
    assert_problem(delete, 404, "not-found").await;
    app.stop().await;
}

/// DELETE with a stale `If-Match` answers 412 and keeps the order.
#[actix_web::test]
async fn stale_if_match_keeps_the_order() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let current = app
        .patch_ok(&app.alice, &id, &json!({"status": "fulfilled"}))
        .await;

    // Act
    let res = app
        .request(
            reqwest::Method::DELETE,
            &format!("/orders/{id}"),
            Some(&app.alice),
        )
        .header("If-Match", "\"1\"")
        .send()
        .await
        .unwrap();

    // Assert
    assert_problem(res, 412, "precondition-failed").await;
    assert_eq!(app.order(&app.alice, &id).await, current);
    app.stop().await;
}
