//! `/v1/clusters/{id}/validations`, `/v1/validations/{id}`: a cluster's configuration checked
//! against the field notes' recommendations.

use super::problem::HttpError;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::inventory::{PageQuery, idempotency_key};
use super::{AppState, with_location};
use ferry_core::model::{NewValidation, Page, Validation, ValidationState};
use ferry_service::auth::Caller;

/// Validate a cluster's configuration (operator): every rule gives pass, warn, fail or unknown
/// (a fact nobody reported) with its evidence and a remedy, the field notes' PowerShell where
/// they give it. With `facts` in the body they are judged at once (201, `completed`). Without,
/// an agent of the cluster gathers them (`gather_facts`) and the answer is 202 with the
/// validation `gathering`: follow `Location` until it is `completed` or `failed`. Each
/// validation is kept, numbered per cluster (`version`). Honours `Idempotency-Key` (a replay
/// answers the validation as it was first answered, with 200).
#[utoipa::path(post, path = "/v1/clusters/{id}/validations", tag = "validations",
    request_body = NewValidation,
    params(("id" = String, Path, description = "Cluster id or name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer")),
    responses(
        (status = 201, description = "Judged on the posted facts", body = Validation, headers(("Location" = String))),
        (status = 202, description = "An agent is gathering the facts", body = Validation, headers(("Location" = String))),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = Validation),
        (status = 409, description = "The Idempotency-Key is in use by a request still running", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such cluster", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid facts or thresholds", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_validation(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(new): ApiJson<NewValidation>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (validation, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/clusters/{id}/validations",
            key,
            &(&id, &new),
            state.service.create_validation(&caller, &id, &new),
        )
        .await?;
    let status = match validation.state {
        _ if replayed => StatusCode::OK,
        ValidationState::Gathering => StatusCode::ACCEPTED,
        _ => StatusCode::CREATED,
    };
    let location = format!("/v1/validations/{}", validation.id);
    Ok(with_location((status, Json(validation)), &location))
}

/// A cluster's validations, newest first.
#[utoipa::path(get, path = "/v1/clusters/{id}/validations", tag = "validations",
    params(("id" = String, Path, description = "Cluster id or name"), PageQuery),
    responses((status = 200, description = "A page of validations", body = Page<Validation>)))]
pub async fn list_validations(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<Validation>>, HttpError> {
    Ok(Json(
        state
            .service
            .list_validations(&caller, &id, &page.into())
            .await?,
    ))
}

/// One validation: its facts, findings and overall verdict once `completed`; why not when
/// `failed`.
#[utoipa::path(get, path = "/v1/validations/{id}", tag = "validations",
    params(("id" = String, Path, description = "Validation id")),
    responses((status = 200, description = "The validation", body = Validation)))]
pub async fn get_validation(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Validation>, HttpError> {
    Ok(Json(state.service.get_validation(&caller, &id).await?))
}
