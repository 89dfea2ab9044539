//! Discovery of a large simulated cluster, end to end, against a plain `PUT` of the same
//! inventory: a real server in this process (SQLite, then Postgres when
//! `FERRY_BENCH_POSTGRES_URL` or `FERRY_TEST_POSTGRES_URL` is set), a simulated ws2003 cluster of
//! 100,000 shares (500 groups x 200 shares), and one `ferry agent` process with the sim driver
//! over real gRPC, so the agent's reading and encoding are not in the server's process.
//!
//! Per backend, in this order: a first discovery (`POST /v1/clusters/{id}/discover`, which stores
//! snapshot 1), the baseline `PUT /v1/clusters/{id}/inventory` of the same document (read with
//! the sim driver in this process, serialized before the clock starts) into a fresh cluster,
//! then a second, unchanged discovery and a second, unchanged `PUT`.
//!
//! What is timed:
//! - discovery total: from just before the `POST` is sent to the discovery's `completed_at` (the
//!   server stamps it once the import has returned and been audited; the server runs in this
//!   process, so both clocks are one). The discovery is watched by reading its row from the
//!   store every 20 ms, not by `GET /v1/discoveries/{id}`, so that looking costs the server it
//!   measures nothing. The timestamps do not depend on how often it is looked at.
//! - of which import: from the moment the agent's inventory has arrived and been decoded (the
//!   server then records "importing" as the task's progress, stamped with that moment) to the
//!   discovery's `completed_at`: validating, canonicalising, hashing, comparing with the newest
//!   snapshot, storing the snapshot and its rows, the audit, storing the task's receipt.
//! - PUT import: from the request being sent to its answer (body upload over loopback, parsing,
//!   the same import, the audit).
//!
//! The breakdown table splits the discovery at the task's `created_at`, its "importing" progress and the
//! snapshot's `created_at` (stamped when the import's store transaction begins, after
//! validation, canonical form, hash and comparison), and gives the CPU time of this process (the
//! server) and of the agent process during each discovery and `PUT`.
//!
//! The simulated cluster is written as its state file only: the disks' folder trees (484,365
//! directories and 156,982 files at full size, about 20 s to write and two minutes to remove)
//! are not read by a discovery, which reads the cluster's state, so they are not created unless
//! `--folders` is given. Operation latency is 0.
//! The agent sends its first perf batch as it connects, 3 s before the first discovery, and the
//! next an hour later, so none lands in the middle of a discovery.
//!
//! Prints tables; asserts nothing about time. Targets: the first discovery under 10 s on
//! SQLite, and no discovery more than 2x its `PUT`.
//!
//! Run: `cargo bench --bench discovery` (options after `--`: `--groups N`, `--shares N` per
//! group, `--folders`). With `FERRY_BENCH_SQL=1` every statement is logged to stderr;
//! `FERRY_BENCH_LOG=<filter>` (e.g. `info`) logs the server's and the agent's tracing there too.

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use ferry::agent::driver::ClusterDriver;
use ferry::agent::driver::sim::SimDriver;
use ferry::config::Config;
use ferry::model::OsGeneration;
use ferry::sim::{SimCreateOptions, StateFile, create_sim_cluster, generate};
use ferry::store::Store;
use proc_stat::{clock_ticks, cpu_ticks};

// The shipped `ferry` binary's allocator: the server in this process costs what it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bootstrap admin token of the benchmark's servers.
const TOKEN: &str = "bench-bootstrap-secret-0123456789";
/// The simulated cluster, and the Ferry cluster its agent is enrolled for.
const DISCOVERED: &str = "DISC";
/// The Ferry cluster the baseline `PUT`s go to.
const PUT_INTO: &str = "PUT";
/// Targets, printed beside the results.
const TARGET_SQLITE: Duration = Duration::from_secs(10);
const TARGET_RATIO: f64 = 2.0;

struct Args {
    groups: u32,
    shares: u32,
    folders: bool,
}

