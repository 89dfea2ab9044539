//! Clusters and their inventory: the cluster records, the numbered snapshots of imported
//! documents, and the current groups, resources and shares the newest import leaves.
//! [`InventoryStore`] is part of every [`Store`](crate::Store); [`impl_inventory_store!`] expands
//! it for each backend.
//!
//! An import rewrites only the groups whose content changed (see [`GroupPlan`]), so re-importing
//! a large, slightly changed inventory is cheap; the shares of the changed groups go through the
//! backend's own `insert_shares`, the one hot bulk path.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::to_json;
use crate::rows::caching_str;
use ferry_core::error::{Error, Result};
use ferry_core::model::{
    Cluster, ClusterPatch, Group, GroupSummary, InventoryCounts, InventoryDocument, NewCluster,
    NewJobEvent, Resource, Share, ShareFilter, SnapshotInfo,
};

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
    /// The event announcing what changed, recorded in the import's transaction when the import
    /// creates a snapshot right after the one the change was computed against.
    pub change: Option<ChangeEvent<'a>>,
}

/// An event describing a new snapshot's difference from snapshot `against`.
#[derive(Debug, Clone, Copy)]
pub struct ChangeEvent<'a> {
    pub against: i64,
    pub event: &'a NewJobEvent,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportOutcome {
    pub snapshot: SnapshotInfo,
    /// False when the content equals the newest snapshot and that one is returned.
    pub created: bool,
    /// The snapshot that was the newest before this import, if any.
    pub previous: Option<i64>,
    /// Whether the import's [`ChangeEvent`] was recorded (its `against` was the newest).
    pub change_recorded: bool,
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

#[async_trait]
pub trait InventoryStore: Send + Sync {
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
}

/// Message of a failed `If-Match` on a cluster record.
pub(crate) fn check_version(cluster: &Cluster, expected: Option<i64>) -> Result<()> {
    match expected {
        Some(version) if version != cluster.version => Err(Error::precondition_failed(format!(
            "cluster `{}` has changed: its current ETag is {}",
            cluster.name,
            cluster.etag()
        ))),
        _ => Ok(()),
    }
}

// ---- import ---------------------------------------------------------------------------------

/// A group row to upsert.
pub(crate) struct GroupInsert<'a> {
    pub(crate) id: &'a str,
    pub(crate) content_hash: &'a str,
    pub(crate) name: &'a str,
    pub(crate) owner_node: Option<&'a str>,
    pub(crate) state: &'static str,
    pub(crate) resource_count: i64,
    pub(crate) share_count: i64,
}

pub(crate) struct ResourceInsert<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) kind: &'static str,
    pub(crate) state: &'static str,
    pub(crate) properties: String,
    pub(crate) depends_on: String,
}

pub(crate) struct ShareInsert<'a> {
    pub(crate) group_id: &'a str,
    pub(crate) name: &'a str,
    pub(crate) name_folded: String,
    pub(crate) path: &'a str,
    pub(crate) description: &'a str,
    pub(crate) permissions: String,
    /// JSON array of the distinct lowercased principals, for the principal filter.
    pub(crate) principals: String,
    pub(crate) caching: &'static str,
    pub(crate) access_based_enumeration: bool,
    pub(crate) continuous_availability: bool,
    pub(crate) encrypt_data: bool,
    pub(crate) user_limit: Option<i64>,
}

/// How an import changes the current groups. Groups are matched by exact name, so a group keeps
/// its id across imports; a group whose content hash is unchanged keeps its resources and shares
/// untouched, which makes re-importing a large, slightly changed inventory cheap.
pub(crate) struct GroupPlan {
    /// One per document group, in document order.
    pub(crate) ids: Vec<String>,
    pub(crate) hashes: Vec<String>,
    /// Per document group: new, or its content differs from the stored one.
    pub(crate) changed: Vec<bool>,
    /// Existing groups whose content changed: their resources and shares are replaced.
    pub(crate) stale: Vec<String>,
    /// Existing groups that are no longer in the document.
    pub(crate) removed: Vec<String>,
}

