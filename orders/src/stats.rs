//! Order figures: how many orders, of what total and average value, per status, over a time
//! range; what an operator asks first.

use std::collections::BTreeMap;

use products_api::Money;
use time::OffsetDateTime;

use crate::domain::{Order, Status};

/// Counts and exact sums of one group of orders.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    /// Orders.
    pub count: u64,
    /// Sum of their totals, in cents (exact).
    pub total_cents: i128,
}

impl Figures {
    fn add(&mut self, order: &Order) {
        self.count += 1;
        self.total_cents += i128::from(order.total.cents());
    }

    /// The sum as money (saturating at the largest amount a total can be).
    pub fn total(&self) -> Money {
        money(self.total_cents)
    }

    /// The mean total, rounded half up to the cent; zero without orders.
    pub fn average(&self) -> Money {
        if self.count == 0 {
            return Money::default();
        }
        let count = i128::from(self.count);
        money((2 * self.total_cents + count) / (2 * count))
    }
}

fn money(cents: i128) -> Money {
    let cents = i64::try_from(cents).unwrap_or(i64::MAX);
    Money::from_cents(cents)
        .unwrap_or_else(|_| Money::from_cents(products_api::money::MAX_CENTS).unwrap_or_default())
}

/// Figures per status and over all statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Per status (every status present, zero where none).
    pub by_status: BTreeMap<&'static str, Figures>,
    /// All of them.
    pub all: Figures,
}

/// Which orders count: created in `[from, to)` (either bound optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Range {
    /// Earliest creation time counted.
    pub from: Option<OffsetDateTime>,
    /// Creation times from here on are not counted.
    pub to: Option<OffsetDateTime>,
}

impl Range {
    fn contains(&self, t: OffsetDateTime) -> bool {
        self.from.is_none_or(|f| t >= f) && self.to.is_none_or(|to| t < to)
    }
}

/// The figures of `orders` (live ones, with their creation time) within `range`.
pub fn figures<'a>(
    orders: impl IntoIterator<Item = (&'a Order, OffsetDateTime)>,
    range: Range,
) -> Stats {
    let mut stats = Stats::default();
    for status in [
        Status::Placed,
        Status::OnHold,
        Status::Fulfilled,
        Status::Cancelled,
    ] {
        stats.by_status.insert(status.as_str(), Figures::default());
    }
    for (order, created_at) in orders {
        if !range.contains(created_at) {
            continue;
        }
        stats.all.add(order);
        if let Some(f) = stats.by_status.get_mut(order.status.as_str()) {
            f.add(order);
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::order::Priced;

    fn order(status: Status, total: &str) -> Order {
        let mut o = Order::placed(
            "alice".into(),
            Priced {
                lines: Vec::new(),
                total: total.parse().unwrap(),
            },
            None,
            uuid::Uuid::now_v7(),
        );
        o.status = status;
        o
    }

    #[test]
    fn figures_are_exact_and_averages_round_half_up() {
        let t0 = OffsetDateTime::UNIX_EPOCH;
        let hour = time::Duration::hours(1);
        let orders = [
            (order(Status::Placed, "0.10"), t0),
            (order(Status::Placed, "0.05"), t0 + hour),
            (order(Status::Cancelled, "3.33"), t0 + hour * 2),
        ];
        let all = figures(orders.iter().map(|(o, t)| (o, *t)), Range::default());
        assert_eq!(all.all.count, 3);
        assert_eq!(all.all.total().to_string(), "3.48");
        assert_eq!(all.all.average().to_string(), "1.16");
        let placed = all.by_status["placed"];
        assert_eq!(
            (placed.count, placed.total().to_string()),
            (2, "0.15".into())
        );
        // 15 cents over 2 orders: 7.5 rounds half up to 8.
        assert_eq!(placed.average().to_string(), "0.08");
        assert_eq!(all.by_status["fulfilled"], Figures::default());
        assert_eq!(all.by_status["fulfilled"].average().to_string(), "0.00");
        let range = Range {
            from: Some(t0 + hour),
            to: Some(t0 + hour * 2),
        };
        let some = figures(orders.iter().map(|(o, t)| (o, *t)), range);
        assert_eq!(
            (some.all.count, some.all.total().to_string()),
            (1, "0.05".into())
        );
    }
}
