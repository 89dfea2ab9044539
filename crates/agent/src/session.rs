//! The agent's side of the protocol (`proto/ferry/v1/agent.proto`): enroll once, then keep one
//! `Connect` stream open to one of the servers, reconnecting with jittered exponential backoff.
//!
//! Tasks run concurrently (bounded by `max_concurrent_tasks`) and outlive the stream: a task that
//! finishes while the agent is disconnected keeps its result until a server acknowledges it.
//! Delivery is at least once, so every (task id, attempt) runs once here: a redelivered task that
//! is still running is only noted, and one that finished is answered with the kept result.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use futures::FutureExt;
use rand::Rng;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{AbortHandle, JoinSet};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Request, Status};
use uuid::Uuid;

use crate::Progress;
use crate::exec::Executor;
use crate::state::{Identity, StateDir};
use ferry_core::model::{Action, TaskError, TaskRef};
use ferry_protocol::AGENT_ID_METADATA;
use ferry_protocol::PROTOCOL_VERSIONS;
use ferry_protocol::convert;
use ferry_protocol::pb::{
    self, agent_message::Body as AgentBody, agent_service_client::AgentServiceClient,
    server_message::Body as ServerBody, succeeded::Report,
};

/// How long a server may take to accept a connection, and to answer Hello.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished results kept for redelivery; acknowledged ones are dropped at once, so this only
/// bounds what piles up while no server answers.
const MAX_KEPT_RESULTS: usize = 1024;
/// Progress reports per task are sent at most this often (the last one always).
const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// How long a progress report waits for its task's result: a task that ends by then sends its
/// last progress inside its result, one message and one write on the server instead of two.
const PROGRESS_HOLD: Duration = Duration::from_millis(200);
/// Messages waiting for the stream.
const OUTBOUND_CAPACITY: usize = 256;

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// gRPC addresses of the servers, e.g. `http://ferry1:50051`; tried in turn.
    pub servers: Vec<String>,
    /// Cluster id or name, as in the join token.
    pub cluster: String,
    pub node: String,
    pub state_dir: PathBuf,
    /// Needed only until the agent has enrolled.
    pub join_token: Option<String>,
    /// A CA certificate to pin for TLS.
    pub ca: Option<PathBuf>,
    pub max_concurrent_tasks: usize,
    pub software_version: String,
    /// First reconnect delay; doubles per failure up to `backoff_max`, with jitter.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

impl AgentConfig {
    pub fn new(
        servers: Vec<String>,
        cluster: impl Into<String>,
        node: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            servers,
            cluster: cluster.into(),
            node: node.into(),
            state_dir: state_dir.into(),
            join_token: None,
            ca: None,
            max_concurrent_tasks: 4,
            software_version: env!("CARGO_PKG_VERSION").to_owned(),
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
        }
    }

    /// Refuses what cannot work; run again with other arguments.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.servers.is_empty() {
            anyhow::bail!("at least one server address is needed (--server)");
        }
        for server in &self.servers {
            let uri: http::Uri = server
                .parse()
                .with_context(|| format!("server address `{server}` is not a URL"))?;
            if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
                anyhow::bail!(
                    "server address `{server}` must look like https://host:port or http://host:port"
                );
            }
        }
        if let Some(ca) = &self.ca {
            // A pinned CA with a plain-text address would silently not be used.
            if let Some(plain) = self.servers.iter().find(|s| s.starts_with("http://")) {
                anyhow::bail!(
                    "--ca pins the CA for TLS, but `{plain}` is plain text: use https://"
                );
            }
            read_ca(ca)?;
        }
        Ok(())
    }

    /// Warns about servers reached in plain text over a network.
    fn warn_plain_text(&self) {
        for server in self.servers.iter().filter(|s| s.starts_with("http://")) {
            let host = server
                .parse::<http::Uri>()
                .ok()
                .and_then(|uri| uri.host().map(str::to_owned))
                .unwrap_or_default();
            if !is_loopback(&host) {
                tracing::warn!(
                    %server,
                    "plain-text connection to a server that is not on this machine: the agent \
                     secret and task data cross the network unencrypted"
                );
            }
        }
    }
}

