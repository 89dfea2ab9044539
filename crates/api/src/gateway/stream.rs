//! `ferry.v1.AgentService`: enrollment, and the `Connect` stream of each agent.
//!
//! A session: authenticate from metadata, read Hello, agree on a protocol version, answer
//! Welcome, register (replacing an older session of the same agent), record the connection,
//! send the agent's unfinished tasks, then serve its messages until the stream ends, the agent
//! falls silent, or the server closes the session (revocation, replacement, shutdown).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

use super::{Gateway, OUTBOUND_CAPACITY, Outbound};
use crate::grpc::{code_of, status_of};
use crate::metrics::Metrics;
use ferry_core::model::Agent;
use ferry_protocol::pb::{
    self, agent_message::Body as AgentBody, agent_service_server::AgentService,
    server_message::Body as ServerBody,
};
use ferry_protocol::{AGENT_ID_METADATA, PROTOCOL_VERSIONS, convert};
use ferry_service::auth::parse_bearer;
use ferry_service::{ResultVerdict, Service};

/// How long a new stream may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The agent protocol's implementation.
#[derive(Clone)]
pub struct AgentGateway {
    service: Service,
    gateway: Arc<Gateway>,
    metrics: Arc<Metrics>,
}

impl AgentGateway {
    pub fn new(service: Service, gateway: Arc<Gateway>, metrics: Arc<Metrics>) -> Self {
        Self {
            service,
            gateway,
            metrics,
        }
    }

    fn observe(&self, route: &str, code: tonic::Code, started: Instant) {
        self.metrics.observe_grpc(route, code, started);
    }

    /// The highest version both sides speak.
    fn negotiate(hello: &pb::Hello) -> Result<u32, Status> {
        let low = hello.min_version.max(*PROTOCOL_VERSIONS.start());
        let high = hello.max_version.min(*PROTOCOL_VERSIONS.end());
        if hello.min_version > hello.max_version || low > high {
            return Err(Status::failed_precondition(format!(
                "no common protocol version: the agent speaks {}..={}, this server speaks {}..={}; \
                 upgrade the older side",
                hello.min_version,
                hello.max_version,
                PROTOCOL_VERSIONS.start(),
                PROTOCOL_VERSIONS.end()
            )));
        }
        Ok(high)
    }

    /// The Hello must describe the agent the credentials belong to.
    fn check_identity(agent: &Agent, hello: &pb::Hello) -> Result<(), Status> {
        let cluster_matches =
            hello.cluster == agent.cluster_name || hello.cluster == agent.cluster_id.to_string();
        if hello.agent_id != agent.id.to_string() || !cluster_matches || hello.node != agent.node {
            return Err(Status::permission_denied(format!(
                "this agent is enrolled as node `{}` of cluster `{}` with id {}; its Hello says \
                 node `{}` of cluster `{}` with id {}",
                agent.node, agent.cluster_name, agent.id, hello.node, hello.cluster, hello.agent_id
            )));
        }
        Ok(())
    }

