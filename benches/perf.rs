//! Perf samples: ingest through the gRPC stream against the databases' own bulk loaders, and the
//! cluster-wide view of a volume over a day. Prints tables; asserts nothing about time.
//!
//! Ingest: the same samples (100 nodes x 10 volumes, one counter, 10-second interval) go as rows,
//! from a CSV file, into SQLite by the `sqlite3` shell's `.import` and into Postgres by `psql
//! \copy` (the baselines, run in this same process run), and through `PerfService.Ingest` (one
//! gRPC stream, batches of 1,000 series x 60 samples) into a real server on each database.
//! Reported: samples per second of each, Ferry's as a share of its baseline's, and the time the
//! compactor then takes to merge everything into chunks and rollups.
//!
//! Query: a day of those samples (8.64 million), compacted; then the cluster-wide view of one
//! volume over 24 hours at 1-minute steps (`Service::perf_volume`, and `GET
//! /v1/clusters/{id}/perf/volume` over HTTP), p50 / p99 / max, the size of its JSON, and the
//! time writing that JSON and reading it take alone.
//!
//! Run: `cargo bench --bench perf` (options after `--`: `--minutes N` of ingest data, default
//! 170 = 1.02 million samples; `--queries N`, default 200; `--only ingest` or `--only query`).
//! Postgres runs when `FERRY_BENCH_POSTGRES_URL` or `FERRY_TEST_POSTGRES_URL` is set.

#[path = "support/postgres.rs"]
mod postgres;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::auth::Caller;
use ferry::config::Config;
use ferry::model::{NewCluster, OsGeneration, Role};
use ferry::perf::{Counter, SeriesKey, SeriesPoints, Source};
use ferry::protocol::pb;
use ferry::protocol::pb::perf_service_client::PerfServiceClient;
use ferry::service::perf::PerfRange;
use ferry::store::Store;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NODES: usize = 100;
const VOLUMES: usize = 10;
const INTERVAL_MS: i64 = 10_000;
const BOOTSTRAP: &str = "bench-bootstrap-secret-0123456789";

fn node(n: usize) -> String {
    format!("node{n:03}")
}

fn volume(v: usize) -> String {
    format!("C:\\ClusterStorage\\Volume{v}")
}

/// A reading that looks like a disk counter: a per-series level plus wandering noise.
fn value(series: usize, step: i64) -> f64 {
    let level = 200.0 + (series * 37 % 700) as f64;
    let noise = ((series as i64 * 7919 + step * 104_729) % 1000) as f64 / 10.0;
    ((level + noise) * 100.0).round() / 100.0
}

/// `steps` samples of every series from `start`, as gRPC batches of 60 steps.
fn batches(start: i64, steps: i64) -> Vec<pb::IngestPerfRequest> {
    let mut out = Vec::new();
    let mut first = 0;
    while first < steps {
        let n = 60.min(steps - first);
        let mut series = Vec::with_capacity(NODES * VOLUMES);
        for s in 0..NODES * VOLUMES {
            series.push(pb::PerfSeries {
                node: node(s / VOLUMES),
                volume: volume(s % VOLUMES),
                counter: pb::PerfCounter::TransfersPerSecond as i32,
                source: pb::PerfSource::Node as i32,
                at_ms: (first..first + n)
                    .map(|i| start + i * INTERVAL_MS)
                    .collect(),
                values: (first..first + n).map(|i| value(s, i)).collect(),
            });
        }
        out.push(pb::IngestPerfRequest {
            cluster: "BENCH".into(),
            series,
        });
        first += n;
    }
    out
}

fn write_csv(path: &Path, batches: &[pb::IngestPerfRequest]) -> usize {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rows = 0;
    for b in batches {
        for s in &b.series {
            for (at, v) in s.at_ms.iter().zip(&s.values) {
                writeln!(
                    file,
                    "BENCH,{},{},transfers_per_sec,node,{at},{v}",
                    s.node, s.volume
                )
                .unwrap();
                rows += 1;
            }
        }
    }
    file.flush().unwrap();
    rows
}

