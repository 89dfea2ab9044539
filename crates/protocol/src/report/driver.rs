//! What cluster drivers answer: the kinds of failure a retry policy acts on, and the outcomes of
//! offlines, onlines, migrations and disk replacements.

use serde::{Deserialize, Serialize};

use ferry_core::model::{OsGeneration, ResourceKind, ResourceState};

/// What went wrong, in terms a retry policy can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The group, resource, disk or cluster does not exist.
    NotFound,
    /// The request contradicts current state (already exists elsewhere, in use, online).
    Conflict,
    /// Worth retrying as is, e.g. the Kerberos first online of a migrated network name.
    Transient,
    /// The operation ran and failed; retrying unchanged will fail again.
    Failed,
    Timeout,
    /// This driver or this cluster pair cannot do it at all.
    Unsupported,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Transient => "transient",
            ErrorKind::Failed => "failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unsupported => "unsupported",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Transient,
            ErrorKind::Failed,
            ErrorKind::Timeout,
            ErrorKind::Unsupported,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Failure of a driver operation. The message is for humans (operators read it in job logs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("transient failure (retry): {0}")]
    Transient(String),
    #[error("failed: {0}")]
    Failed(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
}

impl DriverError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let message = message.into();
        match kind {
            ErrorKind::NotFound => DriverError::NotFound(message),
            ErrorKind::Conflict => DriverError::Conflict(message),
            ErrorKind::Transient => DriverError::Transient(message),
            ErrorKind::Failed => DriverError::Failed(message),
            ErrorKind::Timeout => DriverError::Timeout(message),
            ErrorKind::Unsupported => DriverError::Unsupported(message),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            DriverError::NotFound(_) => ErrorKind::NotFound,
            DriverError::Conflict(_) => ErrorKind::Conflict,
            DriverError::Transient(_) => ErrorKind::Transient,
            DriverError::Failed(_) => ErrorKind::Failed,
            DriverError::Timeout(_) => ErrorKind::Timeout,
            DriverError::Unsupported(_) => ErrorKind::Unsupported,
        }
    }

    /// The human message without the kind prefix.
    pub fn message(&self) -> &str {
        match self {
            DriverError::NotFound(m)
            | DriverError::Conflict(m)
            | DriverError::Transient(m)
            | DriverError::Failed(m)
            | DriverError::Timeout(m)
            | DriverError::Unsupported(m) => m,
        }
    }

    /// Whether running the same operation again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind(), ErrorKind::Transient | ErrorKind::Timeout)
    }
}

/// Why one resource did not reach the state asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceError {
    pub kind: ErrorKind,
    pub message: String,
}

/// What an offline or online did to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceOutcome {
    pub resource: String,
    pub kind: ResourceKind,
    /// State after the operation.
    pub state: ResourceState,
    /// False when the resource already was in the state asked for.
    pub changed: bool,
    pub error: Option<ResourceError>,
}

/// Failed resources a group's error names; the rest are counted.
const FAILURES_LISTED: usize = 3;

/// What an offline or online did to a group, resource by resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupOutcome {
    pub group: String,
    pub owner_node: Option<String>,
    /// Group state after the operation.
    pub state: ResourceState,
    pub resources: Vec<ResourceOutcome>,
}

impl GroupOutcome {
    /// True when any resource changed state.
    pub fn changed(&self) -> bool {
        self.resources.iter().any(|r| r.changed)
    }

    pub fn failures(&self) -> impl Iterator<Item = &ResourceOutcome> {
        self.resources.iter().filter(|r| r.error.is_some())
    }

