//! Importing records into a new or existing store from a JSON array (our own export, or plain
//! objects) or a TinyDB file, checked in full before anything is written.
//!
//! An import reads its input twice: a first pass checks every record (its layout, the
//! caller's [`Check`], repeated ids, ids already in the store) and a second writes. An array is
//! streamed, one element in memory at a time (the ids seen are kept, to find repeats); a TinyDB
//! file is read whole. Nothing is written while any record is refused, unless the caller asks
//! to skip refused records. The store is opened in index mode with a small cache, so the
//! records written stay in its files, and the import ends with a compaction: everything is in
//! the fsynced snapshot before success is reported.
//!
//! The `store-actor import` command imports records as they are; the services' own imports
//! (`shop import`) pass a [`Check`] that validates each record with the service's rules and
//! maps foreign layouts (the original Python implementation's TinyDB fields) onto theirs.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::{Durability, FeedHistory, Memory, Store, StoreError, StoreOptions};

/// How many creates an import keeps in flight (they share journal batches).
const IN_FLIGHT: usize = 512;

/// Memory the store may use for cached records during an import.
const CACHE_BYTES: u64 = 8 << 20;

/// How many refusals an import keeps to report (all are counted).
pub const MAX_REPORTED: usize = 1000;

/// A record read from the input, not yet written.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its id: the record's `id`, a plain object's `id` or `uuid` field, or a new one.
    pub id: Uuid,
    /// Whether it is imported archived.
    pub archived: bool,
    /// What will be stored.
    pub data: Value,
    /// Where it is in the input ("element 3", "table \"_default\" document 7"), for messages.
    pub origin: String,
}

/// The caller's check of each record: the data to store, or why it is refused. Runs in both
/// passes, so it must answer the same way each time. It takes the record by value, so a check
/// that stores the data as it is copies nothing.
pub type Check = Arc<dyn Fn(Candidate) -> Result<Value, String> + Send + Sync>;

/// A check that takes every record as it is.
pub fn as_is() -> Check {
    Arc::new(|c: Candidate| Ok(c.data))
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// The input file; `-` reads standard input (kept in a file next to the store meanwhile).
    pub input: PathBuf,
    /// Only this table of a TinyDB file.
    pub table: Option<String>,
    /// Import the valid records and skip the refused ones, instead of writing nothing.
    pub skip_invalid: bool,
}

/// How far an import is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Everything was checked: this many records will be written.
    Checked(u64),
    /// One more record written.
    Written,
    /// All written; the snapshot is being written.
    Compacting,
}

/// A finished import.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// Records written.
    pub imported: u64,
    /// Of which archived.
    pub archived: u64,
    /// Records refused and skipped (`skip_invalid`).
    pub skipped: u64,
    /// The first [`MAX_REPORTED`] refusals skipped, each "origin: reason".
    pub skipped_reasons: Vec<String>,
    /// Records in the snapshot afterwards.
    pub snapshot_records: u64,
    /// Its size.
    pub snapshot_bytes: u64,
}

/// Why an import wrote nothing, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input cannot be read, is not JSON, or is neither an array nor a TinyDB file.
    #[error("{0}")]
    Input(String),
    /// Records were refused and nothing was written.
    #[error("{} of {total} records refused; nothing was imported", refused)]
    Refused {
        /// How many.
        refused: u64,
        /// Records in the input.
        total: u64,
        /// The first [`MAX_REPORTED`], each "origin: reason".
        reasons: Vec<String>,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A write failed after others had been made.
    #[error("the import failed after {imported} of {total} records: {reason}")]
    Interrupted {
        /// Records written before the failure.
        imported: u64,
        /// Records to write.
        total: u64,
        /// What failed.
        reason: String,
    },
}

