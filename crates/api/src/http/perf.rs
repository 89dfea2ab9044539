//! `/v1/perf/...` and `/v1/clusters/{id}/perf/...`: perf sample ingest for pipelines and
//! storage servers without an agent, and the cluster-wide questions about the samples.
//!
//! Ranges: `from` and `to` are RFC 3339 times (default: the last hour), `step` a duration such
//! as `10s`, `1m` or `1h` (default `1m`). Steps are aligned to the epoch; at most 20,000.

use super::problem::HttpError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use http::header;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use ferry_core::error::{Error, Result};
use ferry_core::perf::analysis::{Placement, RedirectedInterval};
use ferry_core::perf::{Counter, Source};
use ferry_service::auth::Caller;
use ferry_service::perf::{
    FlatSample, IngestSummary, PerfRange, PlacementQuery, SeriesQuery, SeriesResult, TopBy,
    TopEntry, VolumeView, group_samples,
};

/// One batch of samples: stored whole, or refused whole with the first bad sample named.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleBatch {
    /// Cluster id or name.
    #[schema(value_type = ferry_core::model::Name)]
    pub cluster: String,
    #[schema(min_items = 1)]
    pub samples: Vec<FlatSample>,
}

/// The OpenAPI schema `Step`: a duration as `step` takes it, of at least a second: a number
/// and a unit (`s`, `m`, `h`, `d`), several summed (`1h 30m`).
pub struct Step;

impl utoipa::PartialSchema for Step {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        ferry_core::model::pattern_schema(
            "^0*[1-9][0-9]*(s|m|h|d)( ?[0-9]+(s|m|h|d))*$",
            "A duration of at least a second such as `10s`, `1m`, `1h` or `1h 30m`. The range \
             over the step must give at most 20,000 steps.",
        )
    }
}

impl ToSchema for Step {
    fn name() -> std::borrow::Cow<'static, str> {
        "Step".into()
    }
}

fn range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    step: Option<&str>,
) -> Result<PerfRange> {
    let step_ms = step
        .map(|s| {
            humantime::parse_duration(s)
                .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
                .map_err(|e| {
                    Error::invalid_field(
                        "step",
                        format!("`{s}` is not a duration like 10s, 1m or 1h: {e}"),
                    )
                })
        })
        .transpose()?;
    PerfRange::new(
        from.map(|t| t.timestamp_millis()),
        to.map(|t| t.timestamp_millis()),
        step_ms,
    )
}

/// Store a batch of samples (operator). Samples that repeat a stored (series, time) replace it;
/// late and out-of-order samples are merged where they belong. The batch is refused whole
/// (422, naming the first bad sample as `samples[i]`) when any sample is malformed: a name
/// empty or too long, a value not finite or negative, a time before 2000 or over a day ahead.
#[utoipa::path(post, path = "/v1/perf/samples", tag = "perf",
    request_body = SampleBatch,
    responses(
        (status = 200, description = "Stored", body = IngestSummary),
        (status = 404, description = "No such cluster", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 422, description = "A malformed sample; nothing was stored", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn ingest_samples(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(batch): ApiJson<SampleBatch>,
) -> Result<Json<IngestSummary>, HttpError> {
    let (series, origins) = group_samples(batch.samples);
    match state
        .service
        .ingest_perf(&caller, &batch.cluster, series)
        .await
    {
        Ok(summary) => Ok(Json(summary)),
        Err(e) => Err(flat_positions(e, &origins).into()),
    }
}

/// Rewrites `series[i].values[j]` into the sender's `samples[k]`: the batch is validated per
/// series, but the position the sender knows is its flat sample's.
fn flat_positions(mut e: Error, origins: &[Vec<usize>]) -> Error {
    for field in &mut e.fields {
        let Some(rest) = field.field.strip_prefix("series[") else {
            continue;
        };
        let Some((series, rest)) = rest.split_once(']') else {
            continue;
        };
        let Some(samples) = series.parse::<usize>().ok().and_then(|i| origins.get(i)) else {
            continue;
        };
        let nth = rest
            .strip_prefix(".values[")
            .or_else(|| rest.strip_prefix(".at["))
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        if let Some(k) = samples.get(nth) {
            let what = if rest.starts_with(".at[") {
                "at"
            } else if rest.starts_with(".values[") {
                "value"
            } else {
                rest.trim_start_matches('.')
            };
            field.field = format!("samples[{k}].{what}");
        }
    }
    if let [one] = e.fields.as_slice() {
        e.message = format!("{}: {}", one.field, one.message);
    }
    e
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Only this node (case-insensitive).
    pub node: Option<String>,
    /// Only this volume or device (case-insensitive).
    pub volume: Option<String>,
    pub counter: Option<Counter>,
    pub source: Option<Source>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[param(value_type = Option<Step>, inline)]
    pub step: Option<String>,
}

/// Per-node series of a cluster, one point per step (mean, min, max, count, and p95 where it is
/// exact), read from the raw samples or the 1-minute / 1-hour rollups the step allows.
#[utoipa::path(get, path = "/v1/clusters/{id}/perf/series", tag = "perf",
    params(("id" = String, Path, description = "Cluster id or name"), SeriesParams),
    responses((status = 200, description = "The series", body = SeriesResult)))]
