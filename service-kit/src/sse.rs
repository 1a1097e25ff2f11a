//! A store's change feed as Server-Sent Events.
//!
//! Each event is `id: SEQ`, `event: KIND` (`created`, `updated`, `archived`) and one `data:` line
//! of JSON. A client resumes with `Last-Event-ID` (browsers send it on reconnect) or `?after=SEQ`.
//! When asked for events the store no longer retains, the stream sends one `resync` event with
//! the oldest available sequence number and ends: the client must reload the current state and
//! follow from there. A comment line every 15 s keeps proxies from closing an idle stream.
//!
//! A client may ask for some kinds only (`?kinds=archived`): the others are neither rendered nor
//! sent, which is what a follower that acts on archives alone needs (orders' follower would
//! otherwise parse every stock change of every order). Events left out, by kind or because the
//! caller may not see them, still move the stream's position: a frame with only an `id:` line
//! (`id: SEQ`, no data: browsers record it as the last event id without dispatching anything)
//! says how far the stream has got, at most once per [`PROGRESS_EVERY`] while only left-out
//! events arrive, so that a client resuming later starts after them rather than before.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use futures_util::stream;
use store_actor::{Data, Event, EventKind, Store, StoreError};
use tokio::sync::watch;

use crate::problem::ApiError;

const KEEPALIVE: Duration = Duration::from_secs(15);
const BATCH: usize = 256;
/// The longest a position moved only by left-out events goes untold.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(1);

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
    F: Fn(&Event<T>) -> Option<String> + 'static,
{
    let query = crate::http::query::<FeedQuery>(req)?;
    let kinds = Kinds::parse(query.kinds.as_deref())?;
    let after = resume_point(req, &query, &feed.0)?;
    // Not following: stop at the end as it is now.
    let until = (query.follow == Some(false)).then(|| feed.0.last_seq());
    Ok(stream(feed.0.clone(), after, until, kinds, closing, render))
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
    /// Only these kinds of event, comma-separated (default: all). The others still move the
    /// stream's position: see the `id:`-only frames in the description.
    #[param(
        nullable = false,
        pattern = r"^(created|updated|archived)(,(created|updated|archived))*$",
        example = "archived"
    )]
    pub kinds: Option<String>,
}

/// The kinds of event a stream sends, as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kinds(u8);

impl Kinds {
    const ALL: Kinds = Kinds(0b111);

    fn bit(kind: EventKind) -> u8 {
        match kind {
            EventKind::Created => 1,
            EventKind::Updated => 2,
            EventKind::Archived => 4,
        }
    }

    /// `?kinds=`: a comma-separated list of kind names; absent means all.
    fn parse(raw: Option<&str>) -> Result<Kinds, ApiError> {
        let Some(raw) = raw else {
            return Ok(Kinds::ALL);
        };
        raw.split(',').try_fold(Kinds(0), |set, name| {
            let kind = EVENT_KINDS
                .into_iter()
                .find(|kind| kind_name(*kind) == name)
                .ok_or_else(|| {
                    ApiError::bad_param(
                        "kinds",
                        format!(
                            "unknown kind {name:?}: expected a comma-separated list of created, updated, archived"
                        ),
                    )
                })?;
            Ok(Kinds(set.0 | Kinds::bit(kind)))
        })
    }

    fn has(self, kind: EventKind) -> bool {
        self.0 & Kinds::bit(kind) != 0
    }
}

/// Every kind of event.
const EVENT_KINDS: [EventKind; 3] = [EventKind::Created, EventKind::Updated, EventKind::Archived];

/// The name of an event kind, as in the `event:` line, the data's `kind` and `?kinds=`.
fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Created => "created",
        EventKind::Updated => "updated",
        EventKind::Archived => "archived",
    }
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
    /// The last event looked at, sent or left out.
    after: u64,
    /// The last sequence the client was told (an event's id or a progress frame's).
    told: u64,
    /// When something carrying a sequence was last sent.
    told_at: Instant,
    until: Option<u64>,
    kinds: Kinds,
    render: Arc<F>,
    done: bool,
    closing: watch::Receiver<bool>,
}

