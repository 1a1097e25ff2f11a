//! Lists: sort orders, filters, pages and opaque cursors.

use std::fmt;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;
use crate::record::{IndexKey, Record};

/// The order of a list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortKey {
    /// By id. With the default time-ordered (v7) ids this is also creation order.
    #[default]
    Id,
    /// By creation time (ties broken by id).
    CreatedAt,
    /// By a declared index (ties broken by id). The index should give one key per record.
    Index(String),
}

impl SortKey {
    fn name(&self) -> &str {
        match self {
            SortKey::Id => "id",
            SortKey::CreatedAt => "created_at",
            SortKey::Index(name) => name,
        }
    }
}

/// A record predicate used by [`Query::filter`].
pub type Filter<T> = Arc<dyn Fn(&Record<T>) -> bool + Send + Sync>;

/// How many records one [`Store::list`](crate::Store::list) call examines at most, unless
/// [`Query::budget`] says otherwise: a few milliseconds of work.
pub const DEFAULT_BUDGET: usize = 10_000;

/// A condition on a declared index: the record has a key of index `name` within `lo..hi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IndexRange {
    pub name: String,
    pub lo: Bound<IndexKey>,
    pub hi: Bound<IndexKey>,
}

impl IndexRange {
    pub fn contains(&self, key: &IndexKey) -> bool {
        (self.lo.as_ref(), self.hi.as_ref()).contains(key)
    }
}

/// What to list: order, page size, where to continue, and which records qualify.
///
/// A list walks the chosen order from the cursor and stops after `limit` matches, so a page
/// costs O(log n + records examined). An index condition ([`Query::index_eq`],
/// [`Query::index_range`]) with few matches (at most the budget) collects and orders just
/// those; with more, the walk checks it like a filter.
///
/// Every call examines at most [`Query::budget`] records (default [`DEFAULT_BUDGET`]). When
/// the budget runs out first, the page holds the matches found so far (possibly none) and a
/// cursor that goes on from the last record examined, the way DynamoDB's `Limit` and
/// `LastEvaluatedKey` work: a page with fewer than `limit` items is the last one only if it
/// has no cursor. So no query costs more than the budget, however rare its matches.
pub struct Query<T> {
    pub(crate) sort: SortKey,
    pub(crate) descending: bool,
    pub(crate) limit: usize,
    pub(crate) cursor: Option<String>,
    pub(crate) include_archived: bool,
    pub(crate) filter: Option<Filter<T>>,
    pub(crate) index: Option<IndexRange>,
    pub(crate) budget: usize,
}

impl<T> fmt::Debug for Query<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Query")
            .field("sort", &self.sort)
            .field("descending", &self.descending)
            .field("limit", &self.limit)
            .field("cursor", &self.cursor)
            .field("include_archived", &self.include_archived)
            .field("filter", &self.filter.is_some())
            .field("index", &self.index)
            .field("budget", &self.budget)
            .finish()
    }
}

impl<T> Default for Query<T> {
    fn default() -> Self {
        Self {
            sort: SortKey::Id,
            descending: false,
            limit: 20,
            cursor: None,
            include_archived: false,
            filter: None,
            index: None,
            budget: DEFAULT_BUDGET,
        }
    }
}

impl<T> Query<T> {
    /// Everything live, by id, 20 per page.
    pub fn new() -> Self {
        Self::default()
    }
    /// Sets the order and its direction (default: by id, ascending).
    pub fn sort(mut self, key: SortKey, descending: bool) -> Self {
        self.sort = key;
        self.descending = descending;
        self
    }
    /// Sets the page size (at least 1).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.max(1);
        self
    }
    /// Continues after the page that returned this cursor.
    pub fn cursor(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }
    /// With `true`, archived records (tombstones) are listed too; by default they are not.
    pub fn include_archived(mut self, yes: bool) -> Self {
        self.include_archived = yes;
        self
    }
    /// Keeps only records for which `f` is true.
    pub fn filter(mut self, f: impl Fn(&Record<T>) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(f));
        self
    }
    /// Keeps only records whose index `index` holds `key`, found through the index. (One index
    /// condition per query: the last one set counts.)
    pub fn index_eq(mut self, index: impl Into<String>, key: impl Into<IndexKey>) -> Self {
        let key = key.into();
        self.index = Some(IndexRange {
            name: index.into(),
            lo: Bound::Included(key.clone()),
            hi: Bound::Included(key),
        });
        self
    }
    /// Keeps only records with a key of index `index` within `range` (such as
    /// `IndexKey::Int(100)..=IndexKey::Int(500)`), found through the index.
    pub fn index_range(
        mut self,
        index: impl Into<String>,
        range: impl RangeBounds<IndexKey>,
    ) -> Self {
        self.index = Some(IndexRange {
            name: index.into(),
            lo: range.start_bound().cloned(),
            hi: range.end_bound().cloned(),
        });
        self
    }
    /// Examines at most `records` records per call (at least 1; default [`DEFAULT_BUDGET`]).
    pub fn budget(mut self, records: usize) -> Self {
        self.budget = records.max(1);
        self
    }
}

