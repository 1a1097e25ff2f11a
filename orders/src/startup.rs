//! Building the app: open the stores, start following products and settling reservations,
//! declare the routes, bind.
//! Serving and stopping are [`service_kit::server`]'s; after the server stops, the follower
//! stops and the stores close.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use products_api::client::{ClientConfig, ProductsClient};
use service_kit::health::Readiness;
use service_kit::http;
use service_kit::metrics::Metrics;
use service_kit::server::{self, Bound, Parts, StartupError, read_config_file};
use service_kit::sse::Closing;
use store_actor::Store;
use utoipa::OpenApi;

use crate::configuration::Config;
use crate::follower::{ArchivedProducts, FeedMetrics, Follower};
use crate::openapi::ApiDoc;
use crate::routes::{OrdersState, events, orders};
use crate::service::OrderService;
use crate::settler::Settler;
use crate::store;

/// Opens the stores, starts following products and binds the address (`:0` picks a port);
/// serve it with [`Bound::run_until_stopped`].
pub async fn build(config: Config) -> Result<Bound, StartupError> {
    build_on(config, Arc::new(store_actor::fs::OsFs)).await
}

/// Like [`build`], with both stores on the file system `fs`: tests run the service on a
/// simulated disk (`store_actor::fs::SimFs`) to fail or hold its writes.
pub async fn build_on(
    config: Config,
    fs: Arc<dyn store_actor::fs::Fs>,
) -> Result<Bound, StartupError> {
    let common = &config.common;
    let token = read_config_file(&config.products_token_file)?;
    let mut client_config = ClientConfig::new(&config.products_url, token);
    client_config.timeout = Duration::from_millis(config.products_timeout_ms);
    let products =
        ProductsClient::new(client_config).map_err(|e| StartupError::Config(e.to_string()))?;
    let orders = Store::open(
        store::options(&common.data_dir, common.durability)
            .feed_history(common.feed_history())
            .memory(common.memory())
            .fs(fs.clone()),
    )
    .await?;
    let cursor = Store::open(store::cursor_options(&common.data_dir).fs(fs)).await?;

    let metrics = Metrics::new();
    {
        let orders = orders.clone();
        metrics.register_store("orders", Box::new(move || orders.status()));
        let cursor = cursor.clone();
        metrics.register_store("products-feed", Box::new(move || cursor.status()));
    }
    metrics.with_registry(|registry| products.register_metrics(registry));
    let feed_metrics = FeedMetrics::default();
    feed_metrics.register(&metrics);
    let archived = ArchivedProducts::default();
    let readiness = {
        let products = products.clone();
        Readiness::new()
            .store("store", orders.clone())
            .store("feed_cursor", cursor.clone())
            .check(
                "products",
                Arc::new(move || {
                    let products = products.clone();
                    Box::pin(async move { products.healthy().await.map_err(|e| e.to_string()) })
                }),
            )
    };
    let closing = Closing::default();
    let settler = Settler::new(orders.clone(), products.clone());
    settler.metrics().register(&metrics);
    let service = OrderService::new(
        orders.clone(),
        products.clone(),
        archived.clone(),
        settler.clone(),
    );
    service.metrics().register(&metrics);
    let state = web::Data::new(OrdersState {
        service,
        closing: closing.clone(),
    });
    let parts = Parts {
        name: "orders",
        metrics,
        readiness,
        openapi: ApiDoc::openapi(),
        closing,
    };
    let bound = server::bind(&config.listen, common, parts, move |cfg| {
        routes(cfg, state.clone())
    })?;

    let follower = tokio::spawn(
        Follower {
            products,
            orders: orders.clone(),
            cursor: cursor.clone(),
            metrics: feed_metrics,
            archived,
        }
        .run(),
    );
    let settling = tokio::spawn(settler.run());
    Ok(bound.on_stop(async move {
        for task in [follower, settling] {
            task.abort();
            let _ = task.await;
        }
        for (name, closed) in [
            ("orders", orders.close().await),
            ("cursor", cursor.close().await),
        ] {
            if let Err(e) = closed {
                tracing::error!(store = name, error = %e, "closing the store failed");
            }
        }
    }))
}

/// The route table.
fn routes(cfg: &mut web::ServiceConfig, state: web::Data<OrdersState>) {
    cfg.app_data(state)
        .service(
            http::resource("/orders", "GET, POST")
                .post(orders::create)
                .get(orders::list),
        )
        .service(http::resource("/orders/events", "GET").get(events::feed))
        .service(http::resource("/orders/stats", "GET").get(orders::stats))
        .service(
            http::resource("/orders/{id}", "GET, PATCH, DELETE")
                .get(orders::get)
                .patch(orders::update)
                .delete(orders::delete),
        );
}
