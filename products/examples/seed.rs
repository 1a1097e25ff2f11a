//! Fills a products store directly (no HTTP, durability `never`, one fsynced snapshot at the
//! end) and writes the ids to a file: the setup of the HTTP benchmarks.
//!
//! ```sh
//! cargo run --release -p products --example seed -- DATA_DIR COUNT IDS_FILE [STOCK]
//! ```
//!
//! With `STOCK`, every product tracks that many units.

use std::io::Write;

use products::domain::{Entry, Money, Product, ProductName};
use store_actor::{Durability, Store};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().ok_or("usage: seed DATA_DIR COUNT IDS_FILE")?;
    let count: usize = args.next().ok_or("COUNT")?.parse()?;
    let ids_file = args.next().ok_or("IDS_FILE")?;
    let stock: Option<u64> = args.next().map(|s| s.parse()).transpose()?;
    let store = Store::open(products::store::options(dir.as_ref(), Durability::Never)).await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(ids_file)?);
    let mut pending = Vec::with_capacity(512);
    for i in 0..count {
        let store = store.clone();
        pending.push(tokio::spawn(async move {
            store
                .create(Entry::Product(Product {
                    name: ProductName::parse(&format!("product {i:07}")).expect("valid name"),
                    price: Money::from_cents((i as i64 * 37) % 100_000).expect("valid price"),
                    created_by_key: None,
                    stock,
                    reserved: 0,
                }))
                .await
        }));
        if pending.len() == 512 || i + 1 == count {
            for task in pending.drain(..) {
                writeln!(out, "{}", task.await??.id)?;
            }
        }
    }
    out.flush()?;
    store.compact().await?;
    store.close().await?;
    eprintln!("seeded {count} products into {dir}");
    Ok(())
}
