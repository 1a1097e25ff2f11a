//! A store's change feed as Server-Sent Events.
//!
//! Each event is `id: SEQ`, `event: KIND` (`created`, `updated`, `archived`) and one `data:` line
//! of JSON. A client resumes with `Last-Event-ID` (browsers send it on reconnect) or `?after=SEQ`.
//! When asked for events the store no longer retains, the stream sends one `resync` event with
//! the oldest available sequence number and ends: the client must reload the current state and
//! follow from there. A comment line every 15 s keeps proxies from closing an idle stream.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use futures_util::stream;
use store_actor::{Data, Event, Store, StoreError};
use tokio::sync::watch;

use crate::problem::ApiError;

const KEEPALIVE: Duration = Duration::from_secs(15);
const BATCH: usize = 256;

/// Tells open event streams that the server is shutting down, so they end at once instead of
/// holding a graceful shutdown until its timeout.
#[derive(Debug, Clone)]
pub struct Closing(watch::Sender<bool>);

impl Default for Closing {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Closing {
    /// Ends every stream of this app.
    pub fn close(&self) {
        self.0.send_replace(true);
    }

    fn subscribe(&self) -> watch::Receiver<bool> {
        self.0.subscribe()
    }
}

/// A store's change feed and nothing else: what an events route may see of a store.
#[derive(Debug)]
pub struct ChangeFeed<T: Data>(Store<T>);

impl<T: Data> Clone for ChangeFeed<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T: Data> ChangeFeed<T> {
    /// The feed of `store`.
    pub fn new(store: Store<T>) -> Self {
        Self(store)
    }
}

/// The whole events route: where to start (see [`resume_point`]), then the stream (see
/// [`stream`]).
pub fn respond<T, F>(
    req: &HttpRequest,
    feed: &ChangeFeed<T>,
    closing: &Closing,
    render: F,
) -> Result<HttpResponse, ApiError>
where
    T: Data,
    F: Fn(&Event<T>) -> Option<serde_json::Value> + 'static,
{
    let query = crate::http::query::<FeedQuery>(req)?;
    let after = resume_point(req, &query, &feed.0)?;
    // Not following: stop at the end as it is now.
    let until = (query.follow == Some(false)).then(|| feed.0.last_seq());
    Ok(stream(feed.0.clone(), after, until, closing, render))
}

/// The query of a feed endpoint.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Start after this sequence number (`Last-Event-ID` takes precedence; default: only new
    /// events). At most 2^53.
    #[param(nullable = false, maximum = 9_007_199_254_740_992_u64)]
    pub after: Option<u64>,
    /// `false`: send the events up to the current end, then close the stream (for clients that
    /// read a response whole, e.g. generated ones, or a periodic poll). Default `true`: keep
    /// following.
    #[param(nullable = false)]
    pub follow: Option<bool>,
}

/// The largest sequence number a client may name: 2^53, the largest whole number every JSON
/// client holds exactly (a store would need centuries of writes to pass it).
pub const MAX_SEQ: u64 = 1 << 53;

/// Where a feed starts: `Last-Event-ID` if present, else `?after=`, else the current end
/// (only new events). A bad query or header is a 400.
fn resume_point<T: Data>(
    req: &HttpRequest,
    query: &FeedQuery,
    store: &Store<T>,
) -> Result<u64, ApiError> {
    let after = query.after;
    if after.is_some_and(|a| a > MAX_SEQ) {
        return Err(ApiError::bad_param(
            "after",
            format!("must be at most {MAX_SEQ}"),
        ));
    }
    if let Some(value) = req.headers().get("last-event-id") {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|seq| *seq <= MAX_SEQ)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "Last-Event-ID must be a sequence number, at most {MAX_SEQ}"
                ))
            });
    }
    Ok(after.unwrap_or_else(|| store.last_seq()))
}

struct Feed<T: Data, F> {
    store: Store<T>,
    after: u64,
    until: Option<u64>,
    render: Arc<F>,
    done: bool,
    closing: watch::Receiver<bool>,
}

/// Streams the events after `after` (and, with `until`, ends after that one); `render` turns
/// each into the JSON of its `data:` line, or `None` to leave it out (e.g. another user's
/// record).
fn stream<T, F>(
    store: Store<T>,
    after: u64,
    until: Option<u64>,
    closing: &Closing,
    render: F,
) -> HttpResponse
where
    T: Data,
    F: Fn(&Event<T>) -> Option<serde_json::Value> + 'static,
{
    let feed = Feed {
        store,
        after,
        until,
        render: Arc::new(render),
        done: false,
        closing: closing.subscribe(),
    };
    let events = stream::unfold(feed, |mut feed| async move {
        let caught_up = feed.until.is_some_and(|until| feed.after >= until);
        if feed.done || caught_up || *feed.closing.borrow() {
            return None;
        }
        let next = tokio::time::timeout(KEEPALIVE, feed.store.wait_events_after(feed.after, BATCH));
        let mut closing = feed.closing.clone();
        let next = tokio::select! {
            next = next => next,
            _ = closing.wait_for(|c| *c) => return None,
        };
        let chunk = match next {
            Err(_) => ": keep-alive\n\n".to_owned(),
            Ok(Ok(events)) => {
                let mut out = String::new();
                for event in &events {
                    feed.after = event.seq;
                    let Some(data) = (feed.render)(event) else {
                        continue;
                    };
                    let kind = serde_json::to_value(event.kind).unwrap_or_default();
                    let _ = write!(
                        out,
                        "id: {}\nevent: {}\ndata: {}\n\n",
                        event.seq,
                        kind.as_str().unwrap_or("changed"),
                        data
                    );
                }
                if out.is_empty() {
                    // Everything was filtered out: keep the connection visibly alive.
                    out.push_str(": skipped\n\n");
                }
                out
            }
            Ok(Err(StoreError::TooOld {
                requested,
                oldest_available,
            })) => {
                feed.done = true;
                let data = serde_json::json!({
                    "requested_after": requested,
                    "oldest_available": oldest_available,
                    "detail": "events this old are no longer retained: reload the current state, then follow from its sequence",
                });
                format!("event: resync\ndata: {data}\n\n")
            }
            Ok(Err(_closed)) => return None,
        };
        Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), feed))
    });
    let opening = stream::once(async { Ok(Bytes::from_static(b"retry: 2000\n\n")) });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(opening.chain(events))
}
