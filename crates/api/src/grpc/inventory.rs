//! `ferry.v1.InventoryService`: the gRPC twin of `src/http/inventory.rs`.

use tonic::{Request, Response, Status};

use super::Api;
use ferry_core::error::Error;
use ferry_core::model::{NewDiscovery, ShareFilter};
use ferry_protocol::convert::{self, non_empty, page};
use ferry_protocol::pb::{self, inventory_service_server::InventoryService};

/// Shared with REST's `POST /v1/clusters`, so an idempotency key means the same request whichever
/// transport retries it.
const CREATE_CLUSTER_ROUTE: &str = "POST /v1/clusters";
/// Shared with REST's `POST /v1/clusters/{id}/discover`, as above.
const DISCOVER_ROUTE: &str = "POST /v1/clusters/{id}/discover";

#[tonic::async_trait]
impl InventoryService for Api {
    async fn list_clusters(
        &self,
        request: Request<pb::ListClustersRequest>,
    ) -> Result<Response<pb::ListClustersResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/ListClusters",
            request,
            |caller, req| async move {
                let listed = self
                    .service
                    .list_clusters(&caller, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListClustersResponse {
                    clusters: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn get_cluster(
        &self,
        request: Request<pb::GetClusterRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        self.call(
            "/ferry.v1.InventoryService/GetCluster",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .get_cluster(&caller, &req.cluster)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn create_cluster(
        &self,
        request: Request<pb::CreateClusterRequest>,
    ) -> Result<Response<pb::CreateClusterResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/CreateCluster",
            request,
            |caller, req| async move {
                let new = convert::new_cluster(&req)?;
                let key = non_empty(req.idempotency_key);
                let (cluster, replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        CREATE_CLUSTER_ROUTE,
                        key.as_deref(),
                        &new,
                        self.service.create_cluster(&caller, &new),
                    )
                    .await?;
                Ok(pb::CreateClusterResponse {
                    cluster: Some(cluster.into()),
                    replayed,
                })
            },
        )
        .await
    }

    async fn update_cluster(
        &self,
        request: Request<pb::UpdateClusterRequest>,
    ) -> Result<Response<pb::Cluster>, Status> {
        self.call(
            "/ferry.v1.InventoryService/UpdateCluster",
            request,
            |caller, req| async move {
                let patch = convert::cluster_patch(&req)?;
                let if_match = non_empty(req.if_match);
                let cluster = self
                    .service
                    .update_cluster(&caller, &req.cluster, &patch, if_match.as_deref())
                    .await?;
                Ok(cluster.into())
            },
        )
        .await
    }

    async fn delete_cluster(
        &self,
        request: Request<pb::DeleteClusterRequest>,
    ) -> Result<Response<pb::DeleteClusterResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/DeleteCluster",
            request,
            |caller, req| async move {
                let if_match = non_empty(req.if_match);
                self.service
                    .delete_cluster(&caller, &req.cluster, if_match.as_deref())
                    .await?;
                Ok(pb::DeleteClusterResponse {})
            },
        )
        .await
    }

    async fn import_inventory(
        &self,
        request: Request<pb::ImportInventoryRequest>,
    ) -> Result<Response<pb::ImportInventoryResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/ImportInventory",
            request,
            |caller, req| async move {
                // An empty document is a valid import (it empties the inventory), so only a missing
                // one is refused: it is far more likely a client bug than an intent.
                let document = req
                    .inventory
                    .ok_or_else(|| Error::invalid_field("inventory", "is required"))?;
                let document = convert::inventory_document(document)?;
                let if_match = non_empty(req.if_match);
                let outcome = self
                    .service
                    .import_inventory(&caller, &req.cluster, document, if_match.as_deref())
                    .await?;
                Ok(pb::ImportInventoryResponse {
                    snapshot: Some(outcome.snapshot.into()),
                    created: outcome.created,
                })
            },
        )
        .await
    }

    async fn list_snapshots(
        &self,
        request: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/ListSnapshots",
            request,
            |caller, req| async move {
                let listed = self
                    .service
                    .list_snapshots(&caller, &req.cluster, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListSnapshotsResponse {
                    snapshots: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn get_snapshot(
        &self,
        request: Request<pb::GetSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        self.call(
            "/ferry.v1.InventoryService/GetSnapshot",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .get_snapshot(&caller, &req.cluster, req.number)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn diff_snapshots(
        &self,
        request: Request<pb::DiffSnapshotsRequest>,
    ) -> Result<Response<pb::SnapshotDiff>, Status> {
        self.call(
            "/ferry.v1.InventoryService/DiffSnapshots",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .diff_snapshots(&caller, &req.cluster, req.from, req.to)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn list_groups(
        &self,
        request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/ListGroups",
            request,
            |caller, req| async move {
                let listed = self
                    .service
                    .list_groups(&caller, &req.cluster, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListGroupsResponse {
                    groups: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn get_group(
        &self,
        request: Request<pb::GetGroupRequest>,
    ) -> Result<Response<pb::GroupDetail>, Status> {
        self.call("/ferry.v1.InventoryService/GetGroup", request, |caller, req| async move {
            Ok(self.service.get_group(&caller, &req.group).await?.into())
        })
        .await
    }

    async fn list_shares(
        &self,
        request: Request<pb::ListSharesRequest>,
    ) -> Result<Response<pb::ListSharesResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/ListShares",
            request,
            |caller, req| async move {
                let filter = ShareFilter {
                    name_prefix: non_empty(req.name_prefix),
                    principal: non_empty(req.principal),
                };
                let listed = self
                    .service
                    .list_shares(&caller, &req.group, &filter, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListSharesResponse {
                    shares: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn discover_cluster(
        &self,
        request: Request<pb::DiscoverClusterRequest>,
    ) -> Result<Response<pb::Discovery>, Status> {
        self.call(
            "/ferry.v1.InventoryService/DiscoverCluster",
            request,
            |caller, req| async move {
                let key = non_empty(req.idempotency_key);
                let (discovery, _replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        DISCOVER_ROUTE,
                        key.as_deref(),
                        &(&req.cluster, &NewDiscovery {}),
                        self.service.discover(&caller, &req.cluster),
                    )
                    .await?;
                Ok(discovery.into())
            },
        )
        .await
    }

    async fn get_discovery(
        &self,
        request: Request<pb::GetDiscoveryRequest>,
    ) -> Result<Response<pb::Discovery>, Status> {
        self.call(
            "/ferry.v1.InventoryService/GetDiscovery",
            request,
            |caller, req| async move {
                Ok(self.service.get_discovery(&caller, &req.id).await?.into())
            },
        )
        .await
    }

    async fn list_discoveries(
        &self,
        request: Request<pb::ListDiscoveriesRequest>,
    ) -> Result<Response<pb::ListDiscoveriesResponse>, Status> {
        self.call(
            "/ferry.v1.InventoryService/ListDiscoveries",
            request,
            |caller, req| async move {
                let listed = self
                    .service
                    .list_discoveries(&caller, &req.cluster, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListDiscoveriesResponse {
                    discoveries: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }
}
