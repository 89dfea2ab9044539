//! Validation reports: a cluster's configuration facts judged by the rules of
//! [`crate::validation`], stored and numbered per cluster.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::facts::ConfigFacts;
use crate::validation::{Finding, Thresholds, Verdict};

/// Body of `POST /v1/clusters/{id}/validations`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewValidation {
    /// The facts to judge, for a cluster without an agent (a pipeline that gathered them
    /// itself). Absent: an agent of the cluster gathers them.
    #[serde(default, deserialize_with = "super::object_or_null")]
    pub facts: Option<ConfigFacts>,
    /// Limits of the rules that compare against a number; absent ones take their defaults.
    #[serde(default, deserialize_with = "super::object_or_null")]
    pub thresholds: Option<Thresholds>,
}

/// Where a validation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ValidationState {
    /// An agent is gathering the facts.
    Gathering,
    /// Judged: `findings` and `overall` are set.
    Completed,
    /// The facts could not be gathered; `error` says why.
    Failed,
}

impl ValidationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ValidationState::Gathering => "gathering",
            ValidationState::Completed => "completed",
            ValidationState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "gathering" => ValidationState::Gathering,
            "completed" => ValidationState::Completed,
            "failed" => ValidationState::Failed,
            _ => return None,
        })
    }
}

/// One validation of a cluster: the facts, every rule's finding and the worst verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Validation {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub cluster: String,
    /// 1 for the cluster's first validation, then one more for each.
    pub version: i64,
    pub state: ValidationState,
    /// The task of the agent gathering the facts; absent for posted facts.
    pub task_id: Option<Uuid>,
    pub thresholds: Thresholds,
    /// What was judged; absent until gathered.
    pub facts: Option<ConfigFacts>,
    /// In the order of the rules (`csv_free_space` once per CSV volume); empty until judged.
    pub findings: Vec<Finding>,
    /// The worst verdict of `findings`; absent until judged.
    pub overall: Option<Verdict>,
    /// Why the facts could not be gathered.
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

impl Validation {
    /// Judges `facts` and records the findings.
    pub fn complete(&mut self, facts: ConfigFacts, at: DateTime<Utc>) {
        let findings = crate::validation::evaluate(&facts, &self.thresholds);
        self.overall = Some(crate::validation::overall(&findings));
        self.findings = findings;
        self.facts = Some(facts);
        self.state = ValidationState::Completed;
        self.completed_at = Some(at);
    }

    pub fn fail(&mut self, error: String, at: DateTime<Utc>) {
        self.error = Some(error);
        self.state = ValidationState::Failed;
        self.completed_at = Some(at);
    }
}
