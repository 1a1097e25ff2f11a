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
    let app = match Application::build(config, true).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "products could not start");
            eprintln!("products: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, port = app.port(), "products listening");
    match app.run_until_stopped().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("products: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
