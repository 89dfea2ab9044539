//! The `ferry` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use ferry::config::{Config, LogFormat, Overrides};
use ferry::model::{NewToken, Role};

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
    /// Run the control plane: REST, gRPC and the store.
    Server(ServerArgs),
    /// Print the OpenAPI document of the REST API.
    Openapi {
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Manage API tokens directly in the store (no server needed).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
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

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print its secret (shown once).
    Create {
        /// viewer, operator or admin.
        #[arg(long)]
        role: String,
        /// A name that says who or what uses the token.
        #[arg(long)]
        name: String,
        /// Lifetime, e.g. 30m, 12h, 90d; the token does not expire without it.
        #[arg(long, value_name = "DURATION")]
        ttl: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {:#}", failure.error);
            ExitCode::from(failure.exit_code)
        }
    }
}

struct Failure {
    error: anyhow::Error,
    exit_code: u8,
}

/// Bad configuration or arguments exit 2; failures while running exit 1.
fn usage(error: anyhow::Error) -> Failure {
    Failure {
        error,
        exit_code: 2,
    }
}

fn runtime(error: anyhow::Error) -> Failure {
    Failure {
        error,
        exit_code: 1,
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
                    .map_err(|e| runtime(anyhow::anyhow!("writing {}: {e}", path.display()))),
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
            init_logging(&config);
            tokio_runtime()?
                .block_on(ferry::server::run(&config))
                .map_err(runtime)
        }
        Command::Token {
            command: TokenCommand::Create { role, name, ttl },
        } => {
            let config = Config::load(cli.config.as_deref(), &overrides).map_err(usage)?;
            let role = Role::parse(&role).ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "--role must be viewer, operator or admin, got `{role}`"
                ))
            })?;
            let ttl_seconds = ttl
                .as_deref()
                .map(parse_duration_seconds)
                .transpose()
                .map_err(usage)?;
            let new = NewToken {
                name,
                role,
                ttl_seconds,
            };
            tokio_runtime()?.block_on(async {
                let store = ferry::store::open(&config.database_url)
                    .await
                    .map_err(runtime)?;
                let service = ferry::service::Service::new(store);
                let created = service
                    .create_token(&ferry::auth::Caller::local(Role::Admin), &new)
                    .await
                    .map_err(|e| runtime(e.into()))?;
                println!("{}", created.token.unwrap_or_default());
                eprintln!(
                    "created {} token `{}` (id {}); the secret above is shown only once",
                    created.info.role, created.info.name, created.info.id
                );
                Ok(())
            })
        }
    }
}

fn tokio_runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| runtime(e.into()))
}

fn init_logging(config: &Config) {
    // Validated at load, so the filter parses.
    let filter = tracing_subscriber::EnvFilter::new(&config.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
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
