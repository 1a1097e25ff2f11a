//! What a product is, and the rules its fields obey ("parse, don't validate": a value of these
//! types is valid by construction).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use service_kit::{ApiError, FieldError};
use unicode_normalization::UnicodeNormalization;

use super::Money;

pub use products_api::{MAX_NAME_CHARS, MAX_STOCK};

/// A product name: 1 to 200 characters, no control characters, no white space at either end,
/// at least one visible character (see [`visible_text`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductName(String);

impl ProductName {
    /// Validates a name (see [`visible_text`]).
    pub fn parse(raw: &str) -> Result<Self, String> {
        visible_text(raw, MAX_NAME_CHARS).map(ProductName)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks text people type for others to read (a product name, an adjustment's reason): 1 to
/// `max` characters as sent, no control characters, no white space at either end, at least one
/// visible character; returns it normalised to NFC (so that the same text typed two ways is one
/// name). White space at the ends is refused rather than trimmed, so that the OpenAPI pattern
/// (`TEXT_PATTERN` in products-api) says exactly what is accepted.
pub fn visible_text(raw: &str, max: usize) -> Result<String, String> {
    let count = raw.chars().count();
    if count == 0 {
        return Err("must not be empty".into());
    }
    if count > max {
        return Err(format!("must be at most {max} characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    if raw.starts_with(char::is_whitespace) || raw.ends_with(char::is_whitespace) {
        return Err("must not start or end with white space".into());
    }
    if raw.chars().all(invisible) {
        return Err("must contain a visible character".into());
    }
    // Most names are already NFC (all ASCII ones are): the quick check answers that without
    // decomposing and recomposing every character.
    if unicode_normalization::is_nfc_quick(raw.chars()) == unicode_normalization::IsNormalized::Yes
    {
        return Ok(raw.to_owned());
    }
    Ok(raw.nfc().collect())
}

/// Characters that show nothing: white space and the format characters that render as nothing
/// (zero-width spaces and joiners, direction marks, word joiners, the byte-order mark, soft
/// hyphens, fillers).
fn invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
        )
}

/// A product as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Its name.
    pub name: ProductName,
    /// Its unit price.
    pub price: Money,
    /// The `Idempotency-Key` that created it, kept with it so that a retry finds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_key: Option<IdempotencyRecord>,
    /// Units in stock, if the product tracks stock (`None`: not tracked, never runs out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stock: Option<u64>,
    /// Units of `stock` held by reservations not yet committed or released.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reserved: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a stock change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StockRefusal {
    /// The product does not track stock: give it a stock first (PATCH with `If-Match`).
    #[error("the product does not track stock; set its stock first")]
    NotTracked,
    /// The change would leave fewer units than are reserved or none at all.
    #[error("the change would leave {available} units available {change}")]
    Negative {
        /// Units available now.
        available: u64,
        /// What was asked, in words.
        change: String,
    },
}

impl Product {
    /// Units that can still be reserved: stock minus reserved (`None` if not tracked).
    pub fn available(&self) -> Option<u64> {
        self.stock.map(|s| s.saturating_sub(self.reserved))
    }

    /// The product with `delta` units more (or fewer) in stock; refused if it does not track
    /// stock, or if fewer than the reserved units would be left.
    pub fn adjusted(&self, delta: i64) -> Result<Product, StockRefusal> {
        let stock = self.stock.ok_or(StockRefusal::NotTracked)?;
        let next = stock
            .checked_add_signed(delta)
            .filter(|n| *n >= self.reserved && *n <= MAX_STOCK)
            .ok_or_else(|| StockRefusal::Negative {
                available: self.available().unwrap_or(0),
                change: format!("minus {}", delta.unsigned_abs()),
            })?;
        Ok(Product {
            stock: Some(next),
            ..self.clone()
        })
    }
}

/// Who created a product with which key and which body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// The caller.
    pub owner: String,
    /// The key they sent.
    pub key: String,
    /// SHA-256 of the request body.
    pub fingerprint: String,
}

/// A validated creation request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewProduct {
    /// Name.
    pub name: ProductName,
    /// Price.
    pub price: Money,
    /// Starting stock, if tracked.
    pub stock: Option<u64>,
}