/// Imports into the store `options` names (created if missing), checking every record with
/// `check` first; `progress` hears how far it is.
pub async fn import(
    options: StoreOptions<Value>,
    import: &ImportOptions,
    check: Check,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Imported, ImportError> {
    // Standard input is read twice: keep it in a file meanwhile.
    let spooled = if import.input == Path::new("-") {
        let tmp = options.snapshot_path().with_extension("import.tmp");
        let mut out = std::fs::File::create(&tmp)
            .map_err(|e| ImportError::Input(format!("cannot create {}: {e}", tmp.display())))?;
        io::copy(&mut io::stdin().lock(), &mut out)
            .map_err(|e| ImportError::Input(format!("cannot read stdin: {e}")))?;
        Some(tmp)
    } else {
        None
    };
    let input = Input {
        path: spooled.clone().unwrap_or_else(|| import.input.clone()),
        shown: import.input.display().to_string(),
        table: import.table.clone(),
    };
    let result = import_from(options, input, import.skip_invalid, check, progress).await;
    if let Some(tmp) = spooled {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// The input file and how to read it.
#[derive(Debug, Clone)]
struct Input {
    path: PathBuf,
    /// Its name in messages.
    shown: String,
    table: Option<String>,
}

impl Input {
    fn open(&self) -> Result<io::BufReader<std::fs::File>, ImportError> {
        std::fs::File::open(&self.path)
            .map(|f| io::BufReader::with_capacity(1 << 16, f))
            .map_err(|e| ImportError::Input(format!("cannot read {}: {e}", self.shown)))
    }

    fn is_array(&self) -> Result<bool, ImportError> {
        let mut reader = self.open()?;
        let mut first = [0u8; 1];
        loop {
            match reader.read(&mut first) {
                Ok(0) => return Ok(false),
                Ok(_) if first[0].is_ascii_whitespace() => continue,
                Ok(_) => return Ok(first[0] == b'['),
                Err(e) => {
                    return Err(ImportError::Input(format!(
                        "cannot read {}: {e}",
                        self.shown
                    )));
                }
            }
        }
    }

    /// Calls `each` with the position and the candidate (or why the record's layout is
    /// refused) of every record, in input order; stops at `each`'s first error or at input
    /// that is not JSON of a known layout.
    fn each(
        &self,
        mut each: impl FnMut(usize, Result<Candidate, String>) -> Result<(), String>,
    ) -> Result<(), ImportError> {
        let fail = |m: String| ImportError::Input(format!("{}: {m}", self.shown));
        if self.is_array()? {
            if self.table.is_some() {
                return Err(fail(
                    "--table only applies to TinyDB files, not to an array".into(),
                ));
            }
            return for_each_element(self.open()?, |i, element| each(i, candidate(i, element)))
                .map_err(fail);
        }
        let mut bytes = Vec::new();
        self.open()?
            .read_to_end(&mut bytes)
            .map_err(|e| ImportError::Input(format!("cannot read {}: {e}", self.shown)))?;
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ImportError::Input(format!("{} is not JSON: {e}", self.shown)))?;
        drop(bytes);
        let documents = tinydb_documents(doc, self.table.as_deref()).map_err(fail)?;
        for (i, (origin, doc)) in documents.into_iter().enumerate() {
            let candidate = match doc {
                Value::Object(obj) => Ok(plain_object(obj, origin)),
                _ => Err(format!("{origin} is not a JSON object")),
            };
            each(i, candidate).map_err(fail)?;
        }
        Ok(())
    }
}

async fn import_from(
    options: StoreOptions<Value>,
    input: Input,
    skip_invalid: bool,
    check: Check,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Imported, ImportError> {
    // No change feed history: nobody follows an import, and its retired journals would take as
    // much disk as the import itself.
    let options = options
        .durability(Durability::Never)
        .memory(Memory::Index {
            cache_bytes: CACHE_BYTES,
        })
        .feed_history(FeedHistory {
            max_age: Duration::ZERO,
            max_bytes: 0,
        });
    let snapshot = options.snapshot_path();

    // First pass: every record checked, every refusal counted.
    let mut refusals = Refusals::default();
    let mut seen: HashMap<Uuid, usize> = HashMap::new();
    let mut total = 0u64;
    input.each(|i, candidate| {
        total += 1;
        let checked = candidate.and_then(|c| {
            let (id, origin) = (c.id, c.origin.clone());
            match check(c) {
                Ok(_) => Ok((id, origin)),
                Err(reason) => Err(format!("{origin}: {reason}")),
            }
        });
        match checked {
            Ok((id, origin)) => {
                if let Some(first) = seen.get(&id) {
                    refusals.add(
                        i,
                        format!("{origin}: repeats the id {id} of record {first}"),
                    );
                } else {
                    seen.insert(id, i);
                }
            }
            Err(reason) => refusals.add(i, reason),
        }
        Ok(())
    })?;
    let refused = |refusals: Refusals| ImportError::Refused {
        refused: refusals.count,
        total,
        reasons: refusals.reasons,
    };
    // The store is created only past the checks of the input itself.
    if refusals.count > 0 && !skip_invalid {
        return Err(refused(refusals));
    }
    let store = Store::<Value>::open(options).await?;
    let mut existing: Vec<(usize, Uuid)> = seen
        .iter()
        .filter(|(id, _)| store.get(**id).is_ok())
        .map(|(id, i)| (*i, *id))
        .collect();
    drop(seen);
    existing.sort();
    for (i, id) in existing {
        let message = format!("record {i}: {id} already exists in {}", snapshot.display());
        refusals.add(i, message);
    }
    if refusals.count > 0 && !skip_invalid {
        store.close().await?;
        return Err(refused(refusals));
    }

    // Second pass, on a blocking thread, feeding the in-flight creates.
    let to_write = total - refusals.count;
    progress(Progress::Checked(to_write));
    let (tx, rx) = tokio::sync::mpsc::channel::<(Uuid, bool, Value)>(IN_FLIGHT);
    let skip = std::mem::take(&mut refusals.positions);
    let reader_input = input.clone();
    let reader_check = check.clone();
    let writer = tokio::task::spawn_blocking(move || {
        reader_input.each(|i, candidate| {
            if skip.contains(&i) {
                return Ok(());
            }
            let c = candidate?;
            let (id, archived, origin) = (c.id, c.archived, c.origin.clone());
            let data = reader_check(c).map_err(|reason| format!("{origin}: {reason}"))?;
            tx.blocking_send((id, archived, data))
                .map_err(|_| "the import stopped".to_owned())
        })
    });
    let (imported, archived, failed) = create_all(&store, rx, progress).await;
    let read = writer
        .await
        .unwrap_or_else(|e| Err(ImportError::Input(e.to_string())));
    let failed = match (failed, read) {
        (Some(e), _) => Some(e.to_string()),
        // The file changed between the passes.
        (None, Err(e)) => Some(e.to_string()),
        (None, Ok(())) => None,
    };
    if let Some(reason) = failed {
        let _ = store.close().await;
        return Err(ImportError::Interrupted {
            imported,
            total: to_write,
            reason,
        });
    }

    // A compaction already under way may cover only part of the import: compact until the
    // snapshot holds everything, so all of it is fsynced.
    progress(Progress::Compacting);
    let report = loop {
        let report = match store.compact().await {
            Ok(report) => report,
            Err(e) => {
                let _ = store.close().await;
                return Err(e.into());
            }
        };
        if report.seq >= store.last_seq() {
            break report;
        }
    };
    store.close().await?;
    Ok(Imported {
        imported,
        archived,
        skipped: refusals.count,
        skipped_reasons: refusals.reasons,
        snapshot_records: report.records as u64,
        snapshot_bytes: report.snapshot_bytes,
    })
}

/// The records refused so far: all their positions, the first reasons.
#[derive(Debug, Default)]
struct Refusals {
    count: u64,
    positions: HashSet<usize>,
    reasons: Vec<String>,
}

impl Refusals {
    fn add(&mut self, position: usize, reason: String) {
        if self.positions.insert(position) {
            self.count += 1;
            if self.reasons.len() < MAX_REPORTED {
                self.reasons.push(reason);
            }
        }
    }
}

/// Calls `each` with the index and value of every element of the JSON array `reader` holds,
/// one element in memory at a time; stops at the first error (bad JSON, or `each`'s).
fn for_each_element(
    reader: impl Read,
    mut each: impl FnMut(usize, Value) -> Result<(), String>,
) -> Result<(), String> {
    use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};

    struct Elements<'a, F>(&'a mut F);
    impl<'de, F: FnMut(usize, Value) -> Result<(), String>> Visitor<'de> for Elements<'_, F> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON array")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while let Some(element) = seq.next_element::<Value>()? {
                (self.0)(i, element).map_err(A::Error::custom)?;
                i += 1;
            }
            Ok(())
        }
    }
    impl<'de, F: FnMut(usize, Value) -> Result<(), String>> DeserializeSeed<'de> for Elements<'_, F> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    let mut de = serde_json::Deserializer::from_reader(reader);
    Elements(&mut each)
        .deserialize(&mut de)
        .and_then(|()| de.end())
        .map_err(|e| e.to_string())
}

