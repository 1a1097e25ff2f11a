//! Settles what orders owes products: the outbox worker.
//!
//! Every order records its reservations and whether each still needs a commit or a release
//! ([`Hold`](crate::domain::Hold)), or a shrink when its lines went down. The settler finds
//! those orders through an index, commits all that a round owes with one call per 100 (one
//! batch at products), makes the other calls one by one (all are idempotent at products), and
//! records each order's answers in one change of it. It runs in the background, so no client
//! answer waits on products confirming:
//!
//! - woken as soon as an order owes something, and on its own every few seconds;
//! - when products cannot be reached, it retries with a doubling backoff (capped at 2 s, and
//!   cut short when a new order shows products answers again), so a crash or
//!   an outage of either service only delays settling, never loses it: the debt is in the order,
//!   written in the same journal entry as the change that created it;
//! - a commit products refuses (the reservation expired first) is recorded as lapsed and the
//!   order put on hold; a deleted order becomes a tombstone once it owes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use products_api::client::{ClientError, ProductsClient, ReserveOutcome};
use products_api::{MAX_COMMIT, ReserveLine};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use store_actor::{IndexKey, Op, Record};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::domain::{Due, Order, Settled};
use crate::store::{BY_UNSETTLED, OrderStore, UNSETTLED};

/// First wait after a failed round; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between rounds while products is failing: far below any sensible reservation
/// time to live, so a commit is retried many times before its hold could expire.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// A round runs this often even when nothing woke the settler.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Orders settled at once (each is one or two calls to products).
const CONCURRENCY: usize = 32;

/// Labels of `orders_settlements_total`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    /// `committed`, `released`, `shrunk`, `lapsed` or `failed`.
    outcome: &'static str,
}

/// Settling counted for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct SettlerMetrics {
    settlements: Family<Outcome, Counter>,
    unsettled: Gauge,
}

impl SettlerMetrics {
    /// Registers `orders_settlements_total{outcome}` and `orders_unsettled`.
    pub fn register(&self, metrics: &service_kit::metrics::Metrics) {
        metrics.register(
            "orders_settlements",
            "Calls orders owed products for reservations, by outcome",
            self.settlements.clone(),
        );
        metrics.register(
            "orders_unsettled",
            "Orders that owe products a commit or a release (as of the settler's last round, less those settled since)",
            self.unsettled.clone(),
        );
    }

    fn count(&self, outcome: &'static str) {
        self.settlements.get_or_create(&Outcome { outcome }).inc();
    }
}

/// The settler and the handle that wakes it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Settler {
    store: OrderStore,
    products: ProductsClient,
    wake: Arc<Notify>,
    metrics: SettlerMetrics,
}

/// Why one due call did not go through (it is tried again next round).
#[derive(Debug)]
struct Failed;

impl Settler {
    /// A settler of `store`'s orders at `products`.
    pub fn new(store: OrderStore, products: ProductsClient) -> Self {
        Self {
            store,
            products,
            wake: Arc::new(Notify::new()),
            metrics: SettlerMetrics::default(),
        }
    }

    /// The counters (to register in the app's registry).
    pub fn metrics(&self) -> &SettlerMetrics {
        &self.metrics
    }

    /// Asks for a round now: an order owes products something.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Releases a reservation no order was stored for (best effort, in the background: if it
    /// fails, products lets the reservation expire).
    pub fn release_orphan(&self, id: Uuid) {
        let products = self.products.clone();
        tokio::spawn(async move {
            if let Err(e) = products.release(id, None).await {
                tracing::info!(reservation = %id, error = %e, "an unused reservation will expire instead");
            }
        });
    }

