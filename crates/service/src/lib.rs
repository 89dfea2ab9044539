//! The service layer: every operation REST and gRPC offer, once. It authenticates, checks the
//! caller's role, validates input, calls the store, and writes the audit record of every mutating
//! call. Transports only translate requests and answers.
//!
//! The service knows no transport. The agents connected to this server are reached through
//! [`AgentLinks`], which the transport holding their streams implements; its errors are domain
//! [`Error`]s that each transport maps to its own statuses.
//!
//! The agent half (join tokens, enrollment, agents, tasks, and what an agent's session asks of the
//! store) is in `agents.rs`; the scheduler that moves jobs in `scheduler.rs`.

mod agents;
pub mod auth;
mod discoveries;
mod imports;
mod jobs;
mod links;
pub mod perf;
pub mod periodic;
pub mod scheduler;
mod validations;
mod webhooks;

pub use agents::{AGENT_SECRET_PREFIX, JOIN_TOKEN_PREFIX, ResultVerdict};
pub use discoveries::{DISCOVERY_ACTOR, start_schedule as start_discovery_schedule};
pub use ferry_store::Change;
pub use imports::{Imported, SOURCE_DRIFT};

use imports::Precondition;
pub use jobs::{EventFollower, JobVerb};
pub use links::{AgentLinks, Disconnect, NoAgentLinks};

use std::future::Future;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use serde::{Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::auth::Caller;
use ferry_core::error::{Error, ErrorCode, Result};
use ferry_core::model::diff::{SnapshotDiff, diff_inventories};
use ferry_core::model::{AgentTiming, AuditFilter, PageParams, ShareFilter};
use ferry_core::model::{
    AuditOutcome, AuditRecord, Cluster, ClusterPatch, CreatedJoinToken, CreatedToken, FieldError,
    GroupDetail, GroupSummary, InventoryDocument, MAX_TEXT_LEN, NewAudit, NewCluster, NewToken,
    Page, Role, Share, Snapshot, SnapshotInfo, Task, TokenInfo, check_discovery_interval,
    check_name, check_text,
};
use ferry_core::perf::PerfSettings;
use ferry_store::{GroupKey, IdempotencyClaim, ImportOutcome, Store, TokenRecord};

use crate::links::Presence;

/// Default page size of every list.
pub const DEFAULT_PAGE_LIMIT: u32 = 100;
/// Largest page size of every list.
pub const MAX_PAGE_LIMIT: u32 = 1000;
/// Longest `Idempotency-Key` accepted.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// An answer that can be stored for an `Idempotency-Key` replay.
pub trait Replayable: Serialize + DeserializeOwned {
    /// What may be kept in the store and replayed: secrets are dropped.
    fn for_replay(&self) -> Self;
}

impl Replayable for Cluster {
    fn for_replay(&self) -> Self {
        self.clone()
    }
}

impl Replayable for CreatedToken {
    fn for_replay(&self) -> Self {
        CreatedToken {
            info: self.info.clone(),
            token: None,
        }
    }
}

impl Replayable for CreatedJoinToken {
    fn for_replay(&self) -> Self {
        CreatedJoinToken {
            info: self.info.clone(),
            token: None,
        }
    }
}

impl Replayable for ferry_core::model::JobDetail {
    fn for_replay(&self) -> Self {
        self.clone()
    }
}

impl Replayable for Task {
    fn for_replay(&self) -> Self {
        self.clone()
    }
}

/// How long `/readyz` waits for the database: a load balancer asks often, and a replica cut off
/// from its database must turn unready in seconds, not when TCP gives up.
pub const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    /// The agents connected to this server: operations that change an agent or its tasks reach a
    /// connected agent through them.
    links: Arc<dyn AgentLinks>,
    /// Agents heard from since `last_seen_at` was last written.
    presence: Arc<Presence>,
    timing: AgentTiming,
    /// The hop table routes are planned with: the built-in rows and the operator's overrides.
    hops: Arc<ferry_core::plan::HopTable>,
    /// Wakes this server's scheduler: a job changed, or a task finished.
    scheduler_wake: Arc<tokio::sync::Notify>,
    scheduler_totals: Arc<crate::scheduler::SchedulerTotals>,
    scheduler_lease_here: Arc<crate::scheduler::LeaseHere>,
    perf: PerfSettings,
    /// One compaction at a time in this process: queries that find batches waiting queue here
    /// instead of each holding a database connection while the store's lock makes them wait.
    perf_compacting: Arc<tokio::sync::Mutex<()>>,
    compaction_totals: Arc<crate::perf::CompactionTotals>,
    /// Which periods of timed work this replica claimed (see [`periodic`]).
    periods: Arc<periodic::Periods>,
}