impl GroupPlan {
    /// `existing`: (name, id, content hash) of the cluster's current groups.
    pub(crate) fn new(
        document: &InventoryDocument,
        existing: Vec<(String, String, String)>,
    ) -> Self {
        let mut existing: HashMap<String, (String, String)> = existing
            .into_iter()
            .map(|(name, id, hash)| (name, (id, hash)))
            .collect();
        let mut plan = GroupPlan {
            ids: Vec::with_capacity(document.groups.len()),
            hashes: Vec::with_capacity(document.groups.len()),
            changed: Vec::with_capacity(document.groups.len()),
            stale: Vec::new(),
            removed: Vec::new(),
        };
        for group in &document.groups {
            let hash = group_hash(group);
            match existing.remove(&group.name) {
                Some((id, old)) => {
                    let changed = old != hash;
                    if changed {
                        plan.stale.push(id.clone());
                    }
                    plan.ids.push(id);
                    plan.changed.push(changed);
                }
                None => {
                    plan.ids.push(Uuid::now_v7().to_string());
                    plan.changed.push(true);
                }
            }
            plan.hashes.push(hash);
        }
        plan.removed = existing.into_values().map(|(id, _)| id).collect();
        plan
    }
}

/// SHA-256 of a group's JSON (resources and shares included).
fn group_hash(group: &Group) -> String {
    let json = serde_json::to_vec(group).expect("plain data serializes");
    hex::encode(Sha256::digest(&json))
}

/// The current-inventory rows of a document.
pub(crate) struct InventoryRows<'a> {
    pub(crate) groups: Vec<GroupInsert<'a>>,
    pub(crate) resources: Vec<ResourceInsert<'a>>,
    pub(crate) shares: Vec<ShareInsert<'a>>,
}

impl<'a> InventoryRows<'a> {
    /// Rows of the groups the plan marks as changed.
    pub(crate) fn new(document: &'a InventoryDocument, plan: &'a GroupPlan) -> Self {
        let changed = || {
            document
                .groups
                .iter()
                .zip(&plan.ids)
                .zip(&plan.hashes)
                .zip(&plan.changed)
                .filter(|(_, changed)| **changed)
                .map(|(((group, id), hash), _)| (group, id, hash))
        };
        let mut rows = InventoryRows {
            groups: Vec::new(),
            resources: Vec::new(),
            shares: Vec::with_capacity(changed().map(|(g, _, _)| g.shares.len()).sum()),
        };
        for (group, id, hash) in changed() {
            rows.groups.push(GroupInsert {
                id,
                content_hash: hash,
                name: &group.name,
                owner_node: group.owner_node.as_deref(),
                state: group.state.as_str(),
                resource_count: group.resources.len() as i64,
                share_count: group.shares.len() as i64,
            });
            rows.resources
                .extend(group.resources.iter().map(|r| ResourceInsert {
                    group_id: id,
                    name: &r.name,
                    kind: r.kind.as_str(),
                    state: r.state.as_str(),
                    properties: to_json(&r.properties),
                    depends_on: to_json(&r.depends_on),
                }));
            rows.shares.extend(group.shares.iter().map(|s| {
                let mut principals: Vec<String> = s
                    .permissions
                    .iter()
                    .map(|p| p.principal.to_lowercase())
                    .collect();
                principals.sort_unstable();
                principals.dedup();
                ShareInsert {
                    group_id: id,
                    name: &s.name,
                    name_folded: s.name.to_lowercase(),
                    path: &s.path,
                    description: &s.description,
                    permissions: to_json(&s.permissions),
                    principals: to_json(&principals),
                    caching: caching_str(s.caching),
                    access_based_enumeration: s.access_based_enumeration,
                    continuous_availability: s.continuous_availability,
                    encrypt_data: s.encrypt_data,
                    user_limit: s.user_limit,
                }
            }));
        }
        rows
    }
}

/// Whether a document repeats a group name byte for byte. Validation already rejects that; an
/// unvalidated document is reported as the caller's bug rather than as an obscure upsert error.
pub(crate) fn has_duplicate_group(document: &InventoryDocument) -> bool {
    let mut seen = HashSet::new();
    !document.groups.iter().all(|g| seen.insert(g.name.as_str()))
}

