//! `shop import products | orders`: the store-actor import with each service's own check (see
//! [`products::import`] and [`orders::import`]), reporting every refused record.

use std::path::Path;

use serde_json::Value;
use store_actor::StoreOptions;
use store_actor::import::{self, Check, ImportError, ImportOptions};

use crate::Error;
use crate::cli::{ImportArgs, ImportOrdersArgs};

/// `shop import products`.
pub fn products(args: &ImportArgs) -> Result<(), Error> {
    let dir = args.data_dir.join("products");
    run(
        StoreOptions::new(&dir, "products"),
        args,
        products::import::check(),
    )
}

/// `shop import orders`: lines are priced from the products store as it is now.
pub fn orders(args: &ImportOrdersArgs) -> Result<(), Error> {
    let catalogue = catalogue(&args.import.data_dir.join("products"))?;
    let dir = args.import.data_dir.join("orders");
    let check = orders::import::check(catalogue, args.owner.clone());
    run(StoreOptions::new(&dir, "orders"), &args.import, check)
}

/// Every product of the products store in `dir` (read-only: works while products runs).
fn catalogue(dir: &Path) -> Result<orders::import::Catalogue, Error> {
    let options = StoreOptions::<Value>::new(dir, "products");
    if !options.snapshot_path().exists() && !options.journal_path().exists() {
        return Ok(orders::import::Catalogue::new());
    }
    let mut catalogue = orders::import::Catalogue::new();
    for record in store_actor::read_all(&options)? {
        if let Ok(products::domain::Entry::Product(p)) = serde_json::from_value(record.data.clone())
        {
            let live = (!record.archived).then(|| (p.name.as_str().to_owned(), p.price));
            catalogue.insert(record.id, live);
        }
    }
    Ok(catalogue)
}

fn run(options: StoreOptions<Value>, args: &ImportArgs, check: Check) -> Result<(), Error> {
    let snapshot = options.snapshot_path();
    let request = ImportOptions {
        input: args.file.clone(),
        table: args.table.clone(),
        skip_invalid: args.skip_invalid,
    };
    let done = actix_web::rt::System::new()
        .block_on(async { import::import(options, &request, check, &|_| {}).await });
    let more = |listed: usize, count: u64| {
        let rest = count.saturating_sub(listed as u64);
        (rest > 0).then(|| format!("  ... and {rest} more"))
    };
    match done {
        Ok(done) => {
            println!(
                "imported {} records ({} archived, {} skipped) into {}",
                done.imported,
                done.archived,
                done.skipped,
                snapshot.display()
            );
            for reason in &done.skipped_reasons {
                println!("  skipped {reason}");
            }
            if let Some(line) = more(done.skipped_reasons.len(), done.skipped) {
                println!("{line}");
            }
            Ok(())
        }
        Err(ImportError::Refused {
            refused,
            total,
            reasons,
        }) => {
            for reason in &reasons {
                eprintln!("  refused {reason}");
            }
            if let Some(line) = more(reasons.len(), refused) {
                eprintln!("{line}");
            }
            Err(format!(
                "{}: {refused} of {total} records refused; nothing was imported \
                 (--skip-invalid imports the others)",
                args.file.display()
            )
            .into())
        }
        Err(e) => Err(e.into()),
    }
}
