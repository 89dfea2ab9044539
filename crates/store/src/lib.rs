//! Persistence: one [`Store`] made of a trait per aggregate (inventory, tokens, agents and their
//! tasks, jobs, validations, webhooks, audit, idempotency, perf), implemented for SQLite
//! (embedded default, one writer) and Postgres (several server replicas). Both run the same
//! conformance suite (`tests/store.rs`).
//!
//! Every method is one transaction: it either fully happens or leaves nothing behind. Errors are
//! already [`ferry_core::error::Error`]s with user-facing messages; database text only reaches the log.
//!
//! The SQL is written once for both databases: `$N` placeholders (SQLite accepts them too), ids as
//! UUID text, JSON as text, and the same column names in both migrations. Each aggregate's module
//! holds its trait and a macro that `sqlite.rs` and `postgres.rs` expand for their store. What
//! really differs is passed to that macro (row locking, the principal filter, the locks that
//! order job events and compactions) or belongs to the store type, which every macro relies on:
//! `reader()` and `writer()` (the pools reads and writes go to), `MAX_BINDS` (the most bind
//! parameters one statement may carry) and, for imports, `insert_shares` (the one hot bulk path).

mod agents;
mod audit;
mod db;
mod discoveries;
mod idempotency;
mod inventory;
mod jobs;
pub mod perf;
pub mod postgres;
mod rows;
mod signals;
pub mod sqlite;
mod tokens;
mod validations;
mod webhooks;

use async_trait::async_trait;

use ferry_core::error::Result;

pub use agents::{
    AgentCredentials, AgentEnrollment, AgentStore, Enrolled, JoinTokenRecord, NewTask, TaskStatus,
};
pub use audit::AuditStore;
pub use discoveries::DiscoveryStore;
pub use idempotency::{IdempotencyClaim, IdempotencyStore};
pub use inventory::{ChangeEvent, GroupKey, ImportOutcome, InventoryImport, InventoryStore};
pub use jobs::{
    ActiveJob, EventFilter, GroupUpdate, JobStore, JobUpdate, NewJob, SavedGroup, StepOutput,
};
pub use tokens::{TokenRecord, TokenStore};
pub use validations::ValidationStore;
pub use webhooks::WebhookStore;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// What a replica announces to the others sharing its database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A task waits for an agent that may be connected elsewhere.
    Tasks,
    /// An agent was revoked; whoever holds its stream must close it.
    Agents,
    /// A job or one of its tasks changed; the replica running the scheduler looks now.
    Jobs,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Tasks => "tasks",
            Change::Agents => "agents",
            Change::Jobs => "jobs",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Change::Tasks, Change::Agents, Change::Jobs]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

/// Every aggregate's store over one database, and what is about that database as a whole.
///
/// Through `dyn Store` (or an `S: Store` bound) every aggregate's methods resolve without their
/// trait in scope, so callers import only `Store`; a concrete store type needs the trait.
#[async_trait]
pub trait Store:
    InventoryStore
    + TokenStore
    + AgentStore
    + JobStore
    + ValidationStore
    + DiscoveryStore
    + WebhookStore
    + AuditStore
    + IdempotencyStore
    + perf::PerfStore
    + Send
    + Sync
    + 'static
{
    fn backend(&self) -> Backend;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;

    /// Tells every replica sharing the database (this one included) that `change` happened, so
    /// its sweep runs now rather than at its next tick. A no-op where one server owns the
    /// database.
    async fn announce(&self, change: Change) -> Result<()>;
    /// The announcements of every replica, or `None` where there are no other replicas. A lost
    /// connection drops announcements; the periodic sweep makes up for them.
    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>>;

    /// A counter that moves whenever job events commit: at once for this replica's own commits,
    /// and on Postgres within a notification's delay for any replica's. A reader of the event log
    /// waits on it instead of polling; a lost notification connection moves it too (what was
    /// committed meanwhile is unknown), so a reader re-reads rather than missing events.
    async fn event_feed(&self) -> Result<tokio::sync::watch::Receiver<u64>>;

    /// Claims the period of `duty` that starts now, for `holder`, for `hold`: true when no
    /// replica holds it any more, so of the replicas sharing the database one does the work of
    /// each period. Times are the database's, so replicas whose clocks disagree, or one whose
    /// clock steps back, still split the periods. Always true where one server owns the
    /// database.
    async fn claim_period(
        &self,
        duty: &str,
        holder: &str,
        hold: std::time::Duration,
    ) -> Result<bool>;
}

/// Channels a commit notifies other replicas on (see `postgres::listen_for_commits`): every
/// writing transaction names its channel through its backend's `notify_at_commit`.
pub(crate) mod channels {
    /// Job events were written: followers of the event log read again.
    pub const EVENTS: &str = "ferry_events";
    /// A token changed: token caches forget.
    pub const TOKENS: &str = "ferry_tokens";
    /// The cluster list changed (a cluster created, changed or deleted, a new snapshot): its
    /// caches forget.
    pub const CLUSTERS: &str = "ferry_clusters";
}

/// The next announcement of another replica from [`Store::subscribe`]'s receiver; pends forever
/// where there are none (`None`), so it can sit in a `select!` beside a timer.
pub async fn next_change(
    changes: &mut Option<tokio::sync::mpsc::Receiver<Change>>,
) -> Option<Change> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens the store a database URL names (`sqlite://...` or `postgres://...`) and applies its
/// migrations.
pub async fn open(url: &str) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(std::sync::Arc::new(sqlite::SqliteStore::open(url).await?))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        Ok(std::sync::Arc::new(
            postgres::PostgresStore::open(url).await?,
        ))
    } else {
        anyhow::bail!("database URL must start with sqlite: or postgres:, got `{url}`")
    }
}
