//! The `store-actor` command-line tool, run as a separate process on real stores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};
use store_actor::{Store, StoreOptions};
use uuid::Uuid;

fn cli(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_store-actor"))
        .args(args.iter().map(|a| a.as_ref()))
        .env_remove("RUST_LOG")
        .output()
        .expect("run the store-actor binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// The `key: value` lines of a report.
fn fields(o: &Output) -> BTreeMap<String, String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn options(path: &Path) -> StoreOptions<Value> {
    StoreOptions::from_path(path)
}

/// A store at `DIR/items.json` with `n` records `{"n": i}`; returns the snapshot path and ids.
async fn store_with(dir: &Path, n: i64) -> (PathBuf, Vec<Uuid>) {
    let path = dir.join("items.json");
    let store = Store::open(options(&path)).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(store.create(json!({"n": i})).await.unwrap().id);
    }
    store.close().await.unwrap();
    (path, ids)
}

/// Every record of a store as (id, archived, data), in id order.
async fn contents(path: &Path) -> Vec<(Uuid, bool, Value)> {
    let store = Store::<Value>::open(options(path)).await.unwrap();
    let all = store
        .all()
        .map(|r| (r.id, r.archived, r.data.clone()))
        .collect();
    store.close().await.unwrap();
    all
}

/// verify prints records, live, last and snapshot sequence and journal lines, and exits 0.
#[tokio::test]
async fn verify_reports_the_counts_of_a_good_store() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = store_with(dir.path(), 3).await;
    let store = Store::open(options(&path)).await.unwrap();
    store.archive(ids[0], None).await.unwrap();
    store.compact().await.unwrap();
    store.create(json!({"n": 3})).await.unwrap();
    store.close().await.unwrap();

    let out = cli(&[&"verify", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = fields(&out);
    assert_eq!(f["records"], "4", "{f:?}");
    assert_eq!(f["live"], "3", "{f:?}");
    assert_eq!(f["last sequence"], "5", "{f:?}");
    assert_eq!(f["snapshot sequence"], "4", "{f:?}");
    assert_eq!(f["journal lines"], "1", "{f:?}");
    assert_eq!(f["torn tail"], "none", "{f:?}");
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

/// A damaged snapshot line makes verify exit 2 with FILE:LINE on stderr.
#[tokio::test]
async fn verify_on_a_corrupt_snapshot_exits_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = store_with(dir.path(), 3).await;
    let store = Store::<Value>::open(options(&path)).await.unwrap();
    store.compact().await.unwrap();
    store.close().await.unwrap();
    let snapshot = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = snapshot.lines().collect();
    assert_eq!(lines.len(), 5, "header, 3 records, footer: {snapshot}");
    lines[2] = r#"{"id":"oops","#;
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();

    let out = cli(&[&"verify", &path]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("{}:3:", path.display())), "{err}");
}

/// A torn last journal line is a warning, exit 0, and verify leaves the files untouched.
#[tokio::test]
async fn verify_on_a_torn_tail_warns_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = store_with(dir.path(), 3).await;
    let journal = dir.path().join("items.journal");
    let full = std::fs::read(&journal).unwrap();
    std::fs::write(&journal, &full[..full.len() - 10]).unwrap();

    let out = cli(&[&"verify", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = fields(&out);
    assert_eq!(f["records"], "2", "{f:?}");
    assert!(f["torn tail"].starts_with("line 3"), "{f:?}");
    let err = stderr(&out);
    assert!(err.contains("warning"), "{err}");
    assert!(err.contains(&format!("{}:3", journal.display())), "{err}");
    assert_eq!(std::fs::read(&journal).unwrap(), &full[..full.len() - 10]);
    assert!(!dir.path().join("items.journal.broken.1").exists());
}

/// export prints a JSON array of full records, one per line, that import reads back into a new
/// store with the same ids, data and archived flags.
#[tokio::test]
async fn export_then_import_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = store_with(dir.path(), 5).await;
    let store = Store::open(options(&path)).await.unwrap();
    store
        .replace(ids[1], None, json!({"n": 1, "tags": ["x", "ü"]}))
        .await
        .unwrap();
    store.archive(ids[2], None).await.unwrap();
    store.close().await.unwrap();

    let out = cli(&[&"export", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 5 + 2, "one record per line: {text}");
    let exported: Vec<Value> = serde_json::from_str(&text).unwrap();
    let exported_ids: Vec<Uuid> = exported
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(exported_ids, ids, "id order");
    assert_eq!(exported[1]["version"], 2);
    assert_eq!(exported[2]["archived"], true);
    assert!(exported[0].get("archived").is_none());
    assert!(exported[0]["created_at"].is_string());

    let file = dir.path().join("export.json");
    std::fs::write(&file, &text).unwrap();
    let copy = dir.path().join("copy").join("items2.json");
    let out = cli(&[&"import", &file, &copy]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("imported 5 records (1 archived)"));
    assert_eq!(contents(&copy).await, contents(&path).await);
    assert!(copy.exists(), "the import is compacted into a snapshot");

    // From standard input too (kept in a file next to the store for the two passes, then
    // removed); a bad element is refused before anything is written.
    let piped = dir.path().join("piped").join("items3.json");
    std::fs::create_dir_all(piped.parent().unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_store-actor"))
        .args([
            std::ffi::OsStr::new("import"),
            "-".as_ref(),
            piped.as_os_str(),
        ])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(contents(&piped).await, contents(&path).await);
    let leftovers: Vec<_> = std::fs::read_dir(piped.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("import"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "[{\"n\": 1},\n2]").unwrap();
    let target = dir.path().join("never").join("items4.json");
    let out = cli(&[&"import", &bad, &target]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("element 1 is not a JSON object"),
        "{}",
        stderr(&out)
    );
    assert!(!target.exists() && !target.with_extension("journal").exists());
}

/// A TinyDB file: every table's documents are imported; `id`/`uuid` UUID fields become the id
/// and leave the data, other documents get fresh ids and keep their fields.
#[tokio::test]
async fn import_reads_a_tinydb_file() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let file = dir.path().join("db.json");
    let tinydb = json!({
        "_default": {
            "1": {"uuid": a.to_string(), "name": "a"},
            "2": {"id": b.to_string(), "name": "b"},
            "3": {"name": "c", "id": 7},
        },
        "archive": {"1": {"name": "d"}},
    });
    std::fs::write(&file, tinydb.to_string()).unwrap();
    let path = dir.path().join("products"); // the `.json` may be left out

    let out = cli(&[&"import", &file, &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("imported 4 records"),
        "{}",
        stdout(&out)
    );
    let got = contents(&dir.path().join("products.json")).await;
    assert_eq!(got.len(), 4);
    let by_id: BTreeMap<Uuid, Value> = got.iter().map(|(id, _, d)| (*id, d.clone())).collect();
    assert_eq!(by_id[&a], json!({"name": "a"}));
    assert_eq!(by_id[&b], json!({"name": "b"}));
    let mut rest: Vec<&Value> = by_id
        .iter()
        .filter(|(id, _)| **id != a && **id != b)
        .map(|(_, d)| d)
        .collect();
    rest.sort_by_key(|d| d["name"].as_str().unwrap().to_owned());
    assert_eq!(
        rest,
        [&json!({"name": "c", "id": 7}), &json!({"name": "d"})]
    );

    let only = dir.path().join("only.json");
    let out = cli(&[&"import", &"--table", &"archive", &file, &only]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(contents(&only).await.len(), 1);
}

/// An id repeated in the file, or already in the store, fails naming it; nothing is written.
#[tokio::test]
async fn import_refuses_duplicate_ids() {
    let dir = tempfile::tempdir().unwrap();
    let id = Uuid::new_v4();
    let file = dir.path().join("dup.json");
    let doc = json!([{"id": id.to_string(), "n": 1}, {"n": 2}, {"uuid": id.to_string()}]);
    std::fs::write(&file, doc.to_string()).unwrap();
    let fresh = dir.path().join("fresh.json");
    let out = cli(&[&"import", &file, &fresh]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&id.to_string()), "{}", stderr(&out));
    assert!(!fresh.exists() && !dir.path().join("fresh.journal").exists());

    let (path, ids) = store_with(dir.path(), 2).await;
    let before = contents(&path).await;
    let doc = json!([{"n": 9}, {"id": ids[1].to_string(), "n": 10}]);
    std::fs::write(&file, doc.to_string()).unwrap();
    let out = cli(&[&"import", &file, &path]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&ids[1].to_string()) && err.contains("already exists"),
        "{err}"
    );
    assert_eq!(contents(&path).await, before);
}

/// compact writes a snapshot holding every record and empties the journal.
#[tokio::test]
async fn compact_shrinks_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = store_with(dir.path(), 20).await;
    let store = Store::open(options(&path)).await.unwrap();
    for id in &ids {
        store
            .replace(*id, None, json!({"n": "changed"}))
            .await
            .unwrap();
    }
    store.close().await.unwrap();
    let journal = dir.path().join("items.journal");
    let before = std::fs::metadata(&journal).unwrap().len();
    assert!(before > 0 && !path.exists());

    let out = cli(&[&"compact", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = fields(&out);
    assert_eq!(f["records"], "20", "{f:?}");
    assert_eq!(f["sequence"], "40", "{f:?}");
    let after = std::fs::metadata(&journal).unwrap().len();
    assert!(after < before, "{after} < {before}");
    assert_eq!(after, 0);
    let out = cli(&[&"verify", &path]);
    let f = fields(&out);
    assert_eq!(
        (&*f["snapshot sequence"], &*f["journal lines"]),
        ("40", "0")
    );
    assert_eq!(contents(&path).await.len(), 20);
}

/// verify, compact and export on a store that does not exist fail and create nothing.
#[test]
fn missing_store_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing.json");
    for command in ["verify", "compact", "export"] {
        let out = cli(&[&command, &path]);
        assert_eq!(out.status.code(), Some(1), "{command}");
        assert!(
            stderr(&out).contains("no store at"),
            "{command}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{command}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// A store held by another process is reported as locked, naming its file, not opened twice.
#[tokio::test]
async fn a_locked_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = store_with(dir.path(), 1).await;
    let store = Store::<Value>::open(options(&path)).await.unwrap();
    let named = format!("{} is locked", path.display());
    // Given with or without `.json`, the message names the store's file.
    for arg in [path.clone(), path.with_extension("")] {
        let out = cli(&[&"compact", &arg]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(&named), "{named}: {}", stderr(&out));
    }
    store.close().await.unwrap();
}

/// --help documents every subcommand; a bad command line exits 64, not 2 (damage).
#[test]
fn help_lists_the_subcommands_and_usage_errors_exit_64() {
    let out = cli(&[&"--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = stdout(&out);
    for word in [
        "verify",
        "compact",
        "export",
        "import",
        "--log-level",
        "Exit status",
    ] {
        assert!(help.contains(word), "{word}: {help}");
    }
    let out = cli(&[&"import", &"--help"]);
    assert!(stdout(&out).contains("TinyDB") && stdout(&out).contains("NOT preserved"));
    // export reads without the lock (see export_works_while_the_store_is_open).
    let out = cli(&[&"export", &"--help"]);
    let help = stdout(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("without taking the store's lock"), "{help}");
    assert!(!help.contains("takes its lock"), "{help}");
    assert_eq!(cli(&[&"frobnicate"]).status.code(), Some(64));
    assert_eq!(cli(&[&"verify"]).status.code(), Some(64));
}

/// export reads without the lock, so it works while a service has the store open, and it
/// sees every durable write.
#[tokio::test]
async fn export_works_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = store_with(dir.path(), 3).await;
    let live = Store::<Value>::open(options(&path)).await.unwrap();
    let extra = live.create(json!({"n": 99})).await.unwrap();
    let out = cli(&[&"export", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let exported: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let exported_ids: Vec<Uuid> = exported
        .iter()
        .map(|r| r["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let mut expected = ids.clone();
    expected.push(extra.id);
    assert_eq!(exported_ids, expected);
    live.close().await.unwrap();
}

/// verify and export read the journal lines of atomic batches: the counts include every op of a
/// batch (one line), and export shows the records as the batch left them.
#[tokio::test]
async fn verify_and_export_read_batch_lines() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = store_with(dir.path(), 2).await;
    let store = Store::<Value>::open(options(&path)).await.unwrap();
    store
        .batch(vec![
            store_actor::Op::replace(ids[0], Some(1), json!({"n": 10})),
            store_actor::Op::archive(ids[1], Some(1)),
            store_actor::Op::create(json!({"n": 12})),
        ])
        .await
        .unwrap();
    store.close().await.unwrap();

    let out = cli(&[&"verify", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let f = fields(&out);
    assert_eq!(f["records"], "3", "{f:?}");
    assert_eq!(f["live"], "2", "{f:?}");
    assert_eq!(f["last sequence"], "5", "{f:?}");
    assert_eq!(f["journal lines"], "3", "{f:?}");
    assert_eq!(f["torn tail"], "none", "{f:?}");

    let out = cli(&[&"export", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let exported: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    let mut data: Vec<(Value, Value)> = exported
        .iter()
        .map(|r| (r["data"]["n"].clone(), r["version"].clone()))
        .collect();
    data.sort_by_key(|(n, _)| n.as_i64());
    assert_eq!(
        data,
        vec![
            (json!(1), json!(2)),
            (json!(10), json!(2)),
            (json!(12), json!(1))
        ]
    );
}
