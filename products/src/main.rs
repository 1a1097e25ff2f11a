//! `products`: runs the products service until SIGTERM or Ctrl-C.

use clap::Parser;
use products::configuration::Config;
use products::startup::Application;
use service_kit::telemetry;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    telemetry::init(config.common.log_format, "info");
    let listen = config.listen.clone();
    let app = match Application::build(config, false).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "products could not start");
            eprintln!("products: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, port = app.port(), "products listening");
    // Our own signal handling, so that event streams end before the graceful stop.
    let stopper = app.stopper();
    let mut running = tokio::spawn(app.run_until_stopped());
    let finished = tokio::select! {
        finished = &mut running => Some(finished),
        _ = service_kit::shutdown::signal() => None,
    };
    let finished = match finished {
        Some(finished) => finished,
        None => {
            tracing::info!("stopping: finishing requests, flushing the store");
            stopper.stop().await;
            running.await
        }
    };
    match finished.unwrap_or_else(|e| Err(std::io::Error::other(e))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("products: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
