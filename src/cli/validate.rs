//! `ferry validate NAME [--wait]`: the cluster's agents gather its configuration facts and the
//! server judges them against the field notes' recommendations.

use clap::Args;
use serde_json::json;

use super::output::print_json;
use super::{ApiArgs, Failure, OutputFormat, POLL_INTERVAL, block_on, failed, typed};
use crate::client::path_segment;
use crate::model::{Validation, ValidationState};
use crate::validation::Verdict;

#[derive(Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Cluster name or id.
    pub name: String,
    /// Wait until the facts are gathered and judged, print the report, and exit 1 when the
    /// overall verdict is fail or the gathering failed.
    #[arg(long)]
    pub wait: bool,
}

pub fn run(args: ValidateArgs) -> Result<(), Failure> {
    let client = args.api.client()?;
    let output = args.api.output;
    block_on(async move {
        let path = format!("/v1/clusters/{}/validations", path_segment(&args.name));
        // No facts in the body: the cluster's agents gather them.
        let mut answer = client.post_value(&path, &json!({})).await?;
        let mut validation: Validation = typed(answer.clone())?;
        if args.wait {
            if validation.state == ValidationState::Gathering {
                super::agents::note_when_none_connected(
                    &client,
                    &validation.cluster,
                    "the validation",
                )
                .await;
            }
            while validation.state == ValidationState::Gathering {
                tokio::time::sleep(POLL_INTERVAL).await;
                answer = client
                    .get_value(&format!("/v1/validations/{}", validation.id))
                    .await?;
                validation = typed(answer.clone())?;
            }
        }
        if output == OutputFormat::Json {
            print_json(&answer)?;
        } else {
            out!("{}", render_report(&validation));
        }
        verdict(&validation)
    })
}

/// Exit 1 when the gathering failed or the verdict is fail; a report still gathering is no
/// verdict yet.
fn verdict(validation: &Validation) -> Result<(), Failure> {
    let name = format!(
        "validation {} of {}",
        validation.version, validation.cluster
    );
    match (validation.state, validation.overall) {
        (ValidationState::Failed, _) => Err(failed(anyhow::anyhow!(
            "{name} could not gather the facts: {}",
            validation.error.as_deref().unwrap_or("no reason given")
        ))),
        (_, Some(Verdict::Fail)) => {
            let failing: Vec<&str> = validation
                .findings
                .iter()
                .filter(|f| f.verdict == Verdict::Fail)
                .map(|f| f.rule.as_str())
                .collect();
            Err(failed(anyhow::anyhow!(
                "{name} fails: {}",
                failing.join(", ")
            )))
        }
        _ => Ok(()),
    }
}

/// The report as a person reads it: the overall verdict with the tally, then every finding with
/// its verdict, title, evidence and remedy.
pub fn render_report(validation: &Validation) -> String {
    let mut out = format!(
        "validation {} of {} ({}): {}",
        validation.version,
        validation.cluster,
        validation.id,
        validation.state.as_str()
    );
    if validation.state == ValidationState::Gathering {
        out.push_str(&format!(
            " (follow it with `ferry validate {} --wait`, or GET /v1/validations/{})\n",
            validation.cluster, validation.id
        ));
        return out;
    }
    if let Some(error) = &validation.error {
        out.push_str(&format!(": {error}"));
    }
    out.push('\n');
    let Some(overall) = validation.overall else {
        return out;
    };
    let tally = [
        Verdict::Fail,
        Verdict::Warn,
        Verdict::Unknown,
        Verdict::Pass,
    ]
    .into_iter()
    .map(|v| {
        let n = validation
            .findings
            .iter()
            .filter(|f| f.verdict == v)
            .count();
        format!("{n} {}", v.as_str())
    })
    .collect::<Vec<_>>()
    .join(", ");
    out.push_str(&format!(
        "overall: {} ({} checks: {tally})\n",
        overall.as_str().to_uppercase(),
        validation.findings.len()
    ));
    for finding in &validation.findings {
        out.push_str(&format!(
            "\n{:<7} {} [{}]\n",
            finding.verdict.as_str().to_uppercase(),
            finding.title,
            finding.rule
        ));
        for evidence in &finding.evidence {
            out.push_str(&format!("        - {evidence}\n"));
        }
        if let Some(remedy) = &finding.remedy {
            out.push_str("        remedy:\n");
            for line in remedy.lines() {
                out.push_str(&format!("          {line}\n"));
            }
        }
    }
    out
}
