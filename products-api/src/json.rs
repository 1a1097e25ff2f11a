//! A product's JSON written by hand, for the server's hot paths (a read, a list page).
//!
//! serde_json writes every key and every string value through its escaping loop, a byte at a
//! time, and a product has nine keys and five string values: over a third of a list page's
//! instructions. Here the keys are constants, each value is checked once for a byte JSON must
//! escape and copied whole, and the scalars are written into stack buffers. The text is byte
//! for byte what `serde_json::to_vec` makes of the same value (property tests below compare
//! the two), so the derived `Serialize` stays the definition of the wire form.

use time::OffsetDateTime;

use crate::Money;
use crate::wire::{ProductBody, ProductPage};

/// A product's fields, borrowed: what the server writes from a stored record without first
/// copying its name into a [`ProductBody`].
#[derive(Debug, Clone, Copy)]
pub struct ProductView<'a> {
    /// Its id.
    pub id: uuid::Uuid,
    /// Its name.
    pub name: &'a str,
    /// Its unit price.
    pub price: Money,
    /// Its version (the ETag).
    pub version: u64,
    /// Creation time.
    pub created_at: OffsetDateTime,
    /// Last change.
    pub updated_at: OffsetDateTime,
    /// Whether it is archived.
    pub archived: bool,
    /// Units in stock, if tracked.
    pub stock: Option<u64>,
    /// Units held by reservations.
    pub reserved: u64,
    /// Units that can still be ordered, if tracked.
    pub available: Option<u64>,
}

impl ProductView<'_> {
    /// Appends the product's JSON to `out`: the same bytes as `serde_json::to_writer` of the
    /// same [`ProductBody`], and the same error for a timestamp RFC 3339 cannot express (an
    /// offset with seconds).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(b"{\"id\":\"");
        out.extend_from_slice(
            self.id
                .hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"name\":");
        string(out, self.name);
        out.extend_from_slice(b",\"price\":\"");
        out.extend_from_slice(self.price.write_into(&mut [0; 24]).as_bytes());
        out.extend_from_slice(b"\",\"version\":");
        number(out, self.version);
        out.extend_from_slice(b",\"created_at\":");
        store_actor::rfc3339::write_json(out, &self.created_at)?;
        out.extend_from_slice(b",\"updated_at\":");
        store_actor::rfc3339::write_json(out, &self.updated_at)?;
        if self.archived {
            out.extend_from_slice(b",\"archived\":true");
        }
        out.extend_from_slice(b",\"stock\":");
        optional(out, self.stock);
        out.extend_from_slice(b",\"reserved\":");
        number(out, self.reserved);
        out.extend_from_slice(b",\"available\":");
        optional(out, self.available);
        out.push(b'}');
        Ok(())
    }
}

impl ProductBody {
    /// Its fields, borrowed.
    pub fn view(&self) -> ProductView<'_> {
        ProductView {
            id: self.id,
            name: &self.name,
            price: self.price,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            archived: self.archived,
            stock: self.stock,
            reserved: self.reserved,
            available: self.available,
        }
    }

    /// Appends this product's JSON to `out` (see [`ProductView::write_json`]).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        self.view().write_json(out)
    }
}

impl ProductPage {
    /// Appends this page's JSON to `out`: the same bytes (or error) as `serde_json::to_writer`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        write_page(
            out,
            self.items.iter().map(ProductBody::view),
            self.next_cursor.as_deref(),
            self.next.as_deref(),
        )
    }
}

/// Appends the JSON of a [`ProductPage`] of these items, cursor and next link to `out`, written
/// from borrowed products: the same bytes as the page's own [`ProductPage::write_json`].
pub fn write_page<'a>(
    out: &mut Vec<u8>,
    items: impl IntoIterator<Item = ProductView<'a>>,
    next_cursor: Option<&str>,
    next: Option<&str>,
) -> serde_json::Result<()> {
    out.extend_from_slice(b"{\"items\":[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        item.write_json(out)?;
    }
    out.push(b']');
    if let Some(cursor) = next_cursor {
        out.extend_from_slice(b",\"next_cursor\":");
        string(out, cursor);
    }
    if let Some(next) = next {
        out.extend_from_slice(b",\"next\":");
        string(out, next);
    }
    out.push(b'}');
    Ok(())
}

/// A JSON string: copied whole when no byte needs escaping (the control characters, `"` and
/// `\`, as serde_json escapes them), else serde_json's own escaping.
fn string(out: &mut Vec<u8>, s: &str) {
    // `fold`, not `any`: no early exit, so the check runs over whole words.
    let plain = s.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20 && b != b'"' && b != b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(out, s).expect("a string always serializes");
    }
}

fn number(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn optional(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => number(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::UtcOffset;
    use uuid::Uuid;

    use crate::Money;
    use crate::wire::{ProductBody, ProductPage};

    fn instant() -> impl Strategy<Value = OffsetDateTimeValue> {
        (
            -62_167_219_200i64..253_402_300_799,
            prop_oneof![Just(0u32), 0u32..1_000_000_000],
            prop_oneof![3 => Just(0i32), 1 => -86_399i32..86_400],
        )
    }
    type OffsetDateTimeValue = (i64, u32, i32);

    fn at((secs, nanos, offset): OffsetDateTimeValue) -> time::OffsetDateTime {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .replace_nanosecond(nanos)
            .unwrap()
            .to_offset(UtcOffset::from_whole_seconds(offset).unwrap())
    }

    prop_compose! {
        fn product()(
            id in any::<u128>(),
            // Any text: escapes, quotes, backslashes, controls, non-ASCII.
            name in prop_oneof![".{0,40}", "[a-z \"\\\\\u{0}-\u{1f}\u{7f}é✓]{0,20}"],
            cents in 0..=crate::money::MAX_CENTS,
            version: u64,
            created in instant(),
            updated in instant(),
            archived: bool,
            stock: Option<u64>,
            reserved: u64,
            available: Option<u64>,
        ) -> ProductBody {
            ProductBody {
                id: Uuid::from_u128(id),
                name,
                price: Money::from_cents(cents).unwrap(),
                version,
                created_at: at(created),
                updated_at: at(updated),
                archived,
                stock,
                reserved,
                available,
            }
        }
    }

    proptest! {
        /// Byte for byte what serde_json writes for any product, or an error where it errs.
        #[test]
        fn a_product_is_written_as_serde_writes_it(p in product()) {
            let mut ours = Vec::new();
            let written = p.write_json(&mut ours).map(|()| String::from_utf8(ours).unwrap());
            prop_assert_eq!(written.ok(), serde_json::to_string(&p).ok());
        }

        /// And a page: no items or some, with or without its next links, whatever they hold.
        #[test]
        fn a_page_is_written_as_serde_writes_it(
            items in prop::collection::vec(product(), 0..4),
            next_cursor in prop::option::of(".{0,20}"),
            next in prop::option::of("[/?=&a-z0-9\"\\\\\u{1}]{0,30}"),
        ) {
            let page = ProductPage { items, next_cursor, next };
            let mut ours = Vec::new();
            let written = page.write_json(&mut ours).map(|()| String::from_utf8(ours).unwrap());
            prop_assert_eq!(written.ok(), serde_json::to_string(&page).ok());
        }
    }
}
