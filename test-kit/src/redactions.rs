//! The insta redactions of every suite: what changes from run to run (ids, timestamps, cursors)
//! and who ran it (owners), so that one snapshot holds for any run and any user.

/// Each redacted path with its placeholder.
const REDACTIONS: &[(&str, &str)] = &[
    (".id", "[id]"),
    (".owner", "[owner]"),
    (".created_at", "[created_at]"),
    (".updated_at", "[updated_at]"),
    (".next_cursor", "[next_cursor]"),
    (".next", "[next]"),
    // A page of products or orders.
    (".items[].id", "[id]"),
    (".items[].owner", "[owner]"),
    (".items[].created_at", "[created_at]"),
    (".items[].updated_at", "[updated_at]"),
    // A stock adjustment.
    (".product_id", "[product_id]"),
    // An order's lines, alone or in a page.
    (".items[].product_id", "[product_id]"),
    (".items[].items[].product_id", "[product_id]"),
    // A products lookup.
    (".products[].id", "[products.id]"),
    (".products[].created_at", "[products.created_at]"),
    (".products[].updated_at", "[products.updated_at]"),
    (".unknown[]", "[unknown]"),
    (".archived[]", "[archived]"),
    // An orders change-feed event.
    (".order.id", "[id]"),
    (".order.owner", "[owner]"),
    (".order.created_at", "[created_at]"),
    (".order.updated_at", "[updated_at]"),
    (".order.items[].product_id", "[product_id]"),
    // Problems naming products.
    (".unknown_product_ids[]", "[product_id]"),
    (".archived_product_ids[]", "[product_id]"),
];

/// insta settings with every redaction.
pub fn redactions() -> insta::Settings {
    let mut settings = insta::Settings::clone_current();
    for (path, placeholder) in REDACTIONS {
        settings.add_redaction(path, *placeholder);
    }
    settings
}
