//! The embedded store: one SQLite file in WAL mode.
//!
//! SQLite allows one writer at a time; writers racing through a pool get `SQLITE_BUSY` and drop
//! work. So every mutating method goes through a pool of exactly one connection (writers queue in
//! the pool instead of in SQLite), and reads use a separate pool that WAL lets run beside it.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::QueryBuilder;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::mpsc;

use crate::agents::impl_agent_store;
use crate::audit::impl_audit_store;
use crate::db::db_error;
use crate::discoveries::impl_discovery_store;
use crate::idempotency::impl_idempotency_store;
use crate::inventory::{ShareInsert, impl_inventory_store};
use crate::jobs::impl_job_store;
use crate::perf::impl_perf_store;
use crate::signals::{
    CACHED_CLUSTER_PAGES, CACHED_TOKENS, ClusterListCache, EventSignal, TokenCache,
};
use crate::tokens::impl_token_store;
use crate::validations::impl_validation_store;
use crate::webhooks::impl_webhook_store;
use crate::{Backend, Change, Store};
use ferry_core::error::Result;

/// Readers that WAL runs beside the writer.
const READ_CONNECTIONS: u32 = 4;

pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
    events: EventSignal,
    tokens: TokenCache,
    clusters: ClusterListCache,
}

impl SqliteStore {
    /// One server owns a SQLite database: a commit has nobody else to tell.
    async fn notify_at_commit(_conn: &mut SqliteConnection, _channel: &str) -> sqlx::Result<()> {
        Ok(())
    }

    /// SQLITE_MAX_VARIABLE_NUMBER of the bundled SQLite.
    const MAX_BINDS: usize = 32766;

    /// Opens (creating if missing) the database and applies the migrations.
    ///
    /// An in-memory URL (`sqlite::memory:`) works: it then lives in one connection that serves
    /// reads and writes alike and never closes while the store exists, since the database would
    /// vanish with its last connection.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");

        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // Writers wait their turn here; a large import holds the connection for seconds.
            .acquire_timeout(Duration::from_secs(60))
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&write)
            .await?;

        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(READ_CONNECTIONS)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?
        };
        Ok(Self {
            write,
            read,
            events: EventSignal::new(),
            tokens: TokenCache::new(true, CACHED_TOKENS),
            clusters: ClusterListCache::new(true, CACHED_CLUSTER_PAGES),
        })
    }

    fn reader(&self) -> &SqlitePool {
        &self.read
    }

    fn writer(&self) -> &SqlitePool {
        &self.write
    }

    /// Multi-row `INSERT ... VALUES` in chunks that fit the bind limit: one statement per
    /// ~2,700 shares instead of one per share.
    async fn insert_shares(
        conn: &mut SqliteConnection,
        rows: &[ShareInsert<'_>],
    ) -> sqlx::Result<()> {
        for chunk in rows.chunks(Self::MAX_BINDS / 12) {
            let mut qb = QueryBuilder::<Sqlite>::new(
                "INSERT INTO shares (group_id, name, name_folded, path, description, \
                 permissions, principals, caching, access_based_enumeration, \
                 continuous_availability, encrypt_data, user_limit) ",
            );
            qb.push_values(chunk, |mut b, s| {
                b.push_bind(s.group_id)
                    .push_bind(s.name)
                    .push_bind(s.name_folded.as_str())
                    .push_bind(s.path)
                    .push_bind(s.description)
                    .push_bind(s.permissions.as_str())
                    .push_bind(s.principals.as_str())
                    .push_bind(s.caching)
                    .push_bind(s.access_based_enumeration)
                    .push_bind(s.continuous_availability)
                    .push_bind(s.encrypt_data)
                    .push_bind(s.user_limit);
            });
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(self.reader())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// One server owns a SQLite database: there is nobody to tell.
    async fn announce(&self, _change: Change) -> Result<()> {
        Ok(())
    }

    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<Change>>> {
        Ok(None)
    }

    async fn event_feed(&self) -> Result<tokio::sync::watch::Receiver<u64>> {
        Ok(self.events.subscribe())
    }

    /// One server owns a SQLite database: every period is its own.
    async fn claim_period(
        &self,
        _duty: &str,
        _holder: &str,
        _hold: std::time::Duration,
    ) -> Result<bool> {
        Ok(true)
    }
}

impl_inventory_store!(
    SqliteStore,
    Sqlite,
    // The single writer connection already serializes writing transactions.
    cluster_lock = "",
    principal = (
        "EXISTS (SELECT 1 FROM json_each(s.principals) p WHERE p.value = ",
        ")"
    ),
);
impl_token_store!(SqliteStore, Sqlite);
impl_agent_store!(SqliteStore, Sqlite);
// The one writer connection already serialises the writes.
impl_job_store!(SqliteStore, Sqlite, event_lock = None);
impl_discovery_store!(SqliteStore, Sqlite);
impl_validation_store!(SqliteStore);
impl_webhook_store!(SqliteStore);
impl_audit_store!(SqliteStore, Sqlite);
impl_idempotency_store!(SqliteStore);
// The one writer connection already serialises compactions.
impl_perf_store!(SqliteStore, Sqlite, compact_lock = None);
