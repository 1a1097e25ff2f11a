//! The change feed's history on disk: the live journal and the journals compaction retired.
//!
//! Journal lines are events, so the feed needs no file of its own. Before a compaction replaces
//! the journal, the flusher gives the old one a second name, `NAME.journal.retired.LAST.AT`
//! (`LAST` its last sequence number, `AT` the Unix second it was retired): a hard link, so no
//! byte is copied and a crash at any point leaves the journal itself as it was. Retired journals
//! are kept while they are within the retention window, by age since retirement and by total
//! size (the newest are kept first), and deleted when they leave it.
//!
//! [`History::read`] serves the events after a sequence number from these files. It finds the
//! line to start from by binary search over the `{"seq":N` line prefixes (O(log size) small
//! positional reads, no index to keep), then reads lines in order. It opens the live journal
//! before it lists the retired ones, so a compaction in between only makes them overlap (a
//! retired journal holds every line its successor starts with), and overlaps are skipped by
//! sequence number. A file deleted while being read stays readable through its open handle.

use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;

use crate::error::{Result, StoreError};
use crate::fs::{Fs, ReadCursor, ReadFile};
use crate::journal;
use crate::record::Event;

/// How long and how much of the change feed's history is kept on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedHistory {
    /// Retired journals this old (since their retirement, in whole seconds) are deleted.
    pub max_age: Duration,
    /// Retired journals beyond this total size (the oldest first) are deleted.
    pub max_bytes: u64,
}

impl Default for FeedHistory {
    /// A day, and at most 256 MiB: a consumer down for hours resumes without a resync.
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(24 * 3600),
            max_bytes: 256 << 20,
        }
    }
}

/// A retired journal.
#[derive(Debug, Clone)]
struct Retired {
    path: PathBuf,
    last_seq: u64,
    retired_at: u64,
}

