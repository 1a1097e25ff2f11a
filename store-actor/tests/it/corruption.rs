//! Damaged files: a torn tail is repaired, anything else refuses to open with file and line.

use std::path::Path;

use store_actor::{Op, Store, StoreError, verify};

use crate::helpers::{Item, item, options};

/// Writes three records and closes: the journal then has three lines, no snapshot.
async fn three_records(dir: &Path) {
    let store = Store::open(options(dir)).await.unwrap();
    for i in 0..3 {
        store.create(item("r", i)).await.unwrap();
    }
    store.close().await.unwrap();
}

fn journal(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("items.journal")).unwrap()
}

fn expect_corrupt(err: StoreError, file: &str, line: u64) {
    match &err {
        StoreError::Corrupt {
            file: f, line: l, ..
        } => {
            assert!(f.ends_with(file), "{err}");
            assert_eq!(*l, line, "{err}");
        }
        other => panic!("expected Corrupt at {file}:{line}, got {other}"),
    }
}

/// A torn last line is dropped, its bytes kept in `.broken.1`; the store opens, says so in its
/// status, and keeps writing.
#[tokio::test]
async fn truncated_tail_is_dropped_with_a_copy() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path()).await;
    let full = journal(dir.path());
    std::fs::write(dir.path().join("items.journal"), &full[..full.len() - 10]).unwrap();
    let inode =
        |p: &std::path::Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let journal_inode = inode(&dir.path().join("items.journal"));

    let report = verify(&options(dir.path())).unwrap();
    assert_eq!(report.torn_tail.as_ref().unwrap().line, 3);

    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(store.count(), 2);
    // Truncated in place (the same file, no copy of the journal: a nearly full disk can still
    // drop a torn tail), and no temporary file left.
    assert_eq!(inode(&dir.path().join("items.journal")), journal_inode);
    assert!(!dir.path().join("items.journal.tmp").exists());
    let status = store.status();
    assert!(status.torn_line_dropped && !status.damaged_line_dropped);
    let broken = std::fs::read_to_string(dir.path().join("items.journal.broken.1")).unwrap();
    let line_3 = full[..full.len() - 1].rfind('\n').unwrap() + 1;
    assert_eq!(
        broken,
        full[line_3..full.len() - 10],
        "only the dropped bytes"
    );
    assert_eq!(journal(dir.path()).lines().count(), 2);
    store.create(item("next", 9)).await.unwrap();
    store.close().await.unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(store.count(), 3);
    assert_eq!(store.last_seq(), 3);
}

/// A whole last line with a bad checksum is dropped too (the store cannot tell it from a torn
/// write), but reported as possibly an acknowledged write: `complete` in verify, its own flag
/// in the status, and its bytes kept; a second drop keeps its own evidence beside the first.
#[tokio::test]
async fn bad_checksum_on_a_whole_last_line_is_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path()).await;
    let damage = |dir: &Path| {
        let text = journal(dir);
        let last_start = text[..text.len() - 1].rfind('\n').unwrap() + 1;
        let line = text[last_start..].replacen("\"r\"", "\"R\"", 1);
        std::fs::write(
            dir.join("items.journal"),
            format!("{}{line}", &text[..last_start]),
        )
        .unwrap();
        line
    };
    let first = damage(dir.path());

    let report = verify(&options(dir.path())).unwrap();
    let torn = report.torn_tail.unwrap();
    assert!(
        torn.complete && torn.reason.contains("checksum"),
        "{torn:?}"
    );
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(store.count(), 2);
    let status = store.status();
    assert!(status.damaged_line_dropped && !status.torn_line_dropped);
    store.create(item("r", 7)).await.unwrap();
    store.close().await.unwrap();
    let second = damage(dir.path());
    let store = Store::open(options(dir.path())).await.unwrap();
    store.close().await.unwrap();

    let evidence =
        |n| std::fs::read_to_string(dir.path().join(format!("items.journal.broken.{n}")));
    assert_eq!(
        evidence(1).unwrap(),
        first,
        "the first drop's evidence is kept"
    );
    assert_eq!(evidence(2).unwrap(), second);
    let report = verify(&options(dir.path())).unwrap();
    let names: Vec<String> = report
        .evidence
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["items.journal.broken.1", "items.journal.broken.2"]);
}

