//! `store-actor`: check, compact, export and import store-actor stores from the command line.
//!
//! Every store is addressed by its snapshot path (`data/products.json`, the `.json` may be left
//! out); the journal is the `.journal` file next to it. Records are handled as plain JSON
//! ([`serde_json::Value`]), so the tool works on any store whatever its record type.

use std::collections::HashMap;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};
use store_actor::{Durability, Record, Store, StoreError, StoreOptions, verify};
use tokio::task::JoinSet;
use uuid::Uuid;

/// Any failure other than damage: missing store, lock held, I/O, bad input, duplicate id.
const EXIT_ERROR: u8 = 1;
/// The store's files are damaged (the message names file and line).
const EXIT_CORRUPT: u8 = 2;
/// The command line could not be parsed (EX_USAGE).
const EXIT_USAGE: u8 = 64;

/// How many creates an import keeps in flight (they share journal batches).
const IMPORT_IN_FLIGHT: usize = 512;

const EXIT_CODES: &str = "\
Exit status:
  0   success (for verify, also a torn last journal line, which opening the store repairs)
  1   error: missing store, store locked by another process, I/O failure, bad import file,
      duplicate id
  2   the store is damaged; the message reads FILE:LINE: REASON
  64  invalid command line";

/// Check, compact, export and import store-actor stores.
///
/// PATH is a store's snapshot path, such as `data/products.json` (the `.json` may be left out);
/// the store's journal is the `.journal` file next to it. Records are handled as plain JSON, so
/// any store can be used whatever its record type.
#[derive(Debug, Parser)]
#[command(name = "store-actor", version, after_help = EXIT_CODES)]
struct Cli {
    /// Diagnostics printed on stderr: a level (error, warn, info, debug, trace) or a
    /// tracing-subscriber filter such as `store_actor=debug`.
    #[arg(
        long,
        global = true,
        env = "RUST_LOG",
        default_value = "warn",
        value_name = "FILTER"
    )]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a store's snapshot and journal without changing or locking anything.
    ///
    /// Prints the record count, the live (not archived) count, the last sequence number, the
    /// sequence number the snapshot covers, the number of journal lines, and the evidence kept
    /// from earlier drops (`.journal.broken.N`). A damaged last journal line, which opening the
    /// store drops (keeping its bytes as evidence), is reported on stderr and still exits 0: as
    /// a warning when it is torn (no newline: never acknowledged), as an error when it was
    /// written whole but fails its checksum (possibly an acknowledged write damaged on disk).
    /// Any other damage prints FILE:LINE: REASON on stderr and exits 2. A missing store is an
    /// error.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// The store's snapshot path (`DIR/NAME.json`; the `.json` may be left out).
        path: PathBuf,
    },
    /// Write a fresh snapshot of a store and cut its journal.
    ///
    /// Opens the store, which takes its lock: it fails if another process (such as the
    /// service) uses the store. Opening drops a damaged last journal line, keeping its bytes in
    /// `.journal.broken.N`. Prints what the compaction did. A missing store is an error: none
    /// is created.
    #[command(after_help = EXIT_CODES)]
    Compact {
        /// The store's snapshot path (`DIR/NAME.json`; the `.json` may be left out).
        path: PathBuf,
    },
    /// Print every record of a store, archived ones included, as a JSON array on stdout.
    ///
    /// The records are full records (`id`, `version`, `created_at`, `updated_at`, `archived`
    /// when true, `data`), in id order, one per line, streamed as they are written. `import`
    /// reads this format back. Reads the files without taking the store's lock or changing
    /// anything, so it works while a service uses the store (and during its compactions): the
    /// output is the store as of some moment of the export. A torn last journal line (an
    /// unacknowledged write) is left out. A missing store is an error.
    #[command(after_help = EXIT_CODES)]
    Export {
        /// The store's snapshot path (`DIR/NAME.json`; the `.json` may be left out).
        path: PathBuf,
    },
    /// Create records in a store from a JSON file (the store is created if missing).
    ///
    /// Accepted files:
    ///
    /// - A JSON array of full records as written by `export` (objects with `id`, `version`
    ///   and `data`). Each becomes a record with the same id and data, archived if it was
    ///   archived. Versions and timestamps are NOT preserved: imported records start at version
    ///   1 (2 when archived) with the time of the import.
    ///
    /// - A JSON array of plain objects, each a record's data. If the object has an `id` (or
    ///   else a `uuid`) string field holding a UUID, that UUID becomes the record's id and the
    ///   field is removed from the data; otherwise the record gets a fresh time-ordered id.
    ///
    /// - A TinyDB file, as written by the original Python implementation:
    ///   `{"_default": {"1": {...}, "2": {...}}, "other_table": {...}}`. The documents of every
    ///   table (or only of --table) are imported as plain objects, in document-id order;
    ///   TinyDB's own document ids are dropped.
    ///
    /// An id repeated in the file or already in the store is refused before anything is
    /// written. Records are written without fsync, then a snapshot is written and fsynced (a
    /// compaction) before success is reported; an interrupted import may leave part of the
    /// records in the store. A progress bar is shown on stderr when it is a terminal.
    #[command(after_help = EXIT_CODES)]
    Import {
        /// The JSON file to read (`-` reads stdin).
        file: PathBuf,
        /// The store's snapshot path (`DIR/NAME.json`; the `.json` may be left out).
        path: PathBuf,
        /// Import only this table of a TinyDB file (default: every table).
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
    },
}

