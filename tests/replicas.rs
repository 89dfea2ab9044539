//! Several `ferry server` processes on one Postgres database, as a deployment behind a load
//! balancer runs them, broken on purpose: the scheduler lease's holder killed mid-cutover, the
//! replica an agent is connected to killed while it runs a task, every replica restarted in turn
//! while a job runs, and work created on one replica for an agent or a job another one serves.
//! Skipped without Postgres (SQLite has one server by design).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::process::{Child, Command};

use ferry::store::{EventFilter, Store};

const ADMIN: &str = "replicas-test-admin-token-0123456789";
/// Short enough that a test waits seconds, not the default 15 s, for a lost holder.
const SCHEDULER_LEASE: Duration = Duration::from_secs(3);

fn ferry() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
    for (key, _) in std::env::vars() {
        if key.starts_with("FERRY_") {
            cmd.env_remove(key);
        }
    }
    cmd.kill_on_drop(true);
    cmd
}

/// One `ferry server` process with fixed ports, so agents find it again after a restart.
struct Replica {
    name: &'static str,
    http_port: u16,
    grpc_port: u16,
    child: Option<Child>,
}

impl Replica {
    fn rest(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    fn grpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    async fn start(&mut self, db: &str, logs: &Path) {
        self.start_with(db, logs, &[]).await;
    }

    /// Starts the replica with `settings` (`FERRY_*` variables) beside the tests' own.
    async fn start_with(&mut self, db: &str, logs: &Path, settings: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(format!("{}.log", self.name)))
            .unwrap();
        let mut child = ferry()
            .arg("server")
            .args(["--http-addr", &format!("127.0.0.1:{}", self.http_port)])
            .args(["--grpc-addr", &format!("127.0.0.1:{}", self.grpc_port)])
            .args(["--database-url", db, "--log-level", "info"])
            .env("FERRY_BOOTSTRAP_TOKEN", ADMIN)
            .env(
                "FERRY_SCHEDULER_LEASE_MS",
                SCHEDULER_LEASE.as_millis().to_string(),
            )
            .env("FERRY_AGENT_HEARTBEAT_MS", "500")
            .env("FERRY_AGENT_DOWN_AFTER_MS", "5000")
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        // The server prints its addresses once it listens.
        let stdout = child.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        if !line.as_deref().is_some_and(|l| l.contains("REST on")) {
            let log = std::fs::read_to_string(logs.join(format!("{}.log", self.name)));
            panic!(
                "{} did not start: {line:?}\n{}",
                self.name,
                log.unwrap_or_default()
            );
        }
        self.child = Some(child);
    }

    /// `kill -9`: no shutdown, no lease released, no stream closed politely.
    async fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.start_kill().unwrap();
        child.wait().await.unwrap();
    }

    /// SIGTERM, and waits for the graceful stop.
    async fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let pid = child.id().unwrap();
        rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::TERM,
        )
        .unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("a stopped replica exits within 30 s")
            .unwrap();
        assert!(status.success(), "{}: {status}", self.name);
    }
}

/// Three replicas, three simulated clusters and their agents' processes.
struct Fleet {
    dir: tempfile::TempDir,
    db: String,
    store: std::sync::Arc<dyn Store>,
    replicas: Vec<Replica>,
    /// Between each replica and the database, when the fleet was started with them.
    db_partitions: Vec<Partition>,
    http: reqwest::Client,
    agents: BTreeMap<String, Child>,
}

impl Fleet {
    /// `None` when Postgres tests are skipped.
    async fn start(groups: u32, latency_ms: u64) -> Option<Fleet> {
        Fleet::start_with(groups, latency_ms, &[]).await
    }

    /// [`Fleet::start`] with `settings` given to every replica.
    async fn start_with(groups: u32, latency_ms: u64, settings: &[(&str, &str)]) -> Option<Fleet> {
        Fleet::start_full(groups, latency_ms, settings, false).await
    }

