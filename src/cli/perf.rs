//! `ferry perf volume|redirected`: the cluster-wide view of a volume (each node's I/O, their
//! sum, the storage server's count and the gap) and the intervals it ran in redirected I/O.

use chrono::DateTime;
use clap::{Args, Subcommand};
use serde::Deserialize;

use super::output::{Table, number, print_json, time_ms};
use super::{ApiArgs, Failure, OutputFormat, block_on, typed, usage};
use crate::client::{ApiClient, path_segment, query_string};

#[derive(Args)]
pub struct PerfArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: PerfCommand,
}

/// The time range of a perf query; the server's defaults when absent.
#[derive(Args)]
pub struct RangeArgs {
    /// Start, RFC 3339 (e.g. 2026-11-27T03:00:00Z); default an hour before --to.
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End, RFC 3339; default now.
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Step, e.g. 10s, 1m, 1h; default 1m.
    #[arg(long, value_name = "DURATION")]
    pub step: Option<String>,
}

#[derive(Subcommand)]
pub enum PerfCommand {
    /// Per step, each node's I/O against the volume, their sum, the storage server's count and
    /// the gap between the two; then each node's share over the range.
    Volume {
        /// Cluster name or id.
        cluster: String,
        /// The volume, e.g. 'C:\ClusterStorage\Volume1' (case-insensitive).
        #[arg(long)]
        volume: String,
        /// The counter; default transfers_per_sec.
        #[arg(long)]
        counter: Option<String>,
        #[command(flatten)]
        range: RangeArgs,
    },
    /// The intervals in which a volume's I/O went through one node (redirected I/O), with the
    /// coordinator and the evidence.
    Redirected {
        /// Cluster name or id.
        cluster: String,
        /// Only this volume (default: every volume of the cluster).
        #[arg(long)]
        volume: Option<String>,
        #[command(flatten)]
        range: RangeArgs,
    },
}

pub fn run(args: PerfArgs) -> Result<(), Failure> {
    let client = args.api.client()?;
    let output = args.api.output;
    block_on(async move {
        match args.command {
            PerfCommand::Volume {
                cluster,
                volume,
                counter,
                range,
            } => {
                let query = range.query([
                    ("volume", Some(volume.as_str())),
                    ("counter", counter.as_deref()),
                ])?;
                volume_view(&client, output, &cluster, &query).await
            }
            PerfCommand::Redirected {
                cluster,
                volume,
                range,
            } => {
                let query = range.query([("volume", volume.as_deref())])?;
                redirected(&client, output, &cluster, &query).await
            }
        }
    })
}

impl RangeArgs {
    /// The query string of `pairs` and the range; a time that is not RFC 3339 is refused here,
    /// with the flag named, rather than by the server.
    fn query<'a>(
        &'a self,
        pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
    ) -> Result<String, Failure> {
        for (flag, value) in [("--from", &self.from), ("--to", &self.to)] {
            if let Some(value) = value
                && DateTime::parse_from_rfc3339(value).is_err()
            {
                return Err(usage(anyhow::anyhow!(
                    "{flag} `{value}` must be an RFC 3339 time such as 2026-11-27T03:00:00Z"
                )));
            }
        }
        Ok(query_string(pairs.into_iter().chain([
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
            ("step", self.step.as_deref()),
        ])))
    }
}

/// `GET /v1/clusters/{id}/perf/volume`, the fields this verb prints.
#[derive(Deserialize)]
struct VolumeView {
    volume: String,
    counter: String,
    resolution: String,
    step_ms: i64,
    nodes: Vec<String>,
    steps: VolumeColumns,
    shares: Vec<NodeShare>,
    node_sum: Option<f64>,
    storage: Option<f64>,
    gap_pct: Option<f64>,
}

/// One entry per step in each column.
#[derive(Deserialize)]
struct VolumeColumns {
    at_ms: Vec<i64>,
    /// One column per node, aligned with `VolumeView::nodes`.
    values: Vec<Vec<Option<f64>>>,
    node_sum: Vec<Option<f64>>,
    storage: Vec<Option<f64>>,
    gap_pct: Vec<Option<f64>>,
}

