//! A stand-in for products: a server on a free loopback port that answers what the test says,
//! for the failures a real products would rarely show (hangs, garbled answers, held requests).

use std::sync::Arc;

use serde_json::{Value, json};

/// A stand-in for products on a free loopback port: each connection is served on its own
/// thread, which records the request head (request line and headers) and answers with what
/// `answer` returns for it (a raw HTTP response, sent with `Connection: close`), or, for
/// `None`, accepts the request and never answers (the connection is held until the client
/// closes it). `answer` may block, e.g. to hold a request until the test releases it.
#[derive(Debug)]
pub struct FakeProducts {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FakeProducts {
    /// Starts the fake on a free port; `answer` sees each request's head.
    pub fn start(answer: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
        let answer = Arc::new(answer);
        let recorded = heads.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (answer, recorded) = (answer.clone(), recorded.clone());
                std::thread::spawn(move || {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).into_owned();
                    recorded.lock().unwrap().push(head.clone());
                    match answer(&head) {
                        Some(reply) => {
                            let _ = stream.write_all(reply.as_bytes());
                        }
                        // Hold the connection until the client gives up on it.
                        None => while matches!(stream.read(&mut buf), Ok(n) if n > 0) {},
                    }
                });
            }
        });
        Self { url, heads }
    }

    /// How many requests whose request line starts with `prefix` (e.g. `POST /products/lookup`)
    /// arrived so far.
    pub fn requests(&self, prefix: &str) -> usize {
        self.heads
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.starts_with(prefix))
            .count()
    }
}

/// A raw HTTP/1.1 response with a JSON body, closing the connection.
pub fn http_json(status: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Products' answer to a lookup of `ids`, each a live product named `Tea` at 1.00.
pub fn lookup_of(ids: &[&str]) -> Value {
    let products: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({
                "id": id,
                "name": "Tea",
                "price": "1.00",
                "version": 1,
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
            })
        })
        .collect();
    json!({"products": products, "unknown": [], "archived": []})
}

/// Products' answer to `PUT /reservations/{id}` (the id read from the request `head`): every
/// one of `lines` (product id, quantity) held, each a product named `Tea` at 1.00.
pub fn reservation_of(head: &str, lines: &[(&str, u32)]) -> Value {
    let id = head
        .strip_prefix("PUT /reservations/")
        .and_then(|rest| rest.split([' ', '?']).next())
        .unwrap_or_default();
    let lines: Vec<Value> = lines
        .iter()
        .map(|(product, quantity)| {
            json!({"product_id": product, "quantity": quantity, "name": "Tea", "unit_price": "1.00"})
        })
        .collect();
    json!({
        "id": id,
        "state": "held",
        "expires_at": "2026-01-01T00:05:00Z",
        "lines": lines,
        "version": 1,
    })
}
