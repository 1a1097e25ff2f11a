//! A JSON body extractor whose every failure is a problem+json with a precise message: 415 for
//! a non-JSON content type, 413 over the size limit, 400 for malformed JSON, 422 naming the
//! field for wrong types, missing or unknown fields.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, http::header};
use serde::de::DeserializeOwned;

use crate::problem::{ApiError, FieldError};

/// The default request body limit (bytes).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// A JSON request body of type `T`.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T> Json<T> {
    /// The value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Whether the request says its body is JSON (`application/json` or `application/*+json`).
fn is_json(req: &HttpRequest) -> bool {
    let Some(ct) = req.headers().get(header::CONTENT_TYPE) else {
        return false;
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Parses a JSON document into `T`, naming the failing field.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ApiError::BadRequest(format!("malformed JSON: {inner}"))
            }
            _ => {
                // serde's message ends with " at line L column C": noise for field errors.
                let message = inner.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m)
                    .to_owned();
                let field = if path == "." { "body".to_owned() } else { path };
                ApiError::Validation {
                    detail: format!("{field}: {message}"),
                    errors: vec![FieldError::new(field, message)],
                }
            }
        }
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as application/json".into(),
                ));
            }
            let bytes = bytes
                .await
                .map_err(|e| match e.as_error::<PayloadError>() {
                    Some(PayloadError::Overflow) => {
                        ApiError::PayloadTooLarge("the body is larger than the limit".into())
                    }
                    _ => ApiError::BadRequest(format!("could not read the body: {e}")),
                })?;
            parse(&bytes).map(Json)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse::<Body>(br#"{"name":"a","items":[{"quantity":1},{"quantity":"x"}]}"#)
            .unwrap_err();
        match e {
            ApiError::Validation { errors, .. } => {
                assert_eq!(errors[0].field, "items[1].quantity");
                assert!(errors[0].message.starts_with("invalid type"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        let e = parse::<Body>(br#"{"name":"a","items":[],"extra":1}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::Validation { ref errors, .. } if errors[0].message.contains("unknown field"))
        );
        let e = parse::<Body>(br#"{"name":"a""#).unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(ref m) if m.starts_with("malformed JSON")));
        let e = parse::<Body>(br#"{"items":[]}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::Validation { ref errors, .. } if errors[0].message.contains("missing field `name`"))
        );
    }
}
