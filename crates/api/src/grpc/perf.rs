//! `ferry.v1.PerfService`: the gRPC twin of `src/http/perf.rs`, plus the client-streaming
//! `Ingest` for pipelines that send many batches.

use std::collections::HashMap;

use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::Api;
use ferry_core::error::Error;
use ferry_core::error::Result;
use ferry_core::perf::Counter;
use ferry_protocol::convert::non_empty;
use ferry_protocol::convert::perf::{
    counter_filter, counter_to_pb, placement, redirected, series, source_filter, source_to_pb, step,
};
use ferry_protocol::pb::{self, perf_service_server::PerfService};
use ferry_service::perf::{
    IngestSummary, PerfRange, PlacementQuery, SeriesQuery, SeriesSteps, TopBy, TopEntry, VolumeView,
};

/// Rows of top N when the request leaves `limit` at 0.
const DEFAULT_TOP: usize = 10;

#[tonic::async_trait]
impl PerfService for Api {
    async fn ingest(
        &self,
        request: Request<Streaming<pb::IngestPerfRequest>>,
    ) -> Result<Response<pb::IngestPerfSummary>, Status> {
        self.call(
            "/ferry.v1.PerfService/Ingest",
            request,
            |caller, mut stream| async move {
                let mut clusters: HashMap<String, Uuid> = HashMap::new();
                let mut stored = IngestSummary::default();
                let mut index = 0u64;
                loop {
                    let message = match stream.message().await {
                        Ok(Some(message)) => message,
                        Ok(None) => break,
                        Err(status) => {
                            return Err(Error::bad_request(format!(
                                "the stream broke after {} batches ({} samples) were stored: {}",
                                stored.batches,
                                stored.samples,
                                status.message()
                            )));
                        }
                    };
                    let result = async {
                        let cluster_id = match clusters.get(&message.cluster) {
                            Some(id) => *id,
                            None => {
                                let id = self
                                    .service
                                    .perf_ingest_cluster(&caller, &message.cluster)
                                    .await?;
                                clusters.insert(message.cluster.clone(), id);
                                id
                            }
                        };
                        let series = series(message.series, "")?;
                        self.service.ingest_perf_for(cluster_id, series).await
                    }
                    .await;
                    match result {
                        Ok(summary) => {
                            stored.batches += summary.batches;
                            stored.samples += summary.samples;
                        }
                        Err(e) => {
                            return Err(Error {
                                message: format!(
                                    "batch {index}: {} ({} earlier batches, {} samples, were stored)",
                                    e.message, stored.batches, stored.samples
                                ),
                                ..e
                            });
                        }
                    }
                    index += 1;
                }
                Ok(pb::IngestPerfSummary {
                    batches: stored.batches,
                    samples: stored.samples,
                })
            },
        )
        .await
    }

    async fn query_series(
        &self,
        request: Request<pb::QuerySeriesRequest>,
    ) -> Result<Response<pb::QuerySeriesResponse>, Status> {
        self.call(
            "/ferry.v1.PerfService/QuerySeries",
            request,
            |caller, req| async move {
                let query = SeriesQuery {
                    node: non_empty(req.node),
                    volume: non_empty(req.volume),
                    counter: counter_filter(req.counter)?,
                    source: source_filter(req.source)?,
                };
                let result = self
                    .service
                    .perf_series(&caller, &req.cluster, &query, range(req.range)?)
                    .await?;
                Ok(pb::QuerySeriesResponse {
                    resolution: result.resolution,
                    series: result.series.into_iter().map(series_steps).collect(),
                })
            },
        )
        .await
    }

    async fn volume_view(
        &self,
        request: Request<pb::VolumeViewRequest>,
    ) -> Result<Response<pb::VolumeViewResponse>, Status> {
        self.call(
            "/ferry.v1.PerfService/VolumeView",
            request,
            |caller, req| async move {
                let counter = counter_filter(req.counter)?.unwrap_or(Counter::TransfersPerSec);
                let view = self
                    .service
                    .perf_volume(
                        &caller,
                        &req.cluster,
                        &req.volume,
                        counter,
                        range(req.range)?,
                    )
                    .await?;
                Ok(volume_view(view))
            },
        )
        .await
    }

