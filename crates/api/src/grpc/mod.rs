//! The gRPC API (`proto/ferry/v1/`): InventoryService, AdminService, JobService, PerfService,
//! ValidationService and AgentAdminService, the agents' AgentService (implemented by the gateway,
//! `crate::gateway::stream`), the standard health service and server reflection, on one port.
//! The messages and their conversions are the protocol crate's; what is here is serving them.
//!
//! Like the REST handlers, every method is request -> caller -> one [`Service`] call -> answer.
//! [`Api::call`] is the single place that authenticates and records metrics, so no method can
//! forget either.

mod admin;
mod agents;
mod inventory;
mod jobs;
mod perf;
mod status;
mod validations;

pub use status::{code_of, status_of};

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::metrics::Metrics;
use ferry_core::error::{Error, Result};
use ferry_service::Service;
use ferry_service::auth::{Caller, parse_bearer};

use ferry_protocol::pb;
use pb::admin_service_server::AdminServiceServer;
use pb::agent_admin_service_server::AgentAdminServiceServer;
use pb::agent_service_server::AgentServiceServer;
use pb::inventory_service_server::InventoryServiceServer;
use pb::job_service_server::JobServiceServer;
use pb::perf_service_server::PerfServiceServer;
use pb::validation_service_server::ValidationServiceServer;

use crate::gateway::Gateway;
use crate::gateway::stream::AgentGateway;

/// Both services' implementation: the shared service layer and the metrics it reports to.
#[derive(Clone)]
pub(crate) struct Api {
    service: Service,
    metrics: Arc<Metrics>,
    /// Turns true when the server begins to shut down: `Watch` streams never end on their own,
    /// and the graceful shutdown would wait for them forever.
    closing: tokio::sync::watch::Receiver<bool>,
}

impl Api {
    /// Runs one method: authenticates from the `authorization` metadata, runs `op` with the
    /// caller, and records the call's route, gRPC code and duration, failures included.
    async fn call<Req, Resp, Fut>(
        &self,
        route: &'static str,
        request: Request<Req>,
        op: impl FnOnce(Caller, Req) -> Fut,
    ) -> Result<Response<Resp>, Status>
    where
        Fut: Future<Output = Result<Resp>>,
    {
        let started = Instant::now();
        let result = match self.caller(&request).await {
            Ok(caller) => op(caller, request.into_inner()).await,
            Err(e) => Err(e),
        };
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(e) => code_of(e.code),
        };
        self.metrics.observe_grpc(route, code, started);
        result.map(Response::new).map_err(status_of)
    }

    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller> {
        let secret = match request.metadata().get("authorization") {
            None => None,
            Some(value) => Some(value.to_str().ok().and_then(parse_bearer).ok_or_else(|| {
                Error::unauthenticated(
                    "malformed authorization metadata: expected `Bearer <token>`",
                )
            })?),
        };
        let source = request.remote_addr().map(|addr| addr.ip().to_string());
        self.service.authenticate(secret, source).await
    }
}

/// Serves the gRPC API on `listener` until `shutdown` completes, then closes the agent sessions
/// and lets calls in flight finish. InventoryService and the agents' stream accept messages up
/// to `max_inventory_bytes` (imports, inventory reports and discovery results carry a whole
/// inventory document, as with REST); the other services keep tonic's 4 MiB.
pub async fn serve(
    service: Service,
    gateway: Arc<Gateway>,
    metrics: Arc<Metrics>,
    max_inventory_bytes: usize,
    listener: TcpListener,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let agents = AgentGateway::new(service.clone(), gateway.clone(), metrics.clone());
    let (close_watches, closing) = tokio::sync::watch::channel(false);
    let api = Api {
        service,
        metrics,
        closing,
    };
    // Agent streams and job watches never end on their own; without closing them the graceful
    // shutdown would wait for them forever.
    let shutdown = async move {
        shutdown.await;
        close_watches.send_replace(true);
        gateway.close_all(Status::unavailable(
            "the server is shutting down; reconnect",
        ));
    };

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<InventoryServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<AdminServiceServer<Api>>()
        .await;
    health_reporter.set_serving::<JobServiceServer<Api>>().await;
    health_reporter
        .set_serving::<PerfServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<ValidationServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<AgentAdminServiceServer<Api>>()
        .await;
    health_reporter
        .set_serving::<AgentServiceServer<AgentGateway>>()
        .await;

    // Health's descriptors are registered too, so `grpcurl describe` works for every service.
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the gRPC reflection service (v1)")?;
    // grpcurl and older clients still speak v1alpha.
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("building the gRPC reflection service (v1alpha)")?;

    // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs can hold small unary answers back
    // by tens of milliseconds. Keepalive notices clients that vanished without closing.
    let incoming = TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)));

    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .context("configuring TLS for the gRPC listener (tls_cert, tls_key)")?;
    }
    builder
        // The same request spans the REST router logs, so both transports read alike in the log.
        // Every non-OK status counts as a failure to the layer, the agents' streams closed at
        // shutdown included: errors worth a person's attention are logged where they happen,
        // with their reference, so the layer's own note stays at debug.
        .layer(
            tower_http::trace::TraceLayer::new_for_grpc().on_failure(
                tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG),
            ),
        )
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            InventoryServiceServer::new(api.clone()).max_decoding_message_size(max_inventory_bytes),
        )
        .add_service(AdminServiceServer::new(api.clone()))
        .add_service(JobServiceServer::new(api.clone()))
        .add_service(PerfServiceServer::new(api.clone()))
        .add_service(ValidationServiceServer::new(api.clone()))
        .add_service(AgentAdminServiceServer::new(api))
        // Results and reports carry whole inventories, as imports do.
        .add_service(EnrollHeldSmall(
            AgentServiceServer::new(agents).max_decoding_message_size(max_inventory_bytes),
        ))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .context("gRPC server failed")
}

/// Enroll is the one call anyone can make; its request is held to tonic's usual 4 MiB even
/// though the agents' stream takes whole inventories (`max_inventory_bytes`).
const ENROLL_MAX_BYTES: usize = 4 * 1024 * 1024;
const ENROLL_PATH: &str = "/ferry.v1.AgentService/Enroll";

/// The agents' service, with [`ENROLL_MAX_BYTES`] on Enroll's body.
#[derive(Clone)]
struct EnrollHeldSmall(AgentServiceServer<AgentGateway>);

impl tonic::server::NamedService for EnrollHeldSmall {
    const NAME: &'static str =
        <AgentServiceServer<AgentGateway> as tonic::server::NamedService>::NAME;
}

impl tower::Service<http::Request<tonic::body::Body>> for EnrollHeldSmall {
    type Response = <AgentServiceServer<AgentGateway> as tower::Service<
        http::Request<tonic::body::Body>,
    >>::Response;
    type Error = std::convert::Infallible;
    type Future = <AgentServiceServer<AgentGateway> as tower::Service<
        http::Request<tonic::body::Body>,
    >>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower::Service::<http::Request<tonic::body::Body>>::poll_ready(&mut self.0, cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let request = if request.uri().path() == ENROLL_PATH {
            request.map(|body| {
                tonic::body::Body::new(http_body_util::Limited::new(body, ENROLL_MAX_BYTES))
            })
        } else {
            request
        };
        tower::Service::call(&mut self.0, request)
    }
}
