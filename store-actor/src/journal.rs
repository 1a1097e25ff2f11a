//! The journal: one checksummed JSON line per mutation.
//!
//! A line is `{"seq":N,"crc":C,"event":{"kind":...,"record":{...}}}\n` where `C` is the CRC-32
//! (IEEE, as computed by `crc32fast`) of the little-endian bytes of `N`
//! followed by the exact bytes of the `event` value. Lines are appended in sequence order with no
//! gaps; the event carries the whole record after the mutation, so replay is a series of puts.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Result, StoreError};
use crate::record::{Event, EventKind, Record};

#[derive(Serialize)]
struct BodyRef<'a, T> {
    kind: EventKind,
    record: &'a Record<T>,
}

#[derive(Deserialize)]
struct Body<T> {
    kind: EventKind,
    record: Record<T>,
}

#[derive(Deserialize)]
struct Line<'a> {
    seq: u64,
    crc: u32,
    #[serde(borrow)]
    event: &'a RawValue,
}

fn checksum(seq: u64, event: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(event);
    h.finalize()
}

/// Appends the journal line for one mutation to `buf`. On error `buf` may end in part of a
/// line: the caller truncates it.
pub(crate) fn encode<T: Serialize>(
    seq: u64,
    kind: EventKind,
    record: &Record<T>,
    buf: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    // The body is serialized straight into `buf` (no temporary), behind room for the prefix,
    // whose checksum is only known afterwards; the prefix is then put in front of it.
    let start = buf.len();
    serde_json::to_writer(&mut *buf, &BodyRef { kind, record })?;
    let crc = checksum(seq, &buf[start..]);
    let mut prefix = [0u8; 64]; // at most 20 + 10 digits and 24 other bytes
    let mut rest = &mut prefix[..];
    write!(rest, "{{\"seq\":{seq},\"crc\":{crc},\"event\":").expect("the prefix fits");
    let len = 64 - rest.len();
    buf.splice(start..start, prefix[..len].iter().copied());
    buf.extend_from_slice(b"}\n");
    Ok(())
}

/// Decodes one journal line (without its newline).
fn decode<T: DeserializeOwned>(line: &[u8]) -> std::result::Result<Event<T>, String> {
    let line: Line<'_> =
        serde_json::from_slice(line).map_err(|e| format!("not a journal line: {e}"))?;
    let body = line.event.get().as_bytes();
    let crc = checksum(line.seq, body);
    if crc != line.crc {
        return Err(format!(
            "checksum mismatch for sequence {} (stored {}, computed {crc})",
            line.seq, line.crc
        ));
    }
    let body: Body<T> =
        serde_json::from_slice(body).map_err(|e| format!("event does not parse: {e}"))?;
    Ok(Event {
        seq: line.seq,
        kind: body.kind,
        record: Arc::new(body.record),
    })
}

/// The byte offset of the first line whose sequence number is above `seq` (the length of
/// `journal` if there is none). Reads only each line's `{"seq":N` prefix.
pub(crate) fn offset_after(journal: &[u8], seq: u64) -> usize {
    let mut offset = 0;
    for line in journal.split_inclusive(|b| *b == b'\n') {
        let line_seq = line
            .strip_prefix(b"{\"seq\":")
            .and_then(|rest| {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                std::str::from_utf8(&rest[..digits])
                    .ok()?
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0);
        if line_seq > seq {
            break;
        }
        offset += line.len();
    }
    offset
}

/// A damaged last line: safe to drop, because the mutation it held was never acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// 1-based line number of the damaged line.
    pub line: u64,
    /// Why the line could not be read: no newline (a torn write), a checksum mismatch, ...
    pub reason: String,
    /// Length of the journal up to (not including) the damaged line.
    pub valid_len: u64,
}

/// What reading a journal found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Highest sequence number seen (0 when the journal holds nothing after the snapshot).
    pub last_seq: u64,
    /// Lines read, including skipped ones.
    pub lines: u64,
    /// Length of the intact prefix: where a torn tail starts.
    pub valid_len: u64,
    /// A damaged last line, which opening drops.
    pub torn_tail: Option<TornTail>,
}

