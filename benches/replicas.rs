//! Several replicas on one Postgres database, measured from outside as a client sees them.
//!
//! Three release `ferry server` processes (`CARGO_BIN_EXE_ferry`) share a fresh database on the
//! server of `FERRY_BENCH_POSTGRES_URL` (or `FERRY_TEST_POSTGRES_URL`); simulated clusters and
//! five `ferry agent` processes given all three addresses.
//!
//! - Dispatch across replicas: an echo task `POST`ed on replica a for an agent connected to
//!   replica b, from just before the `POST` to the first `GET /v1/tasks/{id}` on a that answers
//!   `succeeded` (polled every millisecond over a kept-alive connection); and the same with the
//!   `POST` and the polls on b, the agent's own replica, as the baseline.
//! - Failover: while a long job runs, the replica holding the scheduler lease is killed with
//!   SIGKILL; the time from the kill to the next step started (the newest `started_at` of the
//!   job's steps) is taken, the killed replica started again, and so on `--failovers` times.
//!   It is bounded below by the lease term (`--lease-ms`), which is printed with it.
//!
//! Prints tables; asserts nothing about time. Run: `cargo bench --bench replicas` (options after
//! `--`: `--tasks N`, `--failovers N`, `--lease-ms N`).

#[path = "../tests/common/ports.rs"]
mod ports;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

const TOKEN: &str = "bench-replicas-bootstrap-secret-0123456789";

fn main() {
    let mut tasks = 200usize;
    let mut failovers = 10usize;
    let mut lease_ms = 5000u64;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--tasks" => tasks = value().parse().expect("--tasks N"),
            "--failovers" => failovers = value().parse().expect("--failovers N"),
            "--lease-ms" => lease_ms = value().parse().expect("--lease-ms N"),
            // cargo bench passes `--bench`.
            _ => {}
        }
    }
    let Some(server) = ["FERRY_BENCH_POSTGRES_URL", "FERRY_TEST_POSTGRES_URL"]
        .into_iter()
        .find_map(|key| std::env::var(key).ok().filter(|v| !v.is_empty()))
    else {
        println!(
            "set FERRY_BENCH_POSTGRES_URL (or FERRY_TEST_POSTGRES_URL): replicas need Postgres"
        );
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(&server, tasks, failovers, lease_ms));
}

struct Replica {
    http_port: u16,
    grpc_port: u16,
    child: Option<Child>,
}

