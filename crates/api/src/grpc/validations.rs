//! `ferry.v1.ValidationService`: the gRPC twin of `src/http/validations.rs`.

use tonic::{Request, Response, Status};

use super::Api;
use ferry_protocol::convert::validations::new_validation;
use ferry_protocol::convert::{non_empty, page};
use ferry_protocol::pb::{self, validation_service_server::ValidationService};

/// The idempotency scope of CreateValidation: REST's, so one key means one validation whichever
/// transport a retry takes.
const CREATE_VALIDATION_ROUTE: &str = "POST /v1/clusters/{id}/validations";

#[tonic::async_trait]
impl ValidationService for Api {
    async fn create_validation(
        &self,
        request: Request<pb::CreateValidationRequest>,
    ) -> Result<Response<pb::CreateValidationResponse>, Status> {
        self.call(
            "/ferry.v1.ValidationService/CreateValidation",
            request,
            |caller, req| async move {
                let new = new_validation(&req)?;
                let key = non_empty(req.idempotency_key);
                let (validation, replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        CREATE_VALIDATION_ROUTE,
                        key.as_deref(),
                        &(&req.cluster, &new),
                        self.service.create_validation(&caller, &req.cluster, &new),
                    )
                    .await?;
                Ok(pb::CreateValidationResponse {
                    validation: Some(validation.into()),
                    replayed,
                })
            },
        )
        .await
    }

    async fn get_validation(
        &self,
        request: Request<pb::GetValidationRequest>,
    ) -> Result<Response<pb::Validation>, Status> {
        self.call(
            "/ferry.v1.ValidationService/GetValidation",
            request,
            |caller, req| async move {
                Ok(self.service.get_validation(&caller, &req.id).await?.into())
            },
        )
        .await
    }

    async fn list_validations(
        &self,
        request: Request<pb::ListValidationsRequest>,
    ) -> Result<Response<pb::ListValidationsResponse>, Status> {
        self.call(
            "/ferry.v1.ValidationService/ListValidations",
            request,
            |caller, req| async move {
                let listed = self
                    .service
                    .list_validations(&caller, &req.cluster, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListValidationsResponse {
                    validations: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }
}
