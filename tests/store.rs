//! Conformance suite of the [`Store`] trait: every test runs against SQLite and, when
//! `FERRY_TEST_POSTGRES_URL` is set, Postgres (see `tests/common/mod.rs`).

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use chrono::Utc;
use common::{
    PreparedInventory, new_cluster, on_each_backend, sample_inventory, sqlite_store, token_record,
};
use ferry::error::ErrorCode;
use ferry::model::{
    Action, AgentState, Cluster, JoinTokenInfo, TaskError, TaskOutcome, TaskProgress, TaskRef,
    TaskState,
};
use ferry::model::{
    AuditFilter, AuditOutcome, ClusterPatch, Group, NewAudit, OsGeneration, Permission,
    ResourceState, Role, Share, ShareFilter,
};
use ferry::store::{
    AgentEnrollment, Backend, GroupKey, IdempotencyClaim, JoinTokenRecord, NewTask, Store,
};
use uuid::Uuid;

/// Names whose byte order (`B` `Z` `_x` `a` `c` `~` `Ä` `共有`) differs from any locale's order;
/// distinct even ignoring case, as group and share names must be.
const AWKWARD_NAMES: [&str; 8] = ["a", "B", "_x", "Ä", "c", "~", "Z", "共有"];
/// Cluster names only need to be distinct byte for byte.
const AWKWARD_CLUSTER_NAMES: [&str; 10] = ["a", "B", "_x", "Ä", "b", "ä", "Z", "共有", "A", "~"];

fn byte_sorted(names: &[&str]) -> Vec<String> {
    let mut sorted: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    sorted.sort();
    sorted
}

fn share_names(shares: &[Share]) -> Vec<String> {
    shares.iter().map(|s| s.name.clone()).collect()
}

/// A group with the given share names (and one Everyone permission each).
fn group_with_shares(name: &str, shares: &[&str]) -> Group {
    Group {
        name: name.to_owned(),
        owner_node: None,
        state: ResourceState::Online,
        resources: vec![],
        shares: shares
            .iter()
            .map(|s| Share {
                name: (*s).to_owned(),
                path: format!("D:\\{}", s.trim_end_matches('$')),
                description: String::new(),
                permissions: vec![Permission {
                    principal: "Everyone".into(),
                    ace_type: ferry::model::AceType::Allow,
                    access: ferry::model::Access::Read,
                }],
                caching: Default::default(),
                access_based_enumeration: false,
                continuous_availability: false,
                encrypt_data: false,
                user_limit: None,
            })
            .collect(),
    }
}

fn document_of(groups: Vec<Group>) -> PreparedInventory {
    PreparedInventory::new(ferry::model::InventoryDocument {
        groups,
        ..Default::default()
    })
}

async fn group_id(store: &dyn Store, cluster: &str, group: &str) -> Uuid {
    let found = store
        .find_groups(&GroupKey::Name {
            cluster: Some(cluster.to_owned()),
            group: group.to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "group {cluster}/{group}");
    found[0].id
}

// ---- clusters -------------------------------------------------------------------------------

#[tokio::test]
async fn backend_and_ping() {
    on_each_backend(|backend, store| async move {
        let expected = if backend == "sqlite" {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        assert_eq!(store.backend(), expected);
        store.ping().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn cluster_crud() {
    on_each_backend(|_, store| async move {
        let created = store.create_cluster(&new_cluster("FS-OLD")).await.unwrap();
        assert_eq!(created.name, "FS-OLD");
        assert_eq!(created.version, 1);
        assert_eq!(created.latest_snapshot, None);
        assert_eq!(created.created_at, created.updated_at);

        assert_eq!(
            store.get_cluster(&created.id.to_string()).await.unwrap(),
            created
        );
        assert_eq!(store.get_cluster("FS-OLD").await.unwrap(), created);
        // Any UUID spelling finds the cluster.
        let upper = created.id.to_string().to_uppercase();
        assert_eq!(store.get_cluster(&upper).await.unwrap(), created);
        for missing in ["fs-old", "FS-NEW", &Uuid::now_v7().to_string()] {
            let err = store.get_cluster(missing).await.unwrap_err();
            assert_eq!(err.code, ErrorCode::NotFound, "{missing}");
            assert!(err.message.contains(missing), "{}", err.message);
        }

        let err = store
            .create_cluster(&new_cluster("FS-OLD"))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(err.message, "a cluster named `FS-OLD` already exists");

        // A patch bumps the version once.
        let patch = ClusterPatch {
            description: Some("old file servers".into()),
            os: Some(OsGeneration::Ws2008r2),
            ..Default::default()
        };
        let updated = store
            .update_cluster(created.id, &patch, Some(1))
            .await
            .unwrap();
        assert_eq!(updated.version, 2);
        assert_eq!(updated.os, OsGeneration::Ws2008r2);
        assert_eq!(updated.description, "old file servers");
        assert_eq!(updated.created_at, created.created_at);
        assert!(updated.updated_at >= created.updated_at);
        assert_eq!(store.get_cluster("FS-OLD").await.unwrap(), updated);

        // A patch that changes nothing keeps the version, but its precondition still applies.
        let same = store
            .update_cluster(created.id, &patch, None)
            .await
            .unwrap();
        assert_eq!(same, updated);
        let empty = store
            .update_cluster(created.id, &ClusterPatch::default(), Some(2))
            .await
            .unwrap();
        assert_eq!(empty.version, 2);
        let err = store
            .update_cluster(created.id, &patch, Some(1))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::PreconditionFailed);
        assert!(err.message.contains("\"v2\""), "{}", err.message);

        // A stale version changes nothing.
        let rename = ClusterPatch {
            name: Some("FS-LEGACY".into()),
            ..Default::default()
        };
        let err = store
            .update_cluster(created.id, &rename, Some(1))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::PreconditionFailed);
        assert_eq!(store.get_cluster("FS-OLD").await.unwrap(), updated);

        // Renaming onto a taken name conflicts and changes nothing.
        store.create_cluster(&new_cluster("FS-NEW")).await.unwrap();
        let onto = ClusterPatch {
            name: Some("FS-NEW".into()),
            ..Default::default()
        };
        let err = store
            .update_cluster(created.id, &onto, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(err.message, "a cluster named `FS-NEW` already exists");
        assert_eq!(store.get_cluster("FS-OLD").await.unwrap(), updated);

        let renamed = store
            .update_cluster(created.id, &rename, Some(2))
            .await
            .unwrap();
        assert_eq!(renamed.name, "FS-LEGACY");
        assert_eq!(renamed.version, 3);
        assert_eq!(
            store.get_cluster("FS-OLD").await.unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(store.get_cluster("FS-LEGACY").await.unwrap(), renamed);

        let unknown = Uuid::now_v7();
        let err = store
            .update_cluster(unknown, &rename, None)
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);

        // Delete respects the expected version.
        let err = store.delete_cluster(created.id, Some(2)).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::PreconditionFailed);
        assert!(err.message.contains("\"v3\""), "{}", err.message);
        store.get_cluster("FS-LEGACY").await.unwrap();
        store.delete_cluster(created.id, Some(3)).await.unwrap();
        assert_eq!(
            store.get_cluster("FS-LEGACY").await.unwrap_err().code,
            ErrorCode::NotFound
        );
        let err = store.delete_cluster(created.id, None).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);

        let names: Vec<String> = store
            .list_clusters(10, None)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["FS-NEW"]);
    })
    .await;
}

#[tokio::test]
async fn delete_cascades_to_inventory() {
    on_each_backend(|_, store| async move {
        let doomed = store.create_cluster(&new_cluster("DOOMED")).await.unwrap();
        let kept = store.create_cluster(&new_cluster("KEPT")).await.unwrap();
        let inventory = PreparedInventory::new(sample_inventory(3, 5, 2));
        store
            .import_inventory(inventory.import(doomed.id))
            .await
            .unwrap();
        store
            .import_inventory(inventory.import(kept.id))
            .await
            .unwrap();
        let doomed_group = group_id(&*store, "DOOMED", "FS-0002").await;
        let kept_group = group_id(&*store, "KEPT", "FS-0002").await;

        store.delete_cluster(doomed.id, None).await.unwrap();

        assert!(
            store
                .find_groups(&GroupKey::Id(doomed_group))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .list_groups(doomed.id, 10, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .list_snapshots(doomed.id, 10, None)
                .await
                .unwrap()
                .is_empty()
        );
        let err = store.get_snapshot(doomed.id, 1).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        let filter = ShareFilter::default();
        assert!(
            store
                .list_shares(doomed_group, &filter, 10, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .group_resources(doomed_group)
                .await
                .unwrap()
                .is_empty()
        );

        // The other cluster's inventory is untouched, and re-creating the name starts afresh.
        assert_eq!(
            store
                .list_shares(kept_group, &filter, 10, None)
                .await
                .unwrap()
                .len(),
            5
        );
        assert_eq!(store.group_resources(kept_group).await.unwrap().len(), 4);
        let again = store.create_cluster(&new_cluster("DOOMED")).await.unwrap();
        assert_eq!(again.latest_snapshot, None);
        let first = store
            .import_inventory(inventory.import(again.id))
            .await
            .unwrap();
        assert_eq!(first.snapshot.number, 1);
    })
    .await;
}

// ---- pagination -------------------------------------------------------------------------------

#[tokio::test]
async fn cluster_pagination_is_byte_ordered() {
    on_each_backend(|_, store| async move {
        for name in AWKWARD_CLUSTER_NAMES {
            store.create_cluster(&new_cluster(name)).await.unwrap();
        }
        let expected = byte_sorted(&AWKWARD_CLUSTER_NAMES);
        for limit in [1, 2, 3, 10, 50] {
            let mut seen = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let page = store.list_clusters(limit, after.as_deref()).await.unwrap();
                assert!(page.len() <= limit as usize);
                if page.is_empty() {
                    break;
                }
                after = Some(page.last().unwrap().name.clone());
                seen.extend(page.into_iter().map(|c| c.name));
            }
            assert_eq!(seen, expected, "limit {limit}");
        }
        assert!(store.list_clusters(0, None).await.unwrap().is_empty());
        // A cursor that names no cluster still continues after it.
        let page = store.list_clusters(2, Some("^")).await.unwrap();
        let names: Vec<&str> = page.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["_x", "a"]);
    })
    .await;
}

#[tokio::test]
async fn group_and_share_pagination_is_byte_ordered() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("C")).await.unwrap();
        let groups = AWKWARD_NAMES
            .iter()
            .map(|g| group_with_shares(g, &AWKWARD_NAMES))
            .collect();
        store
            .import_inventory(document_of(groups).import(cluster.id))
            .await
            .unwrap();
        let expected = byte_sorted(&AWKWARD_NAMES);

        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_groups(cluster.id, 3, after.as_deref())
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().name.clone());
            seen.extend(page.into_iter().map(|g| g.name));
        }
        assert_eq!(seen, expected);

        let group = group_id(&*store, "C", "Ä").await;
        let filter = ShareFilter::default();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list_shares(group, &filter, 3, after.as_deref())
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = Some(page.last().unwrap().name.clone());
            seen.extend(share_names(&page));
        }
        assert_eq!(seen, expected);
    })
    .await;
}