/// A validated partial update: at least one field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProductPatch {
    /// New name.
    pub name: Option<ProductName>,
    /// New price.
    pub price: Option<Money>,
    /// New stock: `Some(None)` stops tracking it, `Some(Some(n))` sets it.
    pub stock: Option<Option<u64>>,
}

impl ProductPatch {
    /// Applies the patch to a product; a stock below what is reserved is refused.
    pub fn apply(&self, current: &Product) -> Result<Product, StockRefusal> {
        let stock = self.stock.unwrap_or(current.stock);
        if current.reserved > 0 && stock.is_none_or(|s| s < current.reserved) {
            return Err(StockRefusal::Negative {
                available: current.available().unwrap_or(0),
                change: format!(
                    "with stock {}",
                    stock.map_or("untracked".to_owned(), |s| s.to_string())
                ),
            });
        }
        Ok(Product {
            name: self.name.clone().unwrap_or_else(|| current.name.clone()),
            price: self.price.unwrap_or(current.price),
            created_by_key: current.created_by_key.clone(),
            stock,
            reserved: current.reserved,
        })
    }
}

/// A request body's top-level fields, each as its raw JSON text, so that a number keeps the
/// exact digits the client sent (an `f64` would round `4.999999999999999999` to 5).
pub type RawFields = BTreeMap<String, Box<RawValue>>;

/// Reads a body as a JSON object of raw fields.
pub fn raw_fields(body: &[u8]) -> Result<RawFields, ApiError> {
    service_kit::json::parse::<RawFields>(body).map_err(|e| match e {
        // Not an object at all (a repeated key names its key and stays as it is).
        ApiError::Validation { ref errors, .. } if errors.iter().all(|e| e.field == "body") => {
            ApiError::invalid("body", "must be a JSON object")
        }
        other => other,
    })
}

fn name_field(raw: &RawValue, errors: &mut Vec<FieldError>) -> Option<ProductName> {
    match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::String(s)) => ProductName::parse(&s)
            .map_err(|m| errors.push(FieldError::new("name", m)))
            .ok(),
        _ => {
            errors.push(FieldError::new("name", "must be a string"));
            None
        }
    }
}

fn price_field(raw: &RawValue, errors: &mut Vec<FieldError>) -> Option<Money> {
    let text = raw.get().trim();
    let parsed = match text.as_bytes().first() {
        // A string: its content exactly, as documented ("12.50"; no spaces around it). A JSON
        // number is refused: most clients hold it as a binary float (0.57 sent as
        // 0.5700000000000001), and no schema can say which floats are exact cents.
        Some(b'"') => serde_json::from_str::<String>(text)
            .map_err(|e| e.to_string())
            .and_then(|s| s.parse::<Money>().map_err(|e| e.to_string())),
        _ => Err("must be a string holding a decimal number, such as \"12.50\"".into()),
    };
    parsed
        .map_err(|m| errors.push(FieldError::new("price", m)))
        .ok()
}

/// A stock: `null` (not tracked) or a whole number from 0 to [`MAX_STOCK`].
fn stock_field(raw: &RawValue, errors: &mut Vec<FieldError>) -> Option<Option<u64>> {
    let stock = match serde_json::from_str::<Value>(raw.get()) {
        Ok(Value::Null) => Some(None),
        // `10` or `10.0`: both are the integer 10 to JSON Schema.
        Ok(Value::Number(n)) => products_api::whole_number(&n)
            .filter(|w| (0..=i128::from(MAX_STOCK)).contains(w))
            .map(|w| Some(w as u64)),
        _ => None,
    };
    if stock.is_none() {
        errors.push(FieldError::new(
            "stock",
            format!("must be null or a whole number from 0 to {MAX_STOCK}"),
        ));
    }
    stock
}

