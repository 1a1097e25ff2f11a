//! `orders`: runs the orders service until SIGTERM or Ctrl-C.

use clap::Parser;
use orders::configuration::Config;
use orders::startup::Application;
use service_kit::telemetry;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    telemetry::init(config.common.log_format, "info");
    let listen = config.listen.clone();
    let app = match Application::build(config, true).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "orders could not start");
            eprintln!("orders: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(%listen, port = app.port(), "orders listening");
    match app.run_until_stopped().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("orders: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