const ROW_TABLE: &str = "CREATE TABLE samples (cluster TEXT, node TEXT, volume TEXT, \
                         counter TEXT, source TEXT, at_ms BIGINT, value DOUBLE PRECISION)";

fn sqlite_import(dir: &Path, csv: &Path) -> Duration {
    let db = dir.join("baseline.db");
    let status = Command::new("sqlite3")
        .arg(&db)
        .arg(format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; {ROW_TABLE};"
        ))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the sqlite3 shell (Debian package sqlite3)");
    assert!(status.success());
    let started = Instant::now();
    let status = Command::new("sqlite3")
        .arg(&db)
        .arg("-cmd")
        .arg("PRAGMA synchronous=NORMAL;")
        .arg(format!(".import --csv {} samples", csv.display()))
        .status()
        .unwrap();
    let took = started.elapsed();
    assert!(status.success());
    took
}

async fn psql_copy(server_url: &str, csv: &Path) -> Duration {
    let url = postgres::fresh_database(server_url).await;
    let status = Command::new("psql")
        .args(["-q", "-v", "ON_ERROR_STOP=1", &url, "-c", ROW_TABLE])
        .status()
        .expect("psql");
    assert!(status.success());
    let started = Instant::now();
    let status = Command::new("psql")
        .args([
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            &url,
            "-c",
            &format!("\\copy samples FROM '{}' WITH (FORMAT csv)", csv.display()),
        ])
        .status()
        .unwrap();
    let took = started.elapsed();
    assert!(status.success());
    took
}

struct Server {
    server: ferry::server::RunningServer,
}

async fn start(store: Arc<dyn Store>) -> Server {
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token: Some(BOOTSTRAP.into()),
        // The benchmark runs the compactor itself, to time it apart from ingest.
        perf_compact_ms: 3_600_000,
        ..Default::default()
    };
    let server = ferry::server::start_with_store(&config, store)
        .await
        .unwrap();
    server
        .service
        .create_cluster(
            &Caller::local(Role::Admin),
            &NewCluster {
                name: "BENCH".into(),
                os: OsGeneration::Ws2012r2,
                description: "perf benchmark".into(),
                discovery_interval_seconds: None,
            },
        )
        .await
        .unwrap();
    Server { server }
}

/// Streams `batches` through `PerfService.Ingest`; the time until the summary arrives.
async fn grpc_ingest(
    server: &Server,
    batches: Vec<pb::IngestPerfRequest>,
    samples: usize,
) -> Duration {
    let channel =
        tonic::transport::Channel::from_shared(format!("http://{}", server.server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
    let mut client = PerfServiceClient::new(channel).max_encoding_message_size(16 << 20);
    let started = Instant::now();
    let mut request = tonic::Request::new(futures::stream::iter(batches));
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {BOOTSTRAP}").parse().unwrap(),
    );
    let summary = client.ingest(request).await.unwrap().into_inner();
    let took = started.elapsed();
    assert_eq!(summary.samples as usize, samples);
    took
}

struct IngestRow {
    backend: &'static str,
    samples: usize,
    baseline: Duration,
    ferry: Duration,
    compact: Duration,
}

struct QueryRow {
    backend: &'static str,
    samples: usize,
    load: Duration,
    compact: Duration,
    service: (f64, f64, f64),
    http: (f64, f64, f64),
    /// The JSON answer's size, as the server writes it.
    json_bytes: usize,
    /// Writing that JSON, and a client reading it, alone.
    serialise: (f64, f64, f64),
    parse: (f64, f64, f64),
    /// The same for the row shape answered before.
    row_bytes: usize,
    row_serialise: (f64, f64, f64),
    row_parse: (f64, f64, f64),
}

/// The volume view as it was answered before its steps became columns: one object per step,
/// values with every digit.
#[derive(serde::Serialize)]
struct RowView<'a> {
    volume: &'a str,
    counter: Counter,
    resolution: &'a str,
    step_ms: i64,
    nodes: &'a [String],
    steps: Vec<RowStep>,
    shares: &'a [ferry::service::perf::NodeShare],
    node_sum: Option<f64>,
    storage: Option<f64>,
    gap_pct: Option<f64>,
}

