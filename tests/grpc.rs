//! The gRPC API through a real server on port 0 and real TCP, with the generated clients: every
//! method, the error codes, health and reflection, on SQLite and (when configured) Postgres.

mod common;

use std::sync::Arc;

use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use ferry::config::Config;
use ferry::model::{Access, InventoryDocument};
use ferry::protocol::pb;
use ferry::protocol::pb::admin_service_client::AdminServiceClient;
use ferry::protocol::pb::inventory_service_client::InventoryServiceClient;
use ferry::server::{RunningServer, start_with_store};
use ferry::store::Store;

use common::{
    BOOTSTRAP, PreparedInventory, authed, on_each_backend, sample_inventory, sqlite_store,
};

/// A running server and a channel to its gRPC port.
struct Harness {
    server: RunningServer,
    channel: Channel,
    _dir: Option<tempfile::TempDir>,
}

impl Harness {
    async fn start(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Self {
        let config = Config {
            http_addr: "127.0.0.1:0".parse().unwrap(),
            grpc_addr: "127.0.0.1:0".parse().unwrap(),
            bootstrap_token: Some(BOOTSTRAP.into()),
            ..Default::default()
        };
        let server = start_with_store(&config, store)
            .await
            .expect("server starts");
        let channel = Channel::from_shared(format!("http://{}", server.grpc_addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the gRPC port");
        Self {
            server,
            channel,
            _dir: dir,
        }
    }

    async fn sqlite() -> Self {
        let (store, dir) = sqlite_store().await;
        Self::start(store, Some(dir)).await
    }

    fn inventory(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.channel.clone())
    }

    fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.channel.clone())
    }

    /// A fresh token with `role`, created over gRPC by the bootstrap admin.
    async fn token(&self, name: &str, role: pb::Role) -> String {
        let created = self
            .admin()
            .create_token(authed(
                BOOTSTRAP,
                pb::CreateTokenRequest {
                    name: name.into(),
                    role: role as i32,
                    ..Default::default()
                },
            ))
            .await
            .expect("create token")
            .into_inner();
        assert!(!created.replayed);
        created
            .created
            .unwrap()
            .token
            .expect("a new token carries its secret")
    }

    async fn create_cluster(&self, name: &str) -> pb::Cluster {
        self.inventory()
            .create_cluster(authed(
                BOOTSTRAP,
                pb::CreateClusterRequest {
                    name: name.into(),
                    os: pb::OsGeneration::Ws2003 as i32,
                    description: format!("cluster {name}"),
                    ..Default::default()
                },
            ))
            .await
            .expect("create cluster")
            .into_inner()
            .cluster
            .unwrap()
    }

    async fn import(
        &self,
        cluster: &str,
        document: &InventoryDocument,
    ) -> pb::ImportInventoryResponse {
        self.inventory()
            .import_inventory(authed(
                BOOTSTRAP,
                pb::ImportInventoryRequest {
                    cluster: cluster.into(),
                    inventory: Some(to_pb(document)),
                    if_match: String::new(),
                },
            ))
            .await
            .expect("import inventory")
            .into_inner()
    }

    /// A raw HTTP/1.1 exchange with the REST port: (status, body). The REST side of the same
    /// server, to show both transports give the same answers.
    async fn rest_get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        common::http(self.server.http_addr, "GET", path, token, None).await
    }

    async fn stop(self) {
        drop(self.channel);
        self.server.stop().await.expect("server stops cleanly");
    }
}

#[track_caller]
fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

// ---- domain -> protobuf, independently of the server's conversion -------------------------------

