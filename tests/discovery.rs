//! Discovery end to end, on every configured database: a real server, simulated clusters, and
//! in-process agents with the sim driver. What an agent reads becomes a snapshot through the
//! same path as `PUT /v1/clusters/{id}/inventory`; a change is announced on SSE and to webhooks;
//! reports of a cluster the agent is not enrolled for are refused and audited; the periodic
//! discovery runs once per interval however many replicas share the database.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use ferry::agent::driver::sim::SimDriver;
use ferry::agent::driver::{ClusterDriver, ErrorKind};
use ferry::config::Config;
use ferry::model::{Access, AceType, CachingMode, OsGeneration, Permission, Share};
use ferry::server::{RunningServer, start_with_store};
use ferry::service::Service;
use ferry::sim::{FaultSpec, SimCreateOptions, SimOp, create_sim_cluster};
use ferry::store::Store;

use common::{BOOTSTRAP, PATIENCE, Receiver, eventually, rest};

struct Harness {
    server: RunningServer,
    sims: tempfile::TempDir,
    agents: Vec<common::AgentRun>,
}

impl Harness {
    async fn start(store: Arc<dyn Store>) -> Self {
        let config = Config {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            grpc_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            bootstrap_token: Some(BOOTSTRAP.into()),
            agent_heartbeat_ms: 200,
            agent_lease_ms: 5000,
            agent_down_after_ms: 10_000,
            // The tests run the schedule's passes themselves.
            discovery_interval: Duration::ZERO,
            ..Default::default()
        };
        let server = start_with_store(&config, store.clone())
            .await
            .expect("server starts");
        Harness {
            server,
            sims: tempfile::tempdir().unwrap(),
            agents: Vec::new(),
        }
    }

    fn sim(&self, name: &str) -> PathBuf {
        self.sims.path().join(name)
    }

    /// A simulated cluster `name`, registered, without an agent.
    async fn cluster(&self, name: &str, groups: u32, shares: u32) {
        let mut o = SimCreateOptions::new(self.sim(name), name, OsGeneration::Ws2003);
        o.groups = groups;
        o.shares = shares;
        o.seed = 5;
        o.latency_ms = 0;
        create_sim_cluster(&o).expect("create simulated cluster");
        let (status, body) = self
            .post("/v1/clusters", json!({"name": name, "os": "ws2003"}))
            .await;
        assert_eq!(status, 201, "{body}");
    }

