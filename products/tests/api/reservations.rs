//! Reservations: all or nothing across lines, every short line named, idempotent reserve,
//! commit and release, expiry by products itself, their own right, and no overselling under
//! concurrency.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::{Method, Response};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{
    TestApp, assert_problem, error_fields, fresh_dir, id_of, redactions, scrub, spawn_app,
    spawn_with,
};

/// orders' service token: read and reserve, nothing else.
fn service_token(app: &TestApp) -> String {
    app.token("orders-service", &["products:read", "products:reserve"])
}

async fn reserve(app: &TestApp, token: &str, id: Uuid, lines: &[(&str, u32)]) -> Response {
    let lines: Vec<Value> = lines
        .iter()
        .map(|(p, q)| json!({"product_id": p, "quantity": q}))
        .collect();
    app.request(Method::PUT, &format!("/reservations/{id}"), Some(token))
        .json(&json!({ "lines": lines }))
        .send()
        .await
        .unwrap()
}

async fn settle(app: &TestApp, token: &str, id: Uuid, action: &str) -> Response {
    app.request(
        Method::POST,
        &format!("/reservations/{id}/{action}"),
        Some(token),
    )
    .send()
    .await
    .unwrap()
}

async fn stocked(app: &TestApp, name: &str, stock: u64) -> String {
    let res = app
        .create(&json!({"name": name, "price": "2.50", "stock": stock}))
        .await;
    assert_eq!(res.status(), 201);
    id_of(&res.json().await.unwrap())
}

async fn counts(app: &TestApp, id: &str) -> (Value, Value, Value) {
    let p = app.get_json(&format!("/products/{id}")).await;
    (
        p["stock"].clone(),
        p["reserved"].clone(),
        p["available"].clone(),
    )
}

/// A reservation holds every line, answers names and unit prices, and the same call again
/// answers the same; commit sells the units, release after commit gives them back.
#[actix_web::test]
async fn reserve_commit_and_release() {
    // Arrange
    let app = spawn_app().await;
    let token = service_token(&app);
    let (tea, cup) = (
        stocked(&app, "Tea", 10).await,
        stocked(&app, "Cup", 5).await,
    );
    let free = id_of(&app.create_ok("Spoon", "0.50").await);
    let order = Uuid::new_v4();
    let lines = [(tea.as_str(), 3), (cup.as_str(), 5), (free.as_str(), 100)];

    // Act
    let held = reserve(&app, &token, order, &lines).await;
    let again = reserve(&app, &token, order, &lines).await;

    // Assert
    assert_eq!(held.status(), 201);
    let held: Value = held.json().await.unwrap();
    assert_eq!(held["state"], "held");
    assert_eq!(held["lines"][0]["name"], "Tea");
    assert_eq!(held["lines"][0]["unit_price"], "2.50");
    let body = scrub(
        &held,
        &[(&tea, "[tea]"), (&cup, "[cup]"), (&free, "[spoon]")],
    );
    redactions().bind(|| {
        insta::assert_json_snapshot!("reservation_held", body, {".expires_at" => "[expires_at]"})
    });
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), held);
    assert_eq!(counts(&app, &tea).await, (json!(10), json!(3), json!(7)));
    assert_eq!(counts(&app, &cup).await, (json!(5), json!(5), json!(0)));
    assert_eq!(
        counts(&app, &free).await,
        (Value::Null, json!(0), Value::Null)
    );

    let committed = settle(&app, &token, order, "commit").await;
    assert_eq!(committed.status(), 200);
    assert_eq!(
        committed.json::<Value>().await.unwrap()["state"],
        "committed"
    );
    assert_eq!(
        settle(&app, &token, order, "commit").await.status(),
        200,
        "idempotent"
    );
    assert_eq!(counts(&app, &tea).await, (json!(7), json!(0), json!(7)));
    assert_eq!(counts(&app, &cup).await, (json!(0), json!(0), json!(0)));

    let released = settle(&app, &token, order, "release").await;
    assert_eq!(released.json::<Value>().await.unwrap()["state"], "released");
    assert_eq!(
        settle(&app, &token, order, "release").await.status(),
        200,
        "idempotent"
    );
    assert_eq!(counts(&app, &tea).await, (json!(10), json!(0), json!(10)));
    let late = settle(&app, &token, order, "commit").await;
    assert_problem(late, 409, "conflict").await;
    app.stop().await;
}

