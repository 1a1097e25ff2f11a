//! Small HTTP conventions: ETags from versions, conditional headers, `201 Created` and `304`
//! answers, paging links, path ids, the caller's identity, and the problem+json handlers for
//! path and query errors and unknown routes.

use actix_web::error::{PathError, QueryPayloadError};
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

use crate::auth::{Authenticator, Caller, Operation};
use crate::problem::ApiError;

/// The ETag of a record version: `"7"`.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}

/// [`etag`] as a header value, written without the formatting machinery (every read and
/// write answers one).
fn etag_header(version: u64) -> header::HeaderValue {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(version).as_bytes();
    let mut text = [0u8; 22]; // the quotes and at most 20 digits
    text[0] = b'"';
    text[1..=digits.len()].copy_from_slice(digits);
    text[digits.len() + 1] = b'"';
    header::HeaderValue::from_bytes(&text[..digits.len() + 2]).expect("digits and quotes")
}

/// An entity tag of a conditional header: `"7"` or, weak, `W/"7"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    /// `W/` in front: only weak comparison (`If-None-Match`) may match it.
    pub weak: bool,
    /// Between the quotes.
    pub opaque: String,
}

/// Parses a list of entity tags (`"1", W/"2"`), or `None` if it is not one (RFC 9110 §8.8.3).
/// An empty list (an empty value, or only commas) is a list: it names no version.
fn parse_tags(value: &str) -> Option<Vec<EntityTag>> {
    // A tag may hold a comma (`",a"`), so the list is scanned, not split.
    let is_space = |b: u8| b == b' ' || b == b'\t';
    let bytes = value.as_bytes();
    let mut tags = Vec::new();
    let mut i = 0;
    loop {
        // Any number of separators (empty list elements are allowed).
        while i < bytes.len() && (is_space(bytes[i]) || bytes[i] == b',') {
            i += 1;
        }
        if i == bytes.len() {
            return Some(tags);
        }
        let weak = bytes[i..].starts_with(b"W/");
        if weak {
            i += 2;
        }
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        let start = i + 1;
        // etagc: visible ASCII but the double quote.
        let len = bytes[start..]
            .iter()
            .take_while(|&&b| b == 0x21 || (0x23..=0x7e).contains(&b))
            .count();
        if bytes.get(start + len) != Some(&b'"') {
            return None;
        }
        tags.push(EntityTag {
            weak,
            opaque: value[start..start + len].to_owned(),
        });
        i = start + len + 1;
        while i < bytes.len() && is_space(bytes[i]) {
            i += 1;
        }
        if i < bytes.len() && bytes[i] != b',' {
            return None;
        }
    }
}

/// An `If-Match` precondition (RFC 9110 §13.1.1): `*`, or a list of entity tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: any current version (the record exists).
    Any,
    /// Any of these tags.
    Tags(Vec<EntityTag>),
}

impl IfMatch {
    /// Whether a record at `version` passes: `*` always; otherwise one of the tags names it,
    /// compared strongly (a weak tag never matches, nor does a tag this API never issued).
    pub fn matches(&self, version: u64) -> bool {
        match self {
            IfMatch::Any => true,
            IfMatch::Tags(tags) => {
                let current = version.to_string();
                tags.iter().any(|t| !t.weak && t.opaque == current)
            }
        }
    }
}

impl std::fmt::Display for IfMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IfMatch::Any => f.write_str("*"),
            IfMatch::Tags(tags) => {
                let shown: Vec<String> = tags
                    .iter()
                    .map(|t| format!("{}\"{}\"", if t.weak { "W/" } else { "" }, t.opaque))
                    .collect();
                f.write_str(&shown.join(", "))
            }
        }
    }
}

/// The `If-Match` precondition of a request, if any (all its header lines together). Only a
/// value that is not a list of entity tags is refused (400); a tag that does not match is the
/// caller's to check with [`IfMatch::matches`] once the record is found (412).
pub fn if_match(req: &HttpRequest) -> Result<Option<IfMatch>, ApiError> {
    let mut values = Vec::new();
    for value in req.headers().get_all(header::IF_MATCH) {
        let value = value
            .to_str()
            .map_err(|_| ApiError::BadRequest("If-Match is not ASCII".into()))?;
        values.push(value.trim().to_owned());
    }
    if values.is_empty() {
        return Ok(None);
    }
    if values.iter().any(|v| v == "*") {
        return Ok(Some(IfMatch::Any));
    }
    let joined = values.join(", ");
    parse_tags(&joined)
        .map(|t| Some(IfMatch::Tags(t)))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "If-Match {joined:?} is not a list of entity tags (e.g. \"3\", with the quotes)"
            ))
        })
}

