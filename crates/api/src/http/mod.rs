//! The REST API (axum). Handlers are thin: extract, call the service once, answer. The OpenAPI
//! document is generated from the handlers (utoipa-axum) and committed as `openapi/ferry.v1.json`.

pub mod admin;
pub mod agents;
pub mod discoveries;
pub mod extract;
pub mod inventory;
pub mod jobs;
pub mod perf;
pub mod problem;
pub mod validations;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, header};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as OpenApiDoc, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::metrics::{Metrics, RequestLabels};
use ferry_core::error::{Error, ErrorCode};
use ferry_service::Service;
use problem::HttpError;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub service: Service,
    pub metrics: Arc<Metrics>,
    /// Turns true when the server begins to shut down: event streams never end on their own,
    /// and the graceful shutdown would wait for them forever.
    pub closing: tokio::sync::watch::Receiver<bool>,
}

impl AppState {
    /// State for a router that is never shut down gracefully (tests, tools).
    pub fn new(service: Service, metrics: Arc<Metrics>) -> Self {
        let (_never, closing) = tokio::sync::watch::channel(false);
        Self {
            service,
            metrics,
            closing,
        }
    }
}

/// Limits and CORS of the HTTP server.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    pub max_inventory_bytes: usize,
    pub cors_origins: Vec<String>,
}

impl Default for HttpOptions {
    /// Bodies up to 1 MiB, inventory imports up to 256 MiB, no cross-origin callers.
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_inventory_bytes: 256 * 1024 * 1024,
            cors_origins: Vec::new(),
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry API",
        version = "1",
        description = "Ferry moves clustered file-server roles between failover clusters. Every \
                       call except /healthz, /readyz and /metrics needs `Authorization: Bearer \
                       <token>`. Errors are RFC 9457 problem+json."
    ),
    tags(
        (name = "clusters", description = "Registered failover clusters"),
        (name = "inventory", description = "Inventory snapshots, groups and shares"),
        (name = "tokens", description = "API tokens (admin)"),
        (name = "agents", description = "Node agents, their join tokens, and tasks run by hand"),
        (name = "jobs", description = "Migration plans and jobs, and the event stream that follows them"),
        (name = "validations", description = "Cluster configuration checked against best practice"),
        (name = "perf", description = "Perf samples: ingest, per-node series, the cluster-wide view of a volume, redirected I/O, load balance"),
        (name = "webhooks", description = "Signed, retried POSTs of job events to receivers (admin)"),
        (name = "audit", description = "Who changed what"),
        (name = "operations", description = "Health and metrics, no token needed")
    )
)]
struct ApiDoc;

/// Adds what every operation shares: the bearer scheme and the error responses each kind of
/// operation can give, so no handler can forget to document them. Applied after the routes are
/// collected (a `modifiers(...)` on `ApiDoc` would run before any path exists).
struct ApiConventions;

impl Modify for ApiConventions {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        let (name, schema) = (
            problem::Problem::name().to_string(),
            <problem::Problem as utoipa::PartialSchema>::schema(),
        );
        components.schemas.insert(name, schema);
        let field_error = ferry_core::model::FieldError::name().to_string();
        components.schemas.insert(
            field_error,
            <ferry_core::model::FieldError as utoipa::PartialSchema>::schema(),
        );
        openapi.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let authenticated = path.starts_with("/v1/");
            let has_path_params = path.contains('{');
            for (method, op) in [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("put", &mut item.put),
                ("patch", &mut item.patch),
                ("delete", &mut item.delete),
            ] {
                let Some(op) = op else { continue };
                let mut codes = vec![];
                if authenticated {
                    codes.extend([
                        ErrorCode::BadRequest,
                        ErrorCode::Unauthenticated,
                        ErrorCode::PermissionDenied,
                        ErrorCode::Validation,
                        ErrorCode::Unavailable,
                        ErrorCode::Internal,
                    ]);
                }
                if has_path_params {
                    codes.push(ErrorCode::NotFound);
                }
                if matches!(method, "post" | "put" | "patch") {
                    codes.extend([ErrorCode::PayloadTooLarge, ErrorCode::UnsupportedMediaType]);
                }
                for code in codes {
                    let status = problem::status_of(code).as_u16().to_string();
                    op.responses.responses.entry(status).or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(code.title())
                                .content(
                                    problem::PROBLEM_JSON,
                                    ContentBuilder::new()
                                        .schema(Some(utoipa::openapi::Ref::from_schema_name(
                                            problem::Problem::name(),
                                        )))
                                        .build(),
                                )
                                .build(),
                        )
                    });
                }
            }
        }
    }
}

