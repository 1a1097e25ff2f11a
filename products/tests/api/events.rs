//! `GET /products/events`: the change feed as Server-Sent Events.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{Events, Frame, TestApp, assert_problem, id_of, spawn_app};

/// Opens the feed with the reader's token; `last_event_id` as header if given.
async fn open(app: &TestApp, query: &str, last_event_id: Option<&str>) -> Response {
    let mut req = app.request(
        Method::GET,
        &format!("/products/events{query}"),
        Some(&app.reader),
    );
    if let Some(id) = last_event_id {
        req = req.header("Last-Event-ID", id);
    }
    req.send().await.unwrap()
}

/// Reads a `follow=false` feed whole (it must end by itself within 10 s).
async fn read_whole(app: &TestApp, query: &str) -> String {
    let res = open(app, query, None).await;
    tokio::time::timeout(std::time::Duration::from_secs(10), res.text())
        .await
        .expect("the stream ends by itself")
        .unwrap()
}

/// Asserts a frame's id, event name and data members; returns the data.
fn assert_frame(frame: Frame, seq: u64, kind: &str, product_id: &str, version: u64) -> Value {
    assert_eq!(frame.id, Some(seq), "{frame:?}");
    assert_eq!(frame.event.as_deref(), Some(kind), "{frame:?}");
    assert_eq!(frame.data["seq"], seq, "{frame:?}");
    assert_eq!(frame.data["kind"], kind, "{frame:?}");
    assert_eq!(frame.data["product"]["id"], product_id, "{frame:?}");
    assert_eq!(frame.data["product"]["version"], version, "{frame:?}");
    frame.data
}

/// Create, update and delete show up as `created`, `updated` and `archived` events with the
/// sequence as id and the product after the change as data.
#[actix_web::test]
async fn mutations_are_streamed() {
    // Arrange
    let app = spawn_app().await;
    let res = open(&app, "?after=0", None).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = Events::new(res);

    // Act
    let id = id_of(&app.create_ok("Tea", "1.00").await);
    assert_eq!(
        app.patch(&id, &json!({"price": "1.10"}), None)
            .await
            .status(),
        200
    );
    assert_eq!(app.delete(&id, None).await.status(), 204);

    // Assert
    let created = assert_frame(events.next().await, 1, "created", &id, 1);
    assert_eq!(created["product"]["name"], "Tea");
    assert_eq!(created["product"]["price"], "1.00");
    assert!(created["product"].get("archived").is_none(), "{created}");
    insta::assert_json_snapshot!("sse_event_data", created, {
        ".product.id" => "[id]",
        ".product.created_at" => "[created_at]",
        ".product.updated_at" => "[updated_at]",
    });
    let updated = assert_frame(events.next().await, 2, "updated", &id, 2);
    assert_eq!(updated["product"]["price"], "1.10");
    let archived = assert_frame(events.next().await, 3, "archived", &id, 3);
    assert_eq!(archived["product"]["archived"], true);
    drop(events);
    app.stop_now().await;
}

/// Without `after` or `Last-Event-ID` the feed starts at the current end: only new events.
#[actix_web::test]
async fn feed_starts_at_the_end_by_default() {
    // Arrange
    let app = spawn_app().await;
    app.create_ok("Old", "1.00").await;
    let mut events = Events::new(open(&app, "", None).await);

    // Act
    let id = id_of(&app.create_ok("New", "2.00").await);

    // Assert
    let frame = assert_frame(events.next().await, 2, "created", &id, 1);
    assert_eq!(frame["product"]["name"], "New");
    drop(events);
    app.stop_now().await;
}

/// Resuming with `Last-Event-ID: 2` (which wins over `?after=`) or `?after=2` gets only the
/// later events, then follows new ones.
#[actix_web::test]
async fn feed_resumes_after_an_event() {
    // Arrange
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["a", "b", "c"] {
        ids.push(id_of(&app.create_ok(name, "1.00").await));
    }

    // Act
    let mut by_header = Events::new(open(&app, "?after=0", Some("2")).await);
    let mut by_query = Events::new(open(&app, "?after=2", None).await);
    let later = id_of(&app.create_ok("d", "1.00").await);

    // Assert
    for events in [&mut by_header, &mut by_query] {
        assert_frame(events.next().await, 3, "created", &ids[2], 1);
        assert_frame(events.next().await, 4, "created", &later, 1);
    }
    drop((by_header, by_query));
    app.stop_now().await;
}