// ---- inventory ----------------------------------------------------------------------------

#[tokio::test]
async fn import_creates_numbered_snapshots_and_keeps_group_ids() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("FS-OLD")).await.unwrap();
        let first = PreparedInventory::new(sample_inventory(4, 12, 3));

        let outcome = store
            .import_inventory(first.import(cluster.id))
            .await
            .unwrap();
        assert!(outcome.created);
        let snapshot = outcome.snapshot;
        assert_eq!(snapshot.number, 1);
        assert_eq!(snapshot.cluster_id, cluster.id);
        assert_eq!(snapshot.content_hash, first.hash);
        assert_eq!(snapshot.counts, first.counts);
        assert_eq!(snapshot.counts.shares, 48);
        assert_eq!(snapshot.created_by, "test");

        // Identical content returns the newest snapshot and writes nothing.
        let again = store
            .import_inventory(first.import(cluster.id))
            .await
            .unwrap();
        assert!(!again.created);
        assert_eq!(again.snapshot, snapshot);
        assert_eq!(
            store.list_snapshots(cluster.id, 10, None).await.unwrap(),
            std::slice::from_ref(&snapshot)
        );

        let (info, json) = store.get_snapshot(cluster.id, 1).await.unwrap();
        assert_eq!(info, snapshot);
        assert_eq!(json, first.json);

        let current = store.get_cluster("FS-OLD").await.unwrap();
        assert_eq!(current.latest_snapshot, Some(1));
        // An import is not a change of the cluster record.
        assert_eq!(current.version, cluster.version);

        // The current inventory reads back exactly as imported.
        let groups = store.list_groups(cluster.id, 100, None).await.unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        let doc_names: Vec<&str> = first
            .document
            .groups
            .iter()
            .map(|g| g.name.as_str())
            .collect();
        assert_eq!(names, doc_names);
        for (summary, group) in groups.iter().zip(&first.document.groups) {
            assert_eq!(summary.cluster_id, cluster.id);
            assert_eq!(summary.cluster_name, "FS-OLD");
            assert_eq!(summary.owner_node, group.owner_node);
            assert_eq!(summary.state, group.state);
            assert_eq!(summary.resource_count, 4);
            assert_eq!(summary.share_count, 12);
            assert_eq!(
                store.group_resources(summary.id).await.unwrap(),
                group.resources
            );
            let shares = store
                .list_shares(summary.id, &ShareFilter::default(), 100, None)
                .await
                .unwrap();
            assert_eq!(shares, group.shares);
        }
        let ids: HashMap<String, Uuid> = groups.iter().map(|g| (g.name.clone(), g.id)).collect();

        // Second import: FS-0002 goes, FS-0099 comes, FS-0003 changes, the rest stays.
        let mut document = first.document.clone();
        document.groups.retain(|g| g.name != "FS-0002");
        let added = sample_inventory(100, 12, 3).groups.pop().unwrap();
        assert_eq!(added.name, "FS-0099");
        document.groups.push(added);
        let changed = document
            .groups
            .iter_mut()
            .find(|g| g.name == "FS-0003")
            .unwrap();
        changed.shares.truncate(5);
        changed.shares[4].description = "changed".into();
        changed.owner_node = Some("NODE1".into());
        let second = PreparedInventory::new(document);
        assert_ne!(second.hash, first.hash);

        let outcome = store
            .import_inventory(second.import(cluster.id))
            .await
            .unwrap();
        assert!(outcome.created);
        assert_eq!(outcome.snapshot.number, 2);
        assert_eq!(outcome.snapshot.counts, second.counts);

        let groups = store.list_groups(cluster.id, 100, None).await.unwrap();
        let names: Vec<&str> = groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["FS-0003", "FS-0099", "FS-Финансы", "FS-共有"]);
        for summary in &groups {
            match ids.get(&summary.name) {
                Some(old) => assert_eq!(summary.id, *old, "{} keeps its id", summary.name),
                None => assert!(!ids.values().any(|id| *id == summary.id)),
            }
            let group = second
                .document
                .groups
                .iter()
                .find(|g| g.name == summary.name)
                .unwrap();
            assert_eq!(summary.owner_node, group.owner_node);
            assert_eq!(summary.share_count, group.shares.len() as i64);
            let shares = store
                .list_shares(summary.id, &ShareFilter::default(), 100, None)
                .await
                .unwrap();
            assert_eq!(shares, group.shares);
        }
        let removed = ids["FS-0002"];
        assert!(
            store
                .find_groups(&GroupKey::Id(removed))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.group_resources(removed).await.unwrap().is_empty());

        // Snapshots list in order and page by number; old ones stay readable.
        let all = store.list_snapshots(cluster.id, 10, None).await.unwrap();
        assert_eq!(all.iter().map(|s| s.number).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            store.list_snapshots(cluster.id, 1, None).await.unwrap()[0].number,
            1
        );
        assert_eq!(
            store.list_snapshots(cluster.id, 10, Some(1)).await.unwrap()[0].number,
            2
        );
        assert!(
            store
                .list_snapshots(cluster.id, 10, Some(2))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.get_snapshot(cluster.id, 1).await.unwrap().1,
            first.json
        );
        assert_eq!(
            store.get_snapshot(cluster.id, 2).await.unwrap().1,
            second.json
        );
        let err = store.get_snapshot(cluster.id, 7).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        assert!(err.message.contains("no snapshot 7"), "{}", err.message);
        assert_eq!(
            store.get_cluster("FS-OLD").await.unwrap().latest_snapshot,
            Some(2)
        );

        // Going back to the first content is a new snapshot (3), not a reuse of 1.
        let back = store
            .import_inventory(first.import(cluster.id))
            .await
            .unwrap();
        assert!(back.created);
        assert_eq!(back.snapshot.number, 3);
        let group = group_id(&*store, "FS-OLD", "FS-0002").await;
        assert_ne!(group, removed, "a removed group comes back with a new id");

        // An empty inventory clears the current groups.
        let empty = PreparedInventory::new(Default::default());
        store
            .import_inventory(empty.import(cluster.id))
            .await
            .unwrap();
        assert!(
            store
                .list_groups(cluster.id, 100, None)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn import_checks_expected_hash_and_cluster() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("FS-OLD")).await.unwrap();
        let first = PreparedInventory::new(sample_inventory(2, 3, 1));
        let second = PreparedInventory::new(sample_inventory(3, 3, 1));

        let err = store
            .import_inventory(first.import_if(cluster.id, "sha256:nothing"))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::PreconditionFailed);
        assert!(
            store
                .list_snapshots(cluster.id, 10, None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .list_groups(cluster.id, 10, None)
                .await
                .unwrap()
                .is_empty()
        );

        store
            .import_inventory(first.import(cluster.id))
            .await
            .unwrap();
        let groups_before = store.list_groups(cluster.id, 10, None).await.unwrap();

        let err = store
            .import_inventory(second.import_if(cluster.id, "sha256:stale"))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::PreconditionFailed);
        assert!(
            err.message.contains(&first.hash),
            "names the current ETag: {}",
            err.message
        );
        assert_eq!(
            store
                .list_snapshots(cluster.id, 10, None)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            store.list_groups(cluster.id, 10, None).await.unwrap(),
            groups_before
        );

        let ok = store
            .import_inventory(second.import_if(cluster.id, &first.hash))
            .await
            .unwrap();
        assert!(ok.created);
        assert_eq!(ok.snapshot.number, 2);

        // Same content with a matching If-Match is the idempotent no-op.
        let same = store
            .import_inventory(second.import_if(cluster.id, &second.hash))
            .await
            .unwrap();
        assert!(!same.created);
        assert_eq!(same.snapshot.number, 2);

        let err = store
            .import_inventory(first.import(Uuid::now_v7()))
            .await
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
    })
    .await;
}

