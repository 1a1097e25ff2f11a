//! An order's reservations at products, as an outbox: each records what orders still owes
//! products (a commit or a release) until products confirms it.
//!
//! An order's lines are held at products by a reservation named by a UUID (the order's own id
//! for its first lines, a fresh one each time the lines change). The order records every
//! reservation it made and where it stands; the [`settler`](crate::settler) keeps calling
//! products until each is settled, so a crash of either service never forgets one.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Where one reservation of an order stands, from orders' side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldState {
    /// Held at products; orders owes it a commit (the order is stored).
    Committing,
    /// Products confirmed the sale.
    Committed,
    /// Orders owes products a release (cancelled, deleted, or lines replaced).
    Releasing,
    /// Products confirmed the release.
    Released,
    /// Products no longer held it when orders came to commit (it expired): its units are not
    /// sold, and the order was put on hold.
    Lapsed,
}

impl HoldState {
    /// Whether orders still owes products a call.
    pub fn is_unsettled(self) -> bool {
        matches!(self, HoldState::Committing | HoldState::Releasing)
    }

    /// Whether the reservation holds (or sold) the order's current units.
    pub fn is_live(self) -> bool {
        matches!(self, HoldState::Committing | HoldState::Committed)
    }
}

/// Where an order's stock stands, as clients see it (its newest reservation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    /// Held at products; the sale is being confirmed.
    Pending,
    /// Sold: products confirmed.
    Confirmed,
    /// Being given back (cancelled or deleted).
    Releasing,
    /// Given back.
    Released,
    /// The hold expired before the sale was confirmed: nothing is held (the order is on hold).
    Expired,
}

impl From<HoldState> for StockState {
    fn from(state: HoldState) -> Self {
        match state {
            HoldState::Committing => StockState::Pending,
            HoldState::Committed => StockState::Confirmed,
            HoldState::Releasing => StockState::Releasing,
            HoldState::Released => StockState::Released,
            HoldState::Lapsed => StockState::Expired,
        }
    }
}

/// One reservation of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The reservation's id at products.
    pub id: Uuid,
    /// Where it stands.
    pub state: HoldState,
}

/// What orders owes products for one reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Commit it.
    Commit(Uuid),
    /// Release it.
    Release(Uuid),
}

impl Hold {
    /// The call this hold waits for, if any.
    pub fn due(&self) -> Option<Due> {
        match self.state {
            HoldState::Committing => Some(Due::Commit(self.id)),
            HoldState::Releasing => Some(Due::Release(self.id)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_committing_and_releasing_are_owed() {
        let id = Uuid::now_v7();
        let due = |state| Hold { id, state }.due();
        assert_eq!(due(HoldState::Committing), Some(Due::Commit(id)));
        assert_eq!(due(HoldState::Releasing), Some(Due::Release(id)));
        for settled in [HoldState::Committed, HoldState::Released, HoldState::Lapsed] {
            assert_eq!(due(settled), None);
            assert!(!settled.is_unsettled());
        }
        assert!(HoldState::Committing.is_live() && HoldState::Committed.is_live());
        assert!(!HoldState::Releasing.is_live());
    }
}
