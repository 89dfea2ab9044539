//! The `ferry` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use ferry::agent::exec::{Builtin, DriverKind, NodeExecutor};
use ferry::agent::session::AgentConfig;
use ferry::cli::{Failure, failed, usage};
use ferry::config::{Config, LogFormat, Overrides};
use ferry::model::{NewJoinToken, NewToken, Role};

// The server's hot paths (scheduler passes, results, the store's worker threads) allocate small
// objects on one thread and free them on another, which glibc's malloc handles poorly (its
// arenas consolidate under contention); mimalloc is built for that pattern.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Moves clustered file-server roles between failover clusters"
)]
struct Cli {
    /// TOML configuration file; FERRY_* environment variables and flags override it.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database URL: sqlite://ferry.db or postgres://user@host/db (FERRY_DATABASE_URL).
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane: REST, gRPC, the agent gateway and the store.
    Server(ServerArgs),
    /// Run the agent of this node: enroll once with a join token, then take tasks from the
    /// server until stopped.
    Agent(AgentArgs),
    /// Print the OpenAPI document of the REST API.
    Openapi {
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Manage API and join tokens directly in the store (no server needed).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Simulated failover clusters for tests, demos and walkthroughs: create one, present a
    /// disk of one to another, switch a CSV volume into redirected I/O. Exit codes: 0 done, 1
    /// failed, 2 bad arguments (no such directory, disk or volume).
    Sim(ferry::cli::sim::SimArgs),
    /// Copy the directory skeleton of SRC into DST (robocopy /e /xf * /lev:N), then verify it.
    /// Exits 0 only when the verification passed.
    Skeleton(SkeletonArgs),
    /// Register clusters, show what Ferry knows of them, discover their inventory, diff
    /// snapshots. Exit codes (every verb that talks to a server): 0 done, 1 it ran and failed, 2
    /// bad arguments or refused (4xx, no token), 3 the server could not be reached.
    Cluster(ferry::cli::clusters::ClusterArgs),
    /// The enrolled agents and their state (`ferry agent` runs one).
    Agents(ferry::cli::agents::AgentsArgs),
    /// Check a cluster's configuration against the field notes' recommendations; the cluster's
    /// agents gather the facts. With --wait, exit 1 when the verdict is fail.
    Validate(ferry::cli::validate::ValidateArgs),
    /// Perf questions: the cluster-wide view of a volume, redirected-I/O intervals.
    Perf(ferry::cli::perf::PerfArgs),
    /// Plan, run and follow migration jobs on a running server. Exit codes: 0 the job (or
    /// call) succeeded, 1 the job failed or was cancelled, 2 bad arguments or a refused
    /// request, 3 the server could not be reached.
    Job(ferry::cli::jobs::JobArgs),
    /// Ferry's main job on this machine: a server on a temporary SQLite database, three
    /// simulated clusters (ws2003 source, ws2008 interim, ws2008r2 target) with their agents,
    /// the plan, the migration of three file server groups, and the proof that every share
    /// came back with its permissions.
    Demo(DemoArgs),
}

#[derive(Args)]
struct DemoArgs {
    /// Exit when the migration is done (0 only when every group succeeded and verified)
    /// instead of leaving the server running until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Keep the demo's database, simulated clusters and logs here (default: a new temporary
    /// directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Shares per file server group.
    #[arg(long, default_value_t = 300, value_name = "N")]
    shares: u32,
    /// REST listen address.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    http_addr: String,
    /// gRPC listen address (the agents dial it).
    #[arg(long, default_value = "127.0.0.1:50051", value_name = "ADDR")]
    grpc_addr: String,
}

#[derive(Args)]
struct SkeletonArgs {
    /// Source directory.
    src: PathBuf,
    /// Destination directory (created if missing; existing directories are fine).
    dst: PathBuf,
    /// Levels to copy, the source root being level 1.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    depth: u32,
    /// Log every directory to this file (truncated first).
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
}

#[derive(Args)]
struct ServerArgs {
    /// REST listen address (FERRY_HTTP_ADDR, default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    http_addr: Option<String>,
    /// gRPC listen address (FERRY_GRPC_ADDR, default 127.0.0.1:50051).
    #[arg(long, value_name = "ADDR")]
    grpc_addr: Option<String>,
    /// text or json (FERRY_LOG_FORMAT).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// tracing filter, e.g. info or warn,ferry=debug (FERRY_LOG_LEVEL).
    #[arg(long, value_name = "FILTER")]
    log_level: Option<String>,
}

#[derive(Args)]
struct AgentArgs {
    /// gRPC address of the server, e.g. https://ferry:50051 (http:// for plain text); several,
    /// comma-separated, are tried in turn.
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        required = true
    )]
    server: Vec<String>,
    /// Cluster (name or id) this node belongs to.
    #[arg(long)]
    cluster: String,
    /// This node's name, as in the cluster's inventory.
    #[arg(long)]
    node: String,
    /// Where the agent keeps its identity (created 0700) and its logs (`logs/`, skeleton copies
    /// named by their task); no task may name it.
    #[arg(long, value_name = "DIR")]
    state_dir: PathBuf,
    /// Join token from `ferry token create --kind join`; only needed until the agent has
    /// enrolled (FERRY_JOIN_TOKEN keeps it out of the process list).
    #[arg(
        long,
        env = "FERRY_JOIN_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    join_token: Option<String>,
    /// Cluster driver: sim or powershell (default: powershell on Windows, sim elsewhere).
    #[arg(long, value_name = "DRIVER")]
    driver: Option<String>,
    /// State directory of the simulated cluster (with --driver sim).
    #[arg(long, value_name = "DIR")]
    sim_dir: Option<PathBuf>,
    /// A folder tasks may name (a skeleton copy's source or destination), with everything under
    /// it; repeat for several. Without any, the cluster disks the driver reports (sim: the disk
    /// folders of its cluster and of the sibling clusters; powershell: the cluster disks' drives
    /// and the nodes' administrative shares of them). Either way never the state directory.
    #[arg(long = "allow-path", value_name = "DIR")]
    allow_path: Vec<PathBuf>,
    /// CA certificate (PEM) to pin for https:// servers; without it the public web roots are
    /// trusted.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Seconds between perf batches (disk counters of this node and of the driver).
    #[arg(long, default_value_t = 10, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    perf_interval: u64,
    /// Tasks run at once; more wait their turn.
    #[arg(long, default_value_t = 4, value_name = "N")]
    max_tasks: usize,
    /// text or json.
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    log_format: String,
    /// tracing filter, e.g. info or warn,ferry=debug.
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log_level: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum TokenKind {
    /// A bearer token for people and pipelines.
    Api,
    /// A join token: lets agents of one cluster enroll.
    Join,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret (shown once).
    Create {
        /// api (bearer token, needs --role and --name) or join (needs --cluster).
        #[arg(long, value_enum, default_value = "api")]
        kind: TokenKind,
        /// viewer, operator or admin (api tokens).
        #[arg(long)]
        role: Option<String>,
        /// A name that says who or what uses the token (api tokens).
        #[arg(long)]
        name: Option<String>,
        /// The cluster (name or id) whose agents may enroll with it (join tokens).
        #[arg(long)]
        cluster: Option<String>,
        /// Lifetime, e.g. 30m, 12h, 90d. API tokens do not expire without it; join tokens
        /// expire after 30m by default.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
        /// How many agents may enroll with it (join tokens; default 1).
        #[arg(long, value_name = "N")]
        uses: Option<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure {
            exit_code: 1,
            error,
        }) if error.is::<VerificationFailed>() => {
            // The summary already said what failed; a second `error:` line adds nothing.
            ExitCode::from(1)
        }
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.exit_code)
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let mut overrides = Overrides {
        database_url: cli.database_url.clone(),
        ..Default::default()
    };
    match cli.command {
        Command::Openapi { output } => {
            let text = ferry::http::openapi_json();
            match output {
                Some(path) => std::fs::write(&path, text)
                    .map_err(|e| failed(anyhow::anyhow!("writing {}: {e}", path.display()))),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        Command::Server(args) => {
            overrides.http_addr = args.http_addr;
            overrides.grpc_addr = args.grpc_addr;
            overrides.log_format = args.log_format;
            overrides.log_level = args.log_level;
            let config = Config::load(cli.config.as_deref(), &overrides).map_err(usage)?;
            init_logging(
                config.log_format,
                // Validated at load, so the filter parses.
                tracing_subscriber::EnvFilter::new(&config.log_level),
            );
            tokio_runtime()?
                .block_on(ferry::server::run(&config))
                .map_err(failed)
        }
        Command::Agent(args) => {
            let format = match args.log_format.as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                other => {
                    return Err(usage(anyhow::anyhow!(
                        "--log-format must be text or json, got `{other}`"
                    )));
                }
            };
            let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).map_err(|e| {
                usage(anyhow::anyhow!(
                    "--log-level `{}` is not a valid filter: {e}",
                    args.log_level
                ))
            })?;
            let driver = match args.driver.as_deref() {
                Some(driver) => driver
                    .parse::<DriverKind>()
                    .map_err(|e| usage(anyhow::anyhow!("--driver: {e}")))?,
                None if cfg!(windows) => DriverKind::PowerShell,
                None => DriverKind::Sim,
            };
            // Checked here too, so that a missing flag is a usage error (exit 2).
            let enrolled = ferry::agent::state::StateDir::open(&args.state_dir)
                .and_then(|state| state.load_identity())
                .map_err(failed)?
                .is_some();
            if !enrolled && args.join_token.is_none() {
                return Err(usage(anyhow::anyhow!(
                    "no identity in {}: pass --join-token (from `ferry token create --kind join \
                     --cluster {}`) to enroll",
                    args.state_dir.display(),
                    args.cluster
                )));
            }
            init_logging(format, filter);
            let mut config = AgentConfig::new(args.server, args.cluster, args.node, args.state_dir);
            config.join_token = args.join_token;
            config.ca = args.ca;
            config.max_concurrent_tasks = args.max_tasks.max(1);
            config.validate().map_err(usage)?;
            // Absolute, so a relative --allow-path means the folder it meant at start.
            let allow_paths = args
                .allow_path
                .iter()
                .map(|path| {
                    if path.as_os_str().is_empty() {
                        return Err(usage(anyhow::anyhow!("--allow-path must not be empty")));
                    }
                    std::path::absolute(path)
                        .map_err(|e| usage(anyhow::anyhow!("--allow-path {}: {e}", path.display())))
                })
                .collect::<Result<Vec<_>, _>>()?;
            for path in allow_paths.iter().filter(|p| !p.is_dir()) {
                // Not fatal: a disk may come online later. Until then it allows nothing.
                tracing::warn!(path = %path.display(), "--allow-path is not a directory (yet)");
            }
            let executor = std::sync::Arc::new(
                NodeExecutor::new(Builtin::new(driver, args.sim_dir).with_allow_paths(allow_paths))
                    .with_perf_interval(std::time::Duration::from_secs(args.perf_interval)),
            );
            tokio_runtime()?
                .block_on(ferry::agent::session::run(
                    config,
                    executor,
                    ferry::server::shutdown_signal(),
                ))
                .map_err(failed)
        }
        Command::Sim(args) => ferry::cli::sim::run(args),
        Command::Skeleton(args) => skeleton(args),
        Command::Cluster(args) => ferry::cli::clusters::run(args),
        Command::Agents(args) => ferry::cli::agents::run(args),
        Command::Validate(args) => ferry::cli::validate::run(args),
        Command::Perf(args) => ferry::cli::perf::run(args),
        Command::Job(args) => ferry::cli::jobs::run(args),
        Command::Demo(args) => {
            init_logging(
                LogFormat::Text,
                tracing_subscriber::EnvFilter::new("warn,ferry=warn"),
            );
            let options = ferry::demo::DemoOptions {
                dir: args.dir,
                shares: args.shares,
                http_addr: args.http_addr,
                grpc_addr: args.grpc_addr,
                exit: args.exit,
            };
            match tokio_runtime()?.block_on(ferry::demo::run(options)) {
                Ok(true) => Ok(()),
                Ok(false) => Err(failed(VerificationFailed.into())),
                Err(e) => Err(failed(e)),
            }
        }
        Command::Token {
            command:
                TokenCommand::Create {
                    kind,
                    role,
                    name,
                    cluster,
                    ttl,
                    uses,
                },
        } => {
            let config = Config::load(cli.config.as_deref(), &overrides).map_err(usage)?;
            let ttl_seconds = ttl
                .as_deref()
                .map(parse_duration_seconds)
                .transpose()
                .map_err(usage)?;
            match kind {
                TokenKind::Api => {
                    if cluster.is_some() || uses.is_some() {
                        return Err(usage(anyhow::anyhow!(
                            "--cluster and --uses are for join tokens (--kind join)"
                        )));
                    }
                    let (Some(role), Some(name)) = (role, name) else {
                        return Err(usage(anyhow::anyhow!(
                            "an API token needs --role (viewer, operator or admin) and --name"
                        )));
                    };
                    let role = Role::parse(&role).ok_or_else(|| {
                        usage(anyhow::anyhow!(
                            "--role must be viewer, operator or admin, got `{role}`"
                        ))
                    })?;
                    let new = NewToken {
                        name,
                        role,
                        ttl_seconds,
                    };
                    with_service(&config, async |service| {
                        let created = service
                            .create_token(&ferry::auth::Caller::local(Role::Admin), &new)
                            .await?;
                        println!("{}", created.token.unwrap_or_default());
                        eprintln!(
                            "created {} token `{}` (id {}); the secret above is shown only once",
                            created.info.role, created.info.name, created.info.id
                        );
                        Ok(())
                    })
                }
                TokenKind::Join => {
                    if role.is_some() || name.is_some() {
                        return Err(usage(anyhow::anyhow!(
                            "--role and --name are for API tokens (--kind api)"
                        )));
                    }
                    let Some(cluster) = cluster else {
                        return Err(usage(anyhow::anyhow!(
                            "a join token needs --cluster: the cluster its agents join"
                        )));
                    };
                    let new = NewJoinToken {
                        cluster,
                        ttl_seconds,
                        uses,
                    };
                    with_service(&config, async |service| {
                        let created = service
                            .create_join_token(&ferry::auth::Caller::local(Role::Admin), &new)
                            .await?;
                        println!("{}", created.token.unwrap_or_default());
                        eprintln!(
                            "created join token {} for cluster `{}`: {} use(s), expires {}; the \
                             secret above is shown only once",
                            created.info.id,
                            created.info.cluster_name,
                            created.info.uses_left,
                            created.info.expires_at.to_rfc3339()
                        );
                        Ok(())
                    })
                }
            }
        }
    }
}

