//! Agents end to end: a real server on port 0 with a real store, in-process agents
//! (`ferry::agent::session::run`) and hand-driven protocol streams over real TCP. Enrollment,
//! identity files, revocation, leases, fencing of results, and a server restart mid-task, on
//! SQLite and (when configured) Postgres.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

use ferry::agent::Progress;
use ferry::agent::exec::{Builtin, DriverKind, Executor};
use ferry::agent::session::AgentConfig;
use ferry::agent::state::StateDir;
use ferry::config::Config;
use ferry::model::{Action, JoinTokenInfo, TaskError, TaskRef};
use ferry::protocol::pb;
use ferry::protocol::pb::agent_admin_service_client::AgentAdminServiceClient;
use ferry::protocol::pb::agent_message::Body as AgentBody;
use ferry::protocol::pb::agent_service_client::AgentServiceClient;
use ferry::protocol::pb::server_message::Body as ServerBody;
use ferry::server::{RunningServer, start_with_store};
use ferry::store::{JoinTokenRecord, Store};

use common::{BOOTSTRAP, PATIENCE, authed, eventually, on_each_backend};

// ---- harness ------------------------------------------------------------------------------------

/// Short timings, so leases run out in seconds.
fn config(grpc_port: u16) -> Config {
    Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: SocketAddr::from(([127, 0, 0, 1], grpc_port)),
        bootstrap_token: Some(BOOTSTRAP.into()),
        agent_heartbeat_ms: 200,
        agent_lease_ms: 2000,
        agent_down_after_ms: 3000,
        ..Default::default()
    }
}

struct Harness {
    server: RunningServer,
    store: Arc<dyn Store>,
    channel: Channel,
}

impl Harness {
    async fn start(store: Arc<dyn Store>) -> Self {
        Self::start_on(store, 0).await
    }