    /// Settles rounds until the task is aborted.
    pub async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            if self.round().await {
                backoff = MIN_BACKOFF;
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(SWEEP_EVERY) => {}
                }
            } else {
                // A new debt (an order just placed: products answers again) cuts the wait short.
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// One pass over every order that owes something; `false` if any call failed.
    pub async fn round(&self) -> bool {
        let owing = match self.store.lookup(BY_UNSETTLED, &IndexKey::from(UNSETTLED)) {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the orders that owe products");
                return false;
            }
        };
        let owing: Vec<_> = owing.into_iter().filter(|r| !r.archived).collect();
        self.metrics.unsettled.set(owing.len() as i64);
        let commits = Arc::new(self.commit_all(&owing).await);
        // The usual case, an order whose only due is a commit this round made, is recorded
        // with the others like it: one atomic batch (one journal line, one reply) per
        // MAX_COMMIT orders, instead of one task and one write each.
        let mut answered = Vec::new();
        let mut rest = Vec::new();
        for order in owing {
            match answered_by(&order.data, &commits).filter(|_| !order.data.deleting) {
                Some(answers) => answered.push((order.id, answers)),
                None => rest.push(order),
            }
        }
        for chunk in answered.chunks(MAX_COMMIT) {
            self.record_all(chunk).await;
        }
        let mut all_done = true;
        let mut running = JoinSet::new();
        for order in rest {
            if running.len() >= CONCURRENCY {
                all_done &= running
                    .join_next()
                    .await
                    .is_some_and(|r| r.unwrap_or(false));
            }
            let (settler, commits) = (self.clone(), commits.clone());
            running.spawn(async move {
                let settled = settler.settle(&order, &commits).await.is_ok();
                if settled {
                    settler.metrics.unsettled.dec();
                }
                settled
            });
        }
        while let Some(done) = running.join_next().await {
            all_done &= done.unwrap_or(false);
        }
        all_done
    }

    /// Makes every call `order` owes and records the answers in one change; a deleted order
    /// that owes nothing more becomes a tombstone.
    async fn settle(
        &self,
        order: &Record<Order>,
        commits: &HashMap<Uuid, Settled>,
    ) -> Result<(), Failed> {
        let mut answers = Vec::new();
        let mut result = Ok(());
        for due in order.data.dues() {
            let answered = match &due {
                Due::Commit(id) => commits.get(id).copied().map(Ok),
                _ => None,
            };
            let answer = match answered {
                Some(answer) => answer,
                None => self.call(&due).await,
            };
            match answer {
                Ok(outcome) => answers.push((due, outcome)),
                Err(failed) => result = Err(failed),
            }
        }
        if !answers.is_empty() {
            self.record(order.id, answers).await;
        }
        if result.is_ok() && order.data.deleting {
            let current = self.store.get(order.id).map_err(|_| Failed)?;
            if current.data.is_settled() && !current.archived {
                self.store
                    .archive(order.id, Some(current.version))
                    .await
                    .map_err(|_| Failed)?;
            }
        }
        result
    }

    /// Commits every reservation `owing` orders owe a commit, [`MAX_COMMIT`] per call to
    /// products (one batch there each); returns the answers products gave. Ids of a call that
    /// failed have none: they are tried one by one, as any other due.
    async fn commit_all(&self, owing: &[Arc<Record<Order>>]) -> HashMap<Uuid, Settled> {
        let ids: Vec<Uuid> = owing
            .iter()
            .flat_map(|o| o.data.dues())
            .filter_map(|d| match d {
                Due::Commit(id) => Some(id),
                _ => None,
            })
            .collect();
        let mut answers = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(MAX_COMMIT) {
            match self.products.commit_many(chunk, None).await {
                Ok(out) => {
                    for id in out.committed {
                        self.metrics.count("committed");
                        answers.insert(id, Settled::Done);
                    }
                    // Ended before orders could commit, or lost by products: nothing is sold.
                    for id in out.ended.into_iter().chain(out.unknown) {
                        self.metrics.count("lapsed");
                        answers.insert(id, Settled::Lapsed);
                    }
                }
                Err(e) => {
                    self.metrics.count("failed");
                    tracing::warn!(error = %e, commits = chunk.len(), "committing a round waits for products");
                }
            }
        }
        answers
    }

    /// Asks products to do what `due` says.
    async fn call(&self, due: &Due) -> Result<Settled, Failed> {
        let (id, answer) = match due {
            Due::Commit(id) => (*id, self.products.commit(*id, None).await),
            Due::Release(id) => (*id, self.products.release(*id, None).await),
            Due::Shrink(id, to) => {
                let lines: Vec<ReserveLine> = to.iter().copied().map(ReserveLine::from).collect();
                let answer = match self.products.reserve(*id, &lines, None, None).await {
                    Ok(ReserveOutcome::Held(body)) => Ok(body),
                    Ok(other) => Err(ClientError::Decode(format!(
                        "a shrink cannot be short: {other:?}"
                    ))),
                    Err(e) => Err(e),
                };
                (*id, answer)
            }
        };
        let outcome = match (due, answer) {
            (_, Ok(_)) => Settled::Done,
            // Nothing held any more: a commit comes too late; a release or a shrink has
            // nothing left to give back.
            (
                Due::Commit(_),
                Err(ClientError::Refused {
                    status: 404 | 409, ..
                }),
            ) => Settled::Lapsed,
            (
                _,
                Err(ClientError::Refused {
                    status: 404 | 409, ..
                }),
            ) => Settled::Done,
            (_, Err(e)) => {
                self.metrics.count("failed");
                if matches!(e, ClientError::Unavailable(_)) {
                    tracing::warn!(reservation = %id, error = %e, "settling waits for products");
                } else {
                    tracing::error!(reservation = %id, error = %e, "products refused a settlement");
                }
                return Err(Failed);
            }
        };
        self.metrics.count(match (due, outcome) {
            (Due::Commit(_), Settled::Done) => "committed",
            (Due::Commit(_), Settled::Lapsed) => "lapsed",
            (Due::Release(_), _) => "released",
            (Due::Shrink(..), _) => "shrunk",
        });
        Ok(outcome)
    }

    /// Records each order's answers (see [`answered_by`]) in one atomic batch; if the batch
    /// is refused (an order changed since the round read it, so that it owes something else
    /// now), each is recorded alone.
    async fn record_all(&self, answered: &[(Uuid, Vec<(Due, Settled)>)]) {
        let ops = answered
            .iter()
            .map(|(id, answers)| {
                let answers = answers.clone();
                Op::update(*id, None, move |o: &Order| record_answers(o, &answers))
            })
            .collect();
        if self.store.batch(ops).await.is_err() {
            for (id, answers) in answered {
                self.record(*id, answers.clone()).await;
            }
        }
        for _ in answered {
            self.metrics.unsettled.dec();
        }
    }

    /// Records products' answers in the order (those it still owes).
    async fn record(&self, order: Uuid, answers: Vec<(Due, Settled)>) {
        let recorded = self
            .store
            .update(order, None, move |o: &Order| record_answers(o, &answers))
            .await;
        if let Err(e) = recorded
            && !matches!(e, store_actor::StoreError::Rejected(_))
        {
            tracing::warn!(order = %order, error = %e, "recording a settlement failed; it is retried");
        }
    }
}

