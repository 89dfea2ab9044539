//! `ferry.v1.JobService`: the gRPC twin of `src/http/jobs.rs` (plans, jobs, their verbs and logs,
//! and the event stream as `Watch`).

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use super::Api;
use ferry_core::model::{ApproveRequest, JobEvent};
use ferry_protocol::convert::jobs::{job_request, watch_job};
use ferry_protocol::convert::{non_empty, page};
use ferry_protocol::pb::{self, job_service_server::JobService};
use ferry_service::auth::Caller;
use ferry_service::{EventFollower, JobVerb};

/// The idempotency scope of CreateJob: REST's, as for CreateCluster and CreateToken, so one key
/// means one job whichever transport a retry takes.
const CREATE_JOB_ROUTE: &str = "POST /v1/jobs";

/// How long Watch waits after a failed read before reading again.
const READ_RETRY: Duration = Duration::from_secs(1);
/// Events read per look.
const EVENT_BATCH: u32 = 500;

#[tonic::async_trait]
impl JobService for Api {
    async fn plan_job(
        &self,
        request: Request<pb::PlanJobRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        self.call(
            "/ferry.v1.JobService/PlanJob",
            request,
            |caller, req| async move {
                let request = job_request(req.request)?;
                Ok(self.service.plan_job(&caller, &request).await?.into())
            },
        )
        .await
    }

