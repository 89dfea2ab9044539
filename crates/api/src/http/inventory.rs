//! `/v1/clusters`, snapshots and groups: the inventory half of the REST API.

use super::problem::HttpError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use utoipa::IntoParams;

use super::extract::{ApiJson, ApiPath, ApiQuery, header_str};
use super::{AppState, created_status, with_location};
use ferry_core::error::Error;
use ferry_core::model::PageParams;
use ferry_core::model::ShareFilter;
use ferry_core::model::diff::SnapshotDiff;
use ferry_core::model::{
    Cluster, ClusterPatch, GroupDetail, GroupSummary, InventoryDocument, NewCluster, Page, Share,
    Snapshot, SnapshotInfo,
};
use ferry_service::auth::Caller;

/// Cursor pagination parameters of every list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

impl From<PageQuery> for PageParams {
    fn from(q: PageQuery) -> Self {
        PageParams {
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ShareQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Only shares whose name starts with this (case-insensitive).
    #[param(max_length = 255)]
    pub name_prefix: Option<String>,
    /// Only shares with a permission entry for this principal, e.g. `CORP\Finance`.
    #[param(value_type = Option<ferry_core::model::Name>, inline)]
    pub principal: Option<String>,
}

pub(super) fn with_etag(etag: &str, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = http::HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

pub(super) fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    header_str(headers, "idempotency-key")
}

fn if_match(headers: &HeaderMap) -> Result<Option<&str>, Error> {
    header_str(headers, "if-match")
}

/// List clusters, ordered by name.
#[utoipa::path(get, path = "/v1/clusters", tag = "clusters", params(PageQuery),
    responses((status = 200, description = "A page of clusters", body = Page<Cluster>)))]
pub async fn list_clusters(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<Cluster>>, HttpError> {
    Ok(Json(
        state.service.list_clusters(&caller, &page.into()).await?,
    ))
}

/// Register a cluster. Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/clusters", tag = "clusters", request_body = NewCluster,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer")),
    responses(
        (status = 201, description = "Created", body = Cluster, headers(("ETag" = String), ("Location" = String))),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = Cluster),
        (status = 409, description = "A cluster with this name exists, or the Idempotency-Key is in use", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_cluster(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(new): ApiJson<NewCluster>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (cluster, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/clusters",
            key,
            &new,
            state.service.create_cluster(&caller, &new),
        )
        .await?;
    let status = created_status(replayed);
    let location = format!("/v1/clusters/{}", cluster.id);
    Ok(with_location(
        with_etag(&cluster.etag(), (status, Json(cluster))),
        &location,
    ))
}

/// Get a cluster by id or name.
#[utoipa::path(get, path = "/v1/clusters/{id}", tag = "clusters",
    params(("id" = String, Path, description = "Cluster id or unique name")),
    responses((status = 200, description = "The cluster", body = Cluster, headers(("ETag" = String)))))]
pub async fn get_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, HttpError> {
    let cluster = state.service.get_cluster(&caller, &id).await?;
    Ok(with_etag(&cluster.etag(), Json(cluster)))
}

