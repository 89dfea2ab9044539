//! The job verbs of the command line (`ferry job plan|submit|watch|approve|pause|resume|cancel|
//! retry`) and the summaries the demo prints: what pipelines read, so the wording and the exit
//! codes are a contract.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{emit, print_json};
use super::{ApiArgs, Failure, OutputFormat, block_on, failed, typed, usage};
use crate::client::{ApiClient, ClientError, path_segment};
use crate::model::{
    ApproveRequest, GroupState, JobDetail, JobEvent, JobRequest, JobState, Plan, snake,
};

#[derive(Args)]
pub struct JobArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: JobCommand,
}

#[derive(Subcommand)]
pub enum JobCommand {
    /// Show what a job from this request would do, without running anything; exit 1 when a
    /// check fails.
    Plan {
        /// The request: TOML (or JSON ending in .json) with source, target, groups, options.
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
    },
    /// Start a job; with --wait, follow it and exit 0 only if it succeeded.
    Submit {
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: PathBuf,
        #[arg(long)]
        wait: bool,
    },
    /// Print a job's progress live until it finishes; exit 0 only if it succeeded.
    Watch {
        id: String,
    },
    /// Approve the cutover of every group of a job, or of one group.
    Approve {
        id: String,
        #[arg(long)]
        group: Option<String>,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Cancel a job: groups in their cutover roll back to the source.
    Cancel {
        id: String,
    },
    /// Resume a failed or rolled-back group from where it stopped.
    Retry {
        id: String,
        group: String,
    },
}

pub fn run(args: JobArgs) -> Result<(), Failure> {
    let client = args.api.client()?;
    let output = args.api.output;
    block_on(async move {
        match args.command {
            JobCommand::Plan { file } => {
                let request = read_request(&file).map_err(usage)?;
                let answer = client.post_value("/v1/plans", &request).await?;
                let plan: Plan = typed(answer.clone())?;
                if output == OutputFormat::Json {
                    print_json(&answer)?;
                } else {
                    out!("{}", render_plan(&plan));
                }
                if plan.runnable {
                    Ok(())
                } else {
                    Err(failed(anyhow::anyhow!("the plan has failing checks")))
                }
            }
            JobCommand::Submit { file, wait } => {
                let request = read_request(&file).map_err(usage)?;
                let answer = client.post_value("/v1/jobs", &request).await?;
                let detail: JobDetail = typed(answer.clone())?;
                if !wait {
                    return if output == OutputFormat::Json {
                        print_json(&answer)
                    } else {
                        outln!("job {} created", detail.job.id);
                        Ok(())
                    };
                }
                // With JSON on stdout, people watching a pipeline still see progress on stderr.
                if output == OutputFormat::Json {
                    eprintln!("job {} created", detail.job.id);
                } else {
                    outln!("job {} created", detail.job.id);
                }
                follow(&client, output, detail.job.id).await
            }
            JobCommand::Watch { id } => follow(&client, output, job_id(&id)?).await,
            JobCommand::Approve { id, group } => {
                let id = job_id(&id)?;
                let answer = client
                    .post_value(&format!("/v1/jobs/{id}/approve"), &ApproveRequest { group })
                    .await?;
                changed(output, answer, |state| {
                    format!("job {id}: approved ({state})")
                })
            }
            JobCommand::Pause { id } => verb(&client, output, job_id(&id)?, "pause").await,
            JobCommand::Resume { id } => verb(&client, output, job_id(&id)?, "resume").await,
            JobCommand::Cancel { id } => verb(&client, output, job_id(&id)?, "cancel").await,
            JobCommand::Retry { id, group } => {
                let id = job_id(&id)?;
                let path = format!("/v1/jobs/{id}/groups/{}/retry", path_segment(&group));
                let answer = client.post_value(&path, &json!({})).await?;
                changed(output, answer, |state| {
                    format!("job {id}: group {group} retried ({state})")
                })
            }
        }
    })
}

fn job_id(id: &str) -> Result<uuid::Uuid, Failure> {
    uuid::Uuid::parse_str(id).map_err(|_| {
        usage(anyhow::anyhow!(
            "`{id}` is not a job id (job ids are UUIDs)"
        ))
    })
}

/// Follows a job to its end and prints its summary (or its detail as JSON); exit 1 unless it
/// succeeded.
async fn follow(client: &ApiClient, output: OutputFormat, id: uuid::Uuid) -> Result<(), Failure> {
    let answer = watch(client, id, |event| {
        if output == OutputFormat::Json {
            eprintln!("{}", render_event(event));
        } else {
            // A progress line nobody reads any more is no reason to stop following the job.
            let _ = emit(&format!("{}\n", render_event(event)));
        }
    })
    .await?;
    let detail: JobDetail = typed(answer.clone())?;
    if output == OutputFormat::Json {
        print_json(&answer)?;
    } else {
        out!("{}", render_summary(&detail));
    }
    match failure_message(&detail) {
        None => Ok(()),
        Some(message) => Err(failed(anyhow::anyhow!(message))),
    }
}

async fn verb(
    client: &ApiClient,
    output: OutputFormat,
    id: uuid::Uuid,
    verb: &str,
) -> Result<(), Failure> {
    let answer = client
        .post_value(&format!("/v1/jobs/{id}/{verb}"), &json!({}))
        .await?;
    changed(output, answer, |state| format!("job {id}: {state}"))
}

/// Prints a verb's answer, the job's detail: as it came, or the line `say` makes of its state.
fn changed(
    output: OutputFormat,
    answer: Value,
    say: impl FnOnce(&str) -> String,
) -> Result<(), Failure> {
    if output == OutputFormat::Json {
        return print_json(&answer);
    }
    let detail: JobDetail = typed(answer)?;
    outln!("{}", say(detail.job.state.as_str()));
    Ok(())
}

/// Reads a job request from TOML (or JSON when the file ends in `.json`).
pub fn read_request(path: &Path) -> anyhow::Result<JobRequest> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    let is_json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_request(&text, is_json).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// A job request from the text of a TOML (or JSON) file.
pub fn parse_request(text: &str, is_json: bool) -> anyhow::Result<JobRequest> {
    if is_json {
        Ok(serde_json::from_str(text)?)
    } else {
        use figment::providers::{Format, Toml};
        Ok(figment::Figment::from(Toml::string(text)).extract()?)
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

/// Follows a job's events, handing each to `on_event`, until the job finishes; then its detail
/// as the server wrote it.
pub async fn watch(
    client: &ApiClient,
    id: uuid::Uuid,
    mut on_event: impl FnMut(&JobEvent),
) -> Result<Value, ClientError> {
    let answer = client.get_value(&format!("/v1/jobs/{id}")).await?;
    let detail: JobDetail = serde_json::from_value(answer.clone())
        .map_err(|e| ClientError::BadAnswer(format!("the job's detail cannot be read: {e}")))?;
    if detail.job.state.is_finished() {
        return Ok(answer);
    }
    client
        .follow_events(Some(id), 0, |event| {
            on_event(event);
            !(event.kind == "job"
                && JobState::parse(&event.state).is_some_and(JobState::is_finished))
        })
        .await?;
    client.get_value(&format!("/v1/jobs/{id}")).await
}
