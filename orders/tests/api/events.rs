//! `GET /orders/events`: the orders change feed as Server-Sent Events, per user.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Events, Frame, TestApps, assert_problem, id_of, redactions, spawn_apps};

/// Opens the feed from the beginning with `token`, asserting 200 and the SSE content type.
async fn open(app: &TestApps, token: &str) -> Events {
    let res = app
        .request(Method::GET, "/orders/events?after=0", Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"),
        "{:?}",
        res.headers()
    );
    Events::new(res)
}

/// Asserts a frame's id, event name, and the order's id and owner; returns the data.
fn assert_frame(frame: Frame, kind: &str, order: &str, owner: &str) -> Value {
    assert_eq!(frame.event.as_deref(), Some(kind), "{frame:?}");
    assert_eq!(frame.data["kind"], kind, "{frame:?}");
    assert_eq!(frame.id, frame.data["seq"].as_u64(), "{frame:?}");
    assert_eq!(frame.data["order"]["id"], order, "{frame:?}");
    assert_eq!(frame.data["order"]["owner"], owner, "{frame:?}");
    frame.data
}

/// Alice's feed carries her orders' events (created, updated, archived) and none of Bob's; the
/// admin's feed carries both users' events in sequence order.
#[actix_web::test]
async fn each_user_sees_only_their_own_events_and_the_admin_all() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let bobs_first = id_of(&app.place_ok(&app.bob, &[(&tea, 1)]).await);
    let alices = id_of(&app.place_ok(&app.alice, &[(&tea, 2)]).await);
    let bobs_second = id_of(&app.place_ok(&app.bob, &[(&tea, 3)]).await);
    app.patch_ok(&app.alice, &alices, &json!({"status": "cancelled"}))
        .await;
    assert_eq!(app.delete(&app.alice, &alices).await.status(), 204);
    let last = id_of(&app.place_ok(&app.alice, &[(&tea, 4)]).await);

    // Act
    let mut alice = open(&app, &app.alice).await;
    let mut admin = open(&app, &app.admin).await;

    // Assert: each placement is created, then updated when products confirms its stock.
    let created = assert_frame(alice.next().await, "created", &alices, "alice");
    assert_eq!(created["seq"], 3);
    assert_eq!(created["order"]["status"], "placed");
    assert_eq!(created["order"]["total"], "2.00");
    redactions().bind(|| insta::assert_json_snapshot!("sse_event_data", created));
    let confirmed = assert_frame(alice.next().await, "updated", &alices, "alice");
    assert_eq!(confirmed["order"]["stock"], "confirmed");
    let updated = assert_frame(alice.next().await, "updated", &alices, "alice");
    assert_eq!(updated["order"]["status"], "cancelled");
    let released = assert_frame(alice.next().await, "updated", &alices, "alice");
    assert_eq!(released["order"]["stock"], "released");
    let archived = assert_frame(alice.next().await, "archived", &alices, "alice");
    assert_eq!(archived["order"]["archived"], true);
    assert_frame(alice.next().await, "created", &last, "alice");

    let mut seen = Vec::new();
    for _ in 0..6 {
        let frame = admin.next().await;
        seen.push((
            frame.data["seq"].as_u64().unwrap(),
            frame.data["order"]["id"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        seen,
        [
            (1, bobs_first.clone()),
            (2, bobs_first),
            (3, alices.clone()),
            (4, alices),
            (5, bobs_second.clone()),
            (6, bobs_second),
        ]
    );
    app.stop().await;
}

/// A live feed delivers a hold made by the products follower as an `updated` event with the
/// reason.
#[actix_web::test]
async fn holds_are_streamed_live() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let id = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let mut alice = open(&app, &app.alice).await;
    assert_frame(alice.next().await, "created", &id, "alice");
    let confirmed = assert_frame(alice.next().await, "updated", &id, "alice");
    assert_eq!(confirmed["order"]["stock"], "confirmed");

    // Act
    app.archive_product(&tea).await;

    // Assert
    let held = assert_frame(alice.next().await, "updated", &id, "alice");
    assert_eq!(held["order"]["status"], "on_hold");
    assert!(
        held["order"]["hold_reason"]
            .as_str()
            .is_some_and(|r| r.contains(&tea)),
        "{held}"
    );
    app.stop().await;
}

/// `Last-Event-ID` resumes after that event (taking precedence over `?after=`).
#[actix_web::test]
async fn last_event_id_resumes_the_feed() {
    // Arrange
    let app = spawn_apps().await;
    let tea = app.product("Tea", "1.00").await;
    let first = id_of(&app.place_ok(&app.alice, &[(&tea, 1)]).await);
    let second = id_of(&app.place_ok(&app.alice, &[(&tea, 2)]).await);

    // Act
    let res = app
        .request(Method::GET, "/orders/events?after=0", Some(&app.alice))
        .header("Last-Event-ID", "2")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(res.status(), 200);
    let frame = Events::new(res).next().await;
    assert_ne!(frame.data["order"]["id"], first.as_str());
    let data = assert_frame(frame, "created", &second, "alice");
    assert_eq!(
        data["seq"], 3,
        "after the first order's creation (1) and confirmation (2)"
    );
    app.stop().await;
}

/// A `Last-Event-ID` that is not a number, an `after` that is not one, and an unknown query
/// parameter each answer 400.
#[actix_web::test]
async fn bad_feed_requests_are_bad_requests() {
    // Arrange
    let app = spawn_apps().await;

    // Act
    let header = app
        .request(Method::GET, "/orders/events", Some(&app.alice))
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    let after = app.get(&app.alice, "/orders/events?after=soon").await;
    let unknown = app.get(&app.alice, "/orders/events?colour=red").await;

    // Assert
    assert_problem(header, 400, "bad-request").await;
    assert_problem(after, 400, "bad-request").await;
    assert_problem(unknown, 400, "bad-request").await;
    app.stop().await;
}
