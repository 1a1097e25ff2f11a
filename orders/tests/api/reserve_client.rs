//! The products client's reservation calls against the real products binary: the wire types
//! both sides share agree, and orders' service token (read + reserve) is enough.

use products_api::ReserveLine;
use products_api::client::{ClientConfig, ProductsClient, ReserveOutcome};
use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{id_of, spawn_apps};

#[actix_web::test]
async fn reserve_commit_and_release_through_the_client() {
    // Arrange: a product with 3 units, and a client with orders' rights.
    let app = spawn_apps().await;
    let res = app
        .products_request(Method::POST, "/products")
        .json(&json!({"name": "Teapot", "price": "25.00", "stock": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let product: Uuid = id_of(&res.json().await.unwrap()).parse().unwrap();
    let token = app.token("orders-service", &["products:read", "products:reserve"]);
    let client = ProductsClient::new(ClientConfig::new(&app.products_address, token)).unwrap();
    let (first, second) = (Uuid::new_v4(), Uuid::new_v4());
    let line = |quantity| {
        [ReserveLine {
            product_id: product,
            quantity,
        }]
    };

    // Act
    let held = client.reserve(first, &line(2), None, None).await.unwrap();
    let short = client.reserve(second, &line(2), None, None).await.unwrap();
    let committed = client.commit(first, None).await.unwrap();
    let released = client.release(first, None).await.unwrap();
    let unknown = client
        .reserve(
            Uuid::new_v4(),
            &[ReserveLine {
                product_id: Uuid::new_v4(),
                quantity: 1,
            }],
            None,
            None,
        )
        .await
        .unwrap();

    // Assert
    let ReserveOutcome::Held(held) = held else {
        panic!("{held:?}")
    };
    assert_eq!((held.id, held.lines[0].name.as_str()), (first, "Teapot"));
    assert_eq!(held.lines[0].unit_price.to_string(), "25.00");
    let ReserveOutcome::OutOfStock(lines) = short else {
        panic!("{short:?}")
    };
    assert_eq!((lines[0].requested, lines[0].available), (2, 1));
    assert_eq!(committed.state, products_api::ReservationState::Committed);
    assert_eq!(released.state, products_api::ReservationState::Released);
    assert!(
        matches!(unknown, ReserveOutcome::Unavailable { ref unknown, .. } if unknown.len() == 1)
    );
    app.stop().await;
}
