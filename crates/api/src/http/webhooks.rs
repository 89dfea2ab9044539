//! `/v1/webhooks`: receivers of job events (admin).

use super::problem::HttpError;
use axum::Json;
use axum::extract::State;
use axum::response::Response;
use http::{HeaderMap, header};

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::inventory::{PageQuery, idempotency_key};
use super::{AppState, created_status, with_location};
use ferry_core::model::{CreatedWebhook, NewWebhook, Page, WebhookInfo};
use ferry_service::auth::Caller;

/// Register a webhook (admin). Job events newer than the newest one now (of `job_id` only, when
/// given) are posted to `url` in sequence order, up to 100 per request, as
/// `{"events": [JobEvent...]}` with `Content-Type: application/json`, `X-Ferry-Webhook-Id`,
/// `X-Ferry-Delivery` (the last `seq` in the batch) and `X-Ferry-Signature:
/// sha256=<hex HMAC-SHA256 of the exact body bytes, keyed with the secret>`. A 2xx answer
/// acknowledges the batch; anything else, no answer within 10 s, or no connection is retried
/// after 1 s, 2 s, 4 s ... (at most 10 minutes, with jitter) with the same events: none is
/// skipped. Delivery is at least once, so receivers dedupe by `seq`. `http://` and `https://`
/// URLs are accepted; an HTTPS receiver's certificate must verify against the public web roots,
/// or against the server's `webhook_ca` when set, and a redirect is a failed delivery (never
/// followed). The secret (generated when not given) is in the answer once and never again.
/// Honours `Idempotency-Key` (a replay carries no secret).
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer, without the secret")),
    responses(
        (status = 201, description = "Created; `secret` holds the signing key", body = CreatedWebhook, headers(("Location" = String))),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = CreatedWebhook),
        (status = 409, description = "The Idempotency-Key is in use by a request still running", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewWebhook>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (hook, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/webhooks",
            key,
            &new,
            state.service.create_webhook(&caller, &new),
        )
        .await?;
    let location = format!("/v1/webhooks/{}", hook.info.id);
    Ok(with_location(
        (
            created_status(replayed),
            [(header::CACHE_CONTROL, "no-store")],
            Json(hook),
        ),
        &location,
    ))
}

/// List webhooks (admin), oldest first, with their delivery state; secrets are never shown.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks", params(PageQuery),
    responses((status = 200, description = "A page of webhooks", body = Page<WebhookInfo>)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<WebhookInfo>>, HttpError> {
    Ok(Json(
        state.service.list_webhooks(&caller, &page.into()).await?,
    ))
}

/// Delete a webhook (admin): nothing more is posted to it. A delivery already in flight may
/// still arrive.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, description = "The deleted webhook", body = WebhookInfo)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<WebhookInfo>, HttpError> {
    Ok(Json(state.service.delete_webhook(&caller, &id).await?))
}
