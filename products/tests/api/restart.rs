//! What the API acknowledged is there after the service restarts on the same files.

use serde_json::{Value, json};

use crate::helpers::{Events, assert_problem, fresh_dir, id_of, spawn_in};

/// Starts the service on `dir` keeping its records in memory, or (`index`) on disk behind a
/// small cache.
async fn spawn_mode(
    dir: &std::path::Path,
    root: std::sync::Arc<biscuit_auth::KeyPair>,
    index: bool,
) -> crate::helpers::TestApp {
    crate::helpers::spawn_with(dir, root, Vec::new(), |c| {
        if index {
            c.common.memory = service_kit::config::MemoryMode::Index;
            c.common.cache_mb = 1;
        }
    })
    .await
}

/// Products, versions and archived state survive a restart; new writes continue from them.
#[actix_web::test]
async fn data_survives_a_restart() {
    survives_restarts([false, false, false]).await;
}

/// The same with the records on disk (index mode), and across changes of mode: the files are
/// the same either way.
#[actix_web::test]
async fn data_survives_restarts_in_index_mode_and_across_modes() {
    survives_restarts([true, true, true]).await;
    survives_restarts([false, true, false]).await;
}

async fn survives_restarts(index: [bool; 3]) {
    // Arrange
    let (dir, root) = fresh_dir();
    let app = spawn_mode(dir.path(), root.clone(), index[0]).await;
    let kept = app.create_ok("Kept", "1.00").await;
    let changed = id_of(&app.create_ok("Changed", "2.00").await);
    let archived = id_of(&app.create_ok("Archived", "3.00").await);
    let changed_res = app.patch(&changed, &json!({"name": "Renamed"}), None).await;
    assert_eq!(changed_res.status(), 200);
    let changed: Value = changed_res.json().await.unwrap();
    assert_eq!(app.delete(&archived, None).await.status(), 204);
    let before = app.all().await;
    app.stop().await;

    // Act
    let app = spawn_mode(dir.path(), root.clone(), index[1]).await;

    // Assert
    assert_eq!(app.all().await, before);
    assert_eq!(before, [kept.clone(), changed.clone()]);
    assert_eq!(
        app.get_json(&format!("/products/{}", id_of(&kept))).await,
        kept
    );
    let read = app.get(&format!("/products/{}", id_of(&changed))).await;
    assert_eq!(read.headers()["etag"], "\"2\"");
    assert_eq!(read.json::<Value>().await.unwrap(), changed);
    assert_problem(app.get(&format!("/products/{archived}")).await, 410, "gone").await;

    // New writes continue from the recovered state, and survive another restart.
    let res = app
        .patch(&id_of(&changed), &json!({"price": "2.50"}), Some("\"2\""))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"3\"");
    let added = app.create_ok("Added", "4.00").await;
    assert_eq!(app.delete(&archived, None).await.status(), 410);
    let after = app.all().await;
    app.stop().await;
    let app = spawn_mode(dir.path(), root, index[2]).await;
    assert_eq!(app.all().await, after);
    assert_eq!(after.len(), 3);
    assert_eq!(after[2], added);
    assert_eq!(after[1]["version"], 3);
    app.stop().await;
}

/// The change feed continues after a restart: a consumer resuming after the last event it saw
/// gets the next sequence number.
#[actix_web::test]
async fn sequence_numbers_continue_after_a_restart() {
    // Arrange
    let (dir, root) = fresh_dir();
    let app = spawn_in(dir.path(), root.clone(), Vec::new()).await;
    for name in ["a", "b"] {
        app.create_ok(name, "1.00").await;
    }
    app.stop().await;
    let app = spawn_in(dir.path(), root, Vec::new()).await;

    // Act
    let res = app
        .request(
            reqwest::Method::GET,
            "/products/events?after=2",
            Some(&app.reader),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut events = Events::new(res);
    let id = id_of(&app.create_ok("c", "1.00").await);

    // Assert
    let frame = events.next().await;
    assert_eq!(frame.id, Some(3));
    assert_eq!(frame.data["product"]["id"], id.as_str());
    drop(events);
    app.stop_now().await;
}
