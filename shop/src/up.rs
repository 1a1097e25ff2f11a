//! `shop up`: both services in one process, on the embedded defaults.
//!
//! Each service keeps its own files (`DATA/products/`, `DATA/orders/`) and orders reaches
//! products over loopback HTTP with its own products:read + products:reserve token, exactly as in production. On
//! first run a development root key pair is created under `DATA/keys/` and an admin token is
//! written to `DATA/admin.token`; later runs reuse them. Ctrl-C or SIGTERM stops both
//! gracefully: in-flight requests finish and the stores are flushed and closed, exit status 0.
//! A service that fails to start, or stops without being asked to, is an error naming it (the
//! other one is stopped gracefully first), exit status 1.

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

/// `text` as one word for a POSIX shell: in single quotes, each `'` written as `'\''`.
fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
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
        durability: args.durability,
        log_format: args.log_format,
        memory: args.memory,
        cache_mb: args.cache_mb,
        ..CommonArgs::new(data_dir.to_owned(), public_key_file.to_owned())
    }
}

/// Runs both services until Ctrl-C or SIGTERM.
pub async fn run(args: UpArgs) -> Result<(), Error> {
    telemetry::init(args.log_format, telemetry::DEFAULT_FILTER);
    let data = &args.data_dir;
    let keys_dir = data.join("keys");
    let root = keys::load_or_generate(&keys_dir)?;
    let public_key = keys::public_key_path(&keys_dir);

    // Products first: opening its store takes the data directory's lock, so a second `shop up`
    // on data in use fails here, before it has rewritten any file.
    let products = products::startup::build(products::configuration::Config {
        listen: args.products_addr.clone(),
        reservation_ttl: std::time::Duration::from_secs(300),
        common: common(&args, &data.join("products"), &public_key),
    })
    .await
    .map_err(|e| format!("products could not start: {e}"))?;
    let products_url = local_url(&args.products_addr, products.port());
    let stop_products = |products: service_kit::server::Bound| async move {
        // Products is already serving: stop it and close its store before giving up.
        let stopper = products.stopper();
        let run = tokio::spawn(products.run_until_stopped());
        stopper.stop().await;
        let _ = run.await;
    };
    let minted = (|| -> Result<(std::path::PathBuf, String), Error> {
        let service_token = tokens::mint(
            &root,
            &TokenSpec {
                user: "orders-service".into(),
                rights: vec!["products:read".parse()?, "products:reserve".parse()?],
                admin: false,
                ttl: None,
            },
        )?;
        let service_token_file = keys_dir.join("orders-service.token");
        write_secret(&service_token_file, &service_token)?;
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
        Ok((service_token_file, admin))
    })();
    let (service_token_file, admin) = match minted {
        Ok(minted) => minted,
        Err(e) => {
            stop_products(products).await;
            return Err(e);
        }
    };
    let orders = match orders::startup::build(orders::configuration::Config {
        listen: args.orders_addr.clone(),
        products_url: products_url.clone(),
        products_token_file: service_token_file,
        products_timeout_ms: 2000,
        common: common(&args, &data.join("orders"), &public_key),
    })
    .await
    {
        Ok(orders) => orders,
        Err(e) => {
            stop_products(products).await;
            return Err(format!("orders could not start: {e}").into());
        }
    };
    // Both stores are locked now: this run owns the data directory.
    let admin_file = data.join("admin.token");
    write_secret(&admin_file, &admin)?;
    let orders_url = local_url(&args.orders_addr, orders.port());
    // Listen for the signals before saying we are up: one sent right after the banner must
    // stop us gracefully, not kill us.
    let shutdown = shutdown_signal()?;
    println!(
        "shop is up (data in {data})\n\
         \n  products  {products_url}   docs {products_url}/docs/\
         \n  orders    {orders_url}   docs {orders_url}/docs/\
         \n\nadmin token (also in {admin_file}):\n{admin}\n\
         \ntry:\n  curl -s -H \"Authorization: Bearer $(cat {quoted_file})\" -H 'Content-Type: application/json' \\\n       -d '{{\"name\":\"Green tea\",\"price\":\"4.20\"}}' {products_url}/products\n\
         \nCtrl-C stops both services.",
        data = data.display(),
        admin_file = admin_file.display(),
        quoted_file = shell_quoted(&admin_file.display().to_string()),
    );
    let _ = std::io::stdout().flush();

    let (products_stopper, orders_stopper) = (products.stopper(), orders.stopper());
    let mut products_run = tokio::spawn(products.run_until_stopped());
    let mut orders_run = tokio::spawn(orders.run_until_stopped());
    let early = first_to_stop(shutdown, &mut products_run, &mut orders_run).await;
    if let Some(early) = &early {
        tracing::error!("{early}; stopping the other service");
    }
    tracing::info!("stopping: orders first (it calls products), then products");
    orders_stopper.stop().await;
    products_stopper.stop().await;
    // The service that stopped early has already been awaited (its outcome is in `early`).
    let mut failures: Vec<String> = early.iter().map(ToString::to_string).collect();
    for (name, run) in [("orders", orders_run), ("products", products_run)] {
        if early.as_ref().is_some_and(|e| e.service == name) {
            continue;
        }
        if let Err(e) = flatten(run.await) {
            failures.push(format!("{name} failed while stopping: {e}"));
        }
    }
    if failures.is_empty() {
        println!("shop stopped; data flushed in {}", data.display());
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. Unlike `service_kit::shutdown::signal`, the handlers
/// are installed when this is called, not when the future is first polled.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

/// What a service's task ended with: its own error, or its panic.
type Ended = Result<std::io::Result<()>, tokio::task::JoinError>;

fn flatten(ended: Ended) -> std::io::Result<()> {
    ended.unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// A service that stopped before it was asked to: always a failure of `shop up`.
#[derive(Debug)]
struct EarlyStop {
    service: &'static str,
    result: std::io::Result<()>,
}

impl std::fmt::Display for EarlyStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.result {
            Ok(()) => write!(f, "{} stopped on its own", self.service),
            Err(e) => write!(f, "{} stopped on its own: {e}", self.service),
        }
    }
}

/// Waits for the shutdown signal (`None`) or for either service to stop on its own (which one
/// and why). The service that stopped has been awaited: its handle must not be awaited again.
async fn first_to_stop<P, O>(
    shutdown: impl Future<Output = ()>,
    products: &mut P,
    orders: &mut O,
) -> Option<EarlyStop>
where
    P: Future<Output = Ended> + Unpin,
    O: Future<Output = Ended> + Unpin,
{
    tokio::select! {
        () = shutdown => None,
        ended = products => Some(EarlyStop { service: "products", result: flatten(ended) }),
        ended = orders => Some(EarlyStop { service: "orders", result: flatten(ended) }),
    }
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

    /// A service that ends before the signal is reported by name, with its error; while both
    /// run, the signal wins.
    #[tokio::test]
    async fn a_service_stopping_on_its_own_is_a_named_failure() {
        let pending = || tokio::spawn(std::future::pending::<std::io::Result<()>>());
        let mut products = tokio::spawn(async { Err(std::io::Error::other("disk on fire")) });
        let mut orders = pending();
        let early = first_to_stop(std::future::pending(), &mut products, &mut orders)
            .await
            .unwrap();
        assert_eq!(early.service, "products");
        assert_eq!(
            early.to_string(),
            "products stopped on its own: disk on fire"
        );

        let mut products = pending();
        let mut orders = tokio::spawn(async { Ok(()) });
        let early = first_to_stop(std::future::pending(), &mut products, &mut orders)
            .await
            .unwrap();
        assert_eq!(early.to_string(), "orders stopped on its own");

        let mut orders = tokio::spawn(async { panic!("boom") });
        let early = first_to_stop(std::future::pending(), &mut products, &mut orders)
            .await
            .unwrap();
        assert_eq!(early.service, "orders");
        assert!(early.to_string().contains("panicked"), "{early}");

        let mut orders = pending();
        let early = first_to_stop(std::future::ready(()), &mut products, &mut orders).await;
        assert!(early.is_none());
    }
}
