//! Migration jobs end to end: a real server on fixed loopback ports (so a restarted server is
//! found by the same agents), simulated clusters in a temporary directory, in-process agents
//! over real gRPC, and the REST API as a pipeline uses it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use ferry::agent::exec::{Builtin, DriverKind, NodeExecutor};
use ferry::agent::session::AgentConfig;
use ferry::config::Config;
use ferry::model::{Access, AceType, OsGeneration, Permission};
use ferry::server::{RunningServer, start_with_store};
use ferry::sim::{FaultSpec, SimCreateOptions, SimOp, create_sim_cluster, load_state};
use ferry::store::Store;

use common::{BOOTSTRAP, PATIENCE, eventually, free_port, rest};

/// Starts `ferry server` on the harness's ports and waits until it answers.
async fn spawn_server_process(config: &Config, database_url: &str) -> std::process::Child {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["server", "--http-addr", &config.http_addr.to_string()])
        .args(["--grpc-addr", &config.grpc_addr.to_string()])
        .args(["--database-url", database_url])
        .env("FERRY_BOOTSTRAP_TOKEN", BOOTSTRAP)
        .env(
            "FERRY_AGENT_HEARTBEAT_MS",
            config.agent_heartbeat_ms.to_string(),
        )
        .env("FERRY_AGENT_LEASE_MS", config.agent_lease_ms.to_string())
        .env(
            "FERRY_AGENT_DOWN_AFTER_MS",
            config.agent_down_after_ms.to_string(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start ferry server");
    let addr = config.http_addr;
    eventually("the server process answers", || async move {
        std::net::TcpStream::connect(addr).ok().map(drop)
    })
    .await;
    child
}

fn is_finished(job: &Value) -> bool {
    matches!(
        job["state"].as_str(),
        Some("succeeded" | "failed" | "cancelled")
    )
}

/// The server under test: in this process, or a `ferry server` process that can be killed.
enum Server {
    InProcess(Box<RunningServer>),
    Process(std::process::Child),
}

struct Harness {
    server: Option<Server>,
    /// The store of an in-process server; `None` for a server process.
    store: Option<Arc<dyn Store>>,
    config: Config,
    sims: tempfile::TempDir,
    agents: Vec<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
    /// Source disk -> the name the target gave the same LUN when it was presented.
    disk_mapping: serde_json::Map<String, Value>,
    /// Base latency of every simulated operation.
    latency_ms: u64,
}

impl Harness {
    async fn start(store: Arc<dyn Store>) -> Self {
        let config = Self::config();
        let server = start_with_store(&config, store.clone())
            .await
            .expect("server starts");
        Self::with_server(config, Server::InProcess(Box::new(server)), Some(store))
    }

    /// A `ferry server` process on `database_url`, so the test can kill it as a crash would.
    async fn start_process(database_url: &str) -> Self {
        let config = Self::config();
        let child = spawn_server_process(&config, database_url).await;
        Self::with_server(config, Server::Process(child), None)
    }

    fn config() -> Config {
        Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], free_port())),
            bootstrap_token: Some(BOOTSTRAP.into()),
            agent_heartbeat_ms: 200,
            agent_lease_ms: 5000,
            agent_down_after_ms: 10_000,
            ..Default::default()
        }
    }

    fn with_server(config: Config, server: Server, store: Option<Arc<dyn Store>>) -> Self {
        Harness {
            server: Some(server),
            store,
            config,
            sims: tempfile::tempdir().unwrap(),
            agents: Vec::new(),
            disk_mapping: serde_json::Map::new(),
            latency_ms: 0,
        }
    }

    /// A job request from OLD to NEW with the harness's disk mapping and `extra` fields.
    fn request(&self, extra: Value) -> Value {
        let mut request = request(extra);
        if request.get("disk_mapping").is_none() {
            request["disk_mapping"] = Value::Object(self.disk_mapping.clone());
        }
        request
    }

    fn http(&self) -> SocketAddr {
        self.config.http_addr
    }

    /// Stops the server (agents keep running and reconnect) and starts a new one on the same
    /// database and ports.
    async fn restart(&mut self) {
        match self.server.take().unwrap() {
            Server::InProcess(server) => {
                server.stop().await.expect("server stops");
                let store = self
                    .store
                    .clone()
                    .expect("an in-process server has its store");
                let server = start_with_store(&self.config, store)
                    .await
                    .expect("server restarts");
                self.server = Some(Server::InProcess(Box::new(server)));
            }
            Server::Process(_) => panic!("a server process is killed, not stopped"),
        }
    }

    /// Kills the server process as a crash would (SIGKILL: no shutdown code runs) and starts
    /// it again on the same database and ports.
    async fn kill_and_restart(&mut self, database_url: &str) {
        let Some(Server::Process(mut child)) = self.server.take() else {
            panic!("only a server process can be killed");
        };
        child.kill().expect("kill the server");
        child.wait().expect("reap the server");
        let child = spawn_server_process(&self.config, database_url).await;
        self.server = Some(Server::Process(child));
    }

    fn sim(&self, name: &str) -> PathBuf {
        self.sims.path().join(name)
    }

    /// Creates and registers a simulated cluster and starts an agent on its first node.
    async fn cluster(
        &mut self,
        name: &str,
        os: OsGeneration,
        groups: u32,
        shares: u32,
        spare: u32,
    ) {
        let mut o = SimCreateOptions::new(self.sim(name), name, os);
        o.groups = groups;
        o.shares = shares;
        o.nodes = 1;
        o.spare_disks = spare;
        o.seed = 11;
        o.latency_ms = self.latency_ms;
        create_sim_cluster(&o).expect("create simulated cluster");
        let (status, body) = self
            .post(
                "/v1/clusters",
                json!({"name": name, "os": os.as_str(), "description": "sim"}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self
            .post("/v1/join-tokens", json!({"cluster": name, "uses": 1}))
            .await;
        assert_eq!(status, 201, "{body}");
        let mut config = AgentConfig::new(
            vec![format!("http://{}", self.config.grpc_addr)],
            name,
            format!("{name}-n1"),
            self.sims.path().join(format!("{name}.agent")),
        );
        config.join_token = Some(body["token"].as_str().unwrap().to_owned());
        config.backoff_initial = Duration::from_millis(50);
        config.backoff_max = Duration::from_millis(300);
        let executor = Arc::new(NodeExecutor::new(Builtin::new(
            DriverKind::Sim,
            Some(o.dir.clone()),
        )));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(ferry::agent::session::run(config, executor, async move {
            let _ = stopped.await;
        }));
        self.agents.push((stop, handle));
    }

    /// The three clusters of the field notes: a ws2003 source with `groups` file server groups,
    /// a ws2008 interim with a spare disk per group, a ws2008r2 target with the source's data
    /// disks presented to it; the source's inventory imported.
    async fn three_clusters(&mut self, groups: u32, shares: u32) {
        self.cluster("OLD", OsGeneration::Ws2003, groups, shares, 0)
            .await;
        self.cluster("MID", OsGeneration::Ws2008, 0, 0, groups)
            .await;
        self.cluster("NEW", OsGeneration::Ws2008r2, 0, 0, 0).await;
        self.present_source_disks("NEW");
        self.import_source().await;
        self.wait_agents(3).await;
    }

    /// The storage admin's part: OLD's data LUNs presented to `target`, under the names the
    /// target gives them.
    fn present_source_disks(&mut self, target: &str) {
        let state = load_state(&self.sim("OLD")).unwrap();
        for disk in state.disks.iter().filter(|d| d.drive_letter.is_some()) {
            let name =
                ferry::sim::present_disk(&self.sim(target), &self.sim("OLD"), &disk.name).unwrap();
            self.disk_mapping
                .insert(disk.name.clone(), Value::String(name));
        }
    }

    /// The source's inventory, read by its agent: a discovery, as an operator would ask for it.
    async fn import_source(&self) {
        self.discover("OLD").await;
    }

    /// Discovers `cluster` and waits until its inventory is imported; answers the discovery.
    async fn discover(&self, cluster: &str) -> Value {
        let (status, discovery) = self
            .post(&format!("/v1/clusters/{cluster}/discover"), json!({}))
            .await;
        assert_eq!(status, 202, "{discovery}");
        let path = format!("/v1/discoveries/{}", discovery["id"].as_str().unwrap());
        let path = &path;
        let discovery = eventually(&format!("{cluster} discovered"), move || async move {
            let (_, discovery) = self.get(path).await;
            (discovery["state"] != "running").then_some(discovery)
        })
        .await;
        assert_eq!(discovery["state"], "completed", "{discovery:#}");
        discovery
    }

    async fn wait_agents(&self, n: usize) {
        let this = self;
        eventually("agents connected", move || async move {
            let (_, agents) = this.get("/v1/agents").await;
            let connected = agents["items"]
                .as_array()?
                .iter()
                .filter(|a| a["state"] == "connected")
                .count();
            (connected >= n).then_some(())
        })
        .await;
    }

    async fn stop(mut self) {
        for (stop, handle) in self.agents.drain(..) {
            let _ = stop.send(());
            let _ = tokio::time::timeout(PATIENCE, handle).await;
        }
        match self.server.take() {
            Some(Server::InProcess(server)) => server.stop().await.expect("server stops cleanly"),
            Some(Server::Process(mut child)) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            None => {}
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        rest(self.http(), "GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        rest(self.http(), "POST", path, Some(body)).await
    }

    async fn submit(&self, request: Value) -> String {
        let (status, job) = self.post("/v1/jobs", request).await;
        assert_eq!(status, 201, "{job:#}");
        job["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the job's state satisfies `done`.
    async fn job_until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let (_, job) = self.get(&format!("/v1/jobs/{id}")).await;
            if done(&job) {
                return job;
            }
            if tokio::time::Instant::now() > deadline {
                let (_, logs) = self.get(&format!("/v1/jobs/{id}/logs?limit=1000")).await;
                let lines: Vec<String> = logs["items"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .map(|e| {
                                format!(
                                    "{} {} {} {}",
                                    e["group"], e["step"], e["state"], e["message"]
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                panic!(
                    "timed out waiting for {what}; log:\n{}\njob: {job:#}",
                    lines.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn is_finished(&self, id: &str) -> bool {
        let (_, job) = self.get(&format!("/v1/jobs/{id}")).await;
        is_finished(&job)
    }

    async fn finished(&self, id: &str) -> Value {
        self.job_until(id, "job finished", is_finished).await
    }
}

fn request(extra: Value) -> Value {
    let mut request = json!({
        "source": "OLD",
        "target": "NEW",
        "retry_backoff_seconds": 0,
        "max_active_groups": 3,
    });
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    request
}

/// The shares of a group on a simulated cluster, as comparable JSON (name, path, permissions,
/// flags), sorted by name.
fn shares_of(dir: &Path, group: &str) -> Vec<Value> {
    let state = load_state(dir).unwrap();
    let inventory = serde_json::to_value(&state).unwrap();
    let groups = inventory["groups"].as_array().cloned().unwrap_or_default();
    let group = groups
        .iter()
        .find(|g| g["name"] == group)
        .unwrap_or_else(|| panic!("no group {group} in {}", dir.display()));
    let mut shares: Vec<Value> = group["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut perms = s["permissions"].as_array().cloned().unwrap_or_default();
            perms.sort_by_key(|p| p.to_string());
            json!({"name": s["name"], "path": s["path"], "permissions": perms,
                   "caching": s["caching"], "abe": s["access_based_enumeration"]})
        })
        .collect();
    shares.sort_by_key(|s| s["name"].to_string());
    shares
}

fn group_names(dir: &Path) -> Vec<String> {
    let state = serde_json::to_value(load_state(dir).unwrap()).unwrap();
    let mut names: Vec<String> = state["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_group_two_hop_migration_is_verified_share_by_share() {
    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store).await;
        h.three_clusters(3, 12).await;
        let groups = group_names(&h.sim("OLD"));
        let before: Vec<Vec<Value>> = groups.iter().map(|g| shares_of(&h.sim("OLD"), g)).collect();

        let (status, plan) = h.post("/v1/plans", h.request(json!({}))).await;
        assert_eq!(status, 200, "{plan:#}");
        assert_eq!(plan["route"], json!(["OLD", "MID", "NEW"]));
        assert!(
            plan["refused_direct"]
                .as_str()
                .unwrap()
                .contains("KB 983840"),
            "{plan:#}"
        );
        assert_eq!(plan["groups"].as_array().unwrap().len(), 3);
        assert_eq!(plan["runnable"], true);

        let id = h.submit(h.request(json!({}))).await;
        let job = h.finished(&id).await;
        assert_eq!(job["state"], "succeeded", "[{backend}] {job:#}");
        let (status, _) = h.get(&format!("/v1/jobs/{id}/groups/NoSuchGroup")).await;
        assert_eq!(status, 404);
        for (i, group) in groups.iter().enumerate() {
            let g = job["groups"]
                .as_array()
                .unwrap()
                .iter()
                .find(|g| g["name"] == group.as_str())
                .unwrap();
            assert_eq!(g["state"], "succeeded");
            let v = &g["verification"];
            assert_eq!(v["cluster"], "NEW");
            assert_eq!(v["identical"], v["expected"]);
            assert_eq!(v["expected"], 12);
            assert_eq!(v["network_name_online"], true);
            assert!(g["downtime_started_at"].is_string() && g["downtime_ended_at"].is_string());
            // The Kerberos note: the network name failed its first online on the interim and
            // the target, and came up on the retry.
            let online_interim = g["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["action"]["kind"] == "online_interim")
                .unwrap();
            assert_eq!(online_interim["attempt"], 2, "{online_interim:#}");
            assert!(g["retries"].as_u64().unwrap() >= 1);
            // Every step shows its agent's report (or, when large, where it is).
            for step in g["steps"].as_array().unwrap() {
                let output = &step["output"];
                assert!(
                    output.is_object() && output.as_object().is_some_and(|o| !o.is_empty()),
                    "{step:#}"
                );
                if let Some(see) = output.get("see") {
                    assert_eq!(
                        see,
                        &json!(format!("/v1/tasks/{}", step["task_id"].as_str().unwrap()))
                    );
                }
            }
            let migrated = g["steps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["action"]["kind"] == "migrate_to_target")
                .unwrap();
            assert_eq!(migrated["output"]["group"], group.as_str(), "{migrated:#}");
            // One group alone reads as it does within the whole job, reports included.
            let (status, alone) = h.get(&format!("/v1/jobs/{id}/groups/{group}")).await;
            assert_eq!(status, 200, "{alone:#}");
            assert_eq!(&alone, g);
            // Share by share, on the target's own state.
            assert_eq!(shares_of(&h.sim("NEW"), group), before[i], "group {group}");
        }
        // The interim was cleaned up; the source's groups are offline, still there.
        assert!(group_names(&h.sim("MID")).is_empty());
        let (_, logs) = h
            .get(&format!(
                "/v1/jobs/{id}/logs?group={}&limit=1000",
                groups[0]
            ))
            .await;
        assert!(
            logs["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("retrying"))),
            "{logs:#}"
        );
        // The event stream, reconnected with `Last-Event-ID`, resumes right after that event
        // and carries every later one of the job, in order.
        let (_, all) = h.get(&format!("/v1/jobs/{id}/logs?limit=1000")).await;
        let seqs: Vec<i64> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert!(seqs.len() > 10, "{all:#}");
        // The job as read says which of its events it already shows: all of them, now.
        let (_, detail) = h.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(detail["event_seq"].as_i64(), seqs.last().copied());
        let resumed = sse_ids(
            h.http(),
            &format!("/v1/events?job={id}"),
            seqs[4],
            seqs[seqs.len() - 1],
        )
        .await;
        assert_eq!(resumed, seqs[5..]);
        // A client that opens the stream near the present (the console's overview) starts
        // with the newest events, not the first ever.
        let newest = *seqs.last().unwrap();
        let tail = common::sse_until(
            h.http(),
            &format!("/v1/events?job={id}&tail=3"),
            None,
            move |events| events.last().and_then(|e| e["seq"].as_i64()) == Some(newest),
        )
        .await;
        let tail: Vec<i64> = tail.iter().filter_map(|e| e["seq"].as_i64()).collect();
        assert!(!tail.is_empty() && tail.len() <= 3, "{tail:?}");
        assert_eq!(tail[..], seqs[seqs.len() - tail.len()..]);
        h.stop().await;
    })
    .await;
}

/// The ids of the events `/v1/events` streams after `last_event_id`, until `until` arrives.
async fn sse_ids(addr: SocketAddr, path: &str, last_event_id: i64, until: i64) -> Vec<i64> {
    let events = common::sse_until(addr, path, Some(last_event_id), move |events| {
        events.last().and_then(|e| e["seq"].as_i64()) == Some(until)
    })
    .await;
    events.iter().filter_map(|e| e["seq"].as_i64()).collect()
}

#[tokio::test]
async fn the_lossy_direct_hop_is_refused_unless_allowed_and_then_its_loss_is_reported() {
    let (store, _db) = common::sqlite_store().await;
    let mut h = Harness::start(store).await;
    h.cluster("OLD", OsGeneration::Ws2003, 1, 5, 0).await;
    h.cluster("NEW", OsGeneration::Ws2008r2, 0, 0, 0).await;
    h.present_source_disks("NEW");
    h.import_source().await;
    h.wait_agents(2).await;

    let (status, problem) = h.post("/v1/plans", h.request(json!({}))).await;
    assert_eq!(status, 422, "{problem:#}");
    let text = problem.to_string();
    assert!(
        text.contains("no ws2008 cluster is registered to act as interim for ws2003 -> ws2008r2")
            && text.contains("KB 983840"),
        "{problem:#}"
    );
    let (status, _) = h.post("/v1/jobs", h.request(json!({}))).await;
    assert_eq!(status, 422);
    let (_, jobs) = h.get("/v1/jobs").await;
    assert!(
        jobs["items"].as_array().unwrap().is_empty(),
        "nothing stored"
    );

    let (status, plan) = h
        .post("/v1/plans", h.request(json!({"allow_lossy": true})))
        .await;
    assert_eq!(status, 200, "{plan:#}");
    assert_eq!(plan["route"], json!(["OLD", "NEW"]));
    assert_eq!(plan["losses"], json!(["file_share"]));
    assert!(plan["findings"].to_string().contains("lossy_route"));

    let id = h.submit(h.request(json!({"allow_lossy": true}))).await;
    let job = h.finished(&id).await;
    let group = &job["groups"][0];
    let v = &group["verification"];
    assert_eq!(v["lost"].as_array().unwrap().len(), 5, "{job:#}");
    assert_eq!(v["identical"], 0);
    assert_eq!(job["state"], "succeeded", "{job:#}");
    h.stop().await;
}

#[tokio::test]
async fn a_group_held_by_an_active_job_is_refused_with_409_naming_the_job() {
    let (store, _db) = common::sqlite_store().await;
    let mut h = Harness::start(store).await;
    h.three_clusters(2, 3).await;
    // A closed window keeps the first job active and holding its groups.
    let later = chrono::Utc::now() + chrono::Duration::days(1);
    let window =
        json!([{"kind": "interval", "start": later, "end": later + chrono::Duration::hours(4)}]);
    let first = h.submit(h.request(json!({"windows": window}))).await;
    let (status, problem) = h.post("/v1/jobs", h.request(json!({}))).await;
    assert_eq!(status, 409, "{problem:#}");
    assert!(
        problem["detail"].as_str().unwrap().contains(&first),
        "{problem:#}"
    );
    let (status, plan) = h.post("/v1/plans", h.request(json!({}))).await;
    assert_eq!(status, 200);
    assert_eq!(plan["runnable"], false);
    // The plan names what the job would be refused for: each group and each of its disks (on
    // the source and on the target), with the job holding it.
    for group in plan["groups"].as_array().unwrap() {
        let findings = group["findings"].as_array().unwrap();
        let held = |check: &str| {
            findings
                .iter()
                .filter(|f| {
                    f["check"] == check
                        && f["severity"] == "fail"
                        && f["message"].as_str().unwrap().contains(&first)
                })
                .count()
        };
        assert_eq!(held("group_free"), 1, "{group:#}");
        assert_eq!(held("disk_free"), 2, "{group:#}");
    }

    // Cancelled, it lets go.
    let (status, _) = h.post(&format!("/v1/jobs/{first}/cancel"), json!({})).await;
    assert_eq!(status, 200);
    let job = h.finished(&first).await;
    assert_eq!(job["state"], "cancelled");
    let second = h.submit(h.request(json!({}))).await;
    assert_eq!(h.finished(&second).await["state"], "succeeded");
    h.stop().await;
}

/// Each cutover step, verifications included, fails in turn (the simulator fails its operation
/// for good): the group rolls back, online on the source with its shares verified there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_at_each_cutover_step_rolls_the_group_back_to_the_source() {
    let cases = [
        ("offline_source", "OLD", SimOp::OfflineGroup),
        ("online_interim", "MID", SimOp::OnlineGroup),
        // The share scan reads the group through `list_groups`.
        ("verify_interim", "MID", SimOp::ListGroups),
        ("migrate_to_target", "NEW", SimOp::MigrateGroup),
        ("offline_interim", "MID", SimOp::OfflineGroup),
        ("attach_target_disk", "NEW", SimOp::ReplaceDiskResource),
        ("online_target", "NEW", SimOp::OnlineGroup),
        ("verify_target", "NEW", SimOp::ListGroups),
    ];
    for (step, cluster, op) in cases {
        let (store, _db) = common::sqlite_store().await;
        let mut h = Harness::start(store).await;
        h.three_clusters(1, 4).await;
        let group = group_names(&h.sim("OLD"))[0].clone();
        let before = shares_of(&h.sim("OLD"), &group);
        // Cutover waits for approval, so the fault goes in after the preparation ran.
        let id = h.submit(h.request(json!({"require_approval": true}))).await;
        h.job_until(&id, "awaiting approval", |job| {
            job["groups"][0]["state"] == "awaiting_approval"
        })
        .await;
        // The group's first offline on the interim is its cutover step: failing it once is
        // enough (a `failed` error is not retried), and the rollback's own offline there then
        // succeeds.
        let times = if step == "offline_interim" { 1 } else { 10 };
        ferry::sim::inject_fault(
            &h.sim(cluster),
            op,
            FaultSpec::fail(times, ferry::agent::driver::ErrorKind::Failed),
        )
        .unwrap();
        let (status, _) = h.post(&format!("/v1/jobs/{id}/approve"), json!({})).await;
        assert_eq!(status, 200);
        let job = h.finished(&id).await;
        let g = &job["groups"][0];
        assert_eq!(g["state"], "rolled_back", "{step}: {job:#}");
        assert!(
            g["error"].as_str().unwrap().contains(step),
            "{step}: {}",
            g["error"]
        );
        assert_eq!(g["verification"]["cluster"], "OLD", "{step}");
        assert_eq!(g["verification"]["passed"], true, "{step}");
        let source = load_state(&h.sim("OLD")).unwrap();
        let source = serde_json::to_value(&source).unwrap();
        let source_group = source["groups"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == group.as_str())
            .unwrap()
            .clone();
        assert_eq!(source_group["state"], "online", "{step}");
        assert_eq!(shares_of(&h.sim("OLD"), &group), before, "{step}");
        h.stop().await;
    }
}

#[tokio::test]
async fn windows_and_approvals_hold_the_cutover_and_pause_resume_and_retry_work() {
    let (store, _db) = common::sqlite_store().await;
    let mut h = Harness::start(store).await;
    h.three_clusters(1, 3).await;
    // A window that opens in a few seconds.
    let opens = chrono::Utc::now() + chrono::Duration::seconds(3);
    let window =
        json!([{"kind": "interval", "start": opens, "end": opens + chrono::Duration::hours(4)}]);
    let id = h
        .submit(h.request(json!({"windows": window, "require_approval": true})))
        .await;
    let job = h
        .job_until(&id, "awaiting window", |job| {
            job["groups"][0]["state"] == "awaiting_window"
        })
        .await;
    let offline_source = |job: &Value| {
        job["groups"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["action"]["kind"] == "offline_source")
            .unwrap()["state"]
            .clone()
    };
    assert_eq!(offline_source(&job), "pending");
    // After the window opens, approval still holds it.
    h.job_until(&id, "awaiting approval", |job| {
        job["groups"][0]["state"] == "awaiting_approval"
    })
    .await;
    assert!(chrono::Utc::now() >= opens);
    // Paused, an approval does not start anything.
    let (status, job) = h.post(&format!("/v1/jobs/{id}/pause"), json!({})).await;
    assert_eq!((status, job["state"].as_str()), (200, Some("paused")));
    let group = job["groups"][0]["name"].as_str().unwrap().to_owned();
    let (status, _) = h
        .post(&format!("/v1/jobs/{id}/approve"), json!({"group": group}))
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, job) = h.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(offline_source(&job), "pending", "paused: {job:#}");

    // The target's online fails (a `failed` error is not retried): the group rolls back; the
    // operator's retry, with the fault gone, resumes the cutover and succeeds.
    ferry::sim::inject_fault(
        &h.sim("NEW"),
        SimOp::OnlineGroup,
        FaultSpec::fail(1, ferry::agent::driver::ErrorKind::Failed),
    )
    .unwrap();
    let (status, _) = h.post(&format!("/v1/jobs/{id}/resume"), json!({})).await;
    assert_eq!(status, 200);
    let job = h
        .job_until(&id, "rolled back", |job| {
            job["groups"][0]["state"] == "rolled_back"
        })
        .await;
    let prepared = job["groups"][0]["steps"][3].clone();
    assert_eq!(prepared["state"], "succeeded");
    let (status, job) = h
        .post(&format!("/v1/jobs/{id}/groups/{group}/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{job:#}");
    let job = h.finished(&id).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    // Preparation was not redone: the interim's migration ran once.
    let migrate = job["groups"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"]["kind"] == "migrate_to_interim")
        .unwrap()
        .clone();
    assert_eq!(migrate["attempt"], 1);
    assert_eq!(
        job["groups"][0]["verification"]["identical"],
        job["groups"][0]["verification"]["expected"]
    );
    // A retry of a group that succeeded is refused.
    let (status, _) = h
        .post(&format!("/v1/jobs/{id}/groups/{group}/retry"), json!({}))
        .await;
    assert_eq!(status, 409);
    h.stop().await;
}

/// On Postgres, a scheduler finishing a job as failed can read the groups just before an
/// operator's retry makes one pending again, and write the job failed after. The scheduler's
/// next pass sees a failed job with a group to run and sets it running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_with_a_retried_group_runs_again() {
    use sqlx::Connection;
    let (store, db) = common::sqlite_store().await;
    let mut h = Harness::start(store).await;
    // Slow enough that the retried group is still on its way when the job is set failed.
    h.latency_ms = 50;
    h.three_clusters(1, 4).await;
    ferry::sim::inject_fault(
        &h.sim("NEW"),
        SimOp::OnlineGroup,
        FaultSpec::fail(1, ferry::agent::driver::ErrorKind::Failed),
    )
    .unwrap();
    let id = h.submit(h.request(json!({}))).await;
    let job = h.finished(&id).await;
    assert_eq!(job["state"], "failed", "{job:#}");
    let group = job["groups"][0]["name"].as_str().unwrap().to_owned();
    let (status, job) = h
        .post(&format!("/v1/jobs/{id}/groups/{group}/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{job:#}");
    // The lost race, written as it lands: the job failed over a group that is no longer
    // settled. (The store's own guard refuses this write, so it goes in by hand.)
    let mut conn = sqlx::SqliteConnection::connect(&common::sqlite_url(&db))
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET state = 'failed' WHERE id = $1")
        .bind(&id)
        .execute(&mut conn)
        .await
        .unwrap();
    let job = h
        .job_until(&id, "job succeeded", |job| job["state"] == "succeeded")
        .await;
    assert_eq!(job["groups"][0]["state"], "succeeded", "{job:#}");
    // The steps run again show the reports of their new runs.
    let online_target = job["groups"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["action"]["kind"] == "online_target")
        .unwrap();
    assert_eq!(online_target["state"], "succeeded");
    assert_eq!(online_target["output"]["group"], group, "{online_target:#}");
    let (_, events) = h.get(&format!("/v1/jobs/{id}/logs?limit=1000")).await;
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"] == "running again: a group was retried"),
        "{events:#}"
    );
    h.stop().await;
}

/// The server is stopped and started again on the same database at many points of a job; the
/// job carries on and ends with every group migrated exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_server_restarts_at_many_points() {
    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store).await;
        // Slow enough operations that restarts land inside steps as well as between them.
        h.latency_ms = 15;
        h.three_clusters(2, 5).await;
        let groups = group_names(&h.sim("OLD"));
        let before: Vec<Vec<Value>> = groups.iter().map(|g| shares_of(&h.sim("OLD"), g)).collect();
        let id = h.submit(h.request(json!({}))).await;
        // Restart every 100-250 ms (mid-step, mid-transition, between passes) up to fifteen
        // times, then let the job finish.
        let mut restarts = 0;
        while restarts < 15 {
            if h.is_finished(&id).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 + 10 * (restarts % 16))).await;
            h.restart().await;
            restarts += 1;
        }
        assert_migrated_once(&h, &id, &groups, &before, backend, restarts).await;
        h.stop().await;
    })
    .await;
}

/// A job interrupted `restarts` times ended as if it had not been: succeeded, every group on the
/// target once with the source's shares, nothing left on the interim, no step succeeded twice.
async fn assert_migrated_once(
    h: &Harness,
    id: &str,
    groups: &[String],
    before: &[Vec<Value>],
    backend: &str,
    restarts: u64,
) {
    let job = h.finished(id).await;
    assert_eq!(
        job["state"], "succeeded",
        "[{backend}] after {restarts} restarts: {job:#}"
    );
    assert!(
        restarts >= 2,
        "[{backend}] the job ended before it could be interrupted"
    );
    for (i, group) in groups.iter().enumerate() {
        assert_eq!(shares_of(&h.sim("NEW"), group), before[i]);
    }
    // Each group exists once on the target, and nothing is left on the interim.
    assert_eq!(group_names(&h.sim("NEW")), groups);
    assert!(group_names(&h.sim("MID")).is_empty());
    // No step succeeded twice: every step's success event is unique.
    let (_, logs) = h.get(&format!("/v1/jobs/{id}/logs?limit=1000")).await;
    let mut seen = std::collections::BTreeSet::new();
    for e in logs["items"].as_array().unwrap() {
        if e["kind"] == "step" && e["state"] == "succeeded" {
            let key = (e["group"].to_string(), e["step"].to_string());
            assert!(
                seen.insert(key.clone()),
                "[{backend}] step succeeded twice: {key:?}"
            );
        }
    }
}

/// Like `a_job_survives_server_restarts_at_many_points`, but the server is a process killed with SIGKILL at many points (no shutdown code
/// runs: transactions in flight are cut off, pushes are lost, leases are left running) and
/// started again on the same database, on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_the_server_killed_at_many_points() {
    let dir = tempfile::tempdir().unwrap();
    let mut databases = vec![("sqlite", common::sqlite_url(&dir))];
    if let Some(url) = common::fresh_postgres_database().await {
        databases.push(("postgres", url));
    }
    for (backend, url) in databases {
        let mut h = Harness::start_process(&url).await;
        h.latency_ms = 15;
        h.three_clusters(2, 5).await;
        let groups = group_names(&h.sim("OLD"));
        let before: Vec<Vec<Value>> = groups.iter().map(|g| shares_of(&h.sim("OLD"), g)).collect();
        let id = h.submit(h.request(json!({}))).await;
        let mut kills = 0u64;
        while kills < 10 {
            if h.is_finished(&id).await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150 + 37 * (kills % 5))).await;
            h.kill_and_restart(&url).await;
            kills += 1;
        }
        assert_migrated_once(&h, &id, &groups, &before, backend, kills).await;
        h.stop().await;
    }
}

/// With two groups at a time in the job and one cutover at a time per cluster, the event log
/// never shows more in progress, and every group still gets through.
#[tokio::test]
async fn concurrency_limits_are_never_exceeded() {
    let (store, _db) = common::sqlite_store().await;
    let mut h = Harness::start(store).await;
    h.three_clusters(4, 3).await;
    let id = h
        .submit(h.request(json!({"max_active_groups": 2, "max_cluster_cutovers": 1})))
        .await;
    let job = h.finished(&id).await;
    assert_eq!(job["state"], "succeeded", "{job:#}");
    let (_, logs) = h.get(&format!("/v1/jobs/{id}/logs?limit=1000")).await;
    let mut state = std::collections::BTreeMap::<String, String>::new();
    let (mut most_active, mut most_cutting) = (0, 0);
    for e in logs["items"].as_array().unwrap() {
        if e["kind"] != "group" || e["state"] == "approved" {
            continue;
        }
        state.insert(
            e["group"].to_string(),
            e["state"].as_str().unwrap().to_owned(),
        );
        let active = state
            .values()
            .filter(|s| {
                !matches!(
                    s.as_str(),
                    "pending"
                        | "succeeded"
                        | "failed"
                        | "rolled_back"
                        | "rollback_failed"
                        | "cancelled"
                )
            })
            .count();
        let cutting = state
            .values()
            .filter(|s| matches!(s.as_str(), "cutting_over" | "rolling_back"))
            .count();
        most_active = most_active.max(active);
        most_cutting = most_cutting.max(cutting);
    }
    assert_eq!(state.len(), 4);
    assert!(most_active <= 2, "{most_active} groups in progress at once");
    assert_eq!(
        most_active, 2,
        "the limit allows two; the job should use them"
    );
    assert!(most_cutting <= 1, "{most_cutting} cutovers at once");
    h.stop().await;
}

/// The target's latest validation report fails: the plan says so and the job is refused, until
/// an operator overrides it with a reason, which is audited. A cluster never validated warns.
#[tokio::test]
async fn a_failing_validation_blocks_the_job_until_overridden_with_an_audited_reason() {
    let (store, _db) = common::sqlite_store().await;
    let mut h = Harness::start(store).await;
    h.three_clusters(1, 3).await;
    let validation = |check: &str, plan: &Value| -> Vec<Value> {
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| {
                f["check"] == "validation" && f["message"].as_str().unwrap().contains(check)
            })
            .cloned()
            .collect()
    };
    let (_, plan) = h.post("/v1/plans", h.request(json!({}))).await;
    assert_eq!(plan["runnable"], true, "{plan:#}");
    for cluster in ["MID", "NEW"] {
        let unvalidated = validation(&format!("{cluster} has no validation report"), &plan);
        assert_eq!(unvalidated.len(), 1, "{plan:#}");
        assert_eq!(unvalidated[0]["severity"], "warn");
    }

    // Two processor manufacturers on the target: live migration between them fails.
    let node = |name: &str, vendor: &str| {
        json!({"name": name, "processor": {"vendor": vendor, "model": "Xeon"},
               "virtual_switches": [], "ntlm_enabled": true, "hbas": []})
    };
    let (status, report) = h
        .post(
            "/v1/clusters/NEW/validations",
            json!({"facts": {"nodes": [node("N1", "GenuineIntel"), node("N2", "AuthenticAMD")]}}),
        )
        .await;
    assert_eq!(status, 201, "{report:#}");
    assert_eq!(report["overall"], "fail");
    let (_, plan) = h.post("/v1/plans", h.request(json!({}))).await;
    assert_eq!(plan["runnable"], false, "{plan:#}");
    let failing = validation("validation 1 of NEW fails", &plan);
    assert_eq!(failing[0]["severity"], "fail", "{plan:#}");
    let (status, problem) = h.post("/v1/jobs", h.request(json!({}))).await;
    assert_eq!(status, 409, "{problem:#}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("validation 1 of NEW fails"),
        "{problem:#}"
    );
    let (status, problem) = h
        .post(
            "/v1/jobs",
            h.request(json!({"validation_override": {"reason": "  "}})),
        )
        .await;
    assert_eq!(status, 422, "{problem:#}");
    assert_eq!(problem["errors"][0]["field"], "validation_override.reason");

    let reason = "the VMs are shut down for the move; no live migration";
    let id = h
        .submit(h.request(json!({"validation_override": {"reason": reason}})))
        .await;
    let (_, audit) = h.get("/v1/audit?action=job.validation_override").await;
    let records = audit["items"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{audit:#}");
    assert_eq!(records[0]["target"], format!("job:{id}"));
    let detail = records[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("validation 1 of NEW") && detail.contains(reason),
        "{detail}"
    );
    assert_eq!(h.finished(&id).await["state"], "succeeded");
    h.stop().await;
}

/// A share changed on the source after its group's baseline was taken (and before the cutover)
/// is reported on the running job, naming the share and what changed; once the source is back
/// as the baseline has it, the finding goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_drifts_after_the_baseline_is_reported_on_the_job() {
    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store).await;
        h.three_clusters(1, 3).await;
        let id = h.submit(h.request(json!({"require_approval": true}))).await;
        let job = h
            .job_until(&id, "awaiting approval", |job| {
                job["groups"][0]["state"] == "awaiting_approval"
            })
            .await;
        let group = job["groups"][0]["name"].as_str().unwrap().to_owned();
        assert_eq!(job["findings"], json!([]), "[{backend}] {job:#}");

        let extra = Permission {
            principal: "CORP\\Auditors".into(),
            ace_type: AceType::Allow,
            access: Access::Read,
        };
        let share = {
            let (group, extra) = (group.clone(), extra.clone());
            ferry::sim::update_state(&h.sim("OLD"), move |s| {
                let share = &mut s
                    .groups
                    .iter_mut()
                    .find(|g| g.name == group)
                    .unwrap()
                    .shares[0];
                share.permissions.push(extra);
                share.name.clone()
            })
            .unwrap()
        };
        let discovery = h.discover("OLD").await;
        assert_eq!(
            discovery["summary"]["permissions"]["added"], 1,
            "[{backend}] {discovery:#}"
        );
        let job = h
            .job_until(&id, "the drift reported", |job| {
                job["findings"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|f| f["check"] == "source_drift"))
            })
            .await;
        let finding = &job["findings"][0];
        assert_eq!(finding["group"], group.as_str(), "[{backend}] {finding:#}");
        assert_eq!(finding["severity"], "warn");
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("changed {share} (permissions)")),
            "[{backend}] {message}"
        );
        let (_, logs) = h.get(&format!("/v1/jobs/{id}/logs?limit=1000")).await;
        let announced = logs["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "finding")
            .count();
        assert_eq!(announced, 1, "[{backend}] {logs:#}");

        // Back as it was: the finding goes, and nothing new is announced.
        ferry::sim::update_state(&h.sim("OLD"), move |s| {
            let share = &mut s
                .groups
                .iter_mut()
                .find(|g| g.name == group)
                .unwrap()
                .shares[0];
            share.permissions.retain(|p| *p != extra);
        })
        .unwrap();
        h.discover("OLD").await;
        let job = h
            .job_until(&id, "the drift gone", |job| {
                job["findings"].as_array().is_some_and(Vec::is_empty)
            })
            .await;
        assert_eq!(
            job["groups"][0]["state"], "awaiting_approval",
            "[{backend}]"
        );
        h.stop().await;
    })
    .await;
}
