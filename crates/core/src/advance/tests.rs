use super::report::{ScanReport, verify};
use super::*;
use crate::model::OsGeneration;
use crate::model::{Access, AceType, Permission};
use crate::plan::{ClusterRef, RouteRequest, RunbookOptions, plan_route, runbook};
use serde_json::json;

fn request() -> JobRequest {
    serde_json::from_value(json!({"source": "OLD", "target": "NEW"})).unwrap()
}

/// A fresh group on the two-hop route OLD (ws2003) -> MID (ws2008) -> NEW (ws2008r2).
fn group() -> JobGroup {
    let clusters = [
        ("OLD", OsGeneration::Ws2003),
        ("MID", OsGeneration::Ws2008),
        ("NEW", OsGeneration::Ws2008r2),
    ]
    .map(|(name, os)| ClusterRef {
        name: name.into(),
        os,
    });
    let route = plan_route(
        &RouteRequest {
            source: "OLD".into(),
            target: "NEW".into(),
            interim: None,
            allow_lossy: false,
        },
        &clusters,
        &crate::plan::HopTable::builtin(),
    )
    .unwrap();
    let steps = runbook(&route, &RunbookOptions::default())
        .into_iter()
        .enumerate()
        .map(|(i, spec)| JobStep {
            seq: i as u32 + 1,
            action: StepAction::Run(spec.kind),
            phase: spec.phase,
            cluster: spec.cluster,
            peer: spec.peer,
            state: StepState::Pending,
            attempt: 0,
            max_attempts: spec.retry.max_attempts,
            skeleton_depth: spec.skeleton_depth,
            estimate_seconds: spec.estimate.as_secs(),
            task_id: None,
            next_attempt_at: None,
            started_at: None,
            finished_at: None,
            output: None,
            error: None,
        })
        .collect();
    JobGroup {
        name: "FS1".into(),
        state: GroupState::Pending,
        route: vec!["OLD".into(), "MID".into(), "NEW".into()],
        losses: Vec::new(),
        steps,
        rollback: Vec::new(),
        context: Default::default(),
        approval: None,
        downtime_started_at: None,
        downtime_ended_at: None,
        verification: None,
        error: None,
        retries: 0,
        version: 1,
        updated_at: None,
    }
}

fn share(name: &str) -> Share {
    Share {
        name: name.into(),
        path: format!("F:\\Shares\\{name}"),
        description: String::new(),
        permissions: vec![Permission {
            principal: "CORP\\Finance".into(),
            ace_type: AceType::Allow,
            access: Access::Change,
        }],
        caching: Default::default(),
        access_based_enumeration: false,
        continuous_availability: false,
        encrypt_data: false,
        user_limit: None,
    }
}

fn scan(shares: &[Share], online: bool) -> serde_json::Value {
    json!({
        "group": "FS1",
        "shares": shares,
        "resources": [
            {"name": "FS1 Name", "kind": "network_name", "state": if online { "online" } else { "offline" }},
            {"name": "Cluster Disk 1", "kind": "physical_disk", "state": "online"},
        ],
    })
}

/// Answers a task the way a healthy cluster would.
fn healthy(shares: &[Share]) -> impl FnMut(&StartTask) -> TaskView + '_ {
    move |start| {
        TaskView::Succeeded(match &start.action {
            Action::ShareScan { .. } => scan(shares, true),
            Action::ReadStorage { .. } => {
                json!({"disks": [{"resource": "Cluster Disk 1", "size_bytes": 1, "free_bytes": 1}]})
            }
            Action::PrepareDisk { .. } => json!({"resource": "Cluster Disk 9"}),
            _ => json!({}),
        })
    }
}

struct Run {
    group: JobGroup,
    actions: Vec<(String, Action)>,
    events: Vec<NewJobEvent>,
    now: DateTime<Utc>,
}

/// Drives `advance` like the scheduler does, answering each task with `answer`, until the
/// group settles or nothing more happens.
fn drive(
    group: JobGroup,
    request: &JobRequest,
    job_state: JobState,
    answer: impl FnMut(&StartTask) -> TaskView,
) -> Run {
    drive_from(group, None, request, job_state, answer)
}

