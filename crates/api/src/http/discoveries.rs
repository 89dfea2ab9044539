//! `/v1/clusters/{id}/discover`, `/v1/clusters/{id}/discoveries`, `/v1/discoveries/{id}`: a
//! cluster's inventory read by its agents and imported as a snapshot.

use super::problem::HttpError;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, StatusCode};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::inventory::{PageQuery, idempotency_key};
use super::{AppState, with_location};
use ferry_core::model::{Discovery, NewDiscovery, Page};
use ferry_service::auth::Caller;

/// Discover a cluster (operator): a connected agent of the cluster (or the first one to connect)
/// reads the whole cluster — nodes, networks, disks, groups with their resources and
/// dependencies, shares with their permissions — and the server imports it as the cluster's next
/// snapshot, exactly as `PUT /v1/clusters/{id}/inventory` would (identical content adds no
/// snapshot). Answers 202 with the discovery `running`: follow `Location` until it is
/// `completed` (with the snapshot and what changed against the one before) or `failed`.
/// Honours `Idempotency-Key` (a replay answers the discovery as first answered, with 200).
#[utoipa::path(post, path = "/v1/clusters/{id}/discover", tag = "inventory",
    request_body = NewDiscovery,
    params(("id" = String, Path, description = "Cluster id or name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer")),
    responses(
        (status = 202, description = "An agent of the cluster reads it", body = Discovery, headers(("Location" = String))),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = Discovery),
        (status = 404, description = "No such cluster", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key is in use by a request still running", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn discover(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(new): ApiJson<NewDiscovery>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (discovery, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/clusters/{id}/discover",
            key,
            &(&id, &new),
            state.service.discover(&caller, &id),
        )
        .await?;
    let status = if replayed {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    let location = format!("/v1/discoveries/{}", discovery.id);
    Ok(with_location((status, Json(discovery)), &location))
}

/// A cluster's discoveries, newest first.
#[utoipa::path(get, path = "/v1/clusters/{id}/discoveries", tag = "inventory",
    params(("id" = String, Path, description = "Cluster id or name"), PageQuery),
    responses((status = 200, description = "A page of discoveries", body = Page<Discovery>)))]
pub async fn list_discoveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<Discovery>>, HttpError> {
    Ok(Json(
        state
            .service
            .list_discoveries(&caller, &id, &page.into())
            .await?,
    ))
}

/// One discovery: `running` while its agent reads the cluster; `completed` with the snapshot it
/// produced (`created` false when nothing changed) and the counts of added, removed and changed
/// groups, shares and permission entries against the snapshot before; `failed` with why.
#[utoipa::path(get, path = "/v1/discoveries/{id}", tag = "inventory",
    params(("id" = String, Path, description = "Discovery id")),
    responses((status = 200, description = "The discovery", body = Discovery)))]
pub async fn get_discovery(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Discovery>, HttpError> {
    Ok(Json(state.service.get_discovery(&caller, &id).await?))
}
