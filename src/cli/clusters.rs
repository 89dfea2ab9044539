//! `ferry cluster create|list|show|discover|diff`: registering a cluster, what Ferry knows of
//! it, reading its inventory through its agents, and what changed between two snapshots.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::output::{Table, print_json, time};
use super::{
    ApiArgs, Failure, OutputFormat, POLL_INTERVAL, block_on, failed, list_all, typed, typed_items,
    usage,
};
use crate::client::{ApiClient, path_segment, query_string};
use crate::model::diff::{Change, ChangeOp, FieldChange, SnapshotDiff};
use crate::model::{
    Agent, Cluster, Discovery, DiscoveryState, GroupSummary, OsGeneration, SnapshotInfo,
};

#[derive(Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(subcommand)]
    pub command: ClusterCommand,
}

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Register a cluster (operator).
    Create {
        /// Unique name, e.g. FS-OLD.
        name: String,
        /// Windows generation: ws2003, ws2008, ws2008r2, ws2012, ... ws2025.
        #[arg(long)]
        os: String,
        #[arg(long)]
        description: Option<String>,
    },
    /// Every registered cluster.
    List,
    /// A cluster: its groups with their share counts, its latest snapshot and its agents.
    Show {
        /// Cluster name or id.
        name: String,
    },
    /// Read the cluster's inventory through one of its agents into a snapshot (operator); with
    /// --wait, follow it until it ends and exit 1 if it failed.
    Discover {
        /// Cluster name or id.
        name: String,
        #[arg(long)]
        wait: bool,
    },
    /// What changed from snapshot A to snapshot B: the summary, then one line per change.
    Diff {
        /// Cluster name or id.
        name: String,
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        a: i64,
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        b: i64,
    },
}

pub fn run(args: ClusterArgs) -> Result<(), Failure> {
    let client = args.api.client()?;
    let output = args.api.output;
    block_on(async move {
        match args.command {
            ClusterCommand::Create {
                name,
                os,
                description,
            } => create(&client, output, name, &os, description).await,
            ClusterCommand::List => list(&client, output).await,
            ClusterCommand::Show { name } => show(&client, output, &name).await,
            ClusterCommand::Discover { name, wait } => discover(&client, output, &name, wait).await,
            ClusterCommand::Diff { name, a, b } => diff(&client, output, &name, a, b).await,
        }
    })
}

async fn create(
    client: &ApiClient,
    output: OutputFormat,
    name: String,
    os: &str,
    description: Option<String>,
) -> Result<(), Failure> {
    let os = OsGeneration::parse(os).ok_or_else(|| {
        let known: Vec<&str> = OsGeneration::ALL.iter().map(|g| g.as_str()).collect();
        usage(anyhow::anyhow!(
            "--os must be one of {}, got `{os}`",
            known.join(", ")
        ))
    })?;
    // A literal body, not `NewCluster`: fields the CLI does not set stay absent, so the server's
    // defaults apply.
    let new = json!({
        "name": name,
        "os": os.as_str(),
        "description": description.unwrap_or_default(),
    });
    let answer = client.post_value("/v1/clusters", &new).await?;
    if output == OutputFormat::Json {
        return print_json(&answer);
    }
    let cluster: Cluster = typed(answer)?;
    outln!(
        "cluster {} ({}) registered, id {}",
        cluster.name,
        cluster.os,
        cluster.id
    );
    Ok(())
}

async fn list(client: &ApiClient, output: OutputFormat) -> Result<(), Failure> {
    let items = list_all(client, "/v1/clusters").await?;
    if output == OutputFormat::Json {
        return print_json(&json!({ "items": items, "next": null }));
    }
    let clusters: Vec<Cluster> = typed_items(&items)?;
    if clusters.is_empty() {
        outln!("no clusters registered (`ferry cluster create NAME --os ws2003` adds one)");
        return Ok(());
    }
    let mut table = Table::new(["NAME", "OS", "SNAPSHOT", "DESCRIPTION", "ID"]).right(&[2]);
    for cluster in &clusters {
        table.row([
            cluster.name.clone(),
            cluster.os.to_string(),
            cluster
                .latest_snapshot
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            cluster.description.clone(),
            cluster.id.to_string(),
        ]);
    }
    out!("{}", table.render(""));
    Ok(())
}