/// `drive` for a group whose baseline was taken earlier.
fn drive_from(
    mut group: JobGroup,
    mut baseline: Option<Vec<Share>>,
    request: &JobRequest,
    job_state: JobState,
    mut answer: impl FnMut(&StartTask) -> TaskView,
) -> Run {
    let mut now = Utc::now();
    let mut actions = Vec::new();
    let mut events = Vec::new();
    let mut task = TaskView::None;
    for _ in 0..200 {
        let inputs = Inputs {
            now,
            job_state,
            request,
            job_approval: None,
            task: std::mem::replace(&mut task, TaskView::None),
            baseline: baseline.as_deref(),
            may_start: true,
            may_cut_over: true,
        };
        let Some(t) = advance(&group, &inputs) else {
            break;
        };
        if let Some(b) = &t.baseline {
            baseline = Some(b.clone());
        }
        events.extend(t.events.clone());
        group = t.group;
        if let Some(start) = &t.start {
            actions.push((start.cluster.clone(), start.action.clone()));
            task = answer(start);
        } else if let Some(at) = t.wake_at {
            now = at;
        } else if group.state.is_settled() {
            break;
        }
    }
    Run {
        group,
        actions,
        events,
        now,
    }
}

#[test]
fn a_two_hop_group_runs_the_runbook_in_order_and_verifies() {
    let shares = [share("Finance"), share("HR$")];
    let run = drive(group(), &request(), JobState::Running, healthy(&shares));
    assert_eq!(
        run.group.state,
        GroupState::Succeeded,
        "{:?}",
        run.group.error
    );
    let kinds: Vec<String> = run
        .actions
        .iter()
        .map(|(cluster, action)| format!("{cluster}:{}", action.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            "OLD:share_scan",
            "MID:read_storage",
            "NEW:read_storage",
            "MID:prepare_disk",
            "MID:skeleton_copy",
            "MID:migrate_group",
            "MID:replace_disk_resource",
            "OLD:offline_group",
            "MID:online_group",
            "MID:share_scan",
            "NEW:migrate_group",
            "MID:offline_group",
            "NEW:replace_disk_resource",
            "NEW:online_group",
            "NEW:share_scan",
            "MID:remove_group",
        ]
    );
    // The skeleton reads the source's drive and writes the interim's disk of that letter.
    assert!(run.actions.iter().any(|(_, a)| matches!(a,
        Action::SkeletonCopy { source, destination, depth: 3, .. }
            if source == "\\\\OLD\\F$\\" && destination == "F:\\")));
    let report = run.group.verification.as_ref().unwrap();
    assert_eq!((report.identical, report.expected), (2, 2));
    assert_eq!(report.cluster, "NEW");
    assert!(run.group.downtime_seconds().is_some());
    assert_eq!(run.group.retries, 0);
}

#[test]
fn a_network_name_failing_its_first_online_is_retried_after_a_backoff() {
    let shares = [share("Finance")];
    let mut healthy = healthy(&shares);
    let mut failed_once = false;
    let run = drive(group(), &request(), JobState::Running, |start| {
        if matches!(start.action, Action::OnlineGroup { .. })
            && start.cluster == "MID"
            && !failed_once
        {
            failed_once = true;
            return TaskView::Failed(TaskError {
                kind: "transient".into(),
                message: "network name FS1 failed: Kerberos".into(),
                retryable: true,
            });
        }
        healthy(start)
    });
    assert_eq!(run.group.state, GroupState::Succeeded);
    assert_eq!(run.group.retries, 1);
    let online = run
        .group
        .steps
        .iter()
        .find(|s| s.action == StepAction::Run(StepKind::OnlineInterim))
        .unwrap();
    assert_eq!(online.attempt, 2);
    assert!(run.events.iter().any(|e| {
        e.message
            .as_deref()
            .is_some_and(|m| m.contains("attempt 1 of 3 failed") && m.contains("Kerberos"))
    }));
}