    /// The outcome when every resource reached its state, else an error a retry policy can use:
    /// `Transient` when every failure was transient (retrying the operation is the cure),
    /// otherwise the kind of the first non-transient failure.
    pub fn into_result(self) -> Result<Self, DriverError> {
        let failures: Vec<&ResourceOutcome> = self.failures().collect();
        if failures.is_empty() {
            return Ok(self);
        }
        let kind = failures
            .iter()
            .filter_map(|r| r.error.as_ref())
            .map(|e| e.kind)
            .find(|k| *k != ErrorKind::Transient)
            .unwrap_or(ErrorKind::Transient);
        // The resources that failed say why; the ones left as they were because something
        // they depend on failed are only counted, or a group of hundreds of shares would make
        // one line of job log per share out of a single failed network name.
        let (failed, held): (Vec<&ResourceOutcome>, Vec<&ResourceOutcome>) = failures
            .iter()
            .partition(|r| r.state == ResourceState::Failed);
        let named = if failed.is_empty() { &held } else { &failed };
        let mut detail: Vec<String> = named
            .iter()
            .take(FAILURES_LISTED)
            .map(|r| {
                let message = r.error.as_ref().map(|e| e.message.as_str()).unwrap_or("");
                format!("{}: {message}", r.resource)
            })
            .collect();
        if named.len() > FAILURES_LISTED {
            detail.push(format!(
                "and {} more resources with errors",
                named.len() - FAILURES_LISTED
            ));
        }
        if !failed.is_empty() && !held.is_empty() {
            detail.push(format!(
                "{} resources that depend on them were left as they were",
                held.len()
            ));
        }
        Err(DriverError::new(
            kind,
            format!(
                "group {} is {}: {}",
                self.group,
                self.state.as_str(),
                detail.join("; ")
            ),
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationStatus {
    Migrated,
    Lost,
}

/// What a migration did with one resource of the source group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceMigration {
    /// Name on the source cluster.
    pub resource: String,
    pub kind: ResourceKind,
    pub status: MigrationStatus,
    /// Name on the target when migrated; differs from `resource` when the name was taken there.
    pub target_name: Option<String>,
    /// Why it was lost.
    pub reason: Option<String>,
}

/// Result of migrating a group's configuration from another cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    pub group: String,
    pub source_cluster: String,
    pub source_os: Option<OsGeneration>,
    pub target_os: Option<OsGeneration>,
    /// The group already existed on the target: nothing was changed, the report describes it.
    pub already_present: bool,
    pub resources: Vec<ResourceMigration>,
    pub shares_migrated: Vec<String>,
    pub shares_lost: Vec<String>,
}

impl MigrationReport {
    pub fn migrated(&self) -> impl Iterator<Item = &ResourceMigration> {
        self.resources
            .iter()
            .filter(|r| r.status == MigrationStatus::Migrated)
    }

    pub fn lost(&self) -> impl Iterator<Item = &ResourceMigration> {
        self.resources
            .iter()
            .filter(|r| r.status == MigrationStatus::Lost)
    }

    /// True when every resource and every share came across.
    pub fn complete(&self) -> bool {
        self.lost().next().is_none() && self.shares_lost.is_empty()
    }
}

/// What a driver's `replace_disk_resource` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskReplacement {
    /// The group's physical disk resource now.
    pub resource: String,
    /// Physical disk resources taken out of the group (and deleted).
    pub removed: Vec<String>,
    /// Resources whose dependency moved from a removed disk resource to `resource`.
    pub repointed: Vec<String>,
}

/// Drive letters are written `F:`; accepts `f`, `f:`, `F:\`.
pub fn normalize_drive_letter(letter: &str) -> Result<String, DriverError> {
    let trimmed = letter.trim().trim_end_matches('\\');
    let mut chars = trimmed.chars();
    let first = chars.next();
    let rest: String = chars.collect();
    match first {
        Some(c) if c.is_ascii_alphabetic() && (rest.is_empty() || rest == ":") => {
            Ok(format!("{}:", c.to_ascii_uppercase()))
        }
        _ => Err(DriverError::Failed(format!(
            "`{letter}` is not a drive letter; write it like `F:`"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(errors: &[Option<ErrorKind>]) -> GroupOutcome {
        GroupOutcome {
            group: "FS1".into(),
            owner_node: None,
            state: ResourceState::PartialOnline,
            resources: errors
                .iter()
                .enumerate()
                .map(|(i, e)| ResourceOutcome {
                    resource: format!("r{i}"),
                    kind: ResourceKind::Generic,
                    state: if e.is_some() {
                        ResourceState::Failed
                    } else {
                        ResourceState::Online
                    },
                    changed: true,
                    error: e.map(|kind| ResourceError {
                        kind,
                        message: "boom".into(),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn outcome_result_kind_follows_failures() {
        assert!(outcome(&[None, None]).into_result().is_ok());
        let err = outcome(&[None, Some(ErrorKind::Transient)])
            .into_result()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Transient);
        assert!(err.is_retryable());
        assert!(err.message().contains("r1: boom"), "{err}");
        let err = outcome(&[Some(ErrorKind::Transient), Some(ErrorKind::Failed)])
            .into_result()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Failed);
        assert!(!err.is_retryable());
    }

    #[test]
    fn a_group_error_names_the_first_failures_and_counts_the_rest() {
        let failures = vec![Some(ErrorKind::Transient); 10];
        let err = outcome(&failures).into_result().unwrap_err();
        let message = err.message();
        assert!(
            message.contains("r0: boom; r1: boom; r2: boom;"),
            "{message}"
        );
        assert!(!message.contains("r3"), "{message}");
        assert!(
            message.ends_with("and 7 more resources with errors"),
            "{message}"
        );
        assert_eq!(err.kind(), ErrorKind::Transient);
    }

    #[test]
    fn error_kinds_round_trip() {
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::Transient,
            ErrorKind::Failed,
            ErrorKind::Timeout,
            ErrorKind::Unsupported,
        ] {
            let err = DriverError::new(kind, "m");
            assert_eq!(err.kind(), kind);
            assert_eq!(err.message(), "m");
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
        }
    }

    #[test]
    fn drive_letters_normalize() {
        assert_eq!(normalize_drive_letter("f").unwrap(), "F:");
        assert_eq!(normalize_drive_letter("g:").unwrap(), "G:");
        assert_eq!(normalize_drive_letter("H:\\").unwrap(), "H:");
        assert!(normalize_drive_letter("FF:").is_err());
        assert!(normalize_drive_letter("1:").is_err());
        assert!(normalize_drive_letter("").is_err());
    }
}
