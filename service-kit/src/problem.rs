//! Errors as `application/problem+json` (RFC 9457): one [`ApiError`] type for every handler,
//! one table from error kind to status, stable `type` URI and title.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Map, Value};
use store_actor::StoreError;
use utoipa::ToSchema;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// A stable URI naming the kind of problem, e.g. `urn:shop:problem:not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong this time, for humans.
    pub detail: String,
    /// Field-level errors of a validation failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Extension members (e.g. the ids a request named that do not exist).
    #[serde(flatten)]
    pub extensions: Map<String, Value>,
}

// What `Problem` documents: its members and, named one by one, the extension members some
// problems carry (so that a generated client gets a type every body satisfies, not `allOf` an
// empty object).
/// An error body (RFC 9457), sent as `application/problem+json`.
#[derive(ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)] // Only its schema is used.
struct ProblemSchema {
    /// A stable URI naming the kind of problem, e.g. `urn:shop:problem:not-found`.
    #[serde(rename = "type")]
    #[schema(example = "urn:shop:problem:not-found")]
    kind: String,
    /// A short summary of the kind.
    #[schema(example = "Not found")]
    title: String,
    /// The HTTP status code.
    #[schema(minimum = 400, maximum = 599, example = 404)]
    status: u16,
    /// What went wrong this time, for humans.
    #[schema(example = "no product 0193a1c2-7d2e-7c3b-9f00-5a1e2b3c4d5e")]
    detail: String,
    /// Field-level errors of a validation failure (422, and 400 for a query parameter).
    #[schema(nullable = false)]
    errors: Option<Vec<FieldError>>,
    /// Out of stock (409): each line that could not be held.
    #[schema(nullable = false)]
    lines: Option<Vec<ShortLine>>,
    /// Products named by an order that do not exist (422).
    #[schema(nullable = false)]
    unknown_product_ids: Option<Vec<uuid::Uuid>>,
    /// Archived products named by an order (422).
    #[schema(nullable = false)]
    archived_product_ids: Option<Vec<uuid::Uuid>>,
}

/// A line that could not be held, in the `lines` of an out-of-stock problem.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used.
struct ShortLine {
    /// The product.
    product_id: uuid::Uuid,
    /// Units asked for.
    requested: u32,
    /// Units available.
    available: u64,
}

impl utoipa::PartialSchema for Problem {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ProblemSchema::schema()
    }
}

impl ToSchema for Problem {
    fn name() -> std::borrow::Cow<'static, str> {
        ProblemSchema::name()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        ProblemSchema::schemas(schemas);
    }
}

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// Path of the field in the request, e.g. `price` or `items[2].quantity`.
    pub field: String,
    /// Why it is invalid.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Every way a request can fail. Each maps to one status and one problem type (see
/// [`ApiError::kind`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed request: syntax errors in JSON, bad query or path parameters.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed but invalid content, with the invalid fields.
    #[error("{detail}")]
    Validation {
        /// Summary.
        detail: String,
        /// The invalid fields.
        errors: Vec<FieldError>,
    },
    /// A query parameter is malformed, out of range or unknown; each is named.
    #[error("{detail}")]
    InvalidQuery {
        /// Summary.
        detail: String,
        /// The invalid parameters.
        errors: Vec<FieldError>,
    },
    /// Missing, malformed, forged, expired or revoked credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// Valid credentials without the needed right.
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The resource existed and was archived.
    #[error("{0}")]
    Gone(String),
    /// The path exists but not with this method; `Allow` lists the methods it has.
    #[error("{method} is not allowed here; use {allow}")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// The methods the path has, e.g. `GET, POST`.
        allow: &'static str,
    },
    /// The request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(String),
    /// An `If-Match` precondition failed.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The change needs an `If-Match` precondition.
    #[error("{0}")]
    PreconditionRequired(String),
    /// The body is larger than allowed.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body did not arrive in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// The body is not JSON.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Understood but refused for a business reason, with extension members.
    #[error("{detail}")]
    Unprocessable {
        /// What was refused and why.
        detail: String,
        /// Extension members, e.g. `{"unknown_ids": [...]}`.
        extensions: Map<String, Value>,
    },
    /// Not enough stock for a request, with the short lines as extension members.
    #[error("{detail}")]
    OutOfStock {
        /// What was short.
        detail: String,
        /// Extension members, e.g. `{"lines": [...]}`.
        extensions: Map<String, Value>,
    },
    /// A dependency or the store cannot serve now; retry after some seconds.
    #[error("{detail}")]
    Unavailable {
        /// What is unavailable.
        detail: String,
        /// Seconds for `Retry-After`.
        retry_after: u64,
    },
    /// A bug or an unexpected failure: logged in full, answered generically.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The table: error kind → (status, type slug, title).
