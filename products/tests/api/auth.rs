//! Who may call what: the token matrix on a read and a write endpoint, and the open endpoints.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use biscuit_auth::KeyPair;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use service_kit::auth::tokens::{self, Restriction, TokenSpec};

use crate::helpers::{TestApp, assert_problem, fresh_dir, spawn_app, spawn_in};

/// How a request is authenticated.
enum Auth<'a> {
    None,
    Header(&'a str),
    Bearer(&'a str),
}

async fn call(app: &TestApp, method: Method, path: &str, auth: &Auth<'_>) -> Response {
    let mut req = app.request(method.clone(), path, None);
    match auth {
        Auth::None => {}
        Auth::Header(value) => req = req.header("Authorization", *value),
        Auth::Bearer(token) => req = req.bearer_auth(token),
    }
    if method == Method::POST {
        req = req.json(&json!({"name": "Tea", "price": "1.00"}));
    }
    req.send().await.unwrap()
}

/// `GET /products` and `POST /products` with `auth`.
async fn read_and_write(app: &TestApp, auth: &Auth<'_>) -> (Response, Response) {
    (
        call(app, Method::GET, "/products", auth).await,
        call(app, Method::POST, "/products", auth).await,
    )
}

/// Asserts a 401 with `WWW-Authenticate: Bearer` and a detail containing `hint`.
async fn assert_unauthorized(res: Response, hint: &str) -> Value {
    assert_eq!(
        res.headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap()),
        Some("Bearer"),
        "401 from {}",
        res.url()
    );
    let problem = assert_problem(res, 401, "unauthorized").await;
    assert!(
        problem["detail"].as_str().unwrap().contains(hint),
        "expected {hint:?} in {problem}"
    );
    problem
}

fn mint(root: &KeyPair, user: &str, rights: &[&str], ttl: Duration) -> String {
    tokens::mint(
        root,
        &TokenSpec {
            user: user.into(),
            rights: rights.iter().map(|r| r.parse().unwrap()).collect(),
            admin: false,
            ttl: Some(ttl),
        },
    )
    .unwrap()
}

