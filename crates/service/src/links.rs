//! What the service needs of the agents connected to this server, without knowing how they are
//! connected: [`AgentLinks`] is implemented by the transport that holds the agents' streams (the
//! gRPC gateway), and [`NoAgentLinks`] stands in where no agent ever connects (tools, tests).
//!
//! The store is the truth about agents and tasks; links only say who can be reached from here
//! right now, and reach them. Every call is non-blocking: a message that cannot be queued is
//! dropped (`false`), and the task goes out again when the agent reconnects.

use std::collections::HashSet;
use std::sync::Mutex;

use uuid::Uuid;

use ferry_core::model::Task;

/// Why the service ends an agent's session. Each transport says it in its own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The agent was revoked; it must enroll again.
    Revoked,
    /// Its node enrolled again, which revoked this agent.
    Reenrolled,
    /// It sent no heartbeat for longer than the heartbeat TTL and grace.
    Silent,
}

impl Disconnect {
    /// What the agent is told.
    pub fn message(self) -> &'static str {
        match self {
            Disconnect::Revoked => "this agent was revoked",
            Disconnect::Reenrolled => "this node was enrolled again; agent revoked",
            Disconnect::Silent => "no heartbeat for too long; reconnect",
        }
    }
}

/// The agents connected to this server, as far as the service needs them.
pub trait AgentLinks: Send + Sync + 'static {
    /// Whether the agent has a session on this server.
    fn is_connected(&self, agent_id: Uuid) -> bool;

    /// One of the cluster's agents connected here, chosen by `spread` so that a cluster's tasks
    /// do not all load the same agent.
    fn connected_agent_of(&self, cluster_id: Uuid, spread: u128) -> Option<Uuid>;

    /// Number of agent sessions on this server.
    fn session_count(&self) -> usize;

    /// Changes whenever an agent connects here or its session ends: what caches of the set of
    /// connected agents compare.
    fn session_generation(&self) -> u64;

    /// Sends a task to its agent if that agent is connected here.
    fn send_task(&self, task: &Task) -> bool;

    /// Tells the agent holding `task` to stop working on that attempt.
    fn send_cancel(&self, task: &Task, reason: &str) -> bool;

    /// Ends the agent's session, if it has one here.
    fn disconnect(&self, agent_id: Uuid, why: Disconnect) -> bool;
}

/// No agent is ever connected: for tools and tests that never serve agents.
#[derive(Debug, Default)]
pub struct NoAgentLinks;

impl AgentLinks for NoAgentLinks {
    fn is_connected(&self, _agent_id: Uuid) -> bool {
        false
    }

    fn connected_agent_of(&self, _cluster_id: Uuid, _spread: u128) -> Option<Uuid> {
        None
    }

    fn session_count(&self) -> usize {
        0
    }

    fn session_generation(&self) -> u64 {
        0
    }

    fn send_task(&self, _task: &Task) -> bool {
        false
    }

    fn send_cancel(&self, _task: &Task, _reason: &str) -> bool {
        false
    }

    fn disconnect(&self, _agent_id: Uuid, _why: Disconnect) -> bool {
        false
    }
}

/// Agents heard from since `last_seen_at` was last written: heartbeats only touch this set, and
/// the reaper writes all of them in one statement every few seconds.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    seen: Mutex<HashSet<Uuid>>,
}

impl Presence {
    /// Notes that the agent was heard from.
    pub(crate) fn seen(&self, agent_id: Uuid) {
        self.lock().insert(agent_id);
    }

    /// The agents heard from since the last call.
    pub(crate) fn take(&self) -> Vec<Uuid> {
        std::mem::take(&mut *self.lock()).into_iter().collect()
    }

    /// Puts agents back after a failed write, so the next flush carries them.
    pub(crate) fn restore(&self, ids: Vec<Uuid>) {
        self.lock().extend(ids);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        // Every change is one set call, so a poisoned lock still holds a whole set.
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_agents_are_taken_once() {
        let presence = Presence::default();
        let agent = Uuid::now_v7();
        presence.seen(agent);
        presence.seen(agent);
        assert_eq!(presence.take(), vec![agent]);
        assert!(presence.take().is_empty());
        presence.restore(vec![agent]);
        assert_eq!(presence.take(), vec![agent]);
    }
}
