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

use ferry::agent::driver::ErrorKind;
use ferry::agent::exec::{Builtin, DriverKind, NodeExecutor};
use ferry::config::Config;
use ferry::model::OsGeneration;
use ferry::server::{RunningServer, start_with_store};
use ferry::sim::{
    FaultSpec, SimCreateOptions, SimOp, create_sim_cluster, disk_dir, load_state, present_disk,
};
use ferry::store::Store;

use common::{BOOTSTRAP, PATIENCE, eventually, rest};

struct Harness {
    server: RunningServer,
    _store: Arc<dyn Store>,
    _db: tempfile::TempDir,
    /// Parent of the simulated clusters' directories.
    sims: tempfile::TempDir,
    agents: Vec<common::AgentRun>,
    /// The `--allow-path` list of the agents started from now on; empty: their cluster's disks.
    allow_paths: Vec<PathBuf>,
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
            allow_paths: Vec::new(),
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

        let executor = Arc::new(
            NodeExecutor::new(
                Builtin::new(DriverKind::Sim, Some(o.dir.clone()))
                    .with_allow_paths(self.allow_paths.clone()),
            )
            .with_perf_interval(Duration::from_millis(100)),
        );
        let (id, run) = common::start_agent(
            self.server.grpc_addr,
            name,
            &format!("{name}-n1"),
            &self.state_dir(name),
            token,
            executor,
        )
        .await;
        self.agents.push(run);
        let this = &*self;
        let idr = &id;
        eventually("agent connected", move || async move {
            let (_, agent) = this.get(&format!("/v1/agents/{idr}")).await;
            (agent["state"] == "connected").then_some(())
        })
        .await;
        (id, o.dir)
    }

    /// The state directory of the agent of cluster `name`.
    fn state_dir(&self, name: &str) -> PathBuf {
        self.sims.path().join(format!("{name}.agent"))
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

fn first_disk_dir(dir: &Path) -> PathBuf {
    let state = load_state(dir).unwrap();
    disk_dir(dir, &state.disks[0])
}

#[tokio::test]
async fn skeleton_copy_of_a_sim_disk_is_verified() {
    let mut h = Harness::start().await;
    // The copy leaves the simulated disks for a temporary folder: the agent is told it may.
    let out = tempfile::tempdir().unwrap();
    h.allow_paths = vec![h.sims.path().to_path_buf(), out.path().to_path_buf()];
    let (agent, dir) = h.cluster("OLD", OsGeneration::Ws2003, 1, 5).await;
    let destination = out.path().join("copy");
    let task = h
        .run(
            &agent,
            json!({"action": "skeleton_copy", "source": first_disk_dir(&dir), "destination": destination,
                   "depth": 3, "log_path": "skeleton.log"}),
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
    // The log went to the agent's own log directory.
    assert!(
        h.state_dir("OLD")
            .join("logs")
            .join("skeleton.log")
            .is_file()
    );
    let verified =
        ferry::agent::skeleton::verify_skeleton(&first_disk_dir(&dir), &destination, 3).unwrap();
    assert!(verified.passed && verified.missing.is_empty());

    // A missing source is an I/O failure, not a verification.
    let error = h
        .failed(
            &agent,
            json!({"action": "skeleton_copy", "source": out.path().join("nope"), "destination": destination,
                   "depth": 2, "log_path": "again.log"}),
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

/// A validation without posted facts: the cluster's agent gathers them, and reading the
/// validation judges them. A gathering that fails says why.
#[tokio::test]
async fn a_validation_gathers_facts_through_the_agent() {
    let mut h = Harness::start().await;
    let (agent, dir) = h.cluster("C", OsGeneration::Ws2012r2, 1, 2).await;
    let (status, started) = h.post("/v1/clusters/C/validations", json!({})).await;
    assert_eq!(status, 202, "{started:#}");
    assert_eq!(started["state"], "gathering");
    assert!(started["task_id"].is_string());
    let id = started["id"].as_str().unwrap().to_owned();
    let idr = &id;
    let this = &h;
    let done = eventually("validation completed", move || async move {
        let (_, v) = this.get(&format!("/v1/validations/{idr}")).await;
        (v["state"] != "gathering").then_some(v)
    })
    .await;
    assert_eq!(done["state"], "completed", "{done:#}");
    // Judged on exactly what the agent reports.
    let facts = h.ok(&agent, json!({"action": "gather_facts"})).await;
    assert_eq!(done["facts"], facts);
    let judged = ferry::validation::evaluate(
        &serde_json::from_value(facts).unwrap(),
        &ferry::validation::Thresholds::default(),
    );
    assert_eq!(done["findings"], serde_json::to_value(&judged).unwrap());
    assert_eq!(
        done["overall"],
        serde_json::to_value(ferry::validation::overall(&judged)).unwrap()
    );

    ferry::sim::inject_fault(
        &dir,
        SimOp::ConfigFacts,
        FaultSpec::fail(1, ErrorKind::Failed),
    )
    .unwrap();
    let (status, started) = h.post("/v1/clusters/C/validations", json!({})).await;
    assert_eq!(status, 202, "{started:#}");
    assert_eq!(started["version"], 2);
    let id = started["id"].as_str().unwrap().to_owned();
    let idr = &id;
    let failed = eventually("validation failed", move || async move {
        let (_, v) = this.get(&format!("/v1/validations/{idr}")).await;
        (v["state"] != "gathering").then_some(v)
    })
    .await;
    assert_eq!(failed["state"], "failed", "{failed:#}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .starts_with("gathering the facts failed: failed:"),
        "{failed:#}"
    );
    assert!(failed["findings"].as_array().unwrap().is_empty());
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

/// The shares of a scan as the scheduler compares them: without the folder ACLs, which are this
/// machine's view of a folder, keyed by name.
fn scanned_shares(scan: &Value) -> BTreeMap<String, Value> {
    scan["shares"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut share = s.clone();
            let fields = share.as_object_mut().unwrap();
            fields.remove("acl");
            fields.remove("acl_error");
            (s["name"].as_str().unwrap().to_owned(), share)
        })
        .collect()
}

fn network_name_online(scan: &Value) -> bool {
    let names: Vec<&Value> = scan["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "network_name")
        .collect();
    !names.is_empty() && names.iter().all(|r| r["state"] == "online")
}

/// The two-hop runbook of the scheduler, step by step as tasks through real agents: OLD (2003)
/// to MID (2008, a spare disk prepared and filled by a skeleton copy) to NEW (2008 R2, OLD's data
/// disk presented), then the interim cleaned up. NEW ends with OLD's shares, identical.
#[tokio::test]
async fn two_hop_runbook_moves_every_share_through_an_interim() {
    let mut h = Harness::start().await;
    let (old, old_dir) = h.cluster("OLD", OsGeneration::Ws2003, 1, 20).await;
    let (mid, mid_dir) = h.cluster("MID", OsGeneration::Ws2008, 0, 0).await;
    let (new, new_dir) = h.cluster("NEW", OsGeneration::Ws2008r2, 0, 0).await;
    let group = load_state(&old_dir).unwrap().groups[0].name.clone();

    // Preflight on the source: the baseline, the drive letter and the disk resource.
    let baseline = h
        .ok(&old, json!({"action": "share_scan", "group": group}))
        .await;
    let shares = scanned_shares(&baseline);
    assert_eq!(shares.len(), 20);
    let letter = {
        let path = shares.values().next().unwrap()["path"].as_str().unwrap();
        format!("{}:", path.split_once(':').unwrap().0)
    };
    assert!(
        shares
            .values()
            .all(|s| s["path"].as_str().unwrap().starts_with(&letter))
    );
    let source_disk = baseline["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == "physical_disk")
        .expect("the scan lists the group's disk resource")["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(network_name_online(&baseline), "{baseline:#}");
    // The data LUN is zoned to NEW as well.
    let old_state = load_state(&old_dir).unwrap();
    let data_disk = old_state.groups[0]
        .resources
        .iter()
        .find(|r| r.name == source_disk)
        .and_then(|r| r.properties.get("disk"))
        .and_then(Value::as_str)
        .unwrap()
        .to_owned();
    let presented = present_disk(&new_dir, &old_dir, &data_disk).unwrap();

    // Preflight on the interim, then its disk gets the source's letter (twice: a retry).
    let inventory = h.ok(&mid, json!({"action": "read_inventory"})).await;
    assert!(inventory["groups"].as_array().unwrap().is_empty());
    assert!(!inventory["disks"].as_array().unwrap().is_empty());
    let prepare = json!({"action": "prepare_disk", "drive_letter": letter});
    let prepared = h.ok(&mid, prepare.clone()).await;
    assert_eq!(prepared["drive_letter"], letter.as_str(), "{prepared:#}");
    assert_eq!(h.ok(&mid, prepare).await, prepared);
    let interim_disk = prepared["resource"].as_str().unwrap().to_owned();
    // The source's letter is its group's: not free there.
    let taken = h
        .failed(
            &old,
            json!({"action": "prepare_disk", "drive_letter": letter}),
        )
        .await;
    assert_eq!(taken["kind"], "conflict", "{taken}");
    // The storage view of the source: its disks and each group's disk resources, no shares.
    let storage = h.ok(&old, json!({"action": "read_storage"})).await;
    let full = h.ok(&old, json!({"action": "read_inventory"})).await;
    assert_eq!(storage["disks"], full["disks"]);
    let groups = storage["groups"].as_array().unwrap();
    assert_eq!(groups.len(), full["groups"].as_array().unwrap().len());
    for group in groups {
        assert!(
            group["shares"].as_array().is_none_or(Vec::is_empty),
            "{group:#}"
        );
        let resources = group["resources"].as_array().unwrap();
        assert!(!resources.is_empty(), "{group:#}");
        assert!(
            resources.iter().all(|r| r["kind"] == "physical_disk"),
            "{group:#}"
        );
    }
    // Narrowed to the source's drive letter: that disk and its group, whatever else is there.
    let narrowed = h
        .ok(
            &old,
            json!({"action": "read_storage", "drive_letters": [letter.to_lowercase()]}),
        )
        .await;
    let disks = narrowed["disks"].as_array().unwrap();
    assert_eq!(disks.len(), 1, "{narrowed:#}");
    assert_eq!(disks[0]["drive_letter"], letter.as_str());
    let owners: Vec<&str> = narrowed["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(owners, vec![group.as_str()]);
    let by_disk = h
        .ok(
            &old,
            json!({"action": "read_storage", "disks": [disks[0]["resource"]]}),
        )
        .await;
    assert_eq!(by_disk, narrowed);

    // The skeleton copy reads OLD's disk over its administrative share, as on Windows.
    let drive = letter.trim_end_matches(':');
    let depth = shares
        .values()
        .map(|s| s["path"].as_str().unwrap().split('\\').count() as u32 + 1)
        .max()
        .unwrap();
    let copy = h
        .ok(
            &mid,
            json!({"action": "skeleton_copy", "source": format!("\\\\OLD\\{drive}$\\"),
                   "destination": format!("{letter}\\"), "depth": depth,
                   "log_path": format!("skeleton-{group}.log")}),
        )
        .await;
    assert_eq!(copy["verification"]["passed"], true, "{copy:#}");
    // The log is the agent's, in its state directory, not the simulated cluster's.
    assert!(
        h.state_dir("MID")
            .join("logs")
            .join(format!("skeleton-{group}.log"))
            .is_file()
    );

    // OLD -> MID keeps the shares (2003 -> 2008); the disk resource is swapped, twice.
    let hop = h
        .ok(
            &mid,
            json!({"action": "migrate_group", "source_cluster": "OLD", "group": group}),
        )
        .await;
    assert_eq!(hop["shares_migrated"].as_array().unwrap().len(), 20);
    let swap = json!({"action": "replace_disk_resource", "group": group, "disk": interim_disk,
                      "drive_letter": letter});
    let swapped = h.ok(&mid, swap.clone()).await;
    assert_eq!(swapped["resource"], interim_disk.as_str());
    assert_eq!(
        swapped["removed"].as_array().unwrap().len(),
        1,
        "{swapped:#}"
    );
    assert!(!swapped["repointed"].as_array().unwrap().is_empty());
    let again = h.ok(&mid, swap).await;
    assert_eq!(
        again,
        json!({"resource": interim_disk, "removed": [], "repointed": []})
    );

    // Cut over to the interim: the network name's first online fails on Kerberos, then works.
    h.ok(&old, json!({"action": "offline_group", "group": group}))
        .await;
    let first = h
        .failed(&mid, json!({"action": "online_group", "group": group}))
        .await;
    assert_eq!(first["kind"], "transient", "{first}");
    let online = h
        .ok(&mid, json!({"action": "online_group", "group": group}))
        .await;
    assert_eq!(online["state"], "online");
    let on_mid = h
        .ok(&mid, json!({"action": "share_scan", "group": group}))
        .await;
    assert_eq!(scanned_shares(&on_mid), shares);
    assert!(network_name_online(&on_mid));

    // MID -> NEW, then the presented data disk replaces the interim's.
    let hop = h
        .ok(
            &new,
            json!({"action": "migrate_group", "source_cluster": "MID", "group": group}),
        )
        .await;
    assert!(hop["shares_lost"].as_array().unwrap().is_empty(), "{hop:#}");
    h.ok(&mid, json!({"action": "offline_group", "group": group}))
        .await;
    let swapped = h
        .ok(
            &new,
            json!({"action": "replace_disk_resource", "group": group, "disk": presented,
                   "drive_letter": letter}),
        )
        .await;
    assert_eq!(swapped["resource"], presented.as_str());
    let first = h
        .failed(&new, json!({"action": "online_group", "group": group}))
        .await;
    assert_eq!(first["kind"], "transient", "{first}");
    h.ok(&new, json!({"action": "online_group", "group": group}))
        .await;

    // Verification on the target: the same shares, names, paths, permissions and flags.
    let on_new = h
        .ok(&new, json!({"action": "share_scan", "group": group}))
        .await;
    assert_eq!(scanned_shares(&on_new), shares);
    assert!(network_name_online(&on_new), "{on_new:#}");
    // The target serves OLD's own folders.
    assert!(
        on_new["shares"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["acl"].is_object())
    );

    // Cleanup of the interim; a retry finds nothing to do.
    let cleanup = json!({"action": "remove_group", "group": group});
    assert_eq!(h.ok(&mid, cleanup.clone()).await, json!({"removed": true}));
    assert_eq!(h.ok(&mid, cleanup).await, json!({"removed": false}));
    assert!(load_state(&mid_dir).unwrap().groups.is_empty());
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
