//! `ferry.v1.JobService` through a real server on port 0 and real TCP, with the generated client:
//! planning (and the interim KB 983840 asks for), creating with an idempotency key, holds between
//! jobs, the operator's verbs, the Watch stream, and authentication. No agents run: a job whose
//! agents are not connected simply waits, which is all these calls need.

mod common;

use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

use ferry::config::Config;
use ferry::protocol::pb;
use ferry::protocol::pb::job_service_client::JobServiceClient;
use ferry::server::{RunningServer, start_with_store};

use common::{BOOTSTRAP, PATIENCE, authed, sample_inventory, sqlite_store};

/// A running server on SQLite, with OLD (2003) and NEW (2008 R2) registered and OLD's inventory
/// imported; `interim` also registers MID (2008), the interim the direct hop needs.
struct Harness {
    server: RunningServer,
    channel: Channel,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(interim: bool) -> Self {
        let (store, dir) = sqlite_store().await;
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
        let harness = Self {
            server,
            channel,
            _dir: dir,
        };
        harness.cluster("OLD", "ws2003").await;
        harness.cluster("NEW", "ws2008r2").await;
        if interim {
            harness.cluster("MID", "ws2008").await;
        }
        let document = serde_json::to_value(sample_inventory(3, 2, 2)).unwrap();
        let (status, body) = harness
            .rest("PUT", "/v1/clusters/OLD/inventory", Some(document))
            .await;
        assert!(status == 200 || status == 201, "{status} {body}");
        harness
    }

