//! `ferry.v1.AgentAdminService`: the gRPC twin of `src/http/agents.rs`.

use tonic::{Request, Response, Status};

use super::Api;
use ferry_protocol::convert::{self, non_empty, page};
use ferry_protocol::pb::{self, agent_admin_service_server::AgentAdminService};

/// Shared with REST, so an idempotency key means the same request whichever transport retries.
const CREATE_JOIN_TOKEN_ROUTE: &str = "POST /v1/join-tokens";
const RUN_TASK_ROUTE: &str = "POST /v1/agents/{id}/tasks";
const RUN_CLUSTER_TASK_ROUTE: &str = "POST /v1/clusters/{id}/tasks";

#[tonic::async_trait]
impl AgentAdminService for Api {
    async fn create_join_token(
        &self,
        request: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreateJoinTokenResponse>, Status> {
        self.call(
            "/ferry.v1.AgentAdminService/CreateJoinToken",
            request,
            |caller, req| async move {
                let new = convert::new_join_token(&req);
                let key = non_empty(req.idempotency_key);
                let (created, replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        CREATE_JOIN_TOKEN_ROUTE,
                        key.as_deref(),
                        &new,
                        self.service.create_join_token(&caller, &new),
                    )
                    .await?;
                Ok(convert::created_join_token(created, replayed))
            },
        )
        .await
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        self.call(
            "/ferry.v1.AgentAdminService/ListAgents",
            request,
            |caller, req| async move {
                let cluster = non_empty(req.cluster);
                let listed = self
                    .service
                    .list_agents(&caller, cluster.as_deref(), &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListAgentsResponse {
                    agents: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn get_agent(
        &self,
        request: Request<pb::GetAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        self.call(
            "/ferry.v1.AgentAdminService/GetAgent",
            request,
            |caller, req| async move { Ok(self.service.get_agent(&caller, &req.id).await?.into()) },
        )
        .await
    }

    async fn revoke_agent(
        &self,
        request: Request<pb::RevokeAgentRequest>,
    ) -> Result<Response<pb::Agent>, Status> {
        self.call(
            "/ferry.v1.AgentAdminService/RevokeAgent",
            request,
            |caller, req| async move { Ok(self.service.revoke_agent(&caller, &req.id).await?.into()) },
        )
        .await
    }

    async fn run_task(
        &self,
        request: Request<pb::RunTaskRequest>,
    ) -> Result<Response<pb::RunTaskResponse>, Status> {
        self.call(
            "/ferry.v1.AgentAdminService/RunTask",
            request,
            |caller, req| async move {
                let action = convert::action(req.action, "action")?;
                let key = non_empty(req.idempotency_key);
                let (task, replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        RUN_TASK_ROUTE,
                        key.as_deref(),
                        &(&req.agent_id, &action),
                        self.service.run_task(&caller, &req.agent_id, &action),
                    )
                    .await?;
                Ok(pb::RunTaskResponse {
                    task: Some(task.into()),
                    replayed,
                })
            },
        )
        .await
    }

    async fn run_cluster_task(
        &self,
        request: Request<pb::RunClusterTaskRequest>,
    ) -> Result<Response<pb::RunTaskResponse>, Status> {
        self.call(
            "/ferry.v1.AgentAdminService/RunClusterTask",
            request,
            |caller, req| async move {
                let action = convert::action(req.action, "action")?;
                let key = non_empty(req.idempotency_key);
                let (task, replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        RUN_CLUSTER_TASK_ROUTE,
                        key.as_deref(),
                        &(&req.cluster, &action),
                        self.service
                            .run_cluster_task(&caller, &req.cluster, &action),
                    )
                    .await?;
                Ok(pb::RunTaskResponse {
                    task: Some(task.into()),
                    replayed,
                })
            },
        )
        .await
    }

    async fn get_task(
        &self,
        request: Request<pb::GetTaskRequest>,
    ) -> Result<Response<pb::Task>, Status> {
        self.call(
            "/ferry.v1.AgentAdminService/GetTask",
            request,
            |caller, req| async move { Ok(self.service.get_task(&caller, &req.id).await?.into()) },
        )
        .await
    }
}