/// Many reservations are committed in one call (one batch): held ones are sold, committed ones
/// count as committed again, released ones are ended, unknown ids unknown; an empty or
/// oversized list is a 422 naming `ids`.
#[actix_web::test]
async fn many_reservations_commit_in_one_call() {
    // Arrange
    let app = spawn_app().await;
    let token = service_token(&app);
    let tea = stocked(&app, "Tea", 10).await;
    let (a, b, done, gone, unknown) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    for id in [a, b, done, gone] {
        assert_eq!(
            reserve(&app, &token, id, &[(tea.as_str(), 2)])
                .await
                .status(),
            201
        );
    }
    assert_eq!(settle(&app, &token, done, "commit").await.status(), 200);
    assert_eq!(settle(&app, &token, gone, "release").await.status(), 200);
    let commit = |ids: Value| {
        app.request(Method::POST, "/reservations/commit", Some(&token))
            .json(&json!({ "ids": ids }))
            .send()
    };

    // Act
    let res = commit(json!([a, b, done, gone, unknown, a])).await.unwrap();
    let again = commit(json!([a])).await.unwrap();
    let empty = commit(json!([])).await.unwrap();
    let too_many: Vec<Uuid> = (0..101).map(|_| Uuid::new_v4()).collect();
    let too_many = commit(json!(too_many)).await.unwrap();

    // Assert
    assert_eq!(res.status(), 200);
    let out: Value = res.json().await.unwrap();
    let mut committed = vec![a, b, done];
    committed.sort();
    assert_eq!(out["committed"], json!(committed));
    assert_eq!(
        (&out["ended"], &out["unknown"]),
        (&json!([gone]), &json!([unknown]))
    );
    assert_eq!(
        again.json::<Value>().await.unwrap()["committed"],
        json!([a])
    );
    // 10 - 3 × 2 sold; nothing held.
    assert_eq!(counts(&app, &tea).await, (json!(4), json!(0), json!(4)));
    for refused in [empty, too_many] {
        let problem = assert_problem(refused, 422, "validation").await;
        assert_eq!(error_fields(&problem), ["ids"]);
    }
    app.stop().await;
}

/// Fewer units of the same products under the same id shrink a reservation, held or
/// committed, giving the difference back; asking again answers the same; growing one, or adding
/// a product, is refused and changes nothing.
#[actix_web::test]
async fn reservations_shrink_but_never_grow() {
    // Arrange
    let app = spawn_app().await;
    let token = service_token(&app);
    let (tea, cup) = (
        stocked(&app, "Tea", 10).await,
        stocked(&app, "Cup", 5).await,
    );
    let (held, sold) = (Uuid::new_v4(), Uuid::new_v4());
    let lines = [(tea.as_str(), 4), (cup.as_str(), 2)];
    assert_eq!(reserve(&app, &token, held, &lines).await.status(), 201);
    assert_eq!(reserve(&app, &token, sold, &lines).await.status(), 201);
    assert_eq!(settle(&app, &token, sold, "commit").await.status(), 200);
    assert_eq!(counts(&app, &tea).await, (json!(6), json!(4), json!(2)));

    // Act
    let shrunk = reserve(&app, &token, held, &[(tea.as_str(), 1)]).await;
    let again = reserve(&app, &token, held, &[(tea.as_str(), 1)]).await;
    let sold_shrunk = reserve(&app, &token, sold, &[(tea.as_str(), 3), (cup.as_str(), 1)]).await;
    let grown = reserve(&app, &token, held, &[(tea.as_str(), 2)]).await;
    let added = reserve(
        &app,
        &token,
        sold,
        &[(tea.as_str(), 1), (free_of(&app).await.as_str(), 1)],
    )
    .await;

    // Assert
    assert_eq!(shrunk.status(), 200);
    let shrunk: Value = shrunk.json().await.unwrap();
    assert_eq!(
        (&shrunk["state"], shrunk["lines"].as_array().unwrap().len()),
        (&json!("held"), 1)
    );
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap(), shrunk);
    assert_eq!(sold_shrunk.status(), 200);
    assert_eq!(
        sold_shrunk.json::<Value>().await.unwrap()["state"],
        "committed"
    );
    // Tea: 1 held, 3 sold of 10; cup: 0 held, 1 sold of 5.
    assert_eq!(counts(&app, &tea).await, (json!(7), json!(1), json!(6)));
    assert_eq!(counts(&app, &cup).await, (json!(4), json!(0), json!(4)));
    for refused in [grown, added] {
        let problem = assert_problem(refused, 409, "conflict").await;
        assert!(
            problem["detail"].as_str().unwrap().contains("only shrink"),
            "{problem}"
        );
    }
    assert_eq!(counts(&app, &tea).await, (json!(7), json!(1), json!(6)));
    app.stop().await;
}