#[tokio::test]
async fn concurrent_imports_number_snapshots_without_gaps() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("FS-OLD")).await.unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let inventory = PreparedInventory::new(sample_inventory(2, i + 1, 1));
                    store
                        .import_inventory(inventory.import(cluster.id))
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut numbers = BTreeSet::new();
        for task in tasks {
            let outcome = task.await.unwrap();
            assert!(outcome.created);
            numbers.insert(outcome.snapshot.number);
        }
        assert_eq!(numbers, (1..=8).collect());
    })
    .await;
}

#[tokio::test]
async fn list_shares_filters() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("C")).await.unwrap();
        let mut group = group_with_shares(
            "FS",
            &[
                "Data$",
                "DATA%x",
                "data_archive",
                "Database",
                "Finance",
                "Финансы",
                "финансы-архив",
                "Users",
            ],
        );
        let principals: HashMap<&str, &[&str]> = [
            ("Data$", &["CORP\\Бухгалтерия", "Everyone"][..]),
            ("Database", &["CORP\\DBA"][..]),
            ("Финансы", &["corp\\БУХГАЛТЕРИЯ"][..]),
            ("Users", &["CORP\\Domain Users", "CORP\\Бухгалтерия"][..]),
        ]
        .into_iter()
        .collect();
        for share in &mut group.shares {
            if let Some(list) = principals.get(share.name.as_str()) {
                share.permissions = list
                    .iter()
                    .map(|p| Permission {
                        principal: (*p).to_owned(),
                        ace_type: ferry::model::AceType::Allow,
                        access: ferry::model::Access::Change,
                    })
                    .collect();
            }
        }
        store
            .import_inventory(document_of(vec![group]).import(cluster.id))
            .await
            .unwrap();
        let group = group_id(&*store, "C", "FS").await;

        let list = |prefix: Option<&str>, principal: Option<&str>, after: Option<&str>| {
            let store = Arc::clone(&store);
            let filter = ShareFilter {
                name_prefix: prefix.map(str::to_owned),
                principal: principal.map(str::to_owned),
            };
            let after = after.map(str::to_owned);
            async move {
                share_names(
                    &store
                        .list_shares(group, &filter, 100, after.as_deref())
                        .await
                        .unwrap(),
                )
            }
        };

        assert_eq!(list(Some("data$"), None, None).await, ["Data$"]);
        assert_eq!(
            list(Some("DATA"), None, None).await,
            ["DATA%x", "Data$", "Database", "data_archive"]
        );
        // `%` and `_` are literal, not wildcards.
        assert_eq!(list(Some("data%"), None, None).await, ["DATA%x"]);
        assert_eq!(list(Some("data_"), None, None).await, ["data_archive"]);
        assert!(list(Some("%"), None, None).await.is_empty());
        assert!(list(Some("_"), None, None).await.is_empty());
        // Case-insensitive beyond ASCII.
        assert_eq!(
            list(Some("ФИН"), None, None).await,
            ["Финансы", "финансы-архив"]
        );
        assert_eq!(list(Some(""), None, None).await.len(), 8);
        assert!(list(Some("Database-and-more"), None, None).await.is_empty());
        assert_eq!(
            list(Some("data"), None, Some("Data$")).await,
            ["Database", "data_archive"]
        );

        // Principal: exact, case-insensitive (also for Cyrillic).
        assert_eq!(
            list(None, Some("corp\\бухгалтерия"), None).await,
            ["Data$", "Users", "Финансы"]
        );
        assert_eq!(list(None, Some("CORP\\dba"), None).await, ["Database"]);
        assert!(list(None, Some("CORP"), None).await.is_empty());
        assert!(list(None, Some("CORP\\DB"), None).await.is_empty());
        assert_eq!(list(None, Some("EVERYONE"), None).await.len(), 5);
        assert_eq!(
            list(None, Some("corp\\бухгалтерия"), Some("Data$")).await,
            ["Users", "Финансы"]
        );

        // Both filters at once.
        assert_eq!(
            list(Some("d"), Some("Everyone"), None).await,
            ["DATA%x", "Data$", "data_archive"]
        );
        assert_eq!(
            list(Some("u"), Some("CORP\\Domain Users"), None).await,
            ["Users"]
        );
    })
    .await;
}

#[tokio::test]
async fn find_groups_by_every_key() {
    on_each_backend(|_, store| async move {
        let old = store.create_cluster(&new_cluster("FS-OLD")).await.unwrap();
        let new = store.create_cluster(&new_cluster("FS-NEW")).await.unwrap();
        let shared = document_of(vec![
            group_with_shares("FS-SHARED", &["A"]),
            group_with_shares("FS-ONLY-OLD", &["B"]),
        ]);
        let other = document_of(vec![group_with_shares("FS-SHARED", &["C", "D"])]);
        store.import_inventory(shared.import(old.id)).await.unwrap();
        store.import_inventory(other.import(new.id)).await.unwrap();

        let key = |cluster: Option<&str>, group: &str| GroupKey::Name {
            cluster: cluster.map(str::to_owned),
            group: group.to_owned(),
        };

        let both = store.find_groups(&key(None, "FS-SHARED")).await.unwrap();
        assert_eq!(both.len(), 2, "ambiguous across clusters");
        let clusters: BTreeSet<&str> = both.iter().map(|g| g.cluster_name.as_str()).collect();
        assert_eq!(clusters, BTreeSet::from(["FS-NEW", "FS-OLD"]));

        let in_new = store
            .find_groups(&key(Some("FS-NEW"), "FS-SHARED"))
            .await
            .unwrap();
        assert_eq!(in_new.len(), 1);
        let group = &in_new[0];
        assert_eq!(group.cluster_id, new.id);
        assert_eq!(group.cluster_name, "FS-NEW");
        assert_eq!(group.share_count, 2);
        assert_eq!(group.resource_count, 0);
        assert_eq!(group.state, ResourceState::Online);

        assert_eq!(
            store.find_groups(&GroupKey::Id(group.id)).await.unwrap(),
            in_new
        );
        let only = store.find_groups(&key(None, "FS-ONLY-OLD")).await.unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].cluster_id, old.id);

        for missing in [
            key(Some("FS-NEW"), "FS-ONLY-OLD"),
            key(Some("fs-new"), "FS-SHARED"),
            key(None, "fs-shared"),
            key(Some("FS-NOPE"), "FS-SHARED"),
            GroupKey::Id(Uuid::now_v7()),
        ] {
            assert!(
                store.find_groups(&missing).await.unwrap().is_empty(),
                "{missing:?}"
            );
        }

        // At most two rows even when the name is in more clusters.
        let third = store
            .create_cluster(&new_cluster("FS-THIRD"))
            .await
            .unwrap();
        store
            .import_inventory(other.import(third.id))
            .await
            .unwrap();
        assert_eq!(
            store
                .find_groups(&key(None, "FS-SHARED"))
                .await
                .unwrap()
                .len(),
            2
        );
    })
    .await;
}

// ---- tokens -------------------------------------------------------------------------------

#[tokio::test]
async fn tokens() {
    on_each_backend(|_, store| async move {
        let alice = token_record("alice", Role::Operator);
        store.insert_token(&alice).await.unwrap();
        let found = store.token_by_hash("hash-of-alice").await.unwrap().unwrap();
        assert_eq!(found.id, alice.info.id);
        assert_eq!(found.name, "alice");
        assert_eq!(found.role, Role::Operator);
        assert_eq!(found.expires_at, None);
        assert_eq!(found.revoked_at, None);
        assert!(
            (found.created_at - alice.info.created_at).abs() < chrono::TimeDelta::milliseconds(1)
        );
        assert_eq!(store.token_by_hash("hash-of-nobody").await.unwrap(), None);

        let mut dup = token_record("alice", Role::Viewer);
        dup.secret_hash = "another-hash".into();
        let err = store.insert_token(&dup).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);
        assert_eq!(err.message, "a token named `alice` already exists");
        let mut same_secret = token_record("mallory", Role::Viewer);
        same_secret.secret_hash = alice.secret_hash.clone();
        let err = store.insert_token(&same_secret).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::Conflict);

        let mut bob = token_record("bob", Role::Viewer);
        bob.info.expires_at = Some(Utc::now() + chrono::TimeDelta::days(1));
        store.insert_token(&bob).await.unwrap();
        let carol = token_record("carol", Role::Admin);
        store.insert_token(&carol).await.unwrap();

        // Ordered by id, which for v7 ids is creation order.
        let all = store.list_tokens(10, None).await.unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob", "carol"]);
        assert!(all[1].expires_at.is_some());
        let page = store.list_tokens(1, Some(alice.info.id)).await.unwrap();
        assert_eq!(page[0].name, "bob");
        assert!(
            store
                .list_tokens(10, Some(carol.info.id))
                .await
                .unwrap()
                .is_empty()
        );

        // Revocation keeps the first time.
        let first = Utc::now();
        let revoked = store.revoke_token(bob.info.id, first).await.unwrap();
        let at = revoked.revoked_at.unwrap();
        assert!((at - first).abs() < chrono::TimeDelta::milliseconds(1));
        let later = first + chrono::TimeDelta::hours(1);
        let again = store.revoke_token(bob.info.id, later).await.unwrap();
        assert_eq!(again.revoked_at, Some(at));
        assert_eq!(
            store
                .token_by_hash(&bob.secret_hash)
                .await
                .unwrap()
                .unwrap()
                .revoked_at,
            Some(at)
        );
        let err = store.revoke_token(Uuid::now_v7(), first).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
    })
    .await;
}

