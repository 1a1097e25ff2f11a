//! Building the app: open the store, declare the routes, bind. Serving and stopping are
//! [`service_kit::server`]'s.

use actix_web::web;
use service_kit::health::Readiness;
use service_kit::http;
use service_kit::metrics::Metrics;
use service_kit::server::{self, Bound, Parts, StartupError};
use service_kit::sse::Closing;
use store_actor::Store;
use utoipa::OpenApi;

use crate::configuration::Config;
use crate::openapi::ApiDoc;
use crate::routes::{ProductsState, events, products};
use crate::service::ProductService;
use crate::store;

/// Opens the store and binds the address (`:0` picks a free port); serve it with
/// [`Bound::run_until_stopped`], which closes the store after the server stops.
pub async fn build(config: Config) -> Result<Bound, StartupError> {
    let common = &config.common;
    let store = Store::open(store::options(&common.data_dir, common.durability)).await?;
    let metrics = Metrics::new();
    {
        let store = store.clone();
        metrics.register_store("products", Box::new(move || store.status()));
    }
    let closing = Closing::default();
    let state = web::Data::new(ProductsState {
        service: ProductService::new(store.clone()),
        closing: closing.clone(),
    });
    let parts = Parts {
        metrics,
        readiness: Readiness::new().store("store", store.clone()),
        openapi: ApiDoc::openapi(),
        closing,
    };
    let bound = server::bind(&config.listen, common, parts, move |cfg| {
        routes(cfg, state.clone())
    })?;
    Ok(bound.on_stop(async move {
        if let Err(e) = store.close().await {
            tracing::error!(error = %e, "closing the store failed");
        }
    }))
}

/// The route table.
fn routes(cfg: &mut web::ServiceConfig, state: web::Data<ProductsState>) {
    cfg.app_data(state)
        .service(
            http::resource("/products", "GET, POST")
                .post(products::create)
                .get(products::list),
        )
        .service(http::resource("/products/lookup", "POST").post(products::lookup))
        .service(http::resource("/products/events", "GET").get(events::feed))
        .service(http::resource("/products/{id}/stock", "POST").post(products::adjust_stock))
        .service(
            http::resource("/products/{id}", "GET, PATCH, DELETE")
                .get(products::get)
                .patch(products::update)
                .delete(products::archive),
        );
}
