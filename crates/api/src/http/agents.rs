//! `/v1/agents`, `/v1/tasks` and `/v1/join-tokens`: agents as operators see them, and tasks run
//! by hand.

use super::problem::HttpError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::inventory::idempotency_key;
use super::{AppState, created_status, with_location};
use ferry_core::model::PageParams;
use ferry_core::model::{Action, Agent, CreatedJoinToken, NewJoinToken, Page, Task};
use ferry_service::auth::Caller;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AgentQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Only agents of this cluster (id or name); 404 when there is none.
    #[param(min_length = 1)]
    pub cluster: Option<String>,
}

/// Create a join token (admin): `ferry agent --join-token` exchanges it for an agent identity.
/// It expires (default 30 minutes) and allows one enrollment unless `uses` says more. The secret
/// is in the answer once. Honours `Idempotency-Key` (a replay carries no secret).
#[utoipa::path(post, path = "/v1/join-tokens", tag = "agents", request_body = NewJoinToken,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer, without the secret")),
    responses(
        (status = 201, description = "Created; `token` holds the secret", body = CreatedJoinToken),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = CreatedJoinToken),
        (status = 404, description = "No such cluster", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The Idempotency-Key is in use", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_join_token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewJoinToken>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (token, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/join-tokens",
            key,
            &new,
            state.service.create_join_token(&caller, &new),
        )
        .await?;
    let status = created_status(replayed);
    Ok((status, [(header::CACHE_CONTROL, "no-store")], Json(token)).into_response())
}

/// List agents in enrollment order, with the state their server last recorded.
#[utoipa::path(get, path = "/v1/agents", tag = "agents", params(AgentQuery),
    responses((status = 200, description = "A page of agents", body = Page<Agent>),
        (status = 404, description = "No such cluster", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn list_agents(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AgentQuery>,
) -> Result<Json<Page<Agent>>, HttpError> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    Ok(Json(
        state
            .service
            .list_agents(&caller, query.cluster.as_deref(), &page)
            .await?,
    ))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, description = "The agent", body = Agent)))]
pub async fn get_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Agent>, HttpError> {
    Ok(Json(state.service.get_agent(&caller, &id).await?))
}

/// Revoke an agent (admin): its stream is closed at once and its secret refused from then on.
/// Its pending tasks are cancelled and its tasks in flight marked lost.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, description = "The revoked agent", body = Agent)))]
pub async fn revoke_agent(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Agent>, HttpError> {
    Ok(Json(state.service.revoke_agent(&caller, &id).await?))
}

/// Run one action on an agent (operator). The task is stored, then sent at once if the agent is
/// connected, or when it next connects; follow it with `GET /v1/tasks/{id}`. Honours
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/agents/{id}/tasks", tag = "agents", request_body = Action,
    params(("id" = String, Path, description = "Agent id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer")),
    responses(
        (status = 201, description = "Stored (and sent when the agent is connected)", body = Task, headers(("Location" = String))),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = Task),
        (status = 409, description = "The agent is revoked, or the Idempotency-Key is in use", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn run_task(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(agent_id): ApiPath<String>,
    ApiJson(action): ApiJson<Action>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (task, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/agents/{id}/tasks",
            key,
            &(&agent_id, &action),
            state.service.run_task(&caller, &agent_id, &action),
        )
        .await?;
    let location = format!("/v1/tasks/{}", task.id);
    Ok(with_location(
        (created_status(replayed), Json(task)),
        &location,
    ))
}

/// Run one cluster operation on whichever agent of the cluster is connected (operator). Actions
/// that read one node's disks (`skeleton_copy`, `share_scan`) are refused here: post them to
/// that node's agent. With no agent connected the task waits for the first one. Honours
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/clusters/{id}/tasks", tag = "agents", request_body = ferry_core::model::ClusterAction,
    params(("id" = String, Path, description = "Cluster id or unique name"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer")),
    responses(
        (status = 201, description = "Stored (and sent when an agent of the cluster is connected)", body = Task, headers(("Location" = String))),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = Task),
        (status = 409, description = "The Idempotency-Key is in use", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn run_cluster_task(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiPath(cluster): ApiPath<String>,
    ApiJson(action): ApiJson<Action>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (task, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/clusters/{id}/tasks",
            key,
            &(&cluster, &action),
            state.service.run_cluster_task(&caller, &cluster, &action),
        )
        .await?;
    let location = format!("/v1/tasks/{}", task.id);
    Ok(with_location(
        (created_status(replayed), Json(task)),
        &location,
    ))
}

/// One task with its state, progress, and result or error.
#[utoipa::path(get, path = "/v1/tasks/{id}", tag = "agents",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, description = "The task", body = Task)))]
pub async fn get_task(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>, HttpError> {
    Ok(Json(state.service.get_task(&caller, &id).await?))
}
