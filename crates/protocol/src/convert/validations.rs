//! Validations <-> protobuf.

use super::{Bad, timestamp};
use crate::pb;
use ferry_core::error::Result;
use ferry_core::model::{NewValidation, Validation, ValidationState};
use ferry_core::validation::{Finding, Thresholds, Verdict};

enum_pair!(ValidationState => ValidationState {
    Gathering => Gathering,
    Completed => Completed,
    Failed => Failed,
});

enum_pair!(Verdict => Verdict {
    Pass => Pass,
    Unknown => Unknown,
    Warn => Warn,
    Fail => Fail,
});

fn thresholds_to_pb(t: Thresholds) -> pb::ValidationThresholds {
    pb::ValidationThresholds {
        csv_free_warn_percent: t.csv_free_warn_percent,
        csv_free_fail_percent: t.csv_free_fail_percent,
    }
}

fn finding(f: Finding) -> pb::ValidationFinding {
    pb::ValidationFinding {
        rule: f.rule,
        title: f.title,
        verdict: pb::Verdict::from(f.verdict) as i32,
        evidence: f.evidence,
        remedy: f.remedy,
    }
}

impl From<Validation> for pb::Validation {
    fn from(v: Validation) -> Self {
        pb::Validation {
            id: v.id.to_string(),
            cluster_id: v.cluster_id.to_string(),
            cluster: v.cluster,
            version: v.version,
            state: pb::ValidationState::from(v.state) as i32,
            task_id: v.task_id.map(|t| t.to_string()).unwrap_or_default(),
            thresholds: Some(thresholds_to_pb(v.thresholds)),
            facts: v.facts.map(Into::into),
            findings: v.findings.into_iter().map(finding).collect(),
            overall: v
                .overall
                .map_or(pb::Verdict::Unspecified, pb::Verdict::from) as i32,
            error: v.error,
            created_by: v.created_by,
            created_at: Some(timestamp(v.created_at)),
            completed_at: v.completed_at.map(timestamp),
        }
    }
}

/// The request's facts and thresholds as REST takes them; the service checks the values.
pub fn new_validation(request: &pb::CreateValidationRequest) -> Result<NewValidation> {
    let facts = request
        .facts
        .clone()
        .map(super::report::facts)
        .transpose()
        .map_err(|bad: Bad| bad.field("facts"))?;
    Ok(NewValidation {
        facts,
        thresholds: request.thresholds.map(|t| Thresholds {
            csv_free_warn_percent: t.csv_free_warn_percent,
            csv_free_fail_percent: t.csv_free_fail_percent,
        }),
    })
}
