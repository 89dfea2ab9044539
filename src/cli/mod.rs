//! The command line's verbs beyond the server and the agent: the operator's journey against a
//! running server (clusters, agents, validation, perf, jobs) and the simulator's knobs. Pipelines
//! read their output and exit codes, so both are a contract: see [`exit`] for the codes and
//! [`output`] for `--output json` and the tables.

/// `println!` for what a verb prints on stdout, through [`output::emit`]; returns early from
/// the verb when stdout cannot be written.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::output::emit(&format!("{}\n", format_args!($($arg)*)))?
    };
}

/// `print!` through [`output::emit`], as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::emit(&format!($($arg)*))?
    };
}

pub mod agents;
pub mod clusters;
pub mod exit;
pub mod jobs;
pub mod output;
pub mod perf;
pub mod sim;
pub mod validate;

use std::time::Duration;

use clap::Args;
use serde::de::DeserializeOwned;

use crate::client::{ApiClient, query_string};
pub use exit::{Failure, failed, usage};
pub use output::OutputFormat;

/// How long `--wait` sleeps between two reads of something still running: short enough that a
/// quick discovery or validation does not feel slow, long enough not to load the server.
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Page size when a verb follows `next` cursors: the API's largest, for the fewest requests.
const PAGE_LIMIT: &str = "1000";

/// Where the server is, who is calling, and how to print the answer; shared by every verb that
/// talks to a server.
#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The server's REST address.
    #[arg(
        long,
        env = "FERRY_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// An API token (viewer to read, operator to change; `ferry token create`).
    #[arg(long, env = "FERRY_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// CA certificate (PEM) to pin for an https:// server; without it the public web roots are
    /// trusted.
    #[arg(long, env = "FERRY_CA", value_name = "FILE", global = true)]
    pub ca: Option<std::path::PathBuf>,
    /// table for people, json for machines (the API's JSON answer and nothing else on stdout).
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value_t = OutputFormat::Table,
        global = true
    )]
    pub output: OutputFormat,
}

impl ApiArgs {
    /// A client for the server; refuses (exit 2) before anything is sent when no token is given,
    /// since every API call but the health checks needs one, or when `--ca` is not a readable
    /// PEM certificate.
    pub fn client(&self) -> Result<ApiClient, Failure> {
        let token = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                usage(anyhow::anyhow!(
                    "no API token: set FERRY_TOKEN or pass --token (create one with `ferry token \
                     create --role operator --name NAME`)"
                ))
            })?;
        let ca = match &self.ca {
            Some(path) => {
                let bad = |why: String| {
                    usage(anyhow::anyhow!(
                        "--ca (FERRY_CA) `{}` {why}",
                        path.display()
                    ))
                };
                let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
                crate::webhooks::pinned_roots(&pem).map_err(bad)?;
                Some(pem)
            }
            None => None,
        };
        ApiClient::with_ca(&self.server, Some(token.to_owned()), ca.as_deref())
            .map_err(Failure::from)
    }
}

/// Runs a verb's future on a runtime of its own: the client verbs need no more than one thread.
pub fn block_on(
    verb: impl std::future::Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| failed(e.into()))?
        .block_on(verb)
}

/// Every item of a paged list, following `next` cursors; `path` may carry a query already.
pub async fn list_all(client: &ApiClient, path: &str) -> Result<Vec<serde_json::Value>, Failure> {
    let separator = if path.contains('?') { "&" } else { "?" };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page_query = query_string([("limit", Some(PAGE_LIMIT)), ("cursor", cursor.as_deref())]);
        let page = client
            .get_value(&format!(
                "{path}{separator}{}",
                page_query.trim_start_matches('?')
            ))
            .await?;
        let (page_items, next) = split_page(page)?;
        items.extend(page_items);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
}

/// `items` and `next` of one page of the API's lists.
fn split_page(
    page: serde_json::Value,
) -> Result<(Vec<serde_json::Value>, Option<String>), Failure> {
    #[derive(serde::Deserialize)]
    struct RawPage {
        items: Vec<serde_json::Value>,
        next: Option<String>,
    }
    let page: RawPage = typed(page)?;
    Ok((page.items, page.next))
}

/// Reads the server's JSON as one of the API's types; a mismatch means a server of another
/// version, which is a failure (exit 1), not the caller's fault.
pub fn typed<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, Failure> {
    serde_json::from_value(value).map_err(|e| {
        failed(anyhow::anyhow!(
            "the server's answer is not what this ferry expects (another version?): {e}"
        ))
    })
}

/// Like [`typed`], for a list of items.
pub fn typed_items<T: DeserializeOwned>(items: &[serde_json::Value]) -> Result<Vec<T>, Failure> {
    items.iter().cloned().map(typed).collect()
}
