//! Orders on a disk that fails: its stores run on a simulated disk (`SimFs`) whose writes the
//! tests make fail, deterministically.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use store_actor::fs::SimFs;

use crate::helpers::{assert_problem, spawn_apps_on};

/// A full disk refuses a new order with 503 and a short Retry-After, gives the stock it took
/// back to products, keeps serving reads, and takes orders again once the disk has room.
#[actix_web::test]
async fn a_full_disk_refuses_orders_and_gives_their_stock_back() {
    // Arrange
    let fs = SimFs::new();
    let app = spawn_apps_on(fs.clone()).await;
    let tea = app.stocked("Tea", "2.00", 10).await;
    app.place_ok(&app.alice, &[(&tea, 1)]).await;
    fs.fail_after_with(0, ErrorKind::StorageFull);
    let order = json!({"items": [{"product_id": tea, "quantity": 3}]});

    // Act
    let refused = app.place(&app.alice, &order).await;

    // Assert
    let retry_after = test_kit::http::retry_after(&refused);
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    let problem = assert_problem(refused, 503, "unavailable").await;
    assert!(
        problem["detail"].as_str().unwrap().contains("full"),
        "{problem}"
    );
    let list = app
        .request(Method::GET, "/orders", Some(&app.alice))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    // The 3 units reserved for the order that was never written go back.
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.stock_of(&tea).await != (json!(9), json!(0), json!(9)) {
        assert!(Instant::now() < deadline, "{:?}", app.stock_of(&tea).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The disk has room again: within seconds, orders are taken.
    fs.heal();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = app.place(&app.alice, &order).await;
        if res.status() == 201 {
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(Instant::now() < deadline, "orders never resumed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
