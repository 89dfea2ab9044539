//! The agent gateway: the sessions of the agents connected to this server, the `AgentService`
//! they call (`stream.rs`), and the reaper that expires leases and notices silent agents.
//!
//! The store is the truth about agents and tasks; the gateway only holds what cannot be stored:
//! the open streams. Each session is one spawned task and one bounded channel, kept small because
//! a server holds thousands of them. The service reaches them through [`AgentLinks`], which
//! [`Gateway`] implements; it never sees a stream or a status.
//!
//! With several replicas (Postgres), each holds the sessions of the agents connected to it; the
//! store's state and fenced updates keep them consistent. A task stored by one replica for an
//! agent connected to another, and a revocation of such an agent, reach it through the sweep
//! (`Service::sweep`): every replica runs it on the reaper's tick and at once when another
//! replica announces a change (Postgres `LISTEN`/`NOTIFY`). Assignment is one conditional update,
//! so when two replicas offer the same task only one hands it out.

pub mod stream;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tonic::Status;
use uuid::Uuid;

use ferry_core::model::Task;
use ferry_protocol::{convert, pb};
use ferry_service::Change;
use ferry_service::periodic::Duty;
use ferry_service::{AgentLinks, Disconnect, Service};

/// Messages to one agent; `Err` ends its stream with that status.
pub(crate) type Outbound = mpsc::Sender<Result<pb::ServerMessage, Status>>;

/// Room for messages the agent has not read yet. A session that falls this far behind is closed
/// rather than waited for: the agent reconnects and gets its unfinished tasks again.
pub(crate) const OUTBOUND_CAPACITY: usize = 64;

struct Session {
    id: Uuid,
    cluster_id: Uuid,
    tx: Outbound,
    /// Tells the session's task to end the stream with this status.
    close: oneshot::Sender<Status>,
}

/// The open agent sessions of this server.
#[derive(Default)]
pub struct Gateway {
    sessions: Mutex<HashMap<Uuid, Session>>,
    /// Set at shutdown: no new session is accepted.
    closing: AtomicBool,
    /// Bumped whenever a session opens or closes: what caches the set of connected agents
    /// compares.
    generation: AtomicU64,
}

