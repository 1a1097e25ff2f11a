//! The follower's resync: when products no longer retains the events after orders' cursor, a
//! full reconciliation through batch lookups puts every placed order of an archived product on
//! hold, and the feed goes on from the oldest retained event.

use std::time::Duration;

use orders::domain::{LineItem, Order, Status};
use orders::follower::{ArchivedProducts, FeedMetrics, Follower};
use products_api::client::{ClientConfig, FeedEvent, ProductsClient};
use store_actor::Store;
use uuid::Uuid;

use crate::helpers::spawn_apps;

fn order(product: Uuid, status: Status) -> Order {
    let line = LineItem {
        product_id: product,
        quantity: 1,
        product_name: "x".into(),
        unit_price: "1.00".parse().unwrap(),
        line_total: "1.00".parse().unwrap(),
    };
    Order {
        owner: "alice".into(),
        status,
        hold_reason: None,
        items: vec![line],
        total: "1.00".parse().unwrap(),
        created_by_key: None,
        holds: Vec::new(),
        deleting: false,
    }
}

/// A resync event reconciles: placed orders of archived products go on hold, the others and
/// non-placed orders stay, the archived set learns the product, and the position is the one
/// before the oldest retained event.
#[actix_web::test]
async fn resync_reconciles_through_batch_lookups() {
    // Arrange: products with one archived product; a separate orders store (the app's own is
    // locked by the running orders service) holding orders of both products.
    let app = spawn_apps().await;
    let gone: Uuid = app.product("Gone", "1.00").await.parse().unwrap();
    let kept: Uuid = app.product("Kept", "2.00").await.parse().unwrap();
    app.archive_product(&gone.to_string()).await;
    let dir = tempfile::tempdir().unwrap();
    let orders = Store::open(orders::store::options(
        dir.path(),
        store_actor::Durability::Always,
    ))
    .await
    .unwrap();
    let cursor = Store::open(orders::store::cursor_options(dir.path()))
        .await
        .unwrap();
    let placed_gone = orders.create(order(gone, Status::Placed)).await.unwrap().id;
    let fulfilled_gone = orders
        .create(order(gone, Status::Fulfilled))
        .await
        .unwrap()
        .id;
    let placed_kept = orders.create(order(kept, Status::Placed)).await.unwrap().id;
    let mut config = ClientConfig::new(&app.products_address, app.token("svc", &["products:read"]));
    config.timeout = Duration::from_secs(5);
    let archived = ArchivedProducts::default();
    let follower = Follower {
        products: ProductsClient::new(config).unwrap(),
        orders: orders.clone(),
        cursor,
        metrics: FeedMetrics::default(),
        archived: archived.clone(),
    };

    // Act
    let position = follower
        .handle(FeedEvent::Resync {
            oldest_available: 42,
        })
        .await
        .unwrap();

    // Assert
    assert_eq!(position, 41);
    let held = orders.get(placed_gone).unwrap();
    assert_eq!(held.data.status, Status::OnHold);
    assert!(
        held.data
            .hold_reason
            .as_deref()
            .unwrap()
            .contains(&gone.to_string())
    );
    assert_eq!(
        orders.get(fulfilled_gone).unwrap().data.status,
        Status::Fulfilled
    );
    assert_eq!(orders.get(placed_kept).unwrap().data.status, Status::Placed);
    assert_eq!(archived.any_of([kept, gone]), Some(gone));
    // Reconciling again changes nothing (idempotent).
    let version = orders.get(placed_gone).unwrap().version;
    follower
        .handle(FeedEvent::Resync {
            oldest_available: 42,
        })
        .await
        .unwrap();
    assert_eq!(orders.get(placed_gone).unwrap().version, version);
    app.stop().await;
}
