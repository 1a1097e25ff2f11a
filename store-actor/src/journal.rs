//! The journal: one checksummed JSON line per mutation, or per atomic batch of mutations.
//!
//! A line is `{"seq":N,"crc":C,"event":{"kind":...,"record":{...}}}\n` where `C` is the CRC-32
//! (IEEE, as computed by `crc32fast`) of the little-endian bytes of `N`
//! followed by the exact bytes of the `event` value. Lines are appended in sequence order with no
//! gaps; the event carries the whole record after the mutation, so replay is a series of puts.
//!
//! An atomic batch of two or more mutations ([`Store::batch`](crate::Store::batch)) is one line
//! too: `{"seq":N,"crc":C,"batch":[{"kind":...,"record":{...}},...]}\n`, whose events have the
//! sequence numbers `N`, `N+1`, ... in array order, and whose `C` covers the exact bytes of the
//! `batch` array. One line, one checksum: replay applies a batch wholly or not at all, a torn
//! batch is a torn line, and the next line's sequence number follows the batch's last one.
//! Single mutations (and batches of one) are written exactly as before, with no batch field.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error::{Result, StoreError};
use crate::record::{Event, EventKind, Record};

#[derive(Deserialize)]
struct Line<'a> {
    seq: u64,
    crc: u32,
    /// One mutation (absent on batch lines).
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    /// An atomic batch of mutations (absent on single-mutation lines).
    #[serde(borrow)]
    batch: Option<&'a RawValue>,
}

/// Where a record's JSON is within a line or a buffer: `start..start + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub len: usize,
}

/// What one journal line holds: one event, or the two or more events of an atomic batch (with
/// consecutive sequence numbers), each with where its record is in the line.
#[derive(Debug)]
pub(crate) struct Decoded<T>(Vec<(Event<T>, Span)>);

impl<T> Decoded<T> {
    /// The line's events, in sequence order.
    pub(crate) fn into_events(self) -> Vec<Event<T>> {
        self.0.into_iter().map(|(e, _)| e).collect()
    }
    fn first_seq(&self) -> u64 {
        self.0[0].0.seq
    }
    fn last_seq(&self) -> u64 {
        self.0[self.0.len() - 1].0.seq
    }
}

/// An event's body with its record left unparsed, to know where the record is.
#[derive(Deserialize)]
struct RawBody<'a> {
    kind: EventKind,
    #[serde(borrow)]
    record: &'a RawValue,
}

fn checksum(seq: u64, event: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(event);
    h.finalize()
}

/// Writes `{"kind":K,"record":R}` to `buf`; returns where `R`
/// is in `buf`.
fn encode_body<T: Serialize>(
    kind: EventKind,
    record: &Record<T>,
    buf: &mut Vec<u8>,
) -> Result<Span, serde_json::Error> {
    buf.extend_from_slice(b"{\"kind\":");
    buf.extend_from_slice(kind.json());
    buf.extend_from_slice(b",\"record\":");
    let start = buf.len();
    record.write_json(buf)?;
    let span = Span {
        start,
        len: buf.len() - start,
    };
    buf.push(b'}');
    Ok(span)
}