impl Service {
    /// A service with the default settings that no agent connects to (tools and tests that never
    /// serve agents); [`Service::with_agent_links`] gives it the transport's.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            links: Arc::new(NoAgentLinks),
            presence: Arc::default(),
            timing: AgentTiming::default(),
            hops: Arc::new(ferry_core::plan::HopTable::builtin()),
            scheduler_wake: Arc::new(tokio::sync::Notify::new()),
            scheduler_totals: Arc::default(),
            scheduler_lease_here: Arc::default(),
            perf: PerfSettings::default(),
            perf_compacting: Arc::default(),
            compaction_totals: Arc::default(),
            periods: Arc::default(),
        }
    }

    /// Reaches connected agents through `links`.
    pub fn with_agent_links(mut self, links: Arc<dyn AgentLinks>) -> Self {
        self.links = links;
        self
    }

    /// Times heartbeats, leases and silence as `timing` says instead of the defaults.
    pub fn with_agent_timing(mut self, timing: AgentTiming) -> Self {
        self.timing = timing;
        self
    }

    /// Keeps perf data as `settings` say instead of the defaults.
    pub fn with_perf_settings(mut self, settings: PerfSettings) -> Self {
        self.perf = settings;
        self
    }

    /// Plans routes with `hops` instead of the built-in table.
    pub fn with_hop_table(mut self, hops: ferry_core::plan::HopTable) -> Self {
        self.hops = Arc::new(hops);
        self
    }

    /// What this server's scheduler has done so far.
    pub fn scheduler_totals(&self) -> &Arc<crate::scheduler::SchedulerTotals> {
        &self.scheduler_totals
    }

    /// Whether this server's scheduler holds the lease, and until when.
    pub fn scheduler_lease_here(&self) -> &Arc<crate::scheduler::LeaseHere> {
        &self.scheduler_lease_here
    }

    /// What this server's perf compactions have done so far.
    pub fn compaction_totals(&self) -> &Arc<crate::perf::CompactionTotals> {
        &self.compaction_totals
    }

    /// What the scheduler waits on between passes.
    pub fn scheduler_wake(&self) -> &Arc<tokio::sync::Notify> {
        &self.scheduler_wake
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Timing of the agent protocol on this server.
    pub fn agent_timing(&self) -> AgentTiming {
        self.timing
    }

    /// Number of agent sessions on this server.
    pub fn connected_agents(&self) -> usize {
        self.links.session_count()
    }

    /// Whether the database answers, within [`READY_TIMEOUT`]: what `/readyz` asks. A database
    /// that cannot be reached, or does not answer in time, is `Unavailable`.
    pub async fn ping(&self) -> Result<()> {
        match tokio::time::timeout(READY_TIMEOUT, self.store.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::unavailable(format!(
                "the database does not answer: {}",
                e.message
            ))),
            Err(_) => Err(Error::unavailable(format!(
                "the database did not answer within {} s",
                READY_TIMEOUT.as_secs()
            ))),
        }
    }

    /// The announcements of every replica sharing the database (see [`Change`]); on a store
    /// with no other replicas, a feed that never yields.
    pub async fn changes(&self) -> Result<Changes> {
        Ok(Changes(self.store.subscribe().await?))
    }

    // ---- authentication and audit -----------------------------------------------------------

    /// Resolves a bearer secret to a caller, or says why it cannot be used.
    pub async fn authenticate(
        &self,
        secret: Option<&str>,
        source: Option<String>,
    ) -> Result<Caller> {
        let Some(secret) = secret else {
            return Err(Error::unauthenticated(
                "missing bearer token: send `Authorization: Bearer <token>` (create one with `ferry token create`)",
            ));
        };
        let Some(token) = self.store.token_by_hash(&auth::hash_secret(secret)).await? else {
            return Err(Error::unauthenticated("unknown bearer token"));
        };
        if let Some(problem) = auth::token_problem(&token, Utc::now()) {
            return Err(Error::unauthenticated(problem));
        }
        Ok(Caller::new(&token, source))
    }

    fn require(caller: &Caller, role: Role) -> Result<()> {
        if caller.role >= role {
            Ok(())
        } else {
            Err(Error::permission_denied(format!(
                "this call needs the {role} role; token `{}` has {}",
                caller.name, caller.role
            )))
        }
    }

    /// Runs a mutating operation under a role check and records its outcome in the audit log.
    async fn audited<T>(
        &self,
        caller: &Caller,
        role: Role,
        action: &str,
        target: String,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = match Self::require(caller, role) {
            Ok(()) => op.await,
            Err(e) => Err(e),
        };
        self.audit(&caller.name, caller.source.clone(), action, target, &result)
            .await;
        result
    }

    /// Appends the audit record of a finished operation.
    async fn audit<T>(
        &self,
        actor: &str,
        source: Option<String>,
        action: &str,
        target: String,
        result: &Result<T>,
    ) {
        let (outcome, detail) = match result {
            Ok(_) => (AuditOutcome::Success, None),
            Err(e) if e.code == ErrorCode::PermissionDenied => {
                (AuditOutcome::Denied, Some(e.message.clone()))
            }
            Err(e) => (AuditOutcome::Failure, Some(e.code.title().to_string())),
        };
        let record = NewAudit {
            actor: actor.to_string(),
            action: action.to_string(),
            target,
            source,
            outcome,
            detail,
        };
        if let Err(e) = self.store.append_audit(&record).await {
            // The operation already happened; failing it now would invite a retry of it.
            tracing::error!(error = %e, action, "could not write audit record");
        }
    }

    /// Runs `op` at most once per `Idempotency-Key`: a retry with the same key and body gets the
    /// first answer back (flag `true`), a retry with a different body is refused.
    pub async fn idempotent<T: Replayable>(
        &self,
        caller: &Caller,
        route: &str,
        key: Option<&str>,
        request: &impl Serialize,
        op: impl Future<Output = Result<T>>,
    ) -> Result<(T, bool)> {
        let Some(key) = key else {
            return op.await.map(|v| (v, false));
        };
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY_LEN
            || key.chars().any(char::is_control)
        {
            return Err(Error::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} printable characters"
            )));
        }
        let scope = format!("{}:{route}", caller.token_id);
        let request_hash = hex::encode(Sha256::digest(
            serde_json::to_vec(request).map_err(Error::internal)?,
        ));
        match self
            .store
            .idempotency_claim(&scope, key, &request_hash)
            .await?
        {
            IdempotencyClaim::InProgress => Err(Error::new(
                ErrorCode::IdempotencyInProgress,
                "a request with this Idempotency-Key is still being processed; retry shortly",
            )),
            IdempotencyClaim::Completed {
                request_hash: first,
                body,
                ..
            } => {
                if first != request_hash {
                    return Err(Error::invalid_field(
                        "Idempotency-Key",
                        "was already used with a different request body; use a new key",
                    ));
                }
                let value = serde_json::from_str(&body).map_err(Error::internal)?;
                Ok((value, true))
            }
            IdempotencyClaim::Claimed => match op.await {
                Ok(value) => {
                    let body =
                        serde_json::to_string(&value.for_replay()).map_err(Error::internal)?;
                    self.store
                        .idempotency_complete(&scope, key, 201, &body)
                        .await?;
                    Ok((value, false))
                }
                Err(e) => {
                    // A failed request may be corrected and retried with the same key.
                    if let Err(release) = self.store.idempotency_release(&scope, key).await {
                        tracing::warn!(error = %release, "could not release idempotency claim");
                    }
                    Err(e)
                }
            },
        }
    }

    // ---- clusters ---------------------------------------------------------------------------

    pub async fn list_clusters(&self, caller: &Caller, page: &PageParams) -> Result<Page<Cluster>> {
        Self::require(caller, Role::Viewer)?;
        let (limit, after) = page_window(page)?;
        let rows = self
            .store
            .list_clusters(limit + 1, after.as_deref())
            .await?;
        Ok(paginate(rows, limit, |c| c.name.clone()))
    }

    pub async fn get_cluster(&self, caller: &Caller, key: &str) -> Result<Cluster> {
        Self::require(caller, Role::Viewer)?;
        self.store.get_cluster(key).await
    }

    pub async fn create_cluster(&self, caller: &Caller, new: &NewCluster) -> Result<Cluster> {
        self.audited(
            caller,
            Role::Operator,
            "cluster.create",
            format!("cluster:{}", new.name),
            async {
                let mut errors = Vec::new();
                check_name(&mut errors, "name", &new.name);
                check_text(&mut errors, "description", &new.description, MAX_TEXT_LEN);
                check_discovery_interval(
                    &mut errors,
                    "discovery_interval_seconds",
                    new.discovery_interval_seconds,
                );
                if !errors.is_empty() {
                    return Err(Error::validation(errors));
                }
                self.store.create_cluster(new).await
            },
        )
        .await
    }

    pub async fn update_cluster(
        &self,
        caller: &Caller,
        key: &str,
        patch: &ClusterPatch,
        if_match: Option<&str>,
    ) -> Result<Cluster> {
        self.audited(
            caller,
            Role::Operator,
            "cluster.update",
            format!("cluster:{key}"),
            async {
                let mut errors = Vec::new();
                if let Some(name) = &patch.name {
                    check_name(&mut errors, "name", name);
                }
                if let Some(description) = &patch.description {
                    check_text(&mut errors, "description", description, MAX_TEXT_LEN);
                }
                if let Some(seconds) = patch.discovery_interval_seconds {
                    check_discovery_interval(&mut errors, "discovery_interval_seconds", seconds);
                }
                if !errors.is_empty() {
                    return Err(Error::validation(errors));
                }
                let cluster = self.store.get_cluster(key).await?;
                let expected = if_match
                    .map(|v| expected_version(&cluster, v))
                    .transpose()?;
                self.store.update_cluster(cluster.id, patch, expected).await
            },
        )
        .await
    }

    pub async fn delete_cluster(
        &self,
        caller: &Caller,
        key: &str,
        if_match: Option<&str>,
    ) -> Result<()> {
        self.audited(
            caller,
            Role::Operator,
            "cluster.delete",
            format!("cluster:{key}"),
            async {
                let cluster = self.store.get_cluster(key).await?;
                let expected = if_match
                    .map(|v| expected_version(&cluster, v))
                    .transpose()?;
                self.store.delete_cluster(cluster.id, expected).await
            },
        )
        .await
    }

    // ---- inventory --------------------------------------------------------------------------

    /// Imports a whole inventory document. `If-Match` here is the newest snapshot's ETag (its
    /// content hash), or `*` for "some snapshot exists".
    pub async fn import_inventory(
        &self,
        caller: &Caller,
        key: &str,
        document: InventoryDocument,
        if_match: Option<&str>,
    ) -> Result<ImportOutcome> {
        let precondition = match if_match.map(str::trim) {
            None => Precondition::None,
            Some("*") => Precondition::AnySnapshot,
            Some(tag) => Precondition::Hash(unquote_etag(tag)),
        };
        self.audited(
            caller,
            Role::Operator,
            "inventory.import",
            format!("cluster:{key}"),
            async {
                let imported = self
                    .import_document(&caller.name, key, document, precondition)
                    .await?;
                Ok(imported.outcome)
            },
        )
        .await
    }

    pub async fn list_snapshots(
        &self,
        caller: &Caller,
        key: &str,
        page: &PageParams,
    ) -> Result<Page<SnapshotInfo>> {
        Self::require(caller, Role::Viewer)?;
        let cluster = self.store.get_cluster(key).await?;
        let (limit, after) = page_window(page)?;
        let after = after
            .map(|a| a.parse::<i64>().map_err(|_| invalid_cursor()))
            .transpose()?;
        let rows = self
            .store
            .list_snapshots(cluster.id, limit + 1, after)
            .await?;
        Ok(paginate(rows, limit, |s| s.number.to_string()))
    }

    pub async fn get_snapshot(&self, caller: &Caller, key: &str, number: i64) -> Result<Snapshot> {
        Self::require(caller, Role::Viewer)?;
        let cluster = self.store.get_cluster(key).await?;
        self.load_snapshot(cluster.id, number).await
    }

    async fn load_snapshot(&self, cluster_id: Uuid, number: i64) -> Result<Snapshot> {
        let (info, json) = self.store.get_snapshot(cluster_id, number).await?;
        let inventory = serde_json::from_str(&json).map_err(Error::internal)?;
        Ok(Snapshot { info, inventory })
    }

    pub async fn diff_snapshots(
        &self,
        caller: &Caller,
        key: &str,
        from: i64,
        to: i64,
    ) -> Result<SnapshotDiff> {
        Self::require(caller, Role::Viewer)?;
        let cluster = self.store.get_cluster(key).await?;
        let a = self.load_snapshot(cluster.id, from).await?;
        let b = self.load_snapshot(cluster.id, to).await?;
        Ok(SnapshotDiff {
            cluster_id: cluster.id,
            from,
            to,
            diff: diff_inventories(&a.inventory, &b.inventory),
        })
    }

    pub async fn list_groups(
        &self,
        caller: &Caller,
        key: &str,
        page: &PageParams,
    ) -> Result<Page<GroupSummary>> {
        Self::require(caller, Role::Viewer)?;
        let cluster = self.store.get_cluster(key).await?;
        let (limit, after) = page_window(page)?;
        let rows = self
            .store
            .list_groups(cluster.id, limit + 1, after.as_deref())
            .await?;
        Ok(paginate(rows, limit, |g| g.name.clone()))
    }

    /// A group by id, by `CLUSTER/GROUP`, or by a group name that only one cluster uses.
    pub async fn resolve_group(&self, key: &str) -> Result<GroupSummary> {
        let group_key = match Uuid::parse_str(key) {
            Ok(id) => GroupKey::Id(id),
            Err(_) => match key.split_once('/') {
                Some((cluster, group)) => GroupKey::Name {
                    cluster: Some(cluster.to_string()),
                    group: group.to_string(),
                },
                None => GroupKey::Name {
                    cluster: None,
                    group: key.to_string(),
                },
            },
        };
        let mut found = self.store.find_groups(&group_key).await?;
        match found.len() {
            0 => Err(Error::not_found(format!("no group `{key}`"))),
            1 => Ok(found.remove(0)),
            _ => Err(Error::conflict(format!(
                "group name `{key}` exists in several clusters; use the group id or `CLUSTER/{key}`"
            ))),
        }
    }

    pub async fn get_group(&self, caller: &Caller, key: &str) -> Result<GroupDetail> {
        Self::require(caller, Role::Viewer)?;
        let group = self.resolve_group(key).await?;
        let resources = self.store.group_resources(group.id).await?;
        Ok(GroupDetail { group, resources })
    }

    pub async fn list_shares(
        &self,
        caller: &Caller,
        key: &str,
        filter: &ShareFilter,
        page: &PageParams,
    ) -> Result<Page<Share>> {
        Self::require(caller, Role::Viewer)?;
        let mut errors = Vec::new();
        if let Some(prefix) = &filter.name_prefix {
            check_text(
                &mut errors,
                "name_prefix",
                prefix,
                ferry_core::model::MAX_NAME_LEN,
            );
        }
        if let Some(principal) = &filter.principal {
            check_name(&mut errors, "principal", principal);
        }
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let group = self.resolve_group(key).await?;
        let (limit, after) = page_window(page)?;
        let rows = self
            .store
            .list_shares(group.id, filter, limit + 1, after.as_deref())
            .await?;
        Ok(paginate(rows, limit, |s| s.name.clone()))
    }

    // ---- audit ------------------------------------------------------------------------------

    pub async fn list_audit(
        &self,
        caller: &Caller,
        filter: &AuditFilter,
        page: &PageParams,
    ) -> Result<Page<AuditRecord>> {
        Self::require(caller, Role::Viewer)?;
        let (limit, before) = page_window(page)?;
        let before = before
            .map(|b| b.parse::<i64>().map_err(|_| invalid_cursor()))
            .transpose()?;
        let rows = self.store.list_audit(filter, limit + 1, before).await?;
        Ok(paginate(rows, limit, |r| r.id.to_string()))
    }

    // ---- tokens -----------------------------------------------------------------------------

    pub async fn create_token(&self, caller: &Caller, new: &NewToken) -> Result<CreatedToken> {
        self.audited(
            caller,
            Role::Admin,
            "token.create",
            format!("token:{}", new.name),
            async {
                let mut errors = Vec::new();
                check_name(&mut errors, "name", &new.name);
                if let Some(ttl) = new.ttl_seconds
                    && !(1..=10 * 365 * 24 * 3600).contains(&ttl)
                {
                    errors.push(FieldError::new(
                        "ttl_seconds",
                        "must be between 1 and 315360000 (10 years)",
                    ));
                }
                if !errors.is_empty() {
                    return Err(Error::validation(errors));
                }
                issue_token(self.store.as_ref(), new).await
            },
        )
        .await
    }

    pub async fn list_tokens(&self, caller: &Caller, page: &PageParams) -> Result<Page<TokenInfo>> {
        Self::require(caller, Role::Admin)?;
        let (limit, after) = page_window(page)?;
        let after = after
            .map(|a| Uuid::parse_str(&a).map_err(|_| invalid_cursor()))
            .transpose()?;
        let rows = self.store.list_tokens(limit + 1, after).await?;
        Ok(paginate(rows, limit, |t| t.id.to_string()))
    }

    pub async fn revoke_token(&self, caller: &Caller, id: &str) -> Result<TokenInfo> {
        self.audited(
            caller,
            Role::Admin,
            "token.revoke",
            format!("token:{id}"),
            async {
                let id = Uuid::parse_str(id).map_err(|_| {
                    Error::not_found(format!("no token `{id}` (token ids are UUIDs)"))
                })?;
                self.store.revoke_token(id, Utc::now()).await
            },
        )
        .await
    }
}