fn to_pb(d: &InventoryDocument) -> pb::InventoryDocument {
    // Through the REST JSON form: the test then also checks that the two encodings agree.
    let json = serde_json::to_value(d).unwrap();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let enum_of = |v: &serde_json::Value, parse: fn(&str) -> Option<i32>, prefix: &str| {
        parse(&format!("{prefix}_{}", text(v).to_uppercase())).unwrap_or_else(|| panic!("{v}"))
    };
    let strukt = |v: &serde_json::Value| prost_struct(v.as_object().cloned().unwrap_or_default());
    pb::InventoryDocument {
        nodes: json["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| pb::Node {
                name: text(&n["name"]),
                address: text(&n["address"]),
                processor: Some(pb::Processor {
                    vendor: text(&n["processor"]["vendor"]),
                    model: text(&n["processor"]["model"]),
                }),
                facts: Some(strukt(&n["facts"])),
            })
            .collect(),
        networks: json["networks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| pb::Network {
                name: text(&n["name"]),
                role: enum_of(
                    &n["role"],
                    |s| pb::NetworkRole::from_str_name(s).map(|e| e as i32),
                    "NETWORK_ROLE",
                ),
                metric: n["metric"].as_i64().unwrap(),
                subnet: text(&n["subnet"]),
            })
            .collect(),
        disks: json["disks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| pb::Disk {
                resource: text(&d["resource"]),
                drive_letter: d["drive_letter"].as_str().map(String::from),
                size_bytes: d["size_bytes"].as_i64().unwrap(),
                free_bytes: d["free_bytes"].as_i64().unwrap(),
                csv: d["csv"].as_bool().unwrap(),
            })
            .collect(),
        groups: json["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| pb::Group {
                name: text(&g["name"]),
                owner_node: g["owner_node"].as_str().map(String::from),
                state: enum_of(
                    &g["state"],
                    |s| pb::ResourceState::from_str_name(s).map(|e| e as i32),
                    "RESOURCE_STATE",
                ),
                resources: g["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| pb::Resource {
                        name: text(&r["name"]),
                        kind: enum_of(
                            &r["kind"],
                            |s| pb::ResourceKind::from_str_name(s).map(|e| e as i32),
                            "RESOURCE_KIND",
                        ),
                        state: enum_of(
                            &r["state"],
                            |s| pb::ResourceState::from_str_name(s).map(|e| e as i32),
                            "RESOURCE_STATE",
                        ),
                        properties: Some(strukt(&r["properties"])),
                        depends_on: r["depends_on"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(text)
                            .collect(),
                    })
                    .collect(),
                shares: g["shares"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| pb::Share {
                        name: text(&s["name"]),
                        path: text(&s["path"]),
                        description: text(&s["description"]),
                        permissions: s["permissions"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| pb::Permission {
                                principal: text(&p["principal"]),
                                r#type: enum_of(
                                    &p["type"],
                                    |s| pb::AceType::from_str_name(s).map(|e| e as i32),
                                    "ACE_TYPE",
                                ),
                                access: enum_of(
                                    &p["access"],
                                    |s| pb::Access::from_str_name(s).map(|e| e as i32),
                                    "ACCESS",
                                ),
                            })
                            .collect(),
                        caching: enum_of(
                            &s["caching"],
                            |s| pb::CachingMode::from_str_name(s).map(|e| e as i32),
                            "CACHING_MODE",
                        ),
                        access_based_enumeration: s["access_based_enumeration"].as_bool().unwrap(),
                        continuous_availability: s["continuous_availability"].as_bool().unwrap(),
                        encrypt_data: s["encrypt_data"].as_bool().unwrap(),
                        user_limit: s["user_limit"].as_i64(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn prost_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(prost_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(prost_struct(map.clone())),
    };
    prost_types::Value { kind: Some(kind) }
}

fn prost_struct(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), prost_value(v)))
            .collect(),
    }
}

