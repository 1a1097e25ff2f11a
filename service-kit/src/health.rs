//! `GET /healthz` (the process answers and can recover by itself) and `GET /readyz` (every
//! readiness check passes).
//!
//! A store that stopped writes is not ready while it heals by itself (a full disk that may get
//! room again); it is not *live* only when a restart is what brings writes back, so that a
//! liveness probe restarts the process then, and only then.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use futures_util::future::BoxFuture;
use serde::Serialize;

/// A readiness check: `Ok` when ready, `Err(reason)` otherwise.
pub type Check = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The named readiness checks of one app, and its liveness checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(String, Check)>,
    live: Vec<(String, Check)>,
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

    /// Adds the check that a store accepts writes, and the liveness check that it has not
    /// stopped them for good.
    pub fn store<T: store_actor::Data>(mut self, name: &str, store: store_actor::Store<T>) -> Self {
        let live = store.clone();
        self.live.push((
            name.to_owned(),
            Arc::new(move || {
                let status = live.status();
                Box::pin(async move {
                    match status.read_only_reason {
                        Some(reason) if status.needs_reopen => {
                            Err(format!("writes stopped until a restart: {reason}"))
                        }
                        _ => Ok(()),
                    }
                })
            }),
        ));
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

/// Runs `checks` and answers with their report (only the failing ones unless `list_all`).
async fn run(
    checks: &[(String, Check)],
    ok: &'static str,
    not_ok: &'static str,
    list_all: bool,
) -> HttpResponse {
    let mut report = BTreeMap::new();
    let mut passed = true;
    for (name, check) in checks {
        let outcome = check().await;
        passed &= outcome.is_ok();
        report.insert(
            name.clone(),
            outcome.err().unwrap_or_else(|| "ok".to_owned()),
        );
    }
    let report = Report {
        status: if passed { ok } else { not_ok },
        checks: if list_all || !passed {
            report
        } else {
            BTreeMap::new()
        },
    };
    if passed {
        HttpResponse::Ok().json(report)
    } else {
        HttpResponse::ServiceUnavailable().json(report)
    }
}

/// `GET /healthz`: 200 unless a store stopped writes until a restart (503 with why).
pub async fn healthz(readiness: web::Data<Readiness>) -> HttpResponse {
    run(&readiness.live, "ok", "failing", false).await
}

/// `GET /readyz`: 200 when every check passes, 503 with the failing reasons otherwise.
pub async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    run(&readiness.checks, "ready", "not_ready", true).await
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use actix_web::{App, test};
    use serde_json::Value;
    use store_actor::fs::SimFs;
    use store_actor::{Store, StoreOptions};

    use super::*;

    async fn probe(store: &Store<String>, path: &str) -> (u16, Value) {
        let readiness = Readiness::new().store("store", store.clone());
        let app = test::init_service(
            App::new()
                .app_data(web::Data::new(readiness))
                .route("/readyz", web::get().to(readyz))
                .route("/healthz", web::get().to(healthz)),
        )
        .await;
        let res = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        let status = res.status().as_u16();
        (status, test::read_body_json(res).await)
    }

    async fn readyz_of(store: &Store<String>) -> (u16, Value) {
        probe(store, "/readyz").await
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
        // It heals by itself, so it stays live: no restart wanted.
        assert_eq!(probe(&store, "/healthz").await.0, 200);
        disk.heal();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while readyz_of(&store).await.0 != 200 {
            assert!(std::time::Instant::now() < deadline, "never ready again");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }

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

    /// A store that stops writes until a restart makes the process not live (so a liveness
    /// probe restarts it); `/healthz` says which store and why.
    #[actix_web::test]
    async fn healthz_fails_when_only_a_restart_brings_writes_back() {
        let disk = SimFs::new();
        let options = StoreOptions::<String>::new(Path::new("/sim"), "things")
            .fs(Arc::new(disk.clone()))
            .durability(store_actor::Durability::Interval(
                std::time::Duration::from_millis(10),
            ));
        let store = Store::open(options).await.unwrap();
        let (status, body) = probe(&store, "/healthz").await;
        assert_eq!((status, body), (200, serde_json::json!({"status": "ok"})));
        disk.fail_after(1); // the write is acknowledged, its background fsync fails
        store.create("acked".to_owned()).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (status, body) = probe(&store, "/healthz").await;
            if status == 503 {
                assert_eq!(body["status"], "failing");
                let reason = body["checks"]["store"].as_str().unwrap();
                assert!(
                    reason.starts_with("writes stopped until a restart: fsync"),
                    "{reason}"
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{body}");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}
