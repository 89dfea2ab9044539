//! `ferry.v1.AdminService`: the gRPC twin of the token and audit handlers of `src/http/admin.rs`.

use tonic::{Request, Response, Status};

use super::Api;
use ferry_core::model::AuditFilter;
use ferry_protocol::convert::{self, non_empty, page};
use ferry_protocol::pb::{self, admin_service_server::AdminService};

/// Shared with REST's `POST /v1/tokens`, so an idempotency key means the same request whichever
/// transport retries it.
const CREATE_TOKEN_ROUTE: &str = "POST /v1/tokens";

#[tonic::async_trait]
impl AdminService for Api {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        self.call(
            "/ferry.v1.AdminService/CreateToken",
            request,
            |caller, req| async move {
                let new = convert::new_token(&req)?;
                let key = non_empty(req.idempotency_key);
                let (created, replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        CREATE_TOKEN_ROUTE,
                        key.as_deref(),
                        &new,
                        self.service.create_token(&caller, &new),
                    )
                    .await?;
                Ok(pb::CreateTokenResponse {
                    created: Some(created.into()),
                    replayed,
                })
            },
        )
        .await
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        self.call(
            "/ferry.v1.AdminService/ListTokens",
            request,
            |caller, req| async move {
                let listed = self
                    .service
                    .list_tokens(&caller, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListTokensResponse {
                    tokens: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn revoke_token(
        &self,
        request: Request<pb::RevokeTokenRequest>,
    ) -> Result<Response<pb::TokenInfo>, Status> {
        self.call("/ferry.v1.AdminService/RevokeToken", request, |caller, req| async move {
            Ok(self.service.revoke_token(&caller, &req.id).await?.into())
        })
        .await
    }

    async fn list_audit(
        &self,
        request: Request<pb::ListAuditRequest>,
    ) -> Result<Response<pb::ListAuditResponse>, Status> {
        self.call(
            "/ferry.v1.AdminService/ListAudit",
            request,
            |caller, req| async move {
                let filter = AuditFilter {
                    actor: non_empty(req.actor),
                    action: non_empty(req.action),
                    target: non_empty(req.target),
                    outcome: convert::audit_outcome_filter(req.outcome)?,
                };
                let listed = self
                    .service
                    .list_audit(&caller, &filter, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListAuditResponse {
                    records: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }
}
