//! `Idempotency-Key` support: who is in flight now, and the fingerprint of a request body.
//!
//! Durability is the service's part: it stores the key and the fingerprint *in the record it
//! creates*, in the same write, so a retry after any crash finds either nothing (and creates) or
//! the record (and returns it), never a duplicate. This module only refuses a retry that
//! arrives while the first attempt is still running (409).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use store_actor::IndexKey;

use crate::problem::ApiError;

/// Keys whose first request is still being processed, per caller.
#[derive(Debug, Clone, Default)]
pub struct InFlight {
    keys: Arc<Mutex<HashSet<(String, String)>>>,
}

/// Holds a key as in flight until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    keys: Arc<Mutex<HashSet<(String, String)>>>,
    entry: (String, String),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.keys.lock().unwrap().remove(&self.entry);
    }
}

impl InFlight {
    /// Marks `key` of `owner` as in flight; 409 if it already is.
    pub fn begin(&self, owner: &str, key: &str) -> Result<InFlightGuard, ApiError> {
        let entry = (owner.to_owned(), key.to_owned());
        if !self.keys.lock().unwrap().insert(entry.clone()) {
            return Err(ApiError::Conflict(format!(
                "a request with Idempotency-Key {key:?} is still in progress; retry later"
            )));
        }
        Ok(InFlightGuard {
            keys: self.keys.clone(),
            entry,
        })
    }
}

/// The key under which a store indexes the records created with `key` by `owner`.
pub fn index_key(owner: &str, key: &str) -> IndexKey {
    IndexKey::Str(format!("{owner}\u{1f}{key}"))
}

/// The answer to a key sent again with a different body.
pub fn reused(key: &str) -> ApiError {
    ApiError::Unprocessable {
        detail: format!("Idempotency-Key {key:?} was already used with a different request body"),
        extensions: serde_json::Map::new(),
    }
}

/// A stable fingerprint of a request body (SHA-256, hex) to tell a retry from a reuse.
pub fn fingerprint(body: &[u8]) -> String {
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_in_flight_per_owner_and_key() {
        let f = InFlight::default();
        let g = f.begin("alice", "k1").unwrap();
        assert!(matches!(f.begin("alice", "k1"), Err(ApiError::Conflict(_))));
        let _other = f.begin("bob", "k1").unwrap();
        drop(g);
        f.begin("alice", "k1").unwrap();
        assert_eq!(fingerprint(b"a"), fingerprint(b"a"));
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }
}
