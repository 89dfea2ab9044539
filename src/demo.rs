//! `ferry demo`: the whole product on one machine. A server on a temporary SQLite database;
//! three simulated clusters whose agents dial in over real gRPC; the plan (with the direct hop
//! refused); a migration of three file server groups through the interim with approvals given;
//! live progress; and a summary proving every share came back with its permissions.
//!
//! The demo talks to its server through the REST API, like a pipeline would: the clusters, the
//! agents' join tokens, the discovery of each cluster by its agents, the plan and the job all go
//! the way `ferry cluster`, `ferry job` and the README's "Migrate by hand" go.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;

use crate::agent::exec::{Builtin, DriverKind, NodeExecutor};
use crate::agent::session::AgentConfig;
use crate::cli::jobs::{render_event, render_plan, render_summary};
use crate::client::ApiClient;
use crate::config::Config;
use crate::model::{
    Agent, AgentState, ApproveRequest, Cluster, CreatedJoinToken, Discovery, DiscoveryState,
    GroupState, JobDetail, JobRequest, JobState, NewCluster, NewJoinToken, OsGeneration, Page,
    Plan,
};
use crate::sim::{SimCreateOptions, create_sim_cluster};

pub const SOURCE: &str = "FS-OLD";
pub const INTERIM: &str = "FS-MID";
pub const TARGET: &str = "FS-NEW";
const GROUPS: u32 = 3;
/// Agents of the demo sample every second, so the perf view fills in seconds.
const DEMO_PERF_INTERVAL: Duration = Duration::from_secs(1);
/// The target's cluster shared volume, where the second field note's experiment runs.
const CSV_VOLUME: &str = "C:\\ClusterStorage\\Volume1";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub dir: Option<PathBuf>,
    pub shares: u32,
    pub http_addr: String,
    pub grpc_addr: String,
    /// Exit when done rather than serving until Ctrl-C.
    pub exit: bool,
}

