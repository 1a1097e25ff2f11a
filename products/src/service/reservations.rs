//! Reservations: units of several products held for one order, all or nothing (see the rules in
//! the [parent module](super)).
//!
//! Every change of a reservation is one atomic batch of the store: the reservation record and
//! the `reserved`/`stock` counters of its products move together, so no crash can leave units
//! held without a reservation that explains them, or the other way round.

use std::collections::BTreeMap;
use std::time::Duration;

use store_actor::{IndexKey, Op, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{EntryRecord, ProductError, ProductService, refusal};
use crate::domain::{Entry, HeldLine, Reservation, ReservationState, Short, ShortLine};
use crate::store::BY_RESERVATION_STATE;
use products_api::{CommitOutcomes, MAX_COMMIT};

/// Attempts of a commit or release that lost a race with another change of the reservation.
const ATTEMPTS: usize = 3;

/// A validated reservation request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    /// One line per product (merged), each at least one unit.
    pub lines: Vec<HeldLine>,
    /// How long to hold them; at most the service's reservation time to live.
    pub ttl: Option<Duration>,
}

/// A reservation with the products it holds units of, as its holder is answered.
#[derive(Debug)]
pub struct Reserved {
    /// The reservation record.
    pub reservation: EntryRecord,
    /// Its products, in line order (`None`: gone from the store, which never happens to a
    /// product, archived or not).
    pub products: Vec<Option<EntryRecord>>,
    /// Whether this call created it (else it answers an earlier, identical call).
    pub created: bool,
}

/// Whether a batch failed because one of its records changed meanwhile (a newer version, or a
/// product archived): then it is worth looking again.
fn lost_race(source: &StoreError) -> bool {
    matches!(
        source,
        StoreError::Conflict { .. } | StoreError::Archived { .. }
    )
}

/// What a repeated reservation call is, besides the same call again.
enum Repeat {
    /// Fewer units of the same products: shrink the reservation.
    Shrink(EntryRecord),
    /// Refused.
    Refused(ProductError),
}

/// Whether `to` keeps only some of `from`'s units: no new product, no line larger, at least
/// one unit fewer.
fn shrinks(from: &[HeldLine], to: &[HeldLine]) -> bool {
    let held: BTreeMap<Uuid, u32> = from.iter().map(|l| (l.product_id, l.quantity)).collect();
    let fits = to
        .iter()
        .all(|l| held.get(&l.product_id).is_some_and(|q| l.quantity <= *q));
    let kept: u64 = to.iter().map(|l| u64::from(l.quantity)).sum();
    let had: u64 = from.iter().map(|l| u64::from(l.quantity)).sum();
    fits && kept < had
}

fn same_lines(a: &[HeldLine], b: &[HeldLine]) -> bool {
    let key = |lines: &[HeldLine]| -> BTreeMap<Uuid, u32> {
        lines.iter().map(|l| (l.product_id, l.quantity)).collect()
    };
    key(a) == key(b)
}

