//! `/reservations/{id}`: hold, read, commit and release units of several products for one order;
//! `/reservations/commit`: commit many at once (all need `right("products", "reserve")`).

use actix_web::{HttpRequest, HttpResponse, web};
use products_api::{CommitMany, CommitOutcomes, ReservationBody, ReserveRequest};
use service_kit::docs::RecordId;
use service_kit::docs::responses::{BadBody, ById, Unauthorized};
use service_kit::http::{self, authorize};
use service_kit::json::Body;
use service_kit::problem::Problem;
use service_kit::{ApiError, Operation};

use super::{ProductsState, RESOURCE};
use crate::api::{reservation_body, reserve_request};

/// Hold units of several products under the order's id, all or nothing (or shrink a
/// reservation to fewer of them).
#[utoipa::path(
    put, path = "/reservations/{id}", operation_id = "reserve", tag = "reservations",
    request_body = ReserveRequest,
    params(("id" = RecordId, Path, description = "Reservation id (the order's UUID)")),
    responses(
        (status = 201, description = "Held", body = ReservationBody),
        (status = 200, description = "The same reservation, asked again; or shrunk to fewer units of the same products (the rest given back)", body = ReservationBody),
        BadBody, Unauthorized,
        (status = 403, description = "Token lacks products:reserve", body = Problem),
        (status = 409, description = "Out of stock (`lines` names each short line), or the id holds other lines (a reservation only shrinks) or has ended", body = Problem),
        (status = 422, description = "Invalid lines, or unknown or archived products (named)", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn reserve(
    req: HttpRequest,
    id: web::Path<String>,
    body: Body,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    let caller = authorize(&req, RESOURCE, Operation::Reserve)?;
    let id = http::parse_id(&id, "reservation")?;
    let reserve = reserve_request(body.parse().await?)?;
    let reserved = state.service.reserve(&caller.user, id, reserve).await?;
    let mut res = if reserved.created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res.json(reservation_body(&reserved)))
}

/// Read a reservation.
#[utoipa::path(
    get, path = "/reservations/{id}", operation_id = "get_reservation", tag = "reservations",
    params(("id" = RecordId, Path, description = "Reservation id (UUID)")),
    responses(
        (status = 200, description = "The reservation", body = ReservationBody),
        ById, Unauthorized,
        (status = 403, description = "Token lacks products:reserve", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn get(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Reserve)?;
    let reserved = state
        .service
        .reservation(http::parse_id(&id, "reservation")?)?;
    Ok(HttpResponse::Ok().json(reservation_body(&reserved)))
}

/// Commit a held reservation: the units are sold (idempotent).
#[utoipa::path(
    post, path = "/reservations/{id}/commit", operation_id = "commit_reservation", tag = "reservations",
    params(("id" = RecordId, Path, description = "Reservation id (UUID)")),
    responses(
        (status = 200, description = "Committed", body = ReservationBody),
        ById, Unauthorized,
        (status = 403, description = "Token lacks products:reserve", body = Problem),
        (status = 409, description = "Released or expired: it can no longer be committed", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn commit(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    settle(&req, &id, &state, Settle::Commit).await
}

/// Release a reservation: its units are given back, also after a commit (idempotent).
#[utoipa::path(
    post, path = "/reservations/{id}/release", operation_id = "release_reservation", tag = "reservations",
    params(("id" = RecordId, Path, description = "Reservation id (UUID)")),
    responses(
        (status = 200, description = "Released", body = ReservationBody),
        ById, Unauthorized,
        (status = 403, description = "Token lacks products:reserve", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn release(
    req: HttpRequest,
    id: web::Path<String>,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    settle(&req, &id, &state, Settle::Release).await
}

/// What a settling call does to a reservation.
enum Settle {
    Commit,
    Release,
}

/// The body of commit and release: authorize, parse the id, settle, render.
async fn settle(
    req: &HttpRequest,
    id: &str,
    state: &ProductsState,
    action: Settle,
) -> Result<HttpResponse, ApiError> {
    authorize(req, RESOURCE, Operation::Reserve)?;
    let id = http::parse_id(id, "reservation")?;
    let reserved = match action {
        Settle::Commit => state.service.commit(id).await?,
        Settle::Release => state.service.release(id).await?,
    };
    Ok(HttpResponse::Ok().json(reservation_body(&reserved)))
}

/// Commit many reservations at once (one batch: what orders' settler sends each round).
#[utoipa::path(
    post, path = "/reservations/commit", operation_id = "commit_reservations", tag = "reservations",
    request_body = CommitMany,
    responses(
        (status = 200, description = "Each id sorted into committed (now or before), ended (released or expired) and unknown", body = CommitOutcomes),
        BadBody, Unauthorized,
        (status = 403, description = "Token lacks products:reserve", body = Problem),
    ),
    security(("bearer" = []))
)]
pub async fn commit_many(
    req: HttpRequest,
    body: Body,
    state: web::Data<ProductsState>,
) -> Result<HttpResponse, ApiError> {
    authorize(&req, RESOURCE, Operation::Reserve)?;
    let CommitMany { ids } = body.parse().await?;
    let outcomes = state.service.commit_many(&ids).await?;
    Ok(HttpResponse::Ok().json(outcomes))
}
