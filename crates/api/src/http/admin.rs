//! Tokens, the audit log, and the unauthenticated operational endpoints.

use super::problem::HttpError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, header};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::inventory::{PageQuery, idempotency_key};
use super::{AppState, created_status};
use ferry_core::model::AuditFilter;
use ferry_core::model::PageParams;
use ferry_core::model::{AuditOutcome, AuditRecord, CreatedToken, NewToken, Page, TokenInfo};
use ferry_service::auth::Caller;

/// Create an API token (admin). The secret is in the answer once and never again. Honours
/// `Idempotency-Key` (a replay carries no secret).
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = NewToken,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer, without the secret")),
    responses(
        (status = 201, description = "Created; `token` holds the secret", body = CreatedToken),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = CreatedToken),
        (status = 409, description = "A token with this name exists", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewToken>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (token, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/tokens",
            key,
            &new,
            state.service.create_token(&caller, &new),
        )
        .await?;
    let status = created_status(replayed);
    Ok((status, [(header::CACHE_CONTROL, "no-store")], Json(token)).into_response())
}

/// List API tokens (admin); secrets are never shown.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(PageQuery),
    responses((status = 200, description = "A page of tokens", body = Page<TokenInfo>)))]
pub async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<TokenInfo>>, HttpError> {
    Ok(Json(
        state.service.list_tokens(&caller, &page.into()).await?,
    ))
}

/// Revoke an API token (admin): it is refused from then on.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 200, description = "The revoked token", body = TokenInfo)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TokenInfo>, HttpError> {
    Ok(Json(state.service.revoke_token(&caller, &id).await?))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Only records by this token name.
    pub actor: Option<String>,
    /// Only this action, e.g. `cluster.create`.
    pub action: Option<String>,
    /// Only this target, e.g. `cluster:FS-OLD`.
    pub target: Option<String>,
    pub outcome: Option<AuditOutcome>,
}

/// Read the audit log, newest first.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, description = "A page of audit records", body = Page<AuditRecord>)))]
pub async fn list_audit(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Page<AuditRecord>>, HttpError> {
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        target: query.target,
        outcome: query.outcome,
    };
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    Ok(Json(
        state.service.list_audit(&caller, &filter, &page).await?,
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}

/// Who a token speaks for: what a client shows as the signed-in user and uses to offer only the
/// controls its role may use.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Me {
    pub token_id: uuid::Uuid,
    pub name: String,
    pub role: ferry_core::model::Role,
}

/// The caller: the token's id, name and role (any role).
#[utoipa::path(get, path = "/v1/me", tag = "tokens",
    responses((status = 200, description = "The caller", body = Me)))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        token_id: caller.token_id,
        name: caller.name,
        role: caller.role,
    })
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "Ready", body = Health),
        (status = 503, description = "The database is not reachable", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, HttpError> {
    state.service.ping().await?;
    Ok(Json(Health {
        status: "ready".into(),
    }))
}

/// Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Metrics", body = String, content_type = "application/openmetrics-text")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.record_periods(&state.service.periods_done());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
