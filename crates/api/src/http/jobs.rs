//! `/v1/plans`, `/v1/jobs` and `/v1/events`: planning and running migrations, and following them.

use super::problem::HttpError;
use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use http::HeaderMap;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::inventory::idempotency_key;
use super::{AppState, created_status, with_location};
use ferry_core::error::Error;
use ferry_core::model::PageParams;
use ferry_core::model::{
    ApproveRequest, Job, JobDetail, JobEvent, JobGroup, JobRequest, Page, Plan,
};
use ferry_service::auth::Caller;
use ferry_service::{EventFollower, JobVerb};

/// How long an event stream waits after a failed read before reading again.
const READ_RETRY: Duration = Duration::from_secs(1);
/// Events read per look.
const EVENT_BATCH: u32 = 500;

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogQuery {
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
    /// Only this group's lines.
    pub group: Option<String>,
    /// Only this step's lines (its `seq`).
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    pub step: Option<u32>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only this job's events.
    pub job: Option<Uuid>,
    /// Resume after this sequence number (the `Last-Event-ID` header wins when both are given).
    pub after: Option<i64>,
    /// Start near the present rather than at the first event: with the events whose sequence
    /// numbers are among the newest `tail` (so at most `tail` of them). Ignored when `after` or
    /// `Last-Event-ID` is given.
    #[param(maximum = 10000)]
    pub tail: Option<u32>,
}

/// The most a client may ask to see again of the past with `tail`.
const EVENT_TAIL_MAX: u32 = 10_000;

/// Plan a migration without running anything: the route (and why the direct hop was refused),
/// each group's steps with their cluster and node, estimated durations and downtime, and the
/// preflight findings. `runnable` is false when a job from this request would be refused.
#[utoipa::path(post, path = "/v1/plans", tag = "jobs", request_body = JobRequest,
    responses((status = 200, description = "The plan", body = Plan)))]
pub async fn create_plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<JobRequest>,
) -> Result<Json<Plan>, HttpError> {
    Ok(Json(state.service.plan_job(&caller, &request).await?))
}

/// Start a migration job (operator). Its groups and disks are held until it finishes: a job
/// touching a group or disk another active job holds is refused with 409 naming that job.
/// Honours `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs", request_body = JobRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries safe: the same key and body return the first answer")),
    responses(
        (status = 201, description = "Created; the scheduler starts it at once", body = JobDetail, headers(("Location" = String))),
        (status = 200, description = "Replay of an earlier request with the same Idempotency-Key", body = JobDetail),
        (status = 409, description = "A group or disk is held by another job, a check failed, or the Idempotency-Key is in use", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn create_job(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<JobRequest>,
) -> Result<Response, HttpError> {
    let key = idempotency_key(&headers)?;
    let (job, replayed) = state
        .service
        .idempotent(
            &caller,
            "POST /v1/jobs",
            key,
            &request,
            state.service.create_job(&caller, &request),
        )
        .await?;
    let location = format!("/v1/jobs/{}", job.job.id);
    Ok(with_location(
        (created_status(replayed), Json(job)),
        &location,
    ))
}

/// List jobs, oldest first, each with a count of its groups per state.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", params(JobQuery),
    responses((status = 200, description = "A page of jobs", body = Page<Job>)))]
pub async fn list_jobs(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<JobQuery>,
) -> Result<Json<Page<Job>>, HttpError> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    Ok(Json(state.service.list_jobs(&caller, &page).await?))
}

/// One job with every group: its state, route, steps with attempts, timings and outputs, the
/// rollback if one ran, the verification report and the measured downtime.
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobDetail)))]
pub async fn get_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobDetail>, HttpError> {
    Ok(Json(state.service.get_job(&caller, &id).await?))
}

/// One group of a job, as `GET /v1/jobs/{id}` shows it: what a client following the job's
/// events re-reads when a group moved, rather than every group of a large job.
#[utoipa::path(get, path = "/v1/jobs/{id}/groups/{group}", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), ("group" = String, Path, description = "Group name, as the job spells it")),
    responses((status = 200, description = "The group", body = JobGroup)))]
pub async fn get_job_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, group)): ApiPath<(String, String)>,
) -> Result<Json<JobGroup>, HttpError> {
    Ok(Json(
        state.service.get_job_group(&caller, &id, &group).await?,
    ))
}

/// The job's log: every state change of the job, its groups and steps, oldest first, with the
/// reason of every failure and retry.
#[utoipa::path(get, path = "/v1/jobs/{id}/logs", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), LogQuery),
    responses((status = 200, description = "A page of log lines", body = Page<JobEvent>)))]
pub async fn job_logs(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<LogQuery>,
) -> Result<Json<Page<JobEvent>>, HttpError> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    Ok(Json(
        state
            .service
            .job_logs(&caller, &id, query.group.as_deref(), query.step, &page)
            .await?,
    ))
}