/// The result of [`Store::list`](crate::Store::list): at most `limit` records, and where to go on.
#[derive(Debug)]
pub struct Page<T> {
    /// The records of this page, in order.
    pub items: Vec<Arc<Record<T>>>,
    /// Pass this to [`Query::cursor`] for the next page; `None` on the last page. A page cut
    /// short by the budget has a cursor even with fewer than `limit` items.
    pub next_cursor: Option<String>,
    /// Records examined to make this page (at most the query's budget).
    pub examined: usize,
}

/// A position in a sort order: the sort value and the id that breaks ties.
pub(crate) type Position = (IndexKey, Uuid);

#[derive(Deserialize)]
struct CursorData {
    s: String,
    d: bool,
    k: IndexKey,
    id: Uuid,
}

/// [`CursorData`] borrowed, for writing: the same JSON without copying the sort's name and key.
#[derive(Serialize)]
struct CursorRef<'a> {
    s: &'a str,
    d: bool,
    k: &'a IndexKey,
    id: &'a Uuid,
}

pub(crate) fn encode_cursor(sort: &SortKey, descending: bool, pos: &Position) -> String {
    let json = serde_json::to_vec(&CursorRef {
        s: sort.name(),
        d: descending,
        k: &pos.0,
        id: &pos.1,
    })
    .expect("cursor serializes");
    // One pass into one buffer: a `format!` per byte was a fifth of a page's cost.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = Vec::with_capacity(json.len() * 2);
    for b in json {
        hex.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
    String::from_utf8(hex).expect("hex digits are ASCII")
}

pub(crate) fn decode_cursor(
    sort: &SortKey,
    descending: bool,
    cursor: &str,
) -> Result<Position, StoreError> {
    let nibble = |h: u8| match h {
        b'0'..=b'9' => Some(h - b'0'),
        b'a'..=b'f' => Some(h - b'a' + 10),
        b'A'..=b'F' => Some(h - b'A' + 10),
        _ => None,
    };
    let pairs = cursor.as_bytes().chunks(2);
    let bytes = pairs
        .map(|p| match p {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or(StoreError::InvalidCursor)?;
    let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| StoreError::InvalidCursor)?;
    if data.s != sort.name() || data.d != descending {
        return Err(StoreError::InvalidCursor);
    }
    Ok((data.k, data.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_is_bound_to_its_order() {
        let pos = (IndexKey::Str("näme".into()), Uuid::now_v7());
        let c = encode_cursor(&SortKey::Index("name".into()), true, &pos);
        assert_eq!(
            decode_cursor(&SortKey::Index("name".into()), true, &c).unwrap(),
            pos
        );
        assert!(matches!(
            decode_cursor(&SortKey::Index("name".into()), false, &c),
            Err(StoreError::InvalidCursor)
        ));
        assert!(matches!(
            decode_cursor(&SortKey::Id, true, &c),
            Err(StoreError::InvalidCursor)
        ));
        for junk in ["", "zz", "abc", "7b7d", "7g"] {
            assert!(decode_cursor(&SortKey::Id, false, junk).is_err(), "{junk}");
        }
    }

    /// Cursors handed out before an upgrade still work after it: the text is the hex of this
    /// JSON, whatever writes it.
    #[test]
    fn the_cursor_text_is_stable() {
        let id = Uuid::parse_str("01900000-0000-7000-8000-000000000001").unwrap();
        let json = format!(r#"{{"s":"name","d":true,"k":{{"t":"Str","v":"tea"}},"id":"{id}"}}"#);
        let hex: String = json.bytes().map(|b| format!("{b:02x}")).collect();
        let pos = (IndexKey::Str("tea".into()), id);
        assert_eq!(
            encode_cursor(&SortKey::Index("name".into()), true, &pos),
            hex
        );
        let sort = SortKey::Index("name".into());
        assert_eq!(decode_cursor(&sort, true, &hex).unwrap(), pos);
        assert_eq!(
            decode_cursor(&sort, true, &hex.to_uppercase()).unwrap(),
            pos
        );
    }
}
