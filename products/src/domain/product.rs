//! What a product is, and the rules its fields obey ("parse, don't validate": a value of these
//! types is valid by construction).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use service_kit::{ApiError, FieldError};

use super::money::Money;

/// The longest name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A product name: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProductName(String);

impl ProductName {
    /// Validates a name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("must not be empty".into());
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(ProductName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
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
}

/// A validated partial update: at least one field.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProductPatch {
    /// New name.
    pub name: Option<ProductName>,
    /// New price.
    pub price: Option<Money>,
}

impl ProductPatch {
    /// Applies the patch to a product.
    pub fn apply(&self, current: &Product) -> Product {
        Product {
            name: self.name.clone().unwrap_or_else(|| current.name.clone()),
            price: self.price.unwrap_or(current.price),
            created_by_key: current.created_by_key.clone(),
        }
    }
}

fn name_field(value: &Value, errors: &mut Vec<FieldError>) -> Option<ProductName> {
    match value {
        Value::String(s) => ProductName::parse(s)
            .map_err(|m| errors.push(FieldError::new("name", m)))
            .ok(),
        _ => {
            errors.push(FieldError::new("name", "must be a string"));
            None
        }
    }
}

fn price_field(value: &Value, errors: &mut Vec<FieldError>) -> Option<Money> {
    let parsed = match value {
        Value::String(s) => s.trim().parse::<Money>().map_err(|e| e.to_string()),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => i64::try_from(u)
                .ok()
                .and_then(|u| u.checked_mul(100))
                .ok_or_else(|| super::money::MoneyError::TooLarge.to_string())
                .and_then(|c| Money::from_cents(c).map_err(|e| e.to_string())),
            (None, Some(_), _) => Err(super::money::MoneyError::Negative.to_string()),
            (_, _, Some(f)) => Money::from_f64(f).map_err(|e| e.to_string()),
            _ => Err(super::money::MoneyError::NotDecimal.to_string()),
        },
        _ => Err("must be a decimal number such as \"12.50\"".into()),
    };
    parsed
        .map_err(|m| errors.push(FieldError::new("price", m)))
        .ok()
}

/// Reads a JSON object's fields, refusing unknown ones.
fn fields<'a>(
    body: &'a Value,
    known: &[&str],
    errors: &mut Vec<FieldError>,
) -> Result<&'a serde_json::Map<String, Value>, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::invalid("body", "must be a JSON object"))?;
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(FieldError::new(
                key.clone(),
                format!("unknown field; expected {}", known.join(" or ")),
            ));
        }
    }
    Ok(obj)
}

fn validation(errors: Vec<FieldError>) -> ApiError {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Validation { detail, errors }
}

impl NewProduct {
    /// Validates a creation body, reporting every invalid field at once.
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let obj = fields(body, &["name", "price"], &mut errors)?;
        let name = match obj.get("name") {
            Some(v) => name_field(v, &mut errors),
            None => {
                errors.push(FieldError::new("name", "is required"));
                None
            }
        };
        let price = match obj.get("price") {
            Some(v) => price_field(v, &mut errors),
            None => {
                errors.push(FieldError::new("price", "is required"));
                None
            }
        };
        match (name, price) {
            (Some(name), Some(price)) if errors.is_empty() => Ok(NewProduct { name, price }),
            _ => Err(validation(errors)),
        }
    }
}

impl ProductPatch {
    /// Validates a patch body: `name` and/or `price`, nothing else.
    pub fn from_json(body: &Value) -> Result<Self, ApiError> {
        let mut errors = Vec::new();
        let obj = fields(body, &["name", "price"], &mut errors)?;
        let patch = ProductPatch {
            name: obj.get("name").and_then(|v| name_field(v, &mut errors)),
            price: obj.get("price").and_then(|v| price_field(v, &mut errors)),
        };
        if errors.is_empty() && patch.name.is_none() && patch.price.is_none() {
            errors.push(FieldError::new("body", "give name and/or price"));
        }
        if errors.is_empty() {
            Ok(patch)
        } else {
            Err(validation(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_errors(e: ApiError) -> Vec<(String, String)> {
        match e {
            ApiError::Validation { errors, .. } => {
                errors.into_iter().map(|e| (e.field, e.message)).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(ProductName::parse("  Tea  ").unwrap().as_str(), "Tea");
        assert!(ProductName::parse("   ").is_err());
        assert!(ProductName::parse(&"é".repeat(200)).is_ok());
        assert!(ProductName::parse(&"é".repeat(201)).is_err());
        assert!(ProductName::parse("a\u{7}b").is_err());
    }

    #[test]
    fn new_product_reports_every_field() {
        let p = NewProduct::from_json(&json!({"name": " Tea ", "price": "3.5"})).unwrap();
        assert_eq!((p.name.as_str(), p.price.cents()), ("Tea", 350));
        let p = NewProduct::from_json(&json!({"name": "Tea", "price": 3.5})).unwrap();
        assert_eq!(p.price.cents(), 350);
        let errs = field_errors(
            NewProduct::from_json(&json!({"name": "", "price": -1, "colour": "red"})).unwrap_err(),
        );
        let fields: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["colour", "name", "price"]);
        let errs = field_errors(NewProduct::from_json(&json!({})).unwrap_err());
        assert_eq!(errs.len(), 2);
        let errs =
            field_errors(NewProduct::from_json(&json!({"name": 5, "price": "1.234"})).unwrap_err());
        assert_eq!(errs[0], ("name".into(), "must be a string".into()));
        assert_eq!(
            errs[1],
            (
                "price".into(),
                "must have at most two fraction digits".into()
            )
        );
        assert!(NewProduct::from_json(&json!([1])).is_err());
    }

    #[test]
    fn patches_need_a_field() {
        let p = ProductPatch::from_json(&json!({"price": "1"})).unwrap();
        assert_eq!(p.price.unwrap().cents(), 100);
        assert!(p.name.is_none());
        assert!(ProductPatch::from_json(&json!({})).is_err());
        assert!(ProductPatch::from_json(&json!({"id": "x"})).is_err());
    }
}