/// Puts `{"seq":N,"crc":C,"FIELD":` in front of the body at `buf[start..]` and ends the line;
/// returns the prefix's length (by which the body's spans move).
fn finish_line(seq: u64, field: &str, start: usize, buf: &mut Vec<u8>) -> usize {
    let crc = checksum(seq, &buf[start..]);
    // Written piece by piece rather than with `write!`: this runs for every journal line.
    let (mut seq_digits, mut crc_digits) = (itoa::Buffer::new(), itoa::Buffer::new());
    let parts: [&[u8]; 7] = [
        b"{\"seq\":",
        seq_digits.format(seq).as_bytes(),
        b",\"crc\":",
        crc_digits.format(crc).as_bytes(),
        b",\"",
        field.as_bytes(),
        b"\":",
    ];
    // At most 20 + 10 digits and 24 other bytes: built on the stack, then moved in at once.
    let mut prefix = [0u8; 64];
    let mut len = 0;
    for part in parts {
        prefix[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    }
    buf.splice(start..start, prefix[..len].iter().copied());
    buf.extend_from_slice(b"}\n");
    len
}

/// Appends the journal line for one mutation to `buf`; returns where the record's JSON is in
/// `buf`. On error `buf` may end in part of a line: the caller truncates it.
pub(crate) fn encode<T: Serialize>(
    seq: u64,
    kind: EventKind,
    record: &Record<T>,
    buf: &mut Vec<u8>,
) -> Result<Span, serde_json::Error> {
    // The body is serialized straight into `buf` (no temporary); the prefix, whose checksum is
    // only known afterwards, is then put in front of it.
    let start = buf.len();
    let span = encode_body(kind, record, buf)?;
    let moved = finish_line(seq, "event", start, buf);
    Ok(Span {
        start: span.start + moved,
        ..span
    })
}

/// Appends the one journal line of an atomic batch of `events` (at least two), whose sequence
/// numbers are `first_seq`, `first_seq + 1`, ... in order; returns where each record's JSON is
/// in `buf`. On error (the index of the event that did not serialize, and why) `buf` may end in
/// part of a line: the caller truncates it.
pub(crate) fn encode_batch<'r, T: Serialize + 'r>(
    first_seq: u64,
    events: impl IntoIterator<Item = (EventKind, &'r Record<T>)>,
    buf: &mut Vec<u8>,
) -> Result<Vec<Span>, (usize, serde_json::Error)> {
    // As in `encode`: the array is serialized in place, then the prefix is put in front.
    let start = buf.len();
    let mut spans = Vec::new();
    buf.push(b'[');
    for (i, (kind, record)) in events.into_iter().enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        spans.push(encode_body(kind, record, buf).map_err(|e| (i, e))?);
    }
    buf.push(b']');
    let moved = finish_line(first_seq, "batch", start, buf);
    for span in &mut spans {
        span.start += moved;
    }
    Ok(spans)
}

/// Decodes one journal line (without its newline): checksum first, then every event, so a
/// batch is returned whole or not at all.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<Decoded<T>, String> {
    let line: Line<'_> =
        serde_json::from_slice(bytes).map_err(|e| format!("not a journal line: {e}"))?;
    let (raw, is_batch) = match (line.event, line.batch) {
        (Some(event), None) => (event, false),
        (None, Some(batch)) => (batch, true),
        (None, None) => return Err("not a journal line: no event and no batch".to_owned()),
        (Some(_), Some(_)) => return Err("not a journal line: both event and batch".to_owned()),
    };
    let body = raw.get().as_bytes();
    let crc = checksum(line.seq, body);
    if crc != line.crc {
        return Err(format!(
            "checksum mismatch for sequence {} (stored {}, computed {crc})",
            line.seq, line.crc
        ));
    }
    let base = bytes.as_ptr() as usize;
    let event = |seq: u64, raw: RawBody<'_>| -> std::result::Result<(Event<T>, Span), String> {
        let json = raw.record.get();
        let record: Record<T> =
            serde_json::from_str(json).map_err(|e| format!("event does not parse: {e}"))?;
        let span = Span {
            start: json.as_ptr() as usize - base,
            len: json.len(),
        };
        Ok((
            Event {
                seq,
                kind: raw.kind,
                record: Arc::new(record),
            },
            span,
        ))
    };
    if !is_batch {
        let raw: RawBody<'_> =
            serde_json::from_slice(body).map_err(|e| format!("event does not parse: {e}"))?;
        return Ok(Decoded(vec![event(line.seq, raw)?]));
    }
    let bodies: Vec<RawBody<'_>> =
        serde_json::from_slice(body).map_err(|e| format!("batch does not parse: {e}"))?;
    if bodies.len() < 2 {
        return Err(format!(
            "a batch of {} events at sequence {} (a batch has at least two)",
            bodies.len(),
            line.seq
        ));
    }
    if line.seq.checked_add(bodies.len() as u64 - 1).is_none() {
        return Err(format!("a batch at sequence {} overflows", line.seq));
    }
    let events = bodies
        .into_iter()
        .enumerate()
        .map(|(i, raw)| event(line.seq + i as u64, raw))
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(Decoded(events))
}

/// The byte offset of the first line whose sequence number is above `seq` (the length of
/// `journal` if there is none). Reads only each line's `{"seq":N` prefix, which for a batch line
/// is its first event's: `seq` must not fall inside a batch, and it never does, because a
/// published state (which is what snapshots are written from) holds whole batches only.
#[cfg(test)]
pub(crate) fn offset_after(journal: &[u8], seq: u64) -> usize {
    let mut offset = 0;
    for line in journal.split_inclusive(|b| *b == b'\n') {
        if line_seq(line).unwrap_or(0) > seq {
            break;
        }
        offset += line.len();
    }
    offset
}