    /// Everything before the session runs; an error here is the stream's status.
    async fn open(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<ReceiverStream<Result<pb::ServerMessage, Status>>, Status> {
        let metadata = request.metadata();
        let agent_id = metadata
            .get(AGENT_ID_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let secret = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_bearer)
            .map(str::to_owned);
        let source = request.remote_addr().map(|a| a.ip().to_string());
        let agent = self
            .service
            .authenticate_agent(agent_id.as_deref(), secret.as_deref())
            .await
            .map_err(status_of)?;

        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "no Hello within 10 s of opening the stream",
                ));
            }
            Ok(Err(status)) => return Err(status),
            Ok(Ok(None)) => return Err(Status::cancelled("the stream ended before Hello")),
            Ok(Ok(Some(pb::AgentMessage {
                body: Some(AgentBody::Hello(hello)),
            }))) => hello,
            Ok(Ok(Some(_))) => {
                return Err(Status::failed_precondition(
                    "the first message of a session must be Hello",
                ));
            }
        };
        let version = Self::negotiate(&hello)?;
        Self::check_identity(&agent, &hello)?;

        let session_id = Uuid::now_v7();
        let settings = self.service.agent_timing();
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let (close_tx, close_rx) = oneshot::channel();
        let welcome = pb::ServerMessage {
            body: Some(ServerBody::Welcome(pb::Welcome {
                version,
                session_id: session_id.to_string(),
                heartbeat_interval_ms: millis(settings.heartbeat),
                lease_ms: millis(settings.lease),
            })),
        };
        // Queued before the session is registered, so it precedes anything pushed to the agent.
        tx.try_send(Ok(welcome))
            .map_err(|_| Status::internal("a fresh session channel has room"))?;
        // Registered before the store records the connection: a revocation in between then
        // either fails `agent_connected` or finds the session to close.
        self.gateway
            .register(agent.id, agent.cluster_id, session_id, tx.clone(), close_tx)?;
        let agent = match self
            .service
            .agent_connected(
                &agent,
                session_id,
                &hello.software_version,
                &hello.capabilities,
            )
            .await
        {
            Ok(agent) => agent,
            Err(e) => {
                self.gateway.deregister(agent.id, session_id);
                return Err(status_of(e));
            }
        };
        tracing::info!(
            agent = %agent.id,
            node = %agent.node,
            cluster = %agent.cluster_name,
            session = %session_id,
            version,
            software = %hello.software_version,
            "agent connected"
        );
        self.metrics.agent_sessions.inc();
        let session = Session {
            service: self.service.clone(),
            gateway: self.gateway.clone(),
            metrics: self.metrics.clone(),
            agent,
            session_id,
            tx,
            source,
        };
        tokio::spawn(session.run(inbound, close_rx));
        Ok(ReceiverStream::new(rx))
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[tonic::async_trait]
impl AgentService for AgentGateway {
    async fn enroll(
        &self,
        request: Request<pb::EnrollRequest>,
    ) -> Result<Response<pb::EnrollResponse>, Status> {
        let started = Instant::now();
        let source = request.remote_addr().map(|a| a.ip().to_string());
        let result = self
            .service
            .enroll(&convert::enroll_request(request.into_inner()), source)
            .await;
        let code = result
            .as_ref()
            .map_or_else(|e| code_of(e.code), |_| tonic::Code::Ok);
        self.observe("/ferry.v1.AgentService/Enroll", code, started);
        let enrollment = result.map_err(status_of)?;
        Ok(Response::new(pb::EnrollResponse {
            agent_id: enrollment.agent.id.to_string(),
            secret: enrollment.secret,
            cluster_id: enrollment.agent.cluster_id.to_string(),
            node: enrollment.agent.node,
        }))
    }

    type ConnectStream = ReceiverStream<Result<pb::ServerMessage, Status>>;

    async fn connect(
        &self,
        request: Request<Streaming<pb::AgentMessage>>,
    ) -> Result<Response<Self::ConnectStream>, Status> {
        let started = Instant::now();
        let result = self.open(request).await;
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        // Only the opening is timed: the stream itself lives for days.
        self.observe("/ferry.v1.AgentService/Connect", code, started);
        result.map(Response::new)
    }
}

/// One open session.
#[derive(Clone)]
struct Session {
    service: Service,
    gateway: Arc<Gateway>,
    metrics: Arc<Metrics>,
    agent: Agent,
    session_id: Uuid,
    tx: Outbound,
    source: Option<String>,
}

impl Session {
    async fn run(
        self,
        mut inbound: Streaming<pb::AgentMessage>,
        mut close: oneshot::Receiver<Status>,
    ) {
        self.deliver_unfinished().await;
        let silence = self.service.agent_timing().down_after;
        let end: Option<Status> = loop {
            tokio::select! {
                reason = &mut close => break reason.ok(),
                next = tokio::time::timeout(silence, inbound.message()) => match next {
                    Err(_) => {
                        break Some(Status::deadline_exceeded(
                            "no message from the agent for longer than the heartbeat TTL",
                        ));
                    }
                    Ok(Ok(Some(message))) => {
                        if let Err(status) = self.handle(message).await {
                            break Some(status);
                        }
                    }
                    Ok(Ok(None)) => break None,
                    Ok(Err(status)) if status.code() == tonic::Code::OutOfRange => {
                        // A message over max_inventory_bytes (an inventory report, or the result
                        // carrying a discovery's inventory) ends the stream; nothing of it is
                        // read, so nothing of it is stored.
                        self.metrics.agent_inventory_reports_refused.inc();
                        tracing::warn!(agent = %self.agent.id, %status, "agent message too large; refused");
                        break None;
                    }
                    Ok(Err(status)) => {
                        tracing::debug!(agent = %self.agent.id, %status, "agent stream broke");
                        break None;
                    }
                },
            }
        };
        if let Some(status) = &end {
            tracing::info!(
                agent = %self.agent.id,
                session = %self.session_id,
                %status,
                "closing agent session"
            );
            // Best effort: an agent that is not reading would block a waiting send forever.
            let _ = self.tx.try_send(Err(status.clone()));
        }
        self.gateway.deregister(self.agent.id, self.session_id);
        self.metrics.agent_sessions.dec();
        match self
            .service
            .agent_disconnected(self.agent.id, self.session_id)
            .await
        {
            Ok(_) => {
                tracing::info!(
                    agent = %self.agent.id,
                    session = %self.session_id,
                    "agent disconnected"
                );
            }
            Err(e) => {
                tracing::warn!(
                    agent = %self.agent.id,
                    error = %e,
                    "could not record the disconnect"
                );
            }
        }
    }