#[tokio::test]
async fn bootstrap_token() {
    on_each_backend(|_, store| async move {
        let bootstrap = token_record("bootstrap", Role::Admin);
        store.ensure_bootstrap_token(&bootstrap).await.unwrap();
        store.ensure_bootstrap_token(&bootstrap).await.unwrap();
        let info = store
            .token_by_hash(&bootstrap.secret_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.name, "bootstrap");
        assert_eq!(info.role, Role::Admin);
        assert_eq!(store.list_tokens(10, None).await.unwrap().len(), 1);

        // A revoked bootstrap token comes back.
        store.revoke_token(info.id, Utc::now()).await.unwrap();
        store.ensure_bootstrap_token(&bootstrap).await.unwrap();
        let revived = store
            .token_by_hash(&bootstrap.secret_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revived.id, info.id);
        assert_eq!(revived.revoked_at, None);

        // A new secret replaces the hash of the token of that name.
        let mut rotated = token_record("bootstrap", Role::Admin);
        rotated.secret_hash = "rotated-hash".into();
        store.ensure_bootstrap_token(&rotated).await.unwrap();
        assert_eq!(
            store.token_by_hash(&bootstrap.secret_hash).await.unwrap(),
            None
        );
        let now = store.token_by_hash("rotated-hash").await.unwrap().unwrap();
        assert_eq!(now.id, info.id);
        assert_eq!(now.role, Role::Admin);
        assert_eq!(store.list_tokens(10, None).await.unwrap().len(), 1);

        // A token holding the hash under another name becomes a non-expiring live admin.
        let mut viewer = token_record("ops", Role::Viewer);
        viewer.secret_hash = "ops-hash".into();
        viewer.info.expires_at = Some(Utc::now() - chrono::TimeDelta::hours(1));
        store.insert_token(&viewer).await.unwrap();
        store
            .revoke_token(viewer.info.id, Utc::now())
            .await
            .unwrap();
        let mut adopt = token_record("bootstrap", Role::Admin);
        adopt.secret_hash = "ops-hash".into();
        store.ensure_bootstrap_token(&adopt).await.unwrap();
        let ops = store.token_by_hash("ops-hash").await.unwrap().unwrap();
        assert_eq!(ops.id, viewer.info.id);
        assert_eq!(ops.role, Role::Admin);
        assert_eq!(ops.expires_at, None);
        assert_eq!(ops.revoked_at, None);
    })
    .await;
}

// ---- audit ----------------------------------------------------------------------------------

#[tokio::test]
async fn audit_log() {
    on_each_backend(|_, store| async move {
        let records = [
            (
                "alice",
                "cluster.create",
                "cluster:FS-OLD",
                AuditOutcome::Success,
            ),
            (
                "bob",
                "cluster.create",
                "cluster:FS-NEW",
                AuditOutcome::Denied,
            ),
            (
                "alice",
                "inventory.import",
                "cluster:FS-OLD",
                AuditOutcome::Success,
            ),
            ("anonymous", "token.create", "token:x", AuditOutcome::Denied),
            (
                "alice",
                "cluster.delete",
                "cluster:FS-OLD",
                AuditOutcome::Failure,
            ),
        ];
        for (i, (actor, action, target, outcome)) in records.iter().enumerate() {
            store
                .append_audit(&NewAudit {
                    actor: (*actor).into(),
                    action: (*action).into(),
                    target: (*target).into(),
                    source: (i % 2 == 0).then(|| "127.0.0.1".to_owned()),
                    outcome: *outcome,
                    detail: (*outcome != AuditOutcome::Success).then(|| "Permission denied".into()),
                })
                .await
                .unwrap();
        }

        let all = store
            .list_audit(&AuditFilter::default(), 100, None)
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert!(all.windows(2).all(|w| w[0].at >= w[1].at));
        assert_eq!(all[0].action, "cluster.delete");
        assert_eq!(all[0].source.as_deref(), Some("127.0.0.1"));
        assert_eq!(all[0].detail.as_deref(), Some("Permission denied"));
        assert_eq!(all[1].source, None);
        assert_eq!(all[4].action, "cluster.create");

        let page = store
            .list_audit(&AuditFilter::default(), 2, Some(all[1].id))
            .await
            .unwrap();
        assert_eq!(page, all[2..4]);
        assert!(
            store
                .list_audit(&AuditFilter::default(), 2, Some(all[4].id))
                .await
                .unwrap()
                .is_empty()
        );

        let actions = |filter: AuditFilter, before: Option<i64>| {
            let store = Arc::clone(&store);
            async move {
                store
                    .list_audit(&filter, 100, before)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.action)
                    .collect::<Vec<_>>()
            }
        };
        let by_alice = AuditFilter {
            actor: Some("alice".into()),
            ..Default::default()
        };
        assert_eq!(
            actions(by_alice.clone(), None).await,
            ["cluster.delete", "inventory.import", "cluster.create"]
        );
        assert_eq!(
            actions(by_alice, Some(all[0].id)).await,
            ["inventory.import", "cluster.create"]
        );
        let creates = AuditFilter {
            action: Some("cluster.create".into()),
            ..Default::default()
        };
        assert_eq!(actions(creates, None).await.len(), 2);
        let denied = AuditFilter {
            outcome: Some(AuditOutcome::Denied),
            ..Default::default()
        };
        assert_eq!(
            actions(denied, None).await,
            ["token.create", "cluster.create"]
        );
        let combined = AuditFilter {
            actor: Some("alice".into()),
            target: Some("cluster:FS-OLD".into()),
            outcome: Some(AuditOutcome::Success),
            action: None,
        };
        assert_eq!(
            actions(combined, None).await,
            ["inventory.import", "cluster.create"]
        );
        let nobody = AuditFilter {
            actor: Some("ALICE".into()),
            ..Default::default()
        };
        assert!(actions(nobody, None).await.is_empty());
    })
    .await;
}

// ---- idempotency ----------------------------------------------------------------------------