/// Runs the demo. `Ok(true)` when every group succeeded and verified.
pub async fn run(options: DemoOptions) -> anyhow::Result<bool> {
    let dir = match &options.dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("ferry-demo-{}", uuid::Uuid::now_v7())),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    println!("ferry demo in {}", dir.display());

    let sim_root = dir.join("clusters");
    println!("creating simulated clusters...");
    let clusters = [
        (SOURCE, OsGeneration::Ws2003, 2, GROUPS, 0),
        (INTERIM, OsGeneration::Ws2008, 1, 0, GROUPS),
        (TARGET, OsGeneration::Ws2008r2, 2, 0, 0),
    ];
    for (name, os, nodes, groups, spare) in clusters {
        let mut sim = SimCreateOptions::new(sim_root.join(name), name, os);
        sim.nodes = nodes;
        sim.groups = groups;
        sim.shares = options.shares;
        sim.spare_disks = spare;
        sim.force = true;
        // Steady workloads, so the perf view shows the field note's numbers whenever it runs.
        sim.perf_cycle_secs = 0;
        let summary = create_sim_cluster(&sim)?;
        println!(
            "  {name} ({os}): {} nodes, {} groups, {} shares, {} directories on its disks",
            summary.nodes, summary.groups, summary.shares, summary.directories
        );
    }
    // The storage admin's part of the runbook: the source's data LUNs are presented to the
    // target, which will own them after the cutover.
    let source_state = crate::sim::load_state(&sim_root.join(SOURCE))?;
    let mut disk_mapping = std::collections::BTreeMap::new();
    for disk in source_state
        .disks
        .iter()
        .filter(|d| d.drive_letter.is_some())
    {
        let on_target =
            crate::sim::present_disk(&sim_root.join(TARGET), &sim_root.join(SOURCE), &disk.name)?;
        println!(
            "  LUN of {SOURCE}/{} presented to {TARGET} as {on_target}",
            disk.name
        );
        disk_mapping.insert(disk.name.clone(), on_target);
    }

    let token = crate::auth::generate_secret();
    let mut config = Config {
        database_url: format!("sqlite://{}", dir.join("ferry.db").display()),
        bootstrap_token: Some(token.clone()),
        ..Config::default()
    };
    config.http_addr = options
        .http_addr
        .parse()
        .with_context(|| format!("--http-addr `{}`", options.http_addr))?;
    config.grpc_addr = options
        .grpc_addr
        .parse()
        .with_context(|| format!("--grpc-addr `{}`", options.grpc_addr))?;
    // Agents of the demo report quickly, so a lost one is noticed in seconds.
    config.agent_heartbeat_ms = 1_000;
    config.agent_lease_ms = 10_000;
    config.agent_down_after_ms = 10_000;
    let store = crate::store::open(&config.database_url).await?;
    let server = crate::server::start_with_store(&config, store).await?;
    let rest = format!("http://{}", server.http_addr);
    let grpc = format!("http://{}", server.grpc_addr);
    println!(
        "server: REST {rest} (API docs at {rest}/docs, web console at {rest}/console/), gRPC {grpc}"
    );

    // Everything from here goes through the REST API, as an operator's script would.
    let client = ApiClient::new(&rest, Some(token.clone()))?;
    for (name, os, ..) in clusters {
        let _: Cluster = client
            .post(
                "/v1/clusters",
                &NewCluster {
                    name: name.into(),
                    os,
                    description: format!("simulated {os} cluster of the demo"),
                    discovery_interval_seconds: None,
                },
            )
            .await?;
    }

    let (stop_agents, agents_stopped) = watch::channel(false);
    let mut agents = Vec::new();
    for (name, _, nodes, ..) in clusters {
        let join: CreatedJoinToken = client
            .post(
                "/v1/join-tokens",
                &NewJoinToken {
                    cluster: name.into(),
                    ttl_seconds: Some(600),
                    uses: Some(nodes),
                },
            )
            .await?;
        for n in 1..=nodes {
            let node = format!("{name}-n{n}");
            let mut agent = AgentConfig::new(
                vec![grpc.clone()],
                name.to_owned(),
                node.clone(),
                dir.join("agents").join(&node),
            );
            agent.join_token = join.token.clone();
            agent.backoff_initial = Duration::from_millis(100);
            let executor = Arc::new(
                NodeExecutor::new(Builtin::new(DriverKind::Sim, Some(sim_root.join(name))))
                    .with_perf_interval(DEMO_PERF_INTERVAL),
            );
            let mut stopped = agents_stopped.clone();
            agents.push(tokio::spawn(crate::agent::session::run(
                agent,
                executor,
                async move {
                    let _ = stopped.wait_for(|s| *s).await;
                },
            )));
        }
    }
    println!("agents: 5 started (2 on {SOURCE}, 1 on {INTERIM}, 2 on {TARGET})");
    wait_for_agents(&client, 5).await?;

    println!("\n== discovery (POST /v1/clusters/{{id}}/discover) ==");
    for (name, ..) in clusters {
        let discovery = discover(&client, name).await?;
        let summary = discovery
            .summary
            .map(|s| format!(", against snapshot before: {}", s.line()))
            .unwrap_or_default();
        println!(
            "  {name}: snapshot {}{}",
            discovery
                .snapshot
                .map_or_else(|| "-".to_owned(), |n| n.to_string()),
            summary
        );
    }

    let request = JobRequest {
        name: Some("demo: FS-OLD to FS-NEW".into()),
        source: SOURCE.into(),
        target: TARGET.into(),
        interim: None,
        groups: Vec::new(),
        allow_lossy: false,
        skeleton_depth: None,
        disk_mapping,
        windows: Vec::new(),
        require_approval: true,
        approval_ttl_seconds: None,
        max_active_groups: Some(GROUPS),
        max_cluster_cutovers: Some(2),
        // The Kerberos retry shows without the 15 s a real network name is given.
        retry_backoff_seconds: Some(1),
        validation_override: None,
    };
    println!("\n== plan (POST /v1/plans) ==");
    let plan: Plan = client.post("/v1/plans", &request).await?;
    print!("{}", render_plan(&plan));

    println!("\n== job (POST /v1/jobs), cutover window open now, approval required ==");
    let job: JobDetail = client.post("/v1/jobs", &request).await?;
    let id = job.job.id;
    println!("job {id} created; approving every group's cutover");
    let _: JobDetail = client
        .post(
            &format!("/v1/jobs/{id}/approve"),
            &ApproveRequest { group: None },
        )
        .await?;

    println!("\n== progress (GET /v1/events) ==");
    client
        .follow_events(Some(id), 0, |event| {
            println!("{}", render_event(event));
            !(event.kind == "job"
                && JobState::parse(&event.state).is_some_and(JobState::is_finished))
        })
        .await?;
    let detail: JobDetail = client.get(&format!("/v1/jobs/{id}")).await?;
    println!("\n== summary ==");
    print!("{}", render_summary(&detail));
    let succeeded = detail.job.state == JobState::Succeeded
        && detail.groups.iter().all(|g| {
            g.state == GroupState::Succeeded && g.verification.as_ref().is_some_and(|v| v.passed)
        });

    perf_experiment(&client, &sim_root.join(TARGET)).await?;

    if !options.exit {
        println!(
            "\nthe server keeps running: REST {rest} (token {token}), gRPC {grpc}; Ctrl-C stops it\n\
             web console: {rest}/console/ (sign in with the token above)"
        );
        crate::server::shutdown_signal().await;
    }
    let _ = stop_agents.send(true);
    for agent in agents {
        let _ = tokio::time::timeout(Duration::from_secs(5), agent).await;
    }
    let shutdown = server.shutdown_handle();
    let _ = shutdown.send(true);
    server.wait().await?;
    Ok(succeeded)
}

