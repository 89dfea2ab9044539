//! One migration job of many groups on the simulator with zero operation latency, end to end: a
//! real server in this process (SQLite, then Postgres when `FERRY_BENCH_POSTGRES_URL` or
//! `FERRY_TEST_POSTGRES_URL` is set), simulated ws2003 / ws2008 / ws2008r2 clusters, one
//! `ferry agent` process each over real gRPC, `POST /v1/jobs`, and the wait until the job has
//! finished.
//!
//! Reported per backend: total time; steps run (attempts, retries included); the server's CPU
//! time per step (this process: scheduler, result handling, SQLite; the agents and the
//! simulator run elsewhere, Postgres's own work is not counted); the wall time spent inside
//! scheduler passes per step (reading the store, deciding, writing, on a machine the agents
//! keep busy, so it includes waiting for a core); and the scheduler's reaction per step, from a
//! task's result being stored to its step settled and the next step's task stored (p50, p99).
//! The CPU time is split: the part in SQLite's connection threads, and the wall time spent
//! compacting the perf batches the agents send meanwhile (every 10 s, for every disk of their
//! clusters: work that grows with the disks and the minutes, not the steps).
//! Prints a table; asserts nothing about time.
//!
//! Run: `cargo bench --bench jobs` (options after `--`: `--groups N`, or a list such as
//! `--groups 200,1000` for one run each in one table, `--shares N`, `--parallel N`). With
//! `FERRY_BENCH_SQL=1` every statement is logged to stderr.

#[path = "support/postgres.rs"]
mod postgres;
#[path = "support/proc_stat.rs"]
mod proc_stat;

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use ferry::auth::Caller;
use ferry::config::Config;
use ferry::model::{JobRequest, JobState, NewCluster, NewJoinToken, OsGeneration, Role};
use ferry::sim::{SimCreateOptions, create_sim_cluster, load_state, present_disk};
use ferry::store::Store;
use proc_stat::{clock_ticks, cpu_ticks};

// The shipped `ferry` binary's allocator: the server in this process costs what it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Row {
    backend: &'static str,
    groups: usize,
    steps: u64,
    total: Duration,
    busy: Duration,
    passes: u64,
    state: JobState,
    /// Task finished -> its step settled and the next one started, in ms: p50, p99.
    reaction: (f64, f64),
    /// CPU time of this process (server, scheduler, store; not the agents) during the job.
    server_cpu: Duration,
    /// The part of `server_cpu` spent in SQLite's connection threads.
    sqlite_cpu: Duration,
    /// Wall time spent compacting the perf batches the agents sent during the job.
    compacting: Duration,
}

fn main() {
    let mut sizes = vec![1000u32];
    let mut shares = 2u32;
    // At most 20 groups at once: the simulator's drive letters repeat every 21 groups, and two
    // groups holding one letter on the interim at the same time is a conflict a real cluster
    // (one letter per disk, cluster-wide) never has.
    let mut parallel = 20u32;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--groups" => {
                sizes = value()
                    .split(',')
                    .map(|n| n.trim().parse().expect("--groups N[,N...]"))
                    .collect()
            }
            "--shares" => shares = value().parse().expect("--shares N"),
            "--parallel" => parallel = value().parse().expect("--parallel N"),
            _ => {}
        }
    }
    // Every statement the server runs, with its time: how the statements per step are counted.
    if std::env::var_os("FERRY_BENCH_SQL").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter("sqlx::query=debug")
            .with_writer(std::io::stderr)
            .init();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rows = Vec::new();
    let url = postgres::server_url();
    runtime.block_on(async {
        for &groups in &sizes {
            let dir = tempfile::tempdir().unwrap();
            let sqlite = ferry::store::open(&format!(
                "sqlite://{}",
                dir.path().join("bench.db").display()
            ))
            .await
            .unwrap();
            rows.push(run("sqlite", sqlite, groups, shares, parallel).await);
            if let Some(url) = &url {
                let database = postgres::fresh_database(url).await;
                let store = ferry::store::open(&database).await.unwrap();
                rows.push(run("postgres", store, groups, shares, parallel).await);
            }
        }
    });
    println!(
        "\n| backend  | groups | state     | steps  | total    | server CPU per step | of which SQLite | in passes per step | perf compaction per step | passes | reaction p50 / p99 |"
    );
    println!(
        "|----------|--------|-----------|--------|----------|---------------------|-----------------|--------------------|--------------------------|--------|--------------------|"
    );
    for r in rows {
        println!(
            "| {:<8} | {:>6} | {:<9} | {:>6} | {:>6.1} s | {:>16.3} ms | {:>12.3} ms | {:>15.3} ms | {:>21.3} ms | {:>6} | {:>6.1} / {:>6.1} ms |",
            r.backend,
            r.groups,
            r.state.as_str(),
            r.steps,
            r.total.as_secs_f64(),
            r.server_cpu.as_secs_f64() * 1000.0 / r.steps.max(1) as f64,
            r.sqlite_cpu.as_secs_f64() * 1000.0 / r.steps.max(1) as f64,
            r.busy.as_secs_f64() * 1000.0 / r.steps.max(1) as f64,
            r.compacting.as_secs_f64() * 1000.0 / r.steps.max(1) as f64,
            r.passes,
            r.reaction.0,
            r.reaction.1
        );
    }
}

