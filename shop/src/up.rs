//! `shop up`: both services in one process, on the embedded defaults.
//!
//! Each service keeps its own files (`DATA/products/`, `DATA/orders/`) and orders reaches
//! products over loopback HTTP with its own products:read token, exactly as in production. On
//! first run a development root key pair is created under `DATA/keys/` and an admin token is
//! written to `DATA/admin.token`; later runs reuse them. Ctrl-C or SIGTERM stops both
//! gracefully: in-flight requests finish and the stores are flushed and closed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use service_kit::auth::keys;
use service_kit::auth::tokens::{self, TokenSpec};
use service_kit::config::CommonArgs;
use service_kit::telemetry;

use crate::Error;
use crate::cli::UpArgs;

/// How long the development admin token lives.
const ADMIN_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Writes a secret file readable by its owner only.
fn write_secret(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{text}\n").as_bytes())
}

/// The URL a client on this machine uses for a listening address (0.0.0.0 → 127.0.0.1).
fn local_url(addr: &str, port: u16) -> String {
    let host = addr
        .parse::<SocketAddr>()
        .map(|a| match a.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            ip if ip.is_ipv6() => format!("[{ip}]"),
            ip => ip.to_string(),
        })
        .unwrap_or_else(|_| "127.0.0.1".to_owned());
    format!("http://{host}:{port}")
}

fn common(args: &UpArgs, data_dir: &Path, public_key_file: &Path) -> CommonArgs {
    CommonArgs {
        data_dir: data_dir.to_owned(),
        public_key_file: public_key_file.to_owned(),
        durability: args.durability,
        log_format: args.log_format,
        revoked_tokens_file: None,
        body_limit: service_kit::json::DEFAULT_BODY_LIMIT,
        workers: None,
    }
}

/// Runs both services until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> Result<(), Error> {
    telemetry::init(args.log_format, "info");
    let data = &args.data_dir;
    let keys_dir = data.join("keys");
    let root = keys::load_or_generate(&keys_dir)?;
    let public_key = keys::public_key_path(&keys_dir);
    // A fresh admin token each run (the old one stays valid until it expires).
    let admin = tokens::mint(
        &root,
        &TokenSpec {
            user: "admin".into(),
            rights: Vec::new(),
            admin: true,
            ttl: Some(ADMIN_TTL),
        },
    )?;
    let admin_file = data.join("admin.token");
    write_secret(&admin_file, &admin)?;
    let service_token = tokens::mint(
        &root,
        &TokenSpec {
            user: "orders-service".into(),
            rights: vec!["products:read".parse()?],
            admin: false,
            ttl: None,
        },
    )?;
    let service_token_file = keys_dir.join("orders-service.token");
    write_secret(&service_token_file, &service_token)?;

    let products = products::startup::Application::build(
        products::configuration::Config {
            listen: args.products_addr.clone(),
            common: common(&args, &data.join("products"), &public_key),
        },
        false,
    )
    .await?;
    let products_url = local_url(&args.products_addr, products.port());
    let orders = orders::startup::Application::build(
        orders::configuration::Config {
            listen: args.orders_addr.clone(),
            products_url: products_url.clone(),
            products_token_file: service_token_file,
            products_timeout_ms: 2000,
            common: common(&args, &data.join("orders"), &public_key),
        },
        false,
    )
    .await?;
    let orders_url = local_url(&args.orders_addr, orders.port());
    println!(
        "shop is up (data in {data})\n\
         \n  products  {products_url}   docs {products_url}/docs/\
         \n  orders    {orders_url}   docs {orders_url}/docs/\
         \n\nadmin token (also in {admin_file}):\n{admin}\n\
         \ntry:\n  curl -s -H \"Authorization: Bearer $(cat {admin_file})\" -H 'Content-Type: application/json' \\\n       -d '{{\"name\":\"Green tea\",\"price\":\"4.20\"}}' {products_url}/products\n\
         \nCtrl-C stops both services.",
        data = data.display(),
        admin_file = admin_file.display(),
    );
    let _ = std::io::stdout().flush();

    let (products_stopper, orders_stopper) = (products.stopper(), orders.stopper());
    let mut products_run = tokio::spawn(products.run_until_stopped());
    let mut orders_run = tokio::spawn(orders.run_until_stopped());
    let stopped_early = tokio::select! {
        _ = service_kit::shutdown::signal() => false,
        _ = &mut products_run => true,
        _ = &mut orders_run => true,
    };
    if stopped_early {
        tracing::error!("a service stopped on its own; stopping the other");
    }
    tracing::info!("stopping: orders first (it calls products), then products");
    orders_stopper.stop().await;
    products_stopper.stop().await;
    for run in [orders_run, products_run] {
        if !run.is_finished() || !stopped_early {
            let _ = run.await;
        }
    }
    println!("shop stopped; data flushed in {}", data.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_urls_are_reachable_addresses() {
        assert_eq!(local_url("0.0.0.0:8081", 8081), "http://127.0.0.1:8081");
        assert_eq!(local_url("127.0.0.1:0", 4321), "http://127.0.0.1:4321");
        assert_eq!(local_url("[::1]:0", 5), "http://[::1]:5");
    }
}