/// The skeleton copy ran but its verification failed (or some directories could not be
/// copied); the summary on stderr has the details.
#[derive(Debug)]
struct VerificationFailed;

impl std::fmt::Display for VerificationFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("skeleton verification failed")
    }
}

impl std::error::Error for VerificationFailed {}

/// Prints progress to stderr at most every half second, so a big tree does not flood it.
struct StderrProgress {
    last: std::sync::Mutex<Option<std::time::Instant>>,
}

impl ferry::agent::Progress for StderrProgress {
    fn report(&self, done: u64, total: Option<u64>, message: &str) {
        let now = std::time::Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < std::time::Duration::from_millis(500)) {
            return;
        }
        *last = Some(now);
        match total {
            Some(total) => eprintln!("{done}/{total} {message}"),
            None => eprintln!("{done} {message}"),
        }
    }
}

fn skeleton(args: SkeletonArgs) -> Result<(), Failure> {
    let options = ferry::agent::skeleton::SkeletonOptions {
        depth: args.depth,
        log: args.log,
        threads: 0,
    };
    let progress = StderrProgress {
        last: std::sync::Mutex::new(None),
    };
    let report = ferry::agent::skeleton::copy_skeleton(&args.src, &args.dst, &options, &progress)
        .map_err(|e| {
        failed(anyhow::anyhow!(
            "skeleton {} -> {}: {e}",
            args.src.display(),
            args.dst.display()
        ))
    })?;
    let v = &report.verification;
    eprintln!(
        "{} directories created, {} already there, {} links and {} files skipped, {} errors; \
         verification: {} checked, {} missing, {} extra, {} unreadable: {} ({} ms)",
        report.dirs_created,
        report.dirs_existing,
        report.skipped_links,
        report.files_skipped,
        report.error_count,
        v.checked,
        v.missing_count,
        v.extra_count,
        v.error_count,
        if report.succeeded() {
            "passed"
        } else {
            "FAILED"
        },
        report.elapsed_ms
    );
    for error in &report.errors {
        eprintln!("error: {error}");
    }
    for missing in &v.missing {
        eprintln!("missing: {missing}");
    }
    for error in &v.errors {
        eprintln!("unverified: {error}");
    }
    if report.succeeded() {
        Ok(())
    } else {
        Err(failed(VerificationFailed.into()))
    }
}

