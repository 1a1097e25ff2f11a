//! Shared fixtures: a small record type and ways to open stores on real or simulated disks.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use store_actor::fs::SimFs;
use store_actor::{IndexKey, Memory, Op, Query, Record, SortKey, Store, StoreOptions};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Item {
    pub name: String,
    pub price: i64,
    #[serde(default)]
    pub tags: Vec<String>,
}

pub fn item(name: &str, price: i64) -> Item {
    Item {
        name: name.into(),
        price,
        tags: Vec::new(),
    }
}

/// The memory mode every suite runs in: `STORE_ACTOR_MEMORY=index` runs them all in index mode,
/// with a cache small enough (64 KiB) that most reads go to the files; unset or empty, memory.
pub fn memory() -> Memory {
    match std::env::var("STORE_ACTOR_MEMORY").as_deref() {
        Ok("index") => Memory::Index {
            cache_bytes: 64 << 10,
        },
        Ok("in-memory" | "") | Err(_) => Memory::InMemory,
        Ok(other) => panic!("STORE_ACTOR_MEMORY={other}: use index or in-memory"),
    }
}

/// Options with the indexes the tests use: `name`, `price` (one key each) and `tag` (many).
pub fn options(dir: &Path) -> StoreOptions<Item> {
    StoreOptions::new(dir, "items")
        .memory(memory())
        .index("name", |i: &Item| vec![IndexKey::from(i.name.as_str())])
        .index("price", |i: &Item| vec![IndexKey::Int(i.price)])
        .index("tag", |i: &Item| {
            i.tags.iter().map(|t| IndexKey::from(t.as_str())).collect()
        })
}

pub fn sim_options(fs: &SimFs) -> StoreOptions<Item> {
    options(Path::new("/sim")).fs(Arc::new(fs.clone()))
}

pub async fn open_sim(fs: &SimFs) -> Store<Item> {
    Store::open(sim_options(fs)).await.expect("open")
}

/// Groups of records that atomic batches move together (see [`step`]): group `g` is its keys,
/// records named `key{g}` that always hold the same price, plus one record named `g{g}` per
/// batch applied to it.
pub type Groups = Vec<Vec<Uuid>>;

/// Creates `groups` groups of `keys` keys each, all at price 0.
pub async fn create_groups(store: &Store<Item>, groups: usize, keys: usize) -> Groups {
    let mut out = Vec::new();
    for g in 0..groups {
        let mut ids = Vec::new();
        for _ in 0..keys {
            ids.push(store.create(item(&format!("key{g}"), 0)).await.unwrap().id);
        }
        out.push(ids);
    }
    out
}

/// Finds the groups of [`create_groups`] in a store's records.
pub fn find_groups<'a>(records: impl Iterator<Item = &'a Record<Item>>, groups: usize) -> Groups {
    let mut out = vec![Vec::new(); groups];
    for r in records {
        if let Some(g) = r.data.name.strip_prefix("key") {
            out[g.parse::<usize>().unwrap()].push(r.id);
        }
    }
    out
}

/// The batch that moves group `g` from `n - 1` to `n`: every key's price + 1 (refused unless it
/// was `n - 1`), and a new record `g{g}` at price `n`.
pub fn step(keys: &[Uuid], g: usize, n: i64) -> Vec<Op<Item>> {
    let mut ops: Vec<Op<Item>> = keys
        .iter()
        .map(|id| {
            Op::update(*id, None, move |i: &Item| {
                if i.price != n - 1 {
                    return Err(format!("key at {}, not {}", i.price, n - 1));
                }
                Ok(Item {
                    price: n,
                    ..i.clone()
                })
            })
        })
        .collect();
    ops.push(Op::create(item(&format!("g{g}"), n)));
    ops
}

/// Checks that every [`step`] batch is wholly present or wholly absent in `records`: all keys of
/// a group at the same value `v`, and exactly the records `g{g}` at prices `1..=v`. Returns
/// each group's `v`.
pub fn check_groups<'a>(
    records: impl Iterator<Item = &'a Record<Item>>,
    groups: &Groups,
) -> Result<Vec<i64>, String> {
    let mut keys: HashMap<Uuid, i64> = HashMap::new();
    let mut created: Vec<Vec<i64>> = vec![Vec::new(); groups.len()];
    for r in records {
        if let Some(g) = r.data.name.strip_prefix('g') {
            created[g.parse::<usize>().unwrap()].push(r.data.price);
        } else {
            keys.insert(r.id, r.data.price);
        }
    }
    let mut values = Vec::new();
    for (g, ids) in groups.iter().enumerate() {
        let prices: Vec<i64> = ids.iter().map(|id| keys[id]).collect();
        let v = prices[0];
        if prices.iter().any(|p| *p != v) {
            return Err(format!("group {g}: keys at different values {prices:?}"));
        }
        created[g].sort_unstable();
        if created[g] != (1..=v).collect::<Vec<_>>() {
            return Err(format!(
                "group {g}: keys at {v}, but records created at {:?}",
                created[g]
            ));
        }
        values.push(v);
    }
    Ok(values)
}

/// Every record's id, archived ones included, walking pages of `limit` in one order.
pub fn walk_ids(store: &Store<Item>, sort: &SortKey, descending: bool, limit: usize) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let q = Query::new()
            .sort(sort.clone(), descending)
            .include_archived(true)
            .limit(limit)
            .cursor(cursor.take());
        let page = store.list(&q).unwrap();
        ids.extend(page.items.iter().map(|r| r.id));
        match page.next_cursor {
            None => return ids,
            some => cursor = some,
        }
    }
}