/// One discovery and the `PUT` it is compared with.
struct Round {
    label: &'static str,
    created: bool,
    /// POST sent -> discovery completed.
    total: Duration,
    /// POST sent -> task created.
    to_task: Duration,
    /// Task created -> its inventory received (the agent reads, encodes and sends; the server
    /// decodes).
    read: Duration,
    /// Inventory received -> discovery completed.
    import: Duration,
    /// Inventory received -> the snapshot's store transaction began (first discovery only).
    before_store: Option<Duration>,
    /// CPU of this process and of the agent during the discovery.
    server_cpu: Duration,
    agent_cpu: Duration,
    put: Duration,
    put_cpu: Duration,
    /// How long one read of the discovery's task row from the store takes, after the fact:
    /// what each `GET` of a running discovery (and `GET /v1/tasks/{id}`) reads.
    task_read: Duration,
}

struct Backend {
    name: &'static str,
    shares: u64,
    rounds: Vec<Round>,
    /// Peak resident memory of this process (the server, and the benchmark's copy of the
    /// document) and of the agent, in MiB.
    server_peak: u64,
    agent_peak: u64,
}

fn parse_args() -> Args {
    let mut args = Args {
        groups: 500,
        shares: 200,
        folders: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--groups" => args.groups = value().parse().expect("--groups N"),
            "--shares" => args.shares = value().parse().expect("--shares N"),
            "--folders" => args.folders = true,
            _ => {}
        }
    }
    args
}

