//! Lists cost a bounded amount of work: a filter no index serves examines at most the store's
//! budget per request, and `/healthz` stays prompt while such lists run.

use std::time::{Duration, Instant};

use products::domain::Money;
use products::domain::{Entry, Product, ProductName};
use store_actor::{DEFAULT_BUDGET, Durability, Op, Store};

use crate::helpers::{fresh_dir, spawn_with};

const PRODUCTS: usize = 100_000;

/// Writes `PRODUCTS` products named `item N` priced N cents straight into the store.
async fn seed(dir: &std::path::Path) {
    let store = Store::open(products::store::options(
        &dir.join("data"),
        Durability::Never,
    ))
    .await
    .unwrap();
    for chunk in 0..PRODUCTS / 5_000 {
        let ops = (0..5_000)
            .map(|i| {
                let n = chunk * 5_000 + i;
                Op::create(Entry::Product(Product {
                    name: ProductName::parse(&format!("item {n}")).unwrap(),
                    price: Money::from_cents(n as i64 + 1).unwrap(),
                    created_by_key: None,
                    stock: None,
                    reserved: 0,
                }))
            })
            .collect();
        store.batch(ops).await.unwrap();
    }
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_rare_name_filter_pages_within_the_budget_and_healthz_stays_prompt() {
    budgeted(false).await;
}

/// The same with the records on disk: pages are read on blocking threads.
#[tokio::test]
async fn in_index_mode_too() {
    budgeted(true).await;
}

async fn budgeted(index: bool) {
    let (dir, root) = fresh_dir();
    seed(dir.path()).await;
    let app = spawn_with(dir.path(), root, Vec::new(), |c| {
        if index {
            c.common.memory = service_kit::config::MemoryMode::Index;
            c.common.cache_mb = 4;
        }
    })
    .await;

    // Nothing matches: every page is empty, yet each but the last links to the next.
    let first = app
        .get_json("/products?name_contains=nomatch&limit=20")
        .await;
    assert_eq!(first["items"].as_array().unwrap().len(), 0);
    assert!(first["next"].is_string(), "{first}");

    // Following the links finds exactly the one match, on the page that reaches it, after
    // about PRODUCTS / budget pages.
    let walk = |needle: &'static str| {
        let app = &app;
        async move {
            let started = Instant::now();
            let mut path = format!("/products?name_contains={needle}&limit=20");
            let (mut found, mut pages) = (Vec::new(), 0);
            loop {
                let page = app.get_json(&path).await;
                pages += 1;
                found.extend(
                    page["items"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|i| i["name"].as_str().unwrap().to_owned()),
                );
                match page["next"].as_str() {
                    Some(next) => path = next.to_owned(),
                    None => return (found, pages, started.elapsed()),
                }
            }
        }
    };
    let (found, pages, _) = walk("m%2077777").await;
    assert_eq!(found, ["item 77777"]);
    assert!(pages >= PRODUCTS / DEFAULT_BUDGET, "{pages} pages");

    // A price range is served by the price index: one page, no scan.
    let cheap = app
        .get_json("/products?min_price=0.10&max_price=0.12&limit=20")
        .await;
    let names: Vec<&str> = cheap["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["item 9", "item 10", "item 11"]);
    assert!(cheap["next"].is_null());

    // Four clients walk the whole list with a filter that matches nothing while /healthz is
    // probed: it waits at most for the pages in flight, never for a whole walk.
    let done = std::sync::atomic::AtomicBool::new(false);
    let probe = async {
        let mut worst = Duration::ZERO;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            let started = Instant::now();
            let res = app
                .client
                .get(format!("{}/healthz", app.address))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            worst = worst.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worst
    };
    let walks = async {
        let all = futures_util::future::join_all((0..4).map(|_| walk("nomatch"))).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        all.into_iter().map(|(_, _, took)| took).min().unwrap()
    };
    let (worst, fastest_walk) = tokio::join!(probe, walks);
    assert!(
        worst * 2 < fastest_walk,
        "/healthz waited up to {worst:?}; the fastest whole walk took {fastest_walk:?}"
    );
}
