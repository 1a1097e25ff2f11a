//! The snapshot: `NAME.json`, a valid JSON document with one record per line.
//!
//! ```text
//! {"format":"store-actor/2","seq":42,"count":2,"records":[
//! {"id":"…","version":3,…,"data":{…}},
//! {"id":"…","version":1,…,"data":{…}}
//! ],"crc":1234567890}
//! ```
//!
//! The first line is a header (format, the last sequence number the snapshot covers, the record
//! count); appending `]}` to it makes it a complete JSON document, which is how it is parsed.
//! Records follow one per line, so any JSON tool reads the file and a future index can point
//! at byte offsets. The last line carries the CRC-32 (IEEE, `crc32fast`) of every record line's
//! bytes, newlines and separators included: a flipped bit anywhere in a record is refused at
//! open (and by `store-actor verify`), even where the JSON still parses. Snapshots of format
//! `store-actor/1` (the same, ending `]}` without a checksum) are still read. A snapshot is only
//! ever replaced atomically (see [`write_atomic`]).

use std::io::{BufRead, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::fs::{Fs, ReadCursor, ReadFile, WriteFile};
use crate::journal::Span;
use crate::record::Record;

/// The format tag written in every snapshot header.
pub const FORMAT: &str = "store-actor/2";
/// The format before snapshots had a checksum (read, never written).
const FORMAT_V1: &str = "store-actor/1";

/// The last line of a snapshot of [`FORMAT`]: `],"crc":C}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Trailer {
    crc: u32,
}

fn checksum() -> crc32fast::Hasher {
    crc32fast::Hasher::new()
}

/// The last line of a snapshot whose record lines (each with its `,` and newline) hash to
/// `crc` with `crc32fast`, newline included: for tools that write a snapshot themselves.
pub fn trailer(crc: u32) -> String {
    format!("],\"crc\":{crc}}}\n")
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    seq: u64,
    count: u64,
    records: [(); 0],
}

/// What reading a snapshot found: the sequence number it covers, its record count and its size
/// in bytes (all 0 when there is no snapshot yet).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SnapshotInfo {
    pub seq: u64,
    pub count: u64,
    pub bytes: u64,
}

/// Reads a snapshot, handing each record, its line number and where its JSON is in the file to
/// `apply`. A missing file is an empty snapshot. Streams: one line in memory at a time.
pub(crate) fn read<T: DeserializeOwned>(
    file: Option<Arc<dyn ReadFile>>,
    path: &Path,
    mut apply: impl FnMut(Record<T>, u64, Span),
) -> Result<SnapshotInfo> {
    let Some(file) = file else {
        return Ok(SnapshotInfo::default());
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 16, ReadCursor::new(file));
    let corrupt = |line: u64, reason: String| StoreError::Corrupt {
        file: path.to_owned(),
        line,
        reason,
    };
    let mut buf = Vec::with_capacity(512);
    let mut read_line = |buf: &mut Vec<u8>| -> Result<usize> {
        buf.clear();
        reader
            .read_until(b'\n', buf)
            .map_err(|e| StoreError::io("read", path, e))
    };
    let mut bytes = read_line(&mut buf)? as u64;
    let mut header_doc = buf.trim_ascii_end().to_vec();
    header_doc.extend_from_slice(b"]}");
    let header: Header = serde_json::from_slice(&header_doc)
        .map_err(|e| corrupt(1, format!("bad snapshot header: {e}")))?;
    let checked = match header.format.as_str() {
        FORMAT => true,
        FORMAT_V1 => false,
        other => {
            return Err(corrupt(1, format!("unknown snapshot format {other:?}")));
        }
    };
    let mut crc = checksum();
    let mut line_no = 1u64;
    let mut count = 0u64;
    let mut closed = false;
    loop {
        let n = read_line(&mut buf)?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        line_no += 1;
        if closed {
            return Err(corrupt(
                line_no,
                "data after the end of the snapshot".into(),
            ));
        }
        let line = buf.trim_ascii_end();
        if line.starts_with(b"]") {
            closed = true;
            close(line, checked, &crc).map_err(|reason| corrupt(line_no, reason))?;
            continue;
        }
        crc.update(&buf);
        let last_record = count + 1 == header.count;
        let body = match (line.strip_suffix(b","), last_record) {
            (Some(b), false) => b,
            (None, true) => line,
            _ => {
                return Err(corrupt(
                    line_no,
                    "record separator does not match the header's count".into(),
                ));
            }
        };
        let record: Record<T> = serde_json::from_slice(body)
            .map_err(|e| corrupt(line_no, format!("record does not parse: {e}")))?;
        let span = Span {
            start: (bytes - n as u64) as usize,
            len: body.len(),
        };
        apply(record, line_no, span);
        count += 1;
    }
    if !closed {
        return Err(corrupt(
            line_no,
            "snapshot is truncated (no closing `]}`)".into(),
        ));
    }
    if count != header.count {
        return Err(corrupt(
            line_no,
            format!("header promises {} records, found {count}", header.count),
        ));
    }
    Ok(SnapshotInfo {
        seq: header.seq,
        count,
        bytes,
    })
}