fn main() {
    let args = parse_args();
    let mut filters = Vec::new();
    if let Ok(filter) = std::env::var("FERRY_BENCH_LOG") {
        filters.push(filter);
    }
    // Every statement the server runs, with its time.
    if std::env::var_os("FERRY_BENCH_SQL").is_some() {
        filters.push("sqlx::query=debug".into());
    }
    if !filters.is_empty() {
        tracing_subscriber::fmt()
            .with_env_filter(filters.join(","))
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let mut results = Vec::new();
    runtime.block_on(async {
        let sims = tempfile::tempdir().unwrap();
        let sim_dir = sims.path().join(DISCOVERED);
        let generation = Instant::now();
        create_sim(&sim_dir, &args);
        eprintln!(
            "simulated cluster of {} groups x {} shares written in {:.1} s{}",
            args.groups,
            args.shares,
            generation.elapsed().as_secs_f64(),
            if args.folders {
                " (with its folder trees)"
            } else {
                " (state only)"
            }
        );
        // The baseline's document: what the sim driver answers, as a client would send it.
        let driver = SimDriver::open(&sim_dir).unwrap();
        let document = driver.inventory().await.unwrap();
        let body = Arc::new(serde_json::to_vec(&document).unwrap());
        let shares: u64 = document.groups.iter().map(|g| g.shares.len() as u64).sum();
        eprintln!(
            "inventory: {shares} shares, {} MB as JSON",
            body.len() >> 20
        );
        drop((driver, document));

        let dir = tempfile::tempdir().unwrap();
        let sqlite = ferry::store::open(&format!(
            "sqlite://{}",
            dir.path().join("bench.db").display()
        ))
        .await
        .unwrap();
        results.push(run("sqlite", sqlite, sims.path(), &body, shares).await);
        if let Some(url) = postgres::server_url() {
            let database = postgres::fresh_database(&url).await;
            let store = ferry::store::open(&database).await.unwrap();
            let name = database
                .rsplit_once('/')
                .map_or("", |(_, name)| name)
                .to_owned();
            results.push(run("postgres", store, sims.path(), &body, shares).await);
            drop_postgres(&url, &name).await;
        }
    });
    print_tables(&results);
    println!("\nbenchmark ran {:.0} s", started.elapsed().as_secs_f64());
}

/// Writes the simulated cluster: its state file, and its folder trees with `--folders`.
fn create_sim(dir: &Path, args: &Args) {
    let mut o = SimCreateOptions::new(dir, DISCOVERED, OsGeneration::Ws2003);
    o.nodes = 2;
    o.groups = args.groups;
    o.shares = args.shares;
    o.spare_disks = 0;
    o.latency_ms = 0;
    // Past 21 groups the simulator's drive letters repeat.
    o.letters_repeat = true;
    if args.folders {
        let summary = create_sim_cluster(&o).unwrap();
        eprintln!(
            "folder trees: {} directories, {} files",
            summary.directories, summary.files
        );
    } else {
        let generated = generate(&o).unwrap();
        std::fs::create_dir_all(dir).unwrap();
        StateFile::create(dir, &generated.state).unwrap();
    }
}

async fn run(
    backend: &'static str,
    store: Arc<dyn Store>,
    sims: &Path,
    body: &Arc<Vec<u8>>,
    shares: u64,
) -> Backend {
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        bootstrap_token: Some(TOKEN.into()),
        agent_heartbeat_ms: 1000,
        agent_lease_ms: 60_000,
        agent_down_after_ms: 120_000,
        // Only the discoveries asked for here.
        discovery_interval: Duration::ZERO,
        ..Default::default()
    };
    let server = ferry::server::start_with_store(&config, store.clone())
        .await
        .unwrap();
    // Peak memory from here on (Linux: `5` resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let addr = server.http_addr;
    for name in [DISCOVERED, PUT_INTO] {
        let (status, answer) = rest(
            addr,
            "POST",
            "/v1/clusters",
            Some(json!({"name": name, "os": "ws2003"})),
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }
    let mut agent = start_agent(addr, server.grpc_addr, sims, backend).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.service.connected_agents() < 1 {
        assert!(
            Instant::now() < deadline,
            "[{backend}] the agent did not connect within 60 s"
        );
        if let Some(status) = agent.try_wait().unwrap() {
            panic!("[{backend}] the agent exited: {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The agent's first perf batch goes out as it starts (and opens its driver, reading the
    // simulated cluster's state once, as a long-running agent has): let it land first.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let mut rounds = Vec::new();
    for label in ["1st", "2nd"] {
        let mut round = discover(backend, label, addr, store.as_ref(), agent.id()).await;
        let cpu = cpu_ticks(std::process::id());
        let started = Instant::now();
        let (status, answer) = http(
            addr,
            "PUT",
            &format!("/v1/clusters/{PUT_INTO}/inventory"),
            Some(body.clone()),
        )
        .await;
        round.put = started.elapsed();
        round.put_cpu = ticks(cpu_ticks(std::process::id()) - cpu);
        let expected = if label == "1st" { 201 } else { 200 };
        assert_eq!(status, expected, "{}", String::from_utf8_lossy(&answer));
        eprintln!(
            "[{backend}] {label} PUT: {:.2} s ({status})",
            round.put.as_secs_f64()
        );
        rounds.push(round);
    }
    let server_peak = peak_mib(std::process::id());
    let agent_peak = peak_mib(agent.id());
    let _ = agent.kill();
    let _ = agent.wait();
    server.stop().await.unwrap();
    Backend {
        name: backend,
        shares,
        rounds,
        server_peak,
        agent_peak,
    }
}

/// One `POST /v1/clusters/DISC/discover`, watched until it has completed; its timestamps read
/// back over REST.
async fn discover(
    backend: &str,
    label: &'static str,
    addr: SocketAddr,
    store: &dyn Store,
    agent_pid: u32,
) -> Round {
    let me = std::process::id();
    let (server_cpu, agent_cpu) = (cpu_ticks(me), cpu_ticks(agent_pid));
    let posted = Utc::now();
    let (status, answer) = rest(
        addr,
        "POST",
        &format!("/v1/clusters/{DISCOVERED}/discover"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let id: uuid::Uuid = answer["id"].as_str().unwrap().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let discovery = store.get_discovery(id).await.unwrap();
        if discovery.state != ferry::model::DiscoveryState::Running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "[{backend}] discovery still running after 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server_cpu = ticks(cpu_ticks(me) - server_cpu);
    let agent_cpu = ticks(cpu_ticks(agent_pid) - agent_cpu);

    let (status, discovery) = rest(addr, "GET", &format!("/v1/discoveries/{id}"), None).await;
    assert_eq!(status, 200, "{discovery}");
    assert_eq!(discovery["state"], "completed", "{discovery}");
    let created = discovery["created"].as_bool().unwrap();
    assert_eq!(created, label == "1st", "{discovery}");
    let completed_at = time(&discovery["completed_at"]);
    let task_id = discovery["task_id"].as_str().unwrap();
    let (status, task) = rest(addr, "GET", &format!("/v1/tasks/{task_id}"), None).await;
    assert_eq!(status, 200);
    let task_created = time(&task["created_at"]);
    // The server says "importing" on the task the moment the agent's inventory has arrived.
    assert_eq!(task["progress"]["total"], 1, "{task}");
    let received = time(&task["progress"]["at"]);
    let started = Instant::now();
    store.get_task(task_id.parse().unwrap()).await.unwrap();
    let task_read = started.elapsed();
    let snapshot = discovery["snapshot"].as_i64().unwrap();
    let (status, snapshots) = rest(
        addr,
        "GET",
        &format!("/v1/clusters/{DISCOVERED}/snapshots?limit=100"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{snapshots}");
    let snapshot_at = snapshots["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["number"] == snapshot)
        .map(|s| time(&s["created_at"]))
        .unwrap();
    let round = Round {
        label,
        created,
        total: between(posted, completed_at),
        to_task: between(posted, task_created),
        read: between(task_created, received),
        import: between(received, completed_at),
        before_store: created.then(|| between(received, snapshot_at)),
        server_cpu,
        agent_cpu,
        put: Duration::ZERO,
        put_cpu: Duration::ZERO,
        task_read,
    };
    eprintln!(
        "[{backend}] {label} discovery: {:.2} s, of which import {:.2} s (snapshot {snapshot}, created {created})",
        round.total.as_secs_f64(),
        round.import.as_secs_f64()
    );
    round
}

/// A `ferry agent` process enrolled for the discovered cluster, with the sim driver.
async fn start_agent(http: SocketAddr, grpc: SocketAddr, sims: &Path, backend: &str) -> Child {
    let (status, join) = rest(
        http,
        "POST",
        "/v1/join-tokens",
        Some(json!({"cluster": DISCOVERED, "uses": 1})),
    )
    .await;
    assert_eq!(status, 201, "{join}");
    let log = std::env::var("FERRY_BENCH_LOG").ok();
    std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("agent")
        .args(["--server", &format!("http://{grpc}")])
        .args(["--cluster", DISCOVERED, "--node"])
        .arg(format!("{DISCOVERED}-n1"))
        .arg("--state-dir")
        .arg(sims.join(format!("{backend}.agent")))
        .args(["--driver", "sim", "--sim-dir"])
        .arg(sims.join(DISCOVERED))
        .args(["--perf-interval", "3600"])
        .args(["--log-level", log.as_deref().unwrap_or("warn")])
        .env("FERRY_JOIN_TOKEN", join["token"].as_str().unwrap())
        .stdout(Stdio::null())
        .stderr(if log.is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("start ferry agent")
}

// ---- output -------------------------------------------------------------------------------------

fn print_tables(results: &[Backend]) {
    println!(
        "\ndiscovery total: POST -> discovery completed_at; import: inventory received (the task's importing progress) -> completed_at;"
    );
    println!("PUT import: PUT of the same document into a fresh cluster, request -> answer.");
    println!(
        "\n| backend  | run                  | shares  | discovery total | of which import | PUT import | discovery / PUT | targets |"
    );
    println!(
        "|----------|----------------------|---------|-----------------|-----------------|------------|-----------------|---------|"
    );
    for b in results {
        for r in &b.rounds {
            let ratio = r.total.as_secs_f64() / r.put.as_secs_f64();
            let mut missed = Vec::new();
            if b.name == "sqlite" && r.total > TARGET_SQLITE {
                missed.push("10 s");
            }
            if ratio > TARGET_RATIO {
                missed.push("2x");
            }
            let run = if r.created {
                format!("{} (new snapshot)", r.label)
            } else {
                format!("{} (unchanged)", r.label)
            };
            println!(
                "| {:<8} | {:<20} | {:>7} | {:>13.2} s | {:>13.2} s | {:>8.2} s | {:>15.2} | {:<7} |",
                b.name,
                run,
                b.shares,
                r.total.as_secs_f64(),
                r.import.as_secs_f64(),
                r.put.as_secs_f64(),
                ratio,
                if missed.is_empty() {
                    "met".to_owned()
                } else {
                    format!("missed {}", missed.join(", "))
                }
            );
        }
    }
    println!(
        "targets: the first discovery under {} s on SQLite; no discovery more than {TARGET_RATIO}x its PUT",
        TARGET_SQLITE.as_secs()
    );
    println!(
        "\nbreakdown: POST -> task created -> inventory received (agent reads, encodes, sends; server decodes) -> snapshot transaction begins -> discovery completed"
    );
    println!(
        "\n| backend  | run | to task | agent read + send | received -> store tx | store tx -> done | server CPU | agent CPU | PUT server CPU | task row read |"
    );
    println!(
        "|----------|-----|---------|-------------------|----------------------|------------------|------------|-----------|----------------|---------------|"
    );
    for b in results {
        for r in &b.rounds {
            let (before, after) = match r.before_store {
                Some(before) => (
                    format!("{:.2} s", before.as_secs_f64()),
                    format!("{:.2} s", (r.import.saturating_sub(before)).as_secs_f64()),
                ),
                None => ("-".to_owned(), "-".to_owned()),
            };
            println!(
                "| {:<8} | {:<3} | {:>5.0}ms | {:>15.2} s | {:>20} | {:>16} | {:>8.2} s | {:>7.2} s | {:>12.2} s | {:>11.2} s |",
                b.name,
                r.label,
                r.to_task.as_secs_f64() * 1e3,
                r.read.as_secs_f64(),
                before,
                after,
                r.server_cpu.as_secs_f64(),
                r.agent_cpu.as_secs_f64(),
                r.put_cpu.as_secs_f64(),
                r.task_read.as_secs_f64(),
            );
        }
    }
    for b in results {
        println!(
            "{}: peak RSS {} MiB in the server's process (with the benchmark's copy of the document), {} MiB in the agent",
            b.name, b.server_peak, b.agent_peak
        );
    }
}

// ---- helpers ------------------------------------------------------------------------------------

/// Peak resident memory of process `pid` in MiB (`VmHWM`), 0 when unknown.
fn peak_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib / 1024)
}

fn ticks(n: u64) -> Duration {
    Duration::from_secs_f64(n as f64 / clock_ticks() as f64)
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
}

fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// A request with the bootstrap token and a JSON body; the answer as JSON (`Null` when empty).
async fn rest(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| Arc::new(serde_json::to_vec(&b).unwrap()));
    let (status, answer) = http(addr, method, path, body).await;
    let value = if answer.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&answer)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&answer).into_owned()))
    };
    (status, value)
}

/// One HTTP/1.1 request on its own connection, body sent as given.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<Arc<Vec<u8>>>,
) -> (u16, Vec<u8>) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    if let Some(body) = &body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        if let Some(body) = &body {
            stream.write_all(body).unwrap();
        }
        let mut response = Vec::new();
        stream.read_to_end(&mut response).unwrap();
        let split = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("an HTTP answer");
        let head = std::str::from_utf8(&response[..split]).unwrap();
        assert!(
            !head
                .to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "chunked answers are not read here"
        );
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, response[split + 4..].to_vec())
    })
    .await
    .unwrap()
}

/// Drops the benchmark's database: a 100,000-share inventory is not worth keeping.
async fn drop_postgres(url: &str, name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await
    {
        eprintln!("could not drop database {name}: {e}");
    }
}