/// `follow=false` sends the events up to the current end, then ends the stream, so a client
/// that reads a response whole (a generated one) gets the backlog and returns.
#[actix_web::test]
async fn feed_without_follow_ends_at_the_current_end() {
    // Arrange
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        ids.push(id_of(&app.create_ok(name, "1.00").await));
    }

    // Act
    let body = read_whole(&app, "?after=0&follow=false").await;
    let empty = read_whole(&app, "?follow=false").await;

    // Assert
    let events: Vec<&str> = body.lines().filter(|l| l.starts_with("id: ")).collect();
    assert_eq!(events, ["id: 1", "id: 2"], "{body}");
    assert!(body.contains(&ids[1]), "{body}");
    assert!(!empty.contains("id: "), "{empty}");
    app.stop().await;
}

/// `kinds=archived` sends the archives only; the changes it leaves out still move the
/// stream's position, told by a frame with only an `id:` line, so a client resuming from it
/// starts after them.
#[actix_web::test]
async fn a_feed_of_some_kinds_leaves_the_others_out_but_tells_its_position() {
    // Arrange: created (1), updated (2), archived (3), created (4).
    let app = spawn_app().await;
    let tea = id_of(&app.create_ok("Tea", "1.00").await);
    let res = app.patch(&tea, &json!({"price": "2.00"}), None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.delete(&tea, None).await.status(), 204);
    app.create_ok("Cake", "3.00").await;

    // Act
    let body = read_whole(&app, "?after=0&follow=false&kinds=archived").await;
    let both = read_whole(&app, "?after=0&follow=false&kinds=created,archived").await;

    // Assert
    let frames: Vec<&str> = body
        .split("\n\n")
        .filter(|f| f.starts_with("id: "))
        .collect();
    assert_eq!(frames.len(), 2, "{body}");
    assert!(
        frames[0].starts_with("id: 3\nevent: archived\ndata: "),
        "{body}"
    );
    assert!(frames[0].contains(&tea), "{body}");
    assert_eq!(
        frames[1], "id: 4",
        "the position past the last left-out event: {body}"
    );
    let ids: Vec<&str> = both.lines().filter(|l| l.starts_with("id: ")).collect();
    assert_eq!(ids, ["id: 1", "id: 3", "id: 4"], "{both}");
    assert!(!both.contains("event: updated"), "{both}");
    app.stop().await;
}

/// Following with `kinds`, a change left out is told as a position within about a second,
/// many of them in quick succession as one position, not one frame each; an event of a kind
/// asked for comes as usual.
#[actix_web::test]
async fn a_followed_feed_of_some_kinds_tells_its_position_soon() {
    // Arrange
    let app = spawn_app().await;
    let tea = id_of(&app.create_ok("Tea", "1.00").await);
    let mut events = Events::new(open(&app, "?after=1&kinds=archived", None).await);

    // Act: an update (left out), then ten more, then an archive.
    let res = app.patch(&tea, &json!({"price": "2.00"}), None).await;
    assert_eq!(res.status(), 200);
    let first = events.next_with_id().await;
    for cents in 0..10 {
        let body = json!({"price": format!("3.{cents:02}")});
        assert_eq!(app.patch(&tea, &body, None).await.status(), 200);
    }
    assert_eq!(app.delete(&tea, None).await.status(), 204);
    let mut told = Vec::new();
    let archived = loop {
        let frame = events.next_with_id().await;
        if frame.contains("event: archived") {
            break frame;
        }
        told.push(frame);
    };

    // Assert
    assert_eq!(first, "id: 2\n\n");
    assert!(told.len() < 10, "one frame per left-out change: {told:?}");
    let seqs: Vec<u64> = told
        .iter()
        .map(|f| f.trim().strip_prefix("id: ").unwrap().parse().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(seqs.iter().all(|s| (3..=12).contains(s)), "{seqs:?}");
    assert!(
        archived.starts_with("id: 13\nevent: archived\n"),
        "{archived}"
    );
    drop(events);
    app.stop_now().await;
}

/// The feed needs a token (401) with the read right (403); a bad `Last-Event-ID`, a sequence
/// past 2^53, an unknown kind or an unknown parameter answers 400.
#[actix_web::test]
async fn feed_refuses_bad_requests() {
    // Arrange
    let app = spawn_app().await;
    let orders_only = app.token("bob", &["orders:read"]);

    // Act
    let anonymous = app
        .request(Method::GET, "/products/events?after=0", None)
        .send()
        .await
        .unwrap();
    let forbidden = app
        .request(Method::GET, "/products/events?after=0", Some(&orders_only))
        .send()
        .await
        .unwrap();
    let bad_id = open(&app, "", Some("yesterday")).await;
    let bad_query = open(&app, "?since=0", None).await;
    let bad_after = open(&app, "?after=-1", None).await;
    let too_far = open(&app, "?after=9007199254740993", None).await;
    let too_far_id = open(&app, "", Some("9007199254740993")).await;
    let bad_kind = open(&app, "?kinds=archived,deleted", None).await;
    let no_kind = open(&app, "?kinds=", None).await;

    // Assert
    assert_problem(anonymous, 401, "unauthorized").await;
    assert_problem(forbidden, 403, "forbidden").await;
    assert_problem(bad_id, 400, "bad-request").await;
    assert_problem(bad_query, 400, "bad-request").await;
    assert_problem(bad_after, 400, "bad-request").await;
    assert_problem(too_far, 400, "bad-request").await;
    assert_problem(too_far_id, 400, "bad-request").await;
    let problem = assert_problem(bad_kind, 400, "bad-request").await;
    assert_eq!(problem["errors"][0]["field"], "kinds", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("\"deleted\""),
        "{problem}"
    );
    assert_problem(no_kind, 400, "bad-request").await;
    app.stop().await;
}

/// Three changes of one product, then a stop and a compaction that folds them into the
/// snapshot (and retires the journal that held them); returns the product's id.
async fn three_changes_then_compact(
    dir: &std::path::Path,
    root: std::sync::Arc<biscuit_auth::KeyPair>,
) -> String {
    let app = crate::helpers::spawn_in(dir, root, Vec::new()).await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);
    for price in ["2.00", "3.00"] {
        let res = app.patch(&id, &json!({"price": price}), None).await;
        assert_eq!(res.status(), 200);
    }
    let data_dir = app.data_dir.clone();
    app.stop().await;
    let store = store_actor::Store::open(products::store::options(
        &data_dir,
        store_actor::Durability::Always,
    ))
    .await
    .unwrap();
    store.compact().await.unwrap();
    store.close().await.unwrap();
    id
}

