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

/// Where an order's stock stands, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StockState {
    /// Held at products; the sale (or a change of it) is being confirmed.
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

/// Units of one product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Units {
    /// The product.
    pub product_id: Uuid,
    /// How many.
    pub quantity: u32,
}

impl From<Units> for products_api::ReserveLine {
    fn from(u: Units) -> Self {
        products_api::ReserveLine {
            product_id: u.product_id,
            quantity: u.quantity,
        }
    }
}

impl From<super::RequestedItem> for Units {
    fn from(i: super::RequestedItem) -> Self {
        Units {
            product_id: i.product_id,
            quantity: i.quantity,
        }
    }
}

/// One reservation of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// The reservation's id at products.
    pub id: Uuid,
    /// Where it stands.
    pub state: HoldState,
    /// The units it holds at products.
    #[serde(default)]
    pub lines: Vec<Units>,
    /// The fewer units it is owed a shrink to (the order's lines went down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shrink_to: Option<Vec<Units>>,
}

/// What orders owes products for one reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// Commit it.
    Commit(Uuid),
    /// Release it.
    Release(Uuid),
    /// Shrink it to these units (giving the rest back).
    Shrink(Uuid, Vec<Units>),
}

impl Hold {
    /// A new reservation of `lines`, owed a commit.
    pub fn committing(id: Uuid, lines: Vec<Units>) -> Self {
        Hold {
            id,
            state: HoldState::Committing,
            lines,
            shrink_to: None,
        }
    }

    /// The units it will hold once what it is owed is done (none once released).
    pub fn target(&self) -> &[Units] {
        if !self.state.is_live() {
            return &[];
        }
        self.shrink_to.as_deref().unwrap_or(&self.lines)
    }

    /// The calls this hold waits for: a commit or a release, and a shrink of a live one.
    pub fn dues(&self) -> impl Iterator<Item = Due> + '_ {
        let settle = match self.state {
            HoldState::Committing => Some(Due::Commit(self.id)),
            HoldState::Releasing => Some(Due::Release(self.id)),
            _ => None,
        };
        let shrink = self
            .shrink_to
            .as_ref()
            .filter(|_| self.state.is_live())
            .map(|to| Due::Shrink(self.id, to.clone()));
        settle.into_iter().chain(shrink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_committing_releasing_and_shrinking_are_owed() {
        let id = Uuid::now_v7();
        let units = vec![Units {
            product_id: id,
            quantity: 1,
        }];
        let dues = |state, shrink: bool| {
            let mut hold = Hold::committing(id, units.clone());
            hold.state = state;
            hold.shrink_to = shrink.then(Vec::new);
            hold.dues().collect::<Vec<_>>()
        };
        assert_eq!(dues(HoldState::Committing, false), [Due::Commit(id)]);
        assert_eq!(dues(HoldState::Releasing, false), [Due::Release(id)]);
        assert_eq!(
            dues(HoldState::Committing, true),
            [Due::Commit(id), Due::Shrink(id, Vec::new())]
        );
        assert_eq!(
            dues(HoldState::Committed, true),
            [Due::Shrink(id, Vec::new())]
        );
        assert_eq!(
            dues(HoldState::Releasing, true),
            [Due::Release(id)],
            "a release covers a shrink"
        );
        for settled in [HoldState::Committed, HoldState::Released, HoldState::Lapsed] {
            assert_eq!(dues(settled, false), []);
            assert!(!settled.is_unsettled());
        }
        assert!(HoldState::Committing.is_live() && HoldState::Committed.is_live());
        assert!(!HoldState::Releasing.is_live());
    }
}