/// Creates a token and returns its secret. Shared by the API and `ferry token create`.
pub async fn issue_token(store: &dyn Store, new: &NewToken) -> Result<CreatedToken> {
    let secret = auth::generate_secret();
    let now = Utc::now();
    let info = TokenInfo {
        id: Uuid::now_v7(),
        name: new.name.clone(),
        role: new.role,
        created_at: now,
        expires_at: new.ttl_seconds.map(|s| now + chrono::Duration::seconds(s)),
        revoked_at: None,
    };
    store
        .insert_token(&TokenRecord {
            info: info.clone(),
            secret_hash: auth::hash_secret(&secret),
        })
        .await?;
    Ok(CreatedToken {
        info,
        token: Some(secret),
    })
}

/// Makes the configured bootstrap secret a working admin token.
pub async fn ensure_bootstrap_token(store: &dyn Store, secret: &str) -> Result<()> {
    store
        .ensure_bootstrap_token(&TokenRecord {
            info: TokenInfo {
                id: Uuid::now_v7(),
                name: auth::BOOTSTRAP_TOKEN_NAME.into(),
                role: Role::Admin,
                created_at: Utc::now(),
                expires_at: None,
                revoked_at: None,
            },
            secret_hash: auth::hash_secret(secret),
        })
        .await
}