impl Replica {
    fn rest(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn start(&mut self, db: &str, lease_ms: u64, log: &Path) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut child = ferry()
            .arg("server")
            .args(["--http-addr", &format!("127.0.0.1:{}", self.http_port)])
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.grpc_port)])
            .args(["--database-url", db, "--log-level", "warn"])
            .env("FERRY_BOOTSTRAP_TOKEN", TOKEN)
            .env("FERRY_SCHEDULER_LEASE_MS", lease_ms.to_string())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.contains("REST on"), "the server did not start: {line}");
        self.child = Some(child);
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Killed(Vec<Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn ferry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    for (key, _) in std::env::vars() {
        if key.starts_with("FERRY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs a `ferry` verb to its end; its stdout.
fn verb(dir: &Path, db: &str, rest: &str, args: &[&str]) -> String {
    let out = ferry()
        .current_dir(dir)
        .args(args)
        .env("FERRY_SERVER", rest)
        .env("FERRY_TOKEN", TOKEN)
        .env("FERRY_DATABASE_URL", db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ferry {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn fresh_database(server: &str) -> String {
    let name = format!("ferry_bench_replicas_{}", std::process::id());
    let admin = sqlx::PgPool::connect(server).await.unwrap();
    // The name is this process's own, built from its id: nothing outside reaches it.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name}"
    )))
    .execute(&admin)
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap();
    let (base, _) = server.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

struct Client {
    http: reqwest::Client,
}

impl Client {
    async fn send(&self, method: reqwest::Method, url: String, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, &url).bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{url}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn get(&self, url: String) -> Value {
        self.send(reqwest::Method::GET, url, None).await
    }
}

fn percentiles(label: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(f64::total_cmp);
    let at = |p: f64| ms[((ms.len() as f64 * p).ceil() as usize).clamp(1, ms.len()) - 1];
    format!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
        ms.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        ms[ms.len() - 1]
    )
}

async fn run(server: &str, tasks: usize, failovers: usize, lease_ms: u64) {
    let db = fresh_database(server).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut replicas: Vec<Replica> = (0..3)
        .map(|_| Replica {
            http_port: ports::steady_port(),
            grpc_port: ports::steady_port(),
            child: None,
        })
        .collect();
    for (i, replica) in replicas.iter_mut().enumerate() {
        replica.start(&db, lease_ms, &root.join(format!("replica-{i}.log")));
    }
    let a = replicas[0].rest();
    let http = ferry::webhooks::outbound_client(None)
        .unwrap()
        .build()
        .unwrap();
    let client = Client { http };

    // A long job's clusters (it must outlast every failover): 100 groups (the most spare disks
    // an interim takes) of two shares, every operation 250 ms.
    let groups = "100";
    let sims: [(&str, &str, &str, &[&str]); 3] = [
        (
            "FS-OLD",
            "ws2003",
            "2",
            &["--groups", groups, "--shares", "2"],
        ),
        (
            "FS-MID",
            "ws2008",
            "1",
            &["--groups", "0", "--spare-disks", groups],
        ),
        ("FS-NEW", "ws2008r2", "2", &["--groups", "0"]),
    ];
    for (cluster, os, nodes, rest) in sims {
        let sim = root.join("sims").join(cluster);
        let mut args = vec!["sim", "create", "--dir", sim.to_str().unwrap()];
        args.extend(["--cluster", cluster, "--os", os, "--nodes", nodes]);
        args.extend(["--latency-ms", "250", "--letters-repeat"]);
        args.extend(rest);
        verb(root, &db, &a, &args);
        verb(root, &db, &a, &["cluster", "create", cluster, "--os", os]);
    }
    let mut agents = Killed(Vec::new());
    let nodes = [
        "FS-OLD-n1",
        "FS-OLD-n2",
        "FS-MID-n1",
        "FS-NEW-n1",
        "FS-NEW-n2",
    ];
    for (i, node) in nodes.into_iter().enumerate() {
        let cluster = node.rsplit_once("-n").unwrap().0;
        let join = verb(
            root,
            &db,
            &a,
            &["token", "create", "--kind", "join", "--cluster", cluster],
        );
        // Every agent dials b first, so a task posted on a always crosses replicas.
        let order = [1, (i % 2) * 2, 2 - (i % 2) * 2];
        let servers: Vec<String> = order
            .iter()
            .map(|&r| format!("http://127.0.0.1:{}", replicas[r].grpc_port))
            .collect();
        let state: PathBuf = root.join("agents").join(node);
        let sim = root.join("sims").join(cluster);
        agents.0.push(
            ferry()
                .args(["agent", "--server", &servers.join(",")])
                .args(["--cluster", cluster, "--node", node])
                .arg("--state-dir")
                .arg(&state)
                .args(["--driver", "sim", "--sim-dir"])
                .arg(&sim)
                .args(["--log-level", "warn"])
                .env("FERRY_JOIN_TOKEN", join.trim())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let agent = loop {
        let list = client.get(format!("{a}/v1/agents?cluster=FS-NEW")).await;
        let connected: Vec<&Value> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["state"] == "connected")
            .collect();
        if connected.len() == 2 {
            break connected[0]["id"].as_str().unwrap().to_owned();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    println!("echo task, POST to `succeeded` seen by the client, ms ({tasks} tasks each)");
    println!("| path | tasks | p50 | p90 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (label, on) in [
        ("one replica (the agent's)", replicas[1].rest()),
        ("across replicas (POST and GET on another)", a.clone()),
    ] {
        let mut took = Vec::new();
        for _ in 0..tasks {
            let started = Instant::now();
            let task = client
                .send(
                    reqwest::Method::POST,
                    format!("{on}/v1/agents/{agent}/tasks"),
                    Some(json!({"action": "echo", "text": "bench", "sleep_ms": 0})),
                )
                .await;
            let id = task["id"].as_str().unwrap();
            loop {
                let task = client.get(format!("{on}/v1/tasks/{id}")).await;
                if task["state"] == "succeeded" {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "a task did not succeed: {task}"
                );
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            took.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        println!("{}", percentiles(label, took));
    }

    // Failover, while the job runs.
    for cluster in ["FS-OLD", "FS-MID", "FS-NEW"] {
        verb(root, &db, &a, &["cluster", "discover", cluster, "--wait"]);
    }
    let mut mapping = serde_json::Map::new();
    for n in 1..=100 {
        let disk = format!("Cluster Disk {n}");
        let presented = verb(
            root,
            &db,
            &a,
            &[
                "sim",
                "present-disk",
                "--dir",
                root.join("sims/FS-NEW").to_str().unwrap(),
                "--from",
                root.join("sims/FS-OLD").to_str().unwrap(),
                "--disk",
                &disk,
            ],
        );
        mapping.insert(disk, json!(presented.trim()));
    }
    let job = client
        .send(
            reqwest::Method::POST,
            format!("{a}/v1/jobs"),
            Some(json!({
                "source": "FS-OLD",
                "target": "FS-NEW",
                "disk_mapping": mapping,
                "retry_backoff_seconds": 1,
                "max_active_groups": 6,
                "max_cluster_cutovers": 6,
            })),
        )
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let mut times = Vec::new();
    for _ in 0..failovers {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let holder = loop {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT holder FROM scheduler_lease WHERE id = 1")
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
            let pid: Option<u32> = row.and_then(|(h,)| h.split('-').next()?.parse().ok());
            if let Some(i) = replicas
                .iter()
                .position(|r| r.child.as_ref().map(Child::id) == pid)
            {
                break i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let watcher = replicas[(holder + 1) % 3].rest();
        let killed_at: DateTime<Utc> = Utc::now();
        let mut child = replicas[holder].child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let started = loop {
            let job = client.get(format!("{watcher}/v1/jobs/{id}")).await;
            assert_eq!(
                job["state"], "running",
                "the job ended before the failovers did"
            );
            let newest = job["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["steps"].as_array().unwrap())
                .filter_map(|s| s["started_at"].as_str())
                .filter_map(|t| t.parse::<DateTime<Utc>>().ok())
                .max();
            if let Some(newest) = newest.filter(|t| *t > killed_at) {
                break newest;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        times.push((started - killed_at).num_milliseconds() as f64);
        replicas[holder].start(&db, lease_ms, &root.join(format!("replica-{holder}.log")));
    }
    println!();
    println!(
        "failover: SIGKILL of the scheduler lease holder -> the next step started, ms \
         (scheduler_lease_ms {lease_ms})"
    );
    println!("| | runs | p50 | p90 | p99 | max |");
    println!("| --- | --- | --- | --- | --- | --- |");
    println!("{}", percentiles("failover", times));
}
