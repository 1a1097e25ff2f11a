//! The hot paths, for counting their instructions under callgrind (`scripts/instructions`):
//! the store's create and get, and an HTTP create and get through the whole products app
//! (actix-web, auth, validation, store) over a loopback connection in this process.
//!
//! ```sh
//! cargo build --release -p products --example instructions
//! valgrind --tool=callgrind target/release/examples/instructions SCENARIO N
//! ```
//!
//! `SCENARIO` is `store-create`, `store-get`, `http-create`, `http-get`, `http-list` (the
//! first page of 20, `GET /products?limit=20`), `http-reserve` (what products does for one
//! order: `PUT /reservations/{id}` holding one unit each of 3 stock-tracked products, then
//! `POST /reservations/commit` of that one id; the settler commits up to 100 per call, so this
//! is the dearest case) or `http-ceiling` (a
//! bare actix-web handler answering constant JSON: the framework's own cost, to compare
//! `http-get` with); `N` is how many operations run after the same set-up. The script runs two values of `N` and divides the
//! difference in instructions by the difference in `N`: the set-up and start-up cancel out,
//! leaving the cost of one operation in every thread of the process (HTTP worker, store actor,
//! flusher). Durability is `never`, so that no fsync's timing decides how writes are grouped:
//! each operation is awaited before the next, one batch per write, the same in every run.

use std::sync::Arc;

use products::domain::{Entry, Money, Product, ProductName};
use service_kit::auth::keys;
use service_kit::config::CommonArgs;
use store_actor::{Durability, Store};
use test_kit::blocking::{Connection, id_of, push_one_each};

/// Products created before the measured gets.
const SETUP: usize = 100;