/// What other replicas announce, in the order they announced it.
pub struct Changes(Option<tokio::sync::mpsc::Receiver<Change>>);

impl Changes {
    /// The next announcement; pends forever where there are none, so it can sit in a `select!`
    /// beside a timer.
    pub async fn next(&mut self) -> Option<Change> {
        ferry_store::next_change(&mut self.0).await
    }
}

pub(crate) fn invalid_cursor() -> Error {
    Error::bad_request("invalid cursor: pass back the `next` value of the previous page unchanged")
}

/// Checks the limit and decodes the cursor into the store's exclusive bound.
fn page_window(page: &PageParams) -> Result<(u32, Option<String>)> {
    let limit = page.limit.unwrap_or(DEFAULT_PAGE_LIMIT);
    if !(1..=MAX_PAGE_LIMIT).contains(&limit) {
        return Err(Error::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_PAGE_LIMIT}"),
        ));
    }
    let after = match &page.cursor {
        None => None,
        Some(c) => {
            let bytes = URL_SAFE_NO_PAD.decode(c).map_err(|_| invalid_cursor())?;
            Some(String::from_utf8(bytes).map_err(|_| invalid_cursor())?)
        }
    };
    Ok((limit, after))
}

/// Cuts the `limit + 1` rows the store returned into a page and the next cursor.
fn paginate<T>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Page<T> {
    let next = if rows.len() > limit as usize {
        rows.truncate(limit as usize);
        rows.last().map(|last| URL_SAFE_NO_PAD.encode(key(last)))
    } else {
        None
    };
    Page { items: rows, next }
}