/// Checks the closing line: `]}` for [`FORMAT_V1`]; for [`FORMAT`], `],"crc":C}` with `C` the
/// checksum of the record lines read.
fn close(line: &[u8], checked: bool, crc: &crc32fast::Hasher) -> std::result::Result<(), String> {
    if !checked {
        return if line == b"]}" {
            Ok(())
        } else {
            Err("the snapshot does not end with `]}`".into())
        };
    }
    let trailer: Trailer = line
        .strip_prefix(b"],")
        .map(|rest| [b"{".as_slice(), rest].concat())
        .and_then(|doc| serde_json::from_slice(&doc).ok())
        .ok_or("the snapshot's last line is not `],\"crc\":N}`")?;
    let computed = crc.clone().finalize();
    if trailer.crc != computed {
        return Err(format!(
            "checksum mismatch: the records hash to {computed}, the snapshot says {}; a record \
             was altered",
            trailer.crc
        ));
    }
    Ok(())
}

/// Writes a snapshot of `records` covering `seq` to `path`, atomically: temporary file, fsync,
/// rename, fsync of the directory. A crash at any point leaves either the old or the new
/// snapshot in place, never a partial one. `placed` learns where each record's JSON is in the
/// new file. Returns the snapshot's size in bytes.
pub(crate) fn write_atomic<T: Serialize>(
    fs: &dyn Fs,
    path: &Path,
    seq: u64,
    count: u64,
    records: impl Iterator<Item = Result<Arc<Record<T>>>>,
    mut placed: impl FnMut(&Record<T>, Span),
) -> Result<u64> {
    let tmp = path.with_extension("json.tmp");
    let dir = path.parent().unwrap_or(Path::new("."));
    let result = (|| {
        let file = fs
            .create(&tmp)
            .map_err(|e| StoreError::io("create", &tmp, e))?;
        let mut w = Writer {
            file,
            buf: Vec::with_capacity(1 << 16),
            len: 0,
        };
        let io = |e| StoreError::io("write", &tmp, e);
        let header = serde_json::to_string(&Header {
            format: FORMAT.into(),
            seq,
            count,
            records: [],
        })
        .expect("header serializes");
        writeln!(
            w.buf,
            "{}",
            header.strip_suffix("]}").expect("header ends with ]}")
        )
        .map_err(io)?;
        let mut written = 0u64;
        let mut crc = checksum();
        for r in records {
            let r = r?;
            let start = w.buf.len();
            r.write_json(&mut w.buf)
                .map_err(|e| StoreError::io("serialize", &tmp, e.into()))?;
            placed(
                &r,
                Span {
                    start: (w.len as usize) + start,
                    len: w.buf.len() - start,
                },
            );
            written += 1;
            w.buf
                .extend_from_slice(if written == count { b"\n" } else { b",\n" });
            crc.update(&w.buf[start..]);
            if w.buf.len() >= 1 << 16 {
                w.flush().map_err(io)?;
            }
        }
        assert_eq!(
            written, count,
            "snapshot record count must match the header"
        );
        w.buf.extend_from_slice(trailer(crc.finalize()).as_bytes());
        w.flush().map_err(io)?;
        // IMPORTANT: the data must be durable before the rename makes it the snapshot.
        w.file
            .sync()
            .map_err(|e| StoreError::io("fsync", &tmp, e))?;
        fs.rename(&tmp, path)
            .map_err(|e| StoreError::io("rename", &tmp, e))?;
        // IMPORTANT: and the rename itself must be durable before the journal is cut.
        fs.sync_dir(dir)
            .map_err(|e| StoreError::io("fsync", dir, e))?;
        Ok(w.len)
    })();
    if result.is_err() {
        let _ = fs.remove(&tmp);
    }
    result
}

struct Writer {
    file: Box<dyn WriteFile>,
    buf: Vec<u8>,
    len: u64,
}

/// Snapshot bytes written between intermediate syncs. One sync of a whole large snapshot at the
/// end would queue the journal's fsyncs behind it for tens of milliseconds; syncing as we go
/// keeps each flush small, so durable writes barely notice a compaction.
const SYNC_EVERY: u64 = 4 << 20;

impl Writer {
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.append(&self.buf)?;
        let before = self.len;
        self.len += self.buf.len() as u64;
        self.buf.clear();
        if before / SYNC_EVERY != self.len / SYNC_EVERY {
            self.file.sync()?;
        }
        Ok(())
    }
}