impl Gateway {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `session_id` the agent's session. An older session of the same agent is closed: an
    /// agent has one stream, and a reconnecting agent's old stream may not have noticed yet.
    pub(crate) fn register(
        &self,
        agent_id: Uuid,
        cluster_id: Uuid,
        session_id: Uuid,
        tx: Outbound,
        close: oneshot::Sender<Status>,
    ) -> Result<(), Status> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(Status::unavailable(
                "the server is shutting down; reconnect",
            ));
        }
        let old = self.lock().insert(
            agent_id,
            Session {
                id: session_id,
                cluster_id,
                tx,
                close,
            },
        );
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Some(old) = old {
            tracing::info!(
                %agent_id,
                old_session = %old.id,
                new_session = %session_id,
                "agent session replaced"
            );
            let _ = old
                .close
                .send(Status::aborted("replaced by a newer session of this agent"));
        }
        Ok(())
    }

    /// Forgets the session if it is still the agent's current one.
    pub(crate) fn deregister(&self, agent_id: Uuid, session_id: Uuid) {
        let mut sessions = self.lock();
        if sessions.get(&agent_id).is_some_and(|s| s.id == session_id) {
            sessions.remove(&agent_id);
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Changes whenever an agent connects here or its session ends.
    pub fn session_generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// True once the server began shutting down; long-lived streams end when they see it.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    pub fn is_connected(&self, agent_id: Uuid) -> bool {
        self.lock().contains_key(&agent_id)
    }

    /// One of the cluster's agents connected here, chosen by `spread` so that a cluster's tasks
    /// do not all load the same agent.
    pub fn connected_agent_of(&self, cluster_id: Uuid, spread: u128) -> Option<Uuid> {
        let sessions = self.lock();
        let mut agents: Vec<Uuid> = sessions
            .iter()
            .filter(|(_, s)| s.cluster_id == cluster_id)
            .map(|(id, _)| *id)
            .collect();
        if agents.is_empty() {
            return None;
        }
        // Map iteration order is arbitrary; sorting makes the spread depend on `spread` only.
        agents.sort_unstable();
        Some(agents[(spread % agents.len() as u128) as usize])
    }

    /// Number of open sessions.
    pub fn session_count(&self) -> usize {
        self.lock().len()
    }

    /// Queues a message for a connected agent; false when it is not connected here or could not
    /// take the message (then its session is closed, and its tasks go out again on reconnect).
    pub(crate) fn send(&self, agent_id: Uuid, message: pb::ServerMessage) -> bool {
        let mut sessions = self.lock();
        let Some(session) = sessions.get(&agent_id) else {
            return false;
        };
        match session.tx.try_send(Ok(message)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(%agent_id, "agent is not reading its stream; closing the session");
                if let Some(session) = sessions.remove(&agent_id) {
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    let _ = session.close.send(Status::resource_exhausted(
                        "the agent fell too far behind reading its stream",
                    ));
                }
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Sends a task to its agent if that agent is connected here.
    pub fn send_task(&self, task: &Task) -> bool {
        task.agent_id.is_some_and(|agent_id| {
            self.send(
                agent_id,
                pb::ServerMessage {
                    body: Some(pb::server_message::Body::Task(convert::task_assignment(
                        task,
                    ))),
                },
            )
        })
    }

    /// Tells the agent holding `task` to stop working on that attempt.
    pub fn send_cancel(&self, task: &Task, reason: &str) -> bool {
        task.agent_id.is_some_and(|agent_id| {
            self.send(
                agent_id,
                pb::ServerMessage {
                    body: Some(pb::server_message::Body::Cancel(pb::CancelTask {
                        task: Some(convert::task_ref_to_pb(&task.task_ref())),
                        reason: reason.to_owned(),
                    })),
                },
            )
        })
    }

    /// Ends the agent's session, if it has one here, with `status`.
    pub fn close(&self, agent_id: Uuid, status: Status) -> bool {
        match self.lock().remove(&agent_id) {
            Some(session) => {
                let _ = session.close.send(status);
                true
            }
            None => false,
        }
    }

    /// Ends every session and refuses new ones: streams never end on their own, so a graceful
    /// shutdown would otherwise wait for them forever.
    pub fn close_all(&self, status: Status) {
        self.closing.store(true, Ordering::SeqCst);
        for (_, session) in self.lock().drain() {
            let _ = session.close.send(status.clone());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Session>> {
        // A panic while holding the lock cannot leave the map half-changed (every change is
        // one map call), so a poisoned lock is still usable.
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the service asks of this server's agents, answered from the open sessions.
impl AgentLinks for Gateway {
    fn is_connected(&self, agent_id: Uuid) -> bool {
        Gateway::is_connected(self, agent_id)
    }

    fn connected_agent_of(&self, cluster_id: Uuid, spread: u128) -> Option<Uuid> {
        Gateway::connected_agent_of(self, cluster_id, spread)
    }

    fn session_count(&self) -> usize {
        Gateway::session_count(self)
    }

    fn session_generation(&self) -> u64 {
        Gateway::session_generation(self)
    }

    fn send_task(&self, task: &Task) -> bool {
        Gateway::send_task(self, task)
    }

    fn send_cancel(&self, task: &Task, reason: &str) -> bool {
        Gateway::send_cancel(self, task, reason)
    }

    fn disconnect(&self, agent_id: Uuid, why: Disconnect) -> bool {
        self.close(agent_id, disconnect_status(why))
    }
}

/// How a session the service ends is closed: a revoked agent must not retry its secret, a
/// silent one may reconnect at once.
fn disconnect_status(why: Disconnect) -> Status {
    match why {
        Disconnect::Revoked | Disconnect::Reenrolled => Status::permission_denied(why.message()),
        Disconnect::Silent => Status::deadline_exceeded(why.message()),
    }
}

/// How far back each sweep reads revocations before the newest one it has seen.
const REVOCATION_LOOKBACK: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// Gives leases in flight a full term, then runs the reaper until `stopped` turns true: expired
/// leases become lost attempts, silent agents are marked down, `last_seen_at` is written for the
/// agents heard from, and the sweep (on every tick, and at once when another replica announces a
/// change) delivers tasks and revocations that were stored elsewhere.
pub async fn start_reaper(
    service: Service,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<JoinHandle<anyhow::Result<()>>> {
    let extended = service.extend_leases().await?;
    if extended > 0 {
        tracing::info!(
            tasks = extended,
            "gave the leases of tasks in flight a full term while their agents reconnect"
        );
    }
    let mut changes = service.changes().await?;
    Ok(tokio::spawn(async move {
        let settings = service.agent_timing();
        let mut tick = tokio::time::interval(settings.reap_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_flush = tokio::time::Instant::now();
        // Revocations are read again for a while after the newest one seen: one committed late
        // with an earlier time is still caught; closing a closed session changes nothing.
        let mut revoked_seen = chrono::Utc::now();
        loop {
            let woken = tokio::select! {
                _ = tick.tick() => false,
                Some(change) = changes.next() => {
                    // A job's change is the scheduler's to act on; the tasks it stores are
                    // announced as tasks.
                    if change == Change::Jobs {
                        continue;
                    }
                    true
                }
                _ = stopped.wait_for(|s| *s) => break,
            };
            // The period is claimed as the timer fires: the sweep's and the flush's varying
            // round trips would otherwise eat into the slack a claim leaves.
            let reaps = !woken
                && service
                    .claim_period(Duty::Reap, settings.reap_every())
                    .await;
            match service.sweep(revoked_seen - REVOCATION_LOOKBACK).await {
                Ok(newest) => revoked_seen = revoked_seen.max(newest),
                Err(e) => tracing::warn!(error = %e, "dispatch sweep failed; retrying"),
            }
            if woken {
                continue;
            }
            if last_flush.elapsed() >= settings.last_seen_every() {
                last_flush = tokio::time::Instant::now();
                if let Err(e) = service.flush_seen().await {
                    tracing::warn!(error = %e, "could not record agent heartbeats; retrying");
                }
            }
            if reaps && let Err(e) = service.reap().await {
                tracing::warn!(error = %e, "reaper pass failed; retrying");
            }
        }
        // Heartbeats of the last seconds, so a restarted server does not see agents as silent.
        if let Err(e) = service.flush_seen().await {
            tracing::warn!(error = %e, "could not record agent heartbeats at shutdown");
        }
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Inbox = mpsc::Receiver<Result<pb::ServerMessage, Status>>;

    /// A session's channels: what the gateway holds, and what the session's task would hold.
    fn session() -> (
        Outbound,
        Inbox,
        oneshot::Sender<Status>,
        oneshot::Receiver<Status>,
    ) {
        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        let (close_tx, close_rx) = oneshot::channel();
        (tx, rx, close_tx, close_rx)
    }

    #[test]
    fn a_new_session_replaces_and_closes_the_old_one() {
        let gateway = Gateway::new();
        let agent = Uuid::now_v7();
        let (tx1, _rx1, close1, mut closed1) = session();
        let (tx2, _rx2, close2, mut closed2) = session();
        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        gateway
            .register(agent, Uuid::nil(), first, tx1, close1)
            .unwrap();
        gateway
            .register(agent, Uuid::nil(), second, tx2, close2)
            .unwrap();
        assert_eq!(closed1.try_recv().unwrap().code(), tonic::Code::Aborted);
        // The old session's cleanup must not remove the new one.
        gateway.deregister(agent, first);
        assert!(gateway.is_connected(agent));
        assert!(gateway.close(agent, Status::permission_denied("revoked")));
        assert_eq!(
            closed2.try_recv().unwrap().code(),
            tonic::Code::PermissionDenied
        );
        assert!(!gateway.is_connected(agent));
    }

    #[test]
    fn a_session_that_stops_reading_is_closed() {
        let gateway = Gateway::new();
        let agent = Uuid::now_v7();
        let (tx, _rx, close, mut closed) = session();
        gateway
            .register(agent, Uuid::nil(), Uuid::now_v7(), tx, close)
            .unwrap();
        for _ in 0..OUTBOUND_CAPACITY {
            assert!(gateway.send(agent, pb::ServerMessage::default()));
        }
        assert!(!gateway.send(agent, pb::ServerMessage::default()));
        assert_eq!(
            closed.try_recv().unwrap().code(),
            tonic::Code::ResourceExhausted
        );
        assert!(!gateway.is_connected(agent));
    }

    #[test]
    fn shutdown_closes_every_session_and_refuses_new_ones() {
        let gateway = Gateway::new();
        let (tx, _rx, close, mut closed) = session();
        gateway
            .register(Uuid::now_v7(), Uuid::nil(), Uuid::now_v7(), tx, close)
            .unwrap();
        gateway.close_all(Status::unavailable("bye"));
        assert_eq!(closed.try_recv().unwrap().code(), tonic::Code::Unavailable);
        let (tx, _rx, close, _closed) = session();
        let refused = gateway
            .register(Uuid::now_v7(), Uuid::nil(), Uuid::now_v7(), tx, close)
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        assert_eq!(gateway.session_count(), 0);
    }
}