/// Garbage between intact lines refuses to open, names the line, and changes no file.
#[tokio::test]
async fn garbage_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path()).await;
    let mut lines: Vec<String> = journal(dir.path()).lines().map(String::from).collect();
    lines.insert(1, "{\"seq\":oops".into());
    let damaged = lines.join("\n") + "\n";
    std::fs::write(dir.path().join("items.journal"), &damaged).unwrap();
    let err = Store::open(options(dir.path())).await.unwrap_err();
    expect_corrupt(err, "items.journal", 2);
    assert_eq!(journal(dir.path()), damaged, "nothing was overwritten");
    assert!(!dir.path().join("items.journal.broken.1").exists());
    expect_corrupt(
        verify(&options(dir.path())).unwrap_err(),
        "items.journal",
        2,
    );
}

/// A checksum mismatch before the last line is corruption, not a torn write.
#[tokio::test]
async fn bad_checksum_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path()).await;
    let text = journal(dir.path());
    let damaged = text.replacen("\"price\":0", "\"price\":7", 1);
    assert_ne!(damaged, text);
    std::fs::write(dir.path().join("items.journal"), damaged).unwrap();
    let err = Store::open(options(dir.path())).await.unwrap_err();
    expect_corrupt(err, "items.journal", 1);
}

/// A missing journal line (sequence gap) refuses to open.
#[tokio::test]
async fn sequence_gap_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path()).await;
    let text = journal(dir.path());
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(
        dir.path().join("items.journal"),
        format!("{}\n{}\n", lines[0], lines[2]),
    )
    .unwrap();
    let err = Store::open(options(dir.path())).await.unwrap_err();
    expect_corrupt(err, "items.journal", 2);
}

/// `lines` of a snapshot (header, records, trailer) with the trailer's checksum recomputed.
fn resealed(lines: &[&str]) -> String {
    let records = &lines[1..lines.len() - 1];
    let body: String = records.iter().map(|l| format!("{l}\n")).collect();
    let trailer = store_actor::snapshot_trailer(crc32fast::hash(body.as_bytes()));
    format!("{}\n{body}{trailer}", lines[0])
}