    async fn start_on(store: Arc<dyn Store>, grpc_port: u16) -> Self {
        let server = start_with_store(&config(grpc_port), store.clone())
            .await
            .expect("server starts");
        let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the gRPC port");
        let harness = Self {
            server,
            store,
            channel,
        };
        // Created once per store; a restarted server finds it there.
        if harness.get("/v1/clusters/FS-NEW").await.0 == 404 {
            let (status, body) = harness
                .post(
                    "/v1/clusters",
                    json!({"name": "FS-NEW", "os": "ws2022", "description": "target"}),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
        harness
    }

    fn grpc_url(&self) -> String {
        format!("http://{}", self.server.grpc_addr)
    }

    async fn stop(self) {
        drop(self.channel);
        self.server.stop().await.expect("server stops cleanly");
    }

    async fn rest(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        common::rest(self.server.http_addr, method, path, body).await
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.rest("GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.rest("POST", path, Some(body)).await
    }

    /// A join token for FS-NEW.
    async fn join_token(&self, uses: u32) -> String {
        let (status, body) = self
            .post(
                "/v1/join-tokens",
                json!({"cluster": "FS-NEW", "uses": uses}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["uses_left"], uses);
        body["token"].as_str().unwrap().to_owned()
    }

    async fn run_task(&self, agent_id: &str, action: Value) -> Value {
        let (status, body) = self
            .post(&format!("/v1/agents/{agent_id}/tasks"), action)
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    async fn task(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Waits until the task is in `state`.
    async fn task_in(&self, id: &str, state: &str) -> Value {
        eventually(&format!("task {id} {state}"), move || async move {
            let task = self.task(id).await;
            (task["state"] == state).then_some(task)
        })
        .await
    }

    async fn agent_in(&self, id: &str, state: &str) -> Value {
        eventually(&format!("agent {id} {state}"), move || async move {
            let (_, agent) = self.get(&format!("/v1/agents/{id}")).await;
            (agent["state"] == state).then_some(agent)
        })
        .await
    }

    async fn metric(&self, verdict: &str) -> u64 {
        self.counter(&format!(
            "ferry_agent_results_total{{verdict=\"RESULT_VERDICT_{verdict}\"}}"
        ))
        .await
    }

    async fn counter(&self, series: &str) -> u64 {
        let (status, text) =
            common::http(self.server.http_addr, "GET", "/metrics", None, None).await;
        assert_eq!(status, 200);
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    fn agents(&self) -> AgentServiceClient<Channel> {
        AgentServiceClient::new(self.channel.clone())
    }

    fn admin(&self) -> AgentAdminServiceClient<Channel> {
        AgentAdminServiceClient::new(self.channel.clone())
    }

    async fn enroll(&self, join_token: &str, node: &str) -> Result<RawAgent, Status> {
        let enrolled = self
            .agents()
            .enroll(pb::EnrollRequest {
                join_token: join_token.into(),
                cluster: "FS-NEW".into(),
                node: node.into(),
                software_version: "test".into(),
                capabilities: vec!["echo".into()],
            })
            .await?
            .into_inner();
        assert!(enrolled.secret.starts_with("fya_"));
        Ok(RawAgent {
            id: enrolled.agent_id,
            secret: enrolled.secret,
            node: node.into(),
            channel: self.channel.clone(),
        })
    }

    /// An in-process agent for `node`, enrolling with `join_token` if its state is new.
    fn spawn_agent(
        &self,
        servers: Vec<String>,
        state_dir: &std::path::Path,
        node: &str,
        join_token: Option<String>,
        executor: Arc<dyn Executor>,
    ) -> AgentProcess {
        let mut config = AgentConfig::new(servers, "FS-NEW", node, state_dir);
        config.join_token = join_token;
        config.backoff_initial = Duration::from_millis(50);
        config.backoff_max = Duration::from_millis(500);
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(ferry::agent::session::run(config, executor, async move {
            let _ = stopped.await;
        }));
        AgentProcess { handle, stop }
    }

    /// Enrolls and starts an in-process agent; returns it once it is connected.
    async fn connected_agent(
        &self,
        dir: &tempfile::TempDir,
        node: &str,
        executor: Arc<dyn Executor>,
    ) -> (AgentProcess, String) {
        let token = self.join_token(1).await;
        let agent = self.spawn_agent(
            vec![self.grpc_url()],
            &dir.path().join(node),
            node,
            Some(token),
            executor,
        );
        let path = dir.path().join(node);
        let path = &path;
        let id = eventually("agent enrolled", move || async move {
            StateDir::open(path).ok()?.load_identity().ok().flatten()
        })
        .await
        .agent_id
        .to_string();
        self.agent_in(&id, "connected").await;
        (agent, id)
    }
}

/// An in-process agent: stop it gracefully, or abort it like a killed process.
struct AgentProcess {
    handle: JoinHandle<anyhow::Result<()>>,
    stop: oneshot::Sender<()>,
}

impl AgentProcess {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("agent stops")
            .unwrap()
            .unwrap();
    }

    fn kill(self) {
        self.handle.abort();
    }

    /// Waits for the agent to give up on its own, with the error it gave.
    async fn ended(self) -> String {
        tokio::time::timeout(PATIENCE, self.handle)
            .await
            .expect("agent ends")
            .unwrap()
            .unwrap_err()
            .to_string()
    }
}

fn builtin() -> Arc<dyn Executor> {
    Arc::new(Builtin::new(DriverKind::Sim, None))
}

/// The built-in executor, counting the actions it runs.
struct Counting {
    inner: Builtin,
    runs: AtomicUsize,
}

#[async_trait]
impl Executor for Counting {
    fn capabilities(&self) -> Vec<String> {
        self.inner.capabilities()
    }

    async fn execute(
        &self,
        task: TaskRef,
        action: Action,
        progress: Arc<dyn Progress>,
    ) -> Result<Value, TaskError> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        self.inner.execute(task, action, progress).await
    }
}

// ---- hand-driven protocol -----------------------------------------------------------------------

/// An enrolled identity whose stream the test drives message by message.
struct RawAgent {
    id: String,
    secret: String,
    node: String,
    channel: Channel,
}

struct RawSession {
    out: mpsc::Sender<pb::AgentMessage>,
    inbound: Streaming<pb::ServerMessage>,
    welcome: pb::Welcome,
}

impl RawAgent {
    fn hello(&self) -> pb::Hello {
        pb::Hello {
            min_version: 1,
            max_version: 1,
            agent_id: self.id.clone(),
            cluster: "FS-NEW".into(),
            node: self.node.clone(),
            software_version: "raw".into(),
            capabilities: vec!["echo".into()],
        }
    }

    async fn connect(&self) -> Result<RawSession, Status> {
        self.connect_with(self.hello(), Some(&self.secret)).await
    }

    async fn connect_with(
        &self,
        hello: pb::Hello,
        secret: Option<&str>,
    ) -> Result<RawSession, Status> {
        let (out, rx) = mpsc::channel(16);
        out.send(message(AgentBody::Hello(hello))).await.unwrap();
        let mut request = Request::new(ReceiverStream::new(rx));
        request
            .metadata_mut()
            .insert("x-ferry-agent-id", self.id.parse().unwrap());
        if let Some(secret) = secret {
            request
                .metadata_mut()
                .insert("authorization", format!("Bearer {secret}").parse().unwrap());
        }
        let mut inbound = AgentServiceClient::new(self.channel.clone())
            .connect(request)
            .await?
            .into_inner();
        let first = tokio::time::timeout(PATIENCE, inbound.message())
            .await
            .expect("an answer to Hello")?;
        match first.and_then(|m| m.body) {
            Some(ServerBody::Welcome(welcome)) => Ok(RawSession {
                out,
                inbound,
                welcome,
            }),
            other => panic!("expected Welcome, got {other:?}"),
        }
    }
}

fn message(body: AgentBody) -> pb::AgentMessage {
    pb::AgentMessage { body: Some(body) }
}

impl RawSession {
    async fn next(&mut self) -> Result<ServerBody, Status> {
        let next = tokio::time::timeout(PATIENCE, self.inbound.message())
            .await
            .expect("a message from the server")?;
        Ok(next
            .and_then(|m| m.body)
            .expect("the stream is open and the message has a body"))
    }

    async fn next_task(&mut self) -> pb::TaskAssignment {
        match self.next().await.unwrap() {
            ServerBody::Task(task) => task,
            other => panic!("expected a task, got {other:?}"),
        }
    }

    async fn send(&self, body: AgentBody) {
        self.out.send(message(body)).await.unwrap();
    }

    /// Sends an echo report and returns the server's acknowledgement.
    async fn report(&mut self, task: pb::TaskRef, text: &str) -> pb::ResultAck {
        let task_id = task.task_id.clone();
        self.send(AgentBody::Result(pb::TaskResult {
            task: Some(task),
            outcome: Some(pb::task_result::Outcome::Succeeded(pb::Succeeded {
                report: Some(pb::succeeded::Report::Echo(pb::EchoReport {
                    text: text.into(),
                    slept_ms: 0,
                })),
            })),
            final_progress: None,
        }))
        .await;
        loop {
            match self.next().await.unwrap() {
                ServerBody::ResultAck(ack) => return ack,
                // A task created while the session was starting is sent by both the creation
                // and the session's first delivery; a real agent runs it once.
                ServerBody::Task(again) => {
                    assert_eq!(
                        again.task.map(|t| t.task_id),
                        Some(task_id.clone()),
                        "a task sent again"
                    );
                }
                other => panic!("expected a result ack, got {other:?}"),
            }
        }
    }
}

fn verdict(ack: &pb::ResultAck) -> pb::ResultVerdict {
    pb::ResultVerdict::try_from(ack.verdict).unwrap()
}

// ---- enrollment ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_refuses_unknown_used_expired_and_foreign_join_tokens() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store).await;
        let unknown = h.enroll("fyj_nope", "N1").await.err().unwrap();
        assert_eq!(unknown.code(), Code::Unauthenticated);
        assert!(
            unknown.message().contains("unknown join token"),
            "{unknown:?}"
        );

        let token = h.join_token(1).await;
        let agent = h.enroll(&token, "N1").await.unwrap();
        let used = h.enroll(&token, "N2").await.err().unwrap();
        assert_eq!(used.code(), Code::Unauthenticated);
        assert!(used.message().contains("used up"), "{used:?}");

        let cluster = h.store.get_cluster("FS-NEW").await.unwrap();
        let now = chrono::Utc::now();
        h.store
            .insert_join_token(&JoinTokenRecord {
                info: JoinTokenInfo {
                    id: uuid::Uuid::now_v7(),
                    cluster_id: cluster.id,
                    cluster_name: cluster.name.clone(),
                    expires_at: now - chrono::TimeDelta::seconds(1),
                    uses_left: 5,
                    created_at: now - chrono::TimeDelta::hours(1),
                    created_by: "test".into(),
                },
                secret_hash: ferry::auth::hash_secret("fyj_expired"),
            })
            .await
            .unwrap();
        let expired = h.enroll("fyj_expired", "N2").await.err().unwrap();
        assert_eq!(expired.code(), Code::Unauthenticated);
        assert!(expired.message().contains("expired"), "{expired:?}");

        let (status, _) = h
            .post("/v1/clusters", json!({"name": "FS-OTHER", "os": "ws2022"}))
            .await;
        assert_eq!(status, 201);
        let (status, other) = h
            .post("/v1/join-tokens", json!({"cluster": "FS-OTHER"}))
            .await;
        assert_eq!(status, 201);
        let foreign = h
            .enroll(other["token"].as_str().unwrap(), "N2")
            .await
            .err()
            .unwrap();
        assert_eq!(foreign.code(), Code::Unauthenticated);
        assert!(foreign.message().contains("another cluster"), "{foreign:?}");

        // Only admins create join tokens.
        let operator = ferry::service::issue_token(
            h.store.as_ref(),
            &ferry::model::NewToken {
                name: "operator".into(),
                role: ferry::model::Role::Operator,
                ttl_seconds: None,
            },
        )
        .await
        .unwrap()
        .token
        .unwrap();
        let (status, _) = common::http_json(
            h.server.http_addr,
            "POST",
            "/v1/join-tokens",
            Some(&operator),
            Some(json!({"cluster": "FS-NEW"})),
        )
        .await;
        assert_eq!(status, 403);

        let (_, audit) = h.get("/v1/audit?action=agent.enroll").await;
        let outcomes: Vec<&str> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["outcome"].as_str().unwrap())
            .collect();
        assert_eq!(
            outcomes,
            ["failure", "failure", "failure", "success", "failure"]
        );
        let (_, listed) = h.get("/v1/agents").await;
        assert_eq!(listed["items"][0]["id"], agent.id);
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolls_once_and_keeps_a_private_identity() {
    let (store, _db) = common::sqlite_store().await;
    let h = Harness::start(store).await;
    let dir = tempfile::tempdir().unwrap();
    let (agent, id) = h.connected_agent(&dir, "N1", builtin()).await;
    let state = dir.path().join("N1");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join("agent.json")), 0o600);
    }
    let (_, shown) = h.get(&format!("/v1/agents/{id}")).await;
    assert_eq!(shown["node"], "N1");
    assert_eq!(shown["cluster_name"], "FS-NEW");
    assert_eq!(
        shown["capabilities"],
        json!(ferry::agent::exec::BUILTIN_ACTIONS)
    );
    assert!(shown["session_id"].is_string());
    agent.stop().await;
    h.agent_in(&id, "disconnected").await;

    // The join token was single-use: connecting again works only through the saved identity.
    let again = h.spawn_agent(vec![h.grpc_url()], &state, "N1", None, builtin());
    h.agent_in(&id, "connected").await;
    again.stop().await;

    // Another node cannot borrow this state directory.
    let borrowed = h.spawn_agent(vec![h.grpc_url()], &state, "N2", None, builtin());
    assert!(borrowed.ended().await.contains("belongs to node `N1`"));
    h.stop().await;
}

// ---- tasks --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_end_to_end_and_wait_for_an_offline_agent() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store).await;
        let dir = tempfile::tempdir().unwrap();
        let (agent, id) = h.connected_agent(&dir, "N1", builtin()).await;