pub async fn series(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SeriesParams>,
) -> Result<Json<SeriesResult>, HttpError> {
    let range = range(q.from, q.to, q.step.as_deref())?;
    let query = SeriesQuery {
        node: q.node,
        volume: q.volume,
        counter: q.counter,
        source: q.source,
    };
    Ok(Json(
        state
            .service
            .perf_series(&caller, &id, &query, range)
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct VolumeParams {
    /// The volume, e.g. `C:\ClusterStorage\Volume1` (case-insensitive).
    pub volume: String,
    /// Default `transfers_per_sec`.
    pub counter: Option<Counter>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[param(value_type = Option<Step>, inline)]
    pub step: Option<String>,
}

/// The cluster-wide view of one volume: per step, every node's I/O against it and their sum,
/// the storage server's view, and the gap between the two in percent; over the range, each
/// node's share of the sum.
#[utoipa::path(get, path = "/v1/clusters/{id}/perf/volume", tag = "perf",
    params(("id" = String, Path, description = "Cluster id or name"), VolumeParams),
    responses((status = 200, description = "The view", body = VolumeView)))]
pub async fn volume(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<VolumeParams>,
) -> Result<Response, HttpError> {
    let range = range(q.from, q.to, q.step.as_deref())?;
    let counter = q.counter.unwrap_or(Counter::TransfersPerSec);
    let view = state
        .service
        .perf_volume(&caller, &id, &q.volume, counter, range)
        .await?;
    let body = view.to_json().map_err(Error::internal)?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopParams {
    /// Rank volumes (summed over nodes, the default) or nodes (summed over volumes).
    // Inline: utoipa does not collect a schema named only by a parameter, and the reference
    // would dangle.
    #[param(inline)]
    pub by: Option<TopBy>,
    /// Default `transfers_per_sec`.
    pub counter: Option<Counter>,
    /// How many, 1 to 1000 (default 10).
    pub limit: Option<u32>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[param(value_type = Option<Step>, inline)]
    pub step: Option<String>,
}

/// The busiest volumes or nodes of a cluster over the range, by mean.
#[utoipa::path(get, path = "/v1/clusters/{id}/perf/top", tag = "perf",
    params(("id" = String, Path, description = "Cluster id or name"), TopParams),
    responses((status = 200, description = "Busiest first", body = Vec<TopEntry>)))]
pub async fn top(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<TopParams>,
) -> Result<Json<Vec<TopEntry>>, HttpError> {
    let range = range(q.from, q.to, q.step.as_deref())?;
    let limit = q.limit.unwrap_or(10);
    if !(1..=1000).contains(&limit) {
        return Err(Error::invalid_field("limit", "must be 1 to 1000").into());
    }
    Ok(Json(
        state
            .service
            .perf_top(
                &caller,
                &id,
                q.by.unwrap_or_default(),
                q.counter.unwrap_or(Counter::TransfersPerSec),
                limit as usize,
                range,
            )
            .await?,
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RedirectedParams {
    /// Only this volume (default: every volume of the cluster).
    pub volume: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    #[param(value_type = Option<Step>, inline)]
    pub step: Option<String>,
}

/// Intervals in which a volume's I/O went through one node (redirected I/O): the coordinator,
/// start and end, and the evidence — the other nodes' redirected counters, or their disk I/O
/// falling to near zero while the coordinator's rose by what they lost.
#[utoipa::path(get, path = "/v1/clusters/{id}/perf/redirected", tag = "perf",
    params(("id" = String, Path, description = "Cluster id or name"), RedirectedParams),
    responses((status = 200, description = "The intervals, by volume then time", body = Vec<RedirectedInterval>)))]
pub async fn redirected(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<RedirectedParams>,
) -> Result<Json<Vec<RedirectedInterval>>, HttpError> {
    let range = range(q.from, q.to, q.step.as_deref())?;
    Ok(Json(
        state
            .service
            .perf_redirected(&caller, &id, q.volume.as_deref(), range)
            .await?,
    ))
}

/// Load balance: each target node's p95 load against its capacity, and a placement of the
/// source cluster's groups (each at the p95 load of its disks' volumes) onto the target's nodes
/// that keeps every node under `100 - headroom_pct` percent of its capacity, with the reasoning.
#[utoipa::path(post, path = "/v1/perf/placement", tag = "perf",
    request_body = PlacementQuery,
    responses(
        (status = 200, description = "The placement; `fits` is false when some group fits nowhere", body = Placement),
        (status = 404, description = "No such cluster", body = super::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "The target has no inventory, so its nodes are unknown", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn placement(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(query): ApiJson<PlacementQuery>,
) -> Result<Json<Placement>, HttpError> {
    Ok(Json(state.service.perf_placement(&caller, &query).await?))
}