/// After a compaction and a restart, the feed still serves every event within its history
/// window: a consumer resumes where it was, with no resync.
#[actix_web::test]
async fn a_restart_after_a_compaction_resumes_without_a_resync() {
    let (dir, root) = crate::helpers::fresh_dir();
    let id = three_changes_then_compact(dir.path(), root.clone()).await;
    let app = crate::helpers::spawn_in(dir.path(), root, Vec::new()).await;

    let mut events = Events::new(open(&app, "?after=0", None).await);
    assert_frame(events.next().await, 1, "created", &id, 1);
    assert_frame(events.next().await, 2, "updated", &id, 2);
    assert_frame(events.next().await, 3, "updated", &id, 3);
    let res = app.patch(&id, &json!({"price": "4.00"}), None).await;
    assert_eq!(res.status(), 200);
    assert_frame(events.next().await, 4, "updated", &id, 4);
    drop(events);
    app.stop_now().await;
}

/// Asked for events older than the retention (compacted away before a restart, with no history
/// kept on disk), the feed sends one `resync` event naming the oldest retained sequence and
/// ends; from there it streams.
#[actix_web::test]
async fn too_old_positions_get_a_resync_event() {
    // Arrange: three changes, then a compaction folds them into the snapshot and a restart
    // that keeps no feed history leaves nothing retained before sequence 4.
    let (dir, root) = crate::helpers::fresh_dir();
    let id = three_changes_then_compact(dir.path(), root.clone()).await;
    let app = crate::helpers::spawn_with(dir.path(), root, Vec::new(), |c| {
        c.common.feed_history_mb = 0;
    })
    .await;

    // Act
    let mut events = Events::new(open(&app, "?after=1", None).await);

    // Assert
    let resync = events.next().await;
    assert_eq!(resync.event.as_deref(), Some("resync"), "{resync:?}");
    assert_eq!(resync.data["requested_after"], 1);
    assert_eq!(resync.data["oldest_available"], 4);
    insta::assert_json_snapshot!("sse_resync_data", resync.data);
    // Following on from the current state works.
    let mut live = Events::new(open(&app, "?after=3", None).await);
    assert_eq!(
        app.patch(&id, &json!({"price": "4.00"}), None)
            .await
            .status(),
        200
    );
    assert_frame(live.next().await, 4, "updated", &id, 4);
    drop((events, live));
    app.stop_now().await;
}
