//! Running a script and reading what it left: the child process, the answer on standard output,
//! the `FERRY-ERROR` record on standard error.
//!
//! Process execution sits behind [`Shell`], so tests feed recorded output instead of starting
//! `powershell.exe`.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::driver::{DriverError, ErrorKind};

/// What a script run produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellOutput {
    /// Exit code; `None` when the process was killed by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs one PowerShell script and returns what it printed.
#[async_trait]
pub trait Shell: Send + Sync {
    async fn run(&self, script: &str) -> Result<ShellOutput, DriverError>;
}

/// Runs scripts in a child process, the script on its standard input.
#[derive(Debug, Clone)]
pub struct ProcessShell {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl ProcessShell {
    /// `powershell.exe -NoProfile -NonInteractive -Command -`, ten minutes per script.
    pub fn powershell() -> ProcessShell {
        ProcessShell::new(
            "powershell.exe",
            ["-NoProfile", "-NonInteractive", "-Command", "-"],
        )
    }

    pub fn new<I, S>(program: impl Into<PathBuf>, args: I) -> ProcessShell
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ProcessShell {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(600),
        }
    }

    /// Kills the process and fails with `Timeout` past this.
    pub fn with_timeout(mut self, timeout: Duration) -> ProcessShell {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Shell for ProcessShell {
    async fn run(&self, script: &str) -> Result<ShellOutput, DriverError> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DriverError::Unsupported(format!(
                    "{} is not installed here: the powershell driver runs on a Windows cluster node",
                    self.program.display()
                )),
                _ => DriverError::Failed(format!("cannot start {}: {e}", self.program.display())),
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let bytes = script.as_bytes().to_vec();
        // Written concurrently with reading the output, so a chatty script cannot fill a pipe and
        // deadlock against us.
        let writer = async move {
            let written = stdin.write_all(&bytes).await;
            drop(stdin);
            written
        };
        let run = async {
            let (written, output) = tokio::join!(writer, child.wait_with_output());
            let output =
                output.map_err(|e| DriverError::Failed(format!("waiting for powershell: {e}")))?;
            if let Err(e) = written
                && output.status.success()
            {
                return Err(DriverError::Failed(format!(
                    "could not send the script to powershell: {e}"
                )));
            }
            Ok(ShellOutput {
                status: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, run).await.map_err(|_| {
            DriverError::Timeout(format!(
                "powershell did not finish within {} s",
                self.timeout.as_secs()
            ))
        })?
    }
}

/// The answer of a script: its last non-empty output line, as JSON (`null` when there is none).
pub fn parse_output(stdout: &str) -> Result<Value, DriverError> {
    let line = stdout
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty());
    match line {
        None => Ok(Value::Null),
        Some(line) => serde_json::from_str(line.trim_start_matches('\u{feff}')).map_err(|e| {
            DriverError::Failed(format!(
                "powershell printed something that is not JSON ({e}): {line}"
            ))
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorRecord {
    #[serde(default)]
    category: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// Turns a failed run into an error: the `FERRY-ERROR` record when the script wrote one (its
/// category decides the kind), else the exit code and standard error text.
pub fn map_failure(output: &ShellOutput) -> DriverError {
    let record = output
        .stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FERRY-ERROR "))
        .filter_map(|json| serde_json::from_str::<ErrorRecord>(json).ok())
        .next_back();
    if let Some(record) = record {
        let id = record.id.as_str();
        let kind = if id.contains("CommandNotFoundException")
            || id.starts_with("Modules_ModuleNotFound")
        {
            ErrorKind::Unsupported
        } else {
            match record.category.as_str() {
                "ObjectNotFound" => ErrorKind::NotFound,
                "ResourceExists" | "ResourceBusy" => ErrorKind::Conflict,
                "ResourceUnavailable" | "ConnectionError" => ErrorKind::Transient,
                "OperationTimeout" => ErrorKind::Timeout,
                "NotImplemented" | "NotInstalled" => ErrorKind::Unsupported,
                _ => ErrorKind::Failed,
            }
        };
        let message = if id.is_empty() {
            record.message
        } else {
            format!("{} ({id})", record.message)
        };
        return DriverError::new(kind, message);
    }
    let text = if output.stderr.trim().is_empty() {
        output.stdout.trim()
    } else {
        output.stderr.trim()
    };
    let status = output
        .status
        .map_or_else(|| "was killed".to_string(), |c| format!("exited with {c}"));
    DriverError::Failed(format!("powershell {status}: {text}"))
}
