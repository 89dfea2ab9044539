//! The REST API (axum). Handlers are thin: extract, call the service once, answer. The OpenAPI
//! document is generated from the handlers (utoipa-axum) and committed as `openapi/ferry.v1.json`.
//!
//! Every 4xx and 5xx is problem+json: handlers and extractors fail with `HttpError`, and
//! [`dress_bare_errors`], outside every other layer, rewrites whatever answer a layer or a route
//! we do not write (Swagger UI's files, the timeouts) gave with another body. What hyper refuses
//! before there is a request to route (a malformed request line, more than 100 headers, a URI
//! over 64 KiB, headers over its buffer) it answers itself, with an empty body, before any of
//! this runs.

pub mod admin;
pub mod agents;
pub mod console;
pub mod discoveries;
pub mod extract;
pub mod inventory;
pub mod jobs;
pub mod perf;
pub mod problem;
pub mod validations;
pub mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::BodyExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;
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
use problem::{HttpError, PROBLEM_JSON, Problem};

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
    /// Serve the console from this folder rather than from the binary (developing it).
    pub console_dir: Option<std::path::PathBuf>,
}

impl Default for HttpOptions {
    /// Bodies up to 1 MiB, inventory imports up to 256 MiB, no cross-origin callers.
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            max_inventory_bytes: 256 * 1024 * 1024,
            cors_origins: Vec::new(),
            console_dir: None,
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
        // Tagged enums read with `deny_unknown_fields`; utoipa leaves their variants open.
        for name in ["Action", "ClusterAction", "CutoverWindow"] {
            if let Some(RefOr::T(utoipa::openapi::schema::Schema::OneOf(one_of))) =
                components.schemas.get_mut(name)
            {
                for variant in &mut one_of.items {
                    if let RefOr::T(utoipa::openapi::schema::Schema::Object(object)) = variant {
                        object.additional_properties = Some(Box::new(
                            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                        ));
                    }
                }
            }
        }
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
                for parameter in op.parameters.iter_mut().flatten() {
                    if let RefOr::T(parameter) = parameter {
                        shared_parameter_rules(parameter);
                    }
                }
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

/// The links of one answer, written into the spec as OpenAPI links: the operations a client may
/// call next with what `from` answered with `status`, their parameters as runtime expressions.
struct Links {
    from: &'static str,
    status: &'static str,
    to: &'static [&'static str],
    parameters: &'static [(&'static str, &'static str)],
}

/// Lists lead to their first item, an item to what can be done with it.
const LINKS: &[Links] = &[
    Links {
        from: "list_clusters",
        status: "200",
        to: &[
            "get_cluster",
            "list_groups",
            "list_snapshots",
            "list_validations",
            "list_discoveries",
        ],
        parameters: FIRST_ITEM,
    },
    Links {
        from: "list_snapshots",
        status: "200",
        to: &["get_snapshot"],
        parameters: &[
            ("id", "$response.body#/items/0/cluster_id"),
            ("n", "$response.body#/items/0/number"),
        ],
    },
    Links {
        from: "list_groups",
        status: "200",
        to: &["get_group", "list_shares"],
        parameters: FIRST_ITEM,
    },
    Links {
        from: "list_discoveries",
        status: "200",
        to: &["get_discovery"],
        parameters: FIRST_ITEM,
    },
    Links {
        from: "list_validations",
        status: "200",
        to: &["get_validation"],
        parameters: FIRST_ITEM,
    },
    Links {
        from: "list_agents",
        status: "200",
        to: &["get_agent", "run_task", "revoke_agent"],
        parameters: FIRST_ITEM,
    },
    Links {
        from: "list_jobs",
        status: "200",
        to: &[
            "get_job",
            "job_logs",
            "approve_job",
            "pause_job",
            "resume_job",
            "cancel_job",
        ],
        parameters: FIRST_ITEM,
    },
    Links {
        from: "get_job",
        status: "200",
        to: &["retry_group"],
        parameters: &[
            ("id", "$response.body#/id"),
            ("group", "$response.body#/groups/0/name"),
        ],
    },
    Links {
        from: "list_webhooks",
        status: "200",
        to: &["delete_webhook"],
        parameters: FIRST_ITEM,
    },
];

/// The `id` of a page's first item.
const FIRST_ITEM: &[(&str, &str)] = &[("id", "$response.body#/items/0/id")];