/// Element `i` of an import array as a record to write.
fn candidate(i: usize, element: Value) -> Result<Candidate, String> {
    let origin = format!("element {i}");
    let Value::Object(obj) = element else {
        return Err(format!("{origin} is not a JSON object"));
    };
    if is_full_record(&obj) {
        full_record(obj, origin)
    } else {
        Ok(plain_object(obj, origin))
    }
}

/// Creates (and archives, where asked) every record received, with many writes in flight;
/// returns how many were imported, how many of them archived, and the first error.
async fn create_all(
    store: &Store<Value>,
    mut incoming: tokio::sync::mpsc::Receiver<(Uuid, bool, Value)>,
    progress: &(dyn Fn(Progress) + Sync),
) -> (u64, u64, Option<StoreError>) {
    let mut tasks = JoinSet::new();
    let (mut imported, mut archived) = (0u64, 0u64);
    let mut failed = None;
    let mut more = true;
    loop {
        while more && failed.is_none() && tasks.len() < IN_FLIGHT {
            let Some((id, archive, data)) = incoming.recv().await else {
                more = false;
                break;
            };
            let store = store.clone();
            tasks.spawn(async move {
                store.create_with_id(id, data).await?;
                if archive {
                    store.archive(id, None).await?;
                }
                Ok::<_, StoreError>(archive)
            });
        }
        if failed.is_some() {
            incoming.close();
        }
        match tasks.join_next().await {
            None if !more || failed.is_some() => break,
            None => continue,
            Some(Ok(Ok(was_archived))) => {
                imported += 1;
                archived += u64::from(was_archived);
                progress(Progress::Written);
            }
            Some(Ok(Err(e))) => {
                failed.get_or_insert(e);
            }
            Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    (imported, archived, failed)
}

/// The documents of a TinyDB file (an object of tables, each an object of documents by
/// integer id), each with its origin, tables in name order and documents in id order.
fn tinydb_documents(doc: Value, table: Option<&str>) -> Result<Vec<(String, Value)>, String> {
    let Value::Object(tables) = doc else {
        return Err("neither an array nor a TinyDB file (an object of tables)".into());
    };
    if let Some(name) = table
        && !tables.contains_key(name)
    {
        let names: Vec<&String> = tables.keys().collect();
        return Err(format!("no table {name:?} (tables: {names:?})"));
    }
    let mut out = Vec::new();
    for (name, docs) in tables {
        if table.is_some_and(|t| t != name) {
            continue;
        }
        let Value::Object(docs) = docs else {
            return Err(format!(
                "table {name:?} is not an object of documents: neither an array nor a TinyDB file"
            ));
        };
        let mut docs: Vec<(String, Value)> = docs.into_iter().collect();
        // TinyDB document ids are integers: keep their order, not the string order.
        docs.sort_by(|(a, _), (b, _)| (a.parse::<u64>().ok(), a).cmp(&(b.parse::<u64>().ok(), b)));
        out.extend(
            docs.into_iter()
                .map(|(doc_id, doc)| (format!("table {name:?} document {doc_id}"), doc)),
        );
    }
    Ok(out)
}

fn is_full_record(obj: &Map<String, Value>) -> bool {
    ["id", "version", "data"]
        .iter()
        .all(|k| obj.contains_key(*k))
}

fn full_record(mut obj: Map<String, Value>, origin: String) -> Result<Candidate, String> {
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(|| format!("{origin} is a record whose \"id\" is not a UUID string"))?;
    let archived = match obj.get("archived") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(format!("{origin}: \"archived\" is not a boolean")),
    };
    let data = obj.remove("data").unwrap_or(Value::Null);
    Ok(Candidate {
        id,
        archived,
        data,
        origin,
    })
}

/// A plain object is the data; an `id` (or else `uuid`) field holding a UUID becomes the id.
fn plain_object(mut obj: Map<String, Value>, origin: String) -> Candidate {
    let found = ["id", "uuid"].into_iter().find_map(|key| {
        let id = Uuid::parse_str(obj.get(key)?.as_str()?).ok()?;
        Some((key, id))
    });
    let id = match found {
        Some((key, id)) => {
            obj.remove(key);
            id
        }
        None => Uuid::now_v7(),
    };
    Candidate {
        id,
        archived: false,
        data: Value::Object(obj),
        origin,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plain(v: Value) -> Candidate {
        let Value::Object(obj) = v else { panic!() };
        plain_object(obj, "here".into())
    }

    #[test]
    fn plain_objects_take_their_id_or_uuid_field() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let got = plain(json!({"id": a.to_string(), "name": "a"}));
        assert_eq!((got.id, got.data), (a, json!({"name": "a"})));
        let got = plain(json!({"uuid": b.to_string(), "id": 7, "name": "b"}));
        assert_eq!((got.id, got.data), (b, json!({"id": 7, "name": "b"})));
        let got = plain(json!({"id": "not-a-uuid", "name": "c"}));
        assert_eq!(got.data, json!({"id": "not-a-uuid", "name": "c"}));
        assert_eq!(got.id.get_version_num(), 7);
    }

    #[test]
    fn tinydb_documents_keep_their_numeric_order() {
        let got = tinydb_documents(
            json!({"_default": {"10": {"n": 10}, "2": {"n": 2}, "1": {"n": 1}}, "t": {}}),
            None,
        )
        .unwrap();
        let ns: Vec<_> = got.iter().map(|(_, d)| d["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, [1, 2, 10]);
        assert_eq!(got[0].0, "table \"_default\" document 1");
        assert!(tinydb_documents(json!({"_default": {}}), Some("nope")).is_err());
        assert!(tinydb_documents(json!({"_default": [1]}), None).is_err());
        assert!(tinydb_documents(json!(5), None).is_err());
    }
}
