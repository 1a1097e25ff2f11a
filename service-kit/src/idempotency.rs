//! Idempotent creates (`Idempotency-Key`), one mechanism for every service: [`create_once`].
//!
//! Durability is the record's part: the service stores the key and the body's fingerprint *in
//! the record it creates*, in the same write, and indexes them (see [`index_key`]), so a retry
//! after any crash finds either nothing (and creates) or the record (and replays it), never a
//! duplicate. A retry that arrives while the first attempt is still running is refused (409),
//! and a key sent again with another body is refused (422).

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use store_actor::{Data, IndexKey, Record, Store, StoreError};

use crate::problem::ApiError;

/// One caller's `Idempotency-Key` and the fingerprint of the body it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The caller (keys are per caller: two users may pick the same key).
    pub owner: String,
    /// The key as sent.
    pub key: String,
    /// SHA-256 of the canonical body, to tell a retry from a reuse.
    pub fingerprint: String,
}

impl Claim {
    /// A claim of `key` by `owner` for a body whose canonical form (the same for a retry
    /// formatted differently) is `canonical_body`.
    pub fn new(owner: &str, key: String, canonical_body: &[u8]) -> Self {
        Self {
            owner: owner.to_owned(),
            key,
            fingerprint: fingerprint(canonical_body),
        }
    }
}

/// What [`create_once`] did.
#[derive(Debug)]
pub enum Created<T> {
    /// A new record was created.
    New(Arc<Record<T>>),
    /// The key was used before with the same body: the record it created (as it is now; the
    /// service renders the first answer from it).
    Replayed(Arc<Record<T>>),
}

/// Why an idempotent create was refused.
#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The first request with this key is still running.
    #[error("a request with Idempotency-Key {0:?} is still in progress; retry later")]
    InFlight(String),
    /// The key was used before with another body.
    #[error("Idempotency-Key {0:?} was already used with a different request body")]
    Reused(String),
    /// Looking the key up failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<IdempotencyError> for ApiError {
    fn from(e: IdempotencyError) -> Self {
        match e {
            IdempotencyError::InFlight(_) => ApiError::Conflict(e.to_string()),
            IdempotencyError::Reused(_) => ApiError::Unprocessable {
                detail: e.to_string(),
                extensions: serde_json::Map::new(),
            },
            IdempotencyError::Store(e) => e.into(),
        }
    }
}

/// Creates a record at most once per claim. Without a claim it just runs `create(None)`. With
/// one: refuses while the same owner and key are in flight; replays the record that `index`
/// finds for the key if `fingerprint_of` it matches the claim (and refuses a reuse otherwise);
/// else runs `create(Some(claim))`, which must store the claim in the record so that `index`
/// finds it. The key stays in flight until this returns.
pub async fn create_once<T, E, Fut>(
    store: &Store<T>,
    in_flight: &InFlight,
    index: &str,
    claim: Option<Claim>,
    fingerprint_of: impl Fn(&T) -> Option<&str>,
    create: impl FnOnce(Option<Claim>) -> Fut,
) -> Result<Created<T>, E>
where
    T: Data,
    E: From<IdempotencyError>,
    Fut: Future<Output = Result<Arc<Record<T>>, E>>,
{
    let Some(claim) = claim else {
        return create(None).await.map(Created::New);
    };
    let _in_flight = in_flight.begin(&claim.owner, &claim.key)?;
    let found = store
        .lookup(index, &index_key(&claim.owner, &claim.key))
        .map_err(IdempotencyError::Store)?;
    if let Some(first) = found.into_iter().next() {
        if fingerprint_of(&first.data) != Some(claim.fingerprint.as_str()) {
            return Err(IdempotencyError::Reused(claim.key).into());
        }
        return Ok(Created::Replayed(first));
    }
    create(Some(claim)).await.map(Created::New)
}

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
    /// Marks `key` of `owner` as in flight; refused if it already is.
    pub fn begin(&self, owner: &str, key: &str) -> Result<InFlightGuard, IdempotencyError> {
        let entry = (owner.to_owned(), key.to_owned());
        if !self.keys.lock().unwrap().insert(entry.clone()) {
            return Err(IdempotencyError::InFlight(key.to_owned()));
        }
        Ok(InFlightGuard {
            keys: self.keys.clone(),
            entry,
        })
    }
}