// ---- clusters -----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_lifecycle() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store, None).await;
        let mut inv = h.inventory();

        // Create, with an idempotency key: the retry is a replay, not a duplicate.
        let create = pb::CreateClusterRequest {
            name: "FS-OLD".into(),
            os: pb::OsGeneration::Ws2003 as i32,
            description: "the old one".into(),
            idempotency_key: "create-fs-old".into(),
            discovery_interval_seconds: None,
        };
        let first = inv
            .create_cluster(authed(BOOTSTRAP, create.clone()))
            .await
            .unwrap()
            .into_inner();
        assert!(!first.replayed);
        let cluster = first.cluster.unwrap();
        assert_eq!(cluster.name, "FS-OLD");
        assert_eq!(cluster.os, pb::OsGeneration::Ws2003 as i32);
        assert_eq!(cluster.version, 1);
        assert_eq!(cluster.etag, "\"v1\"");
        assert_eq!(cluster.latest_snapshot, None);
        assert!(cluster.created_at.is_some());
        let replay = inv
            .create_cluster(authed(BOOTSTRAP, create.clone()))
            .await
            .unwrap()
            .into_inner();
        assert!(replay.replayed);
        assert_eq!(replay.cluster.unwrap().id, cluster.id);
        let other_body = pb::CreateClusterRequest {
            name: "FS-OTHER".into(),
            ..create.clone()
        };
        let status = assert_code(
            inv.create_cluster(authed(BOOTSTRAP, other_body)).await,
            Code::InvalidArgument,
        );
        assert!(
            status.message().contains("Idempotency-Key"),
            "{}",
            status.message()
        );

        // Duplicate name.
        let duplicate = pb::CreateClusterRequest {
            idempotency_key: String::new(),
            ..create
        };
        assert_code(
            inv.create_cluster(authed(BOOTSTRAP, duplicate)).await,
            Code::AlreadyExists,
        );

        // Get by name and by id; the REST answer is the same cluster.
        let by_name = inv
            .get_cluster(authed(
                BOOTSTRAP,
                pb::GetClusterRequest {
                    cluster: "FS-OLD".into(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let by_id = inv
            .get_cluster(authed(
                BOOTSTRAP,
                pb::GetClusterRequest {
                    cluster: cluster.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_name, cluster);
        assert_eq!(by_id, cluster);
        let (status, body) = h.rest_get("/v1/clusters/FS-OLD", Some(BOOTSTRAP)).await;
        assert_eq!(status, 200);
        let rest: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(rest["id"], cluster.id.as_str());
        assert_eq!(rest["os"], "ws2003");
        assert_eq!(rest["version"], 1);

        // List with paging.
        h.create_cluster("FS-NEW").await;
        h.create_cluster("FS-MID").await;
        let mut names = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = inv
                .list_clusters(authed(
                    BOOTSTRAP,
                    pb::ListClustersRequest { limit: 2, cursor },
                ))
                .await
                .unwrap()
                .into_inner();
            assert!(page.clusters.len() <= 2);
            names.extend(page.clusters.into_iter().map(|c| c.name));
            if page.next.is_empty() {
                break;
            }
            cursor = page.next;
        }
        assert_eq!(names, ["FS-MID", "FS-NEW", "FS-OLD"]);
        let all = inv
            .list_clusters(authed(BOOTSTRAP, pb::ListClustersRequest::default()))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(all.clusters.len(), 3, "limit 0 means the default page size");
        assert!(all.next.is_empty());
        assert_code(
            inv.list_clusters(authed(
                BOOTSTRAP,
                pb::ListClustersRequest {
                    limit: 5000,
                    cursor: String::new(),
                },
            ))
            .await,
            Code::InvalidArgument,
        );

        // Update: only the set fields change; a stale if_match is refused.
        let updated = inv
            .update_cluster(authed(
                BOOTSTRAP,
                pb::UpdateClusterRequest {
                    cluster: "FS-OLD".into(),
                    os: Some(pb::OsGeneration::Ws2008 as i32),
                    if_match: cluster.etag.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(updated.os, pb::OsGeneration::Ws2008 as i32);
        assert_eq!(updated.description, "the old one");
        assert_eq!(updated.version, 2);
        let stale = pb::UpdateClusterRequest {
            cluster: "FS-OLD".into(),
            description: Some("again".into()),
            if_match: cluster.etag.clone(),
            ..Default::default()
        };
        assert_code(
            inv.update_cluster(authed(BOOTSTRAP, stale)).await,
            Code::FailedPrecondition,
        );
        let taken = pb::UpdateClusterRequest {
            cluster: "FS-OLD".into(),
            name: Some("FS-NEW".into()),
            ..Default::default()
        };
        assert_code(
            inv.update_cluster(authed(BOOTSTRAP, taken)).await,
            Code::AlreadyExists,
        );
        let unspecified = pb::UpdateClusterRequest {
            cluster: "FS-OLD".into(),
            os: Some(pb::OsGeneration::Unspecified as i32),
            ..Default::default()
        };
        let status = assert_code(
            inv.update_cluster(authed(BOOTSTRAP, unspecified)).await,
            Code::InvalidArgument,
        );
        assert!(status.message().starts_with("os:"), "{}", status.message());

        // Delete: stale if_match refused, current one accepted; then it is gone.
        let delete = |if_match: &str| {
            authed(
                BOOTSTRAP,
                pb::DeleteClusterRequest {
                    cluster: "FS-OLD".into(),
                    if_match: if_match.into(),
                },
            )
        };
        assert_code(
            inv.delete_cluster(delete("\"v1\"")).await,
            Code::FailedPrecondition,
        );
        inv.delete_cluster(delete(&updated.etag)).await.unwrap();
        assert_code(
            inv.get_cluster(authed(
                BOOTSTRAP,
                pb::GetClusterRequest {
                    cluster: "FS-OLD".into(),
                },
            ))
            .await,
            Code::NotFound,
        );
        assert_code(inv.delete_cluster(delete("")).await, Code::NotFound);
        let (status, _) = h.rest_get("/v1/clusters/FS-OLD", Some(BOOTSTRAP)).await;
        assert_eq!(status, 404);

        drop(inv);
        h.stop().await;
    })
    .await;
}

// ---- inventory ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_import_snapshots_groups_shares_and_diff() {
    on_each_backend(|_, store| async move {
        let h = Harness::start(store, None).await;
        let mut inv = h.inventory();
        h.create_cluster("FS-SRC").await;

        // Import: the snapshot hash equals the one a REST import computes, so the gRPC encoding
        // loses nothing.
        let document = sample_inventory(3, 12, 4);
        let expected = PreparedInventory::new(document.clone());
        let first = h.import("FS-SRC", &document).await;
        assert!(first.created);
        let info = first.snapshot.unwrap();
        assert_eq!(info.number, 1);
        assert_eq!(info.content_hash, expected.hash);
        assert_eq!(info.created_by, "bootstrap");
        let counts = info.counts.unwrap();
        assert_eq!(
            (counts.groups, counts.shares, counts.permissions),
            (3, 36, 144)
        );
        let again = h.import("FS-SRC", &document).await;
        assert!(!again.created, "identical content makes no new snapshot");
        assert_eq!(again.snapshot.unwrap().number, 1);

        // if_match on import: a wrong hash is refused; the current one is accepted.
        let mut changed = document.clone();
        let removed_share = changed.groups[1].shares.remove(3).name;
        changed.groups[0].shares[0].permissions[0].access = Access::Full;
        let mut import = pb::ImportInventoryRequest {
            cluster: "FS-SRC".into(),
            inventory: Some(to_pb(&changed)),
            if_match: "sha256:0000".into(),
        };
        assert_code(
            inv.import_inventory(authed(BOOTSTRAP, import.clone()))
                .await,
            Code::FailedPrecondition,
        );
        import.if_match = format!("\"{}\"", info.content_hash);
        let second = inv
            .import_inventory(authed(BOOTSTRAP, import))
            .await
            .unwrap()
            .into_inner();
        assert!(second.created);
        assert_eq!(second.snapshot.as_ref().unwrap().number, 2);

        // Snapshots.
        let listed = inv
            .list_snapshots(authed(
                BOOTSTRAP,
                pb::ListSnapshotsRequest {
                    cluster: "FS-SRC".into(),
                    limit: 1,
                    cursor: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.snapshots.len(), 1);
        assert_eq!(listed.snapshots[0].number, 1);
        assert!(!listed.next.is_empty());
        let rest_of = inv
            .list_snapshots(authed(
                BOOTSTRAP,
                pb::ListSnapshotsRequest {
                    cluster: "FS-SRC".into(),
                    limit: 1,
                    cursor: listed.next,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(rest_of.snapshots[0].number, 2);
        let snapshot = inv
            .get_snapshot(authed(
                BOOTSTRAP,
                pb::GetSnapshotRequest {
                    cluster: "FS-SRC".into(),
                    number: 1,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(snapshot.info.unwrap().content_hash, expected.hash);
        assert_eq!(
            snapshot.inventory.unwrap(),
            to_pb(&expected.document),
            "the canonical document comes back whole"
        );
        assert_code(
            inv.get_snapshot(authed(
                BOOTSTRAP,
                pb::GetSnapshotRequest {
                    cluster: "FS-SRC".into(),
                    number: 9,
                },
            ))
            .await,
            Code::NotFound,
        );

        // Groups.
        let groups = inv
            .list_groups(authed(
                BOOTSTRAP,
                pb::ListGroupsRequest {
                    cluster: "FS-SRC".into(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let mut expected_groups: Vec<_> = changed.groups.iter().map(|g| g.name.clone()).collect();
        expected_groups.sort();
        assert_eq!(
            groups
                .groups
                .iter()
                .map(|g| g.name.clone())
                .collect::<Vec<_>>(),
            expected_groups
        );
        let summary = &groups.groups[0];
        assert_eq!(summary.cluster_name, "FS-SRC");
        assert_eq!(summary.resource_count, 4);
        let source_group = changed
            .groups
            .iter()
            .find(|g| g.name == summary.name)
            .unwrap();
        assert_eq!(summary.share_count, source_group.shares.len() as i64);

        let detail = inv
            .get_group(authed(
                BOOTSTRAP,
                pb::GetGroupRequest {
                    group: format!("FS-SRC/{}", summary.name),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(detail.group.as_ref().unwrap().id, summary.id);
        assert_eq!(detail.resources.len(), 4);
        assert!(
            detail
                .resources
                .iter()
                .any(|r| r.kind == pb::ResourceKind::FileServer as i32 && r.depends_on.len() == 2)
        );
        let by_id = inv
            .get_group(authed(
                BOOTSTRAP,
                pb::GetGroupRequest {
                    group: summary.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(by_id, detail);
        assert_code(
            inv.get_group(authed(
                BOOTSTRAP,
                pb::GetGroupRequest {
                    group: "FS-SRC/none".into(),
                },
            ))
            .await,
            Code::NotFound,
        );

        // Shares, with each filter and both together, against the document.
        let group_name = summary.name.clone();
        let shares = |name_prefix: &str, principal: &str| {
            let mut inv = inv.clone();
            let request = pb::ListSharesRequest {
                group: format!("FS-SRC/{group_name}"),
                name_prefix: name_prefix.into(),
                principal: principal.into(),
                ..Default::default()
            };
            async move {
                inv.list_shares(authed(BOOTSTRAP, request))
                    .await
                    .unwrap()
                    .into_inner()
                    .shares
                    .into_iter()
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
            }
        };
        let expect = |prefix: &str, principal: &str| {
            let mut names: Vec<_> = source_group
                .shares
                .iter()
                .filter(|s| s.name.to_lowercase().starts_with(&prefix.to_lowercase()))
                .filter(|s| {
                    principal.is_empty()
                        || s.permissions
                            .iter()
                            .any(|p| p.principal.eq_ignore_ascii_case(principal))
                })
                .map(|s| s.name.clone())
                .collect();
            names.sort();
            names
        };
        let all = shares("", "").await;
        assert_eq!(all, expect("", ""));
        assert_eq!(all.len(), source_group.shares.len());
        let prefixed = shares("share0", "").await;
        assert_eq!(prefixed, expect("share0", ""));
        assert!(!prefixed.is_empty() && prefixed.len() < all.len());
        let by_principal = shares("", "everyone").await;
        assert_eq!(by_principal, expect("", "everyone"));
        assert!(!by_principal.is_empty() && by_principal.len() < all.len());
        let both = shares("share0", "Everyone").await;
        assert_eq!(both, expect("share0", "Everyone"));
        let full = inv
            .list_shares(authed(
                BOOTSTRAP,
                pb::ListSharesRequest {
                    group: format!("FS-SRC/{group_name}"),
                    limit: 1,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(full.shares.len(), 1);
        assert!(!full.next.is_empty());
        let share = &full.shares[0];
        let source_share = source_group
            .shares
            .iter()
            .find(|s| s.name == share.name)
            .unwrap();
        assert_eq!(share.permissions.len(), source_share.permissions.len());
        assert_eq!(share.path, source_share.path);

        // Diff: the removed share and the changed permission, nothing else.
        let diff = inv
            .diff_snapshots(authed(
                BOOTSTRAP,
                pb::DiffSnapshotsRequest {
                    cluster: "FS-SRC".into(),
                    from: 1,
                    to: 2,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!((diff.from, diff.to), (1, 2));
        let summary = diff.summary.unwrap();
        assert_eq!(
            (summary.added + summary.removed + summary.changed + summary.renamed) as usize,
            diff.changes.len()
        );
        let removal = diff
            .changes
            .iter()
            .find(|c| c.kind == pb::ItemKind::Share as i32 && c.op == pb::ChangeOp::Removed as i32)
            .expect("the removed share is in the diff");
        assert_eq!(removal.share.as_deref(), Some(removed_share.as_str()));
        assert!(removal.before.is_some() && removal.after.is_none());
        let permission = diff
            .changes
            .iter()
            .find(|c| c.kind == pb::ItemKind::Permission as i32)
            .expect("the changed permission is in the diff");
        assert_eq!(
            permission.group.as_deref(),
            Some(changed.groups[0].name.as_str())
        );
        let same = inv
            .diff_snapshots(authed(
                BOOTSTRAP,
                pb::DiffSnapshotsRequest {
                    cluster: "FS-SRC".into(),
                    from: 2,
                    to: 2,
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert!(same.changes.is_empty());

        // The same diff over REST has the same changes.
        let (status, body) = h
            .rest_get("/v1/clusters/FS-SRC/snapshots/1/diff/2", Some(BOOTSTRAP))
            .await;
        assert_eq!(status, 200);
        let rest: serde_json::Value = serde_json::from_str(&body).unwrap();
        let rest_paths: Vec<_> = rest["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["path"].as_str().unwrap().to_string())
            .collect();
        let grpc_paths: Vec<_> = diff.changes.iter().map(|c| c.path.clone()).collect();
        assert_eq!(grpc_paths, rest_paths);

        drop(inv);
        h.stop().await;
    })
    .await;
}

// ---- errors -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_map_to_grpc_codes() {
    let h = Harness::sqlite().await;
    let mut inv = h.inventory();
    let get = || pb::GetClusterRequest {
        cluster: "nope".into(),
    };

    // Authentication.
    let status = assert_code(
        inv.get_cluster(Request::new(get())).await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("Bearer"), "{}", status.message());
    assert_code(
        inv.get_cluster(authed("not-a-token", get())).await,
        Code::Unauthenticated,
    );
    let mut basic = Request::new(get());
    basic
        .metadata_mut()
        .insert("authorization", "Basic Zm9vOmJhcg==".parse().unwrap());
    assert_code(inv.get_cluster(basic).await, Code::Unauthenticated);
    assert_code(
        inv.get_cluster(authed(BOOTSTRAP, get())).await,
        Code::NotFound,
    );

    // Roles.
    let viewer = h.token("viewer", pb::Role::Viewer).await;
    let create = pb::CreateClusterRequest {
        name: "FS-X".into(),
        os: pb::OsGeneration::Ws2019 as i32,
        ..Default::default()
    };
    let status = assert_code(
        inv.create_cluster(authed(&viewer, create.clone())).await,
        Code::PermissionDenied,
    );
    assert!(
        status.message().contains("operator"),
        "{}",
        status.message()
    );
    assert_code(
        h.admin()
            .list_tokens(authed(&viewer, pb::ListTokensRequest::default()))
            .await,
        Code::PermissionDenied,
    );
    inv.list_clusters(authed(&viewer, pb::ListClustersRequest::default()))
        .await
        .unwrap();

    // Input: unspecified and unknown enums, service validation, a missing document.
    let unspecified = pb::CreateClusterRequest {
        os: pb::OsGeneration::Unspecified as i32,
        ..create.clone()
    };
    let status = assert_code(
        inv.create_cluster(authed(BOOTSTRAP, unspecified)).await,
        Code::InvalidArgument,
    );
    assert!(status.message().starts_with("os:"), "{}", status.message());
    assert!(
        status.message().contains("OS_GENERATION_UNSPECIFIED"),
        "{}",
        status.message()
    );
    let unknown = pb::CreateClusterRequest {
        os: 42,
        ..create.clone()
    };
    assert_code(
        inv.create_cluster(authed(BOOTSTRAP, unknown)).await,
        Code::InvalidArgument,
    );
    let blank = pb::CreateClusterRequest {
        name: " ".into(),
        ..create.clone()
    };
    let status = assert_code(
        inv.create_cluster(authed(BOOTSTRAP, blank)).await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().starts_with("name:"),
        "{}",
        status.message()
    );
    inv.create_cluster(authed(BOOTSTRAP, create)).await.unwrap();

    let status = assert_code(
        inv.import_inventory(authed(
            BOOTSTRAP,
            pb::ImportInventoryRequest {
                cluster: "FS-X".into(),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().starts_with("inventory:"),
        "{}",
        status.message()
    );
    let mut document = to_pb(&sample_inventory(2, 2, 2));
    document.groups[1].shares[1].permissions[0].access = pb::Access::Unspecified as i32;
    let status = assert_code(
        inv.import_inventory(authed(
            BOOTSTRAP,
            pb::ImportInventoryRequest {
                cluster: "FS-X".into(),
                inventory: Some(document),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    assert!(
        status
            .message()
            .starts_with("groups[1].shares[1].permissions[0].access:"),
        "{}",
        status.message()
    );
    let mut document = to_pb(&sample_inventory(1, 1, 1));
    document.disks[0].free_bytes = document.disks[0].size_bytes + 1;
    let status = assert_code(
        inv.import_inventory(authed(
            BOOTSTRAP,
            pb::ImportInventoryRequest {
                cluster: "FS-X".into(),
                inventory: Some(document),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().contains("disks[0].free_bytes"),
        "{}",
        status.message()
    );
    let status = assert_code(
        inv.list_clusters(authed(
            BOOTSTRAP,
            pb::ListClustersRequest {
                limit: 0,
                cursor: "***".into(),
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("cursor"), "{}", status.message());

    // A group name two clusters use is ambiguous without its cluster.
    h.create_cluster("FS-Y").await;
    let document = sample_inventory(1, 1, 1);
    h.import("FS-X", &document).await;
    h.import("FS-Y", &document).await;
    let name = document.groups[0].name.clone();
    assert_code(
        inv.get_group(authed(
            BOOTSTRAP,
            pb::GetGroupRequest {
                group: name.clone(),
            },
        ))
        .await,
        Code::AlreadyExists,
    );
    inv.get_group(authed(
        BOOTSTRAP,
        pb::GetGroupRequest {
            group: format!("FS-Y/{name}"),
        },
    ))
    .await
    .unwrap();

    // Every call above was counted, by gRPC method and code, in the server's metrics.
    let (status, metrics) = h.rest_get("/metrics", None).await;
    assert_eq!(status, 200);
    let line = |route: &str, code: Code| {
        metrics.lines().any(|l| {
            l.starts_with("ferry_requests_total{")
                && l.contains("transport=\"grpc\"")
                && l.contains(&format!("route=\"{route}\""))
                && l.contains(&format!("status=\"{}\"", code as u16))
        })
    };
    assert!(
        line(
            "/ferry.v1.InventoryService/GetCluster",
            Code::Unauthenticated
        ),
        "{metrics}"
    );
    assert!(
        line("/ferry.v1.InventoryService/GetCluster", Code::NotFound),
        "{metrics}"
    );
    assert!(
        line(
            "/ferry.v1.InventoryService/CreateCluster",
            Code::PermissionDenied
        ),
        "{metrics}"
    );
    assert!(
        line("/ferry.v1.InventoryService/CreateCluster", Code::Ok),
        "{metrics}"
    );
    assert!(
        line("/ferry.v1.AdminService/CreateToken", Code::Ok),
        "{metrics}"
    );

    drop(inv);
    h.stop().await;
}

/// The field paths of a status's `google.rpc.BadRequest` details, in order.
fn violated_fields(status: &Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_error_details()
        .bad_request()
        .unwrap_or_else(|| panic!("no BadRequest details in {status:?}"))
        .field_violations
        .iter()
        .map(|v| {
            assert!(!v.description.is_empty(), "{v:?}");
            v.field.clone()
        })
        .collect()
}

/// The field paths of a REST problem's `errors`, in order.
fn problem_fields(problem: &serde_json::Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_violations_travel_as_bad_request_details_like_rest_errors() {
    let h = Harness::sqlite().await;
    let mut inv = h.inventory();
    let addr = h.server.http_addr;
    let rest = |method: &'static str, path: &'static str, body: serde_json::Value| {
        common::http_json(addr, method, path, Some(BOOTSTRAP), Some(body))
    };

    // A blank cluster name: one violation, said once in the message, named in the details.
    let status = assert_code(
        inv.create_cluster(authed(
            BOOTSTRAP,
            pb::CreateClusterRequest {
                name: " ".into(),
                os: pb::OsGeneration::Ws2003 as i32,
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    let (code, problem) = rest(
        "POST",
        "/v1/clusters",
        serde_json::json!({"name": " ", "os": "ws2003"}),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    assert_eq!(violated_fields(&status), ["name"]);
    assert_eq!(violated_fields(&status), problem_fields(&problem));
    assert_eq!(status.message(), problem["detail"].as_str().unwrap());

    // An inventory with several bad shares: every path REST lists, in REST's order, and the
    // message still lists them one per line for a person.
    h.create_cluster("FS-X").await;
    let mut document = sample_inventory(2, 3, 2);
    document.groups[0].shares[1].path = String::new();
    document.groups[1].shares[2].name = "bell\u{7}".into();
    document.groups[1].shares[0].user_limit = Some(0);
    let status = assert_code(
        inv.import_inventory(authed(
            BOOTSTRAP,
            pb::ImportInventoryRequest {
                cluster: "FS-X".into(),
                inventory: Some(to_pb(&document)),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    let (code, problem) = rest(
        "PUT",
        "/v1/clusters/FS-X/inventory",
        serde_json::to_value(&document).unwrap(),
    )
    .await;
    assert_eq!(code, 422, "{problem}");
    let fields = problem_fields(&problem);
    assert!(fields.len() >= 3, "{fields:?}");
    assert!(
        fields.contains(&"groups[0].shares[1].path".to_string()),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"groups[1].shares[0].user_limit".to_string()),
        "{fields:?}"
    );
    assert_eq!(violated_fields(&status), fields);
    for field in &fields {
        assert!(
            status.message().contains(&format!("\n{field}: ")),
            "{field} in {}",
            status.message()
        );
    }

    // Thousands of bad shares: the client still gets INVALID_ARGUMENT with details (a bounded
    // share of them, the first ones REST lists), not an HTTP/2 error about oversized trailers.
    let mut document = sample_inventory(1, 3000, 1);
    for share in &mut document.groups[0].shares {
        share.path = String::new();
    }
    let status = assert_code(
        inv.import_inventory(authed(
            BOOTSTRAP,
            pb::ImportInventoryRequest {
                cluster: "FS-X".into(),
                inventory: Some(to_pb(&document)),
                ..Default::default()
            },
        ))
        .await,
        Code::InvalidArgument,
    );
    let (code, problem) = rest(
        "PUT",
        "/v1/clusters/FS-X/inventory",
        serde_json::to_value(&document).unwrap(),
    )
    .await;
    assert_eq!(code, 422);
    let fields = problem_fields(&problem);
    let sent = violated_fields(&status);
    assert!(
        !sent.is_empty() && sent.len() < fields.len(),
        "{}",
        sent.len()
    );
    assert_eq!(sent[..], fields[..sent.len()]);
    assert!(
        status.message().contains(&format!(
            "and {} more field errors",
            fields.len() - sent.len()
        )),
        "{}",
        status.message()
    );

    // A failure that names no field carries no details.
    let status = assert_code(
        inv.get_cluster(authed(
            BOOTSTRAP,
            pb::GetClusterRequest {
                cluster: "nope".into(),
            },
        ))
        .await,
        Code::NotFound,
    );
    assert!(status.details().is_empty());

    drop(inv);
    h.stop().await;
}

// ---- admin --------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_audit() {
    let h = Harness::sqlite().await;
    let mut admin = h.admin();
    let mut inv = h.inventory();

    // Create with an idempotency key: the replay has no secret.
    let create = pb::CreateTokenRequest {
        name: "ci".into(),
        role: pb::Role::Viewer as i32,
        ttl_seconds: Some(3600),
        idempotency_key: "ci-token".into(),
    };
    let created = admin
        .create_token(authed(BOOTSTRAP, create.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(!created.replayed);
    let created = created.created.unwrap();
    let secret = created.token.clone().unwrap();
    let info = created.info.unwrap();
    assert_eq!(info.role, pb::Role::Viewer as i32);
    assert!(info.expires_at.is_some() && info.revoked_at.is_none());
    let replay = admin
        .create_token(authed(BOOTSTRAP, create.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(replay.replayed);
    let replayed = replay.created.unwrap();
    assert_eq!(replayed.token, None, "a replay never carries the secret");
    assert_eq!(replayed.info.unwrap().id, info.id);
    let status = assert_code(
        admin
            .create_token(authed(
                BOOTSTRAP,
                pb::CreateTokenRequest {
                    role: pb::Role::Unspecified as i32,
                    idempotency_key: String::new(),
                    ..create.clone()
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().starts_with("role:"),
        "{}",
        status.message()
    );
    assert_code(
        admin
            .create_token(authed(
                BOOTSTRAP,
                pb::CreateTokenRequest {
                    idempotency_key: String::new(),
                    ..create
                },
            ))
            .await,
        Code::AlreadyExists,
    );

    // The new token works, within its role.
    inv.list_clusters(authed(&secret, pb::ListClustersRequest::default()))
        .await
        .unwrap();
    let denied = pb::CreateClusterRequest {
        name: "FS-DENIED".into(),
        os: pb::OsGeneration::Ws2016 as i32,
        ..Default::default()
    };
    assert_code(
        inv.create_cluster(authed(&secret, denied)).await,
        Code::PermissionDenied,
    );

    // Listing, in creation order: the bootstrap token first.
    let tokens = admin
        .list_tokens(authed(BOOTSTRAP, pb::ListTokensRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = tokens.tokens.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["bootstrap", "ci"]);

    // Revocation takes effect at once; unknown ids are NotFound.
    let revoked = admin
        .revoke_token(authed(
            BOOTSTRAP,
            pb::RevokeTokenRequest {
                id: info.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(revoked.revoked_at.is_some());
    let status = assert_code(
        inv.list_clusters(authed(&secret, pb::ListClustersRequest::default()))
            .await,
        Code::Unauthenticated,
    );
    assert!(status.message().contains("revoked"), "{}", status.message());
    assert_code(
        admin
            .revoke_token(authed(
                BOOTSTRAP,
                pb::RevokeTokenRequest {
                    id: "not-a-uuid".into(),
                },
            ))
            .await,
        Code::NotFound,
    );

    // The audit log, with each filter.
    let audit = |actor: &str, action: &str, target: &str, outcome: pb::AuditOutcome| {
        let mut admin = admin.clone();
        let request = pb::ListAuditRequest {
            actor: actor.into(),
            action: action.into(),
            target: target.into(),
            outcome: outcome as i32,
            ..Default::default()
        };
        async move {
            admin
                .list_audit(authed(BOOTSTRAP, request))
                .await
                .unwrap()
                .into_inner()
                .records
        }
    };
    let denied = audit("ci", "", "", pb::AuditOutcome::Denied).await;
    assert_eq!(denied.len(), 1);
    assert_eq!(denied[0].action, "cluster.create");
    assert_eq!(denied[0].target, "cluster:FS-DENIED");
    assert_eq!(
        denied[0].source.as_deref(),
        Some("127.0.0.1"),
        "the peer address is recorded"
    );
    assert!(denied[0].at.is_some());
    let creations = audit("", "token.create", "", pb::AuditOutcome::Unspecified).await;
    assert!(creations.iter().all(|r| r.action == "token.create"));
    assert!(
        creations
            .iter()
            .any(|r| r.outcome == pb::AuditOutcome::Success as i32)
    );
    assert!(
        creations
            .iter()
            .any(|r| r.outcome == pb::AuditOutcome::Failure as i32)
    );
    let revocations = audit(
        "bootstrap",
        "",
        &format!("token:{}", info.id),
        pb::AuditOutcome::Success,
    )
    .await;
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0].action, "token.revoke");
    let page = admin
        .list_audit(authed(
            BOOTSTRAP,
            pb::ListAuditRequest {
                limit: 1,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.records.len(), 1);
    assert!(!page.next.is_empty());
    let next = admin
        .list_audit(authed(
            BOOTSTRAP,
            pb::ListAuditRequest {
                limit: 1,
                cursor: page.next,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(next.records[0].id < page.records[0].id, "newest first");
    assert_code(
        admin
            .list_audit(authed(
                BOOTSTRAP,
                pb::ListAuditRequest {
                    outcome: 17,
                    ..Default::default()
                },
            ))
            .await,
        Code::InvalidArgument,
    );

    drop((admin, inv));
    h.stop().await;
}

// ---- health and reflection ----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_without_a_token() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let h = Harness::sqlite().await;
    let mut health = HealthClient::new(h.channel.clone());
    for service in ["", "ferry.v1.InventoryService", "ferry.v1.AdminService"] {
        let answer = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|e| panic!("health of `{service}`: {e:?}"))
            .into_inner();
        assert_eq!(answer.status(), ServingStatus::Serving, "`{service}`");
    }
    assert_code(
        health
            .check(HealthCheckRequest {
                service: "ferry.v1.Nothing".into(),
            })
            .await,
        Code::NotFound,
    );
    drop(health);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_the_services() {
    use prost::Message;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let h = Harness::sqlite().await;
    let mut client = ServerReflectionClient::new(h.channel.clone());
    let ask = |request: MessageRequest| {
        tokio_stream::iter([ServerReflectionRequest {
            host: String::new(),
            message_request: Some(request),
        }])
    };

    let mut answers = client
        .server_reflection_info(ask(MessageRequest::ListServices(String::new())))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    for expected in [
        "ferry.v1.InventoryService",
        "ferry.v1.AdminService",
        "grpc.health.v1.Health",
    ] {
        assert!(names.contains(&expected), "{names:?}");
    }

    // What `grpcurl describe` needs: the file, with the well-known types it imports resolvable.
    let mut answers = client
        .server_reflection_info(ask(MessageRequest::FileContainingSymbol(
            "ferry.v1.InventoryService".into(),
        )))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    let files: Vec<_> = files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .collect();
    let ours = files
        .iter()
        .find(|f| f.name() == "ferry/v1/inventory.proto")
        .expect("our file");
    assert!(ours.service.iter().any(|s| s.name() == "InventoryService"));
    for import in &ours.dependency {
        let mut answers = client
            .server_reflection_info(ask(MessageRequest::FileByFilename(import.clone())))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap().message_response;
        assert!(
            matches!(answer, Some(MessageResponse::FileDescriptorResponse(_))),
            "{import}: {answer:?}"
        );
    }

    // The older protocol version grpcurl may fall back to.
    let mut alpha =
        tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient::new(
            h.channel.clone(),
        );
    let request = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest::ListServices(
                String::new(),
            ),
        ),
    };
    let mut answers = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    assert!(format!("{answer:?}").contains("ferry.v1.InventoryService"));

    drop((client, alpha));
    h.stop().await;
}
