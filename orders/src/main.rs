//! `orders`: runs the orders service until SIGTERM or Ctrl-C.

use clap::Parser;
use orders::configuration::Config;
use service_kit::telemetry;

#[global_allocator]
static ALLOCATOR: service_kit::Allocator = service_kit::Allocator;

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    telemetry::init(config.common.log_format, telemetry::DEFAULT_FILTER);
    let listen = config.listen.clone();
    let built = orders::startup::build(config).await;
    service_kit::server::serve("orders", &listen, built).await
}
