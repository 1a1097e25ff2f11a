//! The change feed: `GET /products/events` read as Server-Sent Events.

use crate::wire::{ChangeKind, ProductEvent};

use super::{ClientError, ProductsClient, check_status};

/// One Server-Sent Event of the products feed.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedEvent {
    /// A product changed.
    Change(ProductEvent),
    /// Events up to `seq` were left out (not of the kinds asked for): continue after it.
    Progress {
        /// The stream's position.
        seq: u64,
    },
    /// The feed no longer holds events after the requested sequence: reconcile fully.
    Resync {
        /// The oldest sequence still retained.
        oldest_available: u64,
    },
}

impl ProductsClient {
    /// Follows the change feed after `after`, calling `on_event` for each event of the
    /// `kinds` asked for (all if empty) and for each [`FeedEvent::Progress`] past the others,
    /// until the stream ends or `on_event` returns `false`. Returns the last sequence handled.
    pub async fn follow<F, Fut>(
        &self,
        after: u64,
        kinds: &[ChangeKind],
        mut on_event: F,
    ) -> Result<u64, ClientError>
    where
        F: FnMut(FeedEvent) -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let mut query = format!("after={after}");
        for (i, kind) in kinds.iter().enumerate() {
            query.push_str(if i == 0 { "&kinds=" } else { "," });
            query.push_str(kind.as_str());
        }
        let mut url = self.url("/products/events");
        url.set_query(Some(&query));
        let mut res = self
            .http()
            .get(url)
            .bearer_auth(&self.config.token)
            .send()
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        check_status(&res)?;
        let mut last = after;
        let mut buffer = String::new();
        while let Some(chunk) = res
            .chunk()
            .await
            .map_err(|e| ClientError::Unavailable(e.to_string()))?
        {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let Some(event) = parse_frame(&frame)? else {
                    continue;
                };
                match &event {
                    FeedEvent::Change(e) => last = e.seq,
                    FeedEvent::Progress { seq } => last = *seq,
                    FeedEvent::Resync { .. } => {}
                }
                if !on_event(event).await {
                    return Ok(last);
                }
            }
        }
        Ok(last)
    }
}

/// Parses one SSE frame; `None` for comments and the `retry:` line.
fn parse_frame(frame: &str) -> Result<Option<FeedEvent>, ClientError> {
    let mut event = None;
    let mut id = None;
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            event = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.trim_start());
        } else if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim());
        }
    }
    let Some(event) = event else {
        // A frame with only an id: how far the stream has got past left-out events.
        return match id {
            Some(id) if data.is_empty() => id
                .parse()
                .map(|seq| Some(FeedEvent::Progress { seq }))
                .map_err(|_| ClientError::Decode(format!("progress id {id:?}"))),
            _ => Ok(None),
        };
    };
    let decode = |e: serde_json::Error| ClientError::Decode(format!("{event} event: {e}"));
    if event == "resync" {
        let v: serde_json::Value = serde_json::from_str(&data).map_err(decode)?;
        return Ok(Some(FeedEvent::Resync {
            oldest_available: v["oldest_available"].as_u64().unwrap_or(0),
        }));
    }
    Ok(Some(FeedEvent::Change(
        serde_json::from_str(&data).map_err(decode)?,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_parse() {
        assert_eq!(parse_frame("retry: 2000\n\n").unwrap(), None);
        assert_eq!(parse_frame(": keep-alive\n\n").unwrap(), None);
        assert_eq!(
            parse_frame("id: 42\n\n").unwrap(),
            Some(FeedEvent::Progress { seq: 42 })
        );
        assert!(parse_frame("id: soon\n\n").is_err());
        let resync = parse_frame("event: resync\ndata: {\"oldest_available\":7}\n\n").unwrap();
        assert_eq!(
            resync,
            Some(FeedEvent::Resync {
                oldest_available: 7
            })
        );
        let change = parse_frame(
            "id: 3\nevent: archived\ndata: {\"seq\":3,\"kind\":\"archived\",\"product\":{\"id\":\"0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b\",\"name\":\"Tea\",\"price\":\"1.00\",\"version\":2,\"created_at\":\"2026-01-01T00:00:00Z\",\"updated_at\":\"2026-01-01T00:00:00Z\",\"archived\":true}}\n\n",
        )
        .unwrap();
        match change {
            Some(FeedEvent::Change(e)) => {
                assert_eq!(e.seq, 3);
                assert!(e.product.archived);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_frame("event: created\ndata: {nope\n\n").is_err());
    }
}
