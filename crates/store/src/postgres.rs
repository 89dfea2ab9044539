//! The shared store: Postgres, for several server replicas over one database.
//!
//! Writers that could race across replicas lock the cluster row (`FOR UPDATE`) first, so
//! snapshot numbering and version checks are serialized per cluster.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions};
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
use crate::{Backend, Change, Store, channels};
use ferry_core::error::Result;

const CONNECTIONS: u32 = 10;

/// How long Postgres lets a session sit in an open transaction without a statement before it
/// ends the session: far longer than any transaction of Ferry's waits between statements.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "30s";

/// The `LISTEN`/`NOTIFY` channel replicas wake each other on; the payload is a [`Change`].
const CHANGES_CHANNEL: &str = "ferry_changes";

/// How often a quiet listener checks that its connection still answers, and how long it waits:
/// a listener that cannot tell stops trusting the caches within their sum.
const LISTENER_PROBE_EVERY: Duration = Duration::from_secs(5);
const LISTENER_PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Shares per `INSERT ... SELECT FROM UNNEST`, to bound the size of one message.
const UNNEST_CHUNK: usize = 20_000;

pub struct PostgresStore {
    pool: PgPool,
    events: Arc<EventSignal>,
    tokens: Arc<TokenCache>,
    clusters: Arc<ClusterListCache>,
    /// Dropped with the store, which ends its listener.
    _listening: tokio::sync::watch::Sender<()>,
}

impl PostgresStore {
    /// The protocol counts parameters in an i16 slot; the server accepts fewer than 65,535.
    const MAX_BINDS: usize = 65534;

    /// Connects and applies the migrations (sqlx serializes concurrent migrators with an
    /// advisory lock, so replicas may start together).
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        // A replica cut off from the database in the middle of a transaction would otherwise
        // hold its locks (the job events' sequence lock among them) until TCP gives up, which
        // can be never while the connection looks open: every other replica would wait.
        let options = PgConnectOptions::from_str(url)?.options([(
            "idle_in_transaction_session_timeout",
            IDLE_IN_TRANSACTION_TIMEOUT,
        )]);
        let pool = PgPoolOptions::new()
            .max_connections(CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await?;
        let events = Arc::new(EventSignal::new());
        let tokens = Arc::new(TokenCache::new(false, CACHED_TOKENS));
        let clusters = Arc::new(ClusterListCache::new(false, CACHED_CLUSTER_PAGES));
        let (listening, dropped) = tokio::sync::watch::channel(());
        tokio::spawn(listen_for_commits(
            pool.clone(),
            events.clone(),
            Caches {
                tokens: tokens.clone(),
                clusters: clusters.clone(),
            },
            dropped,
        ));
        Ok(Self {
            pool,
            events,
            tokens,
            clusters,
            _listening: listening,
        })
    }