    async fn create_job(
        &self,
        request: Request<pb::CreateJobRequest>,
    ) -> Result<Response<pb::CreateJobResponse>, Status> {
        self.call(
            "/ferry.v1.JobService/CreateJob",
            request,
            |caller, req| async move {
                let request = job_request(req.request)?;
                let key = non_empty(req.idempotency_key);
                let (job, replayed) = self
                    .service
                    .idempotent(
                        &caller,
                        CREATE_JOB_ROUTE,
                        key.as_deref(),
                        &request,
                        self.service.create_job(&caller, &request),
                    )
                    .await?;
                Ok(pb::CreateJobResponse {
                    job: Some(job.into()),
                    replayed,
                })
            },
        )
        .await
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        self.call(
            "/ferry.v1.JobService/ListJobs",
            request,
            |caller, req| async move {
                let listed = self
                    .service
                    .list_jobs(&caller, &page(req.limit, req.cursor))
                    .await?;
                Ok(pb::ListJobsResponse {
                    jobs: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::JobDetail>, Status> {
        self.call(
            "/ferry.v1.JobService/GetJob",
            request,
            |caller, req| async move { Ok(self.service.get_job(&caller, &req.job).await?.into()) },
        )
        .await
    }

    async fn get_job_group(
        &self,
        request: Request<pb::GetJobGroupRequest>,
    ) -> Result<Response<pb::JobGroup>, Status> {
        self.call(
            "/ferry.v1.JobService/GetJobGroup",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .get_job_group(&caller, &req.job, &req.group)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn list_job_logs(
        &self,
        request: Request<pb::ListJobLogsRequest>,
    ) -> Result<Response<pb::ListJobLogsResponse>, Status> {
        self.call(
            "/ferry.v1.JobService/ListJobLogs",
            request,
            |caller, req| async move {
                let group = non_empty(req.group);
                let listed = self
                    .service
                    .job_logs(
                        &caller,
                        &req.job,
                        group.as_deref(),
                        req.step,
                        &page(req.limit, req.cursor),
                    )
                    .await?;
                Ok(pb::ListJobLogsResponse {
                    events: listed.items.into_iter().map(Into::into).collect(),
                    next: listed.next.unwrap_or_default(),
                })
            },
        )
        .await
    }

    async fn approve_job(
        &self,
        request: Request<pb::ApproveJobRequest>,
    ) -> Result<Response<pb::JobDetail>, Status> {
        self.call(
            "/ferry.v1.JobService/ApproveJob",
            request,
            |caller, req| async move {
                // An empty `group` is passed on, not read as "every group": approving every
                // cutover must be asked for by leaving the field out.
                let approve = ApproveRequest { group: req.group };
                Ok(self
                    .service
                    .approve_job(&caller, &req.job, &approve)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn pause_job(
        &self,
        request: Request<pb::PauseJobRequest>,
    ) -> Result<Response<pb::JobDetail>, Status> {
        self.call(
            "/ferry.v1.JobService/PauseJob",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .set_job_state(&caller, &req.job, JobVerb::Pause)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn resume_job(
        &self,
        request: Request<pb::ResumeJobRequest>,
    ) -> Result<Response<pb::JobDetail>, Status> {
        self.call(
            "/ferry.v1.JobService/ResumeJob",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .set_job_state(&caller, &req.job, JobVerb::Resume)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn cancel_job(
        &self,
        request: Request<pb::CancelJobRequest>,
    ) -> Result<Response<pb::JobDetail>, Status> {
        self.call(
            "/ferry.v1.JobService/CancelJob",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .set_job_state(&caller, &req.job, JobVerb::Cancel)
                    .await?
                    .into())
            },
        )
        .await
    }

    async fn retry_group(
        &self,
        request: Request<pb::RetryGroupRequest>,
    ) -> Result<Response<pb::JobDetail>, Status> {
        self.call(
            "/ferry.v1.JobService/RetryGroup",
            request,
            |caller, req| async move {
                Ok(self
                    .service
                    .retry_group(&caller, &req.job, &req.group)
                    .await?
                    .into())
            },
        )
        .await
    }

    type WatchStream = BoxStream<'static, Result<pb::JobEvent, Status>>;

    async fn watch(
        &self,
        request: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.call(
            "/ferry.v1.JobService/Watch",
            request,
            |caller, req| async move {
                let job = watch_job(req.job_id)?;
                // Authorised once, up front, as REST's event stream is: once the stream has begun,
                // a failure can only end it, and the client would not learn why.
                self.service
                    .events_after(&caller, job, req.after_seq, 1)
                    .await?;
                Ok(event_stream(
                    self.service.follow_events().await?,
                    caller,
                    job,
                    req.after_seq,
                    self.closing.clone(),
                ))
            },
        )
        .await
    }
}

/// Events after `after` until the server shuts down. tonic drops the stream when the client goes
/// away, which ends the following with it.
fn event_stream(
    follower: EventFollower,
    caller: Caller,
    job: Option<Uuid>,
    after: i64,
    mut closing: watch::Receiver<bool>,
) -> BoxStream<'static, Result<pb::JobEvent, Status>> {
    let closed = async move {
        // An error means the server is gone altogether, which ends the stream just the same.
        let _ = closing.wait_for(|closing| *closing).await;
    };
    let events = futures::stream::unfold(
        (follower, caller, after, VecDeque::<JobEvent>::new()),
        move |(mut follower, caller, mut after, mut queue)| async move {
            loop {
                if let Some(event) = queue.pop_front() {
                    return Some((Ok(event.into()), (follower, caller, after, queue)));
                }
                match follower.next(&caller, job, after, EVENT_BATCH).await {
                    Ok(events) => {
                        after = events.last().map_or(after, |e| e.seq);
                        queue.extend(events);
                    }
                    // A watcher outlives brief database trouble rather than being cut off by it;
                    // its position is kept, so nothing is skipped once reads work again.
                    Err(e) => {
                        tracing::warn!(error = %e, "job event watch read failed; retrying");
                        tokio::time::sleep(READ_RETRY).await;
                    }
                }
            }
        },
    );
    // Ended with UNAVAILABLE rather than OK, so a client knows to watch again (on this server
    // once it is back, or on another) with the last `seq` it received.
    let farewell = futures::stream::once(async {
        Err(Status::unavailable(
            "the server is shutting down; watch again with `after_seq` set to the last seq \
             received",
        ))
    });
    events.take_until(closed).chain(farewell).boxed()
}