/// Reads a journal, handing every event after `after_seq` to `apply`, in order.
///
/// A bad *last* line is reported as a [`TornTail`]; a bad line followed by anything is
/// [`StoreError::Corrupt`], as is a gap in sequence numbers.
pub(crate) fn replay<T: DeserializeOwned>(
    reader: &mut dyn BufRead,
    path: &Path,
    after_seq: u64,
    mut apply: impl FnMut(Event<T>),
) -> Result<Replay> {
    let corrupt = |line: u64, reason: String| StoreError::Corrupt {
        file: path.to_owned(),
        line,
        reason,
    };
    let mut out = Replay::default();
    let mut buf = Vec::with_capacity(512);
    let mut prev_seq: Option<u64> = None;
    let mut offset = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| StoreError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        if let Some(t) = &out.torn_tail {
            // Something follows the bad line: it was not the tail, so this is real damage.
            return Err(corrupt(t.line, t.reason.clone()));
        }
        out.lines += 1;
        let line_no = out.lines;
        let complete = buf.last() == Some(&b'\n');
        let parsed = if complete {
            decode::<T>(&buf[..buf.len() - 1])
        } else {
            Err("incomplete line (no newline): torn write".to_owned())
        };
        match parsed {
            Ok(event) => {
                let expected = prev_seq.map(|p| p + 1);
                match expected {
                    Some(e) if event.seq != e => {
                        return Err(corrupt(
                            line_no,
                            format!("sequence gap: expected {e}, found {}", event.seq),
                        ));
                    }
                    None if event.seq > after_seq + 1 => {
                        return Err(corrupt(
                            line_no,
                            format!(
                                "sequence gap: the snapshot covers up to {after_seq} but the journal starts at {}",
                                event.seq
                            ),
                        ));
                    }
                    _ => {}
                }
                prev_seq = Some(event.seq);
                out.last_seq = event.seq.max(out.last_seq);
                if event.seq > after_seq {
                    apply(event);
                }
                offset += n as u64;
                out.valid_len = offset;
            }
            Err(reason) => {
                out.torn_tail = Some(TornTail {
                    line: line_no,
                    reason,
                    valid_len: offset,
                });
                if !complete {
                    // That was the end of the file as it was then. A reader without the lock
                    // must stop here: the writer may be completing that very line.
                    break;
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;
    use uuid::Uuid;

    fn rec(v: u64) -> Record<String> {
        Record {
            id: Uuid::nil(),
            version: v,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
            archived: false,
            data: format!("v{v}"),
        }
    }

    fn journal(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for s in 1..=n {
            encode(s, EventKind::Updated, &rec(s), &mut buf).unwrap();
        }
        buf
    }

    fn run(bytes: &[u8], after: u64) -> Result<(Replay, Vec<u64>)> {
        let mut seen = Vec::new();
        let r = replay::<String>(&mut &bytes[..], Path::new("j"), after, |e| seen.push(e.seq))?;
        Ok((r, seen))
    }

    #[test]
    fn round_trips_and_skips_what_the_snapshot_covers() {
        let (r, seen) = run(&journal(5), 2).unwrap();
        assert_eq!(seen, vec![3, 4, 5]);
        assert_eq!(r.last_seq, 5);
        assert!(r.torn_tail.is_none());
    }

    #[test]
    fn a_line_is_seq_crc_then_the_event_and_appends_to_what_is_there() {
        let mut buf = b"earlier\n".to_vec();
        encode(u64::MAX, EventKind::Created, &rec(1), &mut buf).unwrap();
        let line = std::str::from_utf8(&buf[8..]).unwrap();
        let body = r#"{"kind":"created","record":{"id":"00000000-0000-0000-0000-000000000000","version":1,"created_at":"1970-01-01T00:00:00Z","updated_at":"1970-01-01T00:00:00Z","data":"v1"}}"#;
        let crc = checksum(u64::MAX, body.as_bytes());
        assert_eq!(
            line,
            format!("{{\"seq\":{},\"crc\":{crc},\"event\":{body}}}\n", u64::MAX)
        );
        assert_eq!(&buf[..8], b"earlier\n");
        let event = decode::<String>(line.trim_end().as_bytes()).unwrap();
        assert_eq!((event.seq, event.record.data.as_str()), (u64::MAX, "v1"));
    }

    #[test]
    fn offset_after_finds_the_first_later_line() {
        let j = journal(4);
        let lines: Vec<usize> = j
            .split_inclusive(|b| *b == b'\n')
            .map(|l| l.len())
            .collect();
        assert_eq!(offset_after(&j, 0), 0);
        assert_eq!(offset_after(&j, 2), lines[0] + lines[1]);
        assert_eq!(offset_after(&j, 4), j.len());
        assert_eq!(offset_after(&j, 99), j.len());
    }

    #[test]
    fn torn_last_line_is_reported_not_fatal() {
        let full = journal(3);
        let cut = &full[..full.len() - 7];
        let (r, seen) = run(cut, 0).unwrap();
        assert_eq!(seen, vec![1, 2]);
        let t = r.torn_tail.unwrap();
        assert_eq!(t.line, 3);
        assert_eq!(r.valid_len, t.valid_len);
        assert!(t.valid_len < cut.len() as u64);
    }

    /// A journal read while the flusher appends to it: EOF inside a line, then the rest.
    struct Growing(std::collections::VecDeque<Vec<u8>>);
    impl std::io::Read for Growing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let chunk = self.0.pop_front().unwrap_or_default();
            buf[..chunk.len()].copy_from_slice(&chunk);
            Ok(chunk.len())
        }
    }

    #[test]
    fn a_line_being_appended_while_read_is_a_torn_tail_not_corruption() {
        let full = journal(3);
        let cut = full.len() - 7;
        let chunks = [full[..cut].to_vec(), Vec::new(), full[cut..].to_vec()];
        let mut reader = std::io::BufReader::new(Growing(chunks.into()));
        let mut seen = Vec::new();
        let r = replay::<String>(&mut reader, Path::new("j"), 0, |e| seen.push(e.seq)).unwrap();
        assert_eq!(seen, vec![1, 2]);
        assert_eq!(r.torn_tail.map(|t| t.line), Some(3));
    }

    #[test]
    fn checksum_mismatch_in_the_middle_is_corruption() {
        let mut bytes = journal(3);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let pos = text.find("\"v1\"").unwrap();
        bytes[pos + 2] = b'9';
        let err = run(&bytes, 0).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { line: 1, ref reason, .. } if reason.contains("checksum")),
            "{err}"
        );
    }

    #[test]
    fn sequence_gap_is_corruption() {
        let mut buf = Vec::new();
        encode(1, EventKind::Created, &rec(1), &mut buf).unwrap();
        encode(3, EventKind::Updated, &rec(3), &mut buf).unwrap();
        let err = run(&buf, 0).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { line: 2, .. }), "{err}");
        // A journal starting after the snapshot's sequence + 1 has lost events too.
        let err = run(&journal(3)[..], 0).map(|_| ());
        assert!(err.is_ok());
        let mut late = Vec::new();
        encode(5, EventKind::Updated, &rec(5), &mut late).unwrap();
        assert!(matches!(
            run(&late, 3),
            Err(StoreError::Corrupt { line: 1, .. })
        ));
    }
}