/// The feed's files of one store.
#[derive(Debug)]
pub(crate) struct History {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    journal: PathBuf,
    /// `NAME.journal.retired.`: what the file names of retired journals start with.
    prefix: String,
    keep: FeedHistory,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl History {
    pub fn new(fs: Arc<dyn Fs>, dir: &Path, journal: &Path, keep: FeedHistory) -> Self {
        let name = journal
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        Self {
            fs,
            dir: dir.to_owned(),
            journal: journal.to_owned(),
            prefix: format!("{}.retired.", name.unwrap_or_default()),
            keep,
        }
    }

    /// The retired journals, oldest first.
    fn retired(&self) -> io::Result<Vec<Retired>> {
        let mut found: Vec<Retired> = self
            .fs
            .list(&self.dir)?
            .into_iter()
            .filter_map(|path| {
                let name = path.file_name()?.to_str()?;
                let (last, at) = name.strip_prefix(&self.prefix)?.split_once('.')?;
                Some(Retired {
                    last_seq: last.parse().ok()?,
                    retired_at: at.parse().ok()?,
                    path,
                })
            })
            .collect();
        found.sort_by_key(|r| (r.last_seq, r.retired_at));
        Ok(found)
    }

    /// Keeps the live journal, whose last line is `last_seq`, under its retired name; called by
    /// the flusher just before a compaction replaces it. Retiring the same journal twice (a
    /// switch that failed and was tried again with nothing written since) keeps one name.
    pub fn retire(&self, last_seq: u64) -> io::Result<()> {
        let already = self.retired()?.iter().any(|r| r.last_seq == last_seq);
        if already {
            return Ok(());
        }
        let to = self
            .dir
            .join(format!("{}{last_seq}.{}", self.prefix, unix_now()));
        self.fs.hard_link(&self.journal, &to)
    }

    /// Deletes the retired journals that left the window; returns how many.
    pub fn prune(&self) -> io::Result<usize> {
        let now = unix_now();
        let mut kept_bytes = 0u64;
        let mut removed = 0;
        for r in self.retired()?.iter().rev() {
            let len = match self.fs.open_file(&r.path)? {
                Some(f) => f.size()?,
                None => continue,
            };
            kept_bytes = kept_bytes.saturating_add(len);
            let too_old =
                Duration::from_secs(now.saturating_sub(r.retired_at)) >= self.keep.max_age;
            if too_old || kept_bytes > self.keep.max_bytes {
                self.fs.remove(&r.path)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Up to `limit` events after `after` and at most `upto` (the last published sequence
    /// number), from the files. [`StoreError::TooOld`] when the event after `after` is in none
    /// of them any more.
    pub fn read<T: DeserializeOwned>(
        &self,
        after: u64,
        limit: usize,
        upto: u64,
    ) -> Result<Vec<Arc<Event<T>>>> {
        let io = |p: &Path| {
            let p = p.to_owned();
            move |e| StoreError::io("read", &p, e)
        };
        // The live journal first: see the module's note on compactions meanwhile.
        let live = self
            .fs
            .open_file(&self.journal)
            .map_err(io(&self.journal))?;
        let mut files = Vec::new();
        for r in self.retired().map_err(io(&self.dir))? {
            if r.last_seq > after
                && let Some(f) = self.fs.open_file(&r.path).map_err(io(&r.path))?
            {
                files.push((r.path, f));
            }
        }
        files.extend(live.map(|f| (self.journal.clone(), f)));
        let mut out: Vec<Arc<Event<T>>> = Vec::new();
        let mut next = after;
        for (path, file) in files {
            if out.len() >= limit || next >= upto {
                break;
            }
            let events = match read_file::<T>(&file, next, limit - out.len(), upto) {
                Ok(events) => events,
                Err(reason) => {
                    tracing::warn!(file = %path.display(), %reason, "change feed history unreadable");
                    break;
                }
            };
            for e in events {
                if e.seq != next + 1 {
                    break; // a gap: the history does not reach back that far
                }
                next = e.seq;
                out.push(Arc::new(e));
            }
        }
        if out.is_empty() && after < upto {
            return Err(StoreError::TooOld {
                requested: after,
                oldest_available: self.oldest().unwrap_or(upto + 1),
            });
        }
        Ok(out)
    }

    /// The first sequence number of the oldest file, if any file has a line.
    fn oldest(&self) -> Option<u64> {
        let mut paths: Vec<PathBuf> = self.retired().ok()?.into_iter().map(|r| r.path).collect();
        paths.push(self.journal.clone());
        paths.iter().find_map(|p| {
            let f = self.fs.open_file(p).ok()??;
            seq_at(&*f, 0).ok()?
        })
    }
}

/// The events of `file` after `after` and at most `upto`, at most `max` of them, in order.
fn read_file<T: DeserializeOwned>(
    file: &Arc<dyn ReadFile>,
    after: u64,
    max: usize,
    upto: u64,
) -> std::result::Result<Vec<Event<T>>, String> {
    let len = file.size().map_err(|e| e.to_string())?;
    let start = start_offset(&**file, len, after).map_err(|e| e.to_string())?;
    let mut reader = BufReader::with_capacity(1 << 16, ReadCursor::range(file.clone(), start, len));
    let mut out = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        reader
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if line.last() != Some(&b'\n') {
            return Ok(out); // the end, or a line still being written
        }
        let decoded = journal::decode::<T>(&line[..line.len() - 1])?;
        for e in decoded.into_events() {
            if e.seq > upto {
                return Ok(out);
            }
            if e.seq > after {
                out.push(e);
                if out.len() == max {
                    return Ok(out);
                }
            }
        }
    }
}

/// The offset of the first line of `file` (its first `len` bytes) whose sequence number is above
/// `seq` (`len` if none): a binary search over the lines' `{"seq":N` prefixes.
pub(crate) fn first_line_after(file: &dyn ReadFile, len: u64, seq: u64) -> io::Result<u64> {
    let beyond = |pos: u64| -> io::Result<bool> {
        let start = line_start_from(file, pos, len)?;
        Ok(start >= len || seq_at(file, start)?.is_none_or(|s| s > seq))
    };
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if beyond(mid)? {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    line_start_from(file, lo, len)
}

/// Where to start reading for the events after `after`: the line before the first line whose
/// sequence number is above it (that line may be a batch holding `after + 1`).
fn start_offset(file: &dyn ReadFile, len: u64, after: u64) -> io::Result<u64> {
    let first_later = first_line_after(file, len, after)?;
    if first_later == 0 {
        return Ok(0);
    }
    prev_line_start(file, first_later)
}

const CHUNK: usize = 4096;

/// The first line start at or after `pos`.
fn line_start_from(file: &dyn ReadFile, pos: u64, len: u64) -> io::Result<u64> {
    if pos == 0 {
        return Ok(0);
    }
    let mut buf = [0u8; CHUNK];
    let mut at = pos - 1;
    while at < len {
        let n = file.read_at(&mut buf, at)?;
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == b'\n') {
            return Ok(at + i as u64 + 1);
        }
        at += n as u64;
    }
    Ok(len)
}

/// The start of the line that ends just before `start` (itself a line start above 0).
fn prev_line_start(file: &dyn ReadFile, start: u64) -> io::Result<u64> {
    let mut buf = [0u8; CHUNK];
    // The byte at `start - 1` is the previous line's newline: search before it.
    let mut end = start - 1;
    while end > 0 {
        let from = end.saturating_sub(CHUNK as u64);
        let n = file.read_at(&mut buf[..(end - from) as usize], from)?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            return Ok(from + i as u64 + 1);
        }
        end = from;
    }
    Ok(0)
}

/// The sequence number of the line starting at `start`.
fn seq_at(file: &dyn ReadFile, start: u64) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, start)?;
    Ok(journal::line_seq(&buf[..n]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::SimFs;
    use crate::record::{EventKind, Record};
    use time::OffsetDateTime;

    fn rec(v: u64) -> Record<u64> {
        let now = OffsetDateTime::UNIX_EPOCH;
        Record {
            id: uuid::Uuid::nil(),
            version: v,
            created_at: now,
            updated_at: now,
            archived: false,
            data: v,
        }
    }

    /// A journal of events 1..=n, with events 4..=6 (if there) as one batch line.
    fn journal(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut seq = 1;
        while seq <= n {
            if seq == 4 && n >= 6 {
                let recs = [rec(4), rec(5), rec(6)];
                journal::encode_batch(4, recs.iter().map(|r| (EventKind::Updated, r)), &mut buf)
                    .unwrap();
                seq = 7;
            } else {
                journal::encode(seq, EventKind::Updated, &rec(seq), &mut buf).unwrap();
                seq += 1;
            }
        }
        buf
    }

    #[test]
    fn binary_search_finds_what_a_scan_finds() {
        let fs = SimFs::new();
        let path = Path::new("/d/j");
        let bytes = journal(40);
        fs.put(path, &bytes);
        let file = fs.open_file(path).unwrap().unwrap();
        for seq in 0..45 {
            for len in [bytes.len(), bytes.len() / 2, 0] {
                let prefix = &bytes[..journal::offset_after(&bytes, u64::MAX).min(len)];
                // Only whole lines: cut at the last newline within `len`.
                let whole = prefix
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                let want = journal::offset_after(&bytes[..whole], seq) as u64;
                let got = first_line_after(&*file, whole as u64, seq).unwrap();
                assert_eq!(got, want, "seq {seq}, len {whole}");
            }
        }
    }

    #[test]
    fn reads_from_any_point_including_inside_a_batch() {
        let fs = SimFs::new();
        let path = Path::new("/d/j");
        fs.put(path, &journal(40));
        let file = fs.open_file(path).unwrap().unwrap();
        for after in 0..40 {
            for max in [1, 3, 100] {
                let got = read_file::<u64>(&file, after, max, 40).unwrap();
                let want: Vec<u64> = (after + 1..=40).take(max).collect();
                let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
                assert_eq!(seqs, want, "after {after}, max {max}");
            }
        }
        // Nothing past `upto`, and a line still being written is not read.
        let seqs: Vec<u64> = read_file::<u64>(&file, 30, 100, 33)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        assert_eq!(seqs, [31, 32, 33]);
        let mut torn = journal(10);
        torn.truncate(torn.len() - 3);
        fs.put(path, &torn);
        let file = fs.open_file(path).unwrap().unwrap();
        let got = read_file::<u64>(&file, 7, 100, 100).unwrap();
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), [8, 9]);
    }

    #[test]
    fn retired_journals_are_named_read_in_order_and_pruned_by_size() {
        let fs = Arc::new(SimFs::new());
        let dir = Path::new("/d");
        let keep = FeedHistory {
            max_age: Duration::from_secs(3600),
            max_bytes: 10 << 20,
        };
        let h = History::new(fs.clone(), dir, &dir.join("s.journal"), keep);
        // Three generations: 1..=10, then 8..=20 (overlapping), then 21..=25 live.
        let all = journal(25);
        let cut = |from: u64, to: u64| -> Vec<u8> {
            let a = journal::offset_after(&all, from - 1);
            let b = journal::offset_after(&all, to);
            all[a..b].to_vec()
        };
        fs.put(&dir.join("s.journal"), &cut(1, 10));
        h.retire(10).unwrap();
        h.retire(10).unwrap(); // twice: one name
        fs.put(&dir.join("s.journal.tmp"), &cut(8, 20));
        fs.rename(&dir.join("s.journal.tmp"), &dir.join("s.journal"))
            .unwrap();
        h.retire(20).unwrap();
        fs.put(&dir.join("s.journal.tmp"), &cut(21, 25));
        fs.rename(&dir.join("s.journal.tmp"), &dir.join("s.journal"))
            .unwrap();
        assert_eq!(h.retired().unwrap().len(), 2);
        for after in 0..25 {
            let got = h.read::<u64>(after, 100, 25).unwrap();
            let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, (after + 1..=25).collect::<Vec<_>>(), "after {after}");
        }
        assert!(h.read::<u64>(25, 10, 25).unwrap().is_empty());

        // Over the size limit, the oldest goes first; then its events are too old.
        let h = History::new(
            fs.clone(),
            dir,
            &dir.join("s.journal"),
            FeedHistory {
                max_bytes: cut(8, 20).len() as u64,
                ..keep
            },
        );
        assert_eq!(h.prune().unwrap(), 1);
        assert!(matches!(
            h.read::<u64>(2, 10, 25),
            Err(StoreError::TooOld {
                requested: 2,
                oldest_available: 8
            })
        ));
        assert_eq!(h.read::<u64>(7, 1, 25).unwrap()[0].seq, 8);
        // With no age allowed, everything retired goes; the live journal remains.
        let h = History::new(
            fs.clone(),
            dir,
            &dir.join("s.journal"),
            FeedHistory {
                max_age: Duration::ZERO,
                ..keep
            },
        );
        assert_eq!(h.prune().unwrap(), 1);
        assert!(h.read::<u64>(19, 10, 25).is_err());
        assert_eq!(h.read::<u64>(20, 10, 25).unwrap().len(), 5);
    }
}