fn product(i: usize) -> Entry {
    Entry::Product(Product {
        name: ProductName::parse(&format!("product {i:07}")).expect("valid name"),
        price: Money::from_cents(420 + i as i64).expect("valid price"),
        created_by_key: None,
        stock: None,
        reserved: 0,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: instructions store-create|store-get|http-create|http-get|http-list|http-ceiling N";
    let scenario = args.next().ok_or(usage)?;
    let n: usize = args.next().ok_or(usage)?.parse()?;
    // The services' own logging set-up (scripts/instructions unsets RUST_LOG: the default
    // filter), so that what tracing costs per request is counted as in the real binary.
    // SHOP_LOG_FORMAT=json counts the JSON lines' formatter instead (as the chart deploys it).
    let format = match std::env::var("SHOP_LOG_FORMAT").as_deref() {
        Ok("json") => service_kit::telemetry::LogFormat::Json,
        _ => service_kit::telemetry::LogFormat::Pretty,
    };
    service_kit::telemetry::init(format, service_kit::telemetry::DEFAULT_FILTER);
    let dir = tempfile::tempdir()?;
    match scenario.as_str() {
        "store-create" | "store-get" => store(&scenario, n, dir.path()).await,
        "http-create" | "http-get" | "http-list" | "http-reserve" => {
            http(&scenario, n, dir.path()).await
        }
        "http-ceiling" => ceiling(n).await,
        _ => Err(usage.into()),
    }
}

async fn store(
    scenario: &str,
    n: usize,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(products::store::options(dir, Durability::Never)).await?;
    let mut ids = Vec::with_capacity(SETUP);
    for i in 0..SETUP {
        ids.push(store.create(product(i)).await?.id);
    }
    if scenario == "store-create" {
        for i in 0..n {
            store.create(product(SETUP + i)).await?;
        }
    } else {
        let mut found = 0;
        for i in 0..n {
            found += usize::from(store.get(ids[i % SETUP]).is_ok());
        }
        assert_eq!(found, n);
    }
    store.close().await?;
    Ok(())
}

async fn http(
    scenario: &str,
    n: usize,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let root = Arc::new(keys::generate(&dir.join("keys"))?);
    let rights = ["products:read", "products:write", "products:reserve"];
    let token = test_kit::tokens::mint(&root, "bench", &rights, false);
    let config = products::configuration::Config {
        listen: "127.0.0.1:0".into(),
        reservation_ttl: std::time::Duration::from_secs(300),
        common: CommonArgs {
            durability: Durability::Never,
            workers: Some(1),
            ..CommonArgs::new(dir.join("data"), keys::public_key_path(&dir.join("keys")))
        },
    };
    let app = products::startup::build(config).await?;
    let port = app.port();
    let stopper = app.stopper();
    let running = tokio::spawn(app.run_until_stopped());
    let scenario = scenario.to_owned();
    // A plain blocking client on its own thread: a few hundred instructions per request, so
    // the count is the server's.
    let client = std::thread::spawn(move || -> std::io::Result<()> {
        let mut conn = Connection::open(port, token)?;
        let mut ids = Vec::with_capacity(SETUP);
        for i in 0..SETUP {
            ids.push(id_of(create(&mut conn, i, scenario == "http-reserve")?));
        }
        for i in 0..n {
            match scenario.as_str() {
                "http-create" => drop(create(&mut conn, SETUP + i, false)?),
                "http-list" => drop(conn.get("/products?limit=20", "200")?),
                "http-reserve" => {
                    let lines = [0, 1, 2].map(|k| ids[(3 * i + k) % SETUP].as_str());
                    reserve_and_commit(&mut conn, i, lines)?;
                }
                _ => drop(conn.get(&format!("/products/{}", ids[i % SETUP]), "200")?),
            }
        }
        Ok(())
    });
    tokio::task::spawn_blocking(move || client.join())
        .await?
        .map_err(|_| "the client panicked")??;
    stopper.stop().await;
    running.await??;
    Ok(())
}

/// Creates product number `i`; a `tracked` one has stock (plenty), so that reservations can
/// hold units of it.
fn create(conn: &mut Connection, i: usize, tracked: bool) -> std::io::Result<&[u8]> {
    let body = if tracked {
        format!(r#"{{"name":"product {i:07}","price":"4.20","stock":1000000000}}"#)
    } else {
        format!(r#"{{"name":"product {i:07}","price":"4.20"}}"#)
    };
    conn.send("POST", "/products", &body, "201")
}

/// Reservation number `i` of one unit of each of `products`, then its commit (bodies built by
/// pushing strings: the client's instructions count too).
fn reserve_and_commit(conn: &mut Connection, i: usize, products: [&str; 3]) -> std::io::Result<()> {
    let id = format!("0196a0b5-6c1e-7a52-9c4b-{i:012x}");
    let mut body = String::with_capacity(200);
    push_one_each(&mut body, "lines", products);
    let mut path = String::with_capacity(50);
    path.push_str("/reservations/");
    path.push_str(&id);
    conn.send("PUT", &path, &body, "201")?;
    body.clear();
    body.push_str(r#"{"ids":[""#);
    body.push_str(&id);
    body.push_str(r#""]}"#);
    conn.send("POST", "/reservations/commit", &body, "200")?;
    Ok(())
}

/// The framework's ceiling: a bare actix-web server (one worker, like the app above) answering
/// a constant JSON body, driven by the same client.
async fn ceiling(n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let server = HttpServer::new(|| {
        App::new().route(
            "/products/{id}",
            web::get().to(|| async {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(r#"{"id":"0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b","name":"Green tea","price":"4.20","version":1}"#)
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    let running = tokio::spawn(server);
    let client = std::thread::spawn(move || -> std::io::Result<()> {
        let mut conn = Connection::open(port, "unused".into())?;
        for _ in 0..SETUP + n {
            conn.get("/products/0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b", "200")?;
        }
        Ok(())
    });
    tokio::task::spawn_blocking(move || client.join())
        .await?
        .map_err(|_| "the client panicked")??;
    handle.stop(true).await;
    running.await??;
    Ok(())
}
