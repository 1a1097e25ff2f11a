//! Building the app: open the store, declare the routes, bind. Serving and stopping are
//! [`service_kit::server`]'s.

use actix_web::web;
use service_kit::health::Readiness;
use service_kit::http;
use service_kit::metrics::Metrics;
use service_kit::server::{self, Bound, Parts, StartupError};
use service_kit::sse::Closing;
use store_actor::{Store, StoreOptions};
use utoipa::OpenApi;

use crate::configuration::Config;
use crate::domain::Entry;
use crate::openapi::ApiDoc;
use crate::routes::{ProductsState, events, products, reservations};
use crate::service::ProductService;
use crate::store;

/// Opens the store and binds the address (`:0` picks a free port); serve it with
/// [`Bound::run_until_stopped`], which closes the store after the server stops.
pub async fn build(config: Config) -> Result<Bound, StartupError> {
    build_with(config, |options| options).await
}

/// Like [`build`], with the store's options passed through `store_options` first: tests run
/// the service on a simulated disk (`store_actor::fs::SimFs`) to fail or hold its writes.
pub async fn build_with(
    config: Config,
    store_options: impl FnOnce(StoreOptions<Entry>) -> StoreOptions<Entry>,
) -> Result<Bound, StartupError> {
    let common = &config.common;
    let store = Store::open(store_options(
        store::options(&common.data_dir, common.durability)
            .feed_history(common.feed_history())
            .memory(common.memory()),
    ))
    .await?;
    let metrics = Metrics::new();
    {
        let store = store.clone();
        metrics.register_store("products", Box::new(move || store.status()));
    }
    let service = ProductService::new(store.clone(), config.reservation_ttl);
    service.register_metrics(&metrics);
    let closing = Closing::default();
    let state = web::Data::new(ProductsState {
        service: service.clone(),
        closing: closing.clone(),
    });
    let parts = Parts {
        name: "products",
        metrics,
        readiness: Readiness::new().store("store", store.clone()),
        openapi: ApiDoc::openapi(),
        closing,
    };
    let bound = server::bind(&config.listen, common, parts, move |cfg| {
        routes(cfg, state.clone())
    })?;
    let expiry = tokio::spawn(expire_reservations(service, config.reservation_ttl));
    Ok(bound.on_stop(async move {
        expiry.abort();
        let _ = expiry.await;
        if let Err(e) = store.close().await {
            tracing::error!(error = %e, "closing the store failed");
        }
    }))
}

/// Releases reservations whose time ran out, checking a few times per time to live (at least
/// once a second).
async fn expire_reservations(service: ProductService, ttl: std::time::Duration) {
    let every = (ttl / 4).clamp(
        std::time::Duration::from_millis(50),
        std::time::Duration::from_secs(1),
    );
    loop {
        tokio::time::sleep(every).await;
        match service.expire_due(time::OffsetDateTime::now_utc()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "reservations expired"),
            Err(e) => tracing::warn!(error = %e, "expiring reservations failed"),
        }
    }
}

/// The route table.
/// The router tries resources in the order given, and every pattern with a `{...}` segment is
/// a regex match: the hot one, `/products/{id}`, comes right after the static paths it would
/// otherwise swallow (`lookup`, `events`).
fn routes(cfg: &mut web::ServiceConfig, state: web::Data<ProductsState>) {
    cfg.app_data(state)
        .service(
            http::resource("/products", "GET, POST")
                .post(products::create)
                .get(products::list),
        )
        .service(http::resource("/products/lookup", "POST").post(products::lookup))
        .service(http::resource("/products/events", "GET").get(events::feed))
        .service(
            http::resource("/products/{id}", "GET, PATCH, DELETE")
                .get(products::get)
                .patch(products::update)
                .delete(products::archive),
        )
        .service(http::resource("/products/{id}/stock", "POST").post(products::adjust_stock))
        .service(http::resource("/reservations/commit", "POST").post(reservations::commit_many))
        .service(
            http::resource("/reservations/{id}", "GET, PUT")
                .put(reservations::reserve)
                .get(reservations::get),
        )
        .service(http::resource("/reservations/{id}/commit", "POST").post(reservations::commit))
        .service(http::resource("/reservations/{id}/release", "POST").post(reservations::release));
}
