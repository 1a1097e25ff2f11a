//! `store-actor`: check, compact, export and import store-actor stores from the command line.
//!
//! Every store is addressed by its snapshot path (`data/products.json`, the `.json` may be left
//! out); the journal is the `.journal` file next to it. Records are handled as plain JSON
//! ([`serde_json::Value`]), so the tool works on any store whatever its record type.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use store_actor::import::{self, ImportError, Progress};
use store_actor::{Record, Store, StoreError, StoreOptions, verify};

/// Any failure other than damage: missing store, lock held, I/O, bad input, duplicate id.
const EXIT_ERROR: u8 = 1;
/// The store's files are damaged (the message names file and line).
const EXIT_CORRUPT: u8 = 2;
/// The command line could not be parsed (EX_USAGE).
const EXIT_USAGE: u8 = 64;

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

async fn import(file: &Path, path: &Path, table: Option<&str>) -> Outcome {
    let options = StoreOptions::<Value>::from_path(path);
    let snapshot = options.snapshot_path();
    let request = store_actor::import::ImportOptions {
        input: file.to_owned(),
        table: table.map(str::to_owned),
        skip_invalid: false,
    };
    let bar = ProgressBar::hidden();
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {human_pos}/{human_len} records ({per_sec}, {eta})")
    {
        bar.set_style(style);
    }
    let progress = |p: Progress| match p {
        Progress::Checked(total) => {
            bar.set_length(total);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Progress::Written => bar.inc(1),
        Progress::Compacting => bar.set_message("writing the snapshot"),
    };
    let done = import::import(options, &request, import::as_is(), &progress).await;
    bar.finish_and_clear();
    let done = done.map_err(|e| match e {
        ImportError::Store(e) => Failure::from(e),
        ImportError::Refused { reasons, .. } => fail(format!(
            "{}: {}; nothing was imported",
            file.display(),
            reasons.join("; ")
        )),
        ImportError::Interrupted { .. } => fail(format!("import into {}: {e}", snapshot.display())),
        ImportError::Input(message) => fail(message),
    })?;
    let mut out = io::stdout().lock();
    stdout_written((|| {
        writeln!(
            out,
            "imported {} records ({} archived) into {}",
            done.imported,
            done.archived,
            snapshot.display()
        )?;
        writeln!(
            out,
            "snapshot: {} records, {} bytes",
            done.snapshot_records, done.snapshot_bytes
        )?;
        out.flush()
    })())
}