/// The pinned CA, checked to hold at least one PEM certificate.
fn read_ca(path: &std::path::Path) -> anyhow::Result<tonic::transport::Certificate> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let pem =
        std::fs::read(path).with_context(|| format!("--ca {} cannot be read", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("--ca {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("--ca {} holds no PEM certificate", path.display());
    }
    Ok(tonic::transport::Certificate::from_pem(pem))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Jittered exponential backoff: each delay is drawn from the upper half of a window that
/// doubles per failure, so a fleet of agents that lost the same server does not come back in
/// lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    window: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            window: initial,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let window = self.window;
        self.window = (self.window * 2).min(self.max);
        let half = window / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    pub fn reset(&mut self) {
        self.window = self.initial;
    }
}

/// Enrolls if the state directory holds no identity yet, then serves until `shutdown`
/// completes. Returns an error only for what retrying cannot fix: bad configuration, a refused
/// join token, a revoked or unknown identity.
pub async fn run(
    config: AgentConfig,
    executor: Arc<dyn Executor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    config.warn_plain_text();
    let mut shutdown: Shutdown = Box::pin(shutdown);
    let state = StateDir::open(&config.state_dir)?;
    let mut backoff = Backoff::new(config.backoff_initial, config.backoff_max);
    let identity = match state.load_identity()? {
        Some(identity) => {
            if identity.node != config.node
                || !(identity.cluster == config.cluster
                    || identity.cluster_id.to_string() == config.cluster)
            {
                anyhow::bail!(
                    "the state directory {} belongs to node `{}` of cluster `{}` (id {}); use \
                     another directory for node `{}` of cluster `{}`",
                    state.path().display(),
                    identity.node,
                    identity.cluster,
                    identity.cluster_id,
                    config.node,
                    config.cluster
                );
            }
            identity
        }
        None => {
            let Some(token) = config.join_token.clone() else {
                anyhow::bail!(
                    "no identity in {}: pass --join-token (from `ferry token create --kind join \
                     --cluster {}`) to enroll",
                    state.path().display(),
                    config.cluster
                );
            };
            let capabilities = executor.capabilities();
            let identity = tokio::select! {
                identity = enroll(&config, &capabilities, &token, &mut backoff) => identity?,
                _ = &mut shutdown => return Ok(()),
            };
            state.save_identity(&identity)?;
            tracing::info!(
                agent = %identity.agent_id,
                node = %identity.node,
                "enrolled; identity saved"
            );
            identity
        }
    };
    let mut agent = Agent::new(config, identity, executor);
    agent.serve(backoff, &mut shutdown).await
}

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

async fn channel(server: &str, ca: Option<&std::path::Path>) -> Result<Channel, Status> {
    let mut endpoint = Endpoint::from_shared(server.to_owned())
        .map_err(|e| Status::invalid_argument(format!("server address `{server}`: {e}")))?;
    if server.starts_with("https://") {
        // The server name to verify is the URL's host (tonic's default); with --ca only that CA
        // is trusted, otherwise the public web roots.
        let tls = match ca {
            Some(path) => tonic::transport::ClientTlsConfig::new().ca_certificate(
                read_ca(path).map_err(|e| Status::failed_precondition(e.to_string()))?,
            ),
            None => tonic::transport::ClientTlsConfig::new().with_webpki_roots(),
        };
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| Status::invalid_argument(format!("TLS for `{server}`: {e}")))?;
    }
    endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        // A dead server behind a silent network must be noticed without waiting for TCP.
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true)
        .connect()
        .await
        .map_err(|e| Status::unavailable(format!("cannot reach {server}: {e}")))
}

/// Whether retrying (later, or at another server) can help.
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Unknown
            | Code::Internal
    )
}