/// Why the command failed, and with which exit status.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

fn fail(message: impl Into<String>) -> Failure {
    Failure {
        code: EXIT_ERROR,
        message: message.into(),
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::Corrupt { .. } => EXIT_CORRUPT,
            _ => EXIT_ERROR,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

type Outcome<T = ()> = Result<T, Failure>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("error: invalid --log-level {:?}: {e}", cli.log_level);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(io::stderr().is_terminal())
        .init();

    let outcome = match cli.command {
        Command::Verify { path } => verify_store(&path),
        Command::Compact { path } => compact(&path).await,
        Command::Export { path } => export(&path).await,
        Command::Import { file, path, table } => import(&file, &path, table.as_deref()).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Options for the store at `path`, which must exist (a snapshot or a journal).
fn existing_store(path: &Path) -> Outcome<StoreOptions<Value>> {
    let options = StoreOptions::<Value>::from_path(path);
    let snapshot = options.snapshot_path();
    let journal = options.journal_path();
    let exists = |p: &Path| {
        p.try_exists()
            .map_err(|e| fail(format!("cannot access {}: {e}", p.display())))
    };
    if !exists(&snapshot)? && !exists(&journal)? {
        return Err(fail(format!(
            "no store at {}: neither {} nor {} exists",
            path.display(),
            snapshot.display(),
            journal.display()
        )));
    }
    Ok(options)
}

/// Maps a failed write to stdout to a failure; a closed pipe (`| head`) is not one.
fn stdout_written(r: io::Result<()>) -> Outcome {
    match r {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(fail(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}

fn verify_store(path: &Path) -> Outcome {
    let options = existing_store(path)?;
    let report = verify(&options)?;
    let journal = options.journal_path();
    let torn = match &report.torn_tail {
        None => "none".to_owned(),
        Some(t) if t.complete => format!("line {} ({}; a whole line)", t.line, t.reason),
        Some(t) => format!("line {} ({})", t.line, t.reason),
    };
    let evidence: Vec<String> = report
        .evidence
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let mut out = io::stdout().lock();
    stdout_written((|| {
        writeln!(
            out,
            "store:             {}",
            options.snapshot_path().display()
        )?;
        writeln!(out, "records:           {}", report.records)?;
        writeln!(out, "live:              {}", report.live)?;
        writeln!(out, "last sequence:     {}", report.last_seq)?;
        writeln!(out, "snapshot sequence: {}", report.snapshot_seq)?;
        writeln!(out, "journal lines:     {}", report.journal_lines)?;
        writeln!(out, "torn tail:         {torn}")?;
        writeln!(
            out,
            "dropped evidence:  {}",
            if evidence.is_empty() {
                "none".to_owned()
            } else {
                evidence.join(", ")
            }
        )?;
        out.flush()
    })())?;
    if let Some(t) = &report.torn_tail {
        let (j, line, reason) = (journal.display(), t.line, &t.reason);
        if t.complete {
            eprintln!(
                "error: {j}:{line}: the last line fails its checksum although it was written \
                 whole ({reason}): it may be an acknowledged write damaged on disk (the store \
                 cannot tell); opening the store will drop it and keep its bytes in {j}.broken.N"
            );
        } else {
            eprintln!(
                "warning: {j}:{line}: torn last line ({reason}): an unacknowledged write; \
                 opening the store will drop it and keep its bytes in {j}.broken.N"
            );
        }
    }
    Ok(())
}

async fn compact(path: &Path) -> Outcome {
    let options = existing_store(path)?;
    let snapshot = options.snapshot_path();
    let store = Store::<Value>::open(options).await?;
    let journal_before = store.status().journal_bytes;
    let compacted = store.compact().await;
    let journal_after = store.status().journal_bytes;
    store.close().await?;
    let report = compacted?;
    let mut out = io::stdout().lock();
    stdout_written((|| {
        writeln!(out, "compacted {}", snapshot.display())?;
        writeln!(out, "sequence:      {}", report.seq)?;
        writeln!(out, "records:       {}", report.records)?;
        writeln!(out, "snapshot:      {} bytes", report.snapshot_bytes)?;
        writeln!(out, "snapshot time: {:?}", report.snapshot_time)?;
        writeln!(out, "write pause:   {:?}", report.pause)?;
        writeln!(
            out,
            "journal:       {journal_before} -> {journal_after} bytes"
        )?;
        out.flush()
    })())
}

async fn export(path: &Path) -> Outcome {
    let options = existing_store(path)?;
    // Read-only: works while a service holds the store, and repairs nothing.
    let records = store_actor::read_all(&options)?;
    let written = write_records(records.iter(), &mut BufWriter::new(io::stdout().lock()));
    if let Ok(n) = &written {
        tracing::info!(records = n, "exported");
    }
    stdout_written(written.map(|_| ()))
}

/// Writes records as a JSON array, one record per line; returns how many.
fn write_records<'a>(
    records: impl Iterator<Item = &'a Arc<Record<Value>>>,
    out: &mut impl Write,
) -> io::Result<u64> {
    let mut n = 0u64;
    out.write_all(b"[")?;
    for record in records {
        out.write_all(if n == 0 { b"\n" } else { b",\n" })?;
        serde_json::to_writer(&mut *out, &**record)?;
        n += 1;
    }
    out.write_all(b"\n]\n")?;
    out.flush()?;
    Ok(n)
}

/// A record read from the import file, not yet written.
#[derive(Debug)]
struct Incoming {
    id: Uuid,
    archived: bool,
    data: Value,
    /// Where it is in the file, for messages.
    origin: String,
}

async fn import(file: &Path, path: &Path, table: Option<&str>) -> Outcome {
    // Standard input is read twice (a check, then the writes): keep it in a file meanwhile.
    let spooled = if file == Path::new("-") {
        let tmp = StoreOptions::<Value>::from_path(path)
            .snapshot_path()
            .with_extension("import.tmp");
        let mut out = std::fs::File::create(&tmp)
            .map_err(|e| fail(format!("cannot create {}: {e}", tmp.display())))?;
        io::copy(&mut io::stdin().lock(), &mut out)
            .map_err(|e| fail(format!("cannot read stdin: {e}")))?;
        Some(tmp)
    } else {
        None
    };
    let input = spooled.as_deref().unwrap_or(file);
    let result = import_from(input, file, path, table).await;
    if let Some(tmp) = spooled {
        let _ = std::fs::remove_file(tmp);
    }
    result
}

/// Memory the store may use for cached records during an import: it is opened in index mode,
/// so the records it writes stay in its files.
const IMPORT_CACHE_BYTES: u64 = 8 << 20;

async fn import_from(input: &Path, shown: &Path, path: &Path, table: Option<&str>) -> Outcome {
    let open = || {
        std::fs::File::open(input)
            .map(|f| io::BufReader::with_capacity(1 << 16, f))
            .map_err(|e| fail(format!("cannot read {}: {e}", shown.display())))
    };
    let mut first = [0u8; 1];
    let is_array = {
        let mut reader = open()?;
        loop {
            match reader.read(&mut first) {
                Ok(0) => break false,
                Ok(_) if first[0].is_ascii_whitespace() => continue,
                Ok(_) => break first[0] == b'[',
                Err(e) => return Err(fail(format!("cannot read {}: {e}", shown.display()))),
            }
        }
    };
    if is_array && table.is_some() {
        return Err(fail(format!(
            "{}: --table only applies to TinyDB files, not to an array",
            shown.display()
        )));
    }
    // No change feed history: nobody follows an import, and its retired journals would take as
    // much disk as the import itself.
    let options = StoreOptions::<Value>::from_path(path)
        .durability(Durability::Never)
        .memory(store_actor::Memory::Index {
            cache_bytes: IMPORT_CACHE_BYTES,
        })
        .feed_history(store_actor::FeedHistory {
            max_age: Duration::ZERO,
            max_bytes: 0,
        });
    let snapshot = options.snapshot_path();
    // Ids already in the store are refused too (the store is created only past the checks of
    // the file itself).
    let taken = |store: &Store<Value>, ids: &mut dyn Iterator<Item = (Uuid, String)>| {
        let mut found = None;
        for (id, origin) in ids {
            if store.get(id).is_ok() {
                found = Some((id, origin));
                break;
            }
        }
        found.map(|(id, origin)| {
            format!(
                "record {id} ({origin}) already exists in {}",
                snapshot.display()
            )
        })
    };
    let refuse = |message: String| {
        fail(format!(
            "{}: {message}; nothing was imported",
            shown.display()
        ))
    };

    // Check everything before writing anything. An array is streamed (one element in memory at
    // a time; the ids seen so far are kept to find repeats); other documents are read whole.
    let (tx, rx) = tokio::sync::mpsc::channel::<Incoming>(IMPORT_IN_FLIGHT);
    let (store, total, archived, writer) = if is_array {
        let mut seen: HashMap<Uuid, usize> = HashMap::new();
        let (mut total, mut archived) = (0u64, 0usize);
        let checked = for_each_element(open()?, |i, element| {
            let rec = incoming(i, element)?;
            if let Some(first) = seen.insert(rec.id, i) {
                return Err(format!(
                    "duplicate id {}: element {first} and {}",
                    rec.id, rec.origin
                ));
            }
            total += 1;
            archived += usize::from(rec.archived);
            Ok(())
        });
        checked.map_err(refuse)?;
        let store = Store::<Value>::open(options).await?;
        let mut ids = seen.iter().map(|(id, i)| (*id, format!("element {i}")));
        let exists = taken(&store, &mut ids);
        drop(seen);
        if let Some(message) = exists {
            store.close().await?;
            return Err(refuse(message));
        }
        // The writes: a second pass, on a blocking thread, feeding the in-flight creates.
        let reader = open()?;
        let writer = tokio::task::spawn_blocking(move || {
            for_each_element(reader, |i, element| {
                let rec = incoming(i, element)?;
                tx.blocking_send(rec)
                    .map_err(|_| "the import stopped".to_owned())
            })
        });
        (store, total, archived, writer)
    } else {
        let mut bytes = Vec::new();
        open()?
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("cannot read {}: {e}", shown.display())))?;
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("{} is not JSON: {e}", shown.display())))?;
        drop(bytes);
        let all =
            parse_import(doc, table).map_err(|m| fail(format!("{}: {m}", shown.display())))?;
        let mut seen: HashMap<Uuid, &str> = HashMap::with_capacity(all.len());
        for rec in &all {
            if let Some(first) = seen.insert(rec.id, &rec.origin) {
                let message = format!("duplicate id {}: {first} and {}", rec.id, rec.origin);
                return Err(refuse(message));
            }
        }
        drop(seen);
        let store = Store::<Value>::open(options).await?;
        let mut ids = all.iter().map(|r| (r.id, r.origin.clone()));
        if let Some(message) = taken(&store, &mut ids) {
            store.close().await?;
            return Err(refuse(message));
        }
        let (total, archived) = (all.len() as u64, all.iter().filter(|r| r.archived).count());
        let writer = tokio::task::spawn_blocking(move || {
            for rec in all {
                tx.blocking_send(rec)
                    .map_err(|_| "the import stopped".to_owned())?;
            }
            Ok(())
        });
        (store, total, archived, writer)
    };
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} records ({per_sec}, {eta})")
    {
        bar.set_style(style);
    }
    let (imported, failed) = create_all(&store, rx, &bar).await;
    bar.finish_and_clear();
    let read = writer.await.unwrap_or_else(|e| Err(e.to_string()));
    let failed = match (failed, read) {
        (Some(e), _) => Some(Failure::from(e)),
        // The file changed between the check and the writes.
        (None, Err(message)) => Some(fail(message)),
        (None, Ok(())) => None,
    };
    if let Some(failure) = failed {
        let _ = store.close().await;
        let message = format!(
            "import into {} failed after {imported} of {total} records: {}",
            snapshot.display(),
            failure.message
        );
        return Err(Failure { message, ..failure });
    }

    // A compaction already under way may cover only part of the import: compact until the
    // snapshot holds everything, so all of it is fsynced.
    let spinner = ProgressBar::new_spinner().with_message("writing the snapshot");
    spinner.enable_steady_tick(Duration::from_millis(100));
    let report = loop {
        let report = match store.compact().await {
            Ok(report) => report,
            Err(e) => {
                spinner.finish_and_clear();
                let _ = store.close().await;
                return Err(e.into());
            }
        };
        if report.seq >= store.last_seq() {
            break report;
        }
    };
    spinner.finish_and_clear();
    store.close().await?;
    let mut out = io::stdout().lock();
    stdout_written((|| {
        writeln!(
            out,
            "imported {imported} records ({archived} archived) into {}",
            snapshot.display()
        )?;
        writeln!(
            out,
            "snapshot: {} records, {} bytes",
            report.records, report.snapshot_bytes
        )?;
        out.flush()
    })())
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
fn incoming(i: usize, element: Value) -> Result<Incoming, String> {
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
/// returns how many were imported and the first error.
async fn create_all(
    store: &Store<Value>,
    mut incoming: tokio::sync::mpsc::Receiver<Incoming>,
    bar: &ProgressBar,
) -> (u64, Option<StoreError>) {
    let mut tasks = JoinSet::new();
    let mut imported = 0u64;
    let mut failed = None;
    let mut more = true;
    loop {
        while more && failed.is_none() && tasks.len() < IMPORT_IN_FLIGHT {
            let Some(rec) = incoming.recv().await else {
                more = false;
                break;
            };
            let store = store.clone();
            tasks.spawn(async move {
                store.create_with_id(rec.id, rec.data).await?;
                if rec.archived {
                    store.archive(rec.id, None).await?;
                }
                Ok::<_, StoreError>(())
            });
        }
        if failed.is_some() {
            incoming.close();
        }
        match tasks.join_next().await {
            None if !more || failed.is_some() => break,
            None => continue,
            Some(Ok(Ok(()))) => {
                imported += 1;
                bar.inc(1);
            }
            Some(Ok(Err(e))) => {
                failed.get_or_insert(e);
            }
            Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    (imported, failed)
}

/// Turns an import document into records (see `import --help` for the accepted layouts).
fn parse_import(doc: Value, table: Option<&str>) -> Result<Vec<Incoming>, String> {
    let mut out = Vec::new();
    match doc {
        Value::Array(elements) => {
            if table.is_some() {
                return Err("--table only applies to TinyDB files, not to an array".into());
            }
            out.reserve(elements.len());
            for (i, element) in elements.into_iter().enumerate() {
                out.push(incoming(i, element)?);
            }
        }
        Value::Object(tables) => {
            if let Some(name) = table
                && !tables.contains_key(name)
            {
                let names: Vec<&String> = tables.keys().collect();
                return Err(format!("no table {name:?} (tables: {names:?})"));
            }
            for (name, docs) in tables {
                if table.is_some_and(|t| t != name) {
                    continue;
                }
                let Value::Object(docs) = docs else {
                    return Err(format!(
                        "table {name:?} is not an object of documents: neither an array nor a \
                         TinyDB file"
                    ));
                };
                let mut docs: Vec<(String, Value)> = docs.into_iter().collect();
                // TinyDB document ids are integers: keep their order, not the string order.
                docs.sort_by(|(a, _), (b, _)| {
                    (a.parse::<u64>().ok(), a).cmp(&(b.parse::<u64>().ok(), b))
                });
                out.reserve(docs.len());
                for (doc_id, doc) in docs {
                    let origin = format!("table {name:?} document {doc_id}");
                    let Value::Object(obj) = doc else {
                        return Err(format!("{origin} is not a JSON object"));
                    };
                    out.push(plain_object(obj, origin));
                }
            }
        }
        _ => return Err("expected a JSON array or a TinyDB object of tables".into()),
    }
    Ok(out)
}

/// A record as written by `export`: it has `id`, `version` and `data`.
fn is_full_record(obj: &Map<String, Value>) -> bool {
    ["id", "version", "data"]
        .iter()
        .all(|k| obj.contains_key(*k))
}

fn full_record(mut obj: Map<String, Value>, origin: String) -> Result<Incoming, String> {
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
    Ok(Incoming {
        id,
        archived,
        data,
        origin,
    })
}

/// A plain object is the data; an `id` (or else `uuid`) field holding a UUID becomes the id.
fn plain_object(mut obj: Map<String, Value>, origin: String) -> Incoming {
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
    Incoming {
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

    #[test]
    fn plain_objects_take_their_id_or_uuid_field() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let got = parse_import(
            json!([
                {"id": a.to_string(), "name": "a"},
                {"uuid": b.to_string(), "id": 7, "name": "b"},
                {"id": "not-a-uuid", "name": "c"},
            ]),
            None,
        )
        .unwrap();
        assert_eq!((got[0].id, &got[0].data), (a, &json!({"name": "a"})));
        assert_eq!(
            (got[1].id, &got[1].data),
            (b, &json!({"id": 7, "name": "b"}))
        );
        assert_eq!(got[2].data, json!({"id": "not-a-uuid", "name": "c"}));
        assert_eq!(got[2].id.get_version_num(), 7);
    }

    #[test]
    fn tinydb_documents_keep_their_numeric_order() {
        let got = parse_import(
            json!({"_default": {"10": {"n": 10}, "2": {"n": 2}, "1": {"n": 1}}, "t": {}}),
            None,
        )
        .unwrap();
        let ns: Vec<_> = got.iter().map(|r| r.data["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, [1, 2, 10]);
        assert!(got.windows(2).all(|w| w[0].id < w[1].id));
        assert!(parse_import(json!({"_default": {}}), Some("nope")).is_err());
        assert!(parse_import(json!({"_default": [1]}), None).is_err());
    }
}
