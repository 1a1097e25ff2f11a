//! JSON request bodies whose every failure is a problem+json with a precise message: 415 for a
//! non-JSON content type, 413 over the size limit, 400 for malformed JSON, 422 naming the field
//! for wrong types, missing or unknown fields.
//!
//! [`Body`] never fails as an extractor and reads nothing by itself: handlers authorize the
//! caller first and only then read the body (bounded in size and in time), so an anonymous
//! request learns nothing from body errors and cannot hold a connection open with a slow body.

use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest, http::header};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::problem::{ApiError, FieldError};

/// The default request body limit (bytes).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// The default time a whole request body may take to arrive.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Walks a JSON document and fails at the second occurrence of a key in any object, so that
/// `{"price":"-1","price":"2.00"}` is refused instead of the last key silently winning.
struct NoDuplicateKeys;

impl<'de> serde::Deserialize<'de> for NoDuplicateKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NoDuplicateKeys)
    }
}

/// The value of a repeated key: refuses it, so the error's path ends at that key.
struct Repeated;

impl<'de> serde::de::DeserializeSeed<'de> for Repeated {
    type Value = NoDuplicateKeys;
    fn deserialize<D: serde::Deserializer<'de>>(self, _: D) -> Result<Self::Value, D::Error> {
        Err(serde::de::Error::custom("duplicate key"))
    }
}

impl<'de> serde::de::Visitor<'de> for NoDuplicateKeys {
    type Value = NoDuplicateKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                map.next_value_seed(Repeated)?;
            } else {
                map.next_value::<NoDuplicateKeys>()?;
                seen.insert(key);
            }
        }
        Ok(NoDuplicateKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<NoDuplicateKeys>()?.is_some() {}
        Ok(NoDuplicateKeys)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(NoDuplicateKeys)
    }
}

/// Parses a JSON document into `T`, naming the failing field; a key repeated in an object is
/// refused too, naming it.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The common case, a good body, without tracking paths (a sixth of a create's
    // instructions); any failure is parsed again with them, for the error that names the
    // field. Both passes accept and refuse exactly the same documents.
    if serde_json::from_slice::<NoDuplicateKeys>(bytes).is_ok()
        && let Ok(value) = serde_json::from_slice::<T>(bytes)
    {
        return Ok(value);
    }
    parse_as::<NoDuplicateKeys>(bytes)?;
    parse_as(bytes)
}

fn parse_as<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
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

/// How request bodies are read: at most `limit` bytes, all of them within `timeout`.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Largest body, in bytes (413 past it).
    pub limit: usize,
    /// Time to receive the whole body once it is being read (408 past it): a client that
    /// announces a body and sends it slowly must not hold a connection for as long as it likes.
    pub timeout: Duration,
}

impl Default for BodyLimits {
    fn default() -> Self {
        Self {
            limit: DEFAULT_BODY_LIMIT,
            timeout: DEFAULT_BODY_TIMEOUT,
        }
    }
}

/// A request body, not read yet: handlers authorize the caller first and only then read it,
/// so an anonymous client can neither learn anything from body errors nor make the server wait
/// for a body (the connection is closed with the unread body).
pub struct Body {
    json: bool,
    declared: Option<u64>,
    limits: BodyLimits,
    payload: Payload,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Body")
            .field("json", &self.json)
            .field("declared", &self.declared)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Body {
    /// Reads the raw bytes of a JSON body: 415 if it is not JSON, 413 over the limit, 408 if it
    /// does not arrive in time, 400 if the connection fails.
    pub async fn bytes(mut self) -> Result<Bytes, ApiError> {
        if !self.json {
            return Err(ApiError::UnsupportedMediaType(
                "send the body as application/json".into(),
            ));
        }
        let too_large = || ApiError::PayloadTooLarge("the body is larger than the limit".into());
        if self.declared.is_some_and(|n| n > self.limits.limit as u64) {
            return Err(too_large());
        }
        let deadline = tokio::time::Instant::now() + self.limits.timeout;
        let mut body = BytesMut::new();
        loop {
            let chunk = match tokio::time::timeout_at(deadline, self.payload.next()).await {
                Err(_) => {
                    return Err(ApiError::RequestTimeout(format!(
                        "the body did not arrive within {} ms",
                        self.limits.timeout.as_millis()
                    )));
                }
                Ok(None) => return Ok(body.freeze()),
                Ok(Some(Err(e))) => {
                    return Err(ApiError::BadRequest(format!(
                        "could not read the body: {e}"
                    )));
                }
                Ok(Some(Ok(chunk))) => chunk,
            };
            if body.len() + chunk.len() > self.limits.limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
    }

    /// Reads the body as a JSON value.
    pub async fn value(self) -> Result<Value, ApiError> {
        parse(&self.bytes().await?)
    }

    /// Reads the body as `T`.
    pub async fn parse<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        parse(&self.bytes().await?)
    }
}

impl FromRequest for Body {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limits = req
            .app_data::<BodyLimits>()
            .or_else(|| {
                req.app_data::<actix_web::web::Data<BodyLimits>>()
                    .map(|d| d.get_ref())
            })
            .copied()
            .unwrap_or_default();
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok());
        std::future::ready(Ok(Body {
            json: is_json(req),
            declared,
            limits,
            payload: payload.take(),
        }))
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
        for (doc, field) in [
            (&br#"{"name":"a","name":"b","items":[]}"#[..], "name"),
            (
                br#"{"name":"a","items":[{"quantity":1,"quantity":2}]}"#,
                "items[0].quantity",
            ),
        ] {
            let e = parse::<Doc>(doc).unwrap_err();
            assert!(
                matches!(e, ApiError::Validation { ref errors, .. } if errors[0].field == field && errors[0].message == "duplicate key"),
                "{e:?}"
            );
        }
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
            body.value().await,
            Err(ApiError::UnsupportedMediaType(_))
        ));

        let (req, mut pl) = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/merge-patch+json"))
            .app_data(BodyLimits {
                limit: 4,
                ..BodyLimits::default()
            })
            .set_payload("{\"a\":1}")
            .to_http_parts();
        let body = Body::from_request(&req, &mut pl).await.unwrap();
        assert!(matches!(
            body.value().await,
            Err(ApiError::PayloadTooLarge(_))
        ));

        let (req, mut pl) = TestRequest::post()
            .insert_header((header::CONTENT_TYPE, "application/json; charset=utf-8"))
            .set_payload("{\"a\":1}")
            .to_http_parts();
        let body = Body::from_request(&req, &mut pl).await.unwrap();
        assert_eq!(body.value().await.unwrap()["a"], 1);
    }
}