#[tokio::test]
async fn idempotency_keys() {
    on_each_backend(|_, store| async move {
        let scope = "token:alice POST /v1/clusters";
        assert_eq!(
            store.idempotency_claim(scope, "k1", "h1").await.unwrap(),
            IdempotencyClaim::Claimed
        );
        assert_eq!(
            store.idempotency_claim(scope, "k1", "h1").await.unwrap(),
            IdempotencyClaim::InProgress
        );
        // Keys are per scope.
        assert_eq!(
            store
                .idempotency_claim("token:bob POST /v1/clusters", "k1", "h1")
                .await
                .unwrap(),
            IdempotencyClaim::Claimed
        );

        store
            .idempotency_complete(scope, "k1", 201, "{\"id\":1}")
            .await
            .unwrap();
        let replay = IdempotencyClaim::Completed {
            request_hash: "h1".into(),
            status: 201,
            body: "{\"id\":1}".into(),
        };
        assert_eq!(
            store.idempotency_claim(scope, "k1", "h1").await.unwrap(),
            replay
        );
        // A different request with the same key gets the stored hash to compare against.
        assert_eq!(
            store.idempotency_claim(scope, "k1", "h2").await.unwrap(),
            replay
        );

        // A released claim can be made again.
        assert_eq!(
            store.idempotency_claim(scope, "k2", "h3").await.unwrap(),
            IdempotencyClaim::Claimed
        );
        store.idempotency_release(scope, "k2").await.unwrap();
        assert_eq!(
            store.idempotency_claim(scope, "k2", "h4").await.unwrap(),
            IdempotencyClaim::Claimed
        );
        store
            .idempotency_complete(scope, "k2", 204, "")
            .await
            .unwrap();
        assert_eq!(
            store.idempotency_claim(scope, "k2", "h4").await.unwrap(),
            IdempotencyClaim::Completed {
                request_hash: "h4".into(),
                status: 204,
                body: String::new()
            }
        );
        // Releasing an unknown key is harmless.
        store.idempotency_release(scope, "nope").await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn idempotency_records_expire_after_a_day() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(&dir);
    let store = ferry::store::open(&url).await.unwrap();
    // Planted behind the store's back: a completed record from 25 hours ago.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency (scope, key, request_hash, status, body, state, created_at) \
         VALUES ('s', 'old', 'h', 200, 'stale', 'done', $1)",
    )
    .bind(Utc::now() - chrono::TimeDelta::hours(25))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    assert_eq!(
        store.idempotency_claim("s", "old", "h2").await.unwrap(),
        IdempotencyClaim::Claimed
    );
}

// ---- concurrency and SQLite specifics -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_succeed() {
    on_each_backend(|backend, store| async move {
        let writers: Vec<_> = (0..50)
            .map(|i| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let cluster = store
                        .create_cluster(&new_cluster(&format!("C{i:02}")))
                        .await?;
                    store
                        .append_audit(&NewAudit {
                            actor: "t".into(),
                            action: "cluster.create".into(),
                            target: cluster.name.clone(),
                            source: None,
                            outcome: AuditOutcome::Success,
                            detail: None,
                        })
                        .await?;
                    store.get_cluster(&cluster.name).await?;
                    store.list_clusters(10, None).await?;
                    Ok::<_, ferry::error::Error>(())
                })
            })
            .collect();
        for writer in writers {
            writer
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("[{backend}] writer failed: {e}"));
        }
        assert_eq!(store.list_clusters(100, None).await.unwrap().len(), 50);
        assert_eq!(
            store
                .list_audit(&AuditFilter::default(), 100, None)
                .await
                .unwrap()
                .len(),
            50
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_proceed_during_an_import() {
    let (store, _dir) = sqlite_store().await;
    let cluster = store.create_cluster(&new_cluster("BIG")).await.unwrap();
    let inventory = Arc::new(PreparedInventory::new(sample_inventory(50, 200, 3)));
    let import = {
        let store = Arc::clone(&store);
        let inventory = Arc::clone(&inventory);
        tokio::spawn(async move { store.import_inventory(inventory.import(cluster.id)).await })
    };
    // Readers and another writer are served (readers possibly before the import commits).
    for _ in 0..20 {
        store.list_clusters(10, None).await.unwrap();
        store.list_groups(cluster.id, 10, None).await.unwrap();
    }
    store.create_cluster(&new_cluster("OTHER")).await.unwrap();
    assert!(import.await.unwrap().unwrap().created);
    assert_eq!(
        store
            .list_groups(cluster.id, 100, None)
            .await
            .unwrap()
            .len(),
        50
    );
}

#[tokio::test]
async fn sqlite_in_memory_url_works() {
    let store = ferry::store::open("sqlite::memory:").await.unwrap();
    let cluster = store.create_cluster(&new_cluster("MEM")).await.unwrap();
    assert_eq!(store.get_cluster("MEM").await.unwrap(), cluster);
    let inventory = PreparedInventory::new(sample_inventory(2, 3, 1));
    store
        .import_inventory(inventory.import(cluster.id))
        .await
        .unwrap();
    assert_eq!(
        store.list_groups(cluster.id, 10, None).await.unwrap().len(),
        2
    );
    // Separate in-memory stores are separate databases.
    let other = ferry::store::open("sqlite::memory:").await.unwrap();
    assert!(other.list_clusters(10, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn sqlite_store_reopens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = common::sqlite_url(&dir);
    let first = ferry::store::open(&url).await.unwrap();
    first.create_cluster(&new_cluster("KEEP")).await.unwrap();
    drop(first);
    let second = ferry::store::open(&url).await.unwrap();
    second.get_cluster("KEEP").await.unwrap();
}

// ---- agents, join tokens and tasks ------------------------------------------------------------

fn join_token(
    cluster: &Cluster,
    hash: &str,
    uses: u32,
    lifetime: chrono::TimeDelta,
) -> JoinTokenRecord {
    let now = Utc::now();
    JoinTokenRecord {
        info: JoinTokenInfo {
            id: Uuid::now_v7(),
            cluster_id: cluster.id,
            cluster_name: cluster.name.clone(),
            expires_at: now + lifetime,
            uses_left: uses,
            created_at: now,
            created_by: "test".into(),
        },
        secret_hash: hash.into(),
    }
}

const CAPABILITIES: [String; 0] = [];

fn enrollment<'a>(cluster: &Cluster, token_hash: &'a str, node: &'a str) -> AgentEnrollment<'a> {
    AgentEnrollment {
        token_hash,
        cluster_id: cluster.id,
        agent_id: Uuid::now_v7(),
        node,
        secret_hash: node,
        software_version: "0.1.0",
        capabilities: &CAPABILITIES,
        at: Utc::now(),
    }
}

fn echo() -> Action {
    Action::Echo {
        text: "hi".into(),
        sleep_ms: 0,
    }
}

/// Cluster FS-NEW with a join token `t` good for `uses` enrollments, and an agent per node.
async fn enrolled<const N: usize>(
    store: &dyn Store,
    nodes: [&str; N],
    uses: u32,
) -> (Cluster, [ferry::model::Agent; N]) {
    let cluster = store.create_cluster(&new_cluster("FS-NEW")).await.unwrap();
    store
        .insert_join_token(&join_token(
            &cluster,
            "t",
            uses,
            chrono::TimeDelta::hours(1),
        ))
        .await
        .unwrap();
    let mut agents = Vec::new();
    for node in nodes {
        agents.push(
            store
                .enroll_agent(&enrollment(&cluster, "t", node))
                .await
                .unwrap()
                .agent,
        );
    }
    (cluster, agents.try_into().unwrap())
}

async fn task_for(store: &dyn Store, agent: &ferry::model::Agent) -> ferry::model::Task {
    store
        .create_task(&NewTask {
            cluster_id: agent.cluster_id,
            node: &agent.node,
            agent_id: Some(agent.id),
            action: &echo(),
            created_by: "test",
            id: None,
            lease_deadline: None,
        })
        .await
        .unwrap()
}

fn later(seconds: i64) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::TimeDelta::seconds(seconds)
}

#[tokio::test]
async fn join_tokens_are_consumed_by_enrollment() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("FS-NEW")).await.unwrap();
        let other = store
            .create_cluster(&new_cluster("FS-OTHER"))
            .await
            .unwrap();
        let hour = chrono::TimeDelta::hours(1);
        store
            .insert_join_token(&join_token(&cluster, "two", 2, hour))
            .await
            .unwrap();
        let dup = store
            .insert_join_token(&join_token(&cluster, "two", 1, hour))
            .await
            .unwrap_err();
        assert_eq!(dup.code, ErrorCode::Conflict);

        let first = store
            .enroll_agent(&enrollment(&cluster, "two", "N1"))
            .await
            .unwrap();
        assert_eq!(first.replaced, None);
        let agent = &first.agent;
        assert_eq!(
            (
                agent.cluster_id,
                agent.cluster_name.as_str(),
                agent.node.as_str()
            ),
            (cluster.id, "FS-NEW", "N1")
        );
        assert_eq!(agent.state, AgentState::Disconnected);
        assert_eq!(agent.session_id, None);
        assert!(agent.last_seen_at.is_some());
        store
            .enroll_agent(&enrollment(&cluster, "two", "N2"))
            .await
            .unwrap();
        let used = store
            .enroll_agent(&enrollment(&cluster, "two", "N3"))
            .await
            .unwrap_err();
        assert_eq!(used.code, ErrorCode::Unauthenticated);
        assert!(used.message.contains("used up"), "{}", used.message);

        let unknown = store
            .enroll_agent(&enrollment(&cluster, "nope", "N3"))
            .await
            .unwrap_err();
        assert_eq!(unknown.code, ErrorCode::Unauthenticated);
        assert!(unknown.message.contains("unknown"), "{}", unknown.message);

        store
            .insert_join_token(&join_token(
                &cluster,
                "old",
                5,
                -chrono::TimeDelta::seconds(1),
            ))
            .await
            .unwrap();
        let expired = store
            .enroll_agent(&enrollment(&cluster, "old", "N3"))
            .await
            .unwrap_err();
        assert_eq!(expired.code, ErrorCode::Unauthenticated);
        assert!(expired.message.contains("expired"), "{}", expired.message);

        // A refusal consumes nothing: the token still works for its own cluster.
        store
            .insert_join_token(&join_token(&cluster, "one", 1, hour))
            .await
            .unwrap();
        let wrong = store
            .enroll_agent(&enrollment(&other, "one", "N3"))
            .await
            .unwrap_err();
        assert_eq!(wrong.code, ErrorCode::Unauthenticated);
        assert!(
            wrong.message.contains("another cluster"),
            "{}",
            wrong.message
        );
        store
            .enroll_agent(&enrollment(&cluster, "one", "N3"))
            .await
            .unwrap();
        assert_eq!(
            store
                .list_agents(Some(cluster.id), 10, None)
                .await
                .unwrap()
                .len(),
            3
        );
        assert!(
            store
                .list_agents(Some(other.id), 10, None)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn the_last_use_of_a_join_token_is_won_once() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("FS-NEW")).await.unwrap();
        store
            .insert_join_token(&join_token(
                &cluster,
                "race",
                1,
                chrono::TimeDelta::hours(1),
            ))
            .await
            .unwrap();
        let attempts = (0..6).map(|i| {
            let store = Arc::clone(&store);
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let node = format!("N{i}");
                store
                    .enroll_agent(&enrollment(&cluster, "race", &node))
                    .await
                    .is_ok()
            })
        });
        let mut won = 0;
        for attempt in attempts.collect::<Vec<_>>() {
            won += usize::from(attempt.await.unwrap());
        }
        assert_eq!(won, 1);
    })
    .await;
}