/// The sequence number a journal line starts with (its first event's, for a batch), read from
/// its `{"seq":N` prefix alone; `None` if it does not start so.
pub(crate) fn line_seq(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(b"{\"seq\":")?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// A damaged last line. Dropped at open: a torn write (no newline) was never acknowledged; a
/// whole line failing its checksum most likely was not either, but may have been (see
/// [`TornTail::complete`]), so it is logged as an error, counted, and kept as evidence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// 1-based line number of the damaged line.
    pub line: u64,
    /// Why the line could not be read: no newline (a torn write), a checksum mismatch, ...
    pub reason: String,
    /// Length of the journal up to (not including) the damaged line.
    pub valid_len: u64,
    /// The damaged line ends with a newline: it was written whole, so it may have been an
    /// acknowledged write damaged on disk since (the store cannot tell it from a torn write
    /// whose last bytes happened to arrive). A line without its newline is surely torn.
    pub complete: bool,
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

/// Reads a journal, handing every event after `after_seq` to `apply`, in order, with where its
/// record is in the file (an error from `apply` stops the replay).
///
/// A bad *last* line is reported as a [`TornTail`]; a bad line followed by anything is
/// [`StoreError::Corrupt`], as is a gap in sequence numbers. The events of a batch line are
/// handed over only once the whole line has been read and checked.
pub(crate) fn replay<T: DeserializeOwned>(
    reader: &mut dyn BufRead,
    path: &Path,
    after_seq: u64,
    mut apply: impl FnMut(Event<T>, Span) -> Result<()>,
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
            Ok(decoded) => {
                let (first, last) = (decoded.first_seq(), decoded.last_seq());
                let expected = prev_seq.map(|p| p + 1);
                match expected {
                    Some(e) if first != e => {
                        return Err(corrupt(
                            line_no,
                            format!("sequence gap: expected {e}, found {first}"),
                        ));
                    }
                    None if first > after_seq + 1 => {
                        return Err(corrupt(
                            line_no,
                            format!(
                                "sequence gap: the snapshot covers up to {after_seq} but the journal starts at {first}"
                            ),
                        ));
                    }
                    _ => {}
                }
                prev_seq = Some(last);
                out.last_seq = last.max(out.last_seq);
                for (event, span) in decoded.0 {
                    if event.seq > after_seq {
                        let at = Span {
                            start: offset as usize + span.start,
                            ..span
                        };
                        apply(event, at)?;
                    }
                }
                offset += n as u64;
                out.valid_len = offset;
            }
            Err(reason) => {
                out.torn_tail = Some(TornTail {
                    line: line_no,
                    reason,
                    valid_len: offset,
                    complete,
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
        let r = replay::<String>(&mut &bytes[..], Path::new("j"), after, |e, span| {
            // The span is where the record's JSON is in the file.
            let json = &bytes[span.start..span.start + span.len];
            assert_eq!(
                serde_json::from_slice::<Record<String>>(json).unwrap(),
                *e.record
            );
            seen.push(e.seq);
            Ok(())
        })?;
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
        let span = encode(u64::MAX, EventKind::Created, &rec(1), &mut buf).unwrap();
        let json = serde_json::to_string(&rec(1)).unwrap();
        assert_eq!(&buf[span.start..span.start + span.len], json.as_bytes());
        let line = std::str::from_utf8(&buf[8..]).unwrap();
        let body = r#"{"kind":"created","record":{"id":"00000000-0000-0000-0000-000000000000","version":1,"created_at":"1970-01-01T00:00:00Z","updated_at":"1970-01-01T00:00:00Z","data":"v1"}}"#;
        let crc = checksum(u64::MAX, body.as_bytes());
        assert_eq!(
            line,
            format!("{{\"seq\":{},\"crc\":{crc},\"event\":{body}}}\n", u64::MAX)
        );
        assert_eq!(&buf[..8], b"earlier\n");
        let mut events = decode::<String>(line.trim_end().as_bytes())
            .unwrap()
            .into_events();
        assert_eq!(events.len(), 1);
        let event = events.remove(0);
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
        let r = replay::<String>(&mut reader, Path::new("j"), 0, |e, _| {
            seen.push(e.seq);
            Ok(())
        })
        .unwrap();
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

    /// Singles 1 and 2, a batch of 3..=5, a single 6; returns the bytes and where the batch
    /// line starts and ends.
    fn with_batch() -> (Vec<u8>, usize, usize) {
        let mut buf = journal(2);
        let start = buf.len();
        let (a, b, c) = (rec(3), rec(4), rec(5));
        let events = [
            (EventKind::Created, &a),
            (EventKind::Updated, &b),
            (EventKind::Archived, &c),
        ];
        encode_batch(3, events, &mut buf).unwrap();
        let end = buf.len();
        encode(6, EventKind::Updated, &rec(6), &mut buf).unwrap();
        (buf, start, end)
    }

    #[test]
    fn a_batch_is_one_line_of_consecutive_events() {
        let (buf, start, end) = with_batch();
        let line = std::str::from_utf8(&buf[start..end]).unwrap();
        let body = |v: u64, kind: &str| {
            format!(
                r#"{{"kind":"{kind}","record":{{"id":"00000000-0000-0000-0000-000000000000","version":{v},"created_at":"1970-01-01T00:00:00Z","updated_at":"1970-01-01T00:00:00Z","data":"v{v}"}}}}"#
            )
        };
        let array = format!(
            "[{},{},{}]",
            body(3, "created"),
            body(4, "updated"),
            body(5, "archived")
        );
        let crc = checksum(3, array.as_bytes());
        assert_eq!(
            line,
            format!("{{\"seq\":3,\"crc\":{crc},\"batch\":{array}}}\n")
        );
        let mut kinds = Vec::new();
        let r = replay::<String>(&mut &buf[..], Path::new("j"), 0, |e, span| {
            let json = &buf[span.start..span.start + span.len];
            assert_eq!(
                serde_json::from_slice::<Record<String>>(json).unwrap(),
                *e.record
            );
            kinds.push((e.seq, e.kind, e.record.data.clone()));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            kinds.iter().map(|k| k.0).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6]
        );
        assert_eq!(kinds[2].1, EventKind::Created);
        assert_eq!(kinds[4], (5, EventKind::Archived, "v5".to_owned()));
        assert_eq!((r.last_seq, r.lines, r.valid_len), (6, 4, buf.len() as u64));
        // A snapshot never ends inside a batch: it covers all of it, or none.
        assert_eq!(run(&buf, 5).unwrap().1, vec![6]);
        assert_eq!(run(&buf, 2).unwrap().1, vec![3, 4, 5, 6]);
        assert_eq!(offset_after(&buf, 2), start);
        assert_eq!(offset_after(&buf, 5), end);
    }

    #[test]
    fn a_batch_cut_off_at_the_end_is_a_torn_tail_at_every_cut() {
        let (buf, start, end) = with_batch();
        for cut in start + 1..end {
            let (r, seen) = run(&buf[..cut], 0).unwrap();
            assert_eq!(seen, vec![1, 2], "cut at {cut}");
            let t = r.torn_tail.unwrap();
            assert_eq!((t.line, t.valid_len), (3, start as u64), "cut at {cut}");
            assert_eq!(r.last_seq, 2);
        }
    }

    #[test]
    fn a_damaged_batch_followed_by_more_lines_is_corruption() {
        let (buf, start, end) = with_batch();
        // Cut in the middle of the batch line, the line after it intact.
        let mut cut = buf[..(start + end) / 2].to_vec();
        cut.push(b'\n');
        cut.extend_from_slice(&buf[end..]);
        let err = run(&cut, 0).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { line: 3, .. }), "{err}");
        // One event of the batch changed: the line's checksum fails.
        let text = String::from_utf8(buf.clone()).unwrap();
        let damaged = text.replacen("\"v4\"", "\"v9\"", 1);
        let err = run(damaged.as_bytes(), 0).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { line: 3, ref reason, .. } if reason.contains("checksum")),
            "{err}"
        );
        // The batch's events count: a line after it must continue after its last one.
        let mut gap = buf[..end].to_vec();
        encode(4, EventKind::Updated, &rec(4), &mut gap).unwrap();
        let err = run(&gap, 0).unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { line: 4, ref reason, .. } if reason.contains("expected 6, found 4")),
            "{err}"
        );
        // A batch line without its batch is a gap too.
        let mut missing = buf[..start].to_vec();
        missing.extend_from_slice(&buf[end..]);
        assert!(matches!(
            run(&missing, 0),
            Err(StoreError::Corrupt { line: 3, .. })
        ));
    }

    #[test]
    fn malformed_batch_lines_are_damage() {
        let line = |seq: u64, field: &str, value: &str| {
            let crc = checksum(seq, value.as_bytes());
            format!("{{\"seq\":{seq},\"crc\":{crc},\"{field}\":{value}}}")
        };
        let one = r#"[{"kind":"created","record":{"id":"00000000-0000-0000-0000-000000000000","version":1,"created_at":"1970-01-01T00:00:00Z","updated_at":"1970-01-01T00:00:00Z","data":"x"}}]"#;
        for (bad, why) in [
            (line(1, "batch", "[]"), "at least two"),
            (line(1, "batch", one), "at least two"),
            (line(1, "batch", "{}"), "does not parse"),
            (line(1, "other", "{}"), "no event and no batch"),
        ] {
            let err = decode::<String>(bad.as_bytes()).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }
}