    /// Sends the agent's pending and in-flight tasks; an agent that already has one answers with
    /// the result it kept or ignores it while still running it.
    async fn deliver_unfinished(&self) {
        match self.service.tasks_to_deliver(self.agent.id).await {
            Ok(tasks) => {
                for task in tasks {
                    let message = pb::ServerMessage {
                        body: Some(ServerBody::Task(convert::task_assignment(&task))),
                    };
                    if self.tx.send(Ok(message)).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    agent = %self.agent.id,
                    error = %e,
                    "could not load the agent's tasks; they go out on its next connect"
                );
            }
        }
    }

    /// Serves one message. An error ends the session with that status.
    async fn handle(&self, message: pb::AgentMessage) -> Result<(), Status> {
        let agent_id = self.agent.id;
        match message.body {
            Some(AgentBody::Hello(_)) => {
                return Err(Status::failed_precondition(
                    "Hello is only the first message of a session",
                ));
            }
            Some(AgentBody::Heartbeat(heartbeat)) => {
                let mut running = Vec::with_capacity(heartbeat.running.len());
                for task in heartbeat.running {
                    match convert::task_ref(Some(task), "running") {
                        Ok(task) => running.push(task),
                        Err(e) => tracing::warn!(agent = %agent_id, "heartbeat entry ignored: {e}"),
                    }
                }
                if let Err(e) = self.service.renew_leases(agent_id, &running).await {
                    tracing::warn!(agent = %agent_id, error = %e, "could not renew leases");
                }
            }
            Some(AgentBody::Progress(progress)) => {
                self.metrics.agent_progress_reports.inc();
                self.progress(agent_id, progress).await;
            }
            Some(AgentBody::Log(line)) => self.log(&line),
            // A discovery's inventory is imported before it is acknowledged, which takes
            // seconds for a large cluster: the heartbeats behind it on this stream must not
            // wait, or the agent's lease would look silent.
            Some(AgentBody::Result(result)) if carries_inventory(&result) => {
                let session = self.clone();
                tokio::spawn(async move {
                    if let Err(status) = session.result(result).await {
                        tracing::warn!(
                            agent = %session.agent.id,
                            "an inventory's acknowledgement was not sent: {}",
                            status.message()
                        );
                    }
                });
            }
            Some(AgentBody::Result(result)) => self.result(result).await?,
            Some(AgentBody::Perf(batch)) => self.perf(batch).await,
            Some(AgentBody::Inventory(report)) => self.inventory(report),
            // A message kind from a newer agent: not an error, the versions were agreed.
            None => tracing::debug!(agent = %agent_id, "unknown message kind ignored"),
        }
        Ok(())
    }

    /// Stores the batch for the agent's cluster; its devices without a node are the agent's
    /// node's. A refused batch is logged, since the stream has no answer for it, and dropped:
    /// the next one is as good.
    async fn perf(&self, batch: pb::PerfBatch) {
        let agent = &self.agent;
        if !batch.samples.is_empty() {
            tracing::debug!(agent = %agent.id, "retired flat perf samples ignored");
        }
        if batch.series.is_empty() {
            return;
        }
        let stored = match convert::perf::series(batch.series, &agent.node) {
            Ok(series) => self.service.ingest_perf_for(agent.cluster_id, series).await,
            Err(e) => Err(e),
        };
        match stored {
            Ok(summary) => {
                self.metrics.agent_perf_samples.inc_by(summary.samples);
            }
            Err(e) => {
                self.metrics.agent_perf_batches_refused.inc();
                tracing::warn!(agent = %agent.id, node = %agent.node, error = %e, "perf batch refused");
            }
        }
    }

    /// Imports the report as its cluster's next snapshot, in the background: a large cluster
    /// takes seconds to import, and the stream's heartbeats and results must not wait for it.
    /// A refused report is logged and counted, since the stream has no answer for it; nothing
    /// of it is stored.
    fn inventory(&self, report: pb::InventoryReport) {
        self.metrics.agent_inventory_reports.inc();
        let (service, metrics) = (self.service.clone(), self.metrics.clone());
        let (agent, source) = (self.agent.clone(), self.source.clone());
        tokio::spawn(async move {
            let imported = match report.inventory.map(convert::inventory_document) {
                None => Err(ferry_core::error::Error::invalid_field(
                    "inventory",
                    "an inventory report must carry an inventory",
                )),
                Some(Err(e)) => Err(e),
                Some(Ok(document)) => {
                    service
                        .import_agent_report(&agent, &report.cluster, document, source)
                        .await
                }
            };
            match imported {
                Ok(imported) => tracing::info!(
                    agent = %agent.id,
                    cluster = %agent.cluster_name,
                    snapshot = imported.outcome.snapshot.number,
                    created = imported.outcome.created,
                    "inventory report imported"
                ),
                Err(e) => {
                    metrics.agent_inventory_reports_refused.inc();
                    tracing::warn!(
                        agent = %agent.id,
                        cluster = %agent.cluster_name,
                        error = %e,
                        "inventory report refused"
                    );
                }
            }
        });
    }

