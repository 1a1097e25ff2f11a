//! Placing an order, for counting its instructions under callgrind (`scripts/instructions`):
//! both services in this one process, as `shop up` runs them (products and orders, one HTTP
//! worker each, orders calling products over loopback HTTP with its own service token), and a
//! blocking client placing orders of 3 stock-tracked products one at a time.
//!
//! ```sh
//! cargo build --release -p shop --example order-instructions
//! valgrind --tool=callgrind target/release/examples/order-instructions order-place N
//! ```
//!
//! After the set-up (100 products), `N` orders are placed; then the client waits until the
//! last order's stock is `confirmed`, so that the settler's commits (and orders' record of them)
//! are counted too. As with products' example, the script runs two values of `N` and divides
//! the difference by the difference in `N`: one order's cost in every thread of the process
//! (both services' HTTP workers, store actors and flushers, orders' settler and feed follower,
//! the HTTP client between them). Durability is `never`, so that no fsync's timing decides how
//! writes are grouped. How the settler groups commits depends on timing (it commits what a
//! round finds), so this count moves more between runs than the single-service ones.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use service_kit::auth::keys;
use service_kit::config::CommonArgs;
use service_kit::server::Bound;
use store_actor::Durability;
use test_kit::blocking::{Connection, id_of, push_one_each};
use test_kit::tokens::mint;

/// Products created before the measured orders.
const SETUP: usize = 100;

fn common(dir: &Path, keys_dir: &Path) -> CommonArgs {
    CommonArgs {
        durability: Durability::Never,
        workers: Some(1),
        ..CommonArgs::new(dir.to_owned(), keys::public_key_path(keys_dir))
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: order-instructions order-place N";
    if args.next().as_deref() != Some("order-place") {
        return Err(usage.into());
    }
    let n: usize = args.next().ok_or(usage)?.parse()?;
    // The services' own logging set-up with the default filter, as in the real binary.
    service_kit::telemetry::init(
        service_kit::telemetry::LogFormat::Pretty,
        service_kit::telemetry::DEFAULT_FILTER,
    );
    let dir = tempfile::tempdir()?;
    let keys_dir = dir.path().join("keys");
    let root = Arc::new(keys::generate(&keys_dir)?);

    let products = products::startup::build(products::configuration::Config {
        listen: "127.0.0.1:0".into(),
        reservation_ttl: Duration::from_secs(300),
        common: common(&dir.path().join("products"), &keys_dir),
    })
    .await?;
    let products_port = products.port();
    let token_file = dir.path().join("orders-products.token");
    let service_rights = ["products:read", "products:reserve"];
    std::fs::write(
        &token_file,
        mint(&root, "orders-service", &service_rights, false),
    )?;
    let orders = orders::startup::build(orders::configuration::Config {
        listen: "127.0.0.1:0".into(),
        products_url: format!("http://127.0.0.1:{products_port}"),
        products_token_file: token_file,
        products_timeout_ms: 2000,
        common: common(&dir.path().join("orders"), &keys_dir),
    })
    .await?;
    let orders_port = orders.port();
    let running = [products, orders].map(|app: Bound| {
        let stopper = app.stopper();
        (stopper, tokio::spawn(app.run_until_stopped()))
    });

    let merchant = mint(&root, "merchant", &["products:write"], false);
    let customer = mint(&root, "alice", &["orders:read", "orders:write"], false);
    let client = std::thread::spawn(move || -> std::io::Result<()> {
        let mut shop = Connection::open(products_port, merchant)?;
        let mut ids = Vec::with_capacity(SETUP);
        for i in 0..SETUP {
            let body = format!(r#"{{"name":"product {i:07}","price":"4.20","stock":1000000000}}"#);
            ids.push(id_of(shop.send("POST", "/products", &body, "201")?));
        }
        let mut conn = Connection::open(orders_port, customer)?;
        let mut last = String::new();
        let mut body = String::with_capacity(300);
        for i in 0..n {
            body.clear();
            let products = (0..3).map(|k| ids[(3 * i + k) % SETUP].as_str());
            push_one_each(&mut body, "items", products);
            last = id_of(conn.send("POST", "/orders", &body, "201")?);
        }
        if n == 0 {
            return Ok(());
        }
        // The settler commits in the background: wait for the last order's commit.
        let path = format!("/orders/{last}");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let order = conn.get(&path, "200")?;
            let confirmed = br#""stock":"confirmed""#;
            if order.windows(confirmed.len()).any(|w| w == confirmed) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the last order was never confirmed: {}",
                String::from_utf8_lossy(order)
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    });
    tokio::task::spawn_blocking(move || client.join())
        .await?
        .map_err(|_| "the client panicked")??;
    for (stopper, task) in running.into_iter().rev() {
        stopper.stop().await;
        task.await??;
    }
    Ok(())
}