/// Approve cutovers (operator): of one group (`{"group": "FS1"}`) or of every group (`{}`).
/// With `approval_ttl_seconds` in the job, an approval not used in time expires.
#[utoipa::path(post, path = "/v1/jobs/{id}/approve", tag = "jobs", request_body = ApproveRequest,
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobDetail),
        (status = 409, description = "The job has finished", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn approve_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiJson(approve): ApiJson<ApproveRequest>,
) -> Result<Json<JobDetail>, HttpError> {
    Ok(Json(
        state.service.approve_job(&caller, &id, &approve).await?,
    ))
}

/// Pause a job (operator): no new step starts; steps running finish.
#[utoipa::path(post, path = "/v1/jobs/{id}/pause", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobDetail),
        (status = 409, description = "The job has finished or is being cancelled", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn pause_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobDetail>, HttpError> {
    Ok(Json(
        state
            .service
            .set_job_state(&caller, &id, JobVerb::Pause)
            .await?,
    ))
}

/// Resume a paused job (operator).
#[utoipa::path(post, path = "/v1/jobs/{id}/resume", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobDetail),
        (status = 409, description = "The job has finished or is being cancelled", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn resume_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobDetail>, HttpError> {
    Ok(Json(
        state
            .service
            .set_job_state(&caller, &id, JobVerb::Resume)
            .await?,
    ))
}

/// Cancel a job (operator): groups not yet in their cutover stop where they are; groups in their
/// cutover roll back to the source.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", tag = "jobs",
    params(("id" = String, Path, description = "Job id")),
    responses((status = 200, description = "The job", body = JobDetail),
        (status = 409, description = "The job has finished", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn cancel_job(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<JobDetail>, HttpError> {
    Ok(Json(
        state
            .service
            .set_job_state(&caller, &id, JobVerb::Cancel)
            .await?,
    ))
}

/// Retry a failed or rolled-back group (operator): it resumes at its failed step, or after a
/// rollback at the start of its cutover; finished preparation is kept.
#[utoipa::path(post, path = "/v1/jobs/{id}/groups/{group}/retry", tag = "jobs",
    params(("id" = String, Path, description = "Job id"), ("group" = String, Path, description = "Group name")),
    responses((status = 200, description = "The job", body = JobDetail),
        (status = 409, description = "The group is not failed or rolled back, or the job has finished", body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn retry_group(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, group)): ApiPath<(String, String)>,
) -> Result<Json<JobDetail>, HttpError> {
    Ok(Json(state.service.retry_group(&caller, &id, &group).await?))
}

/// Server-Sent Events: every state change of jobs, groups and steps as it is stored, each with
/// its sequence number as the event id. Reconnecting with `Last-Event-ID` resumes after it.
#[utoipa::path(get, path = "/v1/events", tag = "jobs",
    params(
        EventQuery,
        ("Last-Event-ID" = Option<i64>, Header,
            description = "Resume after this event's sequence number, as a reconnecting \
                           EventSource sends it; wins over `after`"),
    ),
    responses((status = 200, description = "An endless `text/event-stream`; each `data` is a JobEvent", content_type = "text/event-stream", body = JobEvent)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<EventQuery>,
) -> Result<Response, HttpError> {
    let resume = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    Error::bad_request("Last-Event-ID must be an event's sequence number")
                })?,
        ),
        None => None,
    };
    let after = match (resume.or(query.after), query.tail) {
        (Some(after), _) => after,
        (None, Some(tail)) if tail > EVENT_TAIL_MAX => {
            return Err(
                Error::bad_request(format!("tail must be at most {EVENT_TAIL_MAX}")).into(),
            );
        }
        (None, Some(tail)) => {
            let newest = state.service.newest_event_seq(&caller, query.job).await?;
            (newest - i64::from(tail)).max(0)
        }
        (None, None) => 0,
    };
    // Authorised once, up front: a stream that fails later can only end.
    state
        .service
        .events_after(&caller, query.job, after, 1)
        .await?;
    let follower = state.service.follow_events().await?;
    let stream = event_stream(state, caller, query.job, after, follower);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

fn event_stream(
    state: AppState,
    caller: Caller,
    job: Option<Uuid>,
    after: i64,
    follower: EventFollower,
) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(
        (
            state,
            caller,
            after,
            std::collections::VecDeque::new(),
            follower,
        ),
        move |(mut state, caller, mut after, mut queue, mut follower)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    let event: JobEvent = event;
                    let sse = Event::default()
                        .id(event.seq.to_string())
                        .event(event.kind.clone())
                        .json_data(&event)
                        .unwrap_or_else(|_| Event::default().comment("unserializable event"));
                    return Some((Ok(sse), (state, caller, after, queue, follower)));
                }
                // A graceful shutdown waits for open responses; an endless stream must end.
                let closing = async {
                    // A state whose sender is gone (a router built without a server) never closes.
                    if state.closing.wait_for(|closing| *closing).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                };
                let next = tokio::select! {
                    next = follower.next(&caller, job, after, EVENT_BATCH) => next,
                    _ = closing => return None,
                };
                match next {
                    Ok(events) => {
                        after = events.last().map_or(after, |e| e.seq);
                        queue.extend(events);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "event stream read failed; retrying");
                        tokio::time::sleep(READ_RETRY).await;
                    }
                }
            }
        },
    )
}