/// `order` with `answers` recorded, or a refusal if it owes none of them any more.
fn record_answers(order: &Order, answers: &[(Due, Settled)]) -> Result<Order, &'static str> {
    let mut next: Option<Order> = None;
    for (due, outcome) in answers {
        if let Some(settled) = next.as_ref().unwrap_or(order).settled(due, *outcome) {
            next = Some(settled);
        }
    }
    next.ok_or("nothing owed any more")
}

/// The answers to every due of `order`, if it owes something and all of it is commits that
/// `commits` answered.
fn answered_by(order: &Order, commits: &HashMap<Uuid, Settled>) -> Option<Vec<(Due, Settled)>> {
    let answers: Option<Vec<_>> = order
        .dues()
        .map(|due| match due {
            Due::Commit(id) => commits.get(&id).map(|answer| (due, *answer)),
            _ => None,
        })
        .collect();
    answers.filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Hold, HoldState, Status};

    fn order(holds: Vec<Hold>) -> Order {
        Order {
            owner: "u".into(),
            status: Status::Placed,
            hold_reason: None,
            items: Vec::new(),
            total: products_api::Money::from_cents(0).unwrap(),
            created_by_key: None,
            holds,
            deleting: false,
        }
    }

    #[test]
    fn only_orders_whose_every_due_the_round_committed_are_recorded_together() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let commits = HashMap::from([(a, Settled::Done), (b, Settled::Lapsed)]);
        let one = order(vec![Hold::committing(a, Vec::new())]);
        assert_eq!(
            answered_by(&one, &commits),
            Some(vec![(Due::Commit(a), Settled::Done)])
        );
        // A commit the round did not make, a release, or nothing owed: recorded one by one.
        let unanswered = order(vec![Hold::committing(Uuid::new_v4(), Vec::new())]);
        assert_eq!(answered_by(&unanswered, &commits), None);
        let mut releasing = Hold::committing(b, Vec::new());
        releasing.state = HoldState::Releasing;
        assert_eq!(answered_by(&order(vec![releasing]), &commits), None);
        let mut done = Hold::committing(a, Vec::new());
        done.state = HoldState::Committed;
        assert_eq!(answered_by(&order(vec![done]), &commits), None);
    }

    #[actix_web::test]
    async fn a_round_whose_batch_is_refused_records_each_order_alone() {
        use actix_web::{App, HttpResponse, HttpServer, web};
        use products_api::client::ClientConfig;

        // Arrange: two orders owing a commit each, and a fake products that, before it
        // answers the round's commits, settles x behind the round's back (as a concurrent
        // change would), so the batch recording both is refused.
        let dir = tempfile::tempdir().unwrap();
        let store = store_actor::Store::open(crate::store::options(
            dir.path(),
            store_actor::Durability::Never,
        ))
        .await
        .unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let x = store
            .create(order(vec![Hold::committing(a, Vec::new())]))
            .await
            .unwrap()
            .id;
        let y = store
            .create(order(vec![Hold::committing(b, Vec::new())]))
            .await
            .unwrap()
            .id;
        let behind = store.clone();
        let server = HttpServer::new(move || {
            let behind = behind.clone();
            App::new().route(
                "/reservations/commit",
                web::post().to(move |body: web::Json<serde_json::Value>| {
                    let behind = behind.clone();
                    async move {
                        behind
                            .update(x, None, |o: &Order| {
                                let mut o = o.clone();
                                o.holds[0].state = HoldState::Committed;
                                Ok::<_, &'static str>(o)
                            })
                            .await
                            .unwrap();
                        HttpResponse::Ok().json(serde_json::json!({
                            "committed": body["ids"], "ended": [], "unknown": []
                        }))
                    }
                }),
            )
        })
        .workers(1)
        .bind("127.0.0.1:0")
        .unwrap();
        let address = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        let client = ProductsClient::new(ClientConfig::new(format!("http://{address}"), "t"));
        let settler = Settler::new(store.clone(), client.unwrap());

        // Act
        settler.round().await;

        // Assert: y is recorded on its own; x keeps what was done behind the round.
        assert!(store.get(y).unwrap().data.is_settled(), "y recorded alone");
        assert_eq!(
            store.get(y).unwrap().data.holds[0].state,
            HoldState::Committed
        );
        assert_eq!(
            store.get(x).unwrap().version,
            2,
            "x changed once, not recorded again"
        );
        store.close().await.unwrap();
    }

    #[test]
    fn recorded_answers_settle_the_order_and_a_second_recording_is_refused() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let placed = order(vec![
            Hold::committing(a, Vec::new()),
            Hold::committing(b, Vec::new()),
        ]);
        let answers = [
            (Due::Commit(a), Settled::Done),
            (Due::Commit(b), Settled::Lapsed),
        ];
        let settled = record_answers(&placed, &answers).unwrap();
        assert!(settled.is_settled());
        assert_eq!(settled.holds[0].state, HoldState::Committed);
        assert_eq!(settled.holds[1].state, HoldState::Lapsed);
        assert_eq!(
            settled.status,
            Status::OnHold,
            "a lapsed hold puts it on hold"
        );
        assert!(record_answers(&settled, &answers).is_err());
    }
}