/// Writes [`LINKS`] into the responses they start from, each named after its target.
fn add_links(openapi: &mut OpenApiDoc) {
    for Links {
        from,
        status,
        to,
        parameters,
    } in LINKS
    {
        let operation = openapi.paths.paths.values_mut().find_map(|item| {
            [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            .find(|op| op.operation_id.as_deref() == Some(*from))
        });
        // A misspelt name fails every test that builds the spec, not just quietly loses a link.
        let Some(RefOr::T(response)) =
            operation.and_then(|op| op.responses.responses.get_mut(*status))
        else {
            panic!("a link starts from {from} {status}, which the spec does not have");
        };
        for target in *to {
            let link = parameters.iter().fold(
                utoipa::openapi::link::LinkBuilder::new().operation_id(*target),
                |link, (parameter, expression)| link.parameter(*parameter, *expression),
            );
            response
                .links
                .insert((*target).to_string(), RefOr::T(link.build()));
        }
    }
}

/// The rules of the parameters many operations share, stated from the constants the service
/// checks them with, so that the spec and the check cannot drift apart: a page's `limit`
/// (1 to [`MAX_PAGE_LIMIT`]) and the `Idempotency-Key` header (printable ASCII, at most
/// [`MAX_IDEMPOTENCY_KEY_LEN`] bytes, no space at either end, which HTTP would strip).
///
/// [`MAX_PAGE_LIMIT`]: ferry_service::MAX_PAGE_LIMIT
/// [`MAX_IDEMPOTENCY_KEY_LEN`]: ferry_service::MAX_IDEMPOTENCY_KEY_LEN
fn shared_parameter_rules(parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::Schema;
    let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() else {
        return;
    };
    match (&parameter.parameter_in, parameter.name.as_str()) {
        (ParameterIn::Query, "limit") => {
            schema.minimum = Some(1.into());
            schema.maximum = Some(ferry_service::MAX_PAGE_LIMIT.into());
        }
        (ParameterIn::Header, "Idempotency-Key") => {
            schema.min_length = Some(1);
            schema.max_length = Some(ferry_service::MAX_IDEMPOTENCY_KEY_LEN);
            schema.pattern = Some("^[!-~]([ -~]*[!-~])?$".into());
        }
        _ => {}
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
        .routes(routes!(admin::me))
        .routes(routes!(agents::create_join_token))
        .routes(routes!(agents::list_agents))
        .routes(routes!(agents::get_agent, agents::revoke_agent))
        .routes(routes!(agents::run_task))
        .routes(routes!(agents::run_cluster_task))
        .routes(routes!(agents::get_task))
        .routes(routes!(jobs::create_plan))
        .routes(routes!(jobs::list_jobs, jobs::create_job))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::get_job_group))
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
    add_links(&mut doc);
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

/// How long the server waits for a request before giving up on it.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From the request's head to the head of its answer. The body of an answer is not counted,
    /// so the endless `/v1/events` stream and a large download are never cut.
    pub request: Duration,
    /// Between two pieces of a request body: a client that stops sending mid-body would
    /// otherwise hold its connection and its handler forever.
    pub body_idle: Duration,
}

impl Default for Timeouts {
    /// Five minutes per request, generous enough for a 256 MiB inventory import on a busy
    /// Postgres; 30 s of silence in a body, as hyper allows for a request's head.
    fn default() -> Self {
        Self {
            request: Duration::from_secs(300),
            body_idle: Duration::from_secs(30),
        }
    }
}

/// The whole HTTP application: API, Swagger UI at `/docs`, and the middleware stack.
pub fn router(state: AppState, options: &HttpOptions) -> Router {
    router_with_timeouts(state, options, Timeouts::default())
}