/// Whether `If-None-Match` names the current version (weak comparison, any tag of the list)
/// or is `*`: then a read answers 304. A value that is not a list of tags matches nothing.
pub fn if_none_match(req: &HttpRequest, version: u64) -> bool {
    let mut values = req.headers().get_all(header::IF_NONE_MATCH).peekable();
    if values.peek().is_none() {
        return false; // the usual case: nothing to format or compare
    }
    let mut current = itoa::Buffer::new();
    let current = current.format(version);
    values.filter_map(|v| v.to_str().ok()).any(|v| {
        v.trim() == "*"
            || parse_tags(v).is_some_and(|tags| tags.iter().any(|t| t.opaque == current))
    })
}

/// Bytes a JSON body's buffer starts with: a record's body fits (one product is about 300
/// bytes, an order with a few lines under a kilobyte), where actix-web's `json` starts at 128
/// and grows the buffer three or four times, copying it each time.
pub const RECORD_BODY_BYTES: usize = 1024;

/// A response body that becomes JSON: any `Serialize` value (through serde_json), or a hot
/// path's own writer wrapped in [`Written`].
pub trait JsonBody {
    /// Appends the JSON text to `out`.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()>;
}

impl<T: Serialize + ?Sized> JsonBody for T {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }
}

/// A body written by a function of its own rather than by serde (a product, a list page:
/// see `products_api`'s `write_json`), which must write what serde would.
pub struct Written<F>(pub F);

impl<F: Fn(&mut Vec<u8>) -> serde_json::Result<()>> JsonBody for Written<F> {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        (self.0)(out)
    }
}

impl<F> std::fmt::Debug for Written<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Written(..)")
    }
}

/// Finishes `res` with `body` as JSON, written into a buffer of `capacity` bytes to begin
/// with (see [`RECORD_BODY_BYTES`]; a page of `n` records can ask for `n` times that).
pub fn json(
    mut res: actix_web::HttpResponseBuilder,
    capacity: usize,
    body: &impl JsonBody,
) -> HttpResponse {
    let mut buf = Vec::with_capacity(capacity);
    match body.write_json(&mut buf) {
        Ok(()) => res.content_type("application/json").body(buf),
        Err(e) => actix_web::ResponseError::error_response(&ApiError::Internal(format!(
            "the answer could not be written as JSON: {e}"
        ))),
    }
}

/// `200 OK` with the ETag of `version` and a JSON body.
pub fn ok(version: u64, body: &impl JsonBody) -> HttpResponse {
    let mut res = HttpResponse::Ok();
    res.insert_header((header::ETAG, etag_header(version)));
    json(res, RECORD_BODY_BYTES, body)
}

/// A read: `304 Not Modified` if `If-None-Match` names `version`, else `200` with the ETag and
/// the body `render` makes (only made when it is sent).
pub fn read<B: JsonBody>(
    req: &HttpRequest,
    version: u64,
    render: impl FnOnce() -> B,
) -> HttpResponse {
    if if_none_match(req, version) {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag_header(version)))
            .finish();
    }
    ok(version, &render())
}

/// `201 Created` at `{collection}/{id}` (e.g. `/products/…`) with the ETag of `version`; a
/// replayed idempotent create says so in `Idempotent-Replayed: true`.
pub fn created(
    collection: &str,
    id: Uuid,
    version: u64,
    replayed: bool,
    body: &impl JsonBody,
) -> HttpResponse {
    let mut res = HttpResponse::Created();
    res.insert_header((header::LOCATION, location(collection, id)));
    if replayed {
        res.insert_header(("Idempotent-Replayed", "true"));
    }
    res.insert_header((header::ETAG, etag_header(version)));
    json(res, RECORD_BODY_BYTES, body)
}

/// `{collection}/{id}`, the id hyphenated, written without the formatting machinery.
fn location(collection: &str, id: Uuid) -> String {
    let mut location = String::with_capacity(collection.len() + 1 + Hyphenated::LENGTH);
    location.push_str(collection);
    location.push('/');
    location.push_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()));
    location
}

/// Parses a path id (after authorization, so anonymous callers learn nothing); `what` names it
/// in the message ("product", "order").
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    // Only the hyphenated form the services issue (the OpenAPI pattern says so), not the
    // simple, braced or URN forms `Uuid` also reads: those are not 36 characters long.
    raw.parse()
        .ok()
        .filter(|_| raw.len() == 36)
        .ok_or_else(|| ApiError::BadRequest(format!("{raw:?} is not a valid {what} id (a UUID)")))
}