        let task = h
            .run_task(&id, json!({"action": "echo", "text": "hi"}))
            .await;
        assert_eq!(
            task["action"],
            json!({"action": "echo", "text": "hi", "sleep_ms": 0})
        );
        let done = h.task_in(task["id"].as_str().unwrap(), "succeeded").await;
        assert_eq!(done["result"], json!({"text": "hi", "slept_ms": 0}));
        assert_eq!(done["attempt"], 1);
        assert_eq!(done["generation"], 1);
        assert_eq!(done["created_by"], "bootstrap");
        assert_eq!(done["progress"]["message"], "done");
        // A task that ends at once sends its last progress inside its result: one message.
        assert_eq!(h.counter("ferry_agent_progress_reports_total").await, 0);
        // A longer one reports while it runs, and its last progress still comes with the end.
        let slow = h
            .run_task(
                &id,
                json!({"action": "echo", "text": "slow", "sleep_ms": 1500}),
            )
            .await;
        let running = eventually("progress while running", || async {
            let task = h.task(slow["id"].as_str().unwrap()).await;
            (task["progress"]["message"] == "sleeping").then_some(task)
        })
        .await;
        assert_eq!(running["state"], "running", "{running:#}");
        let slow = h.task_in(slow["id"].as_str().unwrap(), "succeeded").await;
        assert_eq!(slow["progress"]["message"], "done");
        assert_eq!(slow["progress"]["done"], slow["progress"]["total"]);
        assert!(h.counter("ferry_agent_progress_reports_total").await >= 1);