    /// An agent enrolled for `cluster` whose sim driver reads the simulated cluster in
    /// `reads`; answers its id once it is connected.
    async fn agent(&mut self, cluster: &str, reads: &str) -> String {
        let (status, body) = self
            .post("/v1/join-tokens", json!({"cluster": cluster, "uses": 1}))
            .await;
        assert_eq!(status, 201, "{body}");
        let (id, run) = common::start_sim_agent(
            self.server.grpc_addr,
            cluster,
            &format!("{cluster}-n1"),
            &self.sims.path().join(format!("{cluster}.agent")),
            &self.sim(reads),
            body["token"].as_str().unwrap().to_owned(),
            Duration::from_secs(3600),
        )
        .await;
        self.agents.push(run);
        let (this, idr) = (&*self, &id);
        eventually("agent connected", move || async move {
            let (_, agent) = this.get(&format!("/v1/agents/{idr}")).await;
            (agent["state"] == "connected").then_some(())
        })
        .await;
        id
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        rest(self.server.http_addr, "GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        rest(self.server.http_addr, "POST", path, Some(body)).await
    }

    /// Asks for a discovery of `cluster` and waits until it has ended.
    async fn discover(&self, cluster: &str) -> Value {
        let (status, discovery) = self
            .post(&format!("/v1/clusters/{cluster}/discover"), json!({}))
            .await;
        assert_eq!(status, 202, "{discovery}");
        assert_eq!(discovery["state"], "running");
        self.until_ended(discovery["id"].as_str().unwrap()).await
    }

    async fn until_ended(&self, id: &str) -> Value {
        let path = format!("/v1/discoveries/{id}");
        let path = &path;
        eventually("the discovery ends", move || async move {
            let (status, discovery) = self.get(path).await;
            assert_eq!(status, 200, "{discovery}");
            (discovery["state"] != "running").then_some(discovery)
        })
        .await
    }

    async fn snapshots(&self, cluster: &str) -> Vec<Value> {
        let (status, page) = self.get(&format!("/v1/clusters/{cluster}/snapshots")).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().unwrap().clone()
    }

    async fn audit(&self, action: &str) -> Vec<Value> {
        let (status, page) = self.get(&format!("/v1/audit?action={action}")).await;
        assert_eq!(status, 200, "{page}");
        page["items"].as_array().unwrap().clone()
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

    async fn stop(self) {
        for (stop, handle) in self.agents {
            let _ = stop.send(());
            let _ = tokio::time::timeout(PATIENCE, handle).await;
        }
        self.server.stop().await.expect("server stops cleanly");
    }
}

/// The sim's own inventory, in the canonical form a snapshot keeps.
async fn sim_inventory(dir: PathBuf) -> Value {
    let mut document = SimDriver::open(dir).unwrap().inventory().await.unwrap();
    document.canonicalize();
    serde_json::to_value(document).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_imports_the_cluster_its_agent_reads_and_announces_what_changed() {
    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store).await;
        h.cluster("FS-OLD", 2, 4).await;
        let agent = h.agent("FS-OLD", "FS-OLD").await;

        // The first discovery: snapshot 1, exactly the simulated cluster, imported as its agent.
        let first = h.discover("FS-OLD").await;
        assert_eq!(first["state"], "completed", "[{backend}] {first:#}");
        assert_eq!(first["snapshot"], 1);
        assert_eq!(first["created"], true);
        assert_eq!(first["previous_snapshot"], Value::Null);
        assert_eq!(first["trigger"], "operator");
        let (status, snapshot) = h.get("/v1/clusters/FS-OLD/snapshots/1").await;
        assert_eq!(status, 200);
        assert_eq!(
            snapshot["created_by"],
            format!("agent:{agent}"),
            "[{backend}]"
        );
        assert_eq!(snapshot["inventory"], sim_inventory(h.sim("FS-OLD")).await);
        let audited = h.audit("inventory.discover").await;
        assert_eq!(audited.len(), 1, "[{backend}] {audited:#?}");
        assert_eq!(audited[0]["actor"], format!("agent:{agent}"));
        assert_eq!(audited[0]["outcome"], "success");
        // The task keeps where the inventory went, not the inventory.
        let (_, task) = h
            .get(&format!("/v1/tasks/{}", first["task_id"].as_str().unwrap()))
            .await;
        assert_eq!(
            task["result"],
            json!({"snapshot": 1, "created": true, "previous_snapshot": null, "summary": first["summary"]}),
            "[{backend}] {task:#}"
        );
        assert_eq!(
            task["progress"]["message"],
            "importing the inventory as the cluster's next snapshot"
        );

        // Nothing changed: no new snapshot, and the discovery says so.
        let again = h.discover("FS-OLD").await;
        assert_eq!(again["state"], "completed");
        assert_eq!(
            (again["snapshot"].clone(), again["created"].clone()),
            (json!(1), json!(false))
        );
        assert_eq!(again["summary"]["shares"]["added"], 0);
        assert_eq!(h.snapshots("FS-OLD").await.len(), 1, "[{backend}]");

        // A share added on the cluster: snapshot 2, the diff names it, and the change is
        // announced on the event stream and to a webhook.
        let (receiver, receiver_addr) = Receiver::start(0).await;
        let (status, hook) = h
            .post(
                "/v1/webhooks",
                json!({"url": format!("http://{receiver_addr}/hook")}),
            )
            .await;
        assert_eq!(status, 201, "{hook}");
        let newest = h
            .server
            .service
            .events_after(
                &ferry::auth::Caller::local(ferry::model::Role::Viewer),
                None,
                0,
                1000,
            )
            .await
            .unwrap()
            .last()
            .map_or(0, |e| e.seq);
        let stream = tokio::spawn(common::sse_until(
            h.server.http_addr,
            "/v1/events",
            Some(newest),
            |events| events.iter().any(|e| e["kind"] == "inventory.changed"),
        ));
        ferry::sim::update_state(&h.sim("FS-OLD"), |s| {
            s.groups[0].shares.push(Share {
                name: "Audit 2026".into(),
                path: "F:\\Shares\\Audit 2026".into(),
                description: "added after the first discovery".into(),
                permissions: vec![Permission {
                    principal: "CORP\\Auditors".into(),
                    ace_type: AceType::Allow,
                    access: Access::Read,
                }],
                caching: CachingMode::Manual,
                access_based_enumeration: false,
                continuous_availability: false,
                encrypt_data: false,
                user_limit: None,
            });
        })
        .unwrap();
        let changed = h.discover("FS-OLD").await;
        assert_eq!(changed["snapshot"], 2, "[{backend}] {changed:#}");
        assert_eq!(changed["created"], true);
        assert_eq!(changed["previous_snapshot"], 1);
        assert_eq!(changed["summary"]["shares"]["added"], 1);
        assert_eq!(changed["summary"]["groups"]["changed"], 0);
        let (status, diff) = h.get("/v1/clusters/FS-OLD/snapshots/1/diff/2").await;
        assert_eq!(status, 200);
        let added: Vec<&str> = diff["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["kind"] == "share" && c["op"] == "added")
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(added, ["Audit 2026"], "[{backend}] {diff:#}");

        let events = stream.await.unwrap();
        let announced = events
            .iter()
            .find(|e| e["kind"] == "inventory.changed")
            .unwrap();
        assert_eq!(
            announced["job_id"],
            Value::Null,
            "[{backend}] {announced:#}"
        );
        assert_eq!(announced["data"]["cluster"], "FS-OLD");
        assert_eq!(announced["data"]["snapshot"], 2);
        assert_eq!(announced["data"]["previous_snapshot"], 1);
        assert_eq!(announced["data"]["summary"]["shares"]["added"], 1);
        assert_eq!(announced["data"]["by"], format!("agent:{agent}"));
        let receiver = &receiver;
        let delivered = eventually("the webhook delivery", move || async move {
            receiver
                .received("/hook")
                .iter()
                .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
                .find(|e| e["kind"] == "inventory.changed")
        })
        .await;
        assert_eq!(delivered["data"]["snapshot"], 2, "[{backend}]");
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_report_only_their_own_cluster() {
    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store).await;
        h.cluster("FS-OLD", 1, 3).await;
        h.cluster("FS-NEW", 0, 0).await;
        // An agent enrolled for FS-NEW whose driver reads FS-OLD (a wrong --sim-dir, or a host
        // managing another cluster): its report after a share scan is of FS-OLD.
        let stray = h.agent("FS-NEW", "FS-OLD").await;
        let group = ferry::sim::load_state(&h.sim("FS-OLD")).unwrap().groups[0]
            .name
            .clone();
        let (status, task) = h
            .post(
                &format!("/v1/agents/{stray}/tasks"),
                json!({"action": "share_scan", "group": group}),
            )
            .await;
        assert_eq!(status, 201, "{task}");
        let this = &h;
        eventually("the stray report refused", move || async move {
            (this
                .metric("ferry_agent_inventory_reports_refused_total")
                .await
                == 1)
                .then_some(())
        })
        .await;
        let refused = h.audit("inventory.report").await;
        assert_eq!(refused.len(), 1, "[{backend}] {refused:#?}");
        assert_eq!(refused[0]["outcome"], "denied");
        assert_eq!(refused[0]["actor"], format!("agent:{stray}"));
        assert_eq!(refused[0]["target"], "cluster:FS-OLD");
        assert!(h.snapshots("FS-OLD").await.is_empty(), "[{backend}]");
        assert!(h.snapshots("FS-NEW").await.is_empty(), "[{backend}]");

        // FS-OLD's own agent reports its cluster: imported, audited as that agent.
        let own = h.agent("FS-OLD", "FS-OLD").await;
        let (status, task) = h
            .post(
                &format!("/v1/agents/{own}/tasks"),
                json!({"action": "share_scan", "group": group}),
            )
            .await;
        assert_eq!(status, 201, "{task}");
        let this = &h;
        let snapshots = eventually("the report imported", move || async move {
            let snapshots = this.snapshots("FS-OLD").await;
            (!snapshots.is_empty()).then_some(snapshots)
        })
        .await;
        assert_eq!(
            snapshots[0]["created_by"],
            format!("agent:{own}"),
            "[{backend}]"
        );
        let reports = h.audit("inventory.report").await;
        assert!(
            reports
                .iter()
                .any(|r| r["actor"] == format!("agent:{own}") && r["outcome"] == "success"),
            "[{backend}] {reports:#?}"
        );
        assert_eq!(
            h.metric("ferry_agent_inventory_reports_refused_total")
                .await,
            1
        );
        h.stop().await;
    })
    .await;
}

/// Replicas sharing a database each run the schedule; a due cluster is discovered by one of
/// them, once per interval, and a cluster set to 0 never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_periodic_discovery_runs_once_per_interval_across_replicas() {
    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store.clone()).await;
        h.cluster("FS-OLD", 1, 2).await;
        h.cluster("FS-OFF", 0, 0).await;
        let (status, _) = rest(
            h.server.http_addr,
            "PATCH",
            "/v1/clusters/FS-OFF",
            Some(json!({"discovery_interval_seconds": 0})),
        )
        .await;
        assert_eq!(status, 200);
        // Past a year is refused, naming the field: a date that far would not add up.
        for (method, path, body) in [
            (
                "PATCH",
                "/v1/clusters/FS-OFF",
                json!({"discovery_interval_seconds": 31_536_001u64}),
            ),
            (
                "POST",
                "/v1/clusters",
                json!({"name": "FS-FAR", "os": "ws2003", "discovery_interval_seconds": u64::MAX}),
            ),
        ] {
            let (status, problem) = rest(h.server.http_addr, method, path, Some(body)).await;
            assert_eq!(status, 422, "[{backend}] {problem}");
            assert_eq!(problem["errors"][0]["field"], "discovery_interval_seconds");
        }
        h.agent("FS-OLD", "FS-OLD").await;
        let replicas: Vec<Service> = (0..3).map(|_| Service::new(store.clone())).collect();
        let interval = Duration::from_secs(2);
        // The first pass only schedules: a server that starts does not discover everything.
        let started: u32 = run_passes(&replicas, interval).await;
        assert_eq!(started, 0, "[{backend}]");
        tokio::time::sleep(interval + Duration::from_millis(200)).await;
        let started = run_passes(&replicas, interval).await;
        assert_eq!(
            started, 1,
            "[{backend}] one replica claims the due discovery"
        );
        // Still within the interval (and one running): nothing more.
        assert_eq!(run_passes(&replicas, interval).await, 0, "[{backend}]");
        let (_, page) = h.get("/v1/clusters/FS-OLD/discoveries").await;
        let discoveries = page["items"].as_array().unwrap().clone();
        assert_eq!(discoveries.len(), 1, "[{backend}] {page:#}");
        assert_eq!(discoveries[0]["trigger"], "schedule");
        assert_eq!(discoveries[0]["created_by"], "discovery");
        let ended = h.until_ended(discoveries[0]["id"].as_str().unwrap()).await;
        assert_eq!(ended["state"], "completed", "[{backend}] {ended:#}");
        let (_, page) = h.get("/v1/clusters/FS-OFF/discoveries").await;
        assert_eq!(page["items"], json!([]), "[{backend}]");
        h.stop().await;
    })
    .await;
}