async fn show(client: &ApiClient, output: OutputFormat, name: &str) -> Result<(), Failure> {
    let cluster_path = format!("/v1/clusters/{}", path_segment(name));
    let cluster = client.get_value(&cluster_path).await?;
    let groups = list_all(client, &format!("{cluster_path}/groups")).await?;
    // Snapshots are listed oldest first: the newest is the last page's last item.
    let latest_snapshot = list_all(client, &format!("{cluster_path}/snapshots"))
        .await?
        .pop();
    let agents = list_all(
        client,
        &format!("/v1/agents{}", query_string([("cluster", Some(name))])),
    )
    .await?;
    if output == OutputFormat::Json {
        return print_json(&json!({
            "cluster": cluster,
            "groups": groups,
            "latest_snapshot": latest_snapshot,
            "agents": agents,
        }));
    }
    let cluster: Cluster = typed(cluster)?;
    let groups: Vec<GroupSummary> = typed_items(&groups)?;
    let latest_snapshot: Option<SnapshotInfo> = latest_snapshot.map(typed).transpose()?;
    let agents: Vec<Agent> = typed_items(&agents)?;

    outln!(
        "cluster {} ({}), id {}",
        cluster.name,
        cluster.os,
        cluster.id
    );
    if !cluster.description.is_empty() {
        outln!("description: {}", cluster.description);
    }
    match &latest_snapshot {
        Some(s) => outln!(
            "latest snapshot: {} of {} by {}: {} nodes, {} groups, {} resources, {} shares, {} \
             permission entries",
            s.number,
            time(&s.created_at),
            s.created_by,
            s.counts.nodes,
            s.counts.groups,
            s.counts.resources,
            s.counts.shares,
            s.counts.permissions
        ),
        None => outln!(
            "latest snapshot: none yet (`ferry cluster discover {}` takes one)",
            cluster.name
        ),
    }
    if groups.is_empty() {
        outln!("groups: none");
    } else {
        outln!("groups:");
        let mut table =
            Table::new(["NAME", "OWNER", "STATE", "RESOURCES", "SHARES"]).right(&[3, 4]);
        for group in &groups {
            table.row([
                group.name.clone(),
                group.owner_node.clone().unwrap_or_else(|| "-".to_owned()),
                crate::model::snake(&group.state),
                group.resource_count.to_string(),
                group.share_count.to_string(),
            ]);
        }
        out!("{}", table.render("  "));
    }
    if agents.is_empty() {
        outln!(
            "agents: none enrolled (`ferry token create --kind join --cluster {}` lets one join)",
            cluster.name
        );
    } else {
        outln!("agents:");
        out!("{}", super::agents::table(&agents).render("  "));
    }
    Ok(())
}

async fn discover(
    client: &ApiClient,
    output: OutputFormat,
    name: &str,
    wait: bool,
) -> Result<(), Failure> {
    let path = format!("/v1/clusters/{}/discover", path_segment(name));
    let mut answer = client.post_value(&path, &json!({})).await?;
    let mut discovery: Discovery = typed(answer.clone())?;
    if wait {
        if discovery.state == DiscoveryState::Running {
            super::agents::note_when_none_connected(client, &discovery.cluster, "the discovery")
                .await;
        }
        while discovery.state == DiscoveryState::Running {
            tokio::time::sleep(POLL_INTERVAL).await;
            answer = client
                .get_value(&format!("/v1/discoveries/{}", discovery.id))
                .await?;
            discovery = typed(answer.clone())?;
        }
    }
    if output == OutputFormat::Json {
        print_json(&answer)?;
    } else {
        outln!(
            "discovery {} of {}: {}",
            discovery.id,
            discovery.cluster,
            discovery.state.as_str()
        );
        if let Some(line) = snapshot_line(&discovery) {
            outln!("{line}");
        }
    }
    if discovery.state == DiscoveryState::Failed {
        return Err(failed(anyhow::anyhow!(
            "discovery {} of {} failed: {}",
            discovery.id,
            discovery.cluster,
            discovery.error.as_deref().unwrap_or("no reason given")
        )));
    }
    Ok(())
}

/// `snapshot 2 (new): groups +1 -0 ~0, shares +3 -0 ~1, permission entries +5 -2 ~0, ...` or
/// `snapshot 2 (unchanged)`; nothing while the discovery has no snapshot.
fn snapshot_line(discovery: &Discovery) -> Option<String> {
    let number = discovery.snapshot?;
    Some(match (discovery.created, &discovery.summary) {
        (Some(false), _) => format!("snapshot {number} (unchanged)"),
        (_, Some(summary)) => format!("snapshot {number} (new): {}", summary.line()),
        // The cluster's first snapshot has nothing to be compared with.
        (_, None) => format!("snapshot {number} (new)"),
    })
}

async fn diff(
    client: &ApiClient,
    output: OutputFormat,
    name: &str,
    a: i64,
    b: i64,
) -> Result<(), Failure> {
    let answer = client
        .get_value(&format!(
            "/v1/clusters/{}/snapshots/{a}/diff/{b}",
            path_segment(name)
        ))
        .await?;
    if output == OutputFormat::Json {
        return print_json(&answer);
    }
    let diff: SnapshotDiff = typed(answer)?;
    let summary = &diff.diff.summary;
    outln!(
        "{name} snapshot {} -> {}: {} added, {} removed, {} changed, {} renamed",
        diff.from,
        diff.to,
        summary.added,
        summary.removed,
        summary.changed,
        summary.renamed
    );
    if diff.diff.changes.is_empty() {
        outln!("the two snapshots have the same content");
        return Ok(());
    }
    let mut table = Table::new(["OP", "KIND", "PATH", "DETAIL"]);
    for change in &diff.diff.changes {
        table.row([
            crate::model::snake(&change.op),
            crate::model::snake(&change.kind),
            change.path.clone(),
            change_detail(change),
        ]);
    }
    out!("{}", table.render(""));
    Ok(())
}

/// What a changed or renamed item's fields became; nothing for an added or removed item,
/// whose path says it all.
fn change_detail(change: &Change) -> String {
    let fields = change
        .fields
        .iter()
        .map(field_detail)
        .collect::<Vec<_>>()
        .join("; ");
    match (&change.op, &change.renamed_from) {
        (ChangeOp::Renamed, Some(from)) if fields.is_empty() => format!("renamed from {from}"),
        (ChangeOp::Renamed, Some(from)) => format!("renamed from {from}; {fields}"),
        _ => fields,
    }
}

fn field_detail(field: &FieldChange) -> String {
    let value = |v: &Option<Value>| match v {
        Some(v) => v.to_string(),
        None => "(none)".to_owned(),
    };
    format!(
        "{}: {} -> {}",
        field.field,
        value(&field.from),
        value(&field.to)
    )
}
