//! Perf samples end to end, on SQLite and (when configured) Postgres: ingest through the agent
//! stream, REST and gRPC; refused batches; rollups against the raw samples; retention; the
//! cluster-wide view on the second field note's numbers; redirected I/O found in the
//! simulator's experiment; and a placement onto a target cluster's nodes.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tonic::transport::Channel;
use uuid::Uuid;

use ferry::auth::Caller;
use ferry::config::Config;
use ferry::model::Role;
use ferry::perf::chunk::p95_of_sorted;
use ferry::perf::{Counter, RawChunk, Resolution, Retention, SeriesKey, SeriesPoints, Source};
use ferry::protocol::pb;
use ferry::protocol::pb::perf_service_client::PerfServiceClient;
use ferry::server::start_with_store;
use ferry::service::Service;
use ferry::service::perf::{PerfRange, PlacementQuery, SeriesQuery};
use ferry::sim::{PerfModel, PerfVolume, Workload};
use ferry::store::perf::SeriesFilter;

use common::{
    BOOTSTRAP, PreparedInventory, authed, http_json, new_cluster, on_each_backend, sample_inventory,
};

const CSV: &str = "C:\\ClusterStorage\\Volume1";
const MINUTE: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn admin() -> Caller {
    Caller {
        token_id: Uuid::nil(),
        name: "test".into(),
        role: Role::Admin,
        source: None,
    }
}

/// The start of the hour two hours ago: recent enough for every resolution to be kept.
fn recent_hour() -> i64 {
    (Utc::now().timestamp_millis() / HOUR - 2) * HOUR
}

fn series(
    node: &str,
    volume: &str,
    counter: Counter,
    source: Source,
    points: &[(i64, f64)],
) -> SeriesPoints {
    SeriesPoints {
        key: SeriesKey {
            node: node.into(),
            volume: volume.into(),
            counter,
            source,
        },
        at_ms: points.iter().map(|p| p.0).collect(),
        values: points.iter().map(|p| p.1).collect(),
    }
}

fn rfc3339(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339()
}

