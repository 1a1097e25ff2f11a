//! JSON request bodies whose every failure is a problem+json with a precise message: 415 for a
//! non-JSON content type, 413 over the size limit, 400 for malformed JSON, 422 naming the field
//! for wrong types, missing or unknown fields.
//!
//! [`Body`] never fails as an extractor: handlers authorize the caller first and only then look
//! at the body, so an anonymous request learns nothing from body errors.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, http::header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::{ApiError, FieldError};

/// The default request body limit (bytes).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

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
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
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
    })?;
    // One document only: `{...} trailing` is malformed, not "the first part".
    de.end()
        .map_err(|e| ApiError::BadRequest(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A request body, read but not yet judged.
#[derive(Debug)]
pub struct Body {
    json: bool,
    bytes: Result<Bytes, ApiError>,
}

impl Body {
    /// The raw bytes of a JSON body (415/413/400 otherwise).
    pub fn bytes(&self) -> Result<&Bytes, ApiError> {
        if !self.json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        match &self.bytes {
            Ok(b) => Ok(b),
            Err(ApiError::PayloadTooLarge(m)) => Err(ApiError::PayloadTooLarge(m.clone())),
            Err(e) => Err(ApiError::BadRequest(e.to_string())),
        }
    }

    /// The body as a JSON value.
    pub fn value(&self) -> Result<Value, ApiError> {
        parse(self.bytes()?)
    }

    /// The body as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse(self.bytes()?)
    }
}

impl FromRequest for Body {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, actix_web::Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let bytes = Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(|e| match e.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => {
                    ApiError::PayloadTooLarge("the body is larger than the limit".into())
                }
                _ => ApiError::BadRequest(format!("could not read the body: {e}")),
            });
            Ok(Body { json, bytes })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
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
        let e =
            parse::<Doc>(br#"{"name":"a","items":[{"quantity":1},{"quantity":"x"}]}"#).unwrap_err();
        match e {
            ApiError::Validation { errors, .. } => {
                assert_eq!(errors[0].field, "items[1].quantity");
                assert!(errors[0].message.starts_with("invalid type"), "{errors:?}");
            }
            other => panic!("{other:?}"),
        }
        let e = parse::<Doc>(br#"{"name":"a","items":[],"extra":1}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::Validation { ref errors, .. } if errors[0].message.contains("unknown field"))
        );
        let e = parse::<Doc>(br#"{"name":"a""#).unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(ref m) if m.starts_with("malformed JSON")));
        let e = parse::<Doc>(br#"{"name":"a","items":[]} {}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::BadRequest(ref m) if m.contains("trailing")),
            "{e:?}"
        );
        let e = parse::<Doc>(br#"{"items":[]}"#).unwrap_err();
        assert!(
            matches!(e, ApiError::Validation { ref errors, .. } if errors[0].message.contains("missing field `name`"))
        );
    }

    #[actix_web::test]
    async fn body_checks_content_type_and_size() {
        use actix_web::test::TestRequest;
        let (req, mut pl) = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "text/plain"))
            .set_payload("{}")
            .to_http_parts();
        let body = Body::from_request(&req, &mut pl).await.unwrap();
        assert!(matches!(
            body.value(),
            Err(ApiError::UnsupportedMediaType(_))
        ));

        let (req, mut pl) = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/merge-patch+json"))
            .app_data(actix_web::web::PayloadConfig::new(4))
            .set_payload("{\"a\":1}")
            .to_http_parts();
        let body = Body::from_request(&req, &mut pl).await.unwrap();
        assert!(matches!(body.value(), Err(ApiError::PayloadTooLarge(_))));

        let (req, mut pl) = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
            .set_payload("{\"a\":1}")
            .to_http_parts();
        let body = Body::from_request(&req, &mut pl).await.unwrap();
        assert_eq!(body.value().unwrap()["a"], 1);
    }
}
