//! Operations: health, readiness, metrics, the OpenAPI document, Swagger UI; none needs a
//! token.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, header, spawn_apps};

/// `GET /healthz` answers 200 `{"status":"ok"}` without a token.
#[actix_web::test]
async fn healthz_is_ok() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let res = app.anonymous("/healthz").await;

    // Assert
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    app.stop().await;
}

/// `GET /readyz` answers 200 with the checks store, feed_cursor and products all "ok".
#[actix_web::test]
async fn readyz_checks_store_cursor_and_products() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let res = app.anonymous("/readyz").await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"status": "ready", "checks": {"store": "ok", "feed_cursor": "ok", "products": "ok"}})
    );
    insta::assert_json_snapshot!("readyz", body);
    app.stop().await;
}

/// `/metrics` has the products client's call counters (a reserve and a round's commit counted as ok),
/// the settlements, the feed's last handled sequence and its lag in seconds.
#[actix_web::test]
async fn metrics_show_the_products_client_and_the_feed() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    app.place_ok(&app.alice, &[(&tea, 1)]).await;
    // Products' events: the product, then the reservation with the product's counters, then
    // the commit with them again.
    app.wait_for_feed(5).await;

    // Act
    let res = app.anonymous("/metrics").await;

    // Assert
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for call in ["reserve", "commit_many"] {
        let calls = text
            .lines()
            .find(|l| {
                l.starts_with("products_client_requests_total{")
                    && l.contains(&format!("call=\"{call}\""))
                    && l.contains("outcome=\"ok\"")
            })
            .unwrap_or_else(|| panic!("no {call} counter in\n{text}"));
        assert!(calls.ends_with(" 1"), "{calls}");
    }
    let settled = text
        .lines()
        .find(|l| l.starts_with("orders_settlements_total{outcome=\"committed\"}"))
        .unwrap_or_else(|| panic!("no settlement counter in\n{text}"));
    assert!(settled.ends_with(" 1"), "{settled}");
    let last_seq = text
        .lines()
        .find_map(|l| l.strip_prefix("products_feed_last_seq "))
        .unwrap_or_else(|| panic!("no products_feed_last_seq in\n{text}"));
    assert_eq!(last_seq, "5");
    // The feed lag is exported in seconds, the base unit.
    let lag = text
        .lines()
        .find_map(|l| l.strip_prefix("products_feed_lag_seconds "))
        .unwrap_or_else(|| panic!("no products_feed_lag_seconds in\n{text}"));
    let lag: f64 = lag.parse().unwrap_or_else(|_| panic!("{lag}"));
    assert!((0.0..60.0).contains(&lag), "{lag}");
    assert!(!text.contains("products_feed_lag_milliseconds"), "{text}");
    app.stop().await;
}

/// `/openapi.json` describes every orders path and operation, each secured by the `bearer`
/// scheme.
#[actix_web::test]
async fn openapi_document_describes_the_api() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let res = app.anonymous("/openapi.json").await;

    // Assert
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/orders", "post"),
        ("/orders", "get"),
        ("/orders/{id}", "get"),
        ("/orders/{id}", "patch"),
        ("/orders/{id}", "delete"),
        ("/orders/events", "get"),
    ] {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert_eq!(
            operation["security"],
            json!([{"bearer": []}]),
            "{method} {path}"
        );
    }
    // Every schema a path or component refers to is in the document (generators refuse it
    // otherwise), and it says where the service is.
    assert_eq!(test_kit::openapi::dangling_refs(&doc), Vec::<String>::new());
    assert_eq!(
        test_kit::openapi::contract_violations(&doc),
        Vec::<String>::new()
    );
    assert!(doc["servers"][0]["url"].is_string(), "{}", doc["servers"]);
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    app.stop().await;
}

/// `/docs/` serves the Swagger UI page (HTML) pointing at `/openapi.json`.
#[actix_web::test]
async fn swagger_ui_is_served() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let page = app.anonymous("/docs/").await;
    let initializer = app.anonymous("/docs/swagger-initializer.js").await;

    // Assert
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("swagger-ui"));
    assert_eq!(initializer.status(), 200);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
    app.stop().await;
}

/// A method a route does not have answers 405 with `Allow`; an unknown route answers 404.
#[actix_web::test]
async fn wrong_methods_and_unknown_routes_are_problems() {
    // Arrange
    let app = spawn_apps().await;
    let id = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";

    for (method, path, allow) in [
        (Method::PUT, "/orders".to_owned(), "GET, POST"),
        (Method::PUT, format!("/orders/{id}"), "GET, PATCH, DELETE"),
        (Method::POST, "/orders/events".to_owned(), "GET"),
    ] {
        // Act
        let res = app
            .request(method.clone(), &path, Some(&app.alice))
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(
            header(&res, "allow").as_deref(),
            Some(allow),
            "{method} {path}"
        );
        let problem = assert_problem(res, 405, "method-not-allowed").await;
        if method == Method::PUT && path == "/orders" {
            insta::assert_json_snapshot!("problem_method_not_allowed", problem);
        }
    }
    let unknown = app.anonymous("/nope").await;
    assert_problem(unknown, 404, "not-found").await;
    app.stop().await;
}
