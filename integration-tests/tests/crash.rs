//! Crash safety across the two services: bursts of orders (some cancelled or given new lines at
//! once) while one
//! service is killed with SIGKILL at a random moment and restarted, round after round. Once both
//! are up, reservations have had time to expire and orders has settled with products:
//!
//! - every product's `stock` equals its starting stock minus the units of the orders that are
//!   not cancelled (so nothing was sold twice, and nothing sold was lost), with nothing
//!   `reserved`;
//! - every order's first reservation is settled at products: committed if the order is live
//!   (or released, its units moved to a newer reservation when its lines changed),
//!   released (by orders, or by products when it expired before a crashed orders committed
//!   it) if it was cancelled.
//!
//! The random moments come from a seed printed by each test; `CRASH_SEED=N` replays one and
//! `CRASH_ROUNDS=N` changes the number of rounds (10 by default).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use integration_tests::{Service, Shop, eventually};
use serde_json::{Value, json};

/// Products' reservation time to live: longer than a restart plus the products client's
/// circuit-breaker cooldown (5 s), short enough to wait out.
const TTL_SECS: u64 = 15;
/// Concurrent buyers per round.
const BUYERS: usize = 3;
/// Starting stock: three plentiful products and one scarce, so some orders are refused.
const STOCK: [(&str, u64); 4] = [("A", 2000), ("B", 2000), ("C", 2000), ("Scarce", 15)];

/// xorshift64*: enough randomness for timings and order shapes, replayable from its seed.
struct Rng(u64);