#[test]
fn a_failed_cutover_step_rolls_back_to_the_source_and_verifies_it() {
    let shares = [share("Finance")];
    let mut healthy = healthy(&shares);
    let run = drive(group(), &request(), JobState::Running, |start| {
        if start.cluster == "NEW" && matches!(start.action, Action::OnlineGroup { .. }) {
            return TaskView::Failed(TaskError {
                kind: "driver".into(),
                message: "resource failed".into(),
                retryable: false,
            });
        }
        healthy(start)
    });
    assert_eq!(
        run.group.state,
        GroupState::RolledBack,
        "{:?}",
        run.group.error
    );
    let undo: Vec<String> = run.group.rollback.iter().map(JobStep::label).collect();
    assert_eq!(
        undo,
        [
            "undo:offline_group",
            "undo:detach_data_disk",
            "undo:delete_migrated_group",
            "undo:offline_group",
            "undo:online_group",
            "verify_source"
        ]
    );
    let clusters: Vec<&str> = run
        .group
        .rollback
        .iter()
        .map(|s| s.cluster.as_str())
        .collect();
    assert_eq!(clusters, ["NEW", "NEW", "NEW", "MID", "OLD", "OLD"]);
    assert!(
        run.group
            .error
            .as_deref()
            .unwrap()
            .contains("online_target")
    );
    assert_eq!(run.group.verification.as_ref().unwrap().cluster, "OLD");
    // The cutover steps after the failure never ran.
    let verify_target = run
        .group
        .steps
        .iter()
        .find(|s| s.action == StepAction::Run(StepKind::VerifyTarget))
        .unwrap();
    assert_eq!(verify_target.state, StepState::Skipped);
}

#[test]
fn a_share_missing_after_the_online_fails_verification_without_retrying() {
    let shares = [share("Finance"), share("HR")];
    let mut healthy = healthy(&shares);
    let run = drive(group(), &request(), JobState::Running, |start| {
        if start.cluster == "MID" && matches!(start.action, Action::ShareScan { .. }) {
            return TaskView::Succeeded(scan(&shares[..1], true));
        }
        healthy(start)
    });
    assert_eq!(run.group.state, GroupState::RolledBack);
    let verify = run
        .group
        .steps
        .iter()
        .find(|s| s.action == StepAction::Run(StepKind::VerifyInterim))
        .unwrap();
    assert_eq!((verify.state, verify.attempt), (StepState::Failed, 1));
    assert!(
        run.group
            .error
            .as_deref()
            .unwrap()
            .contains("1 of 2 shares identical")
    );
}

#[test]
fn cutover_waits_for_a_window_and_for_approval() {
    let shares = [share("Finance")];
    let mut request = request();
    let start = Utc::now() + chrono::Duration::hours(3);
    request.windows = vec![crate::plan::CutoverWindow::Interval {
        start,
        end: start + chrono::Duration::hours(4),
    }];
    request.require_approval = true;
    let run = drive(group(), &request, JobState::Running, healthy(&shares));
    // Preparation ran; the window then opened (the driver jumps to wake times), and the
    // group stopped for approval.
    assert_eq!(run.group.state, GroupState::AwaitingApproval);
    assert!(run.now >= start);
    assert!(run.events.iter().any(|e| e.state == "awaiting_window"));
    let offline_ran = run
        .actions
        .iter()
        .any(|(c, a)| c == "OLD" && matches!(a, Action::OfflineGroup { .. }));
    assert!(!offline_ran, "no downtime before the approval");

    let mut group = run.group;
    group.approval = Some(Approval {
        by: "op".into(),
        at: run.now,
        expires_at: None,
    });
    let run = drive_from(
        group,
        Some(shares.to_vec()),
        &request,
        JobState::Running,
        healthy(&shares),
    );
    assert_eq!(run.group.state, GroupState::Succeeded);
}

