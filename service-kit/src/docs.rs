//! OpenAPI and Swagger UI: the document is generated from the code (utoipa), the UI is served
//! from assets vendored in `utoipa-swagger-ui` (no network at build or run time), and its
//! "Authorize" button takes a bearer token.

use actix_web::HttpResponse;
use actix_web::http::header;
use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_swagger_ui::{Config, SwaggerUi};

/// The security scheme name used by `#[utoipa::path(security(("bearer" = [])))]`.
pub const BEARER: &str = "bearer";

/// Adds the bearer (Biscuit) security scheme to a document.
#[derive(Debug)]
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("Biscuit (base64url)")
                    .description(Some("A Biscuit token, e.g. from `shop token mint`."))
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json` and the UI under `/docs/`.
pub fn swagger_ui(openapi: OpenApi) -> SwaggerUi {
    SwaggerUi::new("/docs/{_:.*}")
        .url("/openapi.json", openapi)
        .config(
            Config::default()
                // No call to the public validator: the page stays offline.
                .validator_url("none")
                .persist_authorization(true),
        )
}

/// `GET /docs` → `/docs/`.
pub async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// The problems every data endpoint can answer, for `responses(...)` of `#[utoipa::path]`
/// (a service lists its own statuses after these; a later entry for the same status wins).
pub mod responses {
    use utoipa::IntoResponses;

    use crate::problem::Problem;

    /// 401: a data endpoint without a valid token. (Each endpoint names the right its 403
    /// needs.)
    #[derive(Debug, IntoResponses)]
    pub enum Unauthorized {
        /// No valid token: none, malformed, forged, expired or revoked.
        #[response(status = 401, description = "No valid token")]
        Unauthorized(Problem),
    }

    /// 304: a conditional read of an unchanged record (no body).
    #[derive(Debug, IntoResponses)]
    #[response(status = 304, description = "Not modified")]
    pub struct NotModified;

    /// 400, 404 and 410: an operation on one record named by its id.
    #[derive(Debug, IntoResponses)]
    pub enum ById {
        /// The id is not a UUID, or a header is malformed.
        #[response(
            status = 400,
            description = "Not a UUID, or a malformed header or body"
        )]
        BadRequest(Problem),
        /// No such record (or one the caller may not see).
        #[response(
            status = 404,
            description = "No such record (for orders: or another user's)"
        )]
        NotFound(Problem),
        /// The record is archived (deleted).
        #[response(status = 410, description = "Archived or deleted")]
        Gone(Problem),
    }

    /// 412: `If-Match` named an older version.
    #[derive(Debug, IntoResponses)]
    pub enum Stale {
        /// Someone changed the record since the caller read it.
        #[response(status = 412, description = "If-Match names an older version")]
        PreconditionFailed(Problem),
    }

    /// 400, 413, 415 and 422: a JSON request body.
    #[derive(Debug, IntoResponses)]
    pub enum BadBody {
        /// Malformed JSON or header.
        #[response(status = 400, description = "Malformed JSON or header")]
        BadRequest(Problem),
        /// Over the body size limit.
        #[response(status = 413, description = "Body too large")]
        TooLarge(Problem),
        /// Not sent as JSON.
        #[response(status = 415, description = "Body is not JSON")]
        UnsupportedMediaType(Problem),
        /// Fields of the wrong type, out of range, missing or unknown; each named.
        #[response(status = 422, description = "Invalid fields")]
        Invalid(Problem),
    }

    /// 409: an `Idempotency-Key` whose first request is still running.
    #[derive(Debug, IntoResponses)]
    pub enum InFlight {
        /// Retry once the first request has been answered.
        #[response(status = 409, description = "Same Idempotency-Key still in flight")]
        Conflict(Problem),
    }
}

/// Parameters every record endpoint takes, for `params(...)` of `#[utoipa::path]`.
pub mod params {
    use utoipa::IntoParams;

    /// `If-None-Match` of a conditional read.
    #[derive(Debug, IntoParams)]
    #[into_params(parameter_in = Header)]
    pub struct IfNoneMatch {
        /// An ETag, a list of them, or `*`: 304 if one names the current version (weak
        /// comparison).
        #[param(rename = "If-None-Match")]
        pub if_none_match: Option<String>,
    }

    /// `If-Match` of a conditional change.
    #[derive(Debug, IntoParams)]
    #[into_params(parameter_in = Header)]
    pub struct IfMatch {
        /// The ETag the change is based on (`"3"`), a list of them, or `*`: refused with 412 if
        /// none names the current version (compared strongly: a weak `W/"3"` never matches).
        #[param(rename = "If-Match")]
        pub if_match: Option<String>,
    }

    /// `Idempotency-Key` of a create.
    #[derive(Debug, IntoParams)]
    #[into_params(parameter_in = Header)]
    pub struct IdempotencyKey {
        /// Makes retries safe: the same key and body return the first result.
        #[param(rename = "Idempotency-Key")]
        pub idempotency_key: Option<String>,
    }
}
