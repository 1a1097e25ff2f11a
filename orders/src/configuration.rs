//! The `orders` binary's settings.

use std::path::PathBuf;

use service_kit::config::CommonArgs;

/// Runs the orders service.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "orders",
    version,
    about = "The orders service: orders of products, validated against the products API."
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "SHOP_LISTEN", default_value = "127.0.0.1:8082")]
    pub listen: String,
    /// Base URL of the products service.
    #[arg(
        long,
        env = "SHOP_PRODUCTS_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub products_url: String,
    /// File holding orders' own token for products (products:read), from `shop token mint`.
    #[arg(long, env = "SHOP_PRODUCTS_TOKEN_FILE")]
    pub products_token_file: PathBuf,
    /// Timeout of one call to products (all its attempts, retries included), in milliseconds.
    #[arg(long, env = "SHOP_PRODUCTS_TIMEOUT_MS", default_value_t = 2000)]
    pub products_timeout_ms: u64,
    /// Settings shared with products.
    #[command(flatten)]
    pub common: CommonArgs,
}
