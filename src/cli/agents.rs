//! `ferry agents [--cluster C]`: the enrolled agents and whether they are connected. (`ferry
//! agent`, singular, runs one.)

use clap::Args;
use serde_json::json;

use super::output::{Table, print_json, time};
use super::{ApiArgs, Failure, OutputFormat, block_on, list_all, typed_items};
use crate::client::{ApiClient, query_string};
use crate::model::{Agent, AgentState};

#[derive(Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only the agents of this cluster (name or id).
    #[arg(long)]
    pub cluster: Option<String>,
}

pub fn run(args: AgentsArgs) -> Result<(), Failure> {
    let client = args.api.client()?;
    let output = args.api.output;
    block_on(async move {
        let path = format!(
            "/v1/agents{}",
            query_string([("cluster", args.cluster.as_deref())])
        );
        let items = list_all(&client, &path).await?;
        if output == OutputFormat::Json {
            return print_json(&json!({ "items": items, "next": null }));
        }
        let agents: Vec<Agent> = typed_items(&items)?;
        if agents.is_empty() {
            outln!("no agents enrolled");
        } else {
            out!("{}", table(&agents).render(""));
        }
        Ok(())
    })
}

/// One agent a line, as `ferry agents` and `ferry cluster show` print them.
pub fn table(agents: &[Agent]) -> Table {
    let mut table = Table::new(["NODE", "CLUSTER", "STATE", "VERSION", "LAST SEEN", "ID"]);
    for agent in agents {
        table.row([
            agent.node.clone(),
            agent.cluster_name.clone(),
            agent.state.as_str().to_owned(),
            agent.software_version.clone(),
            agent
                .last_seen_at
                .as_ref()
                .map_or_else(|| "-".to_owned(), time),
            agent.id.to_string(),
        ]);
    }
    table
}

/// Says on stderr when no agent of `cluster` is connected, since `what` then waits until one
/// connects; the lookup is only a hint, so a failed one says nothing.
pub async fn note_when_none_connected(client: &ApiClient, cluster: &str, what: &str) {
    let path = format!("/v1/agents{}", query_string([("cluster", Some(cluster))]));
    let Ok(items) = list_all(client, &path).await else {
        return;
    };
    let Ok(agents) = typed_items::<Agent>(&items) else {
        return;
    };
    if !agents.iter().any(|a| a.state == AgentState::Connected) {
        eprintln!(
            "no agent of {cluster} is connected: {what} waits until one is (`ferry agent \
             --cluster {cluster} ...` on one of its nodes)"
        );
    }
}