/// Without a token, reads and writes answer 401 with `WWW-Authenticate: Bearer`.
#[actix_web::test]
async fn missing_token_is_unauthorized() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (read, write) = read_and_write(&app, &Auth::None).await;

    // Assert
    let problem = assert_unauthorized(read, "missing bearer token").await;
    insta::assert_json_snapshot!("problem_unauthorized", problem);
    assert_unauthorized(write, "missing bearer token").await;
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// "Bearer garbage" and a header without "Bearer " answer 401 on reads and writes.
#[actix_web::test]
async fn malformed_tokens_are_unauthorized() {
    // Arrange
    let app = spawn_app().await;
    let token_scheme = format!("Token {}", app.writer);

    for header in [
        "Bearer garbage",
        token_scheme.as_str(),
        app.writer.as_str(),
        "Bearer ",
    ] {
        // Act
        let (read, write) = read_and_write(&app, &Auth::Header(header)).await;

        // Assert
        assert_unauthorized(read, "malformed token").await;
        assert_unauthorized(write, "malformed token").await;
    }
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A token signed by another root key answers 401 on reads and writes, even an admin one.
#[actix_web::test]
async fn forged_token_is_unauthorized() {
    // Arrange
    let app = spawn_app().await;
    let other = KeyPair::new();
    let forged = tokens::mint(
        &other,
        &TokenSpec {
            user: "mallory".into(),
            admin: true,
            ..TokenSpec::default()
        },
    )
    .unwrap();

    // Act
    let (read, write) = read_and_write(&app, &Auth::Bearer(&forged)).await;

    // Assert
    assert_unauthorized(read, "signature").await;
    assert_unauthorized(write, "signature").await;
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A token accepted while fresh answers 401 once expired (the verified-token cache still
/// honours expiry), on reads and writes.
#[actix_web::test]
async fn expired_token_is_unauthorized() {
    // Arrange
    let app = spawn_app().await;
    let token = mint(
        &app.root,
        "brief",
        &["products:read", "products:write"],
        Duration::from_secs(1),
    );
    let minted = SystemTime::now();
    let fresh = call(&app, Method::GET, "/products", &Auth::Bearer(&token)).await;
    assert_eq!(
        fresh.status(),
        200,
        "a fresh token works (and is now cached)"
    );
    // Token times have whole seconds: wait until `time` is past the expiry's second.
    let expiry_second = (minted + Duration::from_secs(1))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let past = UNIX_EPOCH + Duration::from_secs(expiry_second + 1) + Duration::from_millis(20);
    tokio::time::sleep(past.duration_since(SystemTime::now()).unwrap_or_default()).await;

    // Act
    let (read, write) = read_and_write(&app, &Auth::Bearer(&token)).await;

    // Assert
    assert_unauthorized(read, "expired").await;
    assert_unauthorized(write, "expired").await;
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A writer's token attenuated with a 1 s TTL block reads and writes at once, is refused with
/// 401 "expired" from the first second past its attenuated expiry (never accepted after it),
/// while the long-lived parent token keeps working.
#[actix_web::test]
async fn attenuated_short_ttl_expires_while_the_parent_works() {
    // Arrange
    let app = spawn_app().await;
    let minted = SystemTime::now();
    let short = tokens::attenuate(
        &app.writer,
        &Restriction {
            ttl: Some(Duration::from_secs(1)),
            ..Restriction::default()
        },
    )
    .unwrap();
    // Token times have whole seconds: the check is `time <= expiry second`, so the token is
    // refused from the start of the second after the one it expires in.
    let expiry_second = (minted + Duration::from_secs(1))
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let refused_from = UNIX_EPOCH + Duration::from_secs(expiry_second + 1);
    let (read, write) = read_and_write(&app, &Auth::Bearer(&short)).await;
    assert_eq!(read.status(), 200, "a fresh attenuated token reads");
    assert_eq!(write.status(), 201, "the attenuation keeps the write right");

    // Act: poll (no fixed sleep) until it is refused, with a deadline.
    let deadline = Instant::now() + crate::helpers::DEADLINE;
    let refused = loop {
        let sent = SystemTime::now();
        let res = call(&app, Method::GET, "/products", &Auth::Bearer(&short)).await;
        match res.status().as_u16() {
            200 => assert!(
                sent < refused_from,
                "accepted {:?} after its expiry",
                sent.duration_since(refused_from).unwrap()
            ),
            401 => {
                assert!(
                    SystemTime::now() >= refused_from,
                    "refused before its attenuated expiry"
                );
                break res;
            }
            other => panic!("unexpected {other}"),
        }
        assert!(Instant::now() < deadline, "still accepted at the deadline");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    // Assert
    assert_unauthorized(refused, "expired").await;
    let write = call(&app, Method::POST, "/products", &Auth::Bearer(&short)).await;
    assert_unauthorized(write, "expired").await;
    let (parent_read, parent_write) = read_and_write(&app, &Auth::Bearer(&app.writer)).await;
    assert_eq!(parent_read.status(), 200, "the parent token still reads");
    assert_eq!(parent_write.status(), 201, "the parent token still writes");
    assert_eq!(app.count().await, 2);
    app.stop().await;
}

/// A revoked token (by its revocation id) answers 401 on reads and writes; an attenuated
/// descendant is revoked with it, while other tokens still work.
#[actix_web::test]
async fn revoked_token_is_unauthorized() {
    // Arrange
    let (dir, root) = fresh_dir();
    let revoked = mint(
        &root,
        "leaked",
        &["products:read", "products:write"],
        Duration::from_secs(3600),
    );
    let child = tokens::attenuate(
        &revoked,
        &Restriction {
            read_only: true,
            ..Restriction::default()
        },
    )
    .unwrap();
    let ids = tokens::inspect(&revoked, None).unwrap().revocation_ids;
    let app = spawn_in(dir.path(), root, vec![ids[0].clone()]).await;

    // Act
    let (read, write) = read_and_write(&app, &Auth::Bearer(&revoked)).await;
    let child_read = call(&app, Method::GET, "/products", &Auth::Bearer(&child)).await;
    let other = call(&app, Method::GET, "/products", &Auth::Bearer(&app.reader)).await;

    // Assert
    assert_unauthorized(read, "revoked").await;
    assert_unauthorized(write, "revoked").await;
    assert_unauthorized(child_read, "revoked").await;
    assert_eq!(other.status(), 200);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A read-only attenuation of a writer's token reads (200) but cannot write (403).
#[actix_web::test]
async fn read_only_attenuation_forbids_writes() {
    // Arrange
    let app = spawn_app().await;
    let read_only = tokens::attenuate(
        &app.writer,
        &Restriction {
            read_only: true,
            ..Restriction::default()
        },
    )
    .unwrap();

    // Act
    let (read, write) = read_and_write(&app, &Auth::Bearer(&read_only)).await;

    // Assert
    assert_eq!(read.status(), 200);
    assert_eq!(write.headers().get("www-authenticate"), None);
    let problem = assert_problem(write, 403, "forbidden").await;
    insta::assert_json_snapshot!("problem_forbidden", problem);
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A reader's token (products:read) reads but cannot write.
#[actix_web::test]
async fn reader_cannot_write() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (read, write) = read_and_write(&app, &Auth::Bearer(&app.reader)).await;

    // Assert
    assert_eq!(read.status(), 200);
    assert_problem(write, 403, "forbidden").await;
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// Rights on orders grant nothing on products: 403 for reads and writes.
#[actix_web::test]
async fn orders_rights_do_not_reach_products() {
    // Arrange
    let app = spawn_app().await;
    let orders = app.token("bob", &["orders:read", "orders:write"]);
    let scoped = tokens::attenuate(
        &app.writer,
        &Restriction {
            resource: Some("orders".into()),
            ..Restriction::default()
        },
    )
    .unwrap();

    for token in [&orders, &scoped] {
        // Act
        let (read, write) = read_and_write(&app, &Auth::Bearer(token)).await;

        // Assert
        assert_problem(read, 403, "forbidden").await;
        assert_problem(write, 403, "forbidden").await;
    }
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// The admin token reads (200) and writes (201) without any explicit right; the writer too.
#[actix_web::test]
async fn admin_and_writer_are_allowed() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let (admin_read, admin_write) = read_and_write(&app, &Auth::Bearer(&app.admin)).await;
    let (writer_read, writer_write) = read_and_write(&app, &Auth::Bearer(&app.writer)).await;

    // Assert
    assert_eq!(admin_read.status(), 200);
    assert_eq!(admin_write.status(), 201);
    assert_eq!(writer_read.status(), 200);
    assert_eq!(writer_write.status(), 201);
    assert_eq!(app.count().await, 2);
    app.stop().await;
}

/// Every data endpoint refuses an anonymous caller with 401 before looking at the input.
#[actix_web::test]
async fn every_data_endpoint_needs_a_token() {
    // Arrange
    let app = spawn_app().await;
    let id = crate::helpers::id_of(&app.create_ok("Tea", "1.00").await);
    let item = format!("/products/{id}");

    for (method, path) in [
        (Method::GET, "/products"),
        (Method::POST, "/products"),
        (Method::GET, item.as_str()),
        (Method::GET, "/products/not-a-uuid"),
        (Method::PATCH, item.as_str()),
        (Method::DELETE, item.as_str()),
        (Method::POST, "/products/lookup"),
        (Method::GET, "/products/events?after=0"),
    ] {
        // Act
        let res = app
            .request(method.clone(), path, None)
            .json(&json!({"price": "9.99", "ids": [id]}))
            .send()
            .await
            .unwrap();

        // Assert
        assert_eq!(res.status(), 401, "{method} {path}");
    }
    assert_eq!(app.get_json(&item).await["version"], 1);
    app.stop().await;
}

/// Health, readiness, metrics, the OpenAPI document and the docs need no token.
#[actix_web::test]
async fn operational_endpoints_are_open() {
    // Arrange
    let app = spawn_app().await;

    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/metrics", 200),
        ("/openapi.json", 200),
        ("/docs", 308),
        ("/docs/", 200),
    ] {
        // Act
        let res = app.request(Method::GET, path, None).send().await.unwrap();

        // Assert
        assert_eq!(res.status(), status, "{path}");
    }
    app.stop().await;
}

/// A valid token whose holder appended blocks until it is huge is refused (401, before any
/// signature work), and so is one carrying too many facts; each refusal is counted by reason
/// in `/metrics`, while the parent token keeps working.
#[actix_web::test]
async fn oversized_and_overfull_tokens_are_unauthorized_and_counted() {
    // Arrange
    let app = spawn_app().await;
    let parent = biscuit_auth::Biscuit::from_base64(&app.writer, app.root.public()).unwrap();
    let mut huge = parent.clone();
    let mut block = biscuit_auth::builder::BlockBuilder::new();
    for i in 0..400i64 {
        block = block
            .fact(biscuit_auth::macros::fact!(
                "padding({i}, \"a long string of padding\")"
            ))
            .unwrap();
    }
    huge = huge.append(block).unwrap();
    let huge = huge.to_base64().unwrap();
    assert!(
        huge.len() > service_kit::auth::DEFAULT_MAX_TOKEN_BYTES,
        "{}",
        huge.len()
    );
    let mut block = biscuit_auth::builder::BlockBuilder::new();
    for i in 0..100i64 {
        block = block.fact(biscuit_auth::macros::fact!("n({i})")).unwrap();
    }
    let overfull = parent.append(block).unwrap().to_base64().unwrap();
    assert!(overfull.len() <= service_kit::auth::DEFAULT_MAX_TOKEN_BYTES);

    // Act
    let (read, write) = read_and_write(&app, &Auth::Bearer(&huge)).await;
    let (full_read, _) = read_and_write(&app, &Auth::Bearer(&overfull)).await;
    let parent_read = call(&app, Method::GET, "/products", &Auth::Bearer(&app.writer)).await;

    // Assert
    assert_unauthorized(read, "too large").await;
    assert_unauthorized(write, "too large").await;
    assert_unauthorized(full_read, "facts").await;
    assert_eq!(parent_read.status(), 200);
    assert_eq!(app.count().await, 0);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let too_large = metrics
        .lines()
        .find_map(|l| l.strip_prefix("auth_rejections_total{reason=\"too_large\"} "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(
        too_large.is_some_and(|n| n >= 4.0),
        "{too_large:?} in\n{metrics}"
    );
    app.stop().await;
}