async fn run(
    backend: &'static str,
    store: Arc<dyn Store>,
    groups: u32,
    shares: u32,
    parallel: u32,
) -> Row {
    let sims = tempfile::tempdir().unwrap();
    let clusters = [
        ("OLD", OsGeneration::Ws2003, groups, 0),
        // Each group borrows one of the interim's spare disks until its own LUN replaces it.
        ("MID", OsGeneration::Ws2008, 0, groups.min(100)),
        ("NEW", OsGeneration::Ws2008r2, 0, 0),
    ];
    eprintln!("[{backend}] generating {groups} groups of {shares} shares...");
    for (name, os, g, spare) in clusters {
        let mut o = SimCreateOptions::new(sims.path().join(name), name, os);
        o.nodes = 1;
        o.groups = g;
        o.shares = shares;
        o.spare_disks = spare;
        o.latency_ms = 0;
        // Past 21 groups the simulator's letters repeat; the interim and the target receive
        // them all.
        o.letters_repeat = true;
        create_sim_cluster(&o).unwrap();
    }
    let old = load_state(&sims.path().join("OLD")).unwrap();
    let mut disk_mapping = std::collections::BTreeMap::new();
    for disk in old.disks.iter().filter(|d| d.drive_letter.is_some()) {
        let name = present_disk(
            &sims.path().join("NEW"),
            &sims.path().join("OLD"),
            &disk.name,
        )
        .unwrap();
        disk_mapping.insert(disk.name.clone(), name);
    }
    let config = Config {
        http_addr: "127.0.0.1:0".parse().unwrap(),
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        agent_heartbeat_ms: 1000,
        agent_lease_ms: 60_000,
        agent_down_after_ms: 120_000,
        ..Default::default()
    };
    let server = ferry::server::start_with_store(&config, store.clone())
        .await
        .unwrap();
    let service = server.service.clone();
    let admin = Caller::local(Role::Admin);
    for (name, os, ..) in clusters {
        service
            .create_cluster(
                &admin,
                &NewCluster {
                    name: name.into(),
                    os,
                    description: String::new(),
                    discovery_interval_seconds: None,
                },
            )
            .await
            .unwrap();
    }
    let driver = ferry::agent::driver::sim::SimDriver::open(sims.path().join("OLD")).unwrap();
    let document = ferry::agent::driver::ClusterDriver::inventory(&driver)
        .await
        .unwrap();
    service
        .import_inventory(&admin, "OLD", document, None)
        .await
        .unwrap();
    // The agents are `ferry agent` processes: the simulator's work stays out of this
    // process, whose CPU time is then the server's own (scheduler, results, store).
    let mut agents = Vec::new();
    for (name, ..) in clusters {
        let join = service
            .create_join_token(
                &admin,
                &NewJoinToken {
                    cluster: name.into(),
                    ttl_seconds: None,
                    uses: Some(1),
                },
            )
            .await
            .unwrap();
        let agent = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .arg("agent")
            .args(["--server", &format!("http://{}", server.grpc_addr)])
            .args(["--cluster", name, "--node", &format!("{name}-n1")])
            .arg("--state-dir")
            .arg(sims.path().join(format!("{name}.agent")))
            .args(["--driver", "sim", "--sim-dir"])
            .arg(sims.path().join(name))
            .args(["--max-tasks", &parallel.to_string(), "--log-level", "warn"])
            .env("FERRY_JOIN_TOKEN", join.token.unwrap())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start ferry agent");
        agents.push(agent);
    }
    while service.connected_agents() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let request = JobRequest {
        name: None,
        source: "OLD".into(),
        target: "NEW".into(),
        interim: None,
        groups: Vec::new(),
        allow_lossy: false,
        skeleton_depth: None,
        disk_mapping,
        windows: Vec::new(),
        require_approval: false,
        approval_ttl_seconds: None,
        max_active_groups: Some(parallel),
        max_cluster_cutovers: Some(parallel),
        retry_backoff_seconds: Some(0),
        validation_override: None,
    };
    let totals = service.scheduler_totals().clone();
    let (busy0, passes0) = (totals.busy_nanos.load(Relaxed), totals.passes.load(Relaxed));
    let compaction = service.compaction_totals().clone();
    let compacting0 = compaction.busy_nanos.load(Relaxed);
    let cpu_before = cpu_ticks(std::process::id());
    let sqlite_before = sqlite_thread_ticks();
    let started = Instant::now();
    let job = service.create_job(&admin, &request).await.unwrap();
    eprintln!("[{backend}] job {} running", job.job.id);
    let mut last_report = Instant::now();
    let detail = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let job = store.get_job(job.job.id).await.unwrap();
        if job.state.is_finished() {
            break job;
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!("[{backend}] {:?}", job.summary);
        }
    };
    let total = started.elapsed();
    let server_cpu = Duration::from_secs_f64(
        (cpu_ticks(std::process::id()) - cpu_before) as f64 / clock_ticks() as f64,
    );
    let sqlite_cpu = Duration::from_secs_f64(
        sqlite_thread_ticks().saturating_sub(sqlite_before) as f64 / clock_ticks() as f64,
    );
    let groups_done = store.job_groups(detail.id).await.unwrap();
    let steps: u64 = groups_done
        .iter()
        .flat_map(|g| g.steps.iter().chain(g.rollback.iter()))
        .map(|s| u64::from(s.attempt))
        .sum();
    for group in groups_done
        .iter()
        .filter(|g| g.state != ferry::model::GroupState::Succeeded)
        .take(5)
    {
        eprintln!(
            "[{backend}] {} {}: {}",
            group.name,
            group.state.as_str(),
            group.error.as_deref().unwrap_or("")
        );
    }
    let reaction = reaction_ms(store.as_ref(), &groups_done).await;
    let row = Row {
        reaction,
        server_cpu,
        sqlite_cpu,
        compacting: Duration::from_nanos(compaction.busy_nanos.load(Relaxed) - compacting0),
        backend,
        groups: groups_done.len(),
        steps,
        total,
        busy: Duration::from_nanos(totals.busy_nanos.load(Relaxed) - busy0),
        passes: totals.passes.load(Relaxed) - passes0,
        state: detail.state,
    };
    for mut agent in agents {
        let _ = agent.kill();
        let _ = agent.wait();
    }
    server.stop().await.unwrap();
    row
}