    async fn top(
        &self,
        request: Request<pb::TopRequest>,
    ) -> Result<Response<pb::TopResponse>, Status> {
        self.call(
            "/ferry.v1.PerfService/Top",
            request,
            |caller, req| async move {
                let by = match req.by.as_str() {
                    "" | "volume" => TopBy::Volume,
                    "node" => TopBy::Node,
                    other => {
                        return Err(Error::invalid_field(
                            "by",
                            format!("`{other}` is not `volume` or `node`"),
                        ));
                    }
                };
                let counter = counter_filter(req.counter)?.unwrap_or(Counter::TransfersPerSec);
                let limit = match req.limit {
                    0 => DEFAULT_TOP,
                    1..=1000 => req.limit as usize,
                    _ => return Err(Error::invalid_field("limit", "must be 1 to 1000")),
                };
                let entries = self
                    .service
                    .perf_top(&caller, &req.cluster, by, counter, limit, range(req.range)?)
                    .await?;
                Ok(pb::TopResponse {
                    entries: entries.into_iter().map(top_entry).collect(),
                })
            },
        )
        .await
    }

    async fn redirected(
        &self,
        request: Request<pb::RedirectedRequest>,
    ) -> Result<Response<pb::RedirectedResponse>, Status> {
        self.call(
            "/ferry.v1.PerfService/Redirected",
            request,
            |caller, req| async move {
                let volume = non_empty(req.volume);
                let intervals = self
                    .service
                    .perf_redirected(&caller, &req.cluster, volume.as_deref(), range(req.range)?)
                    .await?;
                Ok(pb::RedirectedResponse {
                    intervals: intervals.into_iter().map(redirected).collect(),
                })
            },
        )
        .await
    }

    async fn placement(
        &self,
        request: Request<pb::PlacementRequest>,
    ) -> Result<Response<pb::PlacementResponse>, Status> {
        self.call(
            "/ferry.v1.PerfService/Placement",
            request,
            |caller, req| async move {
                let query = placement_query(req);
                Ok(placement(
                    self.service.perf_placement(&caller, &query).await?,
                ))
            },
        )
        .await
    }
}

// ---- the service's answers <-> protobuf ---------------------------------------------------------

fn range(range: Option<pb::PerfRange>) -> Result<PerfRange> {
    let r = range.unwrap_or_default();
    PerfRange::new(r.from_ms, r.to_ms, r.step_ms)
}

fn series_steps(s: SeriesSteps) -> pb::SeriesSteps {
    pb::SeriesSteps {
        node: s.node,
        volume: s.volume,
        counter: counter_to_pb(s.counter) as i32,
        source: source_to_pb(s.source) as i32,
        points: s.points.into_iter().map(step).collect(),
    }
}

fn volume_view(v: VolumeView) -> pb::VolumeViewResponse {
    pb::VolumeViewResponse {
        volume: v.volume,
        resolution: v.resolution,
        step_ms: v.step_ms,
        nodes: v.nodes,
        // gRPC keeps a message per step: protobuf packs no nullable doubles into columns, and
        // its binary floats do not have JSON's digits to save.
        steps: (0..v.steps.len())
            .map(|i| pb::VolumeStep {
                at_ms: v.steps.at_ms[i],
                node_sum: v.steps.node_sum[i],
                values: v
                    .steps
                    .values
                    .iter()
                    .map(|column| column[i].unwrap_or(f64::NAN))
                    .collect(),
                storage: v.steps.storage[i],
                gap_pct: v.steps.gap_pct[i],
            })
            .collect(),
        shares: v
            .shares
            .into_iter()
            .map(|s| pb::NodeShare {
                node: s.node,
                mean: s.mean,
                share_pct: s.share_pct,
            })
            .collect(),
        node_sum: v.node_sum,
        storage: v.storage,
        gap_pct: v.gap_pct,
    }
}

fn top_entry(e: TopEntry) -> pb::TopEntry {
    pb::TopEntry {
        name: e.name,
        mean: e.mean,
        p95: e.p95,
        peak: e.peak,
    }
}

fn placement_query(r: pb::PlacementRequest) -> PlacementQuery {
    PlacementQuery {
        source_cluster: r.source_cluster,
        target_cluster: r.target_cluster,
        from_ms: r.from_ms,
        to_ms: r.to_ms,
        capacity: r.capacity,
        capacities: r.capacities.into_iter().collect(),
        headroom_pct: r
            .headroom_pct
            .unwrap_or(ferry_service::perf::DEFAULT_HEADROOM_PCT),
        groups: r.groups,
    }
}