/// Runs `op` on a service over the configured store, without a server.
fn with_service(
    config: &Config,
    op: impl AsyncFnOnce(ferry::service::Service) -> ferry::error::Result<()>,
) -> Result<(), Failure> {
    tokio_runtime()?.block_on(async {
        let store = ferry::store::open(&config.database_url)
            .await
            .map_err(failed)?;
        op(ferry::service::Service::new(store))
            .await
            .map_err(|e| failed(e.into()))
    })
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.into()))
}

fn init_logging(format: LogFormat, filter: tracing_subscriber::EnvFilter) {
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// `30s`, `30m`, `12h`, `90d` (a bare number is seconds).
fn parse_duration_seconds(text: &str) -> anyhow::Result<i64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("--ttl `{text}` must look like 30m, 12h or 90d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("--ttl `{text}`: unit must be s, m, h or d"),
    };
    number
        .checked_mul(factor)
        .filter(|s| *s > 0)
        .ok_or_else(|| anyhow::anyhow!("--ttl `{text}` must be positive and not absurdly large"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration_seconds("30m").unwrap(), 1800);
        assert_eq!(super::parse_duration_seconds("2h").unwrap(), 7200);
        assert_eq!(super::parse_duration_seconds("90").unwrap(), 90);
        assert!(super::parse_duration_seconds("0m").is_err());
        assert!(super::parse_duration_seconds("5w").is_err());
        assert!(super::parse_duration_seconds("m").is_err());
    }
}