        let unsupported = h.run_task(&id, json!({"action": "list_groups"})).await;
        let failed = h
            .task_in(unsupported["id"].as_str().unwrap(), "failed")
            .await;
        assert_eq!(failed["error"]["kind"], "unsupported");
        assert_eq!(failed["error"]["retryable"], false);

        let (status, problem) = h
            .post(
                &format!("/v1/agents/{id}/tasks"),
                json!({"action": "echo", "sleep_ms": 99_999_999}),
            )
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "sleep_ms");

        // Stored before sent: a task for an agent that is away waits for it.
        agent.stop().await;
        h.agent_in(&id, "disconnected").await;
        let queued = h
            .run_task(&id, json!({"action": "echo", "text": "later"}))
            .await;
        assert_eq!(queued["state"], "pending");
        let again = h.spawn_agent(
            vec![h.grpc_url()],
            &dir.path().join("N1"),
            "N1",
            None,
            builtin(),
        );
        let done = h.task_in(queued["id"].as_str().unwrap(), "succeeded").await;
        assert_eq!(done["result"]["text"], "later");
        again.stop().await;
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_tasks_go_to_any_connected_agent_of_the_cluster() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store).await;
        let dir = tempfile::tempdir().unwrap();

        // Nobody connected yet: the task waits, unassigned, for the cluster's first agent.
        let (status, queued) = h
            .post(
                "/v1/clusters/FS-NEW/tasks",
                json!({"action": "echo", "text": "first"}),
            )
            .await;
        assert_eq!(status, 201, "{queued}");
        assert_eq!(queued["state"], "pending");
        assert!(queued["agent_id"].is_null(), "{queued}");

        let (a1, id1) = h.connected_agent(&dir, "N1", builtin()).await;
        let done = h.task_in(queued["id"].as_str().unwrap(), "succeeded").await;
        assert_eq!(done["agent_id"], id1.as_str());
        assert_eq!(done["node"], "N1");
        assert_eq!(done["result"]["text"], "first");

        // With two connected, each task runs exactly once on one of them.
        let (a2, id2) = h.connected_agent(&dir, "N2", builtin()).await;
        let mut ran_on = std::collections::BTreeSet::new();
        for i in 0..8 {
            let (status, task) = h
                .post(
                    "/v1/clusters/FS-NEW/tasks",
                    json!({"action": "echo", "text": format!("t{i}")}),
                )
                .await;
            assert_eq!(status, 201, "{task}");
            let done = h.task_in(task["id"].as_str().unwrap(), "succeeded").await;
            assert_eq!(done["result"]["text"], format!("t{i}"));
            assert_eq!(done["attempt"], 1);
            ran_on.insert(done["agent_id"].as_str().unwrap().to_owned());
        }
        let both: std::collections::BTreeSet<String> = [id1.clone(), id2.clone()].into();
        assert!(ran_on.is_subset(&both), "{ran_on:?}");

        // Work on one node's disks is not a cluster task.
        let (status, problem) = h
            .post(
                "/v1/clusters/FS-NEW/tasks",
                json!({"action": "share_scan", "group": "FileServer1"}),
            )
            .await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "action");
        let (status, _) = h
            .post("/v1/clusters/NOPE/tasks", json!({"action": "echo"}))
            .await;
        assert_eq!(status, 404);

        a1.stop().await;
        a2.stop().await;
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_service_mirrors_rest_over_grpc() {
    let (store, _db) = common::sqlite_store().await;
    let h = Harness::start(store).await;
    let dir = tempfile::tempdir().unwrap();
    let (agent, id) = h.connected_agent(&dir, "N1", builtin()).await;
    let mut admin = h.admin();
    let listed = admin
        .list_agents(authed(
            BOOTSTRAP,
            pb::ListAgentsRequest {
                cluster: "FS-NEW".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agents.len(), 1);
    assert_eq!(listed.agents[0].id, id);
    assert_eq!(listed.agents[0].state, pb::AgentState::Connected as i32);

    let ran = admin
        .run_task(authed(
            BOOTSTRAP,
            pb::RunTaskRequest {
                agent_id: id.clone(),
                action: Some(pb::Action {
                    kind: Some(pb::action::Kind::Echo(pb::Echo {
                        text: "grpc".into(),
                        sleep_ms: 0,
                    })),
                }),
                idempotency_key: "run-1".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!ran.replayed);
    let task_id = ran.task.unwrap().id;
    let done = h.task_in(&task_id, "succeeded").await;
    let over_grpc = admin
        .get_task(authed(
            BOOTSTRAP,
            pb::GetTaskRequest {
                id: task_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(over_grpc.state, pb::TaskState::Succeeded as i32);
    let result: Value = serde_json::from_str(over_grpc.result_json.as_deref().unwrap()).unwrap();
    assert_eq!(result, done["result"]);

    let missing_action = admin
        .run_task(authed(
            BOOTSTRAP,
            pb::RunTaskRequest {
                agent_id: id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(missing_action.code(), Code::InvalidArgument);

    let created = admin
        .create_join_token(authed(
            BOOTSTRAP,
            pb::CreateJoinTokenRequest {
                cluster: "FS-NEW".into(),
                uses: Some(2),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(created.token.unwrap().starts_with("fyj_"));
    assert_eq!(created.info.unwrap().uses_left, 2);

    let revoked = admin
        .revoke_agent(authed(BOOTSTRAP, pb::RevokeAgentRequest { id: id.clone() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(revoked.state, pb::AgentState::Revoked as i32);
    assert!(agent.ended().await.contains("revoked"));
    h.stop().await;
}

// ---- revocation and leases ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_cut_off_at_once_and_refused_after() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store).await;
        let dir = tempfile::tempdir().unwrap();
        let (agent, id) = h.connected_agent(&dir, "N1", builtin()).await;
        let held = h
            .run_task(&id, json!({"action": "echo", "sleep_ms": 60_000}))
            .await;
        h.task_in(held["id"].as_str().unwrap(), "running").await;

        let (status, revoked) = h.rest("DELETE", &format!("/v1/agents/{id}"), None).await;
        assert_eq!(status, 200, "{revoked}");
        assert_eq!(revoked["state"], "revoked");
        let error = agent.ended().await;
        assert!(error.contains("revoked"), "{error}");
        let lost = h.task(held["id"].as_str().unwrap()).await;
        assert_eq!(lost["state"], "lost");

        let identity = StateDir::open(&dir.path().join("N1"))
            .unwrap()
            .load_identity()
            .unwrap()
            .unwrap();
        let raw = RawAgent {
            id: id.clone(),
            secret: identity.secret,
            node: "N1".into(),
            channel: h.channel.clone(),
        };
        let refused = raw.connect().await.err().unwrap();
        assert_eq!(refused.code(), Code::Unauthenticated);
        assert!(refused.message().contains("revoked"), "{refused:?}");
        let (status, _) = h
            .post(&format!("/v1/agents/{id}/tasks"), json!({"action": "echo"}))
            .await;
        assert_eq!(status, 409);
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_loses_its_task_when_the_lease_runs_out() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store).await;
        let dir = tempfile::tempdir().unwrap();
        let (agent, id) = h.connected_agent(&dir, "N1", builtin()).await;
        let task = h
            .run_task(&id, json!({"action": "echo", "sleep_ms": 60_000}))
            .await;
        let task_id = task["id"].as_str().unwrap();
        h.task_in(task_id, "running").await;

        agent.kill();
        h.agent_in(&id, "disconnected").await;
        let lost = h.task_in(task_id, "lost").await;
        assert_eq!(lost["error"]["kind"], "lost");
        assert_eq!(lost["error"]["retryable"], true);
        assert!(lost["result"].is_null());
        // Silent past the heartbeat TTL and grace.
        h.agent_in(&id, "down").await;
        h.stop().await;
    })
    .await;
}

// ---- fencing ------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_stale_results_are_refused() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store).await;
        let agent = h.enroll(&h.join_token(1).await, "N1").await.unwrap();
        let mut session = agent.connect().await.unwrap();
        assert_eq!(session.welcome.version, 1);
        assert_eq!(session.welcome.heartbeat_interval_ms, 200);

        let task = h
            .run_task(&agent.id, json!({"action": "echo", "text": "a"}))
            .await;
        let assignment = session.next_task().await;
        let current = assignment.task.clone().unwrap();
        assert_eq!(current.task_id, task["id"]);
        assert_eq!((current.attempt, current.generation), (1, 1));

        let stale_generation = pb::TaskRef {
            generation: 7,
            ..current.clone()
        };
        let ack = session.report(stale_generation, "stale").await;
        assert_eq!(verdict(&ack), pb::ResultVerdict::Stale, "{ack:?}");
        let stale_attempt = pb::TaskRef {
            attempt: 2,
            ..current.clone()
        };
        let ack = session.report(stale_attempt, "stale").await;
        assert_eq!(verdict(&ack), pb::ResultVerdict::Stale, "{ack:?}");

        let ack = session.report(current.clone(), "first").await;
        assert_eq!(verdict(&ack), pb::ResultVerdict::Applied, "{ack:?}");
        let ack = session.report(current.clone(), "second").await;
        assert_eq!(verdict(&ack), pb::ResultVerdict::Duplicate, "{ack:?}");

        let done = h.task(task["id"].as_str().unwrap()).await;
        assert_eq!(done["state"], "succeeded");
        assert_eq!(
            done["result"],
            json!({"text": "first", "slept_ms": 0}),
            "applied once"
        );
        assert_eq!(h.metric("APPLIED").await, 1);
        assert_eq!(h.metric("DUPLICATE").await, 1);
        assert_eq!(h.metric("STALE").await, 2);
        h.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_on_another_agents_task_is_refused_and_audited() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store).await;
        let token = h.join_token(2).await;
        let owner = h.enroll(&token, "N1").await.unwrap();
        let intruder = h.enroll(&token, "N2").await.unwrap();
        let mut owner_session = owner.connect().await.unwrap();
        let mut intruder_session = intruder.connect().await.unwrap();

        let task = h.run_task(&owner.id, json!({"action": "echo"})).await;
        let assignment = owner_session.next_task().await.task.unwrap();

        let ack = intruder_session
            .report(assignment.clone(), "mine now")
            .await;
        assert_eq!(verdict(&ack), pb::ResultVerdict::Refused, "{ack:?}");
        assert!(
            ack.message.contains("not assigned to this agent"),
            "{ack:?}"
        );
        let invented = pb::TaskRef {
            task_id: uuid::Uuid::now_v7().to_string(),
            ..assignment.clone()
        };
        let ack = intruder_session.report(invented, "").await;
        assert_eq!(verdict(&ack), pb::ResultVerdict::Refused, "{ack:?}");

        // Progress is fire-and-forget, so its refusal shows only in the audit log.
        intruder_session
            .send(AgentBody::Progress(pb::TaskProgress {
                task: Some(assignment.clone()),
                done: 1,
                total: None,
                message: "pretending".into(),
            }))
            .await;
        let harness = &h;
        let progress = eventually("refused progress audited", move || async move {
            let (_, audit) = harness.get("/v1/audit?action=task.progress").await;
            let records = audit["items"].as_array().unwrap().clone();
            (!records.is_empty()).then_some(records)
        })
        .await;
        assert_eq!(progress[0]["actor"], format!("agent:{}", intruder.id));
        assert_eq!(progress[0]["outcome"], "denied");
        assert!(h.task(task["id"].as_str().unwrap()).await["progress"].is_null());

        let (_, audit) = h.get("/v1/audit?action=task.result").await;
        let records = audit["items"].as_array().unwrap();
        assert_eq!(records.len(), 2, "{audit}");
        let record = &records[1];
        assert_eq!(record["actor"], format!("agent:{}", intruder.id));
        assert_eq!(
            record["target"],
            format!("task:{}", task["id"].as_str().unwrap())
        );
        assert_eq!(record["outcome"], "denied");
        assert_eq!(record["source"], "127.0.0.1");

        // The owner's lease is untouched and its result still counts.
        let ack = owner_session.report(assignment, "ok").await;
        assert_eq!(verdict(&ack), pb::ResultVerdict::Applied, "{ack:?}");
        h.stop().await;
    })
    .await;
}

/// A malformed or invalid inventory report is refused whole: counted, logged, nothing stored;
/// the agent's session goes on. A valid one of the agent's own cluster becomes its snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_inventory_report_stores_nothing() {
    on_each_backend(|backend, store| async move {
        let h = Harness::start(store).await;
        let token = h.join_token(1).await;
        let agent = h.enroll(&token, "N1").await.unwrap();
        let session = agent.connect().await.unwrap();
        let refused = "ferry_agent_inventory_reports_refused_total";

        // A permission whose type is no known value: the conversion refuses it.
        let mut malformed = pb::InventoryDocument::from(common::sample_inventory(1, 2, 1));
        malformed.groups[0].shares[0].permissions[0].r#type = 99;
        session
            .send(AgentBody::Inventory(pb::InventoryReport {
                inventory: Some(malformed),
                cluster: String::new(),
            }))
            .await;
        // Valid protobuf, invalid inventory: two groups of one name.
        let mut doubled = common::sample_inventory(2, 1, 1);
        doubled.groups[1].name = doubled.groups[0].name.clone();
        session
            .send(AgentBody::Inventory(pb::InventoryReport {
                inventory: Some(doubled.into()),
                cluster: String::new(),
            }))
            .await;
        // No inventory at all.
        session
            .send(AgentBody::Inventory(pb::InventoryReport::default()))
            .await;
        let harness = &h;
        eventually("three refused reports", move || async move {
            (harness.counter(refused).await == 3).then_some(())
        })
        .await;
        let (_, snapshots) = h.get("/v1/clusters/FS-NEW/snapshots").await;
        assert_eq!(snapshots["items"], json!([]), "[{backend}] {snapshots:#}");

        // The session is still up, and a good report of its own cluster is imported.
        session
            .send(AgentBody::Inventory(pb::InventoryReport {
                inventory: Some(common::sample_inventory(1, 2, 1).into()),
                cluster: "fs-new".into(),
            }))
            .await;
        let harness = &h;
        let snapshots = eventually("the good report imported", move || async move {
            let (_, snapshots) = harness.get("/v1/clusters/FS-NEW/snapshots").await;
            let items = snapshots["items"].as_array()?.clone();
            (!items.is_empty()).then_some(items)
        })
        .await;
        assert_eq!(
            snapshots[0]["created_by"],
            format!("agent:{}", agent.id),
            "[{backend}]"
        );
        assert_eq!(h.counter(refused).await, 3);
        h.stop().await;
    })
    .await;
}

// ---- sessions -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_check_credentials_identity_and_protocol_version() {
    let (store, _db) = common::sqlite_store().await;
    let h = Harness::start(store).await;
    let agent = h.enroll(&h.join_token(1).await, "N1").await.unwrap();

    let no_secret = agent.connect_with(agent.hello(), None).await.err().unwrap();
    assert_eq!(no_secret.code(), Code::Unauthenticated);
    let wrong = agent
        .connect_with(agent.hello(), Some("fya_wrong"))
        .await
        .err()
        .unwrap();
    assert_eq!(wrong.code(), Code::Unauthenticated);

    let mut newer = agent.hello();
    (newer.min_version, newer.max_version) = (2, 3);
    let refused = agent
        .connect_with(newer, Some(&agent.secret))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("2..=3"), "{refused:?}");
    assert!(refused.message().contains("1..=1"), "{refused:?}");

    let mut impostor = agent.hello();
    impostor.node = "N2".into();
    let refused = agent
        .connect_with(impostor, Some(&agent.secret))
        .await
        .err()
        .unwrap();
    assert_eq!(refused.code(), Code::PermissionDenied);

    // One session per agent: a new one closes the old.
    let mut first = agent.connect().await.unwrap();
    let second = agent.connect().await.unwrap();
    let closed = first.next().await.err().unwrap();
    assert_eq!(closed.code(), Code::Aborted);
    assert_ne!(first.welcome.session_id, second.welcome.session_id);
    let (_, shown) = h.get(&format!("/v1/agents/{}", agent.id)).await;
    assert_eq!(shown["session_id"], second.welcome.session_id);
    assert_eq!(shown["state"], "connected");

    // A session that goes silent is closed after the heartbeat TTL and grace.
    let mut silent = second;
    let closed = silent.next().await.err().unwrap();
    assert_eq!(closed.code(), Code::DeadlineExceeded);
    // The session's own timer and the reaper race to notice; either is right.
    let (harness, agent_id) = (&h, agent.id.as_str());
    let state = eventually("agent disconnected or down", move || async move {
        let (_, shown) = harness.get(&format!("/v1/agents/{agent_id}")).await;
        let state = shown["state"].as_str().unwrap().to_owned();
        (state != "connected").then_some(state)
    })
    .await;
    assert!(
        ["disconnected", "down"].contains(&state.as_str()),
        "{state}"
    );
    h.stop().await;
}

// ---- server restart -----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_task_applies_the_result_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(&dir);
    let store = ferry::store::open(&url).await.unwrap();
    let h = Harness::start(store).await;
    let port = h.server.grpc_addr.port();
    // A dead address first: the agent rotates past it.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);

    let counting = Arc::new(Counting {
        inner: Builtin::new(DriverKind::Sim, None),
        runs: AtomicUsize::new(0),
    });
    let state = dir.path().join("agent");
    let agent = h.spawn_agent(
        vec![dead_url, h.grpc_url()],
        &state,
        "N1",
        Some(h.join_token(1).await),
        counting.clone(),
    );
    let path = &state;
    let id = eventually("agent enrolled", move || async move {
        StateDir::open(path).ok()?.load_identity().ok().flatten()
    })
    .await
    .agent_id
    .to_string();
    h.agent_in(&id, "connected").await;

    let task = h
        .run_task(
            &id,
            json!({"action": "echo", "text": "once", "sleep_ms": 2500}),
        )
        .await;
    let task_id = task["id"].as_str().unwrap().to_owned();
    h.task_in(&task_id, "running").await;
    assert_eq!(h.metric("APPLIED").await, 0);
    h.stop().await;

    let store = ferry::store::open(&url).await.unwrap();
    let h = Harness::start_on(store, port).await;
    let done = h.task_in(&task_id, "succeeded").await;
    assert_eq!(done["result"], json!({"text": "once", "slept_ms": 2500}));
    assert_eq!(done["generation"], 1, "the same lease throughout");
    assert_eq!(h.metric("APPLIED").await, 1);
    assert_eq!(counting.runs.load(Ordering::SeqCst), 1, "executed once");
    h.agent_in(&id, "connected").await;
    agent.stop().await;
    h.stop().await;
}