/// One pass of every replica's schedule at once; the discoveries they started.
async fn run_passes(replicas: &[Service], interval: Duration) -> u32 {
    let passes = replicas.iter().map(|r| r.discovery_pass(interval));
    futures::future::join_all(passes)
        .await
        .into_iter()
        .map(|started| started.expect("a schedule pass"))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_waits_for_the_first_agent_and_fails_with_its_task() {
    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store).await;
        h.cluster("FS-OLD", 1, 2).await;
        // No agent yet: the discovery waits, and runs when one connects.
        let (status, discovery) = h.post("/v1/clusters/FS-OLD/discover", json!({})).await;
        assert_eq!(status, 202, "{discovery}");
        let id = discovery["id"].as_str().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (_, waiting) = h.get(&format!("/v1/discoveries/{id}")).await;
        assert_eq!(waiting["state"], "running", "[{backend}]");
        h.agent("FS-OLD", "FS-OLD").await;
        let ended = h.until_ended(&id).await;
        assert_eq!(ended["state"], "completed", "[{backend}] {ended:#}");
        assert_eq!(ended["snapshot"], 1);

        // A cluster whose agent cannot read it: the discovery fails with the task's reason.
        h.cluster("FS-BAD", 0, 0).await;
        h.agent("FS-BAD", "FS-BAD").await;
        ferry::sim::inject_fault(
            &h.sim("FS-BAD"),
            SimOp::Inventory,
            FaultSpec::fail(1, ErrorKind::Failed),
        )
        .unwrap();
        let failed = h.discover("FS-BAD").await;
        assert_eq!(failed["state"], "failed", "[{backend}] {failed:#}");
        assert!(
            failed["error"]
                .as_str()
                .unwrap()
                .contains("reading the inventory failed"),
            "[{backend}] {failed:#}"
        );
        assert!(h.snapshots("FS-BAD").await.is_empty());

        // Unknown clusters and ids, and a viewer, are refused.
        let (status, _) = h.post("/v1/clusters/NOPE/discover", json!({})).await;
        assert_eq!(status, 404);
        let (status, _) = h.get("/v1/discoveries/not-a-uuid").await;
        assert_eq!(status, 404);
        h.stop().await;
    })
    .await;
}