    /// Notifies `channel` from inside the transaction on `conn`: Postgres delivers it when the
    /// transaction commits, and only then, to every replica's listener (this one's included).
    async fn notify_at_commit(conn: &mut PgConnection, channel: &str) -> sqlx::Result<()> {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(channel)
            .execute(conn)
            .await?;
        Ok(())
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    fn writer(&self) -> &PgPool {
        &self.pool
    }

    /// One small prepared statement taking a column of arrays, rather than the shared multi-row
    /// `VALUES`: measured equally fast for 100k shares (about 1 s of a 2 s import, half of it
    /// foreign-key checks), without caching a 65k-parameter statement on every connection.
    async fn insert_shares(conn: &mut PgConnection, rows: &[ShareInsert<'_>]) -> sqlx::Result<()> {
        for chunk in rows.chunks(UNNEST_CHUNK) {
            sqlx::query(
                "INSERT INTO shares (group_id, name, name_folded, path, description, permissions, \
                 principals, caching, access_based_enumeration, continuous_availability, \
                 encrypt_data, user_limit) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[], $8::text[], $9::bool[], $10::bool[], $11::bool[], \
                 $12::int8[])",
            )
            .bind(chunk.iter().map(|s| s.group_id).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.name).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|s| s.name_folded.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|s| s.path).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.description).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|s| s.permissions.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|s| s.principals.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|s| s.caching).collect::<Vec<_>>())
            .bind(
                chunk
                    .iter()
                    .map(|s| s.access_based_enumeration)
                    .collect::<Vec<_>>(),
            )
            .bind(
                chunk
                    .iter()
                    .map(|s| s.continuous_availability)
                    .collect::<Vec<_>>(),
            )
            .bind(chunk.iter().map(|s| s.encrypt_data).collect::<Vec<_>>())
            .bind(chunk.iter().map(|s| s.user_limit).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(self.reader())
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn announce(&self, change: Change) -> Result<()> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANGES_CHANNEL)
            .bind(change.as_str())
            .execute(&self.pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// A dedicated connection listening for announcements. `PgListener` reconnects by itself
    /// after a lost connection; what was announced meanwhile is lost, which the sweeps that
    /// listen here tolerate by also running on a timer.
    async fn subscribe(&self) -> Result<Option<mpsc::Receiver<Change>>> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(db_error)?;
        listener.listen(CHANGES_CHANNEL).await.map_err(db_error)?;
        // A wake-up signal: when the reader is behind, one queued change is as good as many.
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                // Ends with its subscriber, so a stopped server returns the connection.
                let received = tokio::select! {
                    _ = tx.closed() => break,
                    received = listener.recv() => received,
                };
                match received {
                    Ok(notification) => match Change::parse(notification.payload()) {
                        Some(change) => match tx.try_send(change) {
                            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                            Err(mpsc::error::TrySendError::Closed(_)) => break,
                        },
                        None => tracing::debug!(
                            payload = notification.payload(),
                            "ignoring an unknown announcement"
                        ),
                    },
                    Err(e) => {
                        if tx.is_closed() {
                            break;
                        }
                        tracing::warn!(error = %e, "lost the announcement listener; reconnecting");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Some(rx))
    }

    async fn event_feed(&self) -> Result<tokio::sync::watch::Receiver<u64>> {
        Ok(self.events.subscribe())
    }

    async fn claim_period(
        &self,
        duty: &str,
        holder: &str,
        hold: std::time::Duration,
    ) -> Result<bool> {
        let claimed = sqlx::query(
            "INSERT INTO periods (duty, holder, next_at) \
             VALUES ($1, $2, now() + $3::bigint * interval '1 microsecond') \
             ON CONFLICT (duty) DO UPDATE SET holder = excluded.holder, next_at = excluded.next_at \
             WHERE periods.next_at <= now()",
        )
        .bind(duty)
        .bind(holder)
        // A day bounds it, well inside what an interval holds.
        .bind(i64::try_from(hold.min(Duration::from_secs(86_400)).as_micros()).unwrap_or(0))
        .execute(&self.pool)
        .await
        .map_err(db_error)?
        .rows_affected();
        Ok(claimed > 0)
    }
}

/// The caches a store's listener empties on other replicas' commits.
struct Caches {
    tokens: Arc<TokenCache>,
    clusters: Arc<ClusterListCache>,
}

impl Caches {
    fn set_trusted(&self, trusted: bool) {
        self.tokens.set_trusted(trusted);
        self.clusters.set_trusted(trusted);
    }
}

/// Follows other replicas' commits for as long as the store lives: a notification on
/// [`channels::EVENTS`] moves the event feed, one on [`channels::TOKENS`] or [`channels::CLUSTERS`]
/// empties that cache. The caches are trusted only while listening; after a lost connection the
/// feed moves once, since what committed meanwhile was not heard.
async fn listen_for_commits(
    pool: PgPool,
    events: Arc<EventSignal>,
    caches: Caches,
    mut dropped: tokio::sync::watch::Receiver<()>,
) {
    let mut listener: Option<PgListener> = None;
    loop {
        let Some(active) = listener.as_mut() else {
            let connected = async {
                let mut fresh = PgListener::connect_with(&pool).await?;
                // Reconnection is done here, where the caches' trust follows it.
                fresh.ignore_pool_close_event(true);
                fresh
                    .listen_all([channels::EVENTS, channels::TOKENS, channels::CLUSTERS])
                    .await?;
                sqlx::Result::<PgListener>::Ok(fresh)
            };
            let connected: sqlx::Result<PgListener> = tokio::select! {
                _ = dropped.changed() => return,
                connected = connected => connected,
            };
            match connected {
                Ok(fresh) => {
                    listener = Some(fresh);
                    caches.set_trusted(true);
                    events.moved();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for other replicas' commits; retrying");
                    tokio::select! {
                        _ = dropped.changed() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    }
                }
            }
            continue;
        };
        let received = tokio::select! {
            _ = dropped.changed() => return,
            received = active.try_recv() => received,
            // A connection can die without a word (a database host gone without a reset):
            // nothing would arrive, and the caches would be trusted without hearing anything.
            _ = tokio::time::sleep(LISTENER_PROBE_EVERY) => {
                let probe = sqlx::query("SELECT 1").execute(&mut *active);
                match tokio::time::timeout(LISTENER_PROBE_TIMEOUT, probe).await {
                    Ok(Ok(_)) => continue,
                    _ => Ok(None),
                }
            }
        };
        match received {
            Ok(Some(notification)) => match notification.channel() {
                channels::TOKENS => caches.tokens.forget(),
                channels::CLUSTERS => caches.clusters.forget(),
                _ => events.moved(),
            },
            Ok(None) | Err(_) => {
                tracing::warn!(
                    "lost the connection listening for other replicas' commits; reconnecting"
                );
                caches.set_trusted(false);
                listener = None;
                events.moved();
            }
        }
    }
}

impl_inventory_store!(
    PostgresStore,
    Postgres,
    cluster_lock = "FOR UPDATE OF c",
    principal = ("s.principals::jsonb @> jsonb_build_array(", "::text)"),
);
impl_token_store!(PostgresStore, Postgres);
impl_agent_store!(PostgresStore, Postgres);
impl_job_store!(
    PostgresStore,
    Postgres,
    event_lock = Some("SELECT pg_advisory_xact_lock(7262000001), pg_notify($1, '')"),
);
impl_discovery_store!(PostgresStore, Postgres);
impl_validation_store!(PostgresStore);
impl_webhook_store!(PostgresStore);
impl_audit_store!(PostgresStore, Postgres);
impl_idempotency_store!(PostgresStore);

// Replicas compact one at a time; a second waits, then finds the rows merged.
impl_perf_store!(
    PostgresStore,
    Postgres,
    compact_lock = Some("SELECT pg_advisory_xact_lock(7262000002)")
);
