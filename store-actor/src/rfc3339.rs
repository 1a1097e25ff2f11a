//! RFC 3339 timestamps, for `#[serde(with = "store_actor::rfc3339")]`: the same text as
//! `time::serde::rfc3339`, written straight into a stack buffer when the offset is UTC (every
//! timestamp the store makes). `time`'s general formatter goes through `io::Write` into a new
//! `String` per value; every record has two timestamps, written into each journal line and
//! snapshot line, and a page of 20 products over HTTP has 40 (an eighth of the page's
//! instructions). Other offsets and all parsing are `time`'s own.

use serde::{Deserializer, Serializer};
use time::{OffsetDateTime, UtcOffset};

/// The longest text: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
pub const MAX_LEN: usize = 30;

/// The two digits of every number below 100: a table read instead of a division per digit.
const PAIRS: [[u8; 2]; 100] = {
    let mut pairs = [[0; 2]; 100];
    let mut i = 0;
    while i < 100 {
        pairs[i] = [b'0' + (i / 10) as u8, b'0' + (i % 10) as u8];
        i += 1;
    }
    pairs
};

/// Writes `t` as RFC 3339 if its offset is UTC and its year has four digits; `None` otherwise.
/// (`inline`: other crates' hot writers call it per timestamp.)
#[inline]
pub fn format_utc(t: &OffsetDateTime, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    if t.offset() != UtcOffset::UTC || !(0..10_000).contains(&t.year()) {
        return None;
    }
    let two = |buf: &mut [u8; MAX_LEN], at: usize, v: u32| {
        buf[at..at + 2].copy_from_slice(&PAIRS[v as usize % 100]);
    };
    let (year, month, day) = t.to_calendar_date();
    let year = year as u32;
    two(buf, 0, year / 100);
    two(buf, 2, year % 100);
    buf[4] = b'-';
    two(buf, 5, u32::from(u8::from(month)));
    buf[7] = b'-';
    two(buf, 8, u32::from(day));
    buf[10] = b'T';
    let (hour, minute, second, nanos) = t.to_hms_nano();
    two(buf, 11, u32::from(hour));
    buf[13] = b':';
    two(buf, 14, u32::from(minute));
    buf[16] = b':';
    two(buf, 17, u32::from(second));
    let mut len = 19;
    if nanos != 0 {
        // Nine digits (one, then four pairs), then the trailing zeros dropped (as `time` does).
        buf[19] = b'.';
        buf[20] = b'0' + (nanos / 100_000_000) as u8;
        let rest = nanos % 100_000_000;
        two(buf, 21, rest / 1_000_000);
        two(buf, 23, rest / 10_000 % 100);
        two(buf, 25, rest / 100 % 100);
        two(buf, 27, rest % 100);
        len = 29;
        while buf[len - 1] == b'0' {
            len -= 1;
        }
    }
    buf[len] = b'Z';
    Some(len + 1)
}

/// Serializes `t` as RFC 3339 (see the module documentation).
pub fn serialize<S: Serializer>(t: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match format_utc(t, &mut buf) {
        Some(len) => {
            serializer.serialize_str(std::str::from_utf8(&buf[..len]).expect("ASCII digits"))
        }
        None => time::serde::rfc3339::serialize(t, serializer),
    }
}

/// Appends `t` as a JSON string to `out`: the bytes `serde_json` writes for [`serialize`], and
/// its error for an instant RFC 3339 cannot express (an offset with seconds).
#[inline]
pub fn write_json(out: &mut Vec<u8>, t: &OffsetDateTime) -> serde_json::Result<()> {
    let mut buf = [0; MAX_LEN];
    match format_utc(t, &mut buf) {
        Some(len) => {
            out.push(b'"');
            out.extend_from_slice(&buf[..len]);
            out.push(b'"');
            Ok(())
        }
        None => {
            #[derive(serde::Serialize)]
            struct Rfc3339<'a>(#[serde(with = "self")] &'a OffsetDateTime);
            serde_json::to_writer(out, &Rfc3339(t))
        }
    }
}

/// Parses an RFC 3339 timestamp (`time`'s parser).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    time::serde::rfc3339::deserialize(deserializer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339;

    fn ours(t: &OffsetDateTime) -> String {
        #[derive(serde::Serialize)]
        struct W(#[serde(with = "super")] OffsetDateTime);
        serde_json::to_string(&W(*t)).unwrap()
    }

    proptest! {
        /// Byte for byte what `time` writes, for any instant from year 0 to 9999, any
        /// nanosecond (trailing zeros and all), UTC or not.
        #[test]
        fn the_same_text_as_time(
            secs in -62_167_219_200i64..253_402_300_799,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000, (0u32..1000).prop_map(|m| m * 1_000_000)],
            offset_minutes in prop_oneof![Just(0i16), -1439i16..1440],
        ) {
            let offset = UtcOffset::from_whole_seconds(i32::from(offset_minutes) * 60).unwrap();
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(offset);
            prop_assume!((0..10_000).contains(&t.year()));
            let expected = format!("\"{}\"", t.format(&Rfc3339).unwrap());
            prop_assert_eq!(ours(&t), expected);
        }
    }

    proptest! {
        /// [`write_json`] writes what `serde_json` writes through [`serialize`], or errs where
        /// it errs (an offset with seconds), for any instant.
        #[test]
        fn write_json_is_serde_json(
            secs in -62_167_219_200i64..253_402_300_799,
            nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
            offset in prop_oneof![3 => Just(0i32), 1 => -86_399i32..86_400],
        ) {
            let t = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                .replace_nanosecond(nanos).unwrap()
                .to_offset(UtcOffset::from_whole_seconds(offset).unwrap());
            #[derive(serde::Serialize)]
            struct W(#[serde(with = "super")] OffsetDateTime);
            let mut out = Vec::new();
            match serde_json::to_vec(&W(t)) {
                Ok(expected) => {
                    write_json(&mut out, &t).unwrap();
                    prop_assert_eq!(out, expected);
                }
                Err(_) => prop_assert!(write_json(&mut out, &t).is_err()),
            }
        }
    }

    #[test]
    fn parses_what_it_writes() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct W(#[serde(with = "super")] OffsetDateTime);
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_764_650_000_123_400_000).unwrap();
        let text = serde_json::to_string(&W(t)).unwrap();
        assert_eq!(text, "\"2025-12-02T04:33:20.1234Z\"");
        assert_eq!(serde_json::from_str::<W>(&text).unwrap(), W(t));
    }
}
