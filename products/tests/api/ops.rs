//! Operations: health, readiness, metrics, the OpenAPI document, Swagger UI, request ids.

use reqwest::{Method, Response};
use serde_json::Value;

use crate::helpers::{TestApp, id_of, spawn_app};

async fn anonymous(app: &TestApp, path: &str) -> Response {
    app.request(Method::GET, path, None).send().await.unwrap()
}

/// `GET /healthz` answers 200 `{"status":"ok"}`.
#[actix_web::test]
async fn healthz_is_ok() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = anonymous(&app, "/healthz").await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    insta::assert_json_snapshot!("healthz", body);
    app.stop().await;
}

/// `GET /readyz` answers 200 with the store check "ok".
#[actix_web::test]
async fn readyz_reports_the_store() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = anonymous(&app, "/readyz").await;

    // Assert
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["store"], "ok");
    insta::assert_json_snapshot!("readyz", body);
    app.stop().await;
}

/// `/metrics` counts requests by route pattern (not raw path) and exports the store's size.
#[actix_web::test]
async fn metrics_count_requests_by_route() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);
    app.create_ok("Coffee", "2.00").await;
    assert_eq!(app.get(&format!("/products/{id}")).await.status(), 200);

    // Act
    let res = anonymous(&app, "/metrics").await;

    // Assert
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    let request_line = text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains("route=\"/products/{id}\"")
                && l.contains("method=\"GET\"")
                && l.contains("status=\"200\"")
        })
        .unwrap_or_else(|| panic!("no GET /products/{{id}} 200 counter in\n{text}"));
    assert!(request_line.ends_with(" 1"), "{request_line}");
    assert!(!text.contains(&id), "raw paths leak into labels");
    let records: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("store_records{store=\"products\"} "))
        .unwrap_or_else(|| panic!("no store_records in\n{text}"))
        .parse()
        .unwrap();
    assert_eq!(records, 2.0);
    app.stop().await;
}

/// One sample of a Prometheus text exposition: `name{labels} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// The samples of a text exposition (label values may contain `{` `}`, e.g. routes).
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.strip_suffix('}').unwrap()),
                None => (series, ""),
            };
            let mut pairs = Vec::new();
            let mut rest = labels;
            while let Some((key, after)) = rest.split_once("=\"") {
                let end = after.find('"').unwrap();
                pairs.push((key.to_owned(), after[..end].to_owned()));
                rest = after[end + 1..].trim_start_matches(',');
            }
            Sample {
                name: name.to_owned(),
                labels: pairs,
                value: value.parse().unwrap_or_else(|_| panic!("{line}")),
            }
        })
        .collect()
}

/// The samples named `name` having every one of `labels`.
fn matching<'a>(all: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    all.iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .collect()
}

/// The value of the one sample named `name` with `labels`.
fn value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    match matching(all, name, labels).as_slice() {
        [one] => one.value,
        other => panic!("{} samples of {name} {labels:?}: {other:?}", other.len()),
    }
}