async fn free_of(app: &TestApp) -> String {
    id_of(&app.create_ok("Spoon", "0.50").await)
}

/// Out of stock holds nothing and names every short line with requested and available;
/// unknown and archived products are named too; other lines under a used id are refused.
#[actix_web::test]
async fn refusals_hold_nothing_and_name_the_lines() {
    // Arrange
    let app = spawn_app().await;
    let token = service_token(&app);
    let (tea, cup, mug) = (
        stocked(&app, "Tea", 2).await,
        stocked(&app, "Cup", 1).await,
        stocked(&app, "Mug", 9).await,
    );
    let gone = stocked(&app, "Gone", 9).await;
    assert_eq!(app.delete(&gone, None).await.status(), 204);
    let unknown = Uuid::new_v4().to_string();

    // Act
    let short = reserve(
        &app,
        &token,
        Uuid::new_v4(),
        &[(&tea, 3), (&cup, 2), (&mug, 1)],
    )
    .await;
    let missing = reserve(&app, &token, Uuid::new_v4(), &[(&unknown, 1), (&gone, 1)]).await;
    let invalid = reserve(&app, &token, Uuid::new_v4(), &[]).await;
    let order = Uuid::new_v4();
    let first = reserve(&app, &token, order, &[(&mug, 1)]).await;
    let other = reserve(&app, &token, order, &[(&mug, 2)]).await;

    // Assert
    let problem = assert_problem(short, 409, "out-of-stock").await;
    let lines = problem["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{problem}");
    assert_eq!(
        lines[0],
        json!({"product_id": tea, "requested": 3, "available": 2})
    );
    assert_eq!(
        lines[1],
        json!({"product_id": cup, "requested": 2, "available": 1})
    );
    let problem = scrub(&problem, &[(&tea, "[tea]"), (&cup, "[cup]")]);
    insta::assert_json_snapshot!("problem_out_of_stock", problem);
    // Only the later, successful reservation of one mug holds anything.
    assert_eq!(counts(&app, &mug).await, (json!(9), json!(1), json!(8)));
    assert_eq!(
        counts(&app, &tea).await,
        (json!(2), json!(0), json!(2)),
        "nothing held"
    );
    let problem = assert_problem(missing, 422, "unprocessable").await;
    assert_eq!(problem["unknown_product_ids"], json!([unknown]));
    assert_eq!(problem["archived_product_ids"], json!([gone]));
    let problem = assert_problem(invalid, 422, "validation").await;
    assert_eq!(error_fields(&problem), ["lines"]);
    assert_eq!(first.status(), 201);
    assert_problem(other, 409, "conflict").await;
    let unheld = settle(&app, &token, Uuid::new_v4(), "commit").await;
    assert_problem(unheld, 404, "not-found").await;
    app.stop().await;
}