impl ApiError {
    /// Status, the slug of the problem type URI, and the title.
    pub fn kind(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            InvalidQuery { .. } => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            Validation { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation",
                "Invalid request content",
            ),
            Unauthorized(_) => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Not authenticated",
            ),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Not allowed"),
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            Gone(_) => (StatusCode::GONE, "gone", "Archived"),
            MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method not allowed",
            ),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            PreconditionFailed(_) => (
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "Version mismatch",
            ),
            RequestTimeout(_) => (
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "Request body too slow",
            ),
            PreconditionRequired(_) => (
                StatusCode::PRECONDITION_REQUIRED,
                "precondition-required",
                "Version required",
            ),
            PayloadTooLarge(_) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "Request body too large",
            ),
            UnsupportedMediaType(_) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
            ),
            Unprocessable { .. } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable",
                "Request refused",
            ),
            OutOfStock { .. } => (StatusCode::CONFLICT, "out-of-stock", "Out of stock"),
            Unavailable { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
            ),
            Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
            ),
        }
    }

    /// The problem body for this error.
    pub fn problem(&self) -> Problem {
        let (status, slug, title) = self.kind();
        let (detail, errors, extensions) = match self {
            ApiError::Validation { detail, errors } | ApiError::InvalidQuery { detail, errors } => {
                (detail.clone(), errors.clone(), Map::new())
            }
            ApiError::Unprocessable { detail, extensions }
            | ApiError::OutOfStock { detail, extensions } => {
                (detail.clone(), Vec::new(), extensions.clone())
            }
            // Never leak internals to the client; the cause is logged.
            ApiError::Internal(_) => (
                "an unexpected error occurred".into(),
                Vec::new(),
                Map::new(),
            ),
            other => (other.to_string(), Vec::new(), Map::new()),
        };
        Problem {
            kind: format!("urn:shop:problem:{slug}"),
            title: title.into(),
            status: status.as_u16(),
            detail,
            errors,
            extensions,
        }
    }

    /// A validation error with one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::fields(vec![FieldError::new(field, message)])
    }

    /// A 422 refusing a request that names unknown or archived products, listing them in
    /// `unknown_product_ids` and `archived_product_ids` (each only when not empty).
    pub fn unavailable_products(
        detail: String,
        unknown: &[uuid::Uuid],
        archived: &[uuid::Uuid],
    ) -> Self {
        let mut extensions = Map::new();
        for (name, ids) in [
            ("unknown_product_ids", unknown),
            ("archived_product_ids", archived),
        ] {
            if !ids.is_empty() {
                extensions.insert(name.into(), serde_json::json!(ids));
            }
        }
        ApiError::Unprocessable { detail, extensions }
    }

    /// A 400 naming one bad query parameter.
    pub fn bad_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        let error = FieldError::new(param, message);
        ApiError::InvalidQuery {
            detail: format!("invalid query: {}: {}", error.field, error.message),
            errors: vec![error],
        }
    }

    /// A validation error listing every invalid field (the detail joins them).
    pub fn fields(errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::Validation { detail, errors }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().0
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(cause) = self {
            let (service, request_id) = crate::telemetry::current_request();
            tracing::error!(service, %request_id, %cause, "request failed");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        match self {
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::Unavailable { retry_after, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                res.insert_header((header::ALLOW, *allow));
            }
            _ => {}
        }
        res.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { id } => ApiError::NotFound(format!("{id} does not exist")),
            StoreError::Archived { id } => ApiError::Gone(format!("{id} is archived")),
            StoreError::Conflict {
                expected, actual, ..
            } => ApiError::PreconditionFailed(format!(
                "the resource is at version {actual}, not {expected}"
            )),
            StoreError::AlreadyExists { id } => ApiError::Conflict(format!("{id} already exists")),
            StoreError::InvalidCursor => ApiError::bad_param(
                "cursor",
                "is malformed or belongs to another sort or filter",
            ),
            StoreError::Rejected(reason) => ApiError::Unprocessable {
                detail: reason.to_string(),
                extensions: Map::new(),
            },
            // Say why, and what brings writes back: the store's own retry, or a restart (which
            // reopens the store from its files; `/healthz` fails so that one happens).
            ref e @ StoreError::ReadOnly { retry_after, .. } => {
                let cause = if e.is_disk_full() {
                    "the disk is full"
                } else {
                    "a disk write failed"
                };
                match retry_after {
                    Some(wait) => ApiError::Unavailable {
                        detail: format!(
                            "storage is not accepting writes: {cause}; writes resume by \
                             themselves once the disk takes writes again (checked every few \
                             seconds)"
                        ),
                        retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
                    },
                    None => ApiError::Unavailable {
                        detail: format!(
                            "storage is not accepting writes: {cause}; writes resume when the \
                             service restarts"
                        ),
                        retry_after: 30,
                    },
                }
            }
            StoreError::Closed => ApiError::Unavailable {
                detail: "storage is closed: the service is stopping".into(),
                retry_after: 30,
            },
            other => ApiError::Internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn problem_bodies_follow_the_table() {
        let res = ApiError::invalid("price", "must not be negative").error_response();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
        let body: Value =
            serde_json::from_slice(&to_bytes(res.into_body()).await.unwrap()).unwrap();
        assert_eq!(body["type"], "urn:shop:problem:validation");
        assert_eq!(body["errors"][0]["field"], "price");

        let res = ApiError::Unauthorized("no token".into()).error_response();
        assert_eq!(
            res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
            "Bearer"
        );
        let res = ApiError::Unavailable {
            detail: "down".into(),
            retry_after: 7,
        }
        .error_response();
        assert_eq!(res.headers().get(header::RETRY_AFTER).unwrap(), "7");
    }

    #[actix_web::test]
    async fn internal_errors_do_not_leak() {
        let res = ApiError::Internal("disk /secret failed".into()).error_response();
        let body = to_bytes(res.into_body()).await.unwrap();
        assert!(!String::from_utf8_lossy(&body).contains("secret"));
    }
}