/// After creates, reads, a 404 and a patch, `/metrics` has the latency histogram per method,
/// route pattern and status (every bucket, cumulative, `+Inf` = `_count`), the store's size
/// gauges (records, and a journal size equal to the journal file's) and its fsync figures,
/// plus the process, build-info, compaction, tail-drop and protocol-error families, under the
/// names service_kit::metrics registers.
#[actix_web::test]
async fn metrics_export_latency_histograms_store_size_and_fsyncs() {
    // Arrange
    let app = spawn_app().await;
    let id = id_of(&app.create_ok("Tea", "1.00").await);
    app.create_ok("Coffee", "2.00").await;
    assert_eq!(app.get(&format!("/products/{id}")).await.status(), 200);
    let unknown = "0196a0b5-6c1e-7a52-9c4b-3f1f3e2d1c0b";
    assert_eq!(app.get(&format!("/products/{unknown}")).await.status(), 404);
    let patch = app
        .patch(&id, &serde_json::json!({"price": "1.50"}), None)
        .await;
    assert_eq!(patch.status(), 200);

    // Act
    let text = anonymous(&app, "/metrics").await.text().await.unwrap();

    // Assert
    for (family, kind) in [
        ("http_requests", "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("store_records", "gauge"),
        ("store_live_records", "gauge"),
        ("store_last_sequence", "gauge"),
        ("store_journal_bytes", "gauge"),
        ("store_snapshot_bytes", "gauge"),
        ("store_fsync_max_seconds", "gauge"),
        ("store_writable", "gauge"),
        ("store_fsyncs", "counter"),
        ("store_fsync_seconds", "counter"),
        ("store_batches", "counter"),
        ("store_compactions", "counter"),
        ("store_compaction_failures", "counter"),
        ("store_compaction_disk_full", "gauge"),
        ("store_torn_tail_dropped", "gauge"),
        ("store_damaged_tail_dropped", "gauge"),
        ("http_protocol_errors", "counter"),
        ("process_cpu_seconds", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
        ("shop_build", "info"),
    ] {
        assert!(
            text.lines().any(|l| l == format!("# TYPE {family} {kind}")),
            "no {kind} {family} in\n{text}"
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.lines().any(
            |l| l == format!("shop_build_info{{service=\"products\",version=\"{version}\"}} 1")
        ),
        "{text}"
    );
    let all = samples(&text);
    let bounds = [
        "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
        "2.5", "5.0", "+Inf",
    ];
    for (method, route, status, count) in [
        ("POST", "/products", "201", 2.0),
        ("GET", "/products/{id}", "200", 1.0),
        ("GET", "/products/{id}", "404", 1.0),
        ("PATCH", "/products/{id}", "200", 1.0),
    ] {
        let labels = [("method", method), ("route", route), ("status", status)];
        let buckets = matching(&all, "http_request_duration_seconds_bucket", &labels);
        let les: Vec<&str> = buckets
            .iter()
            .map(|b| b.labels.iter().find(|(k, _)| k == "le").unwrap().1.as_str())
            .collect();
        assert_eq!(les, bounds, "{method} {route} {status}");
        let cumulative: Vec<f64> = buckets.iter().map(|b| b.value).collect();
        assert!(
            cumulative.windows(2).all(|w| w[0] <= w[1]),
            "{method} {route} {status}: {cumulative:?}"
        );
        assert_eq!(cumulative.last(), Some(&count), "{method} {route} {status}");
        let observed = value(&all, "http_request_duration_seconds_count", &labels);
        assert_eq!(observed, count, "{method} {route} {status}");
        assert!(value(&all, "http_request_duration_seconds_sum", &labels) > 0.0);
        assert_eq!(value(&all, "http_requests_total", &labels), count);
    }
    assert!(
        !text.contains(&id) && !text.contains(unknown),
        "raw paths leak into labels"
    );

    let store = [("store", "products")];
    assert_eq!(value(&all, "store_records", &store), 2.0);
    assert_eq!(value(&all, "store_live_records", &store), 2.0);
    assert_eq!(value(&all, "store_last_sequence", &store), 3.0);
    assert_eq!(value(&all, "store_writable", &store), 1.0);
    let journal =
        products::store::options(&app.data_dir, store_actor::Durability::Always).journal_path();
    let journal_bytes = value(&all, "store_journal_bytes", &store);
    assert!(journal_bytes > 0.0);
    assert_eq!(
        journal_bytes,
        std::fs::metadata(&journal).unwrap().len() as f64,
        "{}",
        journal.display()
    );
    value(&all, "store_snapshot_bytes", &store);
    // Durability::Always: every acknowledged write was fsynced.
    assert!(value(&all, "store_fsyncs_total", &store) >= 1.0);
    assert!(value(&all, "store_batches_total", &store) >= 1.0);
    let fsync_max = value(&all, "store_fsync_max_seconds", &store);
    let fsync_total = value(&all, "store_fsync_seconds_total", &store);
    assert!(fsync_max > 0.0, "{fsync_max}");
    assert!(fsync_total >= fsync_max, "{fsync_total} < {fsync_max}");
    app.stop().await;
}

/// `/openapi.json` is OpenAPI 3.1 with every products path and a `bearer` security scheme.
#[actix_web::test]
async fn openapi_document_describes_the_api() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let res = anonymous(&app, "/openapi.json").await;

    // Assert
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/products",
        "/products/{id}",
        "/products/lookup",
        "/products/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
    for (path, method) in [
        ("/products", "post"),
        ("/products", "get"),
        ("/products/{id}", "get"),
        ("/products/{id}", "patch"),
        ("/products/{id}", "delete"),
        ("/products/lookup", "post"),
        ("/products/events", "get"),
    ] {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} missing");
        assert_eq!(
            operation["security"],
            serde_json::json!([{"bearer": []}]),
            "{method} {path}"
        );
    }
    // Every schema a path or component refers to is in the document (generators refuse it
    // otherwise), and it says where the service is.
    assert_eq!(test_kit::openapi::dangling_refs(&doc), Vec::<String>::new());
    assert_eq!(
        test_kit::openapi::contract_violations(&doc),
        Vec::<String>::new()
    );
    assert!(doc["servers"][0]["url"].is_string(), "{}", doc["servers"]);
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    app.stop().await;
}

/// `/docs` redirects (308) to `/docs/`, which serves the Swagger UI page, whose assets are
/// served by the service itself (vendored, no CDN).
#[actix_web::test]
async fn swagger_ui_is_served_with_vendored_assets() {
    // Arrange
    let app = spawn_app().await;

    // Act
    let redirect = anonymous(&app, "/docs").await;
    let page = anonymous(&app, "/docs/").await;

    // Assert
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/docs/");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("https://"),
        "the page loads something remote"
    );
    let assets: Vec<&str> = html
        .split(['"', '\''])
        .filter(|s| s.starts_with("./") && (s.ends_with(".css") || s.ends_with(".js")))
        .collect();
    assert!(
        assets.iter().any(|a| a.ends_with("swagger-ui.css")),
        "{html}"
    );
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{html}");
    for asset in &assets {
        let res = anonymous(&app, &format!("/docs/{}", &asset[2..])).await;
        assert_eq!(res.status(), 200, "{asset}");
        assert!(!res.bytes().await.unwrap().is_empty(), "{asset} is empty");
    }
    let initializer = anonymous(&app, "/docs/swagger-initializer.js").await;
    assert_eq!(initializer.status(), 200);
    assert!(initializer.text().await.unwrap().contains("/openapi.json"));
    app.stop().await;
}

