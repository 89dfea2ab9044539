//! The agent's executors end to end: a real server on port 0 (SQLite), simulated clusters in a
//! temporary directory, and in-process agents using the sim driver. Every action is driven
//! through `POST /v1/agents/{id}/tasks` and its result read back with `GET /v1/tasks/{id}`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use ferry::agent::driver::ErrorKind;
use ferry::agent::exec::{Builtin, DriverKind, NodeExecutor};
use ferry::agent::session::AgentConfig;
use ferry::agent::state::StateDir;
use ferry::config::Config;
use ferry::model::OsGeneration;
use ferry::server::{RunningServer, start_with_store};
use ferry::sim::{FaultSpec, SimCreateOptions, SimOp, create_sim_cluster, disk_dir, load_state};
use ferry::store::Store;

const BOOTSTRAP: &str = "test-bootstrap-secret-0123456789";
const PATIENCE: Duration = Duration::from_secs(30);

struct Harness {
    server: RunningServer,
    _store: Arc<dyn Store>,
    _db: tempfile::TempDir,
    /// Parent of the simulated clusters' directories.
    sims: tempfile::TempDir,
    agents: Vec<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
}

impl Harness {
    async fn start() -> Self {
        let (store, db) = common::sqlite_store().await;
        let config = Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap_token: Some(BOOTSTRAP.into()),
            agent_heartbeat_ms: 200,
            agent_lease_ms: 5000,
            agent_down_after_ms: 10_000,
            ..Default::default()
        };
        let server = start_with_store(&config, store.clone())
            .await
            .expect("server starts");
        Harness {
            server,
            _store: store,
            _db: db,
            sims: tempfile::tempdir().unwrap(),
            agents: Vec::new(),
        }
    }

    /// Creates the simulated cluster `name` (no latency, fixed seed), registers it with the
    /// server, and starts a connected agent on its first node. Returns (agent id, sim dir).
    async fn cluster(
        &mut self,
        name: &str,
        os: OsGeneration,
        groups: u32,
        shares: u32,
    ) -> (String, PathBuf) {
        let mut o = SimCreateOptions::new(self.sims.path().join(name), name, os);
        o.groups = groups;
        o.shares = shares;
        o.seed = 7;
        o.latency_ms = 0;
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
        let token = body["token"].as_str().unwrap().to_owned();

        let node = format!("{name}-n1");
        let state_dir = self.sims.path().join(format!("{name}.agent"));
        let mut config = AgentConfig::new(
            vec![format!("http://{}", self.server.grpc_addr)],
            name,
            &node,
            &state_dir,
        );
        config.join_token = Some(token);
        config.backoff_initial = Duration::from_millis(50);
        config.backoff_max = Duration::from_millis(500);
        let executor = Arc::new(
            NodeExecutor::new(Builtin::new(DriverKind::Sim, Some(o.dir.clone())))
                .with_perf_interval(Duration::from_millis(100)),
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(ferry::agent::session::run(config, executor, async move {
            let _ = stopped.await;
        }));
        self.agents.push((stop, handle));
        let sd = &state_dir;
        let id = eventually("agent enrolled", move || async move {
            StateDir::open(sd).ok()?.load_identity().ok().flatten()
        })
        .await
        .agent_id
        .to_string();
        let this = &*self;
        let idr = &id;
        eventually("agent connected", move || async move {
            let (_, agent) = this.get(&format!("/v1/agents/{idr}")).await;
            (agent["state"] == "connected").then_some(())
        })
        .await;
        (id, o.dir)
    }

    async fn stop(self) {
        for (stop, handle) in self.agents {
            let _ = stop.send(());
            let _ = tokio::time::timeout(PATIENCE, handle).await;
        }
        self.server.stop().await.expect("server stops cleanly");
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        rest(self.server.http_addr, "GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        rest(self.server.http_addr, "POST", path, Some(body)).await
    }

    async fn metric(&self, name: &str) -> u64 {
        let (status, text) = self.get("/metrics").await;
        assert_eq!(status, 200);
        let prefix = format!("{name} ");
        text.as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    /// Runs `action` on the agent and waits for it to end; returns the finished task.
    async fn run(&self, agent: &str, action: Value) -> Value {
        let (status, task) = self
            .post(&format!("/v1/agents/{agent}/tasks"), action)
            .await;
        assert_eq!(status, 201, "{task}");
        let id = task["id"].as_str().unwrap().to_owned();
        let idr = &id;
        eventually(&format!("task {id} ends"), move || async move {
            let (_, task) = self.get(&format!("/v1/tasks/{idr}")).await;
            matches!(task["state"].as_str(), Some("succeeded" | "failed")).then_some(task)
        })
        .await
    }

    async fn ok(&self, agent: &str, action: Value) -> Value {
        let task = self.run(agent, action).await;
        assert_eq!(task["state"], "succeeded", "{task:#}");
        task["result"].clone()
    }

    async fn failed(&self, agent: &str, action: Value) -> Value {
        let task = self.run(agent, action).await;
        assert_eq!(task["state"], "failed", "{task:#}");
        task["error"].clone()
    }
}

async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn first_disk_dir(dir: &Path) -> PathBuf {
    let state = load_state(dir).unwrap();
    disk_dir(dir, &state.disks[0])
}

#[tokio::test]
async fn skeleton_copy_of_a_sim_disk_is_verified() {
    let mut h = Harness::start().await;
    let (agent, dir) = h.cluster("OLD", OsGeneration::Ws2003, 1, 5).await;
    let out = tempfile::tempdir().unwrap();
    let destination = out.path().join("copy");
    let log = out.path().join("skeleton.log");
    let task = h
        .run(
            &agent,
            json!({"action": "skeleton_copy", "source": first_disk_dir(&dir), "destination": destination,
                   "depth": 3, "log_path": log}),
        )
        .await;
    assert_eq!(task["state"], "succeeded", "{task:#}");
    let report = &task["result"];
    assert_eq!(report["verification"]["passed"], true, "{report:#}");
    assert!(report["dirs_created"].as_u64().unwrap() > 1);
    assert!(
        task["progress"]["message"]
            .as_str()
            .unwrap()
            .contains("skeleton")
    );
    assert!(log.exists());
    let verified =
        ferry::agent::skeleton::verify_skeleton(&first_disk_dir(&dir), &destination, 3).unwrap();
    assert!(verified.passed && verified.missing.is_empty());

    // A missing source is an I/O failure, not a verification.
    let error = h
        .failed(
            &agent,
            json!({"action": "skeleton_copy", "source": out.path().join("nope"), "destination": destination,
                   "depth": 2, "log_path": out.path().join("again.log")}),
        )
        .await;
    assert_eq!(error["kind"], "io");
    h.stop().await;
}

#[tokio::test]
async fn share_scan_matches_the_sim_state_with_acl_summaries() {
    let mut h = Harness::start().await;
    let (agent, dir) = h.cluster("OLD", OsGeneration::Ws2003, 2, 6).await;
    let state = load_state(&dir).unwrap();
    let group = &state.groups[0];
    let report = h
        .ok(&agent, json!({"action": "share_scan", "group": group.name}))
        .await;
    assert_eq!(report["group"], group.name.as_str());
    let scanned: BTreeMap<String, &Value> = report["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().to_owned(), s))
        .collect();
    assert_eq!(scanned.len(), group.shares.len());
    for share in &group.shares {
        let got = scanned[&share.name];
        assert_eq!(got["path"], share.path.as_str());
        assert_eq!(
            got["permissions"],
            serde_json::to_value(&share.permissions).unwrap()
        );
        let acl = &got["acl"];
        assert!(acl.is_object(), "{got:#}");
        assert!(acl["mode"].as_u64().unwrap() & 0o700 != 0);
        assert!(acl["uid"].is_u64() && acl["gid"].is_u64());
    }

    // The scan was followed by an inventory report, and perf batches flow on their interval
    // (the sim driver has counters, so even a machine without /proc/diskstats sends them).
    let hr = &h;
    eventually(
        "perf samples and an inventory report counted",
        move || async move {
            (hr.metric("ferry_agent_perf_samples_total").await > 0
                && hr.metric("ferry_agent_inventory_reports_total").await >= 1)
                .then_some(())
        },
    )
    .await;

    let error = h
        .failed(&agent, json!({"action": "share_scan", "group": "NOPE"}))
        .await;
    assert_eq!(error["kind"], "not_found");
    assert_eq!(error["retryable"], false);
    h.stop().await;
}

#[tokio::test]
async fn offline_online_faults_and_facts() {
    let mut h = Harness::start().await;
    let (agent, dir) = h.cluster("C", OsGeneration::Ws2008r2, 1, 2).await;
    let group = load_state(&dir).unwrap().groups[0].name.clone();

    let offline = h
        .ok(&agent, json!({"action": "offline_group", "group": group}))
        .await;
    let resources = offline["resources"].as_array().unwrap();
    assert!(!resources.is_empty());
    assert!(
        resources
            .iter()
            .all(|r| r["state"] == "offline" && r["error"].is_null())
    );
    let online = h
        .ok(&agent, json!({"action": "online_group", "group": group}))
        .await;
    assert!(
        online["resources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "online")
    );
    assert_eq!(online["state"], "online");

    ferry::sim::inject_fault(
        &dir,
        SimOp::OfflineGroup,
        FaultSpec::fail(1, ErrorKind::Conflict),
    )
    .unwrap();
    let error = h
        .failed(&agent, json!({"action": "offline_group", "group": group}))
        .await;
    assert_eq!(error["kind"], "conflict", "{error}");
    assert_eq!(error["retryable"], false);
    ferry::sim::inject_fault(
        &dir,
        SimOp::OfflineGroup,
        FaultSpec::fail(1, ErrorKind::Transient),
    )
    .unwrap();
    let error = h
        .failed(&agent, json!({"action": "offline_group", "group": group}))
        .await;
    assert_eq!(error["kind"], "transient", "{error}");
    assert_eq!(error["retryable"], true);
    // The fault was used up.
    h.ok(&agent, json!({"action": "offline_group", "group": group}))
        .await;

    let facts = h.ok(&agent, json!({"action": "gather_facts"})).await;
    assert!(
        !facts["networks"].as_array().unwrap().is_empty(),
        "{facts:#}"
    );
    assert_eq!(facts["nodes"].as_array().unwrap().len(), 2);
    let groups = h.ok(&agent, json!({"action": "list_groups"})).await;
    assert_eq!(groups.as_array().unwrap().len(), 1);

    // The spare disk joins the group with a letter; at least once delivery makes a repeat common.
    let spare = load_state(&dir)
        .unwrap()
        .disks
        .iter()
        .find(|d| !d.csv && d.drive_letter.is_none())
        .expect("a spare disk in available storage")
        .name
        .clone();
    let action =
        json!({"action": "add_disk_resource", "group": group, "disk": spare, "drive_letter": "S:"});
    let added = h.ok(&agent, action.clone()).await;
    assert_eq!(added["kind"], "physical_disk", "{added:#}");
    h.ok(&agent, action).await;
    let state = load_state(&dir).unwrap();
    assert_eq!(
        state.disk(&spare).unwrap().drive_letter.as_deref(),
        Some("S:")
    );
    h.stop().await;
}

#[tokio::test]
async fn migrations_report_losses_and_kerberos_retries() {
    let mut h = Harness::start().await;
    let (_, _old) = h.cluster("OLD", OsGeneration::Ws2003, 2, 4).await;
    let (interim, _) = h.cluster("INTERIM", OsGeneration::Ws2008, 0, 0).await;
    let (new, _) = h.cluster("NEW", OsGeneration::Ws2008r2, 0, 0).await;

    // KB 983840: straight from 2003 to 2008 R2 every file share is lost, and said so.
    let direct = h
        .ok(
            &new,
            json!({"action": "migrate_group", "source_cluster": "OLD", "group": "FS01"}),
        )
        .await;
    assert_eq!(
        direct["shares_lost"].as_array().unwrap().len(),
        4,
        "{direct:#}"
    );
    assert!(direct["shares_migrated"].as_array().unwrap().is_empty());
    let lost: Vec<&Value> = direct["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "lost")
        .collect();
    assert_eq!(lost.len(), 4);
    assert!(
        lost.iter()
            .all(|r| r["reason"].as_str().unwrap().contains("KB 983840"))
    );

    // 2003 to 2008 keeps them.
    let hop = h
        .ok(
            &interim,
            json!({"action": "migrate_group", "source_cluster": "OLD", "group": "FS02"}),
        )
        .await;
    assert_eq!(
        hop["shares_migrated"].as_array().unwrap().len(),
        4,
        "{hop:#}"
    );
    assert!(hop["shares_lost"].as_array().unwrap().is_empty());

    // Leave only the network name and file server, so the Kerberos failure is what matters.
    for r in hop["resources"].as_array().unwrap() {
        if r["kind"] == "physical_disk" || r["kind"] == "file_share" {
            let removed = h
                .ok(&interim, json!({"action": "remove_resource", "group": "FS02", "resource": r["target_name"]}))
                .await;
            assert_eq!(removed["removed"], true);
        }
    }
    h.ok(
        &interim,
        json!({"action": "set_dependency", "group": "FS02", "resource": "FS02 File Server",
               "depends_on": ["FS02 Network Name"]}),
    )
    .await;
    let first = h
        .failed(&interim, json!({"action": "online_group", "group": "FS02"}))
        .await;
    assert_eq!(first["kind"], "transient", "{first}");
    assert_eq!(first["retryable"], true);
    assert!(
        first["message"].as_str().unwrap().contains("Kerberos"),
        "{first}"
    );
    let second = h
        .ok(&interim, json!({"action": "online_group", "group": "FS02"}))
        .await;
    assert_eq!(second["state"], "online");
    h.stop().await;
}

#[test]
fn a_cancelled_skeleton_copy_stops_before_the_next_directory() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    let dst = dir.path().join("dst");
    let cancel = std::sync::atomic::AtomicBool::new(true);
    let options = ferry::agent::skeleton::SkeletonOptions {
        depth: 5,
        ..Default::default()
    };
    let err = ferry::agent::skeleton::copy_skeleton_cancellable(
        &src,
        &dst,
        &options,
        &ferry::agent::NoProgress,
        &cancel,
    )
    .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
    assert!(!dst.join("a").exists());
}

/// One HTTP/1.1 exchange as the bootstrap admin: (status, JSON body).
async fn rest(addr: SocketAddr, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    common::http_json(addr, method, path, Some(BOOTSTRAP), body).await
}