/// Refuses fields other than `known`.
fn unknown_fields(fields: &RawFields, known: &[&str], errors: &mut Vec<FieldError>) {
    for key in fields.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.clone(),
                format!("unknown field; expected {}", known.join(" or ")),
            ));
        }
    }
}

impl NewProduct {
    /// Validates a creation body, reporting every invalid field at once.
    pub fn from_fields(fields: &RawFields) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        unknown_fields(fields, &["name", "price", "stock"], &mut errors);
        let stock = fields
            .get("stock")
            .and_then(|v| stock_field(v, &mut errors))
            .flatten();
        let name = match fields.get("name") {
            Some(v) => name_field(v, &mut errors),
            None => {
                errors.push(FieldError::new("name", "is required"));
                None
            }
        };
        let price = match fields.get("price") {
            Some(v) => price_field(v, &mut errors),
            None => {
                errors.push(FieldError::new("price", "is required"));
                None
            }
        };
        match (name, price) {
            (Some(name), Some(price)) if errors.is_empty() => Ok(NewProduct { name, price, stock }),
            _ => Err(ApiError::fields(errors)),
        }
    }
}

impl ProductPatch {
    /// Validates a patch body: any of `name`, `price` and `stock`, nothing else.
    pub fn from_fields(fields: &RawFields) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        unknown_fields(fields, &["name", "price", "stock"], &mut errors);
        let patch = ProductPatch {
            name: fields.get("name").and_then(|v| name_field(v, &mut errors)),
            price: fields
                .get("price")
                .and_then(|v| price_field(v, &mut errors)),
            stock: fields
                .get("stock")
                .and_then(|v| stock_field(v, &mut errors)),
        };
        if errors.is_empty() && patch == ProductPatch::default() {
            errors.push(FieldError::new("body", "give name, price and/or stock"));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(ApiError::fields(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn fields(v: Value) -> RawFields {
        raw_fields(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn field_errors(e: ApiError) -> Vec<(String, String)> {
        match e {
            ApiError::Validation { errors, .. } => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_bounded_and_not_padded() {
        assert_eq!(
            ProductName::parse("Green tea").unwrap().as_str(),
            "Green tea"
        );
        assert!(ProductName::parse("   ").is_err());
        for padded in ["  Tea", "Tea ", "Tea\u{3000}", "\u{A0}Tea"] {
            assert_eq!(
                ProductName::parse(padded),
                Err("must not start or end with white space".into()),
                "{padded:?}"
            );
        }
        assert!(ProductName::parse(&"é".repeat(200)).is_ok());
        assert!(ProductName::parse(&"é".repeat(201)).is_err());
        assert!(ProductName::parse("a\u{7}b").is_err());
        for invisible in [
            "\u{200B}",
            "\u{200B}\u{200D}\u{FEFF}",
            "\u{2060}",
            "\u{3164}",
        ] {
            assert_eq!(
                ProductName::parse(invisible),
                Err("must contain a visible character".into()),
                "{invisible:?}"
            );
        }
        // The same text typed decomposed (e + combining acute) is stored composed.
        assert_eq!(
            ProductName::parse("Cafe\u{301}").unwrap().as_str(),
            "Caf\u{e9}"
        );
    }

    /// Characters from every class the text rule names: letters, spaces, controls, invisible
    /// format characters, combining marks.
    fn text_char() -> impl Strategy<Value = char> {
        prop_oneof![
            Just('a'),
            Just('é'),
            Just('\u{301}'),
            Just(' '),
            Just('\u{A0}'),
            Just('\u{3000}'),
            Just('\u{2028}'),
            Just('\t'),
            Just('\n'),
            Just('\u{85}'),
            Just('\u{7F}'),
            Just('\u{200B}'),
            Just('\u{FEFF}'),
            Just('\u{AD}'),
            Just('\u{180E}'),
            Just('\u{1C}'),
            any::<char>(),
        ]
    }

    proptest! {
        /// The OpenAPI schema of a name (pattern and length) accepts exactly what the service
        /// accepts.
        #[test]
        fn the_text_schema_is_the_text_rule(chars in prop::collection::vec(text_char(), 0..8)) {
            let text: String = chars.into_iter().collect();
            let pattern = regex::Regex::new(products_api::TEXT_PATTERN).unwrap();
            let schema_valid = pattern.is_match(&text) && (1..=MAX_NAME_CHARS).contains(&text.chars().count());
            prop_assert_eq!(schema_valid, ProductName::parse(&text).is_ok(), "{:?}", text);
        }
    }

    #[test]
    fn the_text_schema_counts_characters_as_sent() {
        let pattern = regex::Regex::new(products_api::TEXT_PATTERN).unwrap();
        let long = "é".repeat(MAX_NAME_CHARS);
        assert!(pattern.is_match(&long) && ProductName::parse(&long).is_ok());
        let longer = format!("{long}a");
        assert!(ProductName::parse(&longer).is_err());
    }

    #[test]
    fn new_product_reports_every_field() {
        let p = NewProduct::from_fields(&fields(json!({"name": "Tea", "price": "3.5"}))).unwrap();
        assert_eq!((p.name.as_str(), p.price.cents()), ("Tea", 350));
        // A price is a string: a JSON number is refused, whatever its digits (a client holding
        // it as a float could not send exact cents).
        for number in [&b"3.5"[..], b"4.999999999999999999", b"12.50", b"1e2", b"5"] {
            let body = [&br#"{"name":"Tea","price":"#[..], number, b"}"].concat();
            let errs =
                field_errors(NewProduct::from_fields(&raw_fields(&body).unwrap()).unwrap_err());
            assert_eq!(errs[0].0, "price", "{}", String::from_utf8_lossy(number));
        }
        // Only the documented forms: no spaces inside the string.
        for spaced in [" 4.20", "4.20 ", "4. 20"] {
            let errs = field_errors(
                NewProduct::from_fields(&fields(json!({"name": "Tea", "price": spaced})))
                    .unwrap_err(),
            );
            assert_eq!(errs[0].0, "price", "{spaced:?}");
        }
        // A repeated key is refused, naming it, instead of the last one winning.
        let err = raw_fields(br#"{"name":"Tea","price":"-1","price":"2.00"}"#).unwrap_err();
        assert_eq!(
            field_errors(err),
            [("price".to_owned(), "duplicate key".to_owned())]
        );
        let errs = field_errors(
            NewProduct::from_fields(&fields(json!({"name": "", "price": -1, "colour": "red"})))
                .unwrap_err(),
        );
        let names: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["colour", "name", "price"]);
        let errs = field_errors(NewProduct::from_fields(&fields(json!({}))).unwrap_err());
        assert_eq!(errs.len(), 2);
        let errs = field_errors(
            NewProduct::from_fields(&fields(json!({"name": 5, "price": "1.234"}))).unwrap_err(),
        );
        assert_eq!(errs[0], ("name".into(), "must be a string".into()));
        assert_eq!(
            errs[1],
            (
                "price".into(),
                "must have at most two fraction digits".into()
            )
        );
        assert!(raw_fields(b"[1]").is_err());
        assert!(raw_fields(b"{\"price\": 1} x").is_err());
    }

    #[test]
    fn patches_need_a_field() {
        let p = ProductPatch::from_fields(&fields(json!({"price": "1"}))).unwrap();
        assert_eq!(p.price.unwrap().cents(), 100);
        assert!(p.name.is_none());
        assert!(ProductPatch::from_fields(&fields(json!({}))).is_err());
        assert!(ProductPatch::from_fields(&fields(json!({"id": "x"}))).is_err());
    }
}
