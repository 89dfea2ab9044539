//! Persistence: one [`Store`] trait, implemented for SQLite (embedded default, one writer) and
//! Postgres (several server replicas). Both run the same conformance suite (`tests/store.rs`).
//!
//! Every method is one transaction: it either fully happens or leaves nothing behind. Errors are
//! already [`crate::error::Error`]s with user-facing messages; database text only reaches the log.

mod common;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Result;
use crate::model::{
    AuditOutcome, AuditRecord, Cluster, ClusterPatch, GroupSummary, InventoryCounts,
    InventoryDocument, NewAudit, NewCluster, Resource, Share, SnapshotInfo, TokenInfo,
};

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A canonical inventory ready to become a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct InventoryImport<'a> {
    pub cluster_id: Uuid,
    /// Canonical (sorted, validated) document.
    pub document: &'a InventoryDocument,
    /// Its canonical JSON text, stored as the snapshot body.
    pub document_json: &'a str,
    pub content_hash: &'a str,
    pub counts: InventoryCounts,
    pub created_by: &'a str,
    /// When set, the import only happens if the newest snapshot has this content hash
    /// (`If-Match`); otherwise `PreconditionFailed`.
    pub expected_hash: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    pub snapshot: SnapshotInfo,
    /// False when the content equals the newest snapshot and that one is returned.
    pub created: bool,
}

/// Which shares to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareFilter {
    /// Case-insensitive prefix of the share name.
    pub name_prefix: Option<String>,
    /// Shares with a permission entry for this principal (case-insensitive, exact).
    pub principal: Option<String>,
}

/// How to look a group up: by id, or by name optionally qualified by its cluster's name.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupKey {
    Id(Uuid),
    Name {
        cluster: Option<String>,
        group: String,
    },
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<AuditOutcome>,
}

/// A token as stored: its info plus the SHA-256 hex of the secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    pub info: TokenInfo,
    pub secret_hash: String,
}

/// Result of claiming an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// First use of the key: run the request, then complete or release the claim.
    Claimed,
    /// Another request with this key has claimed it and not finished.
    InProgress,
    /// The request ran before; replay its answer if `request_hash` matches.
    Completed {
        request_hash: String,
        status: u16,
        body: String,
    },
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Cheap round trip for `/readyz`.
    async fn ping(&self) -> Result<()>;

    // ---- clusters -------------------------------------------------------------------------

    /// `Conflict` when the name is taken.
    async fn create_cluster(&self, new: &NewCluster) -> Result<Cluster>;
    /// By id (a UUID) or by unique name. `NotFound` otherwise.
    async fn get_cluster(&self, id_or_name: &str) -> Result<Cluster>;
    /// Ordered by name (byte order); names strictly after `after`; at most `limit` rows.
    async fn list_clusters(&self, limit: u32, after: Option<&str>) -> Result<Vec<Cluster>>;
    /// Applies the set fields and bumps `version`. With `expected_version`, fails with
    /// `PreconditionFailed` unless the stored version equals it. `Conflict` on a taken name.
    async fn update_cluster(
        &self,
        id: Uuid,
        patch: &ClusterPatch,
        expected_version: Option<i64>,
    ) -> Result<Cluster>;
    /// Deletes the cluster with its snapshots and current inventory.
    async fn delete_cluster(&self, id: Uuid, expected_version: Option<i64>) -> Result<()>;

    // ---- inventory ------------------------------------------------------------------------

    /// Stores a new numbered snapshot and makes it the cluster's current inventory (groups keep
    /// their ids across imports by name), unless its content hash equals the newest snapshot's.
    async fn import_inventory(&self, import: InventoryImport<'_>) -> Result<ImportOutcome>;
    /// Ordered by number ascending, numbers strictly after `after`.
    async fn list_snapshots(
        &self,
        cluster_id: Uuid,
        limit: u32,
        after: Option<i64>,
    ) -> Result<Vec<SnapshotInfo>>;
    /// Snapshot info and its canonical JSON document.
    async fn get_snapshot(&self, cluster_id: Uuid, number: i64) -> Result<(SnapshotInfo, String)>;
    /// Current groups of a cluster, ordered by name, names strictly after `after`.
    async fn list_groups(
        &self,
        cluster_id: Uuid,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<GroupSummary>>;
    /// Groups matching the key (at most 2 are returned, enough to tell ambiguity).
    async fn find_groups(&self, key: &GroupKey) -> Result<Vec<GroupSummary>>;
    /// Resources of a group ordered by name, with their dependencies.
    async fn group_resources(&self, group_id: Uuid) -> Result<Vec<Resource>>;
    /// Shares of a group ordered by name (byte order), names strictly after `after`.
    async fn list_shares(
        &self,
        group_id: Uuid,
        filter: &ShareFilter,
        limit: u32,
        after: Option<&str>,
    ) -> Result<Vec<Share>>;

    // ---- tokens ---------------------------------------------------------------------------

    /// `Conflict` when the name is taken.
    async fn insert_token(&self, token: &TokenRecord) -> Result<()>;
    /// Makes sure a non-revoked, non-expiring admin token with this hash exists.
    async fn ensure_bootstrap_token(&self, token: &TokenRecord) -> Result<()>;
    /// The token with this secret hash, whatever its state (the caller checks expiry/revocation).
    async fn token_by_hash(&self, secret_hash: &str) -> Result<Option<TokenInfo>>;
    /// Ordered by id (creation order), ids strictly after `after`.
    async fn list_tokens(&self, limit: u32, after: Option<Uuid>) -> Result<Vec<TokenInfo>>;
    /// Sets `revoked_at` (kept if already revoked). `NotFound` for an unknown id.
    async fn revoke_token(&self, id: Uuid, at: DateTime<Utc>) -> Result<TokenInfo>;

    // ---- audit ----------------------------------------------------------------------------

    async fn append_audit(&self, record: &NewAudit) -> Result<()>;
    /// Newest first; ids strictly below `before`.
    async fn list_audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
        before: Option<i64>,
    ) -> Result<Vec<AuditRecord>>;

    // ---- idempotency ----------------------------------------------------------------------

    /// Claims `key` within `scope` (the caller's token and the route). Records older than 24 h
    /// are forgotten.
    async fn idempotency_claim(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
    ) -> Result<IdempotencyClaim>;
    async fn idempotency_complete(
        &self,
        scope: &str,
        key: &str,
        status: u16,
        body: &str,
    ) -> Result<()>;
    /// Drops a claim whose request failed, so the key can be used again.
    async fn idempotency_release(&self, scope: &str, key: &str) -> Result<()>;
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