/// Writes three records and compacts them into a snapshot; returns its path and text.
async fn snapshot_of_three(dir: &Path) -> (std::path::PathBuf, String) {
    let store = Store::open(options(dir)).await.unwrap();
    for i in 0..3 {
        store.create(item("r", i + 1)).await.unwrap();
    }
    store.compact().await.unwrap();
    store.close().await.unwrap();
    let path = dir.join("items.json");
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

/// One flipped bit in a record that still parses (a price of 3 becoming 2) is caught by the
/// snapshot's checksum: the store refuses to open, naming the snapshot and its checksum line,
/// and `verify` agrees; restored, it opens.
#[tokio::test]
async fn a_flipped_bit_in_a_snapshot_is_refused_by_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (path, good) = snapshot_of_three(dir.path()).await;
    assert!(
        good.trim_end().ends_with('}') && good.contains("],\"crc\":"),
        "{good}"
    );
    let at = good.find("\"price\":3").expect("a price of 3") + "\"price\":".len();
    let mut bytes = good.clone().into_bytes();
    bytes[at] ^= 0x01; // '3' (0x33) becomes '2' (0x32)
    std::fs::write(&path, &bytes).unwrap();

    let err = Store::open(options(dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    expect_corrupt(err, "items.json", 5);
    let err = verify(&options(dir.path())).unwrap_err();
    expect_corrupt(err, "items.json", 5);

    std::fs::write(&path, &good).unwrap();
    assert_eq!(Store::open(options(dir.path())).await.unwrap().count(), 3);
}

/// A snapshot written before checksums (`store-actor/1`, ending `]}`) still opens; a current
/// one without its checksum line does not.
#[tokio::test]
async fn snapshots_of_the_first_format_still_open() {
    let dir = tempfile::tempdir().unwrap();
    let (path, good) = snapshot_of_three(dir.path()).await;
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let last = lines.len() - 1;
    lines[last] = "]}".into();
    let unchecked = lines.join("\n") + "\n";
    std::fs::write(&path, &unchecked).unwrap();
    expect_corrupt(
        Store::open(options(dir.path())).await.unwrap_err(),
        "items.json",
        5,
    );

    let v1 = unchecked.replacen("store-actor/2", "store-actor/1", 1);
    std::fs::write(&path, v1).unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(store.count(), 3);
    store.compact().await.unwrap();
    store.close().await.unwrap();
    let rewritten = std::fs::read_to_string(&path).unwrap();
    assert!(
        rewritten.starts_with("{\"format\":\"store-actor/2\""),
        "{rewritten}"
    );
}

/// A snapshot that does not parse refuses to open, naming the snapshot and the line.
#[tokio::test]
async fn broken_snapshot_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    for i in 0..3 {
        store.create(item("r", i)).await.unwrap();
    }
    store.compact().await.unwrap();
    store.close().await.unwrap();
    let path = dir.path().join("items.json");
    let good = std::fs::read_to_string(&path).unwrap();

    // A damaged record line.
    std::fs::write(
        &path,
        good.replacen("\"version\":1", "\"version\":\"x\"", 1),
    )
    .unwrap();
    expect_corrupt(
        Store::open(options(dir.path())).await.unwrap_err(),
        "items.json",
        2,
    );
    // A truncated snapshot (no closing line).
    let cut: String = good.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, cut).unwrap();
    expect_corrupt(
        Store::open(options(dir.path())).await.unwrap_err(),
        "items.json",
        3,
    );
    // The same record twice (with a checksum that matches, as a buggy writer would make it).
    let mut lines: Vec<&str> = good.lines().collect();
    let header = lines[0].replace("\"count\":3", "\"count\":4");
    lines[0] = &header;
    lines.insert(2, lines[1]);
    std::fs::write(&path, resealed(&lines)).unwrap();
    let err = Store::open(options(dir.path())).await.unwrap_err();
    assert!(err.to_string().contains("duplicate record id"), "{err}");
    expect_corrupt(err, "items.json", 3);
    // A header that is not ours.
    std::fs::write(&path, "{\"hello\":1}\n").unwrap();
    expect_corrupt(
        Store::open(options(dir.path())).await.unwrap_err(),
        "items.json",
        1,
    );
    // Restored, it opens again: the failed opens changed nothing.
    std::fs::write(&path, &good).unwrap();
    assert_eq!(Store::open(options(dir.path())).await.unwrap().count(), 3);
}

/// Leftover temporary files of an interrupted compaction are ignored and removed.
#[tokio::test]
async fn leftover_temporary_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    three_records(dir.path()).await;
    std::fs::write(dir.path().join("items.json.tmp"), "{half a snaps").unwrap();
    std::fs::write(dir.path().join("items.journal.tmp"), "garbage").unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(store.count(), 3);
    assert!(!dir.path().join("items.json.tmp").exists());
    assert!(!dir.path().join("items.journal.tmp").exists());
}

/// Three records, then one batch (three updates and a create) as journal line 4, and with
/// `more`, one single write after it as line 5; closed. Returns the journal.
async fn three_records_and_a_batch(dir: &Path, more: bool) -> String {
    three_records(dir).await;
    let store = Store::open(options(dir)).await.unwrap();
    let ids: Vec<_> = store.all().map(|r| r.id).collect();
    let mut ops: Vec<Op<Item>> = ids
        .iter()
        .map(|id| {
            Op::update(*id, None, |i: &Item| {
                Ok::<_, StoreError>(Item {
                    price: i.price + 100,
                    ..i.clone()
                })
            })
        })
        .collect();
    ops.push(Op::create(item("new", 7)));
    store.batch(ops).await.unwrap();
    if more {
        store.create(item("after", 8)).await.unwrap();
    }
    store.close().await.unwrap();
    let text = journal(dir);
    assert!(
        text.lines().nth(3).unwrap().contains("\"batch\":["),
        "{text}"
    );
    text
}

