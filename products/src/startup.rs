//! Building and running the app: open the store, bind, serve until stopped, close the store.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use service_kit::auth::keys;
use service_kit::health::{self, Readiness};
use service_kit::idempotency::InFlight;
use service_kit::metrics::{self, Metrics};
use service_kit::{Authenticator, config, docs, http, telemetry};
use store_actor::Store;
use utoipa::OpenApi;

use crate::configuration::Config;
use crate::openapi::ApiDoc;
use crate::routes::{events, products};
use crate::store::{self, ProductStore};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The public key file.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// The revocation list.
    #[error("revocation list {path}: {source}")]
    Revocations {
        /// Its path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The store.
    #[error(transparent)]
    Store(#[from] store_actor::StoreError),
    /// Binding the address.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// Stops a running application (see [`Application::stopper`]).
#[derive(Debug, Clone)]
pub struct Stopper {
    handle: ServerHandle,
    closing: service_kit::sse::Closing,
}

impl Stopper {
    /// Ends event streams, then stops the server gracefully (in-flight requests finish).
    pub async fn stop(&self) {
        self.closing.close();
        self.handle.stop(true).await;
    }
}

/// A built, bound, not yet running products service.
pub struct Application {
    port: u16,
    server: Server,
    closing: service_kit::sse::Closing,
    store: ProductStore,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish()
    }
}

impl Application {
    /// Opens the store and binds the address (`:0` picks a free port). With `handle_signals`
    /// the server stops gracefully on SIGTERM / Ctrl-C.
    pub async fn build(config: Config, handle_signals: bool) -> Result<Self, StartupError> {
        let common = &config.common;
        let root = keys::read_public(&common.public_key_file)?;
        let revoked = match &common.revoked_tokens_file {
            Some(path) => {
                config::read_revocation_list(path).map_err(|source| StartupError::Revocations {
                    path: path.display().to_string(),
                    source,
                })?
            }
            None => Vec::new(),
        };
        let store = Store::open(store::options(&common.data_dir, common.durability)).await?;
        let listener = TcpListener::bind(&config.listen).map_err(|source| StartupError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);

        let closing = service_kit::sse::Closing::default();
        let state = web::Data::new(products::ProductsState {
            store: store.clone(),
            in_flight: InFlight::default(),
            closing: closing.clone(),
        });
        let auth = web::Data::new(Authenticator::new(root, revoked));
        let metrics = Metrics::new();
        {
            let store = store.clone();
            metrics.register_store("products", Box::new(move || store.status()));
        }
        let metrics = web::Data::new(metrics);
        let readiness = web::Data::new(Readiness::new().store("store", store.clone()));
        let body_limit = common.body_limit;
        let openapi = ApiDoc::openapi();

        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(metrics::track))
                .wrap(from_fn(telemetry::request_span))
                .app_data(state.clone())
                .app_data(auth.clone())
                .app_data(metrics.clone())
                .app_data(readiness.clone())
                .configure(|cfg| http::configure_extractors(cfg, body_limit))
                .route("/healthz", web::get().to(health::healthz))
                .route("/readyz", web::get().to(health::readyz))
                .route("/metrics", web::get().to(metrics::endpoint))
                .route("/docs", web::get().to(docs::redirect))
                .service(docs::swagger_ui(openapi.clone()))
                .service(
                    web::resource("/products")
                        .post(products::create)
                        .get(products::list)
                        .default_service(web::to(http::method_not_allowed("GET, POST"))),
                )
                .service(
                    web::resource("/products/lookup")
                        .post(products::lookup)
                        .default_service(web::to(http::method_not_allowed("POST"))),
                )
                .service(
                    web::resource("/products/events")
                        .get(events::feed)
                        .default_service(web::to(http::method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/products/{id}")
                        .get(products::get)
                        .patch(products::update)
                        .delete(products::archive)
                        .default_service(web::to(http::method_not_allowed("GET, PATCH, DELETE"))),
                )
                .default_service(web::to(http::not_found))
        })
        // Long-lived event streams would otherwise hold a shutdown for the default 30 s.
        .shutdown_timeout(5)
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        if let Some(workers) = common.workers {
            server = server.workers(workers);
        }
        if !handle_signals {
            server = server.disable_signals();
        }
        Ok(Self {
            port,
            server: server.run(),
            closing,
            store,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server gracefully: event streams end at once, other requests finish.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            handle: self.server.handle(),
            closing: self.closing.clone(),
        }
    }

    /// A handle to stop the server (gracefully with `stop(true)`).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped, then flushes and closes the store.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        if let Err(e) = self.store.close().await {
            tracing::error!(error = %e, "closing the store failed");
        }
        served
    }
}
