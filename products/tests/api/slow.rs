//! Slow and unauthenticated bodies: nothing is read before the token is checked, and a body
//! that does not arrive in time is refused with 408 instead of holding the connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{fresh_dir, spawn_with};

/// Sends `head` and `body_part` on a raw connection and reads until the server answers and
/// closes (or 10 s pass); returns the answer and how long it took.
async fn raw_exchange(address: &str, head: String, body_part: &'static [u8]) -> (String, Duration) {
    let addr = address.trim_start_matches("http://").to_owned();
    tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let started = Instant::now();
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body_part).unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the server closes the connection (or the read times out).
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
        (
            String::from_utf8_lossy(&answer).into_owned(),
            started.elapsed(),
        )
    })
    .await
    .unwrap()
}

fn post_head(token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    format!(
        "POST /products HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n{auth}\r\n"
    )
}

fn problem_of(answer: &str) -> Value {
    let (_, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// No token and a body that never completes: 401 at once, the body is never waited for.
#[actix_web::test]
async fn an_unauthenticated_slow_body_is_refused_without_waiting_for_it() {
    // Arrange: a long body timeout, so that only not reading the body can answer quickly.
    let (dir, root) = fresh_dir();
    let app = spawn_with(dir.path(), root, Vec::new(), |c| {
        c.common.body_timeout_ms = 30_000
    })
    .await;

    // Act
    let (answer, took) = raw_exchange(&app.address, post_head(None), b"{").await;

    // Assert
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert_eq!(problem_of(&answer)["type"], "urn:shop:problem:unauthorized");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(app.count().await, 0);
    app.stop().await;
}

/// A valid token and a body that stops arriving: 408 once the body timeout has passed.
#[actix_web::test]
async fn a_slow_body_times_out_with_408() {
    // Arrange
    let (dir, root) = fresh_dir();
    let app = spawn_with(dir.path(), root, Vec::new(), |c| {
        c.common.body_timeout_ms = 300
    })
    .await;

    // Act
    let (answer, took) = raw_exchange(&app.address, post_head(Some(&app.writer)), b"{").await;

    // Assert
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let problem = problem_of(&answer);
    assert_eq!(problem["type"], "urn:shop:problem:request-timeout");
    insta::assert_json_snapshot!("problem_request_timeout", problem);
    assert!(
        took >= Duration::from_millis(300),
        "answered before the timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(app.count().await, 0);
    app.stop().await;
}