fn unquote_etag(tag: &str) -> &str {
    let tag = tag.trim();
    let tag = tag.strip_prefix("W/").unwrap_or(tag);
    tag.trim_matches('"')
}

/// The version an `If-Match` value asks for. `*` matches whatever exists; a value that is not
/// one of our ETags can never match.
fn expected_version(cluster: &Cluster, if_match: &str) -> Result<i64> {
    if if_match.trim() == "*" {
        return Ok(cluster.version);
    }
    let stale = || {
        Error::precondition_failed(format!(
            "If-Match {if_match} does not match the current ETag {}; fetch the cluster again",
            cluster.etag()
        ))
    };
    let version = unquote_etag(if_match)
        .strip_prefix('v')
        .and_then(|v| v.parse::<i64>().ok())
        .ok_or_else(stale)?;
    if version != cluster.version {
        return Err(stale());
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_carry_a_cursor_only_when_more_rows_exist() {
        let page = paginate(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page.items, vec![1, 2]);
        let (_, after) = page_window(&PageParams {
            limit: None,
            cursor: page.next,
        })
        .unwrap();
        assert_eq!(after.as_deref(), Some("2"));
        assert_eq!(paginate(vec![1, 2], 2, |n| n.to_string()).next, None);
    }

    #[test]
    fn limits_and_cursors_are_checked() {
        for limit in [0, MAX_PAGE_LIMIT + 1] {
            let err = page_window(&PageParams {
                limit: Some(limit),
                cursor: None,
            })
            .unwrap_err();
            assert_eq!(err.code, ErrorCode::Validation);
            assert_eq!(err.fields[0].field, "limit");
        }
        let err = page_window(&PageParams {
            limit: None,
            cursor: Some("***".into()),
        })
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
    }

    #[test]
    fn if_match_compares_versions() {
        let now = Utc::now();
        let cluster = Cluster {
            id: Uuid::now_v7(),
            name: "c".into(),
            os: ferry_core::model::OsGeneration::Ws2003,
            description: String::new(),
            discovery_interval_seconds: None,
            version: 3,
            latest_snapshot: None,
            created_at: now,
            updated_at: now,
        };
        assert_eq!(expected_version(&cluster, "\"v3\"").unwrap(), 3);
        assert_eq!(expected_version(&cluster, "W/\"v3\"").unwrap(), 3);
        assert_eq!(expected_version(&cluster, "*").unwrap(), 3);
        for stale in ["\"v2\"", "\"abc\"", "v"] {
            assert_eq!(
                expected_version(&cluster, stale).unwrap_err().code,
                ErrorCode::PreconditionFailed
            );
        }
    }
}