#[test]
fn an_expired_approval_holds_the_cutover_until_approved_again() {
    let shares = [share("Finance")];
    let mut request = request();
    request.require_approval = true;
    let mut group = group();
    // Approved ahead of time, but the approval ran out before the group reached its cutover.
    group.approval = Some(Approval {
        by: "op".into(),
        at: Utc::now() - chrono::Duration::hours(2),
        expires_at: Some(Utc::now() - chrono::Duration::hours(1)),
    });
    let run = drive(group, &request, JobState::Running, healthy(&shares));
    assert_eq!(run.group.state, GroupState::AwaitingApproval);
    assert!(run.events.iter().any(|e| {
        e.state == "awaiting_approval"
            && e.message.as_deref() == Some("the approval expired; approve again")
    }));
    assert!(
        !run.actions
            .iter()
            .any(|(_, a)| matches!(a, Action::OfflineGroup { .. })),
        "no downtime on an expired approval"
    );
    // Approved again, for the whole job this time, with time left: the cutover runs.
    let job_approval = Approval {
        by: "op".into(),
        at: run.now,
        expires_at: Some(run.now + chrono::Duration::hours(1)),
    };
    let t = advance(
        &run.group,
        &Inputs {
            now: run.now,
            job_state: JobState::Running,
            request: &request,
            job_approval: Some(&job_approval),
            task: TaskView::None,
            baseline: Some(&shares[..]),
            may_start: true,
            may_cut_over: true,
        },
    )
    .unwrap();
    assert_eq!(t.group.state, GroupState::CuttingOver);
    assert!(matches!(
        t.start.map(|s| s.action),
        Some(Action::OfflineGroup { .. })
    ));
}

#[test]
fn a_paused_job_starts_nothing_and_a_cancelled_one_stops_before_its_cutover() {
    let shares = [share("Finance")];
    let run = drive(group(), &request(), JobState::Paused, healthy(&shares));
    assert!(run.actions.is_empty());
    assert_eq!(run.group.state, GroupState::Pending);

    let run = drive(group(), &request(), JobState::Cancelling, healthy(&shares));
    assert_eq!(run.group.state, GroupState::Cancelled);
    assert!(run.actions.is_empty());
}

#[test]
fn cancelling_during_the_cutover_rolls_back() {
    let shares = [share("Finance")];
    let mut g = group();
    // Run until the source is offline and the interim online.
    let mut healthy_answers = healthy(&shares);
    let mut stop_after_online = |start: &StartTask| healthy_answers(start);
    let run = drive(g.clone(), &request(), JobState::Running, |start| {
        if start.cluster == "MID" && matches!(start.action, Action::ShareScan { .. }) {
            return TaskView::InFlight;
        }
        stop_after_online(start)
    });
    g = run.group;
    assert_eq!(g.state, GroupState::CuttingOver);
    // The verification in flight finishes, then the cancel rolls the group back.
    let inputs_task = TaskView::Succeeded(scan(&shares, true));
    let baseline = shares.to_vec();
    let t = advance(
        &g,
        &Inputs {
            now: Utc::now(),
            job_state: JobState::Cancelling,
            request: &request(),
            job_approval: None,
            task: inputs_task,
            baseline: Some(&baseline),
            may_start: true,
            may_cut_over: true,
        },
    )
    .unwrap();
    assert_eq!(t.group.state, GroupState::RollingBack);
    assert_eq!(
        t.start
            .as_ref()
            .map(|s| (s.cluster.as_str(), s.action.kind())),
        Some(("MID", "offline_group"))
    );
}

#[test]
fn verification_compares_paths_permissions_and_flags() {
    let want = [share("A"), share("B"), share("C")];
    let mut changed = share("B");
    changed.permissions[0].access = Access::Read;
    changed.access_based_enumeration = true;
    let got = [share("A"), changed, share("D")];
    let scanned: ScanReport = serde_json::from_value(scan(&got, true)).unwrap();
    let report = verify(&want, &scanned, "NEW", Utc::now());
    assert_eq!(report.identical, 1);
    assert_eq!(report.missing, ["C"]);
    assert_eq!(report.unexpected, ["D"]);
    assert_eq!(
        report.changed[0].fields,
        ["permissions", "access_based_enumeration"]
    );
    assert!(!report.passed);
    let offline: ScanReport = serde_json::from_value(scan(&want, false)).unwrap();
    let report = verify(&want, &offline, "NEW", Utc::now());
    assert_eq!(report.identical, 3);
    assert!(!report.network_name_online && !report.passed);
}