/// A client's `X-Request-Id` is echoed; without one (or with an unsafe one) a fresh, distinct
/// id is made.
#[actix_web::test]
async fn request_ids_are_echoed_or_generated() {
    // Arrange
    let app = spawn_app().await;
    let id_of_response = |res: &Response| {
        res.headers()
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // Act
    let sent = app
        .request(Method::GET, "/products", Some(&app.reader))
        .header("X-Request-Id", "trace-abc_123")
        .send()
        .await
        .unwrap();
    let first = anonymous(&app, "/healthz").await;
    let second = anonymous(&app, "/nope").await;
    let unsafe_id = app
        .request(Method::GET, "/healthz", None)
        .header("X-Request-Id", "has spaces")
        .send()
        .await
        .unwrap();

    // Assert
    assert_eq!(id_of_response(&sent).as_deref(), Some("trace-abc_123"));
    let generated = [
        id_of_response(&first).unwrap(),
        id_of_response(&second).unwrap(),
        id_of_response(&unsafe_id).unwrap(),
    ];
    for id in &generated {
        assert!(
            !id.is_empty()
                && id.len() <= 128
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{id:?}"
        );
        assert_ne!(id, "has spaces");
    }
    assert_ne!(generated[0], generated[1]);
    assert_ne!(generated[1], generated[2]);
    app.stop().await;
}