/// Authorizes the request for `operation` on `resource` (needs `web::Data<Authenticator>`).
pub fn authorize(
    req: &HttpRequest,
    resource: &str,
    operation: Operation,
) -> Result<Caller, ApiError> {
    let auth = req
        .app_data::<web::Data<Authenticator>>()
        .ok_or_else(|| ApiError::Internal("no authenticator configured".into()))?;
    // `from_utf8` rather than `to_str`: a header value holds no control characters already,
    // and a token is ASCII, which `from_utf8` checks a word at a time (`to_str` byte by byte,
    // a tenth of a cached GET's instructions). Anything else is refused as malformed.
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| std::str::from_utf8(v.as_bytes()).unwrap_or("\u{0}"));
    Ok(auth.authorize(header, resource, operation)?)
}

/// The largest page a list returns.
pub const MAX_PAGE: usize = 100;
/// The page size without `limit`.
pub const DEFAULT_PAGE: usize = 20;

/// The request's query string as `T`: a 400 naming the parameter when it does not fit (not
/// UTF-8 once decoded, unknown, of the wrong type or value). Parsed inside handlers, after
/// authorization, so anonymous callers learn nothing from query errors.
pub fn query<T: serde::de::DeserializeOwned>(req: &HttpRequest) -> Result<T, ApiError> {
    parse_query(req.query_string())
}

fn parse_query<T: serde::de::DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    check_utf8(query)?;
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // An unknown parameter is reported at the top level, naming it in backticks.
        let param = match path.as_str() {
            "." | "" => message
                .split('`')
                .nth(1)
                .map_or_else(|| "query".to_owned(), str::to_owned),
            _ => path,
        };
        ApiError::bad_param(param, message)
    })
}

