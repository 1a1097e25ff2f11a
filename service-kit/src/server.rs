//! Running a service: one bootstrap for every service ([`bind`]: the routes and middleware every
//! app has, the listener, the workers), a graceful stop that ends event streams first
//! ([`Stopper`]), and the body of the binaries' `main` ([`serve`]).
//!
//! A service's own `startup` keeps only what is its own: its stores, its background tasks and
//! its route table.

use std::future::Future;
use std::net::TcpListener;
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use utoipa::openapi::OpenApi;

use crate::auth::keys;
use crate::config::CommonArgs;
use crate::health::{self, Readiness};
use crate::metrics::{self, Metrics};
use crate::{Authenticator, docs, http, sse, telemetry};

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The public key file is missing or not a key.
    #[error(transparent)]
    Key(#[from] keys::KeyError),
    /// A file the configuration names could not be read.
    #[error("{path}: {source}")]
    File {
        /// The file, as configured.
        path: String,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// A store could not be opened (locked by another process, corrupt, unwritable).
    #[error(transparent)]
    Store(#[from] store_actor::StoreError),
    /// A part of the service refused its configuration (e.g. a client's base URL).
    #[error("{0}")]
    Config(String),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address, as configured.
        addr: String,
        /// Why binding failed (in use, not an address).
        source: std::io::Error,
    },
}

/// Reads a file the configuration names, trimmed (a token file, say).
pub fn read_config_file(path: &Path) -> Result<String, StartupError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| StartupError::File {
            path: path.display().to_string(),
            source,
        })
}

/// The token verifier of `common`: its root public key, revocation list and token size limit.
pub fn authenticator(common: &CommonArgs) -> Result<Authenticator, StartupError> {
    let root = keys::read_public(&common.public_key_file)?;
    let revoked = common.revoked_ids().map_err(|source| StartupError::File {
        path: format!("{:?}", common.revoked_tokens_file),
        source,
    })?;
    let limits = crate::auth::TokenLimits {
        max_bytes: common.max_token_bytes,
        ..Default::default()
    };
    Ok(Authenticator::new(root, revoked).with_token_limits(limits))
}

/// What a service hands [`bind`] besides its routes.
pub struct Parts {
    /// The service's name (`products`, `orders`): every request's log lines carry it.
    pub name: &'static str,
    /// The app's registry (the service has registered its own metrics in it).
    pub metrics: Metrics,
    /// The app's readiness checks.
    pub readiness: Readiness,
    /// The app's OpenAPI document.
    pub openapi: OpenApi,
    /// Ends the app's event streams at shutdown.
    pub closing: sse::Closing,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts").finish_non_exhaustive()
    }
}

/// The app data and routes every service has: auth, metrics, readiness, extractor error
/// handlers with the body limit, `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and `/docs/`.
#[derive(Clone)]
struct Common {
    auth: web::Data<Authenticator>,
    metrics: web::Data<Metrics>,
    readiness: web::Data<Readiness>,
    body: crate::json::BodyLimits,
    openapi: OpenApi,
}

impl Common {
    fn configure(&self, cfg: &mut web::ServiceConfig) {
        http::configure_extractors(cfg, self.body);
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

/// Binds `listen` (`:0` picks a free port) and builds the server: the common routes and
/// middleware, then `routes` (the service's own data and resources), then problem+json 404s
/// for everything else. Nothing is served until [`Bound::run_until_stopped`].
pub fn bind<F>(
    listen: &str,
    common: &CommonArgs,
    parts: Parts,
    routes: F,
) -> Result<Bound, StartupError>
where
    F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
{
    let bind_error = |source| StartupError::Bind {
        addr: listen.to_owned(),
        source,
    };
    let auth = authenticator(common)?;
    auth.register_metrics(&parts.metrics);
    parts.metrics.build_info(parts.name);
    let shared = Common {
        auth: web::Data::new(auth),
        metrics: web::Data::new(parts.metrics),
        readiness: web::Data::new(parts.readiness),
        body: crate::json::BodyLimits {
            limit: common.body_limit,
            timeout: std::time::Duration::from_millis(common.body_timeout_ms),
        },
        openapi: parts.openapi,
    };
    let listener = TcpListener::bind(listen).map_err(bind_error)?;
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let name = web::Data::new(telemetry::ServiceName(parts.name));
    let workers = common.workers.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    // actix-server's own start-up lines do not say which service they are about (the default
    // filter quiets them): this one does.
    tracing::info!(service = parts.name, %listen, port, workers, "{} bound", parts.name);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(name.clone())
            .wrap(from_fn(metrics::track))
            .wrap(from_fn(telemetry::request_span))
            // The service's routes first: the router tries resources in order, and the common
            // ones end in Swagger UI's `/docs/{_:.*}`, a regex every request would pay for.
            .configure(routes.clone())
            .configure(|cfg| shared.configure(cfg))
            .default_service(web::to(http::not_found))
    })
    // Long-lived event streams would otherwise hold a shutdown for the default 30 s.
    .shutdown_timeout(5)
    // Stopping is ours (`Stopper`), so that event streams end before the graceful stop.
    .disable_signals()
    .listen(listener)
    .map_err(bind_error)?;
    server = server.workers(workers);
    Ok(Bound {
        port,
        server: server.run(),
        closing: parts.closing,
        teardown: Vec::new(),
    })
}

type Teardown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A built, bound, not yet running service.
pub struct Bound {
    port: u16,
    server: actix_web::dev::Server,
    closing: sse::Closing,
    /// Run in order once the server has stopped (stop background tasks, close stores).
    teardown: Vec<Teardown>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound").field("port", &self.port).finish()
    }
}

impl Bound {
    /// Adds a step to run after the server has stopped serving, after the ones added before.
    pub fn on_stop(mut self, step: impl Future<Output = ()> + Send + 'static) -> Self {
        self.teardown.push(Box::pin(step));
        self
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server (see [`Stopper`]).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            handle: self.server.handle(),
            closing: self.closing.clone(),
        }
    }

    /// Serves until stopped, then runs the teardown steps.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        for step in self.teardown {
            step.await;
        }
        served
    }
}

/// Stops a running service.
#[derive(Debug, Clone)]
pub struct Stopper {
    handle: ServerHandle,
    closing: sse::Closing,
}

impl Stopper {
    /// Ends event streams, then stops the server gracefully (in-flight requests finish).
    pub async fn stop(&self) {
        self.closing.close();
        self.handle.stop(true).await;
    }

    /// Stops at once, dropping open connections (what a test does instead of waiting out a
    /// client's open stream).
    pub async fn stop_now(&self) {
        self.closing.close();
        self.handle.stop(false).await;
    }
}

/// The body of a service binary's `main`: report a failed start, serve until Ctrl-C or
/// SIGTERM, stop gracefully.
pub async fn serve(name: &str, listen: &str, built: Result<Bound, StartupError>) -> ExitCode {
    let service = match built {
        Ok(service) => service,
        Err(e) => {
            tracing::error!(error = %e, "{name} could not start");
            eprintln!("{name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, port = service.port(), "{name} listening");
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
