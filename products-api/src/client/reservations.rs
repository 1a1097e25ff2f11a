//! Reservations at products: hold, commit and release stock for an order. Each call is
//! idempotent at products (a reservation is named by its order's id), so each is retried like a
//! read within the call's deadline.

use uuid::Uuid;

use super::{ClientError, ProductsClient};
use crate::wire::{
    CommitMany, CommitOutcomes, ReservationBody, ReserveLine, ReserveRequest, ShortLine,
};

/// What a reservation call came to, besides a failure to ask.
#[derive(Debug, Clone, PartialEq)]
pub enum ReserveOutcome {
    /// Every line is held (or was, by the same call before).
    Held(ReservationBody),
    /// Nothing is held: these lines are short.
    OutOfStock(Vec<ShortLine>),
    /// Nothing is held: these products are unknown or archived.
    Unavailable {
        /// Ids of no product.
        unknown: Vec<Uuid>,
        /// Ids of archived products.
        archived: Vec<Uuid>,
    },
}

fn ids(problem: &serde_json::Value, member: &str) -> Vec<Uuid> {
    serde_json::from_value(problem[member].clone()).unwrap_or_default()
}

impl ProductsClient {
    /// Holds `lines` under `id` (the order's id), all or nothing.
    pub async fn reserve(
        &self,
        id: Uuid,
        lines: &[ReserveLine],
        ttl_seconds: Option<u64>,
        request_id: Option<&str>,
    ) -> Result<ReserveOutcome, ClientError> {
        let body = ReserveRequest {
            lines: lines.to_vec(),
            ttl_seconds,
        };
        let url = self.url(&format!("/reservations/{id}"));
        let answer = self
            .idempotent("reserve", || {
                let req = self.http().put(url.clone()).json(&body);
                with_request_id(req, request_id)
            })
            .await;
        match answer {
            Ok(held) => Ok(ReserveOutcome::Held(held)),
            Err(ClientError::Refused {
                status: 409,
                problem: Some(problem),
                ..
            }) if problem["type"] == "urn:shop:problem:out-of-stock" => {
                let lines = serde_json::from_value(problem["lines"].clone())
                    .map_err(|e| ClientError::Decode(format!("out-of-stock lines: {e}")))?;
                Ok(ReserveOutcome::OutOfStock(lines))
            }
            Err(ClientError::Refused {
                status: 422,
                problem: Some(problem),
                ..
            }) if problem.get("unknown_product_ids").is_some()
                || problem.get("archived_product_ids").is_some() =>
            {
                Ok(ReserveOutcome::Unavailable {
                    unknown: ids(&problem, "unknown_product_ids"),
                    archived: ids(&problem, "archived_product_ids"),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Commits the reservation `id`: its units are sold. A 409 (released or expired) comes
    /// back as [`ClientError::Refused`].
    pub async fn commit(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<ReservationBody, ClientError> {
        self.settle(id, "commit", request_id).await
    }

    /// Commits the reservations `ids` (at most [`MAX_COMMIT`](crate::MAX_COMMIT)) in one call:
    /// products sorts them into committed, ended (released or expired) and unknown.
    pub async fn commit_many(
        &self,
        ids: &[Uuid],
        request_id: Option<&str>,
    ) -> Result<CommitOutcomes, ClientError> {
        let body = CommitMany { ids: ids.to_vec() };
        let url = self.url("/reservations/commit");
        self.idempotent("commit_many", || {
            with_request_id(self.http().post(url.clone()).json(&body), request_id)
        })
        .await
    }

    /// Releases the reservation `id`: its units go back to stock.
    pub async fn release(
        &self,
        id: Uuid,
        request_id: Option<&str>,
    ) -> Result<ReservationBody, ClientError> {
        self.settle(id, "release", request_id).await
    }

    async fn settle(
        &self,
        id: Uuid,
        action: &'static str,
        request_id: Option<&str>,
    ) -> Result<ReservationBody, ClientError> {
        let url = self.url(&format!("/reservations/{id}/{action}"));
        self.idempotent(action, || {
            with_request_id(self.http().post(url.clone()), request_id)
        })
        .await
    }
}

fn with_request_id(req: reqwest::RequestBuilder, id: Option<&str>) -> reqwest::RequestBuilder {
    match id {
        Some(id) => req.header("X-Request-Id", id),
        None => req,
    }
}