impl ProductService {
    /// Holds `reserve.lines` for `holder` under `id`, all or nothing.
    pub async fn reserve(
        &self,
        holder: &str,
        id: Uuid,
        reserve: Reserve,
    ) -> Result<Reserved, ProductError> {
        let ttl = reserve
            .ttl
            .unwrap_or(self.reservation_ttl)
            .min(self.reservation_ttl);
        for _ in 0..ATTEMPTS {
            if let Some(existing) = self.existing_reservation(id)? {
                match self.answer_repeat(existing, &reserve.lines) {
                    Err(Repeat::Shrink(existing)) => {
                        match self.shrink(existing, &reserve.lines).await {
                            // Changed meanwhile (committed, released): look again.
                            Err(ProductError::Storage(StoreError::BatchFailed {
                                source, ..
                            })) if matches!(*source, StoreError::Conflict { .. }) => {
                                self.caught_up(&source).await;
                                continue;
                            }
                            shrunk => return shrunk,
                        }
                    }
                    Err(Repeat::Refused(e)) => return Err(e),
                    Ok(same) => return Ok(same),
                }
            }
            if let Err(e) = self.check_available(&reserve.lines) {
                if matches!(e, ProductError::OutOfStock(_)) {
                    self.count("refused");
                }
                return Err(e);
            }
            let reservation = Reservation {
                holder: holder.to_owned(),
                lines: reserve.lines.clone(),
                state: ReservationState::Held,
                expires_at: OffsetDateTime::now_utc() + ttl,
            };
            let mut batch = vec![Op::create_with_id(id, Entry::Reservation(reservation))];
            for line in &reserve.lines {
                let (product_id, quantity) = (line.product_id, line.quantity);
                batch.push(Op::update(product_id, None, move |e: &Entry| match e {
                    Entry::Product(p) => p.holding(product_id, quantity).map(Entry::Product),
                    _ => Err(Short(ShortLine {
                        product_id,
                        requested: quantity,
                        available: 0,
                    })),
                }));
            }
            match self.store.batch(batch).await {
                Ok(written) => {
                    self.count("held");
                    return self.with_products(written[0].clone(), true);
                }
                // The same reservation made meanwhile: answer it as a repeat.
                Err(StoreError::BatchFailed { index: 0, source })
                    if matches!(*source, StoreError::AlreadyExists { .. }) =>
                {
                    continue;
                }
                Err(StoreError::BatchFailed { source, .. }) => {
                    let refused = self.refused_line(*source, &reserve.lines);
                    if matches!(refused, ProductError::OutOfStock(_)) {
                        self.count("refused");
                    }
                    return Err(refused);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProductError::ReservationConflict(format!(
            "reservation {id} keeps changing; try again"
        )))
    }

    /// A reservation, with its products.
    pub fn reservation(&self, id: Uuid) -> Result<Reserved, ProductError> {
        let record = self
            .existing_reservation(id)?
            .ok_or(ProductError::NoReservation(id))?;
        self.with_products(record, false)
    }

    /// Turns a held reservation into a sale; committing it again answers the same.
    pub async fn commit(&self, id: Uuid) -> Result<Reserved, ProductError> {
        self.settle(id, |state| match state {
            ReservationState::Held => Ok(Some(ReservationState::Committed)),
            ReservationState::Committed => Ok(None),
            ended => Err(ProductError::ReservationConflict(format!(
                "reservation {id} was {}: it can no longer be committed",
                ended.as_str()
            ))),
        })
        .await
    }

    /// Gives a reservation's units back (a committed one's too: its order was cancelled);
    /// releasing it again answers the same.
    pub async fn release(&self, id: Uuid) -> Result<Reserved, ProductError> {
        self.settle(id, |state| match state {
            ReservationState::Held | ReservationState::Committed => {
                Ok(Some(ReservationState::Released))
            }
            ReservationState::Released | ReservationState::Expired => Ok(None),
        })
        .await
    }

    /// Releases, as expired, every held reservation whose time ran out by `now`; returns how
    /// many.
    pub async fn expire_due(&self, now: OffsetDateTime) -> Result<usize, ProductError> {
        let held = self.store.lookup(
            BY_RESERVATION_STATE,
            &IndexKey::from(ReservationState::Held.as_str()),
        )?;
        let mut expired = 0;
        for record in held {
            let due = record
                .data
                .as_reservation()
                .is_some_and(|r| r.expires_at <= now);
            if !due {
                continue;
            }
            let outcome = self
                .settle(record.id, |state| match state {
                    ReservationState::Held => Ok(Some(ReservationState::Expired)),
                    _ => Ok(None),
                })
                .await;
            match outcome {
                Ok(r) if r.created => expired += 1,
                Ok(_) => {}
                Err(e) => tracing::warn!(reservation = %record.id, error = %e, "expiring failed"),
            }
        }
        Ok(expired)
    }

    /// Moves a reservation to the state `next` says (or leaves it, answering it as it is), with
    /// its products' counters in the same batch. `Reserved::created` says whether it moved.
    async fn settle(
        &self,
        id: Uuid,
        next: impl Fn(ReservationState) -> Result<Option<ReservationState>, ProductError>,
    ) -> Result<Reserved, ProductError> {
        for _ in 0..ATTEMPTS {
            let record = self
                .existing_reservation(id)?
                .ok_or(ProductError::NoReservation(id))?;
            let Some(current) = record.data.as_reservation().cloned() else {
                return Err(ProductError::NoReservation(id));
            };
            let Some(to) = next(current.state)? else {
                return self.with_products(record, false);
            };
            let batch = self.moves(id, record.version, &current, to);
            match self.store.batch(batch).await {
                Ok(written) => {
                    self.count(to.as_str());
                    return self.with_products(written[0].clone(), true);
                }
                // Changed meanwhile (released, expired, or a product archived): look again.
                Err(StoreError::BatchFailed { source, .. }) if lost_race(&source) => {
                    self.caught_up(&source).await;
                    continue;
                }
                Err(StoreError::BatchFailed { source, .. }) => return Err(refusal(*source)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(ProductError::ReservationConflict(format!(
            "reservation {id} keeps changing; try again"
        )))
    }

    /// The batch that moves reservation `id` (at `version`) from `current.state` to `to`, with
    /// its live products' counters.
    fn moves(
        &self,
        id: Uuid,
        version: u64,
        current: &Reservation,
        to: ReservationState,
    ) -> Vec<Op<Entry>> {
        let mut batch = vec![Op::replace(
            id,
            Some(version),
            Entry::Reservation(Reservation {
                state: to,
                ..current.clone()
            }),
        )];
        for line in &current.lines {
            // An archived product takes no more changes; its counters no longer matter.
            let live = self
                .store
                .get(line.product_id)
                .is_ok_and(|p| !p.archived && p.data.as_product().is_some());
            if !live {
                continue;
            }
            let (from, quantity) = (current.state, line.quantity);
            batch.push(Op::update(line.product_id, None, move |e: &Entry| {
                let Entry::Product(p) = e else {
                    return Err(Short(ShortLine {
                        product_id: Uuid::nil(),
                        requested: quantity,
                        available: 0,
                    }));
                };
                Ok(Entry::Product(match (from, to) {
                    (ReservationState::Held, ReservationState::Committed) => {
                        p.settling(quantity, true)
                    }
                    (ReservationState::Held, _) => p.settling(quantity, false),
                    // A sale given back: the units return to stock.
                    (ReservationState::Committed, _) => p.restocking(quantity),
                    _ => p.clone(),
                }))
            }));
        }
        batch
    }

    /// Commits many reservations in one batch (a settler's round): held ones are sold, ones
    /// committed before count as committed, released or expired ones are reported as ended, and
    /// ids of no reservation as unknown. If the batch keeps losing races with other changes of
    /// the same reservations, they are committed one by one.
    pub async fn commit_many(&self, ids: &[Uuid]) -> Result<CommitOutcomes, ProductError> {
        if ids.is_empty() || ids.len() > MAX_COMMIT {
            return Err(ProductError::CommitSize);
        }
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for _ in 0..ATTEMPTS {
            let mut out = CommitOutcomes::default();
            let (mut batch, mut held) = (Vec::new(), Vec::new());
            for &id in &ids {
                let found = self.existing_reservation(id).ok().flatten();
                let Some((record, r)) = found
                    .as_ref()
                    .and_then(|rec| rec.data.as_reservation().map(|r| (rec, r)))
                else {
                    out.unknown.push(id);
                    continue;
                };
                match r.state {
                    ReservationState::Held => {
                        batch.extend(self.moves(
                            id,
                            record.version,
                            r,
                            ReservationState::Committed,
                        ));
                        held.push(id);
                    }
                    ReservationState::Committed => out.committed.push(id),
                    ReservationState::Released | ReservationState::Expired => out.ended.push(id),
                }
            }
            if batch.is_empty() {
                return Ok(out);
            }
            match self.store.batch(batch).await {
                Ok(_) => {
                    for _ in &held {
                        self.count("committed");
                    }
                    out.committed.extend(held);
                    out.committed.sort_unstable();
                    return Ok(out);
                }
                // One of them changed meanwhile (expired, released): look again.
                Err(StoreError::BatchFailed { source, .. }) if lost_race(&source) => {
                    self.caught_up(&source).await;
                    continue;
                }
                Err(StoreError::BatchFailed { source, .. }) => return Err(refusal(*source)),
                Err(e) => return Err(e.into()),
            }
        }
        let mut out = CommitOutcomes::default();
        for id in ids {
            match self.commit(id).await {
                Ok(_) => out.committed.push(id),
                Err(ProductError::NoReservation(_)) => out.unknown.push(id),
                Err(ProductError::ReservationConflict(_)) => out.ended.push(id),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// After a write lost a race, waits (briefly) until reads show the version that won.
    async fn caught_up(&self, lost: &StoreError) {
        if let StoreError::Conflict { id, actual, .. } = lost {
            let within = std::time::Duration::from_secs(1);
            self.store.wait_readable(*id, *actual, within).await;
        }
    }

    /// The reservation under `id`, if any; another kind of record there is a conflict.
    fn existing_reservation(&self, id: Uuid) -> Result<Option<EntryRecord>, ProductError> {
        match self.store.get(id) {
            Ok(r) if r.data.as_reservation().is_some() => Ok(Some(r)),
            Ok(_) => Err(ProductError::ReservationConflict(format!(
                "{id} is the id of another record"
            ))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// A reservation asked for again: the same lines answer it (unless it has ended); fewer
    /// units of the same products (none new) shrink it; other lines are refused.
    fn answer_repeat(&self, existing: EntryRecord, lines: &[HeldLine]) -> Result<Reserved, Repeat> {
        let Some(r) = existing.data.as_reservation() else {
            return Err(Repeat::Refused(ProductError::NoReservation(existing.id)));
        };
        let ended = matches!(
            r.state,
            ReservationState::Released | ReservationState::Expired
        );
        if ended {
            return Err(Repeat::Refused(ProductError::ReservationConflict(format!(
                "reservation {} was {}",
                existing.id,
                r.state.as_str()
            ))));
        }
        if same_lines(&r.lines, lines) {
            return self.with_products(existing, false).map_err(Repeat::Refused);
        }
        if shrinks(&r.lines, lines) {
            return Err(Repeat::Shrink(existing));
        }
        Err(Repeat::Refused(ProductError::ReservationConflict(format!(
            "reservation {} already holds other lines (it can only shrink)",
            existing.id
        ))))
    }

    /// Shrinks a held or committed reservation to `lines` (fewer units of some of its
    /// products), giving the difference back in the same batch: held units stop being
    /// reserved, sold units return to stock.
    async fn shrink(
        &self,
        existing: EntryRecord,
        lines: &[HeldLine],
    ) -> Result<Reserved, ProductError> {
        let Some(current) = existing.data.as_reservation().cloned() else {
            return Err(ProductError::NoReservation(existing.id));
        };
        let kept: BTreeMap<Uuid, u32> = lines.iter().map(|l| (l.product_id, l.quantity)).collect();
        let mut batch = vec![Op::replace(
            existing.id,
            Some(existing.version),
            Entry::Reservation(Reservation {
                lines: lines.to_vec(),
                ..current.clone()
            }),
        )];
        for line in &current.lines {
            let given_back = line.quantity - kept.get(&line.product_id).copied().unwrap_or(0);
            let live = self
                .store
                .get(line.product_id)
                .is_ok_and(|p| !p.archived && p.data.as_product().is_some());
            if given_back == 0 || !live {
                continue;
            }
            let sold = current.state == ReservationState::Committed;
            batch.push(Op::update(
                line.product_id,
                None,
                move |e: &Entry| match e {
                    Entry::Product(p) if sold => Ok(Entry::Product(p.restocking(given_back))),
                    Entry::Product(p) => Ok(Entry::Product(p.settling(given_back, false))),
                    _ => Err(StoreError::Rejected("not a product".into())),
                },
            ));
        }
        let written = self.store.batch(batch).await?;
        self.count("shrunk");
        // A change of an existing reservation: answered 200, like a repeat.
        self.with_products(written[0].clone(), false)
    }

    /// Refuses lines of unknown or archived products, then lines that do not fit (all named).
    fn check_available(&self, lines: &[HeldLine]) -> Result<(), ProductError> {
        let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
        let (mut unknown, mut archived, mut short) = (Vec::new(), Vec::new(), Vec::new());
        for (line, found) in lines.iter().zip(self.store.get_many(&ids)?) {
            match found
                .as_ref()
                .and_then(|r| r.data.as_product().map(|p| (r, p)))
            {
                None => unknown.push(line.product_id),
                Some((r, _)) if r.archived => archived.push(line.product_id),
                Some((_, p)) => {
                    if let Err(Short(s)) = p.holding(line.product_id, line.quantity) {
                        short.push(s);
                    }
                }
            }
        }
        if !unknown.is_empty() || !archived.is_empty() {
            return Err(ProductError::Unavailable { unknown, archived });
        }
        if !short.is_empty() {
            return Err(ProductError::OutOfStock(short));
        }
        Ok(())
    }

    /// Why a reservation batch failed: the lines short now (a race with another reservation),
    /// an archived product, or the store's own refusal.
    fn refused_line(&self, source: StoreError, lines: &[HeldLine]) -> ProductError {
        match source {
            StoreError::Rejected(reason) => match reason.downcast::<Short>() {
                Ok(short) => match self.check_available(lines) {
                    Err(e) => e,
                    // Fits again already: report the line that did not fit then.
                    Ok(()) => ProductError::OutOfStock(vec![short.0]),
                },
                Err(other) => StoreError::Rejected(other).into(),
            },
            StoreError::Archived { id } => ProductError::Unavailable {
                unknown: Vec::new(),
                archived: vec![id],
            },
            StoreError::NotFound { id } => ProductError::Unavailable {
                unknown: vec![id],
                archived: Vec::new(),
            },
            other => other.into(),
        }
    }

    fn with_products(
        &self,
        reservation: EntryRecord,
        created: bool,
    ) -> Result<Reserved, ProductError> {
        let ids: Vec<Uuid> = reservation
            .data
            .as_reservation()
            .map(|r| r.lines.iter().map(|l| l.product_id).collect())
            .unwrap_or_default();
        Ok(Reserved {
            products: self.store.get_many(&ids)?,
            reservation,
            created,
        })
    }
}
