//! `GET /healthz` (the process answers) and `GET /readyz` (every readiness check passes).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use futures_util::future::BoxFuture;
use serde::Serialize;

/// A readiness check: `Ok` when ready, `Err(reason)` otherwise.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The named readiness checks of one app.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Check)>,
}

impl fmt::Debug for Readiness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.checks.iter().map(|(n, _)| n))
            .finish()
    }
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check.
    pub fn check(mut self, name: &str, check: Check) -> Self {
        self.checks.push((name.to_owned(), check));
        self
    }

    /// Adds the check that a store accepts writes.
    pub fn store<T: store_actor::Data>(self, name: &str, store: store_actor::Store<T>) -> Self {
        self.check(
            name,
            Arc::new(move || {
                let status = store.status();
                Box::pin(async move {
                    match status.read_only_reason {
                        None if status.writable => Ok(()),
                        None => Err("closed".to_owned()),
                        Some(reason) => Err(format!("read-only: {reason}")),
                    }
                })
            }),
        )
    }
}

#[derive(Serialize)]
struct Report {
    status: &'static str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    checks: BTreeMap<String, String>,
}

/// `GET /healthz`.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Report {
        status: "ok",
        checks: BTreeMap::new(),
    })
}

/// `GET /readyz`: 200 when every check passes, 503 with the failing reasons otherwise.
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let mut checks = BTreeMap::new();
    let mut ready = true;
    for (name, check) in &readiness.checks {
        let outcome = check().await;
        ready &= outcome.is_ok();
        checks.insert(
            name.clone(),
            outcome.err().unwrap_or_else(|| "ok".to_owned()),
        );
    }
    let report = Report {
        status: if ready { "ready" } else { "not_ready" },
        checks,
    };
    if ready {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use actix_web::{App, test};
    use serde_json::Value;
    use store_actor::fs::SimFs;
    use store_actor::{Store, StoreOptions};

    use super::*;

    async fn readyz_of(store: &Store<String>) -> (u16, Value) {
        let readiness = Readiness::new().store("store", store.clone());
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(readiness))
                .route("/readyz", web::get().to(readyz)),
        )
        .await;
        let res =
            test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
        let status = res.status().as_u16();
        (status, test::read_body_json(res).await)
    }

    #[actix_web::test]
    async fn readyz_follows_the_store_from_ready_to_read_only_to_closed() {
        let disk = SimFs::new();
        let options =
            StoreOptions::<String>::new(Path::new("/sim"), "things").fs(Arc::new(disk.clone()));
        let store = Store::open(options).await.unwrap();
        let (status, body) = readyz_of(&store).await;
        assert_eq!(
            (status, &body["checks"]["store"]),
            (200, &Value::from("ok")),
            "{body}"
        );

        disk.fail_after(1); // the next append succeeds, its fsync fails: the store turns read-only
        assert!(store.create("lost".to_owned()).await.is_err());
        let (status, body) = readyz_of(&store).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["status"], "not_ready");
        let reason = body["checks"]["store"].as_str().unwrap();
        assert!(
            reason.starts_with("read-only: ") && reason.contains("fsync"),
            "{reason}"
        );

        let other = Store::open(
            StoreOptions::<String>::new(Path::new("/sim2"), "things").fs(Arc::new(SimFs::new())),
        )
        .await
        .unwrap();
        other.close().await.unwrap();
        let (status, body) = readyz_of(&other).await;
        assert_eq!(
            (status, &body["checks"]["store"]),
            (503, &Value::from("closed")),
            "{body}"
        );
    }
}
