//! A minimal blocking HTTP/1.1 client for the instruction-count examples: one keep-alive
//! connection, one request at a time, byte scans only. Its own instructions are counted with
//! the server's (the examples run both in one process under callgrind), so it does as little
//! as it can: one buffer zeroed only when it grows, no UTF-8 conversion of bodies (a lossy UTF-8
//! scan of a list page alone was 33,000 instructions).

use std::io::{Read, Write};
use std::net::TcpStream;

/// One keep-alive HTTP/1.1 connection to `127.0.0.1:PORT`, with a bearer token.
#[derive(Debug)]
pub struct Connection {
    stream: TcpStream,
    token: String,
    buf: Vec<u8>,
}

impl Connection {
    /// Connects to `127.0.0.1:port`; every request carries `token`.
    pub fn open(port: u16, token: String) -> std::io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            token,
            buf: Vec::with_capacity(4096),
        })
    }

    /// `GET path`, expecting `status`; returns the body.
    pub fn get(&mut self, path: &str, status: &str) -> std::io::Result<&[u8]> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\r\n",
            self.token
        );
        self.exchange(&request, status)
    }

    /// `METHOD path` with a JSON `body`, expecting `status`; returns the response body.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: &str,
        status: &str,
    ) -> std::io::Result<&[u8]> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.token,
            body.len()
        );
        self.exchange(&request, status)
    }

    /// Sends `request`, reads one response (headers, then `Content-Length` bytes), checks its
    /// status (a mismatch panics with the whole exchange); returns its body.
    fn exchange(&mut self, request: &str, status: &str) -> std::io::Result<&[u8]> {
        self.stream.write_all(request.as_bytes())?;
        let mut filled = 0;
        let body = loop {
            if self.buf.len() < filled + 4096 {
                self.buf.resize(filled + 4096, 0);
            }
            let got = self.stream.read(&mut self.buf[filled..])?;
            if got == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            filled += got;
            let data = &self.buf[..filled];
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let length = content_length(&data[..end]);
            if filled >= end + 4 + length {
                assert!(
                    data.starts_with(b"HTTP/1.1 ") && data[9..].starts_with(status.as_bytes()),
                    "{request} -> {}",
                    String::from_utf8_lossy(data)
                );
                break end + 4..end + 4 + length;
            }
        };
        Ok(&self.buf[body])
    }
}

/// The `content-length` of a response head (0 without one).
fn content_length(head: &[u8]) -> usize {
    head.split(|&b| b == b'\n')
        .find_map(|line| {
            let (name, value) = line.split_at(line.iter().position(|&b| b == b':')?);
            name.eq_ignore_ascii_case(b"content-length")
                .then(|| std::str::from_utf8(&value[1..]).ok()?.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0)
}

/// Appends `{"KEY":[{"product_id":"…","quantity":1},…]}` to `body`: one unit of each of
/// `products` (an order's `items`, a reservation's `lines`), pushed piece by piece since the
/// client's instructions are counted too.
pub fn push_one_each<'a>(
    body: &mut String,
    key: &str,
    products: impl IntoIterator<Item = &'a str>,
) {
    body.push_str("{\"");
    body.push_str(key);
    body.push_str("\":[");
    for (k, p) in products.into_iter().enumerate() {
        body.push_str(if k == 0 { "" } else { "," });
        body.push_str(r#"{"product_id":""#);
        body.push_str(p);
        body.push_str(r#"","quantity":1}"#);
    }
    body.push_str("]}");
}

/// The value of the first `"id":"…"` in a JSON body (a 36-character UUID).
pub fn id_of(body: &[u8]) -> String {
    let at = body
        .windows(6)
        .position(|w| w == b"\"id\":\"")
        .expect("an id")
        + 6;
    String::from_utf8(body[at..at + 36].to_vec()).expect("an id is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_content_length_in_any_case() {
        assert_eq!(
            content_length(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n"),
            12
        );
        assert_eq!(content_length(b"HTTP/1.1 200 OK\r\ncontent-length:3"), 3);
        assert_eq!(content_length(b"HTTP/1.1 204 No Content\r\n"), 0);
    }

    #[test]
    fn writes_one_unit_of_each_product() {
        let mut body = String::new();
        push_one_each(&mut body, "items", ["a", "b"]);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"items": [
                {"product_id": "a", "quantity": 1},
                {"product_id": "b", "quantity": 1},
            ]})
        );
    }

    #[test]
    fn finds_the_first_id() {
        let body = br#"{"id":"0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b","items":[{"id":"x"}]}"#;
        assert_eq!(id_of(body), "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b");
    }
}
