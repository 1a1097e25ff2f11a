//! Budgeted queries: no list call examines more than its budget, and following the cursors
//! finds exactly what a full scan finds, in every order and with every kind of condition.

use std::sync::Arc;

use proptest::prelude::*;
use store_actor::fs::SimFs;
use store_actor::{DEFAULT_BUDGET, IndexKey, Op, Query, Record, SortKey, Store};

use crate::helpers::{Item, item, open_sim};

/// What following a query's cursors found: every item, and each page's size and examined count.
type Followed = (Vec<Arc<Record<Item>>>, Vec<(usize, usize)>);

/// Follows the cursors of `q` to the end: every item, and each page's size and examined count.
fn follow(store: &Store<Item>, q: impl Fn() -> Query<Item>) -> Followed {
    let (mut items, mut pages) = (Vec::new(), Vec::new());
    let mut cursor = None;
    loop {
        let page = store.list(&q().cursor(cursor)).unwrap();
        pages.push((page.items.len(), page.examined));
        items.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return (items, pages),
        }
        assert!(pages.len() < 100_000, "cursors go round in circles");
    }
}

#[tokio::test]
async fn a_filter_matching_nothing_stops_at_the_budget_with_a_cursor() {
    let store = open_sim(&SimFs::new()).await;
    for chunk in 0..100 {
        let ops = (0..1000)
            .map(|i| Op::create(item(&format!("n{}", chunk * 1000 + i), i)))
            .collect();
        store.batch(ops).await.unwrap();
    }
    let nothing = || {
        Query::new()
            .filter(|r: &Record<Item>| r.data.price < 0)
            .limit(20)
    };

    let first = store.list(&nothing()).unwrap();
    assert!(first.items.is_empty());
    assert_eq!(first.examined, DEFAULT_BUDGET);
    assert!(
        first.next_cursor.is_some(),
        "an empty page cut by the budget goes on"
    );

    let (items, pages) = follow(&store, nothing);
    assert!(items.is_empty());
    assert_eq!(pages.len(), 100_000 / DEFAULT_BUDGET);
    assert!(
        pages
            .iter()
            .all(|&(n, examined)| n == 0 && examined <= DEFAULT_BUDGET)
    );
    assert_eq!(pages.iter().map(|p| p.1).sum::<usize>(), 100_000);

    // A rare match is found on whichever page reaches it, and nothing else is listed.
    let rare = || {
        Query::new()
            .filter(|r: &Record<Item>| r.data.name == "n77777")
            .budget(5_000)
    };
    let (items, pages) = follow(&store, rare);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].data.name, "n77777");
    assert!(pages.iter().all(|&(_, examined)| examined <= 5_000));

    // A range on an index is served by the index: one page, examining only its matches.
    let cheap = store
        .list(
            &Query::new()
                .index_range("price", IndexKey::Int(3)..IndexKey::Int(5))
                .limit(1000),
        )
        .unwrap();
    assert_eq!(cheap.items.len(), 200);
    assert!(cheap.items.iter().all(|r| (3..5).contains(&r.data.price)));
    assert_eq!(cheap.examined, 200);
    assert!(cheap.next_cursor.is_none());
    store.close().await.unwrap();
}

/// A query the property test builds: order, page size, budget and conditions.
#[derive(Debug, Clone)]
struct Spec {
    sort: u8,
    descending: bool,
    limit: usize,
    budget: usize,
    /// Keep prices divisible by this (1: all).
    every: i64,
    /// An index condition: 0 none, 1 tag equals, 2 price range, 3 a tag range that holds both
    /// keys of a red record.
    cond: u8,
    lo: i64,
    hi: i64,
    archived: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        (0u8..4, any::<bool>(), 1usize..8, 1usize..40),
        (1i64..4, 0u8..4, 0i64..30, 0i64..30, any::<bool>()),
    )
        .prop_map(
            |((sort, descending, limit, budget), (every, cond, lo, hi, archived))| Spec {
                sort,
                descending,
                limit,
                budget,
                every,
                cond,
                lo: lo.min(hi),
                hi: lo.max(hi),
                archived,
            },
        )
}

impl Spec {
    fn sort_key(&self) -> SortKey {
        match self.sort {
            0 => SortKey::Id,
            1 => SortKey::CreatedAt,
            2 => SortKey::Index("price".into()),
            _ => SortKey::Index("name".into()),
        }
    }

    fn query(&self) -> Query<Item> {
        let every = self.every;
        let mut q = Query::new()
            .sort(self.sort_key(), self.descending)
            .limit(self.limit)
            .budget(self.budget)
            .include_archived(self.archived)
            .filter(move |r: &Record<Item>| r.data.price % every == 0);
        q = match self.cond {
            1 => q.index_eq("tag", "red"),
            2 => q.index_range("price", IndexKey::Int(self.lo)..=IndexKey::Int(self.hi)),
            3 => q.index_range("tag", IndexKey::from("red")..=IndexKey::from("redder")),
            _ => q,
        };
        q
    }

    /// What a full scan finds, in the query's order.
    fn expected(&self, all: &[Arc<Record<Item>>]) -> Vec<String> {
        let mut hits: Vec<&Arc<Record<Item>>> = all
            .iter()
            .filter(|r| self.archived || !r.archived)
            .filter(|r| r.data.price % self.every == 0)
            .filter(|r| match self.cond {
                1 | 3 => r.data.tags.iter().any(|t| t == "red"),
                2 => (self.lo..=self.hi).contains(&r.data.price),
                _ => true,
            })
            .collect();
        hits.sort_by(|a, b| match self.sort {
            0 => a.id.cmp(&b.id),
            1 => (a.created_at, a.id).cmp(&(b.created_at, b.id)),
            2 => (a.data.price, a.id).cmp(&(b.data.price, b.id)),
            _ => (&a.data.name, a.id).cmp(&(&b.data.name, b.id)),
        });
        if self.descending {
            hits.reverse();
        }
        hits.iter().map(|r| r.data.name.clone()).collect()
    }
}

async fn check(prices: Vec<(i64, bool, bool)>, specs: Vec<Spec>) -> Result<(), TestCaseError> {
    let store = open_sim(&SimFs::new()).await;
    let mut ops = Vec::new();
    for (i, (price, red, _)) in prices.iter().enumerate() {
        let mut it = item(&format!("r{:03}", (i * 37) % 101), *price);
        if *red {
            it.tags = vec!["red".into(), "redder".into()];
        }
        ops.push(Op::create(it));
    }
    let created = store.batch(ops).await.unwrap();
    for (r, (_, _, archive)) in created.iter().zip(&prices) {
        if *archive {
            store.archive(r.id, None).await.unwrap();
        }
    }
    let all: Vec<Arc<Record<Item>>> = store.all().collect();
    for s in specs {
        let (items, pages) = follow(&store, || s.query());
        let names: Vec<String> = items.iter().map(|r| r.data.name.clone()).collect();
        prop_assert_eq!(&names, &s.expected(&all), "{:?}", s);
        for (n, examined) in pages {
            prop_assert!(n <= s.limit, "{:?}", s);
            prop_assert!(examined <= s.budget, "{:?}", s);
        }
    }
    store.close().await.unwrap();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the budget, the pages of a query add up to exactly what a full scan finds.
    #[test]
    fn budgeted_pages_add_up_to_a_full_scan(
        prices in proptest::collection::vec((0i64..30, proptest::bool::weighted(0.3), proptest::bool::weighted(0.2)), 1..120),
        specs in proptest::collection::vec(spec(), 1..8),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check(prices, specs))?;
    }
}
