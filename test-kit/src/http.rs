//! Requests the way every suite makes them.

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;

/// A client that does not follow redirects (a test sees the `308` itself).
pub fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `method base+path`, with `token` as the bearer if given.
pub fn request(
    client: &Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> RequestBuilder {
    let req = client.request(method, format!("{base}{path}"));
    match token {
        Some(t) => req.bearer_auth(t),
        None => req,
    }
}

/// The whole seconds of a response's `Retry-After`.
///
/// # Panics
/// If it has none, or not a number of seconds.
pub fn retry_after(res: &Response) -> u64 {
    res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Every item of a paged list: `GET first`, then each page's `next` link, until the last.
pub async fn all_pages(client: &Client, base: &str, token: &str, first: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut path = first.to_owned();
    loop {
        let res: Response = request(client, base, Method::GET, &path, Some(token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        let page: Value = res.json().await.unwrap();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => return items,
        }
    }
}
