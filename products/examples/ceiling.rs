//! The framework's ceiling for the benchmarks: a minimal actix-web server answering a constant
//! JSON body, with the same worker count as the service under test.
//!
//! ```sh
//! cargo run --release -p products --example ceiling -- 127.0.0.1:18090 2
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    // `/c`, and `/products/{id}` so that the same wrk script (a random id per request, which
    // costs wrk a Lua call each time) drives the ceiling and the service alike.
    let constant = || async {
        HttpResponse::Ok()
            .content_type("application/json")
            .body(r#"{"id":"0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b","name":"Green tea","price":"4.20","version":1}"#)
    };
    HttpServer::new(move || {
        App::new()
            .route("/c", web::get().to(constant))
            .route("/products/{id}", web::get().to(constant))
    })
    .workers(workers)
    .bind(listen)?
    .run()
    .await
}