impl Rng {
    fn seeded(name: &str) -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("{name}: CRASH_SEED={seed}");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn rounds() -> usize {
    std::env::var("CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
}

/// Which service a test kills.
#[derive(Clone, Copy)]
enum Victim {
    Orders,
    Products,
}

/// Creates the products; returns their ids with their starting stock.
async fn stock_up(shop: &Shop) -> Vec<(String, u64)> {
    let mut products = Vec::new();
    for (name, stock) in STOCK {
        let created = shop
            .api
            .post(
                &shop.products.url("/products"),
                Some(&shop.tokens.catalog),
                &json!({"name": name, "price": "1.25", "stock": stock}),
            )
            .await;
        let id = created.expect(201, "POST /products")["id"]
            .as_str()
            .unwrap()
            .to_owned();
        products.push((id, stock));
    }
    products
}

/// Places orders of 1 to 3 lines until `stop`, cancelling about one in four at once and
/// changing the lines of one in eight. Failures
/// (a service being killed or restarting) are expected: the buyer waits a little and goes on.
async fn buyer(
    orders: String,
    token: String,
    products: Vec<String>,
    seed: u64,
    stop: Arc<AtomicBool>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let mut rng = Rng(seed | 1);
    while !stop.load(Ordering::Relaxed) {
        let lines = 1 + rng.below(3) as usize;
        let mut items = Vec::new();
        for i in 0..lines {
            let product =
                &products[(rng.below(products.len() as u64) as usize + i) % products.len()];
            if items
                .iter()
                .all(|l: &Value| l["product_id"] != product.as_str())
            {
                items.push(json!({"product_id": product, "quantity": 1 + rng.below(3)}));
            }
        }
        let placed = client
            .post(format!("{orders}/orders"))
            .bearer_auth(&token)
            .json(&json!({ "items": items }))
            .send()
            .await;
        let Ok(placed) = placed else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if placed.status() != 201 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let Ok(order) = placed.json::<Value>().await else {
            continue;
        };
        let url = format!("{orders}/orders/{}", order["id"].as_str().unwrap());
        let change = match rng.below(8) {
            0 | 1 => json!({"status": "cancelled"}),
            // New lines: more of one product and fewer (or none) of another, so the order
            // reserves the difference and gives some back.
            2 => {
                let lines: Vec<Value> = products
                    .iter()
                    .take(1 + rng.below(products.len() as u64) as usize)
                    .map(|p| json!({"product_id": p, "quantity": 1 + rng.below(4)}))
                    .collect();
                json!({ "items": lines })
            }
            _ => continue,
        };
        let _ = client
            .patch(url)
            .bearer_auth(&token)
            .json(&change)
            .send()
            .await;
    }
}

/// One round: buyers place orders while `victim` is killed at a random moment, then restarted.
async fn round(shop: &mut Shop, victim: Victim, products: &[String], rng: &mut Rng) {
    let stop = Arc::new(AtomicBool::new(false));
    let buyers: Vec<_> = (0..BUYERS)
        .map(|_| {
            tokio::spawn(buyer(
                shop.orders.base_url(),
                shop.tokens.alice.clone(),
                products.to_vec(),
                rng.next(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50 + rng.below(500))).await;
    let service: &mut Service = match victim {
        Victim::Orders => &mut shop.orders,
        Victim::Products => &mut shop.products,
    };
    service.kill();
    tokio::time::sleep(Duration::from_millis(rng.below(200))).await;
    service.restart().await;
    tokio::time::sleep(Duration::from_millis(200 + rng.below(300))).await;
    stop.store(true, Ordering::Relaxed);
    for b in buyers {
        b.await.unwrap();
    }
}

/// Every order, as the admin lists them.
async fn all_orders(shop: &Shop) -> Vec<Value> {
    let mut orders = Vec::new();
    let mut path = "/orders?limit=100".to_owned();
    loop {
        let page = shop
            .api
            .get(&shop.orders.url(&path), Some(&shop.tokens.admin))
            .await;
        let page = page.expect(200, "GET /orders").clone();
        orders.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => return orders,
        }
    }
}

/// `(stock, reserved)` of a product.
async fn stock_of(shop: &Shop, id: &str) -> (u64, u64) {
    let reply = shop
        .api
        .get(
            &shop.products.url(&format!("/products/{id}")),
            Some(&shop.tokens.catalog),
        )
        .await;
    let p = reply.expect(200, "GET /products/{id}");
    (
        p["stock"].as_u64().unwrap(),
        p["reserved"].as_u64().unwrap(),
    )
}

/// Waits until no order owes products anything and no product holds reservations (orphaned
/// holds expire after the TTL), then checks the stock equation and each reservation.
async fn assert_settled_and_balanced(shop: &Shop, products: &[(String, u64)]) {
    let orders = eventually(
        "every order settled and nothing reserved",
        Duration::from_secs(TTL_SECS + 30),
        || async {
            let orders = all_orders(shop).await;
            let owing: Vec<&Value> = orders
                .iter()
                .filter(|o| matches!(o["stock"].as_str(), Some("pending" | "releasing")))
                .collect();
            if !owing.is_empty() {
                return Err(format!("{} orders still owe products", owing.len()));
            }
            for (id, _) in products {
                let (_, reserved) = stock_of(shop, id).await;
                if reserved != 0 {
                    return Err(format!("{reserved} units of {id} still reserved"));
                }
            }
            Ok(orders)
        },
    )
    .await;
    let mut sold: HashMap<&str, u64> = HashMap::new();
    let (mut live, mut cancelled) = (0, 0);
    let token = shop
        .keys
        .mint("checker", &["products:read", "products:reserve"], false);
    for order in &orders {
        let id = order["id"].as_str().unwrap();
        assert_ne!(order["stock"], "expired", "a reservation lapsed: {order}");
        let reservation = shop
            .api
            .get(
                &shop.products.url(&format!("/reservations/{id}")),
                Some(&token),
            )
            .await;
        let reservation = reservation.expect(200, "GET /reservations/{id}");
        if order["status"] == "cancelled" {
            cancelled += 1;
            // Given back by orders, or (never committed before a crash) by products itself.
            assert!(
                matches!(reservation["state"].as_str(), Some("released" | "expired")),
                "{order}\n{reservation}"
            );
            continue;
        }
        live += 1;
        // Committed; or, after its lines changed, given back whole (its units moved to a
        // newer reservation of the order or were no longer needed).
        assert!(
            matches!(
                reservation["state"].as_str(),
                Some("committed" | "released")
            ),
            "{order}\n{reservation}"
        );
        for line in order["items"].as_array().unwrap() {
            *sold
                .entry(line["product_id"].as_str().unwrap())
                .or_default() += line["quantity"].as_u64().unwrap();
        }
    }
    eprintln!("{live} live and {cancelled} cancelled orders; sold {sold:?}");
    assert!(live > 0, "no order was placed at all");
    for (id, start) in products {
        let (stock, reserved) = stock_of(shop, id).await;
        let expected = start - sold.get(id.as_str()).copied().unwrap_or(0);
        assert_eq!(
            (stock, reserved),
            (expected, 0),
            "product {id}, starting at {start}"
        );
    }
}

async fn crash_rounds(victim: Victim, name: &str) {
    let ttl = format!("{TTL_SECS}s");
    let mut shop = Shop::start_with(&["--reservation-ttl", &ttl]).await;
    let products = stock_up(&shop).await;
    let ids: Vec<String> = products.iter().map(|(id, _)| id.clone()).collect();
    let mut rng = Rng::seeded(name);
    for _ in 0..rounds() {
        round(&mut shop, victim, &ids, &mut rng).await;
    }
    assert_settled_and_balanced(&shop, &products).await;
}

/// Orders killed at random moments of bursts of orders, ten times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_orders_mid_burst_never_oversells_nor_forgets_a_reservation() {
    crash_rounds(Victim::Orders, "orders").await;
}

/// Products killed at random moments of bursts of orders, ten times over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_products_mid_burst_never_oversells_nor_forgets_a_reservation() {
    crash_rounds(Victim::Products, "products").await;
}
