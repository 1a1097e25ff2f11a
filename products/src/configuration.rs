//! The `products` binary's settings.

use service_kit::config::CommonArgs;

/// Runs the products service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "products",
    version,
    about = "The products service: an authenticated REST API over a JSON store."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: String,
    /// Settings shared with orders.
    #[command(flatten)]
    pub common: CommonArgs,
}
