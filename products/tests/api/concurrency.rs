//! Optimistic concurrency under real concurrent requests: no lost updates.

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::helpers::{TestApp, id_of, spawn_app};

/// 20 concurrent PATCHes all based on version 1: exactly one wins (200), the others get 412,
/// and the product holds the winner's price at version 2.
#[actix_web::test]
async fn one_of_many_conditional_updates_wins() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);
    let prices: Vec<String> = (1..=20).map(|i| format!("10.{i:02}")).collect();

    // Act
    let bodies: Vec<Value> = prices.iter().map(|p| json!({"price": p})).collect();
    let responses = join_all(bodies.iter().map(|b| app.patch(&id, b, Some("\"1\"")))).await;

    // Assert
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        19,
        "{statuses:?}"
    );
    let winner = statuses.iter().position(|s| *s == 200).unwrap();
    let product = app.get_json(&format!("/products/{id}")).await;
    assert_eq!(product["version"], 2);
    assert_eq!(product["price"], prices[winner].as_str());
    app.stop().await;
}

/// One writer: read the version, then PATCH conditionally on it, `rounds` times; the number
/// of 200s.
async fn read_then_update(app: &TestApp, id: &str, writer: usize, rounds: usize) -> usize {
    let mut wins = 0;
    for round in 0..rounds {
        let current = app.get(&format!("/products/{id}")).await;
        let tag = current.headers()["etag"].to_str().unwrap().to_owned();
        let res = app
            .patch(
                id,
                &json!({"price": format!("{writer}.{round:02}")}),
                Some(&tag),
            )
            .await;
        match res.status().as_u16() {
            200 => wins += 1,
            412 => {}
            other => panic!("unexpected {other}"),
        }
    }
    wins
}

/// Concurrent read-then-update writers: every 200 is exactly one version bump (none lost, none
/// extra).
#[actix_web::test]
async fn successes_equal_version_bumps() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);

    // Act
    let wins: usize = join_all((1..=8).map(|w| read_then_update(&app, &id, w, 5)))
        .await
        .into_iter()
        .sum();

    // Assert
    let product: Value = app.get_json(&format!("/products/{id}")).await;
    assert!(wins >= 1);
    assert_eq!(
        product["version"],
        1 + wins as u64,
        "{wins} successful updates"
    );
    app.stop().await;
}

/// Unconditional concurrent PATCHes all apply, one version each (the actor serialises them).
#[actix_web::test]
async fn unconditional_updates_are_serialised() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);

    // Act
    let bodies: Vec<Value> = (1..=20)
        .map(|i| json!({"price": format!("{i}.00")}))
        .collect();
    let responses = join_all(bodies.iter().map(|b| app.patch(&id, b, None))).await;

    // Assert
    let mut versions: Vec<u64> = Vec::new();
    for res in responses {
        assert_eq!(res.status(), 200);
        versions.push(
            res.json::<Value>().await.unwrap()["version"]
                .as_u64()
                .unwrap(),
        );
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<u64>>());
    assert_eq!(
        app.get_json(&format!("/products/{id}")).await["version"],
        21
    );
    app.stop().await;
}