#[derive(serde::Serialize)]
struct RowStep {
    at_ms: i64,
    node_sum: Option<f64>,
    values: Vec<Option<f64>>,
    storage: Option<f64>,
    gap_pct: Option<f64>,
}

impl<'a> From<&'a ferry::service::perf::VolumeView> for RowView<'a> {
    fn from(view: &'a ferry::service::perf::VolumeView) -> Self {
        let columns = &view.steps;
        RowView {
            volume: &view.volume,
            counter: view.counter,
            resolution: &view.resolution,
            step_ms: view.step_ms,
            nodes: &view.nodes,
            steps: (0..columns.len())
                .map(|i| RowStep {
                    at_ms: columns.at_ms[i],
                    node_sum: columns.node_sum[i],
                    values: columns.values.iter().map(|c| c[i]).collect(),
                    storage: columns.storage[i],
                    gap_pct: columns.gap_pct[i],
                })
                .collect(),
            shares: &view.shares,
            node_sum: view.node_sum,
            storage: view.storage,
            gap_pct: view.gap_pct,
        }
    }
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((q * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1];
    (at(0.5), at(0.99), ms[ms.len() - 1])
}

async fn ingest_run(
    backend: &'static str,
    store: Arc<dyn Store>,
    baseline: Duration,
    minutes: i64,
) -> IngestRow {
    let server = start(store).await;
    let steps = minutes * 60_000 / INTERVAL_MS;
    let start = (chrono::Utc::now().timestamp_millis() - 3 * 3_600_000) / 60_000 * 60_000;
    let batches = batches(start, steps);
    let samples = NODES * VOLUMES * steps as usize;
    eprintln!("[{backend}] ingesting {samples} samples over gRPC...");
    let ferry = grpc_ingest(&server, batches, samples).await;
    let started = Instant::now();
    let stats = server.server.service.compact_perf().await.unwrap();
    let compact = started.elapsed();
    assert_eq!(stats.samples, samples);
    server.server.stop().await.unwrap();
    IngestRow {
        backend,
        samples,
        baseline,
        ferry,
        compact,
    }
}

