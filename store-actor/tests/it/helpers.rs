//! Shared fixtures: a small record type and ways to open stores on real or simulated disks.

use std::path::Path;
use std::sync::Arc;

use store_actor::fs::SimFs;
use store_actor::{IndexKey, Store, StoreOptions};

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

/// Options with the indexes the tests use: `name`, `price` (one key each) and `tag` (many).
pub fn options(dir: &Path) -> StoreOptions<Item> {
    StoreOptions::new(dir, "items")
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
