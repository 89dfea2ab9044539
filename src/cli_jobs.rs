//! The job verbs of the command line (`ferry job plan|submit|watch|approve|pause|resume|cancel|
//! retry`) and the summaries the demo prints: what pipelines read, so the wording and the exit
//! codes are a contract.

use std::path::Path;

use crate::client::{ApiClient, ClientError};
use crate::model::{GroupState, JobDetail, JobEvent, JobRequest, JobState, Plan, snake};

/// Reads a job request from TOML (or JSON when the file ends in `.json`).
pub fn read_request(path: &Path) -> anyhow::Result<JobRequest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    } else {
        use figment::providers::{Format, Toml};
        figment::Figment::from(Toml::string(&text))
            .extract()
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }
}

/// The plan as a person reads it.
pub fn render_plan(plan: &Plan) -> String {
    let mut out = String::new();
    out.push_str(&format!("route: {}\n", plan.route.join(" -> ")));
    if let Some(why) = &plan.refused_direct {
        out.push_str(&format!("direct hop refused: {why}\n"));
    }
    if !plan.losses.is_empty() {
        out.push_str(&format!("LOSSY: would lose {}\n", plan.losses.join(", ")));
    }
    for finding in &plan.findings {
        out.push_str(&format!(
            "{}: {}\n",
            snake(&finding.severity),
            finding.message
        ));
    }
    for group in &plan.groups {
        out.push_str(&format!(
            "group {}: {} steps, about {} min, downtime about {} min\n",
            group.group,
            group.steps.len(),
            group.estimated_seconds.div_ceil(60),
            group.estimated_downtime_seconds.div_ceil(60)
        ));
        for finding in &group.findings {
            out.push_str(&format!(
                "  {}: {}\n",
                snake(&finding.severity),
                finding.message
            ));
        }
    }
    if let Some(first) = plan.groups.first() {
        out.push_str(&format!("steps of each group (as for {}):\n", first.group));
        for step in &first.steps {
            out.push_str(&format!(
                "  {:>2}. {:<20} {:<8} on {}{}\n",
                step.seq,
                snake(&step.kind),
                snake(&step.phase),
                step.cluster,
                step.node
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ));
        }
    }
    out.push_str(if plan.runnable {
        "runnable: yes\n"
    } else {
        "runnable: no (a check failed)\n"
    });
    out
}

/// One line per event, as `ferry job watch` prints it.
pub fn render_event(event: &JobEvent) -> String {
    let at = event.at.format("%H:%M:%S");
    let who = match (&event.group, event.step) {
        (Some(group), Some(step)) => format!("{group} step {step}"),
        (Some(group), None) => group.clone(),
        _ => "job".to_owned(),
    };
    match &event.message {
        Some(message) => format!("{at} {who}: {} - {message}", event.state),
        None => format!("{at} {who}: {}", event.state),
    }
}

/// The per-group summary: steps, retries, downtime, verification; then the share total as
/// `verified N/M shares`.
pub fn render_summary(detail: &JobDetail) -> String {
    let mut out = format!(
        "job {} ({}): {}\n",
        detail.job.id,
        detail.job.name,
        detail.job.state.as_str()
    );
    let (mut identical, mut expected) = (0u32, 0u32);
    for group in &detail.groups {
        let done = group.steps.iter().filter(|s| s.is_done()).count();
        let downtime = group
            .downtime_seconds()
            .map(|s| format!("{s:.1} s"))
            .unwrap_or_else(|| "-".into());
        let verification = match &group.verification {
            Some(v) => {
                if group.state == GroupState::Succeeded {
                    identical += v.identical;
                }
                format!(
                    "{}/{} shares identical on {}{}",
                    v.identical,
                    v.expected,
                    v.cluster,
                    if v.network_name_online {
                        ", network name online"
                    } else {
                        ", network name NOT online"
                    }
                )
            }
            None => "not verified".into(),
        };
        expected += group.context.baseline_shares;
        let retried: Vec<String> = group
            .steps
            .iter()
            .filter(|s| s.attempt > 1)
            .map(|s| format!("{} x{}", s.label(), s.attempt))
            .collect();
        out.push_str(&format!(
            "  {:<12} {:<15} steps {done}/{}  retries {}{}  downtime {downtime}  {verification}\n",
            group.name,
            group.state.as_str(),
            group.steps.len(),
            group.retries,
            if retried.is_empty() {
                String::new()
            } else {
                format!(" ({})", retried.join(", "))
            },
        ));
        if let Some(error) = &group.error {
            out.push_str(&format!("    {error}\n"));
        }
    }
    out.push_str(&format!("verified {identical}/{expected} shares\n"));
    out
}

/// Why a finished job did not succeed, naming each group that failed and where.
pub fn failure_message(detail: &JobDetail) -> Option<String> {
    if detail.job.state == JobState::Succeeded {
        return None;
    }
    let failures: Vec<String> = detail
        .groups
        .iter()
        .filter(|g| g.state != GroupState::Succeeded)
        .map(|g| match (&g.error, g.failed_step()) {
            (Some(error), _) => format!("group {} {}: {error}", g.name, g.state.as_str()),
            (None, Some(step)) => format!(
                "group {} failed at step {} ({}) on {}",
                g.name,
                step.seq,
                step.label(),
                step.cluster
            ),
            (None, None) => format!("group {} is {}", g.name, g.state.as_str()),
        })
        .collect();
    Some(format!(
        "job {} {}: {}",
        detail.job.id,
        detail.job.state.as_str(),
        failures.join("; ")
    ))
}

/// Follows a job's events, printing each, until the job finishes; then its detail.
pub async fn watch(
    client: &ApiClient,
    id: uuid::Uuid,
    quiet: bool,
) -> Result<JobDetail, ClientError> {
    let detail: JobDetail = client.get(&format!("/v1/jobs/{id}")).await?;
    if detail.job.state.is_finished() {
        return Ok(detail);
    }
    client
        .follow_events(Some(id), 0, |event| {
            if !quiet {
                println!("{}", render_event(event));
            }
            !(event.kind == "job"
                && JobState::parse(&event.state).is_some_and(JobState::is_finished))
        })
        .await?;
    client.get(&format!("/v1/jobs/{id}")).await
}