/// Change a cluster's name, OS generation or description. Honours `If-Match`.
#[utoipa::path(patch, path = "/v1/clusters/{id}", tag = "clusters", request_body = ClusterPatch,
    params(("id" = String, Path, description = "Cluster id or unique name"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read; the change only happens if it is still current")),
    responses(
        (status = 200, description = "The updated cluster", body = Cluster, headers(("ETag" = String))),
        (status = 409, description = "The new name is taken", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The ETag is stale", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn update_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<ClusterPatch>,
) -> Result<Response, HttpError> {
    let cluster = state
        .service
        .update_cluster(&caller, &id, &patch, if_match(&headers)?)
        .await?;
    Ok(with_etag(&cluster.etag(), Json(cluster)))
}

/// Delete a cluster with its snapshots and inventory. Honours `If-Match`.
#[utoipa::path(delete, path = "/v1/clusters/{id}", tag = "clusters",
    params(("id" = String, Path, description = "Cluster id or unique name"),
        ("If-Match" = Option<String>, Header, description = "ETag from a previous read")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 412, description = "The ETag is stale", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete_cluster(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<StatusCode, HttpError> {
    state
        .service
        .delete_cluster(&caller, &id, if_match(&headers)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Import the cluster's whole inventory as one document. Creates a new numbered snapshot unless
/// the content equals the newest one. `If-Match` takes the newest snapshot's ETag.
#[utoipa::path(put, path = "/v1/clusters/{id}/inventory", tag = "inventory", request_body = InventoryDocument,
    params(("id" = String, Path, description = "Cluster id or unique name"),
        ("If-Match" = Option<String>, Header, description = "ETag (content hash) of the newest snapshot, or `*`")),
    responses(
        (status = 201, description = "A new snapshot was created", body = SnapshotInfo, headers(("ETag" = String))),
        (status = 200, description = "Identical to the newest snapshot, which is returned", body = SnapshotInfo, headers(("ETag" = String))),
        (status = 412, description = "The newest snapshot is not the one named by If-Match", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn import_inventory(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
    ApiJson(document): ApiJson<InventoryDocument>,
) -> Result<Response, HttpError> {
    let outcome = state
        .service
        .import_inventory(&caller, &id, document, if_match(&headers)?)
        .await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let etag = format!("\"{}\"", outcome.snapshot.content_hash);
    Ok(with_etag(&etag, (status, Json(outcome.snapshot))))
}

/// List a cluster's snapshots, oldest first.
#[utoipa::path(get, path = "/v1/clusters/{id}/snapshots", tag = "inventory",
    params(("id" = String, Path, description = "Cluster id or unique name"), PageQuery),
    responses((status = 200, description = "A page of snapshots", body = Page<SnapshotInfo>)))]
pub async fn list_snapshots(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<SnapshotInfo>>, HttpError> {
    Ok(Json(
        state
            .service
            .list_snapshots(&caller, &id, &page.into())
            .await?,
    ))
}

/// Get one snapshot with its whole inventory document.
#[utoipa::path(get, path = "/v1/clusters/{id}/snapshots/{n}", tag = "inventory",
    params(("id" = String, Path, description = "Cluster id or unique name"), ("n" = i64, Path, description = "Snapshot number")),
    responses((status = 200, description = "The snapshot", body = Snapshot, headers(("ETag" = String)))))]
pub async fn get_snapshot(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, number)): ApiPath<(String, i64)>,
) -> Result<Response, HttpError> {
    let snapshot = state.service.get_snapshot(&caller, &id, number).await?;
    let etag = format!("\"{}\"", snapshot.info.content_hash);
    Ok(with_etag(&etag, Json(snapshot)))
}

/// Diff two snapshots: what was added, removed, renamed and changed, down to single permission
/// entries.
#[utoipa::path(get, path = "/v1/clusters/{id}/snapshots/{a}/diff/{b}", tag = "inventory",
    params(("id" = String, Path, description = "Cluster id or unique name"),
        ("a" = i64, Path, description = "Snapshot to diff from"), ("b" = i64, Path, description = "Snapshot to diff to")),
    responses((status = 200, description = "The diff", body = SnapshotDiff)))]
pub async fn diff_snapshots(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, a, b)): ApiPath<(String, i64, i64)>,
) -> Result<Json<SnapshotDiff>, HttpError> {
    Ok(Json(
        state.service.diff_snapshots(&caller, &id, a, b).await?,
    ))
}

/// List a cluster's current groups, ordered by name.
#[utoipa::path(get, path = "/v1/clusters/{id}/groups", tag = "inventory",
    params(("id" = String, Path, description = "Cluster id or unique name"), PageQuery),
    responses((status = 200, description = "A page of groups", body = Page<GroupSummary>)))]
pub async fn list_groups(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Page<GroupSummary>>, HttpError> {
    Ok(Json(
        state
            .service
            .list_groups(&caller, &id, &page.into())
            .await?,
    ))
}

/// Get a group with its resources and their dependencies.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "inventory",
    params(("id" = String, Path, description = "Group id, `CLUSTER/GROUP` (URL-encoded), or a group name used by one cluster only")),
    responses(
        (status = 200, description = "The group", body = GroupDetail),
        (status = 409, description = "The name is used by several clusters", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn get_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<GroupDetail>, HttpError> {
    Ok(Json(state.service.get_group(&caller, &id).await?))
}

/// List a group's shares with their permissions, ordered by name.
#[utoipa::path(get, path = "/v1/groups/{id}/shares", tag = "inventory",
    params(("id" = String, Path, description = "Group id, `CLUSTER/GROUP` (URL-encoded), or a group name used by one cluster only"), ShareQuery),
    responses(
        (status = 200, description = "A page of shares", body = Page<Share>),
        (status = 409, description = "The name is used by several clusters", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn list_shares(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ShareQuery>,
) -> Result<Json<Page<Share>>, HttpError> {
    let filter = ShareFilter {
        name_prefix: query.name_prefix,
        principal: query.principal,
    };
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    Ok(Json(
        state
            .service
            .list_shares(&caller, &id, &filter, &page)
            .await?,
    ))
}