fn query(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Every transfers/s series' point count of a cluster, by node.
/// Ingests `points` as node `n1`'s transfers per second on volume `F:` of `cluster`.
async fn ingest_one_series(service: &Service, cluster: &str, points: &[(i64, f64)]) {
    service
        .ingest_perf(
            &admin(),
            cluster,
            vec![series(
                "n1",
                "F:",
                Counter::TransfersPerSec,
                Source::Node,
                points,
            )],
        )
        .await
        .unwrap();
}

async fn stored_points(
    service: &Service,
    cluster: &str,
    from: i64,
    to: i64,
) -> BTreeMap<String, u64> {
    let result = service
        .perf_series(
            &admin(),
            cluster,
            &SeriesQuery {
                counter: Some(Counter::TransfersPerSec),
                ..Default::default()
            },
            PerfRange::new(Some(from), Some(to), Some(HOUR)).unwrap(),
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    for s in result.series {
        *out.entry(s.node).or_default() += s.points.iter().map(|p| p.count).sum::<u64>();
    }
    out
}

/// A real server on port 0 over `store`, with the bootstrap admin token.
async fn start(store: Arc<dyn ferry::store::Store>) -> ferry::server::RunningServer {
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token: Some(BOOTSTRAP.into()),
        ..Default::default()
    };
    start_with_store(&config, store).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_ingest_paths_store_and_bad_batches_store_nothing() {
    on_each_backend(|_, store| async move {
        let server = start(store.clone()).await;
        let service = server.service.clone();
        let addr = server.http_addr;
        let (status, body) = http_json(
            addr,
            "POST",
            "/v1/clusters",
            Some(BOOTSTRAP),
            Some(json!({"name": "C", "os": "ws2012r2", "description": "perf"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let t0 = recent_hour();
        let (from, to) = (t0 - HOUR, t0 + 2 * HOUR);

        // REST: a good batch, then a bad one that stores nothing.
        let sample = |node: &str, at: i64, value: Value| {
            json!({"node": node, "volume": CSV, "counter": "transfers_per_sec",
                   "source": "node", "at": rfc3339(at), "value": value})
        };
        let (status, body) = http_json(
            addr,
            "POST",
            "/v1/perf/samples",
            Some(BOOTSTRAP),
            Some(json!({"cluster": "C", "samples": [sample("rest", t0, json!(1.0)), sample("rest", t0 + 10_000, json!(2.0))]})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["samples"], 2);
        let (status, body) = http_json(
            addr,
            "POST",
            "/v1/perf/samples",
            Some(BOOTSTRAP),
            Some(json!({"cluster": "C", "samples": [
                sample("rest", t0 + 20_000, json!(3.0)),
                sample("other", t0, json!(1.0)),
                sample("rest", t0 + 30_000, json!(-4.0)),
            ]})),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert_eq!(body["errors"][0]["field"], "samples[2].value", "{body}");
        let (status, body) = http_json(
            addr,
            "POST",
            "/v1/perf/samples",
            Some(BOOTSTRAP),
            Some(json!({"cluster": "C", "samples": [sample("rest", t0, json!(1.0))], "extra": 1})),
        )
        .await;
        assert!(status == 400 || status == 422, "{status} {body}");
        let (status, _) = http_json(
            addr,
            "POST",
            "/v1/perf/samples",
            Some(BOOTSTRAP),
            Some(json!({"cluster": "nope", "samples": [sample("rest", t0, json!(1.0))]})),
        )
        .await;
        assert_eq!(status, 404);

        // gRPC: two good batches, then a bad one ends the stream naming it.
        let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = PerfServiceClient::new(channel);
        let batch = |values: Vec<f64>, offset: i64| pb::IngestPerfRequest {
            cluster: "C".into(),
            series: vec![pb::PerfSeries {
                node: "grpc".into(),
                volume: CSV.into(),
                counter: pb::PerfCounter::TransfersPerSecond as i32,
                source: pb::PerfSource::Node as i32,
                at_ms: (0..values.len() as i64).map(|i| t0 + offset + i * 10_000).collect(),
                values,
            }],
        };
        let good = vec![batch(vec![1.0, 2.0, 3.0], 0), batch(vec![4.0], 60_000)];
        let mut request = tonic::Request::new(futures::stream::iter(good.clone()));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {BOOTSTRAP}").parse().unwrap());
        let summary = client.ingest(request).await.unwrap().into_inner();
        assert_eq!((summary.batches, summary.samples), (2, 4));
        let mut bad = good.clone();
        bad.push(batch(vec![f64::NAN], 120_000));
        let mut request = tonic::Request::new(futures::stream::iter(
            vec![batch(vec![5.0], 180_000)].into_iter().chain(bad.into_iter().skip(2)),
        ));
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {BOOTSTRAP}").parse().unwrap());
        let status = client.ingest(request).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().starts_with("batch 1: series[0].values[0]"), "{}", status.message());
        assert!(status.message().contains("1 earlier batches"), "{}", status.message());

        // The agent stream: a simulated cluster's agent sends its counters.
        let sims = tempfile::tempdir().unwrap();
        let mut options = ferry::sim::SimCreateOptions::new(
            sims.path().join("C"),
            "C",
            ferry::model::OsGeneration::Ws2012r2,
        );
        options.groups = 1;
        options.shares = 1;
        options.latency_ms = 0;
        ferry::sim::create_sim_cluster(&options).unwrap();
        let (status, body) = http_json(
            addr,
            "POST",
            "/v1/join-tokens",
            Some(BOOTSTRAP),
            Some(json!({"cluster": "C", "uses": 1})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let mut agent = ferry::agent::session::AgentConfig::new(
            vec![format!("http://{}", server.grpc_addr)],
            "C",
            "C-n1",
            sims.path().join("agent"),
        );
        agent.join_token = Some(body["token"].as_str().unwrap().to_owned());
        let executor = Arc::new(
            ferry::agent::exec::NodeExecutor::new(ferry::agent::exec::Builtin::new(
                ferry::agent::exec::DriverKind::Sim,
                Some(options.dir.clone()),
            ))
            .with_perf_interval(Duration::from_millis(100)),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let agent_task = tokio::spawn(ferry::agent::session::run(agent, executor, async move {
            let _ = stopped.await;
        }));
        let now = Utc::now().timestamp_millis();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let agent_nodes = loop {
            let points = stored_points(&service, "C", now - HOUR, now + HOUR).await;
            if points.contains_key("C-n1") && points.contains_key("C-stor") {
                break points;
            }
            assert!(tokio::time::Instant::now() < deadline, "no agent samples arrived");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let _ = stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(10), agent_task).await;
        // Its own node's counters, and (as the first node) the storage server's; not the
        // other node's, which that node's agent reports.
        assert!(agent_nodes.contains_key("C-n1"), "{agent_nodes:?}");
        assert!(agent_nodes.contains_key("C-stor"), "{agent_nodes:?}");
        assert!(!agent_nodes.contains_key("C-n2"), "{agent_nodes:?}");

        let stored = stored_points(&service, "C", from, to).await;
        assert_eq!(stored.get("rest"), Some(&2), "only the good REST batch: {stored:?}");
        assert_eq!(stored.get("grpc"), Some(&5), "the good gRPC batches: {stored:?}");
        assert_eq!(stored.get("other"), None, "nothing of the refused batch: {stored:?}");

        // Queries answer over REST too, and refuse bad ranges clearly.
        let path = format!(
            "/v1/clusters/C/perf/series?{}",
            query(&[("node", "GRPC"), ("from", &rfc3339(from)), ("to", &rfc3339(to)), ("step", "1m")])
        );
        let (status, body) = http_json(addr, "GET", &path, Some(BOOTSTRAP), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["series"][0]["node"], "grpc");
        assert_eq!(body["resolution"], "1m");
        let path = format!("/v1/clusters/C/perf/series?{}", query(&[("step", "soon")]));
        let (status, body) = http_json(addr, "GET", &path, Some(BOOTSTRAP), None).await;
        assert_eq!(status, 422, "{body}");
        let path = format!("/v1/clusters/C/perf/series?{}", query(&[("step", "1s"), ("from", &rfc3339(0))]));
        let (status, body) = http_json(addr, "GET", &path, Some(BOOTSTRAP), None).await;
        assert_eq!(status, 422, "{body}");
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollups_equal_what_the_raw_samples_give() {
    on_each_backend(|_, store| async move {
        let service = Service::new(store.clone());
        store.create_cluster(&new_cluster("R")).await.unwrap();
        let t0 = recent_hour();
        // Two hours of 7-second samples, sent in three batches out of order, with duplicates
        // whose later value must win.
        let mut expected: BTreeMap<i64, f64> = BTreeMap::new();
        let mut batches: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 3];
        for i in 0..(2 * HOUR / 7_000) {
            let at = t0 + i * 7_000;
            let value = ((i * 7919) % 1000) as f64 / 3.0;
            batches[(i % 3) as usize].push((at, value));
        }
        batches[2].reverse();
        for (i, (at, _)) in batches[0].clone().iter().enumerate().step_by(5) {
            batches[1].push((*at, 5000.0 + i as f64));
        }
        for batch in &batches {
            for &(at, v) in batch {
                expected.insert(at, v);
            }
            ingest_one_series(&service, "R", batch).await;
        }
        for (step, resolution) in [(MINUTE, "1m"), (HOUR, "1h"), (7_000, "raw")] {
            let result = service
                .perf_series(
                    &admin(),
                    "R",
                    &SeriesQuery::default(),
                    PerfRange::new(Some(t0), Some(t0 + 2 * HOUR), Some(step)).unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(result.resolution, resolution);
            let points = &result.series[0].points;
            let mut buckets: BTreeMap<i64, Vec<f64>> = BTreeMap::new();
            for (&at, &v) in &expected {
                buckets
                    .entry(at.div_euclid(step) * step)
                    .or_default()
                    .push(v);
            }
            assert_eq!(points.len(), buckets.len(), "step {step}");
            for (p, (at, values)) in points.iter().zip(&buckets) {
                let mut sorted = values.clone();
                sorted.sort_by(f64::total_cmp);
                assert_eq!(p.at_ms, *at);
                assert_eq!(p.count, values.len() as u64);
                assert_eq!(p.min, sorted[0]);
                assert_eq!(p.max, *sorted.last().unwrap());
                let mean = values.iter().sum::<f64>() / values.len() as f64;
                assert!(
                    (p.mean - mean).abs() < 1e-9 * mean.max(1.0),
                    "{} vs {mean}",
                    p.mean
                );
                assert_eq!(p.p95, Some(p95_of_sorted(&sorted)), "step {step} at {at}");
            }
        }
        assert!(
            !store.perf_pending(None).await.unwrap(),
            "the query compacted every batch"
        );
    })
    .await;
}

/// A query merges its own cluster's waiting batches, so its answer has every accepted sample,
/// and leaves the other clusters' batches to the compactor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_merges_its_own_clusters_waiting_batches_only() {
    on_each_backend(|_, store| async move {
        let service = Service::new(store.clone());
        let asked = store.create_cluster(&new_cluster("ASKED")).await.unwrap();
        let other = store.create_cluster(&new_cluster("OTHER")).await.unwrap();
        let t0 = recent_hour();
        let points: Vec<(i64, f64)> = (0..30).map(|i| (t0 + i * 10_000, i as f64)).collect();
        for cluster in ["ASKED", "OTHER"] {
            ingest_one_series(&service, cluster, &points).await;
        }
        let result = service
            .perf_series(
                &admin(),
                "ASKED",
                &SeriesQuery::default(),
                PerfRange::new(Some(t0), Some(t0 + HOUR), Some(10_000)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(result.series[0].points.len(), points.len());
        assert!(!store.perf_pending(Some(asked.id)).await.unwrap());
        assert!(
            store.perf_pending(Some(other.id)).await.unwrap(),
            "another cluster's batches wait for the compactor"
        );
        let stats = service.compact_perf().await.unwrap();
        assert_eq!((stats.batches, stats.samples), (1, points.len()));
        assert!(!store.perf_pending(None).await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_exactly_the_points_past_each_horizon() {
    on_each_backend(|_, store| async move {
        let service = Service::new(store.clone());
        let cluster = store.create_cluster(&new_cluster("T")).await.unwrap();
        let t0 = recent_hour();
        let points: Vec<(i64, f64)> = (0..360).map(|i| (t0 + i * 10_000, i as f64)).collect();
        ingest_one_series(&service, "T", &points).await;
        service.compact_perf().await.unwrap();
        // Keep raw samples from 17 min 5 s in, minute rollups from minute 31, hours from t0+1h.
        let now = t0 + 2 * HOUR;
        let retention = Retention {
            raw_ms: now - (t0 + 17 * MINUTE + 5_000),
            minute_ms: now - (t0 + 31 * MINUTE),
            hour_ms: now - (t0 + HOUR),
        };
        store.expire_perf(now, &retention).await.unwrap();
        let ids: Vec<i64> = store
            .perf_series(cluster.id, &SeriesFilter::default())
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.id)
            .collect();
        let raw = store
            .perf_chunks(&ids, Resolution::Raw, t0, now)
            .await
            .unwrap();
        let kept: Vec<i64> = raw
            .iter()
            .flat_map(|c| RawChunk::decode(&c.data).unwrap().at_ms)
            .collect();
        let expected: Vec<i64> = points
            .iter()
            .map(|p| p.0)
            .filter(|&at| at >= t0 + 17 * MINUTE + 5_000)
            .collect();
        assert_eq!(kept, expected);
        let minutes = store
            .perf_chunks(&ids, Resolution::Minute, t0, now)
            .await
            .unwrap();
        let kept: Vec<i64> = minutes
            .iter()
            .flat_map(|c| ferry::perf::RollupChunk::decode(&c.data).unwrap().points)
            .map(|p| p.at_ms)
            .collect();
        assert_eq!(kept, (31..60).map(|m| t0 + m * MINUTE).collect::<Vec<_>>());
        assert!(
            store
                .perf_chunks(&ids, Resolution::Hour, t0, now)
                .await
                .unwrap()
                .is_empty()
        );
        // Once more changes nothing.
        let again = store.expire_perf(now, &retention).await.unwrap();
        assert_eq!(
            (
                again.chunks_deleted,
                again.chunks_trimmed,
                again.series_deleted
            ),
            (0, 0, 0)
        );
        // A series whose every point expired goes too.
        let later = store
            .expire_perf(now + 400 * 86_400_000, &retention)
            .await
            .unwrap();
        assert_eq!(later.series_deleted, 1);
        assert!(
            store
                .perf_series(cluster.id, &SeriesFilter::default())
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

/// The second field note: VM1 on node 1, VM2 on node 2, one CSV volume on a storage server.
fn experiment(redirected: bool, storage_server: &str) -> PerfModel {
    let workload = |name: &str, node: &str, iops: f64| Workload {
        name: name.into(),
        node: node.into(),
        volume: CSV.into(),
        iops,
        read_fraction: 0.6,
        io_bytes: 8192.0,
        start_secs: 0.0,
        ramp_secs: 0.0,
        stop_secs: None,
    };
    PerfModel {
        storage_server: storage_server.into(),
        cycle_secs: 0,
        noise: 0.01,
        storage_share: 1505.0 / 1582.0,
        volumes: vec![PerfVolume {
            name: CSV.into(),
            csv: true,
            coordinator: "node1".into(),
            redirected,
            base_latency_ms: 2.0,
        }],
        workloads: vec![
            workload("VM1", "node1", 867.0),
            workload("VM2", "node2", 715.0),
        ],
    }
}

/// Samples of `model` every 10 s over `[from, to)`, as the agents would send them.
fn samples(model: &PerfModel, from: i64, to: i64) -> Vec<SeriesPoints> {
    let nodes = ["node1".to_string(), "node2".to_string()];
    let mut out = Vec::new();
    for at in (from..to).step_by(10_000) {
        let snapshot = model.sample(7, "E", &nodes, DateTime::from_timestamp_millis(at).unwrap());
        for c in snapshot.counters {
            let source = if c.node == model.storage_server {
                Source::Storage
            } else {
                Source::Node
            };
            out.push(series(
                &c.node,
                &c.volume,
                Counter::TransfersPerSec,
                source,
                &[(at, c.transfers_per_sec)],
            ));
            if source == Source::Node {
                let redirected = c.redirected_reads_per_sec + c.redirected_writes_per_sec;
                out.push(series(
                    &c.node,
                    &c.volume,
                    Counter::RedirectedReadsPerSec,
                    Source::Csv,
                    &[(at, redirected)],
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_wide_view_and_storage_gap_on_the_notes_numbers() {
    on_each_backend(|_, store| async move {
        let service = Service::new(store.clone());
        store.create_cluster(&new_cluster("E")).await.unwrap();
        let t0 = recent_hour();
        // The note's readings: 867 and 715 IOPS on the nodes, 1505 on the storage server.
        let mut batch = Vec::new();
        for i in 0..30 {
            let at = t0 + i * 10_000;
            batch.push(series(
                "node1",
                CSV,
                Counter::TransfersPerSec,
                Source::Node,
                &[(at, 867.0)],
            ));
            batch.push(series(
                "node2",
                CSV,
                Counter::TransfersPerSec,
                Source::Node,
                &[(at, 715.0)],
            ));
            batch.push(series(
                "stor",
                CSV,
                Counter::TransfersPerSec,
                Source::Storage,
                &[(at, 1505.0)],
            ));
        }
        service.ingest_perf(&admin(), "E", batch).await.unwrap();
        let view = service
            .perf_volume(
                &admin(),
                "E",
                "c:\\clusterstorage\\volume1",
                Counter::TransfersPerSec,
                PerfRange::new(Some(t0), Some(t0 + 5 * MINUTE), Some(MINUTE)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(view.nodes, vec!["node1", "node2"]);
        let steps = &view.steps;
        assert_eq!(steps.len(), 5);
        assert_eq!(
            steps.at_ms,
            (0..5).map(|i| t0 + i * MINUTE).collect::<Vec<_>>()
        );
        assert_eq!(
            steps.values,
            vec![vec![Some(867.0); 5], vec![Some(715.0); 5]]
        );
        assert_eq!(steps.node_sum, vec![Some(1582.0); 5]);
        assert_eq!(steps.storage, vec![Some(1505.0); 5]);
        for gap in &steps.gap_pct {
            let gap = gap.unwrap();
            assert!(
                (gap - (1505.0 - 1582.0) / 1505.0 * 100.0).abs() < 1e-9,
                "{gap}"
            );
        }
        assert!((view.shares[0].share_pct - 867.0 / 1582.0 * 100.0).abs() < 1e-9);
        assert!((view.shares[1].share_pct - 715.0 / 1582.0 * 100.0).abs() < 1e-9);
        assert!(
            (view.gap_pct.unwrap() + 5.116).abs() < 0.001,
            "{:?}",
            view.gap_pct
        );

        let top = service
            .perf_top(
                &admin(),
                "E",
                ferry::service::perf::TopBy::Node,
                Counter::TransfersPerSec,
                1,
                PerfRange::new(Some(t0), Some(t0 + 5 * MINUTE), Some(MINUTE)).unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(top.len(), 1);
        assert_eq!((top[0].name.as_str(), top[0].mean), ("node1", 867.0));
        let missing = service
            .perf_volume(
                &admin(),
                "E",
                "D:",
                Counter::TransfersPerSec,
                PerfRange::new(Some(t0), Some(t0 + 5 * MINUTE), Some(MINUTE)).unwrap(),
            )
            .await
            .unwrap_err();
        assert_eq!(missing.code, ferry::error::ErrorCode::NotFound);
    })
    .await;
}

/// The console draws this answer as it comes: one column per series, every column as long as
/// `at_ms`, gaps as null, values cut to six significant digits (the means over the range are not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_view_over_http_is_aligned_columns() {
    on_each_backend(|_, store| async move {
        let server = start(store.clone()).await;
        let addr = server.http_addr;
        let (status, body) = http_json(
            addr,
            "POST",
            "/v1/clusters",
            Some(BOOTSTRAP),
            Some(json!({"name": "V", "os": "ws2012r2"})),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let t0 = recent_hour();
        let sample = |node: &str, source: &str, at: i64, value: f64| {
            json!({"node": node, "volume": CSV, "counter": "transfers_per_sec",
                   "source": source, "at": rfc3339(at), "value": value})
        };
        // node1 every 10 s of three minutes at 1000/3; node2 only in the first minute at 2e6/3;
        // the storage server only in the second minute.
        let mut samples = Vec::new();
        for i in 0..18 {
            samples.push(sample("node1", "node", t0 + i * 10_000, 1000.0 / 3.0));
            if i < 6 {
                samples.push(sample("node2", "node", t0 + i * 10_000, 2e6 / 3.0));
            } else if i < 12 {
                samples.push(sample("array", "storage", t0 + i * 10_000, 1e6));
            }
        }
        let (status, body) = http_json(
            addr,
            "POST",
            "/v1/perf/samples",
            Some(BOOTSTRAP),
            Some(json!({"cluster": "V", "samples": samples})),
        )
        .await;
        assert_eq!(status, 200, "{body}");

        let query = format!(
            "volume={}&from={}&to={}&step=1m",
            CSV.replace('\\', "%5C").replace(':', "%3A"),
            rfc3339(t0).replace('+', "%2B"),
            rfc3339(t0 + 4 * MINUTE).replace('+', "%2B"),
        );
        let (status, view) = http_json(
            addr,
            "GET",
            &format!("/v1/clusters/V/perf/volume?{query}"),
            Some(BOOTSTRAP),
            None,
        )
        .await;
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["nodes"], json!(["node1", "node2"]), "{view}");
        let steps = &view["steps"];
        let at: Vec<i64> = (0..4).map(|i| t0 + i * MINUTE).collect();
        assert_eq!(steps["at_ms"], json!(at), "{view}");
        // Numbers as a JSON reader gets them: 667000 and 667000.0 are the same number.
        let column = |v: &Value| -> Vec<Option<f64>> {
            v.as_array()
                .unwrap_or_else(|| panic!("a column: {view}"))
                .iter()
                .map(Value::as_f64)
                .collect()
        };
        let third = Some(333.333);
        let values = steps["values"].as_array().unwrap();
        assert_eq!(values.len(), 2, "{view}");
        assert_eq!(column(&values[0]), vec![third, third, third, None]);
        assert_eq!(column(&values[1]), vec![Some(666_667.0), None, None, None]);
        assert_eq!(
            column(&steps["node_sum"]),
            vec![Some(667_000.0), third, third, None]
        );
        assert_eq!(column(&steps["storage"]), vec![None, Some(1e6), None, None]);
        assert_eq!(
            column(&steps["gap_pct"]),
            vec![None, Some(99.9667), None, None]
        );
        // The range's means keep every digit.
        let node_sum = view["node_sum"].as_f64().unwrap();
        let exact = (2e6 / 3.0 + 1000.0 / 3.0 + 2.0 * 1000.0 / 3.0) / 3.0;
        assert!((node_sum - exact).abs() < 1e-9, "{view}");
        server.stop().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirected_io_is_found_with_its_coordinator_and_boundaries() {
    on_each_backend(|_, store| async move {
        let service = Service::new(store.clone());
        store.create_cluster(&new_cluster("E")).await.unwrap();
        store.create_cluster(&new_cluster("B")).await.unwrap();
        let t0 = recent_hour();
        // Ten minutes direct, ten redirected, ten direct again.
        let (normal, redirected) = (experiment(false, "stor"), experiment(true, "stor"));
        let mut batch = samples(&normal, t0, t0 + 10 * MINUTE);
        batch.extend(samples(&redirected, t0 + 10 * MINUTE, t0 + 20 * MINUTE));
        batch.extend(samples(&normal, t0 + 20 * MINUTE, t0 + 30 * MINUTE));
        service.ingest_perf(&admin(), "E", batch).await.unwrap();
        let range = PerfRange::new(Some(t0), Some(t0 + 30 * MINUTE), Some(MINUTE)).unwrap();
        let found = service
            .perf_redirected(&admin(), "E", None, range)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{found:#?}");
        let interval = &found[0];
        assert_eq!(interval.volume, CSV);
        assert_eq!(interval.coordinator, "node1");
        assert_eq!(
            (interval.start_ms, interval.end_ms),
            (t0 + 10 * MINUTE, t0 + 20 * MINUTE)
        );
        assert!(
            interval.evidence.coordinator_share_pct > 99.0,
            "{interval:#?}"
        );
        assert!(
            (interval.evidence.redirected - 715.0).abs() < 15.0,
            "{interval:#?}"
        );
        assert!(
            (interval.evidence.node_sum - 1582.0).abs() < 20.0,
            "{interval:#?}"
        );
        let storage = interval.evidence.storage.unwrap();
        assert!((storage - 1505.0).abs() < 20.0, "{interval:#?}");

        // The balanced run of the same workloads: nothing.
        service
            .ingest_perf(&admin(), "B", samples(&normal, t0, t0 + 30 * MINUTE))
            .await
            .unwrap();
        let found = service
            .perf_redirected(&admin(), "B", None, range)
            .await
            .unwrap();
        assert!(found.is_empty(), "{found:#?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_keeps_every_target_node_under_its_headroom() {
    on_each_backend(|_, store| async move {
        let service = Service::new(store.clone());
        let source = store.create_cluster(&new_cluster("SRC")).await.unwrap();
        let target = store.create_cluster(&new_cluster("DST")).await.unwrap();
        // Three groups on E:, F: and G: (sample_inventory), two nodes on each cluster.
        for cluster in [&source, &target] {
            let inventory = PreparedInventory::new(sample_inventory(3, 1, 1));
            store
                .import_inventory(inventory.import(cluster.id))
                .await
                .unwrap();
        }
        let t0 = recent_hour();
        let steady = |node: &str, volume: &str, value: f64| {
            let points: Vec<(i64, f64)> = (0..60).map(|i| (t0 + i * 10_000, value)).collect();
            series(
                node,
                volume,
                Counter::TransfersPerSec,
                Source::Node,
                &points,
            )
        };
        service
            .ingest_perf(
                &admin(),
                "SRC",
                vec![
                    steady("NODE1", "E:", 400.0),
                    steady("NODE2", "F:\\", 300.0),
                    steady("NODE1", "G:", 100.0),
                ],
            )
            .await
            .unwrap();
        service
            .ingest_perf(
                &admin(),
                "DST",
                vec![steady("NODE1", "X:", 500.0), steady("NODE2", "Y:", 100.0)],
            )
            .await
            .unwrap();
        let query = PlacementQuery {
            source_cluster: "SRC".into(),
            target_cluster: "DST".into(),
            from_ms: Some(t0),
            to_ms: Some(t0 + 10 * MINUTE),
            capacity: 1000.0,
            capacities: BTreeMap::new(),
            headroom_pct: 20.0,
            groups: Vec::new(),
        };
        let placement = service.perf_placement(&admin(), &query).await.unwrap();
        assert!(placement.fits, "{placement:#?}");
        let assigned: Vec<(&str, &str)> = placement
            .assignments
            .iter()
            .map(|a| (a.group.as_str(), a.node.as_str()))
            .collect();
        let groups: Vec<String> = sample_inventory(3, 1, 1)
            .groups
            .into_iter()
            .map(|g| g.name)
            .collect();
        assert_eq!(
            assigned,
            vec![
                (groups[0].as_str(), "NODE2"),
                (groups[1].as_str(), "NODE1"),
                (groups[2].as_str(), "NODE2")
            ],
            "{placement:#?}"
        );
        for node in &placement.nodes {
            assert!(node.planned <= node.limit, "{node:?}");
        }
        assert!(!placement.reasoning.is_empty());

        let tight = PlacementQuery {
            capacity: 600.0,
            ..query.clone()
        };
        let placement = service.perf_placement(&admin(), &tight).await.unwrap();
        assert!(!placement.fits);
        assert_eq!(placement.unplaced[0].group, groups[0]);
        let bad = PlacementQuery {
            headroom_pct: 120.0,
            ..query
        };
        assert_eq!(
            service
                .perf_placement(&admin(), &bad)
                .await
                .unwrap_err()
                .fields[0]
                .field,
            "headroom_pct"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_answers_the_perf_questions_and_runs_validations() {
    use ferry::protocol::pb::validation_service_client::ValidationServiceClient;
    on_each_backend(|_, store| async move {
        let server = start(store.clone()).await;
        server
            .service
            .create_cluster(&admin(), &new_cluster("G"))
            .await
            .unwrap();
        let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let t0 = recent_hour();
        let (normal, redirected) = (experiment(false, "stor"), experiment(true, "stor"));
        let mut points = samples(&normal, t0, t0 + 10 * MINUTE);
        points.extend(samples(&redirected, t0 + 10 * MINUTE, t0 + 20 * MINUTE));
        let series: Vec<pb::PerfSeries> = points
            .into_iter()
            .map(|s| pb::PerfSeries {
                node: s.key.node,
                volume: s.key.volume,
                counter: ferry::protocol::convert::perf::counter_to_pb(s.key.counter) as i32,
                source: match s.key.source {
                    Source::Node => pb::PerfSource::Node,
                    Source::Storage => pb::PerfSource::Storage,
                    Source::Csv => pb::PerfSource::Csv,
                } as i32,
                at_ms: s.at_ms,
                values: s.values,
            })
            .collect();
        let mut perf = PerfServiceClient::new(channel.clone());
        let request = pb::IngestPerfRequest {
            cluster: "G".into(),
            series,
        };
        perf.ingest(authed(BOOTSTRAP, futures::stream::iter(vec![request])))
            .await
            .unwrap();
        let range = Some(pb::PerfRange {
            from_ms: Some(t0),
            to_ms: Some(t0 + 10 * MINUTE),
            step_ms: Some(MINUTE),
        });
        let view = perf
            .volume_view(authed(
                BOOTSTRAP,
                pb::VolumeViewRequest {
                    cluster: "G".into(),
                    volume: CSV.into(),
                    range,
                    counter: 0,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(view.nodes, vec!["node1", "node2"]);
        assert_eq!(view.steps.len(), 10);
        assert!((view.node_sum.unwrap() - 1582.0).abs() < 20.0, "{view:?}");
        assert!((view.storage.unwrap() - 1505.0).abs() < 20.0, "{view:?}");
        assert!((view.gap_pct.unwrap() + 5.1).abs() < 1.0, "{view:?}");
        let top = perf
            .top(authed(
                BOOTSTRAP,
                pb::TopRequest {
                    cluster: "G".into(),
                    range,
                    by: "node".into(),
                    counter: 0,
                    limit: 0,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(top.entries[0].name, "node1");
        let series = perf
            .query_series(authed(
                BOOTSTRAP,
                pb::QuerySeriesRequest {
                    cluster: "G".into(),
                    range,
                    node: "NODE2".into(),
                    counter: pb::PerfCounter::TransfersPerSecond as i32,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(series.series.len(), 1);
        assert_eq!(series.series[0].points.len(), 10);
        let found = perf
            .redirected(authed(
                BOOTSTRAP,
                pb::RedirectedRequest {
                    cluster: "G".into(),
                    range: Some(pb::PerfRange {
                        from_ms: Some(t0),
                        to_ms: Some(t0 + 20 * MINUTE),
                        step_ms: Some(MINUTE),
                    }),
                    volume: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.intervals.len(), 1);
        assert_eq!(found.intervals[0].coordinator, "node1");
        assert_eq!(found.intervals[0].start_ms, t0 + 10 * MINUTE);
        let bad = perf
            .top(authed(
                BOOTSTRAP,
                pb::TopRequest {
                    cluster: "G".into(),
                    by: "disk".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        let placement = pb::PlacementRequest {
            source_cluster: "G".into(),
            target_cluster: "G".into(),
            capacity: 2000.0,
            ..Default::default()
        };
        let no_inventory = perf
            .placement(authed(BOOTSTRAP, placement.clone()))
            .await
            .unwrap_err();
        assert_eq!(no_inventory.code(), tonic::Code::FailedPrecondition);
        let bad = perf
            .placement(authed(
                BOOTSTRAP,
                pb::PlacementRequest {
                    headroom_pct: Some(-1.0),
                    ..placement
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(bad.message().contains("headroom_pct"), "{}", bad.message());

        // Validations: posted facts with NTLM off on a node fail; a replay answers the same.
        let mut validations = ValidationServiceClient::new(channel);
        let node = |name: &str, ntlm: bool| pb::NodeFacts {
            name: name.into(),
            ntlm_enabled: Some(ntlm),
            ..Default::default()
        };
        let create = pb::CreateValidationRequest {
            cluster: "G".into(),
            facts: Some(pb::ConfigFacts {
                nodes: vec![node("node1", true), node("node2", false)],
                ..Default::default()
            }),
            thresholds: None,
            idempotency_key: "v-1".into(),
        };
        let created = validations
            .create_validation(authed(BOOTSTRAP, create.clone()))
            .await
            .unwrap()
            .into_inner();
        assert!(!created.replayed);
        let validation = created.validation.unwrap();
        assert_eq!(validation.state, pb::ValidationState::Completed as i32);
        assert_eq!(validation.overall, pb::Verdict::Fail as i32);
        let ntlm = validation
            .findings
            .iter()
            .find(|f| f.rule.contains("ntlm"))
            .unwrap();
        assert_eq!(ntlm.verdict, pb::Verdict::Fail as i32);
        assert!(
            ntlm.evidence.iter().any(|e| e.contains("node2")),
            "{ntlm:?}"
        );
        let replay = validations
            .create_validation(authed(BOOTSTRAP, create.clone()))
            .await
            .unwrap()
            .into_inner();
        assert!(replay.replayed);
        assert_eq!(replay.validation.unwrap().id, validation.id);
        let got = validations
            .get_validation(authed(
                BOOTSTRAP,
                pb::GetValidationRequest {
                    id: validation.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, validation);
        let listed = validations
            .list_validations(authed(
                BOOTSTRAP,
                pb::ListValidationsRequest {
                    cluster: "G".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.validations.len(), 1);
        let bad = validations
            .create_validation(authed(
                BOOTSTRAP,
                pb::CreateValidationRequest {
                    thresholds: Some(pb::ValidationThresholds {
                        csv_free_warn_percent: 10.0,
                        csv_free_fail_percent: 30.0,
                    }),
                    idempotency_key: String::new(),
                    ..create
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), tonic::Code::InvalidArgument);
        assert!(
            bad.message().contains("csv_free_fail_percent"),
            "{}",
            bad.message()
        );
        server.stop().await.unwrap();
    })
    .await;
}