/// Reserving needs products:reserve (a writer cannot), and the reserve right cannot create or
/// change products.
#[actix_web::test]
async fn reservations_have_a_right_of_their_own() {
    // Arrange
    let app = spawn_app().await;
    let token = service_token(&app);
    let tea = stocked(&app, "Tea", 5).await;

    // Act
    let by_writer = reserve(&app, &app.writer, Uuid::new_v4(), &[(&tea, 1)]).await;
    let create = app
        .send_json(
            Method::POST,
            "/products",
            Some(&token),
            &json!({"name": "X", "price": "1.00"}),
        )
        .await;
    let patch = app
        .send_json(
            Method::PATCH,
            &format!("/products/{tea}"),
            Some(&token),
            &json!({"price": "0.01"}),
        )
        .await;

    // Assert
    assert_problem(by_writer, 403, "forbidden").await;
    assert_problem(create, 403, "forbidden").await;
    assert_problem(patch, 403, "forbidden").await;
    assert_eq!(counts(&app, &tea).await, (json!(5), json!(0), json!(5)));
    app.stop().await;
}

/// A held reservation that nobody commits is released by products when its time runs out, and
/// can no longer be committed.
#[actix_web::test]
async fn unsettled_reservations_expire() {
    // Arrange
    let (dir, root) = fresh_dir();
    let app = spawn_with(dir.path(), root, Vec::new(), |c| {
        c.reservation_ttl = Duration::from_millis(300)
    })
    .await;
    let token = service_token(&app);
    let tea = stocked(&app, "Tea", 4).await;
    let order = Uuid::new_v4();
    assert_eq!(
        reserve(&app, &token, order, &[(&tea, 4)]).await.status(),
        201
    );
    assert_eq!(counts(&app, &tea).await.2, json!(0));

    // Act: wait (polling) until products released it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = app
            .request(Method::GET, &format!("/reservations/{order}"), Some(&token))
            .send()
            .await
            .unwrap();
        if r.json::<Value>().await.unwrap()["state"] == "expired" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Assert
    assert_eq!(counts(&app, &tea).await, (json!(4), json!(0), json!(4)));
    let late = settle(&app, &token, order, "commit").await;
    let problem = assert_problem(late, 409, "conflict").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("expired"),
        "{problem}"
    );
    app.stop().await;
}

/// 64 concurrent orders of one unit for a stock of 10: exactly ten are held, 54 are out of
/// stock, and nothing is left available.
#[actix_web::test]
async fn the_last_units_are_never_oversold() {
    // Arrange
    let app = spawn_app().await;
    let token = service_token(&app);
    let tea = stocked(&app, "Tea", 10).await;

    // Act
    let answers = join_all((0..64).map(|_| {
        let (app, token, tea) = (&app, &token, &tea);
        async move {
            reserve(app, token, Uuid::new_v4(), &[(tea, 1)])
                .await
                .status()
                .as_u16()
        }
    }))
    .await;

    // Assert
    let held = answers.iter().filter(|s| **s == 201).count();
    let short = answers.iter().filter(|s| **s == 409).count();
    assert_eq!((held, short), (10, 54), "{answers:?}");
    assert_eq!(counts(&app, &tea).await, (json!(10), json!(10), json!(0)));
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let count = |outcome: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("reservations_total{{outcome=\"{outcome}\"}} ")))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    assert_eq!(
        (count("held"), count("refused")),
        (Some(10.0), Some(54.0)),
        "{metrics}"
    );
    app.stop().await;
}

/// Concurrent orders of two lines over the same two products, in both orders: a reservation is
/// never half held, so both products end with the same number of units reserved.
#[actix_web::test]
async fn no_line_is_ever_half_held() {
    // Arrange
    let app = spawn_app().await;
    let token = service_token(&app);
    let (a, b) = (stocked(&app, "A", 5).await, stocked(&app, "B", 7).await);

    // Act
    let answers = join_all((0..40).map(|i| {
        let (app, token, a, b) = (&app, &token, &a, &b);
        async move {
            let lines = if i % 2 == 0 {
                [(a.as_str(), 1), (b.as_str(), 1)]
            } else {
                [(b.as_str(), 1), (a.as_str(), 1)]
            };
            reserve(app, token, Uuid::new_v4(), &lines)
                .await
                .status()
                .as_u16()
        }
    }))
    .await;

    // Assert
    let held = answers.iter().filter(|s| **s == 201).count();
    assert_eq!(held, 5, "{answers:?}");
    assert_eq!(counts(&app, &a).await, (json!(5), json!(5), json!(0)));
    assert_eq!(counts(&app, &b).await, (json!(7), json!(5), json!(2)));
    app.stop().await;
}