/// The key under which a store indexes the records created with `key` by `owner`.
pub fn index_key(owner: &str, key: &str) -> IndexKey {
    IndexKey::from(format!("{owner}\u{1f}{key}"))
}

/// A stable fingerprint of a request body (SHA-256, hex) to tell a retry from a reuse.
fn fingerprint(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use store_actor::StoreOptions;

    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Note {
        text: String,
        key: Option<(String, String, String)>,
    }

    async fn create(
        store: &Store<Note>,
        in_flight: &InFlight,
        claim: Option<Claim>,
        text: &str,
    ) -> Result<Created<Note>, ApiError> {
        create_once(
            store,
            in_flight,
            "key",
            claim,
            |n: &Note| n.key.as_ref().map(|k| k.2.as_str()),
            |claim| async move {
                let note = Note {
                    text: text.into(),
                    key: claim.map(|c| (c.owner, c.key, c.fingerprint)),
                };
                Ok(store.create(note).await?)
            },
        )
        .await
    }

    /// Once per owner and key: the same body replays the first record, another body is
    /// refused, another owner's key is another claim, and no claim always creates.
    #[actix_web::test]
    async fn create_once_creates_replays_and_refuses_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::new(dir.path(), "notes").index("key", |n: &Note| {
            n.key.iter().map(|(o, k, _)| index_key(o, k)).collect()
        });
        let store = Store::open(options).await.unwrap();
        let in_flight = InFlight::default();
        let claim = |owner: &str, body: &[u8]| Some(Claim::new(owner, "k1".into(), body));

        let Created::New(first) = create(&store, &in_flight, claim("alice", b"a"), "one")
            .await
            .unwrap()
        else {
            panic!("the first use of a key creates")
        };
        let again = create(&store, &in_flight, claim("alice", b"a"), "two").await;
        assert!(
            matches!(again, Ok(Created::Replayed(r)) if r.id == first.id && r.data.text == "one")
        );
        let reused = create(&store, &in_flight, claim("alice", b"b"), "three").await;
        assert!(
            matches!(&reused, Err(ApiError::Unprocessable { detail, .. }) if detail.contains("\"k1\"")),
            "{reused:?}"
        );
        let bob = create(&store, &in_flight, claim("bob", b"a"), "four").await;
        assert!(matches!(bob, Ok(Created::New(r)) if r.id != first.id));
        for _ in 0..2 {
            assert!(matches!(
                create(&store, &in_flight, None, "free").await,
                Ok(Created::New(_))
            ));
        }
        assert_eq!(
            store.list(&store_actor::Query::new()).unwrap().items.len(),
            4
        );

        // A retry while the first is in flight is refused, and nothing is created.
        let _held = in_flight.begin("carol", "k1").unwrap();
        let busy = create(&store, &in_flight, claim("carol", b"a"), "five").await;
        assert!(matches!(busy, Err(ApiError::Conflict(_))), "{busy:?}");
        assert_eq!(
            store.list(&store_actor::Query::new()).unwrap().items.len(),
            4
        );
        store.close().await.unwrap();
    }

    #[test]
    fn one_in_flight_per_owner_and_key() {
        let f = InFlight::default();
        let g = f.begin("alice", "k1").unwrap();
        assert!(matches!(
            f.begin("alice", "k1"),
            Err(IdempotencyError::InFlight(_))
        ));
        let _other = f.begin("bob", "k1").unwrap();
        drop(g);
        f.begin("alice", "k1").unwrap();
        assert_eq!(fingerprint(b"a"), fingerprint(b"a"));
        assert_ne!(fingerprint(b"a"), fingerprint(b"b"));
    }

    /// Fingerprints are stored with the records they guard: their text must not change, or a
    /// retry after an upgrade would be refused as a reuse.
    #[test]
    fn the_fingerprint_text_is_stable() {
        assert_eq!(
            fingerprint(b"a"),
            "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
        );
    }
}
