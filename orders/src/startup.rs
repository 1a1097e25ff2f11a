//! Building and running the app: open the stores, start following products, bind, serve until
//! stopped, then stop following and close the stores.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use products::client::{ClientConfig, ProductsClient};
use service_kit::auth::keys;
use service_kit::health::Readiness;
use service_kit::idempotency::InFlight;
use service_kit::metrics::{self, Metrics};
use service_kit::server::{Common, Service, Stopper};
use service_kit::{Authenticator, http, telemetry};
use store_actor::Store;
use tokio::task::JoinHandle;
use utoipa::OpenApi;

use crate::configuration::Config;
use crate::follower::{ArchivedProducts, FeedMetrics, Follower};
use crate::openapi::ApiDoc;
use crate::routes::{events, orders};
use crate::store::{self, CursorStore, OrderStore};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The public key file.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// A file the configuration names.
    #[error("{path}: {source}")]
    File {
        /// Its path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The products client.
    #[error(transparent)]
    Client(#[from] products::client::ClientError),
    /// A store.
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

/// A built, bound, not yet running orders service.
pub struct Application {
    port: u16,
    server: Server,
    closing: service_kit::sse::Closing,
    orders: OrderStore,
    cursor: CursorStore,
    follower: JoinHandle<()>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("port", &self.port)
            .finish()
    }
}

fn read_file(path: &std::path::Path) -> Result<String, StartupError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| StartupError::File {
            path: path.display().to_string(),
            source,
        })
}

impl Application {
    /// Opens the stores, starts following products, binds the address (`:0` picks a port).
    pub async fn build(config: Config, handle_signals: bool) -> Result<Self, StartupError> {
        let common = &config.common;
        let root = keys::read_public(&common.public_key_file)?;
        let revoked = common.revoked_ids().map_err(|source| StartupError::File {
            path: format!("{:?}", common.revoked_tokens_file),
            source,
        })?;
        let token = read_file(&config.products_token_file)?;
        let mut client_config = ClientConfig::new(&config.products_url, token);
        client_config.timeout = Duration::from_millis(config.products_timeout_ms);
        let products = ProductsClient::new(client_config)?;
        let orders = Store::open(store::options(&common.data_dir, common.durability)).await?;
        let cursor = Store::open(store::cursor_options(&common.data_dir)).await?;
        let listener = TcpListener::bind(&config.listen).map_err(|source| StartupError::Bind {
            addr: config.listen.clone(),
            source,
        })?;
        let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);

        let metrics = Metrics::new();
        {
            let orders = orders.clone();
            metrics.register_store("orders", Box::new(move || orders.status()));
            let cursor = cursor.clone();
            metrics.register_store("products-feed", Box::new(move || cursor.status()));
        }
        products.register_metrics(&metrics);
        let feed_metrics = FeedMetrics::default();
        feed_metrics.register(&metrics);
        let archived = ArchivedProducts::default();
        let follower = Follower {
            products: products.clone(),
            orders: orders.clone(),
            cursor: cursor.clone(),
            metrics: feed_metrics,
            archived: archived.clone(),
        };
        let follower = tokio::spawn(follower.run());

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
        let closing = service_kit::sse::Closing::default();
        let state = web::Data::new(orders::OrdersState {
            store: orders.clone(),
            products,
            in_flight: InFlight::default(),
            archived,
            closing: closing.clone(),
        });
        let shared = Common {
            auth: web::Data::new(Authenticator::new(root, revoked)),
            metrics: web::Data::new(metrics),
            readiness: web::Data::new(readiness),
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
                    web::resource("/orders")
                        .post(orders::create)
                        .get(orders::list)
                        .default_service(web::to(http::method_not_allowed("GET, POST"))),
                )
                .service(
                    web::resource("/orders/events")
                        .get(events::feed)
                        .default_service(web::to(http::method_not_allowed("GET"))),
                )
                .service(
                    web::resource("/orders/{id}")
                        .get(orders::get)
                        .patch(orders::update)
                        .delete(orders::delete)
                        .default_service(web::to(http::method_not_allowed("GET, PATCH, DELETE"))),
                )
                .default_service(web::to(http::not_found))
        })
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
            orders,
            cursor,
            follower,
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

    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped; then stops following products and closes the stores.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.follower.abort();
        let _ = self.follower.await;
        for (name, closed) in [
            ("orders", self.orders.close().await),
            ("cursor", self.cursor.close().await),
        ] {
            if let Err(e) = closed {
                tracing::error!(store = name, error = %e, "closing the store failed");
            }
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