/// The prices of a store's records, sorted.
fn prices(store: &Store<Item>) -> Vec<i64> {
    let mut p: Vec<i64> = store.all().map(|r| r.data.price).collect();
    p.sort();
    p
}

/// A batch cut off at the end of the journal (the process died while writing it) is a torn
/// tail wherever the cut is: dropped whole, its bytes kept in `.broken.1`; the store goes on.
#[tokio::test]
async fn batch_cut_off_at_the_tail_is_dropped_whole() {
    let dir = tempfile::tempdir().unwrap();
    let full = three_records_and_a_batch(dir.path(), false).await;
    let start = full[..full.len() - 1].rfind('\n').unwrap() + 1;
    let path = dir.path().join("items.journal");
    // Every cut inside the batch's line, up to its missing newline, reads as a torn line 4.
    for cut in start + 1..full.len() {
        std::fs::write(&path, &full[..cut]).unwrap();
        let report = verify(&options(dir.path())).unwrap();
        let torn = report.torn_tail.unwrap_or_else(|| panic!("cut at {cut}"));
        assert_eq!(
            (torn.line, torn.valid_len),
            (4, start as u64),
            "cut at {cut}"
        );
        assert_eq!((report.records, report.last_seq), (3, 3), "cut at {cut}");
    }
    let cut = &full[..(start + full.len()) / 2];
    std::fs::write(&path, cut).unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(prices(&store), vec![0, 1, 2], "none of the batch");
    assert_eq!(store.last_seq(), 3);
    let broken = std::fs::read_to_string(dir.path().join("items.journal.broken.1")).unwrap();
    assert_eq!(broken, cut[start..], "the dropped part of the batch");
    assert_eq!(journal(dir.path()), full[..start]);
    // The sequence numbers of the dropped batch are used again.
    store.create(item("next", 9)).await.unwrap();
    assert_eq!(store.last_seq(), 4);
    store.close().await.unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(prices(&store), vec![0, 1, 2, 9]);
    // Uncut, the batch is all there.
    std::fs::write(&path, &full).unwrap();
    store.close().await.unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(prices(&store), vec![7, 100, 101, 102]);
    assert_eq!(store.last_seq(), 7);
}

/// An incomplete batch followed by more of the journal is not a torn write: it refuses to open
/// with the file and the batch's line, and no file is changed. So is a missing batch (the line
/// after it does not follow on), and a batch whose line fails its checksum.
#[tokio::test]
async fn batch_damaged_in_the_middle_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let full = three_records_and_a_batch(dir.path(), true).await;
    let lines: Vec<&str> = full.lines().collect();
    let path = dir.path().join("items.journal");
    let cut_batch = {
        let batch = lines[3];
        let mut l = lines.clone();
        l[3] = &batch[..batch.len() / 2];
        l.join("\n") + "\n"
    };
    let without_batch = {
        let mut l = lines.clone();
        l.remove(3);
        l.join("\n") + "\n"
    };
    let bad_checksum = full.replacen("\"price\":102", "\"price\":103", 1);
    assert_ne!(bad_checksum, full);
    for (what, damaged, reason) in [
        ("cut", &cut_batch, "not a journal line"),
        (
            "missing",
            &without_batch,
            "sequence gap: expected 4, found 8",
        ),
        ("checksum", &bad_checksum, "checksum mismatch"),
    ] {
        std::fs::write(&path, damaged).unwrap();
        let err = Store::open(options(dir.path())).await.unwrap_err();
        assert!(err.to_string().contains(reason), "{what}: {err}");
        expect_corrupt(err, "items.journal", 4);
        expect_corrupt(
            verify(&options(dir.path())).unwrap_err(),
            "items.journal",
            4,
        );
        assert_eq!(&journal(dir.path()), damaged, "{what}: nothing overwritten");
        assert!(
            !dir.path().join("items.journal.broken.1").exists(),
            "{what}"
        );
    }
    std::fs::write(&path, &full).unwrap();
    let store = Store::open(options(dir.path())).await.unwrap();
    assert_eq!(prices(&store), vec![7, 8, 100, 101, 102]);
    assert_eq!(store.last_seq(), 8);
}