#[tokio::test]
async fn re_enrolling_a_node_replaces_its_agent() {
    on_each_backend(|_, store| async move {
        let (cluster, [old]) = enrolled(&*store, ["N1"], 2).await;
        let pending = task_for(&*store, &old).await;
        let in_flight = task_for(&*store, &old).await;
        store
            .assign_task(in_flight.id, old.id, later(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        let mut again = enrollment(&cluster, "t", "N1");
        again.secret_hash = "N1-again";
        let new = store.enroll_agent(&again).await.unwrap();
        assert_eq!(new.replaced, Some(old.id));
        let old_now = store.get_agent(old.id).await.unwrap();
        assert_eq!(old_now.state, AgentState::Revoked);
        assert!(old_now.revoked_at.is_some());
        assert_eq!(
            store.get_task(pending.id).await.unwrap().agent_id,
            Some(new.agent.id),
            "queued work follows the node"
        );
        assert_eq!(
            store.get_task(in_flight.id).await.unwrap().agent_id,
            Some(old.id),
            "work in flight stays fenced to the agent that holds it"
        );
    })
    .await;
}

#[tokio::test]
async fn agent_sessions_are_recorded_and_silent_agents_go_down() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("FS-NEW")).await.unwrap();
        store
            .insert_join_token(&join_token(&cluster, "t", 3, chrono::TimeDelta::hours(1)))
            .await
            .unwrap();
        let mut agents = Vec::new();
        for node in ["N1", "N2", "N3"] {
            agents.push(
                store
                    .enroll_agent(&enrollment(&cluster, "t", node))
                    .await
                    .unwrap()
                    .agent,
            );
        }
        let agent = &agents[0];
        let credentials = store.agent_credentials(agent.id).await.unwrap().unwrap();
        assert_eq!(credentials.secret_hash, "N1");
        assert_eq!(&credentials.agent, agent);
        assert_eq!(store.agent_credentials(Uuid::now_v7()).await.unwrap(), None);
        assert_eq!(
            store.get_agent(Uuid::now_v7()).await.unwrap_err().code,
            ErrorCode::NotFound
        );

        let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
        let capabilities = vec!["echo".to_owned()];
        let connected = store
            .agent_connected(agent.id, first, "0.2.0", &capabilities, Utc::now())
            .await
            .unwrap();
        assert_eq!(connected.state, AgentState::Connected);
        assert_eq!(connected.session_id, Some(first));
        assert_eq!(connected.software_version, "0.2.0");
        assert_eq!(connected.capabilities, capabilities);
        assert!(connected.connected_at.is_some());
        // A newer session took over: the older one's end changes nothing.
        store
            .agent_connected(agent.id, second, "0.2.0", &capabilities, Utc::now())
            .await
            .unwrap();
        assert!(
            !store
                .agent_disconnected(agent.id, first, Utc::now())
                .await
                .unwrap()
        );
        assert_eq!(
            store.get_agent(agent.id).await.unwrap().state,
            AgentState::Connected
        );
        assert!(
            store
                .agent_disconnected(agent.id, second, Utc::now())
                .await
                .unwrap()
        );
        let gone = store.get_agent(agent.id).await.unwrap();
        assert_eq!(
            (gone.state, gone.session_id),
            (AgentState::Disconnected, None)
        );

        let seen_at = later(60);
        store
            .touch_agents(&[agents[1].id, agents[2].id], seen_at)
            .await
            .unwrap();
        let touched = store.get_agent(agents[1].id).await.unwrap();
        assert!(
            (touched.last_seen_at.unwrap() - seen_at).abs() < chrono::TimeDelta::milliseconds(1)
        );
        // Only the agent not touched is silent at +30 s; all are at +90 s.
        let down = store.mark_agents_down(later(30)).await.unwrap();
        assert_eq!(down, vec![agent.id]);
        assert_eq!(
            store.get_agent(agent.id).await.unwrap().state,
            AgentState::Down
        );
        let mut down = store.mark_agents_down(later(90)).await.unwrap();
        down.sort();
        assert_eq!(down, vec![agents[1].id, agents[2].id]);
        assert!(store.mark_agents_down(later(90)).await.unwrap().is_empty());

        let page = store.list_agents(None, 2, None).await.unwrap();
        assert_eq!(
            page.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![agents[0].id, agents[1].id]
        );
        let rest = store
            .list_agents(None, 2, Some(agents[1].id))
            .await
            .unwrap();
        assert_eq!(
            rest.iter().map(|a| a.id).collect::<Vec<_>>(),
            vec![agents[2].id]
        );
    })
    .await;
}

#[tokio::test]
async fn revoking_an_agent_settles_its_tasks() {
    on_each_backend(|_, store| async move {
        let (_, [agent]) = enrolled(&*store, ["N1"], 1).await;
        let pending = task_for(&*store, &agent).await;
        let in_flight = task_for(&*store, &agent).await;
        store
            .assign_task(in_flight.id, agent.id, later(30), Utc::now())
            .await
            .unwrap();
        let revoked = store.revoke_agent(agent.id, Utc::now()).await.unwrap();
        assert_eq!(revoked.state, AgentState::Revoked);
        let at = revoked.revoked_at.unwrap();
        assert_eq!(
            store
                .revoke_agent(agent.id, later(5))
                .await
                .unwrap()
                .revoked_at,
            Some(at),
            "the first revocation time stays"
        );
        assert_eq!(
            store.get_task(pending.id).await.unwrap().state,
            TaskState::Cancelled
        );
        let lost = store.get_task(in_flight.id).await.unwrap();
        assert_eq!(lost.state, TaskState::Lost);
        assert_eq!(lost.error.unwrap().kind, "lost");
        let refused = store
            .agent_connected(agent.id, Uuid::now_v7(), "0.1.0", &[], Utc::now())
            .await
            .unwrap_err();
        assert_eq!(refused.code, ErrorCode::Unauthenticated);
        assert_eq!(
            store
                .revoke_agent(Uuid::now_v7(), Utc::now())
                .await
                .unwrap_err()
                .code,
            ErrorCode::NotFound
        );
    })
    .await;
}

