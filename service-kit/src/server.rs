//! What running a service needs beyond its app: the routes and data every service has, a
//! graceful stop that ends event streams first, and a `main` that waits for the stop signal.

use std::future::Future;
use std::process::ExitCode;

use actix_web::dev::ServerHandle;
use actix_web::web;
use utoipa::openapi::OpenApi;

use crate::health::{self, Readiness};
use crate::metrics::{self, Metrics};
use crate::{Authenticator, docs, http, sse};

/// The app data and routes every service has: auth, metrics, readiness, extractor error
/// handlers with the body limit, `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and `/docs/`.
#[derive(Clone)]
pub struct Common {
    /// Verifies tokens.
    pub auth: web::Data<Authenticator>,
    /// The app's registry.
    pub metrics: web::Data<Metrics>,
    /// The app's readiness checks.
    pub readiness: web::Data<Readiness>,
    /// Largest request body.
    pub body_limit: usize,
    /// The app's OpenAPI document.
    pub openapi: OpenApi,
}

impl std::fmt::Debug for Common {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Common")
            .field("body_limit", &self.body_limit)
            .finish()
    }
}

impl Common {
    /// Adds the shared data and routes to an app.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        http::configure_extractors(cfg, self.body_limit);
        cfg.app_data(self.auth.clone())
            .app_data(self.metrics.clone())
            .app_data(self.readiness.clone())
            .route("/healthz", web::get().to(health::healthz))
            .route("/readyz", web::get().to(health::readyz))
            .route("/metrics", web::get().to(metrics::endpoint))
            .route("/docs", web::get().to(docs::redirect))
            .service(docs::swagger_ui(self.openapi.clone()));
    }
}

/// Stops a running service: event streams end at once, other requests finish.
#[derive(Debug, Clone)]
pub struct Stopper {
    handle: ServerHandle,
    closing: sse::Closing,
}

impl Stopper {
    /// A stopper for the server behind `handle`, whose streams follow `closing`.
    pub fn new(handle: ServerHandle, closing: sse::Closing) -> Self {
        Self { handle, closing }
    }

    /// Ends event streams, then stops the server gracefully (in-flight requests finish).
    pub async fn stop(&self) {
        self.closing.close();
        self.handle.stop(true).await;
    }
}

/// A built, bound service, as `main` runs it.
pub trait Service {
    /// The bound port.
    fn port(&self) -> u16;
    /// Its stopper.
    fn stopper(&self) -> Stopper;
    /// Serves until stopped, then releases its stores.
    fn run_until_stopped(self) -> impl Future<Output = std::io::Result<()>> + Send + 'static;
}

/// The body of a service binary's `main`: report a failed start, serve until Ctrl-C or
/// SIGTERM, stop gracefully.
pub async fn serve<S: Service, E: std::fmt::Display>(
    name: &str,
    listen: &str,
    built: Result<S, E>,
) -> ExitCode {
    let service = match built {
        Ok(service) => service,
        Err(e) => {
            tracing::error!(error = %e, "{name} could not start");
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, port = service.port(), "{name} listening");
    // Our own signal handling, so that event streams end before the graceful stop.
    let stopper = service.stopper();
    let mut running = tokio::spawn(service.run_until_stopped());
    let finished = tokio::select! {
        finished = &mut running => finished,
        _ = crate::shutdown::signal() => {
            tracing::info!("stopping: finishing requests, flushing the store");
            stopper.stop().await;
            running.await
        }
    };
    match finished.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