    /// [`Fleet::start_with`]; with `db_partitions`, each replica reaches the database through
    /// its own [`Partition`] (`Fleet::db_partitions`, in replica order).
    async fn start_full(
        groups: u32,
        latency_ms: u64,
        settings: &[(&str, &str)],
        db_partitions: bool,
    ) -> Option<Fleet> {
        let db = common::fresh_postgres_database().await?;
        let mut partitions = Vec::new();
        if db_partitions {
            let postgres = database_address(&db);
            for _ in 0..3 {
                partitions.push(Partition::start(postgres).await);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let mut replicas: Vec<Replica> = ["a", "b", "c"]
            .into_iter()
            .map(|name| Replica {
                name,
                http_port: common::ports::steady_port(),
                grpc_port: common::ports::steady_port(),
                child: None,
            })
            .collect();
        for (i, replica) in replicas.iter_mut().enumerate() {
            let url = match partitions.get(i) {
                Some(partition) => through(&db, partition.addr),
                None => db.clone(),
            };
            replica
                .start_with(&url, &dir.path().join("logs"), settings)
                .await;
        }
        let store = ferry::store::open(&db).await.unwrap();
        let fleet = Fleet {
            dir,
            db,
            store,
            replicas,
            db_partitions: partitions,
            http: ferry::webhooks::outbound_client(None)
                .unwrap()
                .build()
                .unwrap(),
            agents: BTreeMap::new(),
        };
        let groups = groups.to_string();
        let latency = latency_ms.to_string();
        let sims: [(&str, &str, &str, &[&str]); 3] = [
            (
                "FS-OLD",
                "ws2003",
                "2",
                &["--groups", &groups, "--shares", "5"],
            ),
            (
                "FS-MID",
                "ws2008",
                "1",
                &["--groups", "0", "--spare-disks", &groups],
            ),
            ("FS-NEW", "ws2008r2", "2", &["--groups", "0"]),
        ];
        for (cluster, os, nodes, rest) in sims {
            fleet
                .cli(&["sim", "create", "--dir"])
                .arg(fleet.sim_dir(cluster))
                .args(["--cluster", cluster, "--os", os, "--nodes", nodes])
                .args(["--latency-ms", &latency])
                .args(rest)
                .run()
                .await;
            fleet
                .cli(&["cluster", "create", cluster, "--os", os])
                .run()
                .await;
        }
        Some(fleet)
    }

    fn sim_dir(&self, cluster: &str) -> PathBuf {
        self.dir.path().join("sims").join(cluster)
    }

    /// A `ferry` command against replica a.
    fn cli(&self, args: &[&str]) -> Cli {
        let mut cmd = ferry();
        cmd.args(args)
            .env("FERRY_SERVER", self.replicas[0].rest())
            .env("FERRY_TOKEN", ADMIN)
            .env("FERRY_DATABASE_URL", &self.db);
        Cli(cmd)
    }

    /// Starts the agent of `node`, listing the replicas in `order` (it dials the first first).
    async fn start_agent(&mut self, node: &str, order: &[usize]) {
        let servers: Vec<String> = order.iter().map(|&i| self.replicas[i].grpc()).collect();
        self.start_agent_at(node, servers).await;
    }

    /// Starts the agent of `node`, dialling `servers` in turn.
    async fn start_agent_at(&mut self, node: &str, servers: Vec<String>) {
        let cluster = node.rsplit_once("-n").unwrap().0.to_owned();
        let join = self
            .cli(&["token", "create", "--kind", "join", "--cluster", &cluster])
            .run()
            .await;
        let log = std::fs::File::create(self.dir.path().join("logs").join(format!("{node}.log")))
            .unwrap();
        let agent = ferry()
            .args(["agent", "--server", &servers.join(",")])
            .args(["--cluster", &cluster, "--node", node, "--state-dir"])
            .arg(self.dir.path().join("agents").join(node))
            .args(["--driver", "sim", "--sim-dir"])
            .arg(self.sim_dir(&cluster))
            .args(["--log-level", "info"])
            .env("FERRY_JOIN_TOKEN", join.trim())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.agents.insert(node.to_owned(), agent);
    }

    /// Five agents, each dialling a different replica first.
    async fn start_all_agents(&mut self) {
        let nodes = [
            "FS-OLD-n1",
            "FS-OLD-n2",
            "FS-MID-n1",
            "FS-NEW-n1",
            "FS-NEW-n2",
        ];
        for (i, node) in nodes.into_iter().enumerate() {
            let order = [i % 3, (i + 1) % 3, (i + 2) % 3];
            self.start_agent(node, &order).await;
        }
        self.wait_connected(nodes.len()).await;
    }

    async fn wait_connected(&self, count: usize) {
        common::eventually("every agent connected", || async {
            let agents = self.get(0, "/v1/agents").await;
            let connected = agents["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["state"] == "connected")
                .count();
            (connected == count).then_some(())
        })
        .await;
    }

    /// Discovers the clusters and presents the source's LUNs to the target: what a job needs.
    async fn prepare_migration(&self, groups: u32) -> Value {
        for cluster in ["FS-OLD", "FS-MID", "FS-NEW"] {
            self.cli(&["cluster", "discover", cluster, "--wait"])
                .run()
                .await;
        }
        let mut mapping = serde_json::Map::new();
        for n in 1..=groups {
            let disk = format!("Cluster Disk {n}");
            let presented = self
                .cli(&["sim", "present-disk", "--dir"])
                .arg(self.sim_dir("FS-NEW"))
                .arg("--from")
                .arg(self.sim_dir("FS-OLD"))
                .args(["--disk", &disk])
                .run()
                .await;
            mapping.insert(disk, json!(presented.trim()));
        }
        // Retries (the Kerberos one) after a second rather than the runbook's 15 s.
        json!({
            "source": "FS-OLD",
            "target": "FS-NEW",
            "disk_mapping": mapping,
            "retry_backoff_seconds": 1,
        })
    }

    async fn send(
        &self,
        replica: usize,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.replicas[replica].rest()))
            .bearer_auth(ADMIN)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, replica: usize, path: &str) -> Value {
        let (status, body) = self.send(replica, reqwest::Method::GET, path, None).await;
        assert_eq!(
            status, 200,
            "GET {path} on {}: {body}",
            self.replicas[replica].name
        );
        body
    }

    async fn post(&self, replica: usize, path: &str, body: Value) -> Value {
        let (status, answer) = self
            .send(replica, reqwest::Method::POST, path, Some(body))
            .await;
        assert!(
            (200..300).contains(&status),
            "POST {path} on {}: {status} {answer}",
            self.replicas[replica].name
        );
        answer
    }

    /// A receiver, registered on `replica` as a webhook for every event from now on, at `/hook`.
    async fn webhook_on(&self, replica: usize) -> common::Receiver {
        let (receiver, addr) = common::Receiver::start(0).await;
        self.post(
            replica,
            "/v1/webhooks",
            json!({"url": format!("http://{addr}/hook")}),
        )
        .await;
        receiver
    }

    /// Which replica holds the scheduler lease now (its holder name starts with the pid).
    async fn lease_holder(&self) -> Option<usize> {
        let holder: Option<(String, chrono::DateTime<chrono::Utc>)> =
            sqlx::query_as("SELECT holder, until FROM scheduler_lease WHERE id = 1")
                .fetch_optional(&sqlx::PgPool::connect(&self.db).await.unwrap())
                .await
                .unwrap();
        let (holder, until) = holder?;
        if until < chrono::Utc::now() {
            return None;
        }
        let pid: u32 = holder.split('-').next()?.parse().ok()?;
        self.replicas.iter().position(|r| r.pid() == Some(pid))
    }

    /// Polls the job on `replica` until it ends; its final detail.
    async fn wait_job_end(&self, replica: usize, id: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.get(replica, &format!("/v1/jobs/{id}")).await;
            if ["succeeded", "failed", "cancelled", "rolled_back"]
                .contains(&job["state"].as_str().unwrap_or_default())
            {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "the job did not end within {limit:?}: {}",
                summary(&job)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Asserts the job succeeded with every share verified, and that each step that changes a
    /// cluster ran on the simulator exactly as often as the store counts its attempts: nothing
    /// ran twice for one attempt, whatever was killed on the way.
    async fn assert_migrated_exactly_once(&self, job: &Value) {
        assert_eq!(job["state"], "succeeded", "{}", summary(job));
        let mut expected: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for group in job["groups"].as_array().unwrap() {
            let name = group["name"].as_str().unwrap();
            assert_eq!(group["state"], "succeeded", "{name}: {group}");
            let verification = &group["verification"];
            let shares = verification["expected"].as_u64().unwrap();
            assert!(shares > 0, "{name}: {verification}");
            assert_eq!(verification["identical"], shares, "{name}: {verification}");
            assert_eq!(verification["passed"], true, "{name}: {verification}");
            for step in group["steps"].as_array().unwrap() {
                if step["action"]["type"] != "run" {
                    continue;
                }
                let Some(op) = sim_op_of(step["action"]["kind"].as_str().unwrap()) else {
                    continue;
                };
                let key = (
                    step["cluster"].as_str().unwrap().to_owned(),
                    op.to_owned(),
                    name.to_owned(),
                );
                *expected.entry(key).or_default() += step["attempt"].as_u64().unwrap();
            }
        }
        assert!(!expected.is_empty());
        let mut ran: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for cluster in ["FS-OLD", "FS-MID", "FS-NEW"] {
            for record in ferry::sim::read_operations(&self.sim_dir(cluster)).unwrap() {
                let key = (cluster.to_owned(), record.op, record.subject);
                if expected.contains_key(&key) {
                    *ran.entry(key).or_default() += 1;
                }
            }
        }
        assert_eq!(
            ran, expected,
            "simulator operations against the store's attempts"
        );
    }

    /// Every event of `job` in the store, in order.
    async fn stored_event_seqs(&self, job: &str) -> Vec<i64> {
        let filter = EventFilter {
            job_id: Some(job.parse().unwrap()),
            ..EventFilter::default()
        };
        self.store
            .job_events(&filter, 0, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What each process said, for the failure's report.
            for entry in std::fs::read_dir(self.dir.path().join("logs"))
                .into_iter()
                .flatten()
            {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                eprintln!("==== {} (last lines)", path.display());
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// The simulator operation a step kind (`JobStep::label`) runs, where it names its group.
fn sim_op_of(step: &str) -> Option<&'static str> {
    Some(match step {
        "offline_source" | "offline_interim" => "offline_group",
        "online_interim" | "online_target" => "online_group",
        "migrate_to_interim" | "migrate_to_target" => "migrate_group",
        "swap_interim_disk" => "replace_disk_resource",
        "cleanup_interim" => "remove_group",
        _ => return None,
    })
}

fn summary(job: &Value) -> String {
    let groups: Vec<String> = job["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|g| format!("{}={}", g["name"], g["state"]))
        .collect();
    format!("{} [{}]", job["state"], groups.join(" "))
}

struct Cli(Command);

impl Cli {
    fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.0.arg(arg);
        self
    }

    fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.0.args(args);
        self
    }

    /// Runs to the end; its stdout. Fails the test on a non-zero exit.
    async fn run(mut self) -> String {
        let out = tokio::time::timeout(Duration::from_secs(120), self.0.output())
            .await
            .expect("the command ends within 120 s")
            .unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}\n{}",
            self.0.as_std(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Follows `GET /v1/events?job=` from the first event, on the replicas of `order` in turn:
/// when a stream breaks it resumes on the next with `Last-Event-ID`. The sequence numbers
/// received, as they arrive; the follower stops when `follower` is aborted.
fn follow_events(
    fleet: &Fleet,
    order: Vec<usize>,
    job: String,
) -> (Arc<Mutex<Vec<i64>>>, tokio::task::JoinHandle<()>) {
    let urls: Vec<String> = order.iter().map(|&i| fleet.replicas[i].rest()).collect();
    let http = fleet.http.clone();
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let seqs = seen.clone();
    let follower = tokio::spawn(async move {
        for turn in 0.. {
            let url = format!("{}/v1/events?job={job}", urls[turn % urls.len()]);
            let mut request = http.get(url).bearer_auth(ADMIN);
            let last = seqs.lock().unwrap().last().copied();
            if let Some(last) = last {
                request = request.header("last-event-id", last.to_string());
            }
            let Ok(mut response) = request.send().await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut pending = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    if let Some(id) = line.trim_end().strip_prefix("id:") {
                        seqs.lock().unwrap().push(id.trim().parse().unwrap());
                    }
                }
            }
        }
    });
    (seen, follower)
}

/// The replica holding the scheduler lease is killed with SIGKILL while several groups are in
/// their cutover. Another takes the lease within the lease term, the job ends `succeeded` with
/// every share verified and every step run once per attempt, an event stream that moves
/// between replicas sees every event of the job in order, with no gap and no repeat, and the
/// job's webhook receives every event in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_lease_holder_mid_cutover_loses_nothing() {
    let groups = 4;
    let Some(mut fleet) = Fleet::start(groups, 150).await else {
        return;
    };
    fleet.start_all_agents().await;
    let mut request = fleet.prepare_migration(groups).await;
    request["max_active_groups"] = json!(4);
    request["max_cluster_cutovers"] = json!(4);
    // A webhook registered before the job (it delivers what comes after it).
    let receiver = fleet.webhook_on(1).await;
    let job = fleet.post(0, "/v1/jobs", request).await;
    let id = job["id"].as_str().unwrap().to_owned();

    // Several groups in their cutover at once, then the holder dies.
    let holder = common::eventually("a scheduler lease holder", || fleet.lease_holder()).await;
    let survivor = (holder + 1) % 3;
    let (seen, follower) = follow_events(&fleet, vec![holder, survivor], id.clone());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let job = fleet.get(survivor, &format!("/v1/jobs/{id}")).await;
        let in_cutover = job["groups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| {
                let steps = g["steps"].as_array().unwrap();
                steps
                    .iter()
                    .any(|s| s["state"] == "succeeded" && s["action"]["kind"] == "offline_source")
                    && g["state"] != "succeeded"
            })
            .count();
        if in_cutover >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no cutover began: {}",
            summary(&job)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_at = Instant::now();
    fleet.replicas[holder].kill().await;

    let taken_by =
        common::eventually("another replica taking the lease", || fleet.lease_holder()).await;
    let takeover = killed_at.elapsed();
    assert_ne!(taken_by, holder);
    assert!(
        takeover <= SCHEDULER_LEASE + Duration::from_secs(4),
        "the lease was taken {takeover:?} after its holder died (term {SCHEDULER_LEASE:?})"
    );

    let job = fleet
        .wait_job_end(survivor, &id, Duration::from_secs(300))
        .await;
    fleet.assert_migrated_exactly_once(&job).await;

    // The stream saw every event, in order, across the replica it lost.
    let stored = fleet.stored_event_seqs(&id).await;
    common::eventually("the event stream catching up", || async {
        (seen.lock().unwrap().len() >= stored.len()).then_some(())
    })
    .await;
    follower.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen, stored,
        "events seen by a client moving between replicas"
    );

    // Webhook deliveries, made by whichever replicas claimed them: a batch may come twice (a
    // replica killed between the receiver's 2xx and its mark), but in order and never skipping.
    let delivered = common::eventually("every event delivered to the webhook", || async {
        let mut delivered: Vec<i64> = Vec::new();
        for batch in receiver.received("/hook") {
            let events = batch.json()["events"].as_array().unwrap().clone();
            let ours = events.iter().filter(|e| e["job_id"] == id.as_str());
            for seq in ours.map(|e| e["seq"].as_i64().unwrap()) {
                if delivered.last().is_none_or(|&last| seq > last) {
                    delivered.push(seq);
                } else {
                    assert!(delivered.contains(&seq), "delivery skipped back to {seq}");
                }
            }
        }
        (delivered.len() >= stored.len()).then_some(delivered)
    })
    .await;
    assert_eq!(delivered, stored, "webhook deliveries across replicas");
}

/// Work created on one replica for what another serves: a task for an agent connected to b,
/// posted on a, runs and is seen succeeded on a; a revocation on a closes the agent's stream on
/// b; a token b has cached is refused there once a revokes it, and a cluster created on a shows
/// in b's cached list; b killed while its agent runs a task: the agent reconnects to c and the
/// result is applied once; an approval on a replica that does not hold the scheduler lease moves
/// the job. The time bounds are loose (two seconds where the design answers in milliseconds) so
/// that a loaded machine does not fail them; `benches/replicas.rs` measures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_crosses_replicas() {
    let Some(mut fleet) = Fleet::start(1, 0).await else {
        return;
    };
    // The target's agents dial b first, the source's a, the interim's c.
    fleet.start_agent("FS-OLD-n1", &[0, 1, 2]).await;
    fleet.start_agent("FS-OLD-n2", &[0, 1, 2]).await;
    fleet.start_agent("FS-MID-n1", &[2, 0, 1]).await;
    fleet.start_agent("FS-NEW-n1", &[1, 2, 0]).await;
    fleet.start_agent("FS-NEW-n2", &[1, 2, 0]).await;
    fleet.wait_connected(5).await;
    let agents = fleet.get(0, "/v1/agents?cluster=FS-NEW").await;
    let agent_id = |node: &str| {
        agents["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["node"] == node)
            .unwrap_or_else(|| panic!("no agent {node}: {agents}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (n1, n2) = (agent_id("FS-NEW-n1"), agent_id("FS-NEW-n2"));

    // Created on a, run by the agent on b, seen on a.
    for _ in 0..5 {
        let started = Instant::now();
        let task = fleet
            .post(
                0,
                &format!("/v1/agents/{n1}/tasks"),
                json!({"action": "echo", "text": "hi", "sleep_ms": 0}),
            )
            .await;
        let task_id = task["id"].as_str().unwrap().to_owned();
        let done = common::eventually("the echo task to succeed", || async {
            let task = fleet.get(0, &format!("/v1/tasks/{task_id}")).await;
            (task["state"] == "succeeded").then_some(task)
        })
        .await;
        assert_eq!(done["attempt"], 1, "{done}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a task across replicas took {:?}",
            started.elapsed()
        );
    }

    // Revoked on a, n1's stream on b closes (the design: on the notification, in milliseconds).
    let sessions = |fleet: &Fleet, replica: usize| {
        let url = format!("{}/metrics", fleet.replicas[replica].rest());
        let http = fleet.http.clone();
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("ferry_agent_sessions "))
                .map(|v| v.trim().parse::<f64>().unwrap() as u64)
                .unwrap_or(0)
        }
    };
    assert_eq!(sessions(&fleet, 1).await, 2, "both target agents are on b");
    let revoked_at = Instant::now();
    let (status, body) = fleet
        .send(
            0,
            reqwest::Method::DELETE,
            &format!("/v1/agents/{n1}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    while sessions(&fleet, 1).await != 1 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "the revoked agent's stream on b is still open after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A token cached on b is refused there as soon as a revokes it.
    let token = fleet
        .post(
            0,
            "/v1/tokens",
            json!({"name": "dashboard", "role": "viewer"}),
        )
        .await;
    let (token_id, secret) = (
        token["id"].as_str().unwrap().to_owned(),
        token["token"].as_str().unwrap().to_owned(),
    );
    let read_on_b = || async {
        fleet
            .http
            .get(format!("{}/v1/clusters", fleet.replicas[1].rest()))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    for _ in 0..3 {
        assert_eq!(read_on_b().await, 200);
    }
    let (status, body) = fleet
        .send(
            0,
            reqwest::Method::DELETE,
            &format!("/v1/tokens/{token_id}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let revoked_at = Instant::now();
    while read_on_b().await != 401 {
        assert!(
            revoked_at.elapsed() < Duration::from_secs(2),
            "b still accepts a token revoked on a after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // b's cached cluster list shows a cluster created on a, and then a new snapshot of it.
    let names_on_b = || async {
        let list = fleet.get(1, "/v1/clusters").await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_owned(),
                    c["latest_snapshot"].clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    let before = names_on_b().await;
    assert_eq!(names_on_b().await, before);
    fleet
        .post(
            0,
            "/v1/clusters",
            json!({"name": "FS-LATER", "os": "ws2012r2"}),
        )
        .await;
    let created_at = Instant::now();
    while !names_on_b()
        .await
        .iter()
        .any(|(name, _)| name == "FS-LATER")
    {
        assert!(
            created_at.elapsed() < Duration::from_secs(2),
            "b's cluster list still lacks a cluster created on a after {:?}",
            created_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let document =
        json!({"nodes": [{"name": "LATER-N1"}], "groups": [], "disks": [], "networks": []});
    let (status, body) = fleet
        .send(
            0,
            reqwest::Method::PUT,
            "/v1/clusters/FS-LATER/inventory",
            Some(document),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    common::eventually("b's list showing the new snapshot", || async {
        names_on_b()
            .await
            .iter()
            .any(|(name, snapshot)| name == "FS-LATER" && *snapshot == json!(1))
            .then_some(())
    })
    .await;

    // b dies while n2 runs a task it got from b: n2 reconnects to c, and the result is applied
    // once.
    let task = fleet
        .post(
            1,
            &format!("/v1/agents/{n2}/tasks"),
            json!({"action": "echo", "text": "long", "sleep_ms": 3000}),
        )
        .await;
    let task_id = task["id"].as_str().unwrap().to_owned();
    common::eventually("the long task running", || async {
        let task = fleet.get(0, &format!("/v1/tasks/{task_id}")).await;
        (task["state"] == "running").then_some(())
    })
    .await;
    fleet.replicas[1].kill().await;
    let done = common::eventually(
        "the long task's result applied on another replica",
        || async {
            let task = fleet.get(2, &format!("/v1/tasks/{task_id}")).await;
            (task["state"] == "succeeded").then_some(task)
        },
    )
    .await;
    assert_eq!(done["attempt"], 1, "delivered once, not run again: {done}");
    assert_eq!(done["result"]["text"], "long", "{done}");
    fleet.wait_connected(4).await;

    // An approval given on a replica that does not hold the scheduler lease moves the job.
    let db = fleet.db.clone();
    fleet.replicas[1]
        .start(&db, &fleet.dir.path().join("logs"))
        .await;
    let mut request = fleet.prepare_migration(1).await;
    request["require_approval"] = json!(true);
    let job = fleet.post(0, "/v1/jobs", request).await;
    let id = job["id"].as_str().unwrap().to_owned();
    common::eventually("the group awaiting approval", || async {
        let job = fleet.get(0, &format!("/v1/jobs/{id}")).await;
        (job["groups"][0]["state"] == "awaiting_approval").then_some(())
    })
    .await;
    let holder = common::eventually("a scheduler lease holder", || fleet.lease_holder()).await;
    let other = (holder + 1) % 3;
    fleet
        .post(other, &format!("/v1/jobs/{id}/approve"), json!({}))
        .await;
    let job = fleet
        .wait_job_end(holder, &id, Duration::from_secs(120))
        .await;
    fleet.assert_migrated_exactly_once(&job).await;
}

/// Every replica stopped and started again in turn while a job runs: the job succeeds and
/// every step ran once per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_fails_nothing() {
    let groups = 3;
    let Some(mut fleet) = Fleet::start(groups, 100).await else {
        return;
    };
    fleet.start_all_agents().await;
    let request = fleet.prepare_migration(groups).await;
    let job = fleet.post(0, "/v1/jobs", request).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let db = fleet.db.clone();
    let logs = fleet.dir.path().join("logs");
    for replica in 0..3 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        fleet.replicas[replica].stop().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        fleet.replicas[replica].start(&db, &logs).await;
    }
    let job = fleet.wait_job_end(2, &id, Duration::from_secs(300)).await;
    fleet.assert_migrated_exactly_once(&job).await;
}

/// Each replica's count of the periods of timed work it did, from its `/metrics`
/// (`ferry_periods_done_total{duty="..."}`), by duty.
async fn periods_done(fleet: &Fleet) -> Vec<BTreeMap<String, u64>> {
    let mut per_replica = Vec::new();
    for replica in &fleet.replicas {
        let text = fleet
            .http
            .get(format!("{}/metrics", replica.rest()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let mut done = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("ferry_periods_done_total{duty=\"") else {
                continue;
            };
            let (duty, count) = rest.split_once("\"} ").unwrap();
            done.insert(duty.to_owned(), count.trim().parse().unwrap());
        }
        per_replica.push(done);
    }
    per_replica
}

/// Timed work (reaping leases, compacting and expiring perf data, the discovery schedule) is
/// done once per period by one replica, not once per period by each; the replicas split the
/// periods between them, and a webhook gets each batch once when no replica dies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_work_is_done_once_per_period_across_replicas() {
    let groups = 2;
    // Reaping every 0.5 s (the heartbeat's), compacting every 0.5 s, the discovery schedule
    // every 15 s and retention every 60 s: fixed periods.
    let Some(mut fleet) = Fleet::start_with(groups, 0, &[("FERRY_PERF_COMPACT_MS", "500")]).await
    else {
        return;
    };
    let receiver = fleet.webhook_on(2).await;
    fleet.start_all_agents().await;

    let before = periods_done(&fleet).await;
    let window_started = Instant::now();
    let request = fleet.prepare_migration(groups).await;
    let job = fleet.post(0, "/v1/jobs", request).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let job = fleet.wait_job_end(1, &id, Duration::from_secs(300)).await;
    fleet.assert_migrated_exactly_once(&job).await;
    let least = Duration::from_secs(32);
    if let Some(rest) = least.checked_sub(window_started.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let after = periods_done(&fleet).await;
    let window = window_started.elapsed().as_secs_f64();

    for (duty, period_s) in [
        ("reap", 0.5),
        ("perf_compaction", 0.5),
        ("discovery_schedule", 15.0),
        ("perf_retention", 60.0),
    ] {
        let done: Vec<u64> = (0..3)
            .map(|r| {
                after[r].get(duty).copied().unwrap_or(0) - before[r].get(duty).copied().unwrap_or(0)
            })
            .collect();
        let total: u64 = done.iter().sum();
        eprintln!("{duty}: {total} periods in {window:.1} s, by replica {done:?}");
        // A claim holds nine tenths of a period, and the window may cut into one at each end.
        let most = (window / (period_s * 0.9)).floor() as u64 + 2;
        assert!(
            total <= most,
            "{duty}: {total} periods done in {window:.1} s by the replicas ({done:?}); one \
             replica alone would do at most {most}"
        );
        if period_s < window / 4.0 {
            // Still done: three replicas skipping each other's periods do not skip the work.
            let least = (window / period_s / 2.0) as u64;
            assert!(
                total >= least,
                "{duty}: only {total} periods done in {window:.1} s ({done:?})"
            );
        }
    }

    // Every event the webhook was due, once: no batch posted by two replicas.
    let mut events = fleet.stored_event_seqs(&id).await;
    events.sort_unstable();
    let delivered = common::eventually("the job's events delivered", || async {
        let mut seqs: Vec<i64> = Vec::new();
        for batch in receiver.received("/hook") {
            for event in batch.json()["events"].as_array().unwrap() {
                if event["job_id"] == id.as_str() {
                    seqs.push(event["seq"].as_i64().unwrap());
                }
            }
        }
        (seqs.len() >= events.len()).then_some(seqs)
    })
    .await;
    assert_eq!(
        delivered, events,
        "each of the job's events delivered once, in order"
    );
    let mut batches: Vec<String> = receiver
        .received("/hook")
        .iter()
        .map(|r| r.headers["x-ferry-delivery"].to_str().unwrap().to_owned())
        .collect();
    let posted = batches.len();
    batches.sort();
    batches.dedup();
    assert_eq!(batches.len(), posted, "a batch posted twice");
}

/// A TCP proxy the test partitions: while cut it forwards nothing, and holds what it accepted
/// without a word, as a network dropping every packet does; healing closes what it held, as the
/// far side has long given up on those connections.
struct Partition {
    addr: std::net::SocketAddr,
    cut: tokio::sync::watch::Sender<bool>,
}

impl Partition {
    async fn start(backend: std::net::SocketAddr) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (cut, _) = tokio::sync::watch::channel(false);
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut cut = cuts.subscribe();
                tokio::spawn(async move {
                    let partitioned = *cut.borrow_and_update();
                    if partitioned {
                        let _ = cut.wait_for(|cut| !*cut).await;
                        return;
                    }
                    let Ok(mut server) = tokio::net::TcpStream::connect(backend).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                    // Held silently until the cut heals, then closed.
                    let _ = cut.wait_for(|cut| !*cut).await;
                    drop((client, server));
                });
            }
        });
        Partition { addr, cut }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set_cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }
}

/// An agent cut off from every replica while it runs a job's step: its lease runs out, the
/// attempt is `lost`, the step runs again on the cluster's other node, and the job succeeds with
/// every share verified. When the cut heals, the agent's late result for the lost attempt is
/// refused and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cut_off_loses_its_attempt_to_another_node() {
    let settings = [
        ("FERRY_AGENT_LEASE_MS", "3000"),
        ("FERRY_AGENT_DOWN_AFTER_MS", "2000"),
    ];
    let Some(mut fleet) = Fleet::start_with(1, 0, &settings).await else {
        return;
    };
    // The target's operations take long enough to be cut off in the middle of one.
    fleet
        .cli(&["sim", "create", "--force", "--dir"])
        .arg(fleet.sim_dir("FS-NEW"))
        .args(["--cluster", "FS-NEW", "--os", "ws2008r2", "--nodes", "2"])
        .args(["--groups", "0", "--latency-ms", "2500"])
        .run()
        .await;
    for node in ["FS-OLD-n1", "FS-OLD-n2", "FS-MID-n1"] {
        fleet.start_agent(node, &[0, 1, 2]).await;
    }
    // Each target agent reaches every replica through its own proxy.
    let mut partitions = BTreeMap::new();
    for node in ["FS-NEW-n1", "FS-NEW-n2"] {
        let mut proxies = Vec::new();
        for replica in &fleet.replicas {
            let backend = format!("127.0.0.1:{}", replica.grpc_port).parse().unwrap();
            proxies.push(Partition::start(backend).await);
        }
        let servers = proxies.iter().map(Partition::url).collect();
        fleet.start_agent_at(node, servers).await;
        partitions.insert(node.to_owned(), proxies);
    }
    fleet.wait_connected(5).await;
    let request = fleet.prepare_migration(1).await;
    let job = fleet.post(0, "/v1/jobs", request).await;
    let id = job["id"].as_str().unwrap().to_owned();

    // The target's first step in flight: which node runs it?
    let (step, task_id) = common::eventually("a step running on the target", || async {
        let job = fleet.get(0, &format!("/v1/jobs/{id}")).await;
        job["groups"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["cluster"] == "FS-NEW" && s["state"] == "running")
            .map(|s| {
                (
                    s["seq"].as_u64().unwrap(),
                    s["task_id"].as_str().unwrap().to_owned(),
                )
            })
    })
    .await;
    let task = fleet.get(0, &format!("/v1/tasks/{task_id}")).await;
    let agent = fleet
        .get(
            0,
            &format!("/v1/agents/{}", task["agent_id"].as_str().unwrap()),
        )
        .await;
    let node = agent["node"].as_str().unwrap().to_owned();
    for proxy in &partitions[&node] {
        proxy.set_cut(true);
    }

    // The attempt is lost and the step runs again, on the other node.
    let job = fleet.wait_job_end(0, &id, Duration::from_secs(120)).await;
    fleet.assert_migrated_exactly_once(&job).await;
    let step = job["groups"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["seq"].as_u64() == Some(step))
        .unwrap()
        .clone();
    assert_eq!(step["attempt"], 2, "{step}");
    let retried = fleet
        .get(
            0,
            &format!("/v1/tasks/{}", step["task_id"].as_str().unwrap()),
        )
        .await;
    assert_ne!(
        retried["agent_id"], task["agent_id"],
        "the retry ran on the other node"
    );

    // Healed: the late result is refused, and the audit log says so.
    for proxy in &partitions[&node] {
        proxy.set_cut(false);
    }
    let agent_id = task["agent_id"].as_str().unwrap().to_owned();
    let record = common::eventually("the late result audited", || async {
        let audit = fleet
            .get(
                0,
                &format!("/v1/audit?action=task.result&actor=agent:{agent_id}"),
            )
            .await;
        audit["items"].as_array().unwrap().first().cloned()
    })
    .await;
    assert_eq!(record["target"], format!("task:{task_id}"), "{record}");
    assert_eq!(record["outcome"], "denied", "{record}");
    assert!(
        record["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("stale result"),
        "{record}"
    );
    let lost = fleet.get(0, &format!("/v1/tasks/{task_id}")).await;
    assert_eq!(
        lost["state"], "lost",
        "the late result changed nothing: {lost}"
    );
}

/// `host:port` of the Postgres server a URL names.
fn database_address(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, after)| after);
    let host_port = rest.split(['/', '?']).next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    std::net::ToSocketAddrs::to_socket_addrs(&host_port)
        .unwrap()
        .next()
        .unwrap()
}

/// `url` with its server replaced by `addr`.
fn through(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, rest) = match rest.rsplit_once('@') {
        Some((user, rest)) => (format!("{user}@"), rest),
        None => (String::new(), rest),
    };
    let path = &rest[rest.find(['/', '?']).unwrap_or(rest.len())..];
    format!("{scheme}://{user}{addr}{path}")
}

/// The replica holding the scheduler lease is cut off from the database while a job runs: its
/// `/readyz` turns unready within seconds, another replica takes the lease and finishes the job
/// with every step run once per attempt (the cut one did not act on), and once the cut heals the
/// replica is ready again without taking the lease back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_database_stops_acting() {
    let groups = 3;
    let Some(mut fleet) = Fleet::start_full(groups, 150, &[], true).await else {
        return;
    };
    fleet.start_all_agents().await;
    let request = fleet.prepare_migration(groups).await;
    let job = fleet.post(0, "/v1/jobs", request).await;
    let id = job["id"].as_str().unwrap().to_owned();
    let holder = common::eventually("a scheduler lease holder", || fleet.lease_holder()).await;
    let other = (holder + 1) % 3;
    tokio::time::sleep(Duration::from_secs(1)).await;

    fleet.db_partitions[holder].set_cut(true);
    let cut_at = Instant::now();
    let readyz = |replica: usize| {
        let url = format!("{}/readyz", fleet.replicas[replica].rest());
        let http = fleet.http.clone();
        async move {
            http.get(url)
                .timeout(Duration::from_secs(10))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    common::eventually("the cut replica unready", || async {
        (readyz(holder).await == 503).then_some(())
    })
    .await;
    assert!(
        cut_at.elapsed() < Duration::from_secs(8),
        "unready only after {:?}",
        cut_at.elapsed()
    );
    assert_eq!(readyz(other).await, 200);
    let taken_by = common::eventually("another replica taking the lease", || async {
        fleet.lease_holder().await.filter(|&h| h != holder)
    })
    .await;
    assert!(
        cut_at.elapsed() < SCHEDULER_LEASE + Duration::from_secs(5),
        "the lease moved {:?} after its holder was cut off",
        cut_at.elapsed()
    );

    let job = fleet
        .wait_job_end(other, &id, Duration::from_secs(300))
        .await;
    fleet.assert_migrated_exactly_once(&job).await;

    fleet.db_partitions[holder].set_cut(false);
    common::eventually("the healed replica ready again", || async {
        (readyz(holder).await == 200).then_some(())
    })
    .await;
    assert_eq!(
        fleet.lease_holder().await,
        Some(taken_by),
        "the healed replica took the lease back"
    );
}
