//! Validations: a cluster's configuration judged by the rules of `crate::validation`, on facts a
//! caller posts or on facts an agent of the cluster gathers (`gather_facts`). Running one is an
//! operator's act and audited; reading is a viewer's.
//!
//! A validation waiting for its agent is settled when it is read: the task's outcome is
//! judged and stored then, once (the store refuses a second settling), so no loop has to watch
//! for it.

use chrono::Utc;
use uuid::Uuid;

use crate::agents::parse_id;
use crate::auth::Caller;
use crate::{Replayable, Service, page_window, paginate};
use ferry_core::error::{Error, ErrorCode, Result};
use ferry_core::model::ConfigFacts;
use ferry_core::model::PageParams;
use ferry_core::model::{
    Action, AuditOutcome, Cluster, Finding, NewAudit, NewValidation, Page, Role, Severity,
    TaskState, Validation, ValidationOverride, ValidationState,
};
use ferry_core::validation::{Thresholds, Verdict};
use ferry_store::{Change, NewTask};

/// Completed validations a plan looks through for a cluster's latest (newer ones may still be
/// gathering or have failed).
const LATEST_AMONG: u32 = 20;

impl Replayable for Validation {
    fn for_replay(&self) -> Self {
        self.clone()
    }
}

/// Everything wrong with the thresholds: percentages, the failing one no higher than the warning.
fn check_thresholds(t: &Thresholds) -> Result<()> {
    let percent = |v: f64| (0.0..=100.0).contains(&v);
    let mut errors = Vec::new();
    if !percent(t.csv_free_warn_percent) {
        errors.push(ferry_core::model::FieldError::new(
            "thresholds.csv_free_warn_percent",
            "must be a percentage, 0 to 100",
        ));
    }
    if !percent(t.csv_free_fail_percent) {
        errors.push(ferry_core::model::FieldError::new(
            "thresholds.csv_free_fail_percent",
            "must be a percentage, 0 to 100",
        ));
    } else if t.csv_free_fail_percent > t.csv_free_warn_percent {
        errors.push(ferry_core::model::FieldError::new(
            "thresholds.csv_free_fail_percent",
            "must not be above csv_free_warn_percent",
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::validation(errors))
    }
}

impl Service {
    /// `POST /v1/clusters/{id}/validations`: judges posted facts at once (completed), or asks an
    /// agent of the cluster for them (gathering; settled when read).
    pub async fn create_validation(
        &self,
        caller: &Caller,
        cluster: &str,
        new: &NewValidation,
    ) -> Result<Validation> {
        let mut gathering = None;
        let validation = self
            .audited(
                caller,
                Role::Operator,
                "validation.create",
                format!("cluster:{cluster}"),
                async {
                    let thresholds = new.thresholds.unwrap_or_default();
                    check_thresholds(&thresholds)?;
                    if let Some(facts) = &new.facts {
                        let errors = facts.validate();
                        if !errors.is_empty() {
                            return Err(Error::validation(errors));
                        }
                    }
                    let target = self.store.get_cluster(cluster).await?;
                    let now = Utc::now();
                    let mut validation = Validation {
                        id: Uuid::now_v7(),
                        cluster_id: target.id,
                        cluster: target.name.clone(),
                        version: 0,
                        state: ValidationState::Gathering,
                        task_id: None,
                        thresholds,
                        facts: None,
                        findings: Vec::new(),
                        overall: None,
                        error: None,
                        created_by: caller.name.clone(),
                        created_at: now,
                        completed_at: None,
                    };
                    match &new.facts {
                        Some(facts) => validation.complete(facts.clone(), now),
                        None => {
                            let task = self
                                .store
                                .create_task(&NewTask {
                                    cluster_id: target.id,
                                    node: "",
                                    agent_id: None,
                                    action: &Action::GatherFacts {},
                                    created_by: &caller.name,
                                    id: None,
                                    lease_deadline: None,
                                })
                                .await?;
                            validation.task_id = Some(task.id);
                            gathering = Some(task);
                        }
                    }
                    self.store.create_validation(&validation).await
                },
            )
            .await?;
        if let Some(task) = gathering
            && self.offer(&task).await.is_none()
        {
            // No agent of the cluster here: whichever replica has one picks it up.
            self.announce(Change::Tasks).await;
        }
        Ok(validation)
    }

    /// `GET /v1/validations/{id}`.
    pub async fn get_validation(&self, caller: &Caller, id: &str) -> Result<Validation> {
        Self::require(caller, Role::Viewer)?;
        let validation = self
            .store
            .get_validation(parse_id("validation", id)?)
            .await?;
        self.settle_validation(validation).await
    }

    /// `GET /v1/clusters/{id}/validations`: newest first.
    pub async fn list_validations(
        &self,
        caller: &Caller,
        cluster: &str,
        page: &PageParams,
    ) -> Result<Page<Validation>> {
        Self::require(caller, Role::Viewer)?;
        let (limit, before) = page_window(page)?;
        let before = before
            .map(|b| b.parse::<i64>())
            .transpose()
            .map_err(|_| crate::invalid_cursor())?;
        let cluster = self.store.get_cluster(cluster).await?;
        let rows = self
            .store
            .list_validations(cluster.id, limit + 1, before)
            .await?;
        let mut settled = Vec::with_capacity(rows.len());
        for validation in rows {
            settled.push(self.settle_validation(validation).await?);
        }
        Ok(paginate(settled, limit, |v| v.version.to_string()))
    }

    /// The plan's finding on a cluster the groups land on, from its latest completed
    /// validation: none yet or any warning warns; a failure fails the plan unless overridden,
    /// and then warns and names the report overridden.
    pub(super) async fn validation_finding(
        &self,
        cluster: &Cluster,
        over: Option<&ValidationOverride>,
    ) -> Result<(Finding, Option<(String, i64)>)> {
        let mut latest = None;
        for validation in self
            .store
            .list_validations(cluster.id, LATEST_AMONG, None)
            .await?
        {
            let validation = self.settle_validation(validation).await?;
            if validation.state == ValidationState::Completed {
                latest = Some(validation);
                break;
            }
        }
        let Some(report) = latest else {
            return Ok((
                Finding::new(
                    Severity::Warn,
                    "validation",
                    format!(
                        "{} has no validation report: run POST /v1/clusters/{}/validations",
                        cluster.name, cluster.name
                    ),
                ),
                None,
            ));
        };
        let titled = |verdict: Verdict| {
            report
                .findings
                .iter()
                .filter(|f| f.verdict == verdict)
                .map(|f| f.title.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let named = format!("validation {} of {}", report.version, cluster.name);
        let finding = match report.overall {
            Some(Verdict::Fail) => match over {
                Some(over) => {
                    let finding = Finding::new(
                        Severity::Warn,
                        "validation",
                        format!(
                            "{named} fails ({}); overridden: {}",
                            titled(Verdict::Fail),
                            over.reason.trim()
                        ),
                    );
                    return Ok((finding, Some((cluster.name.clone(), report.version))));
                }
                None => Finding::new(
                    Severity::Fail,
                    "validation",
                    format!(
                        "{named} fails: {}; fix it and validate again, or run anyway with \
                         validation_override.reason",
                        titled(Verdict::Fail)
                    ),
                ),
            },
            Some(Verdict::Warn) => Finding::new(
                Severity::Warn,
                "validation",
                format!("{named} warns: {}", titled(Verdict::Warn)),
            ),
            Some(Verdict::Unknown) | None => Finding::new(
                Severity::Warn,
                "validation",
                format!("{named} could not tell: {}", titled(Verdict::Unknown)),
            ),
            Some(Verdict::Pass) => {
                Finding::new(Severity::Pass, "validation", format!("{named} passes"))
            }
        };
        Ok((finding, None))
    }

    /// The audit record of a job run over a failing validation report, with the reason.
    pub(super) async fn audit_override(
        &self,
        caller: &Caller,
        job: Uuid,
        cluster: &str,
        version: i64,
        reason: &str,
    ) {
        let record = NewAudit {
            actor: caller.name.clone(),
            action: "job.validation_override".into(),
            target: format!("job:{job}"),
            source: caller.source.clone(),
            outcome: AuditOutcome::Success,
            detail: Some(format!(
                "validation {version} of {cluster} fails; run anyway: {}",
                reason.trim()
            )),
        };
        if let Err(e) = self.store.append_audit(&record).await {
            tracing::error!(error = %e, "could not write the audit record of a validation override");
        }
    }

    /// A gathering validation whose task has ended, judged (or failed) and stored; any other
    /// as it is.
    async fn settle_validation(&self, mut validation: Validation) -> Result<Validation> {
        let (ValidationState::Gathering, Some(task_id)) = (validation.state, validation.task_id)
        else {
            return Ok(validation);
        };
        let task = match self.store.get_task(task_id).await {
            Ok(task) => Some(task),
            Err(e) if e.code == ErrorCode::NotFound => None,
            Err(e) => return Err(e),
        };
        let now = Utc::now();
        match task {
            None => validation.fail(
                "the task gathering the facts is gone (its agent was deleted)".into(),
                now,
            ),
            Some(task) => match task.state {
                TaskState::Succeeded => {
                    match serde_json::from_value::<ConfigFacts>(task.result.unwrap_or_default()) {
                        Ok(facts) => validation.complete(facts, now),
                        Err(e) => validation
                            .fail(format!("the agent's facts could not be read: {e}"), now),
                    }
                }
                TaskState::Failed | TaskState::Lost | TaskState::Cancelled => {
                    let why = task.error.map_or_else(
                        || format!("the task ended {}", task.state.as_str()),
                        |e| format!("{}: {}", e.kind, e.message),
                    );
                    validation.fail(format!("gathering the facts failed: {why}"), now);
                }
                TaskState::Pending | TaskState::Assigned | TaskState::Running => {
                    return Ok(validation);
                }
            },
        }
        if self.store.finish_validation(&validation).await? {
            Ok(validation)
        } else {
            // Another reader settled it first: what it stored is the answer.
            self.store.get_validation(validation.id).await
        }
    }
}
