//! One Server-Sent Events reader for every suite.

use reqwest::Response;
use serde_json::Value;

use crate::poll::DEADLINE;

/// One Server-Sent Event with data.
#[derive(Debug)]
pub struct Frame {
    /// Its `id:`.
    pub id: Option<u64>,
    /// Its `event:`.
    pub event: Option<String>,
    /// Its `data:`, as JSON.
    pub data: Value,
}

/// Reads Server-Sent Events from a streaming response.
#[derive(Debug)]
pub struct Events {
    res: Response,
    buffer: String,
}

impl Events {
    /// Reads the events of `res`.
    pub fn new(res: Response) -> Self {
        Self {
            res,
            buffer: String::new(),
        }
    }

    /// The next event with data (skipping `retry:` and comments), failing after [`DEADLINE`].
    pub async fn next(&mut self) -> Frame {
        match tokio::time::timeout(DEADLINE, self.next_frame()).await {
            Ok(frame) => frame,
            Err(_) => panic!("no event within {DEADLINE:?}; buffered: {:?}", self.buffer),
        }
    }

    async fn next_frame(&mut self) -> Frame {
        loop {
            if let Some(frame) = parse_frame(&self.next_raw_frame().await) {
                return frame;
            }
        }
    }

    /// The next frame with an `id:` line, data or not, as its text (a progress frame past
    /// left-out events is `id: SEQ` alone), failing after [`DEADLINE`].
    pub async fn next_with_id(&mut self) -> String {
        let next = async {
            loop {
                let raw = self.next_raw_frame().await;
                if raw.lines().any(|l| l.starts_with("id: ")) {
                    return raw;
                }
            }
        };
        match tokio::time::timeout(DEADLINE, next).await {
            Ok(raw) => raw,
            Err(_) => panic!("no frame with an id within {DEADLINE:?}"),
        }
    }

    /// The next frame's text, whatever it holds.
    async fn next_raw_frame(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                return self.buffer.drain(..end + 2).collect();
            }
            let chunk = self
                .res
                .chunk()
                .await
                .expect("the stream failed")
                .expect("the stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// One frame, if it carries data (`retry:` lines and comments do not).
fn parse_frame(raw: &str) -> Option<Frame> {
    let (mut id, mut event, mut data) = (None, None, None);
    for line in raw.lines() {
        if let Some(v) = line.strip_prefix("id: ") {
            id = Some(v.parse().unwrap());
        } else if let Some(v) = line.strip_prefix("event: ") {
            event = Some(v.to_owned());
        } else if let Some(v) = line.strip_prefix("data: ") {
            data = Some(serde_json::from_str(v).unwrap());
        }
    }
    data.map(|data| Frame { id, event, data })
}