/// The API routes with their OpenAPI description.
fn api_router(options: &HttpOptions) -> OpenApiRouter<AppState> {
    let inventory_import = OpenApiRouter::new()
        .routes(routes!(inventory::import_inventory))
        .layer(DefaultBodyLimit::max(options.max_inventory_bytes));
    let rest = OpenApiRouter::new()
        .routes(routes!(inventory::list_clusters, inventory::create_cluster))
        .routes(routes!(
            inventory::get_cluster,
            inventory::update_cluster,
            inventory::delete_cluster
        ))
        .routes(routes!(inventory::list_snapshots))
        .routes(routes!(inventory::get_snapshot))
        .routes(routes!(inventory::diff_snapshots))
        .routes(routes!(inventory::list_groups))
        .routes(routes!(inventory::get_group))
        .routes(routes!(inventory::list_shares))
        .routes(routes!(discoveries::discover))
        .routes(routes!(discoveries::list_discoveries))
        .routes(routes!(discoveries::get_discovery))
        .routes(routes!(admin::create_token, admin::list_tokens))
        .routes(routes!(admin::revoke_token))
        .routes(routes!(admin::list_audit))
        .routes(routes!(agents::create_join_token))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::get_agent, agents::revoke_agent))
        .routes(routes!(agents::run_task))
        .routes(routes!(agents::run_cluster_task))
        .routes(routes!(agents::get_task))
        .routes(routes!(jobs::create_plan))
        .routes(routes!(jobs::list_jobs, jobs::create_job))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::job_logs))
        .routes(routes!(jobs::approve_job))
        .routes(routes!(jobs::pause_job))
        .routes(routes!(jobs::resume_job))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_group))
        .routes(routes!(jobs::events))
        .routes(routes!(
            validations::list_validations,
            validations::create_validation
        ))
        .routes(routes!(validations::get_validation))
        .routes(routes!(perf::ingest_samples))
        .routes(routes!(perf::placement))
        .routes(routes!(perf::series))
        .routes(routes!(perf::volume))
        .routes(routes!(perf::top))
        .routes(routes!(perf::redirected))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::delete_webhook))
        .routes(routes!(admin::healthz))
        .routes(routes!(admin::readyz))
        .routes(routes!(admin::metrics))
        .layer(DefaultBodyLimit::max(options.max_body_bytes));
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(inventory_import)
        .merge(rest)
}

/// The routes and the complete OpenAPI document describing them.
fn split(options: &HttpOptions) -> (Router<AppState>, OpenApiDoc) {
    let (router, mut doc) = api_router(options).split_for_parts();
    ApiConventions.modify(&mut doc);
    (router, doc)
}

/// The OpenAPI document, as committed in `openapi/ferry.v1.json`.
pub fn openapi() -> OpenApiDoc {
    split(&HttpOptions::default()).1
}

/// The OpenAPI document as pretty JSON with a trailing newline.
pub fn openapi_json() -> String {
    let mut text = openapi()
        .to_pretty_json()
        .expect("OpenAPI document serializes");
    text.push('\n');
    text
}

/// The whole HTTP application: API, Swagger UI at `/docs`, and the middleware stack.
pub fn router(state: AppState, options: &HttpOptions) -> Router {
    let (api, doc) = split(options);
    let request_id = HeaderName::from_static("x-request-id");
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .with_state(state)
        .layer(cors(&options.cors_origins))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Status of a create run through `Service::idempotent`: 201 the first time, 200 for a replay.
pub(crate) fn created_status(replayed: bool) -> http::StatusCode {
    if replayed {
        http::StatusCode::OK
    } else {
        http::StatusCode::CREATED
    }
}

/// Adds a `Location` header naming the created object.
pub(crate) fn with_location(body: impl IntoResponse, location: &str) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn not_found() -> HttpError {
    Error::not_found("no such route; GET /openapi.json lists every route").into()
}

async fn method_not_allowed() -> Response {
    let err = Error::bad_request("this route does not accept that method; see /openapi.json");
    let mut response = HttpError(err).into_response();
    *response.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
    response
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
            HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::ETAG, header::LOCATION]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(AllowOrigin::any())
    } else {
        layer.allow_origin(AllowOrigin::list(
            origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
    }
}

async fn record_metrics(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let response = next.run(request).await;
    state.metrics.observe(
        RequestLabels {
            transport: "http",
            method,
            route,
            status: response.status().as_u16(),
        },
        started.elapsed().as_secs_f64(),
    );
    response
}