/// The second field note on the target: the cluster-wide view of its CSV volume (each node's
/// share, the storage server against the node sum), then the volume switched to redirected I/O
/// and the interval found, with its coordinator.
async fn perf_experiment(client: &ApiClient, target_dir: &Path) -> anyhow::Result<()> {
    println!("\n== the second field note on {TARGET}: {CSV_VOLUME} seen cluster-wide ==");
    // A few seconds of samples at least, whatever the migration took.
    tokio::time::sleep(Duration::from_secs(3)).await;
    print_volume_view(client, "direct I/O, the last 10 s").await?;
    println!("switching {CSV_VOLUME} to redirected I/O (the simulator's `set_csv_redirected`)...");
    crate::sim::set_csv_redirected(target_dir, Some(CSV_VOLUME), true)?;
    let switched = chrono::Utc::now();
    tokio::time::sleep(Duration::from_secs(12)).await;
    print_volume_view(client, "redirected I/O, the last 10 s").await?;
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("volume", CSV_VOLUME)
        .append_pair(
            "from",
            &(switched - chrono::TimeDelta::seconds(30)).to_rfc3339(),
        )
        .append_pair("step", "5s")
        .finish();
    println!("\n== redirected I/O (GET /v1/clusters/{TARGET}/perf/redirected) ==");
    let intervals: Vec<serde_json::Value> = client
        .get(&format!("/v1/clusters/{TARGET}/perf/redirected?{query}"))
        .await?;
    if intervals.is_empty() {
        println!("  none found");
    }
    for i in &intervals {
        let time = |ms: &serde_json::Value| {
            ms.as_i64()
                .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
                .map_or_else(|| "?".into(), |t| t.format("%H:%M:%S").to_string())
        };
        println!(
            "  coordinator {} from {} to {} ({})\n  {}",
            i["coordinator"].as_str().unwrap_or("?"),
            time(&i["start_ms"]),
            time(&i["end_ms"]),
            i["evidence"]["signal"].as_str().unwrap_or("?"),
            i["evidence"]["summary"].as_str().unwrap_or(""),
        );
    }
    crate::sim::set_csv_redirected(target_dir, Some(CSV_VOLUME), false)?;
    Ok(())
}

async fn print_volume_view(client: &ApiClient, title: &str) -> anyhow::Result<()> {
    let to = chrono::Utc::now();
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("volume", CSV_VOLUME)
        .append_pair("from", &(to - chrono::TimeDelta::seconds(10)).to_rfc3339())
        .append_pair("to", &to.to_rfc3339())
        .append_pair("step", "5s")
        .finish();
    let view: serde_json::Value = client
        .get(&format!("/v1/clusters/{TARGET}/perf/volume?{query}"))
        .await?;
    let number =
        |v: &serde_json::Value| v.as_f64().map_or_else(|| "-".into(), |n| format!("{n:.1}"));
    println!("{title} (GET /v1/clusters/{TARGET}/perf/volume), transfers/s:");
    for share in view["shares"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:>8}  {:>5}% of the node sum",
            share["node"].as_str().unwrap_or("?"),
            number(&share["mean"]),
            number(&share["share_pct"]),
        );
    }
    println!("  {:<14} {:>8}", "node sum", number(&view["node_sum"]));
    println!(
        "  {:<14} {:>8}  gap {}% (what the storage server counts against the nodes)",
        "storage",
        number(&view["storage"]),
        number(&view["gap_pct"]),
    );
    Ok(())
}

/// Waits until `count` agents are connected, as `GET /v1/agents` reports them.
async fn wait_for_agents(client: &ApiClient, count: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let agents: Page<Agent> = client.get("/v1/agents?limit=1000").await?;
        let connected = agents
            .items
            .iter()
            .filter(|a| a.state == AgentState::Connected)
            .count();
        if connected >= count {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("only {connected} of {count} agents connected within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks the cluster's agents for its inventory and waits until it is imported.
async fn discover(client: &ApiClient, cluster: &str) -> anyhow::Result<Discovery> {
    let mut discovery: Discovery = client
        .post(
            &format!("/v1/clusters/{cluster}/discover"),
            &serde_json::json!({}),
        )
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while discovery.state == DiscoveryState::Running {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the discovery of {cluster} did not finish within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        discovery = client
            .get(&format!("/v1/discoveries/{}", discovery.id))
            .await?;
    }
    match discovery.state {
        DiscoveryState::Failed => anyhow::bail!(
            "the discovery of {cluster} failed: {}",
            discovery.error.as_deref().unwrap_or("no reason given")
        ),
        _ => Ok(discovery),
    }
}

/// Where the demo keeps its files, for tests that look at them.
pub fn sim_dir(dir: &Path, cluster: &str) -> PathBuf {
    dir.join("clusters").join(cluster)
}