async fn query_run(backend: &'static str, store: Arc<dyn Store>, queries: usize) -> QueryRow {
    let server = start(store).await;
    let service = server.server.service.clone();
    let now = chrono::Utc::now().timestamp_millis() / 60_000 * 60_000;
    let day = 86_400_000;
    let hour = 3_600_000;
    eprintln!("[{backend}] loading a day of {NODES} nodes x {VOLUMES} volumes at 10 s...");
    let cluster = service
        .get_cluster(&Caller::local(Role::Admin), "BENCH")
        .await
        .unwrap()
        .id;
    let started = Instant::now();
    let mut samples = 0;
    for h in 0..24 {
        let from = now - day + h * hour;
        let series: Vec<SeriesPoints> = (0..NODES * VOLUMES)
            .map(|s| SeriesPoints {
                key: SeriesKey {
                    node: node(s / VOLUMES),
                    volume: volume(s % VOLUMES),
                    counter: Counter::TransfersPerSec,
                    source: Source::Node,
                },
                at_ms: (0..360).map(|i| from + i * INTERVAL_MS).collect(),
                values: (0..360).map(|i| value(s, h * 360 + i)).collect(),
            })
            .collect();
        samples += service
            .ingest_perf_for(cluster, series)
            .await
            .unwrap()
            .samples as usize;
    }
    let load = started.elapsed();
    eprintln!("[{backend}] compacting {samples} samples...");
    let started = Instant::now();
    service.compact_perf().await.unwrap();
    let compact = started.elapsed();

    let admin = Caller::local(Role::Admin);
    let range = PerfRange::new(Some(now - day), Some(now), Some(60_000)).unwrap();
    let mut times = Vec::with_capacity(queries);
    let mut json_bytes = 0;
    let (mut serialise, mut parse) = (Vec::new(), Vec::new());
    let (mut row_serialise, mut row_parse, mut row_bytes) = (Vec::new(), Vec::new(), 0);
    for q in 0..queries {
        let started = Instant::now();
        let view = service
            .perf_volume(
                &admin,
                "BENCH",
                &volume(q % VOLUMES),
                Counter::TransfersPerSec,
                range,
            )
            .await
            .unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(view.nodes.len(), NODES);
        assert_eq!(view.steps.len(), 1440);
        let started = Instant::now();
        // As the server writes it.
        let json = view.to_json().unwrap();
        serialise.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let _: serde::de::IgnoredAny = serde_json::from_slice(&json).unwrap();
        parse.push(started.elapsed().as_secs_f64() * 1000.0);
        json_bytes = json.len();
        // The baseline: the same view in the shape answered before, one object per step with
        // every digit, written as axum's `Json` writes (into a buffer that grows).
        let rows = RowView::from(&view);
        let started = Instant::now();
        let json = serde_json::to_vec(&rows).unwrap();
        row_serialise.push(started.elapsed().as_secs_f64() * 1000.0);
        let started = Instant::now();
        let _: serde::de::IgnoredAny = serde_json::from_slice(&json).unwrap();
        row_parse.push(started.elapsed().as_secs_f64() * 1000.0);
        row_bytes = json.len();
    }
    let service_times = percentiles(times);
    let client = ferry::client::ApiClient::new(
        &format!("http://{}", server.server.http_addr),
        Some(BOOTSTRAP.into()),
    )
    .unwrap();
    let mut times = Vec::with_capacity(queries);
    for q in 0..queries {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("volume", &volume(q % VOLUMES))
            .append_pair(
                "from",
                &chrono::DateTime::from_timestamp_millis(now - day)
                    .unwrap()
                    .to_rfc3339(),
            )
            .append_pair(
                "to",
                &chrono::DateTime::from_timestamp_millis(now)
                    .unwrap()
                    .to_rfc3339(),
            )
            .append_pair("step", "1m")
            .finish();
        let started = Instant::now();
        let _: serde::de::IgnoredAny = client
            .get(&format!("/v1/clusters/BENCH/perf/volume?{query}"))
            .await
            .unwrap();
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let http_times = percentiles(times);
    server.server.stop().await.unwrap();
    QueryRow {
        backend,
        samples,
        load,
        compact,
        service: service_times,
        http: http_times,
        json_bytes,
        serialise: percentiles(serialise),
        parse: percentiles(parse),
        row_bytes,
        row_serialise: percentiles(row_serialise),
        row_parse: percentiles(row_parse),
    }
}

/// Each backend's ingest against its own bulk loader, the same samples for all.
async fn ingest_runs(dir: &Path, postgres_url: Option<&str>, minutes: i64) -> Vec<IngestRow> {
    let steps = minutes * 60_000 / INTERVAL_MS;
    let csv = dir.join("samples.csv");
    let rows = write_csv(&csv, &batches(0, steps));
    eprintln!("baselines: {rows} rows");
    let sqlite_baseline = sqlite_import(dir, &csv);
    let url = format!("sqlite://{}", dir.join("ingest.db").display());
    let store = ferry::store::open(&url).await.unwrap();
    let mut rows = vec![ingest_run("sqlite", store, sqlite_baseline, minutes).await];
    if let Some(url) = postgres_url {
        let baseline = psql_copy(url, &csv).await;
        let store = ferry::store::open(&postgres::fresh_database(url).await)
            .await
            .unwrap();
        rows.push(ingest_run("postgres", store, baseline, minutes).await);
    }
    rows
}

fn main() {
    let mut minutes = 170i64;
    let mut queries = 200usize;
    let mut only: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--minutes" => minutes = value().parse().expect("--minutes N"),
            "--queries" => queries = value().parse().expect("--queries N"),
            "--only" => {
                let part = value();
                assert!(
                    ["ingest", "query"].contains(&part.as_str()),
                    "--only ingest or --only query, not `{part}`"
                );
                only = Some(part);
            }
            _ => {}
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let postgres_url = postgres::server_url();
    let runs = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let dir = tempfile::tempdir().unwrap();
    let mut ingest = Vec::new();
    let mut query = Vec::new();
    runtime.block_on(async {
        let open_sqlite = |name: &str| {
            let url = format!("sqlite://{}", dir.path().join(name).display());
            async move { ferry::store::open(&url).await.unwrap() }
        };
        if runs("ingest") {
            ingest = ingest_runs(dir.path(), postgres_url.as_deref(), minutes).await;
        }
        if !runs("query") {
            return;
        }
        query.push(query_run("sqlite", open_sqlite("query.db").await, queries).await);
        if let Some(url) = &postgres_url {
            let store = ferry::store::open(&postgres::fresh_database(url).await)
                .await
                .unwrap();
            query.push(query_run("postgres", store, queries).await);
        }
    });
    println!(
        "\n| backend  | samples   | baseline (.import / \\copy) | Ferry gRPC ingest      | Ferry / baseline | then compaction |"
    );
    println!(
        "|----------|-----------|----------------------------|------------------------|------------------|-----------------|"
    );
    for r in &ingest {
        let rate = |d: Duration| r.samples as f64 / d.as_secs_f64();
        println!(
            "| {:<8} | {:>9} | {:>8.0} /s ({:>6.2} s)     | {:>8.0} /s ({:>6.2} s) | {:>15.0}% | {:>13.2} s |",
            r.backend,
            r.samples,
            rate(r.baseline),
            r.baseline.as_secs_f64(),
            rate(r.ferry),
            r.ferry.as_secs_f64(),
            rate(r.ferry) / rate(r.baseline) * 100.0,
            r.compact.as_secs_f64(),
        );
    }
    println!(
        "\n| backend  | samples   | load    | compaction | view 24 h at 1 min: service p50 / p99 / max | over HTTP p50 / p99 / max | JSON     |"
    );
    println!(
        "|----------|-----------|---------|------------|---------------------------------------------|---------------------------|----------|"
    );
    for r in &query {
        println!(
            "| {:<8} | {:>9} | {:>5.1} s | {:>8.1} s | {:>11.1} / {:>5.1} / {:>5.1} ms                  | {:>6.1} / {:>5.1} / {:>5.1} ms | {:>5} KB |",
            r.backend,
            r.samples,
            r.load.as_secs_f64(),
            r.compact.as_secs_f64(),
            r.service.0,
            r.service.1,
            r.service.2,
            r.http.0,
            r.http.1,
            r.http.2,
            r.json_bytes / 1000,
        );
    }
    println!(
        "\n| backend  | JSON of the view (columns) / before (rows) | writing it p50 / p99, columns / rows | a client reading it p50 / p99, columns / rows |"
    );
    println!(
        "|----------|--------------------------------------------|--------------------------------------|-----------------------------------------------|"
    );
    for r in &query {
        println!(
            "| {:<8} | {:>15} KB / {:>8} KB                  | {:>4.1} / {:>4.1} ms / {:>4.1} / {:>4.1} ms          | {:>4.1} / {:>4.1} ms / {:>4.1} / {:>4.1} ms                   |",
            r.backend,
            r.json_bytes / 1000,
            r.row_bytes / 1000,
            r.serialise.0,
            r.serialise.1,
            r.row_serialise.0,
            r.row_serialise.1,
            r.parse.0,
            r.parse.1,
            r.row_parse.0,
            r.row_parse.1,
        );
    }
}