/// The gRPC twin answers the same discoveries, and an idempotency key (shared with REST's
/// `Idempotency-Key`) replays the first answer instead of discovering again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_over_grpc_and_retries_with_an_idempotency_key() {
    use ferry::protocol::pb;
    use ferry::protocol::pb::inventory_service_client::InventoryServiceClient;

    common::on_each_backend(|backend, store| async move {
        let mut h = Harness::start(store).await;
        h.cluster("FS-OLD", 1, 2).await;
        h.agent("FS-OLD", "FS-OLD").await;
        let channel =
            tonic::transport::Channel::from_shared(format!("http://{}", h.server.grpc_addr))
                .unwrap()
                .connect()
                .await
                .unwrap();
        let mut inventory = InventoryServiceClient::new(channel);
        let request = || pb::DiscoverClusterRequest {
            cluster: "FS-OLD".into(),
            idempotency_key: "discover-once".into(),
        };
        let first = inventory
            .discover_cluster(common::authed(BOOTSTRAP, request()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            first.state,
            pb::DiscoveryState::Running as i32,
            "[{backend}]"
        );
        let again = inventory
            .discover_cluster(common::authed(BOOTSTRAP, request()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            again.id, first.id,
            "[{backend}] a replay, not a second discovery"
        );
        // REST with the same key names the same discovery (200: a replay).
        let (status, replayed) = common::http_json(
            h.server.http_addr,
            "POST",
            "/v1/clusters/FS-OLD/discover",
            Some(BOOTSTRAP),
            Some(json!({})),
        )
        .await;
        assert_eq!(status, 202, "without the key it is a new discovery");
        assert_ne!(replayed["id"], first.id.as_str());

        let ended = h.until_ended(&first.id).await;
        assert_eq!(ended["state"], "completed", "[{backend}] {ended:#}");
        let got = inventory
            .get_discovery(common::authed(
                BOOTSTRAP,
                pb::GetDiscoveryRequest {
                    id: first.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got.state, pb::DiscoveryState::Completed as i32);
        assert_eq!(got.snapshot, Some(1));
        let listed = inventory
            .list_discoveries(common::authed(
                BOOTSTRAP,
                pb::ListDiscoveriesRequest {
                    cluster: "FS-OLD".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.discoveries.len(), 2, "[{backend}]");
        let missing = inventory
            .get_discovery(common::authed(
                BOOTSTRAP,
                pb::GetDiscoveryRequest {
                    id: uuid::Uuid::now_v7().to_string(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::NotFound);
        h.stop().await;
    })
    .await;
}