/// Expands [`InventoryStore`] for one backend, with the bulk helpers an import uses.
///
/// - `$ty`: the store; besides what every backend has (see the crate's docs) it has
///   `async fn insert_shares(&mut <$db as Database>::Connection, &[ShareInsert]) ->
///   sqlx::Result<()>`, the bulk insert that dominates a large import.
/// - `cluster_lock`: appended to the cluster `SELECT` of a writing transaction (`FOR UPDATE`
///   where several writers can race). The `lock_cluster` it defines also numbers validations
///   (see [`impl_validation_store!`](crate::validations::impl_validation_store)).
/// - `principal`: SQL around the bound lowercased principal, true when `s.principals` (a JSON
///   array of strings) contains it.
///
/// Every transaction that changes what the cluster list shows (a cluster created, changed or
/// deleted, a new snapshot) notifies the clusters channel, so other replicas sharing the
/// database empty their cached pages of it when it commits.
macro_rules! impl_inventory_store {
    (
        $ty:ty,
        $db:ty,
        cluster_lock = $lock:literal,
        principal = ($principal_open:literal, $principal_close:literal) $(,)?
    ) => {
        impl $ty {
            async fn lock_cluster(
                conn: &mut <$db as sqlx::Database>::Connection,
                id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                sqlx::query_as::<_, $crate::rows::ClusterRow>(concat!(
                    $crate::rows::select_cluster!("WHERE c.id = $1 "),
                    $lock
                ))
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err($crate::db::db_error)?
                .ok_or_else(|| ::ferry_core::error::Error::not_found(format!("no cluster `{id}`")))?
                .into_model()
            }

            async fn upsert_groups(
                conn: &mut <$db as sqlx::Database>::Connection,
                cluster_id: &str,
                rows: &[$crate::inventory::GroupInsert<'_>],
            ) -> sqlx::Result<()> {
                for chunk in rows.chunks(Self::MAX_BINDS / 8) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO groups (id, cluster_id, name, owner_node, state, \
                         resource_count, share_count, content_hash) ",
                    );
                    qb.push_values(chunk, |mut b, g| {
                        b.push_bind(g.id)
                            .push_bind(cluster_id)
                            .push_bind(g.name)
                            .push_bind(g.owner_node)
                            .push_bind(g.state)
                            .push_bind(g.resource_count)
                            .push_bind(g.share_count)
                            .push_bind(g.content_hash);
                    });
                    qb.push(
                        " ON CONFLICT (cluster_id, name) DO UPDATE SET \
                         owner_node = excluded.owner_node, state = excluded.state, \
                         resource_count = excluded.resource_count, \
                         share_count = excluded.share_count, content_hash = excluded.content_hash",
                    );
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            /// `delete` is a `DELETE ... WHERE <id column> IN (` prefix.
            async fn delete_by_ids(
                conn: &mut <$db as sqlx::Database>::Connection,
                delete: &'static str,
                ids: &[String],
            ) -> sqlx::Result<()> {
                for chunk in ids.chunks(Self::MAX_BINDS) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(delete);
                    let mut list = qb.separated(", ");
                    for id in chunk {
                        list.push_bind(id.as_str());
                    }
                    qb.push(")");
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn insert_resources(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: &[$crate::inventory::ResourceInsert<'_>],
            ) -> sqlx::Result<()> {
                for chunk in rows.chunks(Self::MAX_BINDS / 6) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO resources (group_id, name, kind, state, properties, depends_on) ",
                    );
                    qb.push_values(chunk, |mut b, r| {
                        b.push_bind(r.group_id)
                            .push_bind(r.name)
                            .push_bind(r.kind)
                            .push_bind(r.state)
                            .push_bind(r.properties.as_str())
                            .push_bind(r.depends_on.as_str());
                    });
                    qb.build().execute(&mut *conn).await?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::InventoryStore for $ty {
            // ---- clusters -----------------------------------------------------------------

            async fn create_cluster(
                &self,
                new: &::ferry_core::model::NewCluster,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                use $crate::db::db_error;
                let id = uuid::Uuid::now_v7();
                let at = $crate::db::now();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                sqlx::query(
                    "INSERT INTO clusters (id, name, os, description, version, created_at, \
                     updated_at, discovery_interval_seconds) VALUES ($1, $2, $3, $4, 1, $5, $5, $6)",
                )
                .bind(id.to_string())
                .bind(&new.name)
                .bind(new.os.as_str())
                .bind(&new.description)
                .bind(at)
                .bind(new.discovery_interval_seconds.map($crate::db::seconds_column))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    $crate::db::unique_or(e, || {
                        ::ferry_core::error::Error::conflict(format!(
                            "a cluster named `{}` already exists",
                            new.name
                        ))
                    })
                })?;
                Self::notify_at_commit(&mut tx, $crate::channels::CLUSTERS)
                    .await
                    .map_err(db_error)?;
                let _forget = self.clusters.forget_after();
                tx.commit().await.map_err(db_error)?;
                Ok(::ferry_core::model::Cluster {
                    id,
                    name: new.name.clone(),
                    os: new.os,
                    description: new.description.clone(),
                    discovery_interval_seconds: new.discovery_interval_seconds,
                    version: 1,
                    latest_snapshot: None,
                    created_at: at,
                    updated_at: at,
                })
            }

            async fn get_cluster(
                &self,
                id_or_name: &str,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                use $crate::db::db_error;
                use $crate::rows::{select_cluster, ClusterRow};
                if let Ok(id) = uuid::Uuid::parse_str(id_or_name) {
                    let row = sqlx::query_as::<_, ClusterRow>(select_cluster!("WHERE c.id = $1"))
                        .bind(id.to_string())
                        .fetch_optional(self.reader())
                        .await
                        .map_err(db_error)?;
                    if let Some(row) = row {
                        return row.into_model();
                    }
                }
                sqlx::query_as::<_, ClusterRow>(select_cluster!("WHERE c.name = $1"))
                    .bind(id_or_name)
                    .fetch_optional(self.reader())
                    .await
                    .map_err(db_error)?
                    .ok_or_else(|| {
                        ::ferry_core::error::Error::not_found(format!("no cluster `{id_or_name}`"))
                    })?
                    .into_model()
            }

            async fn list_clusters(
                &self,
                limit: u32,
                after: Option<&str>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Cluster>> {
                use $crate::db::db_error;
                use $crate::rows::{select_cluster, ClusterRow};
                let key = format!("{limit}/{}", after.unwrap_or_default());
                let generation = match self.clusters.get(&key) {
                    Ok(page) => return Ok(page),
                    Err(generation) => generation,
                };
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_cluster!());
                if let Some(after) = after {
                    qb.push("WHERE c.name > ").push_bind(after);
                }
                qb.push(" ORDER BY c.name LIMIT ").push_bind(i64::from(limit));
                let page = qb
                    .build_query_as::<ClusterRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(ClusterRow::into_model)
                    .collect::<::ferry_core::error::Result<Vec<_>>>()?;
                self.clusters.keep(generation, &key, page.clone());
                Ok(page)
            }

            async fn update_cluster(
                &self,
                id: uuid::Uuid,
                patch: &::ferry_core::model::ClusterPatch,
                expected_version: Option<i64>,
            ) -> ::ferry_core::error::Result<::ferry_core::model::Cluster> {
                use $crate::db::{db_error, now, unique_or};
                use $crate::inventory::check_version;
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let current = Self::lock_cluster(&mut tx, id).await?;
                check_version(&current, expected_version)?;
                let name = patch.name.as_ref().unwrap_or(&current.name);
                let os = patch.os.unwrap_or(current.os);
                let description = patch.description.as_ref().unwrap_or(&current.description);
                let interval = patch
                    .discovery_interval_seconds
                    .unwrap_or(current.discovery_interval_seconds);
                if *name == current.name
                    && os == current.os
                    && *description == current.description
                    && interval == current.discovery_interval_seconds
                {
                    return Ok(current);
                }
                let at = now();
                // A new interval counts from now: the next periodic discovery is scheduled again.
                sqlx::query(
                    "UPDATE clusters SET name = $2, os = $3, description = $4, \
                     discovery_interval_seconds = $6, next_discovery_at = CASE WHEN \
                     discovery_interval_seconds IS NOT DISTINCT FROM $6 THEN next_discovery_at \
                     END, version = version + 1, updated_at = $5 WHERE id = $1",
                )
                .bind(id.to_string())
                .bind(name)
                .bind(os.as_str())
                .bind(description)
                .bind(at)
                .bind(interval.map($crate::db::seconds_column))
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    unique_or(e, || {
                        ::ferry_core::error::Error::conflict(format!(
                            "a cluster named `{name}` already exists"
                        ))
                    })
                })?;
                Self::notify_at_commit(&mut tx, $crate::channels::CLUSTERS)
                    .await
                    .map_err(db_error)?;
                let _forget = self.clusters.forget_after();
                tx.commit().await.map_err(db_error)?;
                Ok(::ferry_core::model::Cluster {
                    name: name.clone(),
                    os,
                    description: description.clone(),
                    discovery_interval_seconds: interval,
                    version: current.version + 1,
                    updated_at: at,
                    ..current
                })
            }

            async fn delete_cluster(
                &self,
                id: uuid::Uuid,
                expected_version: Option<i64>,
            ) -> ::ferry_core::error::Result<()> {
                use $crate::db::db_error;
                use $crate::inventory::check_version;
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                let current = Self::lock_cluster(&mut tx, id).await?;
                check_version(&current, expected_version)?;
                sqlx::query("DELETE FROM clusters WHERE id = $1")
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(db_error)?;
                Self::notify_at_commit(&mut tx, $crate::channels::CLUSTERS)
                    .await
                    .map_err(db_error)?;
                let _forget = self.clusters.forget_after();
                tx.commit().await.map_err(db_error)?;
                Ok(())
            }

            // ---- inventory ----------------------------------------------------------------

            async fn import_inventory(
                &self,
                import: $crate::InventoryImport<'_>,
            ) -> ::ferry_core::error::Result<$crate::ImportOutcome> {
                use ::ferry_core::error::Error;
                use $crate::db::{db_error, now};
                use $crate::rows::{select_snapshot, SnapshotRow};
                use $crate::inventory::{has_duplicate_group, GroupPlan, InventoryRows};
                if has_duplicate_group(import.document) {
                    return Err(Error::internal("import of a document with duplicate group names"));
                }
                let cluster_id = import.cluster_id.to_string();
                let mut tx = self.writer().begin().await.map_err(db_error)?;
                // Serializes imports of one cluster (snapshot numbering) across replicas.
                let cluster = Self::lock_cluster(&mut tx, import.cluster_id).await?;
                let latest = sqlx::query_as::<_, SnapshotRow>(select_snapshot!(
                    "FROM snapshots WHERE cluster_id = $1 ORDER BY number DESC LIMIT 1"
                ))
                .bind(&cluster_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error)?;
                if let Some(expected) = import.expected_hash {
                    match &latest {
                        Some(latest) if latest.content_hash() == expected => {}
                        Some(latest) => {
                            return Err(Error::precondition_failed(format!(
                                "the inventory of cluster `{}` has changed: its current ETag is \"{}\"",
                                cluster.name,
                                latest.content_hash()
                            )));
                        }
                        None => {
                            return Err(Error::precondition_failed(format!(
                                "cluster `{}` has no inventory yet, so no ETag can match",
                                cluster.name
                            )));
                        }
                    }
                }
                let previous = latest.as_ref().map(|l| l.number());
                let number = match latest {
                    Some(latest) if latest.content_hash() == import.content_hash => {
                        return Ok($crate::ImportOutcome {
                            snapshot: latest.into_model()?,
                            created: false,
                            previous,
                            change_recorded: false,
                        });
                    }
                    Some(latest) => latest.number() + 1,
                    None => 1,
                };

                let created_at = now();
                let counts = import.counts;
                sqlx::query(
                    "INSERT INTO snapshots (cluster_id, number, content_hash, node_count, \
                     network_count, disk_count, group_count, resource_count, share_count, \
                     permission_count, created_at, created_by, document) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&cluster_id)
                .bind(number)
                .bind(import.content_hash)
                .bind(counts.nodes)
                .bind(counts.networks)
                .bind(counts.disks)
                .bind(counts.groups)
                .bind(counts.resources)
                .bind(counts.shares)
                .bind(counts.permissions)
                .bind(created_at)
                .bind(import.created_by)
                .bind(import.document_json)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;

                let existing: Vec<(String, String, String)> = sqlx::query_as(
                    "SELECT name, id, content_hash FROM groups WHERE cluster_id = $1",
                )
                .bind(&cluster_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_error)?;
                let plan = GroupPlan::new(import.document, existing);
                let rows = InventoryRows::new(import.document, &plan);
                for (delete, ids) in [
                    ("DELETE FROM groups WHERE id IN (", &plan.removed),
                    ("DELETE FROM resources WHERE group_id IN (", &plan.stale),
                    ("DELETE FROM shares WHERE group_id IN (", &plan.stale),
                ] {
                    Self::delete_by_ids(&mut tx, delete, ids).await.map_err(db_error)?;
                }
                Self::upsert_groups(&mut tx, &cluster_id, &rows.groups)
                    .await
                    .map_err(db_error)?;
                Self::insert_resources(&mut tx, &rows.resources)
                    .await
                    .map_err(db_error)?;
                Self::insert_shares(&mut tx, &rows.shares)
                    .await
                    .map_err(db_error)?;
                // The announcement commits with the snapshot it announces, or not at all.
                let change = import.change.filter(|c| Some(c.against) == previous);
                if let Some(change) = change {
                    Self::insert_events(
                        &mut tx,
                        None,
                        Some(&cluster_id),
                        &[(created_at, change.event)],
                    )
                    .await
                    .map_err(db_error)?;
                }
                Self::notify_at_commit(&mut tx, $crate::channels::CLUSTERS)
                    .await
                    .map_err(db_error)?;
                let _forget = self.clusters.forget_after();
                tx.commit().await.map_err(db_error)?;
                if change.is_some() {
                    self.events.moved();
                }

                Ok($crate::ImportOutcome {
                    snapshot: ::ferry_core::model::SnapshotInfo {
                        cluster_id: import.cluster_id,
                        number,
                        content_hash: import.content_hash.to_owned(),
                        counts,
                        created_at,
                        created_by: import.created_by.to_owned(),
                    },
                    created: true,
                    previous,
                    change_recorded: change.is_some(),
                })
            }

            async fn list_snapshots(
                &self,
                cluster_id: uuid::Uuid,
                limit: u32,
                after: Option<i64>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::SnapshotInfo>> {
                use $crate::db::db_error;
                use $crate::rows::{select_snapshot, SnapshotRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_snapshot!(
                    "FROM snapshots WHERE cluster_id = "
                ));
                qb.push_bind(cluster_id.to_string());
                if let Some(after) = after {
                    qb.push(" AND number > ").push_bind(after);
                }
                qb.push(" ORDER BY number LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<SnapshotRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(SnapshotRow::into_model)
                    .collect()
            }

            async fn get_snapshot(
                &self,
                cluster_id: uuid::Uuid,
                number: i64,
            ) -> ::ferry_core::error::Result<(::ferry_core::model::SnapshotInfo, String)> {
                use $crate::db::db_error;
                use $crate::rows::{select_snapshot, SnapshotDocumentRow};
                let row = sqlx::query_as::<_, SnapshotDocumentRow>(select_snapshot!(
                    ", document FROM snapshots WHERE cluster_id = $1 AND number = $2"
                ))
                .bind(cluster_id.to_string())
                .bind(number)
                .fetch_optional(self.reader())
                .await
                .map_err(db_error)?
                .ok_or_else(|| {
                    ::ferry_core::error::Error::not_found(format!(
                        "cluster {cluster_id} has no snapshot {number}"
                    ))
                })?;
                Ok((row.info.into_model()?, row.document))
            }

            async fn list_groups(
                &self,
                cluster_id: uuid::Uuid,
                limit: u32,
                after: Option<&str>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::GroupSummary>> {
                use $crate::db::db_error;
                use $crate::rows::{select_group, GroupRow};
                let mut qb = sqlx::QueryBuilder::<$db>::new(select_group!("WHERE g.cluster_id = "));
                qb.push_bind(cluster_id.to_string());
                if let Some(after) = after {
                    qb.push(" AND g.name > ").push_bind(after);
                }
                qb.push(" ORDER BY g.name LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<GroupRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(GroupRow::into_model)
                    .collect()
            }

            async fn find_groups(
                &self,
                key: &$crate::GroupKey,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::GroupSummary>> {
                use $crate::db::db_error;
                use $crate::rows::{select_group, GroupRow};
                use $crate::GroupKey;
                let query = match key {
                    GroupKey::Id(id) => {
                        sqlx::query_as::<_, GroupRow>(select_group!("WHERE g.id = $1"))
                            .bind(id.to_string())
                    }
                    GroupKey::Name { cluster: Some(cluster), group } => {
                        sqlx::query_as::<_, GroupRow>(select_group!(
                            "WHERE c.name = $1 AND g.name = $2"
                        ))
                        .bind(cluster.as_str())
                        .bind(group.as_str())
                    }
                    // Two rows are enough to tell the caller the name is ambiguous.
                    GroupKey::Name { cluster: None, group } => {
                        sqlx::query_as::<_, GroupRow>(select_group!(
                            "WHERE g.name = $1 ORDER BY c.name LIMIT 2"
                        ))
                        .bind(group.as_str())
                    }
                };
                query
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(GroupRow::into_model)
                    .collect()
            }

            async fn group_resources(
                &self,
                group_id: uuid::Uuid,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Resource>> {
                use $crate::db::db_error;
                use $crate::rows::ResourceRow;
                sqlx::query_as::<_, ResourceRow>(
                    "SELECT name, kind, state, properties, depends_on FROM resources \
                     WHERE group_id = $1 ORDER BY name",
                )
                .bind(group_id.to_string())
                .fetch_all(self.reader())
                .await
                .map_err(db_error)?
                .into_iter()
                .map(ResourceRow::into_model)
                .collect()
            }

            async fn list_shares(
                &self,
                group_id: uuid::Uuid,
                filter: &ferry_core::model::ShareFilter,
                limit: u32,
                after: Option<&str>,
            ) -> ::ferry_core::error::Result<Vec<::ferry_core::model::Share>> {
                use $crate::db::db_error;
                use $crate::rows::ShareRow;
                let mut qb = sqlx::QueryBuilder::<$db>::new(
                    "SELECT s.name, s.path, s.description, s.permissions, s.caching, \
                     s.access_based_enumeration, s.continuous_availability, s.encrypt_data, \
                     s.user_limit FROM shares s WHERE s.group_id = ",
                );
                qb.push_bind(group_id.to_string());
                if let Some(prefix) = &filter.name_prefix {
                    // substr, not LIKE: `%` and `_` in the prefix are literal.
                    let prefix = prefix.to_lowercase();
                    qb.push(" AND substr(s.name_folded, 1, length(")
                        .push_bind(prefix.clone())
                        .push(")) = ")
                        .push_bind(prefix);
                }
                if let Some(principal) = &filter.principal {
                    qb.push(concat!(" AND ", $principal_open))
                        .push_bind(principal.to_lowercase())
                        .push($principal_close);
                }
                if let Some(after) = after {
                    qb.push(" AND s.name > ").push_bind(after);
                }
                qb.push(" ORDER BY s.name LIMIT ").push_bind(i64::from(limit));
                qb.build_query_as::<ShareRow>()
                    .fetch_all(self.reader())
                    .await
                    .map_err(db_error)?
                    .into_iter()
                    .map(ShareRow::into_model)
                    .collect()
            }
        }
    };
}
pub(crate) use impl_inventory_store;