/// Refuses a query whose decoded names or values are not UTF-8 (decoding would otherwise
/// replace the bytes silently).
fn check_utf8(query: &str) -> Result<(), ApiError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = String::from_utf8(percent_decode(name))
            .map_err(|_| ApiError::bad_param("query", "a parameter name is not UTF-8"))?;
        if String::from_utf8(percent_decode(value)).is_err() {
            return Err(ApiError::bad_param(name, "is not UTF-8"));
        }
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` decoding of one name or value: `+` is a space, `%XX` a
/// byte; a `%` not followed by two hex digits stays as it is.
fn percent_decode(text: &str) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b'+', ..) => {
                out.push(b' ');
                i += 1;
            }
            (b, ..) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// A list's page size: `limit`, or the default; 400 outside 1..=[`MAX_PAGE`].
pub fn page_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_param(
            "limit",
            format!("must be between 1 and {MAX_PAGE}"),
        ))
    }
}

/// The URL (path and query) of a list's next page, if there is one: `query` is the list's
/// query with the page's `next_cursor` in it.
pub fn next_page<Q: Serialize>(
    path: &str,
    next_cursor: Option<&String>,
    query: impl FnOnce(String) -> Q,
) -> Option<String> {
    next_cursor.map(|cursor| {
        // The query is encoded straight after the path, into one string.
        let mut url = String::with_capacity(path.len() + cursor.len() + 64);
        url.push_str(path);
        url.push('?');
        let start = url.len();
        let mut form = form_urlencoded::Serializer::for_suffix(url, start);
        if query(cursor.clone())
            .serialize(serde_urlencoded::Serializer::new(&mut form))
            .is_err()
        {
            // Not a flat query: only the path (the list's types are flat, so this is a bug).
            let mut url = form.finish();
            url.truncate(start - 1);
            return url;
        }
        form.finish()
    })
}

/// The `Idempotency-Key` header, if any: 1 to 255 visible ASCII characters.
pub fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::BadRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(Some(key.to_owned()))
}

/// Path parameter errors (e.g. an id that is not a UUID) as problems.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::BadRequest(format!("invalid path parameter: {err}")).into()
}

/// Query string errors of actix's own `Query` extractor as problems.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::bad_param("query", err.to_string()).into()
}

/// Unknown routes (and methods) as problems.
pub async fn not_found(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!(
        "no route for {} {}",
        req.method(),
        req.path()
    )))
}

/// A handler answering 405 with `Allow: allow`, for a resource's other methods.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn(HttpRequest) -> std::future::Ready<Result<actix_web::HttpResponse, ApiError>> + Clone {
    move |req: HttpRequest| {
        std::future::ready(Err(ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            allow,
        }))
    }
}

/// A resource at `path` whose other methods answer 405 with `Allow: allow` (list the methods
/// the resource is given).
pub fn resource(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed(allow)))
}

/// App data that turns extractor failures into problems, with the body limits.
pub fn configure_extractors(cfg: &mut web::ServiceConfig, body: crate::json::BodyLimits) {
    cfg.app_data(web::PathConfig::default().error_handler(path_error))
        .app_data(web::QueryConfig::default().error_handler(query_error))
        .app_data(web::PayloadConfig::new(body.limit))
        .app_data(body);
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[actix_web::test]
    async fn json_answers_the_body_or_a_problem_when_it_cannot_be_written() {
        let res = json(
            HttpResponse::Ok(),
            8,
            &serde_json::json!({"name": "tea", "n": 3}),
        );
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/json"
        );
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        assert_eq!(&body[..], br#"{"n":3,"name":"tea"}"#);

        struct Unwritable;
        impl Serialize for Unwritable {
            fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
                Err(serde::ser::Error::custom("no"))
            }
        }
        let res = json(HttpResponse::Ok(), 8, &Unwritable);
        assert_eq!(res.status(), 500);
        assert_eq!(
            res.headers().get(header::CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );

        // A writer of its own: its bytes as they are, its error as a 500.
        let written = Written(|out: &mut Vec<u8>| {
            out.extend_from_slice(br#"{"own":true}"#);
            Ok(())
        });
        let res = json(HttpResponse::Ok(), 8, &written);
        assert_eq!(res.status(), 200);
        let body = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        assert_eq!(&body[..], br#"{"own":true}"#);
        let failing = Written(|_: &mut Vec<u8>| Err(serde::ser::Error::custom("no")));
        assert_eq!(json(HttpResponse::Ok(), 8, &failing).status(), 500);
    }

    fn with(name: header::HeaderName, values: &[&str]) -> HttpRequest {
        let mut req = TestRequest::default();
        for v in values {
            req = req.append_header((name.clone(), *v));
        }
        req.to_http_request()
    }

    /// RFC 9110 §13.1.1: `*` matches any current version; a list matches if one of its tags
    /// names the version, compared strongly (weak tags and tags never issued do not match);
    /// several header lines are one list; only a value that is not a list is a 400.
    #[test]
    fn if_match_is_a_list_of_strongly_compared_tags() {
        let cond = |values: &[&str]| if_match(&with(header::IF_MATCH, values)).unwrap();
        assert_eq!(cond(&[]), None);
        assert_eq!(cond(&["*"]), Some(IfMatch::Any));
        assert!(cond(&["*"]).unwrap().matches(7));
        let four = cond(&["\"4\""]).unwrap();
        assert!(four.matches(4) && !four.matches(5));
        let list = cond(&["\"1\", \"4\""]).unwrap();
        assert!(list.matches(4) && list.matches(1) && !list.matches(2));
        assert!(
            cond(&["\"1\"", "\"4\""]).unwrap().matches(4),
            "two header lines"
        );
        assert!(
            !cond(&["W/\"4\""]).unwrap().matches(4),
            "weak tags never match"
        );
        assert!(!cond(&["\"stale-etag\""]).unwrap().matches(4));
        // An empty list (RFC 9110's `#entity-tag` may be empty) names no version: 412, not 400.
        for empty in ["", ", ,"] {
            let none = cond(&[empty]).unwrap();
            assert_eq!(none, IfMatch::Tags(Vec::new()), "{empty:?}");
            assert!(!none.matches(1));
        }
        assert_eq!(list.to_string(), "\"1\", \"4\"");
        // A tag may hold a comma.
        let commas = cond(&["\",a\", W/\"b,\", \"4\""]).unwrap();
        assert!(commas.matches(4));
        assert_eq!(commas.to_string(), "\",a\", W/\"b,\", \"4\"");
        for bad in [
            "four",
            "\"4",
            "4\"",
            "\"a\"b\"",
            "\"1\" \"2\"",
            "W/4",
            "\"é\"",
        ] {
            assert!(if_match(&with(header::IF_MATCH, &[bad])).is_err(), "{bad}");
        }
    }

    /// `If-None-Match` compares weakly, takes lists and `*`, and ignores what is not a list.
    #[test]
    fn if_none_match_is_a_weakly_compared_list() {
        let inm = |v: &str, version| if_none_match(&with(header::IF_NONE_MATCH, &[v]), version);
        assert!(inm("\"1\", W/\"2\"", 2) && inm("\"1\", W/\"2\"", 1));
        assert!(!inm("\"1\", W/\"2\"", 3));
        assert!(inm("*", 3));
        assert!(!inm("two", 2));
        assert!(!if_none_match(&TestRequest::default().to_http_request(), 0));
        assert_eq!(etag(9), "\"9\"");
        for v in [0, 9, 10, 12_345, u64::MAX] {
            assert_eq!(etag_header(v).to_str().unwrap(), etag(v));
        }
    }

    #[test]
    fn reads_answer_304_for_the_current_etag_and_200_otherwise() {
        let req = TestRequest::default()
            .insert_header((header::IF_NONE_MATCH, "\"3\""))
            .to_http_request();
        let res = read(&req, 3, || -> serde_json::Value {
            unreachable!("no body for a 304")
        });
        assert_eq!(res.status(), 304);
        assert_eq!(res.headers().get(header::ETAG).unwrap(), "\"3\"");
        let res = read(&req, 4, || serde_json::json!({"v": 4}));
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers().get(header::ETAG).unwrap(), "\"4\"");
    }

    #[test]
    fn created_says_where_and_whether_replayed() {
        let body = serde_json::json!({});
        let id = Uuid::from_u128(0xA1B2_C3D4_E5F6_0718_293A_4B5C_6D7E_8F90);
        let res = created("/things", id, 1, false, &body);
        assert_eq!(res.status(), 201);
        assert_eq!(
            res.headers().get(header::LOCATION).unwrap(),
            "/things/a1b2c3d4-e5f6-0718-293a-4b5c6d7e8f90"
        );
        assert_eq!(res.headers().get(header::ETAG).unwrap(), "\"1\"");
        assert!(res.headers().get("idempotent-replayed").is_none());
        let res = created("/things", id, 1, true, &body);
        assert_eq!(res.headers().get("idempotent-replayed").unwrap(), "true");
    }

    #[test]
    fn next_page_links_carry_the_cursor() {
        #[derive(serde::Serialize)]
        struct Q {
            limit: usize,
            cursor: String,
            name: &'static str,
        }
        let link = next_page("/things", Some(&"c 1".to_owned()), |cursor| Q {
            limit: 5,
            cursor,
            name: "tea",
        });
        assert_eq!(link.as_deref(), Some("/things?limit=5&cursor=c+1&name=tea"));
        let last = next_page("/things", None, |_| -> Q { unreachable!("no next page") });
        assert_eq!(last, None);
        assert!(
            parse_id("nope", "thing")
                .unwrap_err()
                .to_string()
                .contains("thing id")
        );
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Params {
        limit: Option<usize>,
        name: Option<String>,
    }

    fn bad_params(query: &str) -> Vec<String> {
        match parse_query::<Params>(query) {
            Err(ApiError::InvalidQuery { errors, .. }) => {
                errors.into_iter().map(|e| e.field).collect()
            }
            other => panic!("{query}: {other:?}"),
        }
    }

    #[test]
    fn query_errors_name_the_parameter() {
        let ok = parse_query::<Params>("limit=5&name=gr%C3%BCn+tea").unwrap();
        assert_eq!((ok.limit, ok.name.as_deref()), (Some(5), Some("grün tea")));
        assert_eq!(bad_params("limit=ten"), ["limit"]);
        assert_eq!(bad_params("colour=red"), ["colour"]);
        assert_eq!(bad_params("name=%FF%FE"), ["name"]);
        assert_eq!(bad_params("%FF=1"), ["query"]);
        assert_eq!(percent_decode("a%2"), b"a%2");
        assert_eq!(percent_decode("%41+%zz"), b"A %zz");
        let e = page_limit(Some(0)).unwrap_err();
        assert!(
            matches!(e, ApiError::InvalidQuery { ref errors, .. } if errors[0].field == "limit")
        );
        assert_eq!(e.kind().0, 400);
    }

    #[test]
    fn idempotency_keys_are_checked() {
        let req = TestRequest::default()
            .insert_header(("Idempotency-Key", "abc-1"))
            .to_http_request();
        assert_eq!(idempotency_key(&req).unwrap().as_deref(), Some("abc-1"));
        let req = TestRequest::default()
            .insert_header(("Idempotency-Key", "a b"))
            .to_http_request();
        assert!(idempotency_key(&req).is_err());
        assert_eq!(
            idempotency_key(&TestRequest::default().to_http_request()).unwrap(),
            None
        );
    }
}
