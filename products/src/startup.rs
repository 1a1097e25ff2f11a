//! Building and running the app: open the store, bind, serve until stopped, close the store.

use std::net::TcpListener;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use service_kit::auth::keys;
use service_kit::health::Readiness;
use service_kit::idempotency::InFlight;
use service_kit::metrics::{self, Metrics};
use service_kit::server::{Common, Service, Stopper};
use service_kit::{Authenticator, http, telemetry};
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
        let revoked = common
            .revoked_ids()
            .map_err(|source| StartupError::Revocations {
                path: format!("{:?}", common.revoked_tokens_file),
                source,
            })?;
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
        let metrics = Metrics::new();
        {
            let store = store.clone();
            metrics.register_store("products", Box::new(move || store.status()));
        }
        let shared = Common {
            auth: web::Data::new(Authenticator::new(root, revoked)),
            metrics: web::Data::new(metrics),
            readiness: web::Data::new(Readiness::new().store("store", store.clone())),
            body_limit: common.body_limit,
            openapi: ApiDoc::openapi(),
        };

        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(metrics::track))
                .wrap(from_fn(telemetry::request_span))
                .app_data(state.clone())
                .configure(|cfg| shared.configure(cfg))
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
        Stopper::new(self.server.handle(), self.closing.clone())
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

impl Service for Application {
    fn port(&self) -> u16 {
        self.port
    }

    fn stopper(&self) -> Stopper {
        Application::stopper(self)
    }

    fn run_until_stopped(
        self,
    ) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
        Application::run_until_stopped(self)
    }
}