#[derive(Deserialize)]
struct NodeShare {
    node: String,
    mean: f64,
    share_pct: f64,
}

async fn volume_view(
    client: &ApiClient,
    output: OutputFormat,
    cluster: &str,
    query: &str,
) -> Result<(), Failure> {
    let answer = client
        .get_value(&format!(
            "/v1/clusters/{}/perf/volume{query}",
            path_segment(cluster)
        ))
        .await?;
    if output == OutputFormat::Json {
        return print_json(&answer);
    }
    let view: VolumeView = typed(answer)?;
    outln!(
        "{} of {cluster}: {}, {} steps of {} s, resolution {}",
        view.volume,
        view.counter,
        view.steps.at_ms.len(),
        view.step_ms as f64 / 1000.0,
        view.resolution
    );
    if view.steps.at_ms.is_empty() {
        outln!("no samples in the range");
        return Ok(());
    }
    let headers = ["TIME".to_owned()]
        .into_iter()
        .chain(view.nodes.iter().cloned())
        .chain(["NODE SUM", "STORAGE", "GAP %"].map(String::from));
    let numeric: Vec<usize> = (1..=view.nodes.len() + 3).collect();
    let mut table = Table::new(headers).right(&numeric);
    let steps = &view.steps;
    let column = |values: &[Option<f64>], i: usize| number(values.get(i).copied().flatten());
    for (i, &at_ms) in steps.at_ms.iter().enumerate() {
        let node_values = (0..view.nodes.len())
            .map(|n| column(steps.values.get(n).map_or(&[][..], Vec::as_slice), i));
        table.row([time_ms(at_ms)].into_iter().chain(node_values).chain([
            column(&steps.node_sum, i),
            column(&steps.storage, i),
            column(&steps.gap_pct, i),
        ]));
    }
    table.row(
        ["mean".to_owned()]
            .into_iter()
            .chain(
                view.nodes.iter().map(|node| {
                    number(view.shares.iter().find(|s| &s.node == node).map(|s| s.mean))
                }),
            )
            .chain([
                number(view.node_sum),
                number(view.storage),
                number(view.gap_pct),
            ]),
    );
    out!("{}", table.render(""));
    let shares: Vec<String> = view
        .shares
        .iter()
        .map(|s| format!("{} {:.1}%", s.node, s.share_pct))
        .collect();
    if !shares.is_empty() {
        outln!("share of the node sum: {}", shares.join(", "));
    }
    Ok(())
}

/// `GET /v1/clusters/{id}/perf/redirected`, one interval, the fields this verb prints.
#[derive(Deserialize)]
struct RedirectedInterval {
    volume: String,
    coordinator: String,
    start_ms: i64,
    end_ms: i64,
    steps: usize,
    evidence: RedirectEvidence,
}

#[derive(Deserialize)]
struct RedirectEvidence {
    signal: String,
    summary: String,
}

async fn redirected(
    client: &ApiClient,
    output: OutputFormat,
    cluster: &str,
    query: &str,
) -> Result<(), Failure> {
    let answer = client
        .get_value(&format!(
            "/v1/clusters/{}/perf/redirected{query}",
            path_segment(cluster)
        ))
        .await?;
    if output == OutputFormat::Json {
        return print_json(&answer);
    }
    let intervals: Vec<RedirectedInterval> = typed(answer)?;
    if intervals.is_empty() {
        outln!("no redirected I/O on {cluster} in the range");
        return Ok(());
    }
    let mut table =
        Table::new(["VOLUME", "COORDINATOR", "START", "END", "STEPS", "SIGNAL"]).right(&[4]);
    for interval in &intervals {
        table.row([
            interval.volume.clone(),
            interval.coordinator.clone(),
            time_ms(interval.start_ms),
            time_ms(interval.end_ms),
            interval.steps.to_string(),
            interval.evidence.signal.clone(),
        ]);
    }
    out!("{}", table.render(""));
    for interval in &intervals {
        outln!(
            "{} from {}: {}",
            interval.volume,
            time_ms(interval.start_ms),
            interval.evidence.summary
        );
    }
    Ok(())
}
