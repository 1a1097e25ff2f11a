//! The basic round trip, as a first check that the app is wired up.

use reqwest::Method;
use serde_json::json;

use crate::helpers::spawn_app;

/// Create, read, update, list and archive one product through the real app.
#[actix_web::test]
async fn crud_round_trip() {
    let app = spawn_app().await;
    let res = app
        .create(&json!({"name": "Green tea", "price": "4.20"}))
        .await;
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(res.headers()["etag"], "\"1\"");
    let created: serde_json::Value = res.json().await.unwrap();
    assert_eq!(created["name"], "Green tea");
    assert_eq!(created["price"], "4.20");
    assert_eq!(
        location,
        format!("/products/{}", created["id"].as_str().unwrap())
    );

    let got = app.get(&location).await;
    assert_eq!(got.status(), 200);

    let patched = app
        .request(Method::PATCH, &location, Some(&app.writer))
        .header("If-Match", "\"1\"")
        .json(&json!({"price": "5"}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert_eq!(patched.headers()["etag"], "\"2\"");

    let list: serde_json::Value = app.get("/products").await.json().await.unwrap();
    assert_eq!(list["items"][0]["price"], "5.00");

    let deleted = app
        .request(Method::DELETE, &location, Some(&app.writer))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(app.get(&location).await.status(), 410);
    app.stop().await;
}