#[tokio::test]
async fn a_task_for_a_connected_agent_is_stored_assigned_and_the_sweep_sees_only_pending_ones() {
    on_each_backend(|_, store| async move {
        let (cluster, [agent, other]) = enrolled(&*store, ["N1", "N2"], 2).await;
        let pending = task_for(&*store, &other).await;
        let lease = later(30);
        let assigned = store
            .create_task(&NewTask {
                cluster_id: agent.cluster_id,
                node: &agent.node,
                agent_id: Some(agent.id),
                action: &echo(),
                created_by: "test",
                id: None,
                lease_deadline: Some(lease),
            })
            .await
            .unwrap();
        assert_eq!(
            (assigned.state, assigned.attempt, assigned.generation),
            (TaskState::Assigned, 1, 1)
        );
        assert!(assigned.lease_deadline.is_some());
        assert_eq!(store.get_task(assigned.id).await.unwrap(), assigned);
        // A lease without an agent makes no sense: such a task waits, pending.
        let cluster_task = store
            .create_task(&NewTask {
                cluster_id: cluster.id,
                node: "",
                agent_id: None,
                action: &echo(),
                created_by: "test",
                id: None,
                lease_deadline: Some(lease),
            })
            .await
            .unwrap();
        assert_eq!(
            (cluster_task.state, cluster_task.generation),
            (TaskState::Pending, 0)
        );
        let ids: Vec<Uuid> = store
            .pending_tasks(10)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(ids, vec![pending.id, cluster_task.id]);
        // An assigned task's result is fenced by generation 1, like any other assignment.
        let done = store
            .complete_task(
                agent.id,
                &assigned.task_ref(),
                &TaskOutcome::Succeeded(serde_json::json!({"ok": true})),
                None,
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
    })
    .await;
}

#[tokio::test]
async fn revocations_are_listed_after_a_point_in_time() {
    on_each_backend(|_, store| async move {
        let (_, [first, second]) = enrolled(&*store, ["N1", "N2"], 2).await;
        let before = Utc::now() - chrono::TimeDelta::seconds(1);
        assert!(store.revoked_agents_since(before).await.unwrap().is_empty());
        store.revoke_agent(first.id, Utc::now()).await.unwrap();
        let at = Utc::now() + chrono::TimeDelta::milliseconds(5);
        store.revoke_agent(second.id, at).await.unwrap();
        let revoked = store.revoked_agents_since(before).await.unwrap();
        assert_eq!(
            revoked.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![first.id, second.id]
        );
        let after_first = store.revoked_agents_since(revoked[0].1).await.unwrap();
        assert_eq!(
            after_first.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            vec![second.id]
        );
    })
    .await;
}

#[tokio::test]
async fn tasks_are_assigned_once_per_generation_and_fenced() {
    on_each_backend(|_, store| async move {
        let (_, [agent, other]) = enrolled(&*store, ["N1", "N2"], 2).await;

        let task = task_for(&*store, &agent).await;
        assert_eq!(
            (
                task.state,
                task.attempt,
                task.generation,
                task.lease_deadline
            ),
            (TaskState::Pending, 1, 0, None)
        );
        assert_eq!(task.action, echo());
        assert_eq!(store.get_task(task.id).await.unwrap(), task);
        assert_eq!(
            store.get_task(Uuid::now_v7()).await.unwrap_err().code,
            ErrorCode::NotFound
        );
        assert_eq!(
            store.tasks_to_deliver(agent.id, 10).await.unwrap(),
            vec![task.clone()]
        );
        assert!(
            store
                .tasks_to_deliver(other.id, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let assigned = store
            .assign_task(task.id, agent.id, later(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (assigned.state, assigned.generation),
            (TaskState::Assigned, 1)
        );
        assert!(assigned.lease_deadline.is_some());
        assert_eq!(
            store
                .assign_task(task.id, agent.id, later(30), Utc::now())
                .await
                .unwrap(),
            None,
            "assigned once"
        );
        assert_eq!(
            store.tasks_to_deliver(agent.id, 10).await.unwrap(),
            vec![assigned.clone()],
            "in flight tasks are delivered again"
        );

        let current = assigned.task_ref();
        let stale = TaskRef {
            generation: 0,
            ..current
        };
        // Leases: only the current attempt, held by its agent, is renewed.
        assert_eq!(
            store
                .renew_leases(agent.id, &[stale], later(60), Utc::now())
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .renew_leases(other.id, &[current], later(60), Utc::now())
                .await
                .unwrap(),
            0
        );
        assert_eq!(
            store
                .renew_leases(agent.id, &[current], later(60), Utc::now())
                .await
                .unwrap(),
            1
        );
        let running = store.get_task(task.id).await.unwrap();
        assert_eq!(running.state, TaskState::Running);
        assert!(running.lease_deadline.unwrap() > assigned.lease_deadline.unwrap());

        let progress = TaskProgress {
            done: 3,
            total: Some(10),
            message: "copying".into(),
            at: Utc::now(),
        };
        assert!(
            !store
                .record_progress(other.id, &current, &progress, later(60))
                .await
                .unwrap()
        );
        assert!(
            store
                .record_progress(agent.id, &current, &progress, later(60))
                .await
                .unwrap()
        );
        let reported = store.get_task(task.id).await.unwrap().progress.unwrap();
        assert_eq!((reported.done, reported.total), (3, Some(10)));

        // Results: stale, other agent's, then the real one once.
        let outcome = TaskOutcome::Succeeded(serde_json::json!({"text": "hi"}));
        assert_eq!(
            store
                .complete_task(agent.id, &stale, &outcome, None, Utc::now())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .complete_task(other.id, &current, &outcome, None, Utc::now())
                .await
                .unwrap(),
            None
        );
        let done = store
            .complete_task(agent.id, &current, &outcome, None, Utc::now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(done.state, TaskState::Succeeded);
        assert_eq!(done.result, Some(serde_json::json!({"text": "hi"})));
        assert_eq!(done.lease_deadline, None);
        assert_eq!(store.get_task(task.id).await.unwrap(), done);
        let kept = done.progress.as_ref().unwrap();
        assert_eq!(
            (kept.done, kept.total),
            (3, Some(10)),
            "no new progress: kept"
        );
        assert_eq!(
            store
                .complete_task(agent.id, &current, &outcome, None, Utc::now())
                .await
                .unwrap(),
            None,
            "a duplicate changes nothing"
        );
        assert!(
            store
                .tasks_to_deliver(agent.id, 10)
                .await
                .unwrap()
                .is_empty()
        );

        let failing = task_for(&*store, &agent).await;
        let failing = store
            .assign_task(failing.id, agent.id, later(30), Utc::now())
            .await
            .unwrap()
            .unwrap();
        let error = TaskError {
            kind: "io".into(),
            message: "disk full".into(),
            retryable: true,
        };
        let failed = store
            .complete_task(
                agent.id,
                &failing.task_ref(),
                &TaskOutcome::Failed(error.clone()),
                Some(&TaskProgress {
                    done: 7,
                    total: Some(7),
                    message: "gave up".into(),
                    at: Utc::now(),
                }),
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (failed.state, &failed.error, &failed.result),
            (TaskState::Failed, &Some(error.clone()), &None)
        );
        // The last progress came with the result: stored in the same write.
        let last = failed.progress.as_ref().unwrap();
        assert_eq!((last.done, last.message.as_str()), (7, "gave up"));
        assert_eq!(store.get_task(failing.id).await.unwrap(), failed);
        // What the scheduler settles steps on: each outcome, without reading the tasks whole.
        let mut statuses = store.task_statuses(&[task.id, failing.id]).await.unwrap();
        statuses.sort_by_key(|s| s.id == failing.id);
        assert_eq!(
            statuses
                .into_iter()
                .map(|s| (s.state, s.result, s.error))
                .collect::<Vec<_>>(),
            vec![
                (
                    TaskState::Succeeded,
                    Some(serde_json::json!({"text": "hi"})),
                    None
                ),
                (TaskState::Failed, None, Some(error)),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn expired_leases_become_lost_attempts() {
    on_each_backend(|_, store| async move {
        let (_, [agent]) = enrolled(&*store, ["N1"], 1).await;
        let short = task_for(&*store, &agent).await;
        let long = task_for(&*store, &agent).await;
        let pending = task_for(&*store, &agent).await;
        let short = store
            .assign_task(short.id, agent.id, later(10), Utc::now())
            .await
            .unwrap()
            .unwrap();
        store
            .assign_task(long.id, agent.id, later(100), Utc::now())
            .await
            .unwrap()
            .unwrap();

        assert!(store.expire_leases(Utc::now()).await.unwrap().is_empty());
        let lost = store.expire_leases(later(50)).await.unwrap();
        assert_eq!(
            lost.iter().map(|t| t.id).collect::<Vec<_>>(),
            vec![short.id]
        );
        assert_eq!(lost[0].state, TaskState::Lost);
        assert_eq!(lost[0].error.as_ref().unwrap().kind, "lost");
        assert!(
            store.expire_leases(later(50)).await.unwrap().is_empty(),
            "lost once"
        );
        assert_eq!(
            store.get_task(pending.id).await.unwrap().state,
            TaskState::Pending
        );
        // A late result of the lost attempt is refused; so is a heartbeat.
        let outcome = TaskOutcome::Succeeded(serde_json::json!(null));
        assert_eq!(
            store
                .complete_task(agent.id, &short.task_ref(), &outcome, None, Utc::now())
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store
                .renew_leases(agent.id, &[short.task_ref()], later(200), Utc::now())
                .await
                .unwrap(),
            0
        );

        // A starting server gives the rest a full term.
        let term = later(300);
        assert_eq!(store.extend_leases(term).await.unwrap(), 1);
        assert_eq!(
            store.extend_leases(term).await.unwrap(),
            0,
            "only ever lengthened"
        );
        assert!(store.expire_leases(later(200)).await.unwrap().is_empty());
        assert_eq!(store.expire_leases(later(400)).await.unwrap().len(), 1);
    })
    .await;
}

/// The scheduler's batch write: groups whose version moved are skipped and say so, the others
/// are written with their tasks and events; what jobs hold and the newest event are read back.
#[tokio::test]
async fn save_groups_writes_each_group_over_its_version() {
    on_each_backend(|_, store| async move {
        let cluster = store.create_cluster(&new_cluster("OLD")).await.unwrap();
        let request: ferry::model::JobRequest =
            serde_json::from_value(serde_json::json!({"source": "OLD", "target": "NEW"})).unwrap();
        let group = |name: &str| -> ferry::model::JobGroup {
            serde_json::from_value(serde_json::json!({
                "name": name, "state": "pending", "route": ["OLD", "NEW"], "steps": [],
                "version": 1,
            }))
            .unwrap()
        };
        let groups = vec![group("FS1"), group("FS2"), group("FS3")];
        let job_id = Uuid::now_v7();
        let holds = vec!["group:x:fs1".to_owned(), "disk:x:cluster disk 1".to_owned()];
        store
            .create_job(&ferry::store::NewJob {
                id: job_id,
                name: "j",
                request: &request,
                created_by: "test",
                groups: &groups,
                holds: &holds,
                at: Utc::now(),
            })
            .await
            .unwrap();
        let versions = store.job_group_versions(job_id).await.unwrap();
        assert_eq!(
            versions,
            vec![("FS1".into(), 1), ("FS2".into(), 1), ("FS3".into(), 1)]
        );
        let active = |jobs: Vec<ferry::store::ActiveJob>| {
            jobs.into_iter()
                .find(|j| j.id == job_id)
                .expect("the new job is active")
        };
        let fresh = active(store.active_jobs().await.unwrap());
        assert_eq!(fresh.state, ferry::model::JobState::Running);
        assert_eq!(fresh.groups_written, 0);
        // FS2 was changed by someone else since it was read.
        let mut fs2 = groups[1].clone();
        fs2.error = Some("operator".into());
        store
            .save_group(
                job_id,
                &ferry::store::GroupUpdate {
                    group: &fs2,
                    task: None,
                    baseline: None,
                    events: &[],
                    at: Utc::now(),
                },
            )
            .await
            .unwrap()
            .map(|saved| assert_eq!(saved.groups_written, 1, "the operator's write counts"))
            .unwrap();
        let event = |g: &str| ferry::model::NewJobEvent {
            kind: "group",
            group: Some(g.to_owned()),
            step: None,
            state: "preparing".into(),
            message: None,
            output: None,
            data: None,
        };
        let events = [vec![event("FS1")], vec![event("FS2")], vec![event("FS3")]];
        let action = Action::ReadInventory {};
        let task_ids = [Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7()];
        let mut next = groups.clone();
        for g in &mut next {
            g.state = ferry::model::GroupState::Preparing;
        }
        let updates: Vec<ferry::store::GroupUpdate<'_>> = next
            .iter()
            .zip(&events)
            .zip(&task_ids)
            .map(|((g, events), id)| ferry::store::GroupUpdate {
                group: g,
                task: Some(NewTask {
                    cluster_id: cluster.id,
                    node: "",
                    agent_id: None,
                    action: &action,
                    created_by: "scheduler",
                    id: Some(*id),
                    lease_deadline: None,
                }),
                baseline: None,
                events,
                at: Utc::now(),
            })
            .collect();
        let saved = store.save_groups(job_id, &updates).await.unwrap();
        assert_eq!(saved.len(), 3);
        assert_eq!(saved[0].as_ref().unwrap().version, 2);
        assert!(saved[1].is_none(), "FS2's version moved on");
        assert_eq!(saved[2].as_ref().unwrap().version, 2);
        // One transaction, one count: a reader that saw 1 and wrote once knows nobody else did.
        assert_eq!(saved[0].as_ref().unwrap().groups_written, 2);
        assert_eq!(saved[2].as_ref().unwrap().groups_written, 2);
        assert_eq!(active(store.active_jobs().await.unwrap()).groups_written, 2);
        // A write refused for every group counts nothing.
        let stale = ferry::store::GroupUpdate {
            group: &groups[0],
            task: None,
            baseline: None,
            events: &[],
            at: Utc::now(),
        };
        assert!(store.save_group(job_id, &stale).await.unwrap().is_none());
        assert_eq!(active(store.active_jobs().await.unwrap()).groups_written, 2);
        // FS2's task and event were not written; the others' were.
        let tasks = store.get_tasks(&task_ids).await.unwrap();
        let mut stored: Vec<Uuid> = tasks.iter().map(|t| t.id).collect();
        stored.sort();
        assert_eq!(stored, vec![task_ids[0], task_ids[2]]);
        let mut statuses: Vec<_> = store
            .task_statuses(&task_ids)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t.id, t.state, t.result, t.error))
            .collect();
        statuses.sort_by_key(|s| s.0);
        assert_eq!(
            statuses,
            vec![
                (task_ids[0], ferry::model::TaskState::Pending, None, None),
                (task_ids[2], ferry::model::TaskState::Pending, None, None)
            ]
        );
        let named = store
            .job_groups_named(job_id, &["FS3".into(), "FS2".into()])
            .await
            .unwrap();
        assert_eq!(named.len(), 2);
        assert_eq!((named[0].name.as_str(), named[0].version), ("FS2", 2));
        assert_eq!(named[0].error.as_deref(), Some("operator"));
        assert_eq!(named[0].state, ferry::model::GroupState::Pending);
        assert_eq!((named[1].name.as_str(), named[1].version), ("FS3", 2));
        let logged = store
            .job_events(
                &ferry::store::EventFilter {
                    job_id: Some(job_id),
                    ..Default::default()
                },
                0,
                100,
            )
            .await
            .unwrap();
        let grouped: Vec<_> = logged.iter().filter_map(|e| e.group.clone()).collect();
        assert_eq!(grouped, vec!["FS1".to_owned(), "FS3".to_owned()]);
        assert_eq!(
            store.newest_event_seq(Some(job_id)).await.unwrap(),
            logged.last().unwrap().seq
        );
        assert_eq!(
            store.newest_event_seq(Some(Uuid::now_v7())).await.unwrap(),
            0
        );
        // Holds: which of the asked keys an unfinished job has.
        let held = store
            .job_holders(&["disk:x:cluster disk 1".into(), "group:x:fs9".into()])
            .await
            .unwrap();
        assert_eq!(held, vec![("disk:x:cluster disk 1".to_owned(), job_id)]);
    })
    .await;
}

#[tokio::test]
async fn validations_are_numbered_per_cluster_and_settled_once() {
    use ferry::agent::driver::{ConfigFacts, QuorumFacts, QuorumType};
    use ferry::model::{Validation, ValidationState};
    use ferry::validation::Thresholds;
    on_each_backend(|_, store| async move {
        let old = store.create_cluster(&new_cluster("FS-OLD")).await.unwrap();
        let new = store.create_cluster(&new_cluster("FS-NEW")).await.unwrap();
        let draft = |cluster: &ferry::model::Cluster| Validation {
            id: Uuid::now_v7(),
            cluster_id: cluster.id,
            cluster: String::new(),
            version: 0,
            state: ValidationState::Gathering,
            task_id: Some(Uuid::now_v7()),
            thresholds: Thresholds::default(),
            facts: None,
            findings: Vec::new(),
            overall: None,
            error: None,
            created_by: "ops".into(),
            created_at: Utc::now(),
            completed_at: None,
        };
        let first = store.create_validation(&draft(&old)).await.unwrap();
        let second = store.create_validation(&draft(&old)).await.unwrap();
        let other = store.create_validation(&draft(&new)).await.unwrap();
        assert_eq!((first.version, second.version, other.version), (1, 2, 1));
        assert_eq!(first.cluster, "FS-OLD");
        assert_eq!(store.get_validation(first.id).await.unwrap(), first);

        let versions = |page: Vec<Validation>| page.iter().map(|v| v.version).collect::<Vec<_>>();
        assert_eq!(
            versions(store.list_validations(old.id, 10, None).await.unwrap()),
            [2, 1],
            "newest first"
        );
        assert_eq!(
            versions(store.list_validations(old.id, 10, Some(2)).await.unwrap()),
            [1]
        );

        // Settled once: a second settling changes nothing.
        let mut done = first.clone();
        done.complete(
            ConfigFacts {
                quorum: Some(QuorumFacts {
                    quorum_type: QuorumType::NodeMajority,
                    node_count: 3,
                }),
                ..Default::default()
            },
            Utc::now(),
        );
        assert!(store.finish_validation(&done).await.unwrap());
        let stored = store.get_validation(first.id).await.unwrap();
        assert_eq!(stored.state, ValidationState::Completed);
        assert_eq!(stored.findings, done.findings);
        assert_eq!(stored.facts, done.facts);
        assert!(stored.overall.is_some());
        assert_eq!(stored.overall, done.overall);
        assert!(stored.completed_at.is_some());
        let mut late = first.clone();
        late.fail("too late".into(), Utc::now());
        assert!(!store.finish_validation(&late).await.unwrap());
        assert_eq!(store.get_validation(first.id).await.unwrap(), stored);

        let missing = store.get_validation(Uuid::now_v7()).await.unwrap_err();
        assert_eq!(missing.code, ErrorCode::NotFound);
        // Deleting the cluster deletes its validations.
        store.delete_cluster(old.id, None).await.unwrap();
        assert_eq!(
            store.get_validation(second.id).await.unwrap_err().code,
            ErrorCode::NotFound
        );
    })
    .await;
}

/// One replica posts each webhook batch: a claim holds until it runs out, is refused once the
/// mark moved, and a record older than the stored mark leaves it where it is.
#[tokio::test]
async fn a_webhook_batch_is_claimed_once_and_its_mark_never_moves_back() {
    on_each_backend(|_, store| async move {
        let now = Utc::now();
        let hook = ferry::model::Webhook {
            id: Uuid::now_v7(),
            url: "http://127.0.0.1:9/hook".into(),
            secret: "s".into(),
            job_id: None,
            delivered: 0,
            failures: 0,
            next_attempt: None,
            last_error: None,
            created_by: "test".into(),
            created_at: now,
        };
        store.create_webhook(&hook).await.unwrap();
        let until = now + chrono::Duration::seconds(30);
        assert!(
            store
                .claim_webhook_delivery(hook.id, 0, now, until)
                .await
                .unwrap()
        );
        // Held: another replica reading the same mark is refused until the claim runs out.
        assert!(
            !store
                .claim_webhook_delivery(hook.id, 0, now, until)
                .await
                .unwrap()
        );
        let later = until + chrono::Duration::seconds(1);
        assert!(
            store
                .claim_webhook_delivery(hook.id, 0, later, later + chrono::Duration::seconds(30))
                .await
                .unwrap()
        );
        let delivered = |mark: i64| ferry::model::WebhookDelivery {
            delivered: mark,
            failures: 0,
            next_attempt: None,
            last_error: None,
        };
        store
            .record_webhook_delivery(hook.id, &delivered(5))
            .await
            .unwrap();
        // A replica that read the old mark cannot claim; one that read the new one can.
        assert!(
            !store
                .claim_webhook_delivery(hook.id, 0, now, until)
                .await
                .unwrap()
        );
        store
            .record_webhook_delivery(hook.id, &delivered(3))
            .await
            .unwrap();
        let stored = store.list_webhooks().await.unwrap();
        assert_eq!(stored[0].delivered, 5, "the mark moved back");
        assert!(
            store
                .claim_webhook_delivery(hook.id, 5, now, until)
                .await
                .unwrap()
        );
        assert!(store.delete_webhook(hook.id).await.unwrap());
        assert!(
            !store
                .claim_webhook_delivery(hook.id, 5, later, later)
                .await
                .unwrap()
        );
    })
    .await;
}

/// A period of timed work goes to the first replica that claims it, and to the next only once
/// it ran out, by the database's clock; each duty has its own periods. On SQLite the one server
/// has them all.
#[tokio::test]
async fn a_period_of_timed_work_goes_to_one_replica() {
    on_each_backend(|_, store| async move {
        let hold = std::time::Duration::from_millis(300);
        let claim = |duty: &'static str, holder: &'static str| {
            let store = store.clone();
            async move { store.claim_period(duty, holder, hold).await.unwrap() }
        };
        assert!(claim("reap", "a").await);
        let shared = store.backend() == Backend::Postgres;
        assert_eq!(claim("reap", "b").await, !shared);
        assert_eq!(
            claim("reap", "a").await,
            !shared,
            "a period is done once, even by its holder"
        );
        assert!(claim("perf_compaction", "b").await);
        tokio::time::sleep(hold + std::time::Duration::from_millis(50)).await;
        assert!(claim("reap", "b").await);
        assert_eq!(claim("reap", "a").await, !shared);
    })
    .await;
}