    async fn cluster(&self, name: &str, os: &str) {
        let (status, body) = self
            .rest(
                "POST",
                "/v1/clusters",
                Some(json!({"name": name, "os": os, "description": "test"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }

    async fn rest(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        common::rest(self.server.http_addr, method, path, body).await
    }

    fn jobs(&self) -> JobServiceClient<Channel> {
        JobServiceClient::new(self.channel.clone())
    }

    async fn create(&self, request: pb::JobRequest, key: &str) -> pb::CreateJobResponse {
        self.jobs()
            .create_job(authed(
                BOOTSTRAP,
                pb::CreateJobRequest {
                    request: Some(request),
                    idempotency_key: key.into(),
                },
            ))
            .await
            .expect("create job")
            .into_inner()
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

/// Moves `groups` of OLD to NEW; the route is the planner's choice.
fn job_request(groups: &[&str]) -> pb::JobRequest {
    pb::JobRequest {
        source: "OLD".into(),
        target: "NEW".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        ..Default::default()
    }
}

fn job_of(detail: &pb::JobDetail) -> &pb::Job {
    detail.job.as_ref().expect("a job detail carries its job")
}

async fn next_event(stream: &mut Streaming<pb::JobEvent>) -> pb::JobEvent {
    tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("an event within the patience")
        .expect("the stream stays healthy")
        .expect("the stream does not end")
}

/// Reads events until one satisfies `wanted`, returning every event read.
async fn events_until(
    stream: &mut Streaming<pb::JobEvent>,
    wanted: impl Fn(&pb::JobEvent) -> bool,
) -> Vec<pb::JobEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next_event(stream).await;
        let done = wanted(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn is_job_state(event: &pb::JobEvent, state: &str) -> bool {
    event.kind == pb::EventKind::Job as i32 && event.state == state
}

#[tokio::test]
async fn plans_are_refused_without_the_interim_and_routed_through_it() {
    let h = Harness::start(false).await;
    let refused = assert_code(
        h.jobs()
            .plan_job(authed(
                BOOTSTRAP,
                pb::PlanJobRequest {
                    request: Some(job_request(&[])),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert!(refused.message().contains("KB 983840"), "{refused:?}");
    assert!(refused.message().contains("route"), "{refused:?}");
    h.cluster("MID", "ws2008").await;

    let plan = h
        .jobs()
        .plan_job(authed(
            BOOTSTRAP,
            pb::PlanJobRequest {
                request: Some(job_request(&[])),
            },
        ))
        .await
        .expect("plan through the interim")
        .into_inner();
    assert_eq!(plan.route, ["OLD", "MID", "NEW"]);
    assert!(plan.refused_direct.is_some(), "{plan:?}");
    // No agent is connected: that is a warning, not a failure.
    assert!(plan.runnable, "{:?}", plan.findings);
    assert!(
        plan.findings
            .iter()
            .any(|f| f.check == "agent_connected" && f.severity == pb::Severity::Warn as i32),
        "{:?}",
        plan.findings
    );
    assert_eq!(plan.request, Some(job_request(&[])));
    assert_eq!(plan.groups.len(), 3);
    for group in &plan.groups {
        assert_eq!(group.route, ["OLD", "MID", "NEW"]);
        let detail = group.route_detail.as_ref().unwrap();
        assert_eq!(detail.hops.len(), 2);
        assert_eq!(detail.hops[0].from_os, pb::OsGeneration::Ws2003 as i32);
        assert_eq!(detail.hops[1].to_os, pb::OsGeneration::Ws2008r2 as i32);
        assert_eq!(group.steps[0].kind, pb::StepKind::Preflight as i32);
        assert!(
            group
                .steps
                .iter()
                .any(|s| s.phase == pb::Phase::Cutover as i32)
        );
        let seqs: Vec<u32> = group.steps.iter().map(|s| s.seq).collect();
        assert_eq!(seqs, (1..=group.steps.len() as u32).collect::<Vec<_>>());
        assert!(group.estimated_downtime_seconds <= group.estimated_seconds);
    }

    // A malformed window is refused with the path of the bad field, as REST names it.
    let mut bad = job_request(&[]);
    bad.windows = vec![pb::CutoverWindow {
        window: Some(pb::cutover_window::Window::Interval(pb::IntervalWindow {
            start: Some(prost_types::Timestamp {
                seconds: 1_800_000_000,
                nanos: 0,
            }),
            end: None,
        })),
    }];
    let status = assert_code(
        h.jobs()
            .plan_job(authed(BOOTSTRAP, pb::PlanJobRequest { request: Some(bad) }))
            .await,
        Code::InvalidArgument,
    );
    assert!(
        status.message().contains("windows[0].interval.end"),
        "{status:?}"
    );
    let status = assert_code(
        h.jobs()
            .plan_job(authed(BOOTSTRAP, pb::PlanJobRequest { request: None }))
            .await,
        Code::InvalidArgument,
    );
    assert!(status.message().contains("request"), "{status:?}");
    h.stop().await;
}

#[tokio::test]
async fn jobs_are_created_once_held_and_steered() {
    let h = Harness::start(true).await;
    let mut request = job_request(&["FS-0002"]);
    request.name = Some("wave 1".into());
    request.windows = vec![pb::CutoverWindow {
        window: Some(pb::cutover_window::Window::Recurring(pb::RecurringWindow {
            cron: "0 22 * * 6".into(),
            duration_seconds: 4 * 3600,
            time_zone: "Europe/Berlin".into(),
        })),
    }];

    let first = h.create(request.clone(), "wave-1").await;
    assert!(!first.replayed);
    let detail = first.job.expect("the job");
    let job = job_of(&detail).clone();
    assert_eq!(job.name, "wave 1");
    assert_eq!(job.request, Some(request.clone()));
    assert_eq!(detail.groups.len(), 1);
    assert_eq!(detail.groups[0].name, "FS-0002");
    assert_eq!(detail.groups[0].route, ["OLD", "MID", "NEW"]);

    // The same key and request: the same job, not a second one.
    let again = h.create(request.clone(), "wave-1").await;
    assert!(again.replayed);
    assert_eq!(job_of(again.job.as_ref().unwrap()).id, job.id);
    // The same key with another request is a client bug, refused.
    assert_code(
        h.jobs()
            .create_job(authed(
                BOOTSTRAP,
                pb::CreateJobRequest {
                    request: Some(job_request(&["FS-0002", "FS-共有"])),
                    idempotency_key: "wave-1".into(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );

    // The group is held by the first job: a second job on it is refused, naming the holder.
    let held = assert_code(
        h.jobs()
            .create_job(authed(
                BOOTSTRAP,
                pb::CreateJobRequest {
                    request: Some(job_request(&["FS-0002"])),
                    idempotency_key: String::new(),
                },
            ))
            .await,
        Code::AlreadyExists,
    );
    assert!(held.message().contains(&job.id), "{held:?}");

    let got = h
        .jobs()
        .get_job(authed(
            BOOTSTRAP,
            pb::GetJobRequest {
                job: job.id.clone(),
            },
        ))
        .await
        .expect("get job")
        .into_inner();
    assert_eq!(job_of(&got).id, job.id);
    assert_eq!(got.groups.len(), 1);
    assert!(
        got.event_seq > 0,
        "the job's first events are counted: {}",
        got.event_seq
    );
    let steps = &got.groups[0].steps;
    assert!(!steps.is_empty());
    assert!(
        steps
            .iter()
            .all(|s| s.action.as_ref().is_some_and(|a| a.action.is_some()))
    );
    assert_code(
        h.jobs()
            .get_job(authed(
                BOOTSTRAP,
                pb::GetJobRequest {
                    job: uuid::Uuid::now_v7().to_string(),
                },
            ))
            .await,
        Code::NotFound,
    );
    // One group alone is the group as GetJob shows it; a group the job lacks is NOT_FOUND.
    let group = h
        .jobs()
        .get_job_group(authed(
            BOOTSTRAP,
            pb::GetJobGroupRequest {
                job: job.id.clone(),
                group: got.groups[0].name.clone(),
            },
        ))
        .await
        .expect("get job group")
        .into_inner();
    assert_eq!(group.name, got.groups[0].name);
    assert_eq!(group.steps.len(), got.groups[0].steps.len());
    assert_code(
        h.jobs()
            .get_job_group(authed(
                BOOTSTRAP,
                pb::GetJobGroupRequest {
                    job: job.id.clone(),
                    group: "FS-9999".into(),
                },
            ))
            .await,
        Code::NotFound,
    );

    // A second job on other groups, then both listed, oldest first, one per page.
    let other = h.create(job_request(&["FS-共有"]), "").await;
    let other_id = job_of(other.job.as_ref().unwrap()).id.clone();
    let page = h
        .jobs()
        .list_jobs(authed(
            BOOTSTRAP,
            pb::ListJobsRequest {
                limit: 1,
                cursor: String::new(),
            },
        ))
        .await
        .expect("list jobs")
        .into_inner();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].id, job.id);
    assert!(!page.next.is_empty());
    let page = h
        .jobs()
        .list_jobs(authed(
            BOOTSTRAP,
            pb::ListJobsRequest {
                limit: 1,
                cursor: page.next,
            },
        ))
        .await
        .expect("second page")
        .into_inner();
    assert_eq!(page.jobs.len(), 1);
    assert_eq!(page.jobs[0].id, other_id);

    // The operator's verbs.
    let paused = h
        .jobs()
        .pause_job(authed(
            BOOTSTRAP,
            pb::PauseJobRequest {
                job: job.id.clone(),
            },
        ))
        .await
        .expect("pause")
        .into_inner();
    assert_eq!(job_of(&paused).state, pb::JobState::Paused as i32);
    let resumed = h
        .jobs()
        .resume_job(authed(
            BOOTSTRAP,
            pb::ResumeJobRequest {
                job: job.id.clone(),
            },
        ))
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(job_of(&resumed).state, pb::JobState::Running as i32);
    let cancelled = h
        .jobs()
        .cancel_job(authed(
            BOOTSTRAP,
            pb::CancelJobRequest {
                job: job.id.clone(),
            },
        ))
        .await
        .expect("cancel")
        .into_inner();
    // The scheduler may already have finished the cancellation: no group was in its cutover.
    assert!(
        [
            pb::JobState::Cancelling as i32,
            pb::JobState::Cancelled as i32
        ]
        .contains(&job_of(&cancelled).state),
        "{cancelled:?}"
    );
    // Retrying a group that has not failed is refused.
    assert_code(
        h.jobs()
            .retry_group(authed(
                BOOTSTRAP,
                pb::RetryGroupRequest {
                    job: other_id.clone(),
                    group: "FS-共有".into(),
                },
            ))
            .await,
        Code::AlreadyExists,
    );

    // The log tells the story, oldest first, and filters by group.
    let logs = h
        .jobs()
        .list_job_logs(authed(
            BOOTSTRAP,
            pb::ListJobLogsRequest {
                job: job.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .expect("logs")
        .into_inner();
    assert!(logs.events.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(logs.events.iter().all(|e| e.job_id == job.id));
    let job_states: Vec<&str> = logs
        .events
        .iter()
        .filter(|e| e.kind == pb::EventKind::Job as i32)
        .map(|e| e.state.as_str())
        .collect();
    assert!(
        job_states.starts_with(&["running", "paused", "running", "cancelling"]),
        "{job_states:?}"
    );
    let group_logs = h
        .jobs()
        .list_job_logs(authed(
            BOOTSTRAP,
            pb::ListJobLogsRequest {
                job: job.id.clone(),
                group: "FS-0002".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("group logs")
        .into_inner();
    assert!(
        group_logs
            .events
            .iter()
            .all(|e| e.group.as_deref() == Some("FS-0002"))
    );
    h.stop().await;
}

#[tokio::test]
async fn watch_streams_events_in_order_and_resumes() {
    let h = Harness::start(true).await;
    let created = h.create(job_request(&["FS-0002"]), "").await;
    let id = job_of(created.job.as_ref().unwrap()).id.clone();
    let watch = |after_seq: i64| {
        let mut jobs = h.jobs();
        let id = id.clone();
        async move {
            jobs.watch(authed(
                BOOTSTRAP,
                pb::WatchRequest {
                    job_id: Some(id),
                    after_seq,
                },
            ))
            .await
            .expect("watch")
            .into_inner()
        }
    };

    // A stream opened before the change sees it as it happens.
    let mut live = watch(0).await;
    let created_event = next_event(&mut live).await;
    assert!(is_job_state(&created_event, "running"), "{created_event:?}");
    h.jobs()
        .pause_job(authed(BOOTSTRAP, pb::PauseJobRequest { job: id.clone() }))
        .await
        .expect("pause");
    let mut seen = vec![created_event];
    seen.extend(events_until(&mut live, |e| is_job_state(e, "paused")).await);
    h.jobs()
        .resume_job(authed(BOOTSTRAP, pb::ResumeJobRequest { job: id.clone() }))
        .await
        .expect("resume");
    seen.extend(events_until(&mut live, |e| is_job_state(e, "running")).await);
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq), "{seen:?}");
    assert!(seen.iter().all(|e| e.job_id == id && e.at.is_some()));

    // Resuming after an event starts right after it: nothing skipped, nothing repeated.
    let paused = seen.iter().position(|e| is_job_state(e, "paused")).unwrap();
    let mut resumed = watch(seen[paused].seq).await;
    for expected in &seen[paused + 1..] {
        assert_eq!(&next_event(&mut resumed).await, expected);
    }

    // Another job's events are not this watch's.
    let other = h.create(job_request(&["FS-共有"]), "").await;
    let other_id = job_of(other.job.as_ref().unwrap()).id.clone();
    h.jobs()
        .cancel_job(authed(BOOTSTRAP, pb::CancelJobRequest { job: id.clone() }))
        .await
        .expect("cancel");
    let rest = events_until(&mut live, |e| is_job_state(e, "cancelling")).await;
    assert!(rest.iter().all(|e| e.job_id == id), "{rest:?}");
    // An unfiltered watch sees both jobs.
    let mut all = h
        .jobs()
        .watch(authed(
            BOOTSTRAP,
            pb::WatchRequest {
                job_id: None,
                after_seq: 0,
            },
        ))
        .await
        .expect("watch all")
        .into_inner();
    let everything = events_until(&mut all, |e| e.job_id == other_id).await;
    assert!(everything.iter().any(|e| e.job_id == id));
    drop(live);
    drop(resumed);
    drop(all);

    assert_code(
        h.jobs()
            .watch(authed(
                BOOTSTRAP,
                pb::WatchRequest {
                    job_id: Some("not-a-uuid".into()),
                    after_seq: 0,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    h.stop().await;
}

#[tokio::test]
async fn calls_need_a_token_and_the_role() {
    let h = Harness::start(true).await;
    let plan = || pb::PlanJobRequest {
        request: Some(job_request(&[])),
    };
    assert_code(
        h.jobs().plan_job(Request::new(plan())).await,
        Code::Unauthenticated,
    );
    assert_code(
        h.jobs()
            .plan_job(authed("not-a-real-token-0123456789", plan()))
            .await,
        Code::Unauthenticated,
    );
    assert_code(
        h.jobs()
            .watch(Request::new(pb::WatchRequest::default()))
            .await,
        Code::Unauthenticated,
    );
    assert_code(
        h.jobs()
            .list_jobs(Request::new(pb::ListJobsRequest::default()))
            .await,
        Code::Unauthenticated,
    );

    // A viewer may plan and watch, not start a job.
    let (status, body) = h
        .rest(
            "POST",
            "/v1/tokens",
            Some(json!({"name": "watcher", "role": "viewer"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let viewer = body["token"].as_str().expect("the new secret").to_owned();
    h.jobs()
        .plan_job(authed(&viewer, plan()))
        .await
        .expect("a viewer plans");
    assert_code(
        h.jobs()
            .create_job(authed(
                &viewer,
                pb::CreateJobRequest {
                    request: Some(job_request(&[])),
                    idempotency_key: String::new(),
                },
            ))
            .await,
        Code::PermissionDenied,
    );
    let mut stream = h
        .jobs()
        .watch(authed(&viewer, pb::WatchRequest::default()))
        .await
        .expect("a viewer watches")
        .into_inner();
    // Nothing has happened yet, so the stream stays open and quiet.
    assert!(
        tokio::time::timeout(Duration::from_millis(600), stream.next())
            .await
            .is_err()
    );
    drop(stream);
    h.stop().await;
}

#[tokio::test]
async fn a_watch_does_not_hold_the_server_open() {
    let h = Harness::start(true).await;
    let mut stream = h
        .jobs()
        .watch(authed(BOOTSTRAP, pb::WatchRequest::default()))
        .await
        .expect("watch")
        .into_inner();
    let Harness {
        server,
        channel,
        _dir,
    } = h;
    tokio::time::timeout(PATIENCE, server.stop())
        .await
        .expect("the server stops while a watch is open")
        .expect("the server stops cleanly");
    // The watcher learns why, and resumes elsewhere with the last `seq` it saw.
    let ended = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("the stream ends");
    assert_code(ended, Code::Unavailable);
    drop(channel);
}
