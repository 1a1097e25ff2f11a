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