    async fn progress(&self, agent_id: Uuid, progress: pb::TaskProgress) {
        match convert::task_progress(progress) {
            Ok((task, progress)) => {
                match self
                    .service
                    .record_progress(agent_id, &task, &progress, self.source.clone())
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::debug!(
                            agent = %agent_id,
                            task = %task.task_id,
                            "progress of an attempt that is not current ignored"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(
                            agent = %agent_id,
                            error = %e,
                            "progress not recorded"
                        );
                    }
                }
            }
            Err(e) => tracing::warn!(agent = %agent_id, "progress ignored: {e}"),
        }
    }

    fn log(&self, line: &pb::LogLine) {
        let (agent, node, task) = (&self.agent.id, &self.agent.node, &line.task_id);
        let message = &line.message;
        match pb::LogLevel::try_from(line.level).unwrap_or(pb::LogLevel::Info) {
            pb::LogLevel::Error => tracing::error!(%agent, %node, %task, "agent: {message}"),
            pb::LogLevel::Warn => tracing::warn!(%agent, %node, %task, "agent: {message}"),
            pb::LogLevel::Debug => tracing::debug!(%agent, %node, %task, "agent: {message}"),
            pb::LogLevel::Info | pb::LogLevel::Unspecified => {
                tracing::info!(%agent, %node, %task, "agent: {message}")
            }
        }
    }

    async fn result(&self, result: pb::TaskResult) -> Result<(), Status> {
        let echo = result.task.clone();
        let (verdict, message) = match convert::task_result(result) {
            Err(e) => (pb::ResultVerdict::Refused, e.message),
            Ok((task, reported, progress)) => match self
                .service
                .report_result(
                    &self.agent,
                    &task,
                    reported,
                    progress.as_ref(),
                    self.source.clone(),
                )
                .await
            {
                Ok(ResultVerdict::Applied(applied)) => {
                    tracing::info!(
                        agent = %self.agent.id,
                        task = %applied.id,
                        state = applied.state.as_str(),
                        "task finished"
                    );
                    (pb::ResultVerdict::Applied, String::new())
                }
                Ok(ResultVerdict::Duplicate) => (
                    pb::ResultVerdict::Duplicate,
                    "this attempt's result was applied before".to_owned(),
                ),
                Ok(ResultVerdict::Stale(why)) => (pb::ResultVerdict::Stale, why),
                Err(e) if e.code == ferry_core::error::ErrorCode::PermissionDenied => {
                    (pb::ResultVerdict::Refused, e.message)
                }
                // Not answered: the agent keeps the result and offers it again after the
                // store recovers (on redelivery when it reconnects).
                Err(e) => {
                    tracing::warn!(agent = %self.agent.id, error = %e, "could not apply a result");
                    return Ok(());
                }
            },
        };
        self.metrics.agent_result(verdict.as_str_name());
        let ack = pb::ServerMessage {
            body: Some(ServerBody::ResultAck(pb::ResultAck {
                task: echo,
                verdict: verdict as i32,
                message,
            })),
        };
        self.tx.try_send(Ok(ack)).map_err(|_| {
            Status::resource_exhausted("the agent fell too far behind reading its stream")
        })
    }
}

/// Whether a result is a success reporting an inventory.
fn carries_inventory(result: &pb::TaskResult) -> bool {
    matches!(
        &result.outcome,
        Some(pb::task_result::Outcome::Succeeded(pb::Succeeded {
            report: Some(pb::succeeded::Report::Inventory(_))
        }))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(min: u32, max: u32) -> pb::Hello {
        pb::Hello {
            min_version: min,
            max_version: max,
            ..Default::default()
        }
    }

    #[test]
    fn versions_are_negotiated_or_refused_naming_both_ranges() {
        assert_eq!(AgentGateway::negotiate(&hello(1, 1)).unwrap(), 1);
        assert_eq!(AgentGateway::negotiate(&hello(0, 5)).unwrap(), 1);
        let refused = AgentGateway::negotiate(&hello(2, 3)).unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
        assert!(refused.message().contains("2..=3"), "{}", refused.message());
        assert!(refused.message().contains("1..=1"), "{}", refused.message());
        assert!(AgentGateway::negotiate(&hello(1, 0)).is_err());
    }
}
