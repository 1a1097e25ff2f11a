//! Assertions on problem+json answers, and small readers of JSON bodies.

use reqwest::Response;
use serde_json::Value;

/// Asserts that `res` is a problem+json with `status` and type `urn:shop:problem:{slug}`, a
/// title, a matching `status` member and a non-empty detail; returns the body.
pub async fn assert_problem(res: Response, status: u16, slug: &str) -> Value {
    assert_eq!(res.status(), status, "status of {}", res.url());
    assert_eq!(
        header(&res, "content-type").as_deref(),
        Some(service_kit::problem::PROBLEM_JSON),
        "content type of a {status}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["type"], format!("urn:shop:problem:{slug}"), "{body}");
    assert_eq!(body["status"], status, "{body}");
    assert!(
        body["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}

/// The `field` members of a validation problem's `errors`.
pub fn error_fields(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

/// Replaces every occurrence of each `(text, placeholder)` in a JSON value (ids in details).
pub fn scrub(value: &Value, pairs: &[(&str, &str)]) -> Value {
    let mut text = value.to_string();
    for (from, to) in pairs {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

/// The `id` of a body, as a string.
pub fn id_of(body: &Value) -> String {
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_owned()
}

/// The ids of a list of bodies, in order.
pub fn ids(bodies: &[Value]) -> Vec<String> {
    bodies.iter().map(id_of).collect()
}

/// A header as a string.
pub fn header(res: &Response, name: &str) -> Option<String> {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}
