//! OpenAPI and Swagger UI: the document is generated from the code (utoipa), the UI is served
//! from assets vendored in `utoipa-swagger-ui` (no network at build or run time), and its
//! "Authorize" button takes a bearer token.

use actix_web::HttpResponse;
use actix_web::http::header;
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::problem::PROBLEM_JSON;

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

/// Rewrites every error response (4xx, 5xx) of a document to `application/problem+json`, the
/// media type the services answer them with (`#[utoipa::path]` lists them as plain JSON).
#[derive(Debug)]
pub struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                for (status, response) in operation.responses.responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if !status.starts_with('4') && !status.starts_with('5') {
                        continue;
                    }
                    if let Some(json) = response.content.shift_remove("application/json") {
                        response.content.insert(PROBLEM_JSON.to_owned(), json);
                    }
                }
            }
        }
    }
}

/// Describes the events of a Server-Sent Events endpoint (`text/event-stream` at `path`, status
/// 200) as Open API 3.1 reads a stream: one schema per event, with the SSE fields `id` (the
/// sequence number), `event` (one of `kinds`, or `resync`) and `data` (a JSON text whose schema
/// is the component `data`; a `resync` event's data is a [`Resync`]); a frame with only an `id`
/// (the position reached past events left out by `kinds`, see [`crate::sse`]); or, for a client
/// that reads the response whole, a string.
#[derive(Debug)]
pub struct EventStream {
    /// The endpoint's path, e.g. `/products/events`.
    pub path: &'static str,
    /// The component schema of one event's data, e.g. `ProductEvent`.
    pub data: &'static str,
    /// The event names besides `resync`.
    pub kinds: &'static [&'static str],
}

impl Modify for EventStream {
    fn modify(&self, openapi: &mut OpenApi) {
        let Some(RefOr::T(ok)) = openapi
            .paths
            .paths
            .get_mut(self.path)
            .and_then(|item| item.get.as_mut())
            .and_then(|get| get.responses.responses.get_mut("200"))
        else {
            return;
        };
        let kinds: Vec<&str> = self.kinds.iter().copied().chain(["resync"]).collect();
        let data = ObjectBuilder::new()
            .schema_type(Type::String)
            .content_media_type("application/json")
            .content_schema(Some(Schema::OneOf(
                OneOfBuilder::new()
                    .item(Ref::from_schema_name(self.data))
                    .item(Ref::from_schema_name("Resync"))
                    .build(),
            )))
            .description(Some(format!(
                "One JSON text: a {} (a `resync` event: a Resync)",
                self.data
            )));
        let event = ObjectBuilder::new()
            .description(Some(
                "One Server-Sent Event (the stream's first lines are `retry: 2000` and comments \
                 `:` keep it alive)",
            ))
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$"))
                    .description(Some("The sequence number (absent on `resync`)")),
            )
            .property(
                "event",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(kinds)),
            )
            .required("event")
            .property("data", data)
            .required("data")
            .property(
                "retry",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
            );
        // Open API 3.1 reads a stream's schema as one event's (schemathesis checks each event
        // against it); a client that reads the body whole (a generated one, with `follow=false`)
        // gets the text. Either reading matches one branch.
        let whole = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("The stream as text, read whole (`follow=false`)"));
        let progress = ObjectBuilder::new()
            .description(Some(
                "The position the stream has reached past events it left out (not of the \
                 `kinds` asked for, or not visible to the caller): only an `id`, no data, so \
                 browsers record it as the last event id and dispatch nothing",
            ))
            .property(
                "id",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some("^[0-9]+$")),
            )
            .required("id")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        let schema = OneOfBuilder::new()
            .item(whole)
            .item(event)
            .item(progress)
            .build();
        ok.content.insert(
            "text/event-stream".to_owned(),
            RefOr::T(
                ContentBuilder::new()
                    .schema(Some(Schema::OneOf(schema)))
                    .build(),
            ),
        );
        let components = openapi.components.get_or_insert_with(Default::default);
        components
            .schemas
            .insert("Resync".to_owned(), Resync::schema());
    }
}

/// The data of a `resync` event: the events asked for are no longer retained.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // Only its schema is used: sse.rs writes the event.
pub struct Resync {
    /// The sequence number the stream was asked to start after.
    requested_after: u64,
    /// The oldest sequence number still available: reload, then follow from the current end.
    oldest_available: u64,
    /// For humans.
    detail: String,
}

/// The pattern of an id in a path: a hyphenated UUID, as the services issue them.
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// The schema of a record id in a path, e.g. `params(("id" = RecordId, Path, ...))`: a
/// hyphenated UUID ([`crate::http::parse_id`] refuses any other form).
#[derive(Debug)]
pub struct RecordId;

impl PartialSchema for RecordId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .pattern(Some(UUID_PATTERN))
            .into()
    }
}

impl ToSchema for RecordId {}

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
        #[param(rename = "If-None-Match", nullable = false)]
        pub if_none_match: Option<String>,
    }

    /// `If-Match` of a conditional change.
    #[derive(Debug, IntoParams)]
    #[into_params(parameter_in = Header)]
    pub struct IfMatch {
        /// The ETag the change is based on (`"3"`), a list of them, or `*`: refused with 412 if
        /// none names the current version (compared strongly: a weak `W/"3"` never matches).
        // No `pattern` for the syntax: schemathesis' coverage phase then sends values that break
        // it as if they were valid (it spells header values in letters and digits only), while a
        // plain string gets its If-Match generator. A value that is not a list of tags is 400.
        #[param(rename = "If-Match", nullable = false)]
        pub if_match: Option<String>,
    }

    /// `Idempotency-Key` of a create.
    #[derive(Debug, IntoParams)]
    #[into_params(parameter_in = Header)]
    pub struct IdempotencyKey {
        /// Makes retries safe: the same key and body return the first result.
        #[param(
            rename = "Idempotency-Key",
            nullable = false,
            pattern = "^[!-~]{1,255}$"
        )]
        pub idempotency_key: Option<String>,
    }
}