/// [`router`] with other [`Timeouts`].
pub fn router_with_timeouts(state: AppState, options: &HttpOptions, timeouts: Timeouts) -> Router {
    let (api, doc) = split(options);
    let request_id = HeaderName::from_static("x-request-id");
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .merge(console::routes(options.console_dir.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // Inside the metrics, so a request that runs out of time is counted with its 503.
        .layer(middleware::from_fn_with_state(timeouts.request, deadline))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            record_metrics,
        ))
        .with_state(state)
        .layer(RequestBodyTimeoutLayer::new(timeouts.body_idle))
        .layer(cors(&options.cors_origins))
        .layer(middleware::from_fn(dress_bare_errors))
        .layer(middleware::from_fn(security_headers))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// The Content-Security-Policy of every HTML answer, which is Swagger UI at `/docs` (served
/// from the binary, so it works offline). Checked in headless Chromium: rendering the spec,
/// opening every operation and schema, the Authorize dialog and "Try it out" raise no violation.
/// - `script-src 'self'`: the page loads its three scripts as files and has no inline script,
///   and the bundles run without `eval`.
/// - `style-src 'self'` plus one hash: React sets styles through the DOM, which no policy
///   governs; the one `<style>` element is the top bar logo's, an inline SVG whose text is
///   [`DOCS_LOGO_STYLE`]. Its hash allows exactly that text, which `'unsafe-inline'` would not.
/// - `img-src 'self' data:`: the stylesheet draws its icons as `data:` SVGs.
/// - `connect-src 'self'`: fetching `/openapi.json` and "Try it out" go to this origin and
///   nowhere else.
/// - the rest is denied: no fonts, frames, objects or `<base>`, forms post only here, and no
///   other site may frame the page.
pub const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'sha256-RL3ie0nH+Lzz2YNqQN83mnU0J1ot4QL7b99vMdIX99w='; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
     frame-ancestors 'none'";

/// The text of the logo's `<style>` in Swagger UI's standalone preset; [`DOCS_CSP`] carries its
/// SHA-256. `tests/http.rs` checks that the served script still holds it, so an upgrade of
/// Swagger UI that changes it fails there rather than leaving the logo unstyled.
pub const DOCS_LOGO_STYLE: &str =
    ".logo_small_svg__cls-2{fill:#fff}.logo_small_svg__cls-3{fill:#85ea2d}";

/// `nosniff` on every answer, so a browser never runs a JSON body (which may echo a client's
/// input) as a script or a page; on HTML, frame denial and [`DOCS_CSP`] unless the page set its
/// own policy (the console's is stricter).
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/html"));
    if html {
        headers
            .entry(header::CONTENT_SECURITY_POLICY)
            .or_insert(HeaderValue::from_static(DOCS_CSP));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

/// Ends a request that has not answered within `limit`. Dropping the handler is what a client
/// hanging up already does; each store method is one transaction, so what it wrote is either
/// whole or absent.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => HttpError(Error::new(
            ErrorCode::Unavailable,
            format!(
                "the request did not finish within {} and was abandoned; check whether it took \
                 effect before retrying",
                humantime::format_duration(limit)
            ),
        ))
        .into_response(),
    }
}

/// A plain-text body up to this size is kept as the problem's detail: it is what axum or a
/// layer had to say (`Invalid URL: Invalid UTF-8 in `rest``).
const BARE_DETAIL_MAX: u64 = 1024;

/// Turns an error answer that is not problem+json (Swagger UI's 404 and 400, a layer's bare
/// status) into one, keeping its status and headers (`Allow`, `WWW-Authenticate`, the request
/// id).
async fn dress_bare_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(PROBLEM_JSON));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let plain_text = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    // Only a body known to be small and complete is read: an unknown length could be a stream.
    let said = match body.size_hint().exact() {
        Some(len) if plain_text && len > 0 && len <= BARE_DETAIL_MAX => body
            .collect()
            .await
            .ok()
            .and_then(|b| String::from_utf8(b.to_bytes().to_vec()).ok())
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty()),
        _ => None,
    };
    let detail = said.unwrap_or_else(|| bare_detail(status).to_string());
    let problem = Problem::for_status(status, detail).into_response_with(status);
    for name in [
        header::CONTENT_TYPE,
        header::CONTENT_LENGTH,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
    ] {
        parts.headers.remove(name);
    }
    let (problem_parts, problem_body) = problem.into_parts();
    parts.headers.extend(problem_parts.headers);
    Response::from_parts(parts, Body::new(problem_body))
}

/// What a bare error answer means, said for a person.
fn bare_detail(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "the request is malformed",
        StatusCode::NOT_FOUND => "no such route or file; GET /openapi.json lists every route",
        StatusCode::METHOD_NOT_ALLOWED => {
            "this route does not accept that method; the Allow header lists those it does"
        }
        StatusCode::REQUEST_TIMEOUT => "the request was not received in time",
        StatusCode::PAYLOAD_TOO_LARGE => {
            "the request body is larger than this route accepts (see max_body_bytes and \
             max_inventory_bytes)"
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "this route does not accept that content type",
        s if s.is_server_error() => "the server failed to answer; the server log has the detail",
        _ => "the request was refused",
    }
}

/// Status of a create run through `Service::idempotent`: 201 the first time, 200 for a replay.
pub(crate) fn created_status(replayed: bool) -> StatusCode {
    if replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
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

/// axum adds the `Allow` header to this answer.
async fn method_not_allowed() -> Response {
    Problem::for_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "this route does not accept that method; the Allow header lists those it does",
    )
    .into_response_with(StatusCode::METHOD_NOT_ALLOWED)
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
            HeaderName::from_static("last-event-id"),
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