/// CPU ticks so far of this process's live threads that run SQLite statements (sqlx gives each
/// SQLite connection a worker thread, `sqlx-sqlite-worker-N`): the share of the server's time
/// that is the database's, against the async runtime's (scheduler, gRPC, JSON).
fn sqlite_thread_ticks() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
        .filter_map(|stat| {
            let (name, ticks) = proc_stat::stat_name_and_ticks(&stat)?;
            name.starts_with("sqlx-sqlite").then_some(ticks)
        })
        .sum()
}

/// p50 and p99 of the time from a step's task result being stored to the step being settled.
async fn reaction_ms(store: &dyn Store, groups: &[ferry::model::JobGroup]) -> (f64, f64) {
    let steps: Vec<_> = groups
        .iter()
        .flat_map(|g| g.steps.iter().chain(g.rollback.iter()))
        .filter_map(|s| Some((s.task_id?, s.finished_at?)))
        .collect();
    let ids: Vec<uuid::Uuid> = steps.iter().map(|(id, _)| *id).collect();
    let done: std::collections::HashMap<_, _> = store
        .get_tasks(&ids)
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.id, t.updated_at))
        .collect();
    let mut ms: Vec<f64> = steps
        .iter()
        .filter_map(|(id, settled)| {
            let finished = done.get(id)?;
            Some((*settled - *finished).num_microseconds()? as f64 / 1000.0)
        })
        .map(|m| m.max(0.0))
        .collect();
    if ms.is_empty() {
        return (0.0, 0.0);
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}