async fn enroll(
    config: &AgentConfig,
    capabilities: &[String],
    join_token: &str,
    backoff: &mut Backoff,
) -> anyhow::Result<Identity> {
    let mut attempt = 0usize;
    loop {
        let server = &config.servers[attempt % config.servers.len()];
        attempt += 1;
        let result = async {
            let mut client = AgentServiceClient::new(channel(server, config.ca.as_deref()).await?);
            client
                .enroll(pb::EnrollRequest {
                    join_token: join_token.to_owned(),
                    cluster: config.cluster.clone(),
                    node: config.node.clone(),
                    software_version: config.software_version.clone(),
                    capabilities: capabilities.to_vec(),
                })
                .await
                .map(tonic::Response::into_inner)
        }
        .await;
        match result {
            Ok(enrolled) => {
                return Ok(Identity {
                    agent_id: enrolled
                        .agent_id
                        .parse()
                        .context("server sent a bad agent id")?,
                    secret: enrolled.secret,
                    cluster: config.cluster.clone(),
                    cluster_id: enrolled
                        .cluster_id
                        .parse()
                        .context("server sent a bad cluster id")?,
                    node: enrolled.node,
                    enrolled_at: Utc::now(),
                });
            }
            Err(status) if transient(status.code()) => {
                let delay = backoff.next_delay();
                tracing::warn!(%server, %status, ?delay, "enrollment failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(status) => anyhow::bail!("enrollment refused: {}", status.message()),
        }
    }
}

/// A task this agent is working on.
struct Running {
    generation: i64,
    abort: AbortHandle,
}

/// (task id, attempt): what runs once.
type TaskKey = (Uuid, i64);

/// Results not yet acknowledged by a server, oldest first.
#[derive(Default)]
struct KeptResults {
    order: VecDeque<TaskKey>,
    results: HashMap<TaskKey, pb::TaskResult>,
}

impl KeptResults {
    fn insert(&mut self, key: TaskKey, result: pb::TaskResult) {
        if self.results.insert(key, result).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_KEPT_RESULTS {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
    }

    fn get_mut(&mut self, key: &TaskKey) -> Option<&mut pb::TaskResult> {
        self.results.get_mut(key)
    }

    fn remove(&mut self, key: &TaskKey) {
        if self.results.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }

    fn all(&self) -> impl Iterator<Item = &pb::TaskResult> {
        self.order.iter().filter_map(|k| self.results.get(k))
    }
}

/// How a session ended.
enum SessionEnd {
    Shutdown,
    /// After Welcome: reconnect to the same server first.
    Closed(String),
    /// Before Welcome: try the next server.
    Failed(Status),
}

fn message(body: AgentBody) -> pb::AgentMessage {
    pb::AgentMessage { body: Some(body) }
}

/// Sends progress of one task to whatever stream is open, at most every [`PROGRESS_EVERY`].
struct StreamProgress {
    task: pb::TaskRef,
    events: mpsc::Sender<pb::AgentMessage>,
    last: Mutex<Option<Instant>>,
}

impl Progress for StreamProgress {
    fn report(&self, done: u64, total: Option<u64>, text: &str) {
        let last_one = total == Some(done);
        {
            let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
            if !last_one && last.is_some_and(|at| at.elapsed() < PROGRESS_EVERY) {
                return;
            }
            *last = Some(Instant::now());
        }
        // Best effort: progress is advisory, and a full queue means there is no stream anyway.
        let _ = self
            .events
            .try_send(message(AgentBody::Progress(pb::TaskProgress {
                task: Some(self.task.clone()),
                done,
                total,
                message: text.to_owned(),
            })));
    }
}

struct Agent {
    config: AgentConfig,
    identity: Identity,
    executor: Arc<dyn Executor>,
    slots: Arc<Semaphore>,
    running: HashMap<TaskKey, Running>,
    kept: KeptResults,
    jobs: JoinSet<(TaskKey, Result<Report, TaskError>)>,
    /// Progress from executors, forwarded to the open stream.
    events_tx: mpsc::Sender<pb::AgentMessage>,
    events_rx: mpsc::Receiver<pb::AgentMessage>,
    /// The latest progress of running tasks, held for [`PROGRESS_HOLD`].
    held_progress: HashMap<TaskKey, pb::TaskProgress>,
    /// When the held progress goes out.
    flush_progress_at: Option<tokio::time::Instant>,
}

impl Agent {
    fn new(config: AgentConfig, identity: Identity, executor: Arc<dyn Executor>) -> Self {
        let (events_tx, events_rx) = mpsc::channel(OUTBOUND_CAPACITY);
        // Absolute, so the executor's logs stay in it whatever the working directory becomes.
        let state_dir =
            std::path::absolute(&config.state_dir).unwrap_or_else(|_| config.state_dir.clone());
        executor.attach(events_tx.clone(), &config.node, &state_dir);
        Self {
            slots: Arc::new(Semaphore::new(config.max_concurrent_tasks.max(1))),
            config,
            identity,
            executor,
            running: HashMap::new(),
            kept: KeptResults::default(),
            jobs: JoinSet::new(),
            events_tx,
            events_rx,
            held_progress: HashMap::new(),
            flush_progress_at: None,
        }
    }

    async fn serve(&mut self, mut backoff: Backoff, shutdown: &mut Shutdown) -> anyhow::Result<()> {
        let mut server = 0usize;
        loop {
            let url = self.config.servers[server % self.config.servers.len()].clone();
            match self.session(&url, &mut backoff, shutdown).await {
                SessionEnd::Shutdown => return Ok(()),
                SessionEnd::Closed(why) => {
                    tracing::warn!(server = %url, "session ended: {why}; reconnecting");
                }
                SessionEnd::Failed(status) if transient(status.code()) => {
                    tracing::warn!(
                        server = %url,
                        %status,
                        "cannot open a session; trying the next server"
                    );
                    server += 1;
                }
                SessionEnd::Failed(status) => {
                    anyhow::bail!(
                        "the server refused this agent ({:?}): {}",
                        status.code(),
                        status.message()
                    );
                }
            }
            let pause = tokio::time::sleep(backoff.next_delay());
            tokio::pin!(pause);
            loop {
                tokio::select! {
                    _ = &mut pause => break,
                    _ = &mut *shutdown => return Ok(()),
                    Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                        // Kept for the next session.
                        let _ = self.finished(done);
                    }
                }
            }
        }
    }

    fn hello(&self) -> pb::AgentMessage {
        message(AgentBody::Hello(pb::Hello {
            min_version: *PROTOCOL_VERSIONS.start(),
            max_version: *PROTOCOL_VERSIONS.end(),
            agent_id: self.identity.agent_id.to_string(),
            // The id, not the name: a renamed cluster must not lock its agents out.
            cluster: self.identity.cluster_id.to_string(),
            node: self.identity.node.clone(),
            software_version: self.config.software_version.clone(),
            capabilities: self.executor.capabilities(),
        }))
    }

    /// Opens the stream and serves it until it ends.
    async fn session(
        &mut self,
        server: &str,
        backoff: &mut Backoff,
        shutdown: &mut Shutdown,
    ) -> SessionEnd {
        let (out, out_rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let open = async {
            let channel = channel(server, self.config.ca.as_deref()).await?;
            out.try_send(self.hello())
                .map_err(|_| Status::internal("a fresh channel has room"))?;
            let mut request = Request::new(ReceiverStream::new(out_rx));
            let metadata = request.metadata_mut();
            metadata.insert(
                AGENT_ID_METADATA,
                self.identity
                    .agent_id
                    .to_string()
                    .parse()
                    .map_err(|_| Status::internal("an id is valid metadata"))?,
            );
            metadata.insert(
                "authorization",
                format!("Bearer {}", self.identity.secret)
                    .parse()
                    .map_err(|_| Status::internal("the agent secret is not valid metadata"))?,
            );
            let mut inbound = AgentServiceClient::new(channel)
                .connect(request)
                .await?
                .into_inner();
            match tokio::time::timeout(CONNECT_TIMEOUT, inbound.message()).await {
                Ok(Ok(Some(pb::ServerMessage {
                    body: Some(ServerBody::Welcome(welcome)),
                }))) => Ok((inbound, welcome)),
                Ok(Ok(_)) => Err(Status::unavailable(
                    "the server did not answer with Welcome",
                )),
                Ok(Err(status)) => Err(status),
                Err(_) => Err(Status::deadline_exceeded("no Welcome from the server")),
            }
        };
        let (mut inbound, welcome) = tokio::select! {
            opened = open => match opened {
                Ok(opened) => opened,
                Err(status) => return SessionEnd::Failed(status),
            },
            _ = &mut *shutdown => return SessionEnd::Shutdown,
        };
        backoff.reset();
        tracing::info!(
            %server,
            session = %welcome.session_id,
            version = welcome.version,
            "connected"
        );
        // Results that finished while no server listened, or whose acknowledgement was lost.
        for result in self.kept.all() {
            if out
                .send(message(AgentBody::Result(result.clone())))
                .await
                .is_err()
            {
                return SessionEnd::Closed("the stream closed".into());
            }
        }
        let mut heartbeat = tokio::time::interval(Duration::from_millis(
            u64::from(welcome.heartbeat_interval_ms).max(100),
        ));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let outgoing: Vec<pb::AgentMessage> = tokio::select! {
                _ = &mut *shutdown => return SessionEnd::Shutdown,
                _ = heartbeat.tick() => vec![self.heartbeat()],
                next = inbound.message() => match next {
                    Ok(Some(message)) => self.on_message(message).into_iter().collect(),
                    Ok(None) => return SessionEnd::Closed("the server ended the stream".into()),
                    Err(status) if transient(status.code()) => {
                        return SessionEnd::Closed(status.to_string());
                    }
                    Err(status) => return SessionEnd::Failed(status),
                },
                Some(done) = self.jobs.join_next(), if !self.jobs.is_empty() => {
                    // What the task reported before it finished comes first: its last
                    // progress rides in its result.
                    let mut batch = Vec::new();
                    while let Ok(event) = self.events_rx.try_recv() {
                        batch.extend(self.hold_progress(event));
                    }
                    batch.extend(self.finished(done));
                    batch
                }
                Some(event) = self.events_rx.recv() => self.hold_progress(event).into_iter().collect(),
                _ = tokio::time::sleep_until(self.flush_progress_at.unwrap_or_else(tokio::time::Instant::now)),
                    if self.flush_progress_at.is_some() => {
                    self.flush_progress_at = None;
                    self.held_progress
                        .drain()
                        .map(|(_, progress)| message(AgentBody::Progress(progress)))
                        .collect()
                }
            };
            for message in outgoing {
                if out.send(message).await.is_err() {
                    return SessionEnd::Closed("the stream closed".into());
                }
            }
        }
    }

    /// Holds a running task's progress (replacing what it held of that task) and answers
    /// anything else to be sent as it is.
    fn hold_progress(&mut self, event: pb::AgentMessage) -> Option<pb::AgentMessage> {
        let progress = match event.body {
            Some(AgentBody::Progress(progress)) => progress,
            body => return Some(pb::AgentMessage { body }),
        };
        let Ok(task) = convert::task_ref(progress.task.clone(), "task") else {
            return Some(message(AgentBody::Progress(progress)));
        };
        self.held_progress
            .insert((task.task_id, task.attempt), progress);
        self.flush_progress_at
            .get_or_insert_with(|| tokio::time::Instant::now() + PROGRESS_HOLD);
        None
    }

    fn heartbeat(&self) -> pb::AgentMessage {
        message(AgentBody::Heartbeat(pb::Heartbeat {
            running: self
                .running
                .iter()
                .map(|(&(task_id, attempt), running)| {
                    convert::task_ref_to_pb(&TaskRef {
                        task_id,
                        attempt,
                        generation: running.generation,
                    })
                })
                .collect(),
        }))
    }

    /// Serves one server message; returns what to send back, if anything.
    fn on_message(&mut self, message: pb::ServerMessage) -> Option<pb::AgentMessage> {
        match message.body {
            Some(ServerBody::Task(assignment)) => self.on_task(assignment),
            Some(ServerBody::Cancel(cancel)) => {
                match convert::task_ref(cancel.task, "task") {
                    Ok(task) => self.cancel(&task, &cancel.reason),
                    Err(e) => tracing::warn!("cancellation ignored: {e}"),
                }
                None
            }
            Some(ServerBody::ResultAck(ack)) => {
                if let Ok(task) = convert::task_ref(ack.task, "task") {
                    let verdict = pb::ResultVerdict::try_from(ack.verdict)
                        .unwrap_or(pb::ResultVerdict::Unspecified);
                    if verdict != pb::ResultVerdict::Applied {
                        tracing::warn!(
                            task = %task.task_id,
                            ?verdict,
                            "result not applied: {}",
                            ack.message,
                        );
                    }
                    // Whatever the verdict, the server has decided; offering it again cannot
                    // change that.
                    self.kept.remove(&(task.task_id, task.attempt));
                }
                None
            }
            Some(ServerBody::Welcome(_)) => {
                tracing::warn!("unexpected second Welcome ignored");
                None
            }
            None => {
                tracing::debug!("unknown message kind from a newer server ignored");
                None
            }
        }
    }

    fn on_task(&mut self, assignment: pb::TaskAssignment) -> Option<pb::AgentMessage> {
        let task = match convert::task_ref(assignment.task, "task") {
            Ok(task) => task,
            Err(e) => {
                tracing::warn!("task assignment ignored: {e}");
                return None;
            }
        };
        let key = (task.task_id, task.attempt);
        let generation = u64::try_from(task.generation).unwrap_or_default();
        // Redelivered after a reconnect: answer with the kept result, under the current lease.
        if let Some(result) = self.kept.get_mut(&key) {
            if let Some(r) = result.task.as_mut() {
                r.generation = generation;
            }
            tracing::info!(task = %task.task_id, "task delivered again; sending the kept result");
            return Some(message(AgentBody::Result(result.clone())));
        }
        if let Some(running) = self.running.get_mut(&key) {
            running.generation = task.generation;
            tracing::debug!(task = %task.task_id, "task delivered again while running");
            return None;
        }
        let action = match convert::action(assignment.action, "action") {
            Ok(action) => action,
            Err(_) => {
                let result = pb::TaskResult {
                    task: Some(convert::task_ref_to_pb(&task)),
                    outcome: Some(outcome(Err(TaskError {
                        kind: "unsupported".into(),
                        message: "this agent does not know this action; upgrade it".into(),
                        retryable: false,
                    }))),
                    final_progress: None,
                };
                self.kept.insert(key, result.clone());
                return Some(message(AgentBody::Result(result)));
            }
        };
        tracing::info!(
            task = %task.task_id,
            attempt = task.attempt,
            action = action.kind(),
            "task received"
        );
        let abort = self.spawn(key, task, action);
        self.running.insert(
            key,
            Running {
                generation: task.generation,
                abort,
            },
        );
        None
    }

    fn spawn(&mut self, key: TaskKey, task: TaskRef, action: Action) -> AbortHandle {
        let progress = Arc::new(StreamProgress {
            task: convert::task_ref_to_pb(&task),
            events: self.events_tx.clone(),
            last: Mutex::new(None),
        });
        let executor = self.executor.clone();
        let slots = self.slots.clone();
        self.jobs.spawn(async move {
            // Queued tasks are still this agent's: heartbeats keep their leases alive.
            let Ok(_slot) = slots.acquire_owned().await else {
                return (
                    key,
                    Err(TaskError {
                        kind: "internal".into(),
                        message: "the agent is shutting down".into(),
                        retryable: true,
                    }),
                );
            };
            progress.report(0, None, "started");
            // The report is typed here, inside the job, so a report that does not fit its action
            // fails this task like any executor error.
            let reported = action.clone();
            let run = std::panic::AssertUnwindSafe(executor.execute(task, action, progress));
            let outcome = run.catch_unwind().await.unwrap_or_else(|_| {
                Err(TaskError {
                    kind: "panic".into(),
                    message: "the executor panicked; see the agent's log".into(),
                    retryable: false,
                })
            });
            (
                key,
                outcome.and_then(|value| convert::report_to_pb(&reported, value)),
            )
        })
    }

    fn cancel(&mut self, task: &TaskRef, reason: &str) {
        let key = (task.task_id, task.attempt);
        if let Some(running) = self.running.get(&key)
            && running.generation <= task.generation
        {
            tracing::warn!(task = %task.task_id, "task cancelled by the server: {reason}");
            running.abort.abort();
            self.running.remove(&key);
        }
    }

    /// Records a finished job; returns its result to send.
    fn finished(
        &mut self,
        done: Result<(TaskKey, Result<Report, TaskError>), tokio::task::JoinError>,
    ) -> Option<pb::AgentMessage> {
        // Aborted jobs were cancelled: the server expects nothing from them.
        let (key, result) = done.ok()?;
        let running = self.running.remove(&key)?;
        match &result {
            Ok(_) => tracing::info!(task = %key.0, "task succeeded"),
            // A retryable failure (a Kerberos first online) is expected and the server runs the
            // step again; it is not worth a warning of its own.
            Err(e) if e.retryable => {
                tracing::info!(task = %key.0, kind = %e.kind, "task failed, retryable: {}", e.message)
            }
            Err(e) => tracing::warn!(task = %key.0, kind = %e.kind, "task failed: {}", e.message),
        }
        let result = pb::TaskResult {
            task: Some(convert::task_ref_to_pb(&TaskRef {
                task_id: key.0,
                attempt: key.1,
                generation: running.generation,
            })),
            outcome: Some(outcome(result)),
            final_progress: self.held_progress.remove(&key),
        };
        self.kept.insert(key, result.clone());
        Some(message(AgentBody::Result(result)))
    }
}

fn outcome(result: Result<Report, TaskError>) -> pb::task_result::Outcome {
    match result {
        Ok(report) => pb::task_result::Outcome::Succeeded(pb::Succeeded {
            report: Some(report),
        }),
        Err(e) => pb::task_result::Outcome::Failed(pb::Failed {
            kind: e.kind,
            message: e.message,
            retryable: e.retryable,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let windows = [100, 200, 400, 800, 800, 800];
        for window in windows {
            let delay = backoff.next_delay();
            let window = Duration::from_millis(window);
            assert!(
                delay >= window / 2 && delay <= window,
                "{delay:?} not in the upper half of {window:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn kept_results_are_bounded_and_ordered() {
        let mut kept = KeptResults::default();
        let keys: Vec<TaskKey> = (0..MAX_KEPT_RESULTS + 3)
            .map(|_| (Uuid::now_v7(), 1))
            .collect();
        for key in &keys {
            kept.insert(*key, pb::TaskResult::default());
        }
        assert_eq!(kept.all().count(), MAX_KEPT_RESULTS);
        assert!(kept.get_mut(&keys[0]).is_none(), "the oldest went first");
        kept.remove(&keys[5]);
        assert_eq!(kept.all().count(), MAX_KEPT_RESULTS - 1);
    }

    #[test]
    fn plain_text_is_checked() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("[::1]"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("ferry.example.com"));
        let mut config = AgentConfig::new(vec!["https://x:1".into()], "C", "N", "/tmp/x");
        config.validate().unwrap();
        config.ca = Some("/nonexistent/ca.pem".into());
        assert!(config.validate().unwrap_err().to_string().contains("--ca"));
        config.servers = vec!["http://x:1".into()];
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("https://")
        );
        config.ca = None;
        config.servers = vec!["ftp://x".into()];
        assert!(config.validate().is_err());
        config.servers = vec!["http://127.0.0.1:50051".into()];
        config.validate().unwrap();
        config.servers.clear();
        assert!(config.validate().is_err());
    }
}
