//! What an agent does with each action. The session loop only knows the [`Executor`] trait, so
//! tests can count or script executions, and each action's executor plugs into
//! [`Builtin::execute`] as its module lands.
//!
//! For now only `echo` runs. Every other action answers `Failed { kind: "unsupported" }` (not
//! retryable) until its executor (skeleton copy, share scan, the cluster driver calls) is wired
//! in here.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

use super::Progress;
use crate::model::{Action, TaskError};

/// Runs actions for the session loop. Implementations must be idempotent per action or check
/// before they act: a task can be delivered again after a crash.
#[async_trait]
pub trait Executor: Send + Sync + 'static {
    /// The action kinds (`Action::kind`) this executor runs, announced in Hello.
    fn capabilities(&self) -> Vec<String>;

    /// Runs one action. Success is the executor's report as JSON.
    async fn execute(
        &self,
        action: Action,
        progress: Arc<dyn Progress>,
    ) -> Result<serde_json::Value, TaskError>;
}

/// Which cluster driver the agent uses once cluster actions are wired in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// The simulated failover cluster (state under `--sim-dir`).
    Sim,
    /// The FailoverClusters PowerShell cmdlets.
    PowerShell,
}

impl std::str::FromStr for DriverKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sim" => Ok(DriverKind::Sim),
            "powershell" => Ok(DriverKind::PowerShell),
            other => Err(format!("driver must be sim or powershell, got `{other}`")),
        }
    }
}

/// The executor of `ferry agent`.
#[derive(Debug, Clone)]
pub struct Builtin {
    pub driver: DriverKind,
    pub sim_dir: Option<PathBuf>,
}

/// The report of `echo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EchoReport {
    pub text: String,
    pub slept_ms: u64,
}

/// Runs `echo`: sleeps in steps (reporting progress, which renews the lease), then answers.
pub async fn echo(
    text: String,
    sleep_ms: u64,
    progress: &dyn Progress,
) -> Result<serde_json::Value, TaskError> {
    const STEP_MS: u64 = 1000;
    let steps = sleep_ms.div_ceil(STEP_MS);
    let mut left = sleep_ms;
    for step in 0..steps {
        progress.report(step, Some(steps), "sleeping");
        let now = left.min(STEP_MS);
        tokio::time::sleep(Duration::from_millis(now)).await;
        left -= now;
    }
    progress.report(steps, Some(steps), "done");
    Ok(serde_json::to_value(EchoReport {
        text,
        slept_ms: sleep_ms,
    })
    .expect("plain data serializes"))
}

#[async_trait]
impl Executor for Builtin {
    fn capabilities(&self) -> Vec<String> {
        vec!["echo".into()]
    }

    async fn execute(
        &self,
        action: Action,
        progress: Arc<dyn Progress>,
    ) -> Result<serde_json::Value, TaskError> {
        match action {
            Action::Echo { text, sleep_ms } => echo(text, sleep_ms, progress.as_ref()).await,
            other => Err(TaskError {
                kind: "unsupported".into(),
                message: format!(
                    "this agent cannot run `{}` yet: only `echo` is wired in (driver {:?})",
                    other.kind(),
                    self.driver
                ),
                retryable: false,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::NoProgress;

    #[tokio::test]
    async fn echo_answers_its_text() {
        let builtin = Builtin {
            driver: DriverKind::Sim,
            sim_dir: None,
        };
        let report = builtin
            .execute(
                Action::Echo {
                    text: "hi".into(),
                    sleep_ms: 5,
                },
                Arc::new(NoProgress),
            )
            .await
            .unwrap();
        assert_eq!(report, serde_json::json!({"text": "hi", "slept_ms": 5}));
        let refused = builtin
            .execute(Action::ListGroups, Arc::new(NoProgress))
            .await
            .unwrap_err();
        assert_eq!(refused.kind, "unsupported");
        assert!(!refused.retryable);
    }

    #[test]
    fn drivers_parse() {
        assert_eq!("sim".parse::<DriverKind>(), Ok(DriverKind::Sim));
        assert!("bash".parse::<DriverKind>().is_err());
    }
}