impl<T: Data, F> Feed<T, F>
where
    F: Fn(&Event<T>) -> Option<String>,
{
    /// The next chunk to send, or `None` when the stream ends.
    async fn next_chunk(&mut self) -> Option<String> {
        loop {
            let caught_up = self.until.is_some_and(|until| self.after >= until);
            if self.done || caught_up || *self.closing.borrow() {
                return None;
            }
            // Left-out events not yet told: say so within PROGRESS_EVERY even if nothing else
            // happens.
            let untold = self.after > self.told;
            let wait = if untold {
                PROGRESS_EVERY.saturating_sub(self.told_at.elapsed())
            } else {
                KEEPALIVE
            };
            let next = tokio::time::timeout(wait, self.store.wait_events_after(self.after, BATCH));
            let mut closing = self.closing.clone();
            let next = tokio::select! {
                next = next => next,
                _ = closing.wait_for(|c| *c) => return None,
            };
            let events = match next {
                Err(_) if untold => return Some(self.progress(String::new())),
                Err(_) => return Some(": keep-alive\n\n".to_owned()),
                Ok(Ok(events)) => events,
                Ok(Err(StoreError::TooOld {
                    requested,
                    oldest_available,
                })) => {
                    self.done = true;
                    let data = serde_json::json!({
                        "requested_after": requested,
                        "oldest_available": oldest_available,
                        "detail": "events this old are no longer retained: reload the current state, then follow from its sequence",
                    });
                    return Some(format!("event: resync\ndata: {data}\n\n"));
                }
                Ok(Err(_closed)) => return None,
            };
            let mut out = String::new();
            for event in &events {
                self.after = event.seq;
                if !self.kinds.has(event.kind) {
                    continue;
                }
                let Some(data) = (self.render)(event) else {
                    continue;
                };
                let _ = write!(
                    out,
                    "id: {}\nevent: {}\ndata: {}\n\n",
                    event.seq,
                    kind_name(event.kind),
                    data
                );
                self.told = event.seq;
            }
            let ending = self.until.is_some_and(|until| self.after >= until);
            let due = self.told_at.elapsed() >= PROGRESS_EVERY;
            if self.after > self.told && (!out.is_empty() || ending || due) {
                return Some(self.progress(out));
            }
            if !out.is_empty() {
                self.told_at = Instant::now();
                return Some(out);
            }
            // Only left-out events, and progress was told recently: wait for more.
        }
    }

    /// `out` followed by a frame with only an `id:` line: the position the stream has reached.
    fn progress(&mut self, mut out: String) -> String {
        let _ = write!(out, "id: {}\n\n", self.after);
        self.told = self.after;
        self.told_at = Instant::now();
        out
    }
}

/// Streams the events after `after` (and, with `until`, ends after that one) of the `kinds`
/// asked for; `render` turns each into the JSON of its `data:` line, or `None` to leave it out
/// (e.g. another user's record).
fn stream<T, F>(
    store: Store<T>,
    after: u64,
    until: Option<u64>,
    kinds: Kinds,
    closing: &Closing,
    render: F,
) -> HttpResponse
where
    T: Data,
    F: Fn(&Event<T>) -> Option<String> + 'static,
{
    let feed = Feed {
        store,
        after,
        told: after,
        told_at: Instant::now(),
        until,
        kinds,
        render: Arc::new(render),
        done: false,
        closing: closing.subscribe(),
    };
    let events = stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next_chunk().await?;
        Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), feed))
    });
    let opening = stream::once(async { Ok(Bytes::from_static(b"retry: 2000\n\n")) });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(opening.chain(events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_a_comma_separated_set() {
        assert_eq!(Kinds::parse(None).unwrap(), Kinds::ALL);
        let archived = Kinds::parse(Some("archived")).unwrap();
        assert!(archived.has(EventKind::Archived));
        assert!(!archived.has(EventKind::Created) && !archived.has(EventKind::Updated));
        let two = Kinds::parse(Some("updated,created,updated")).unwrap();
        assert!(two.has(EventKind::Created) && two.has(EventKind::Updated));
        assert!(!two.has(EventKind::Archived));
        for bad in ["", "archived,", "Archived", "deleted", "created, updated"] {
            assert!(Kinds::parse(Some(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kind_names_are_the_serialized_ones() {
        for kind in EVENT_KINDS {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind_name(kind));
        }
    }
}
