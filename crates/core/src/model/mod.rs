//! The pure domain core: inventory types, their validation, canonical form and diff; agents,
//! join tokens and tasks.
//!
//! Nothing here does I/O. The store persists these types, the service layer composes them, and
//! REST and gRPC only translate them.

pub mod agent;
pub mod diff;
pub mod discovery;
pub mod facts;
pub mod inventory;
pub mod job;
pub mod paths;
pub mod shares;
pub mod validation;
pub mod webhook;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub use agent::*;
pub use discovery::*;
pub use facts::*;
pub use inventory::*;
pub use job::*;
pub use shares::*;
pub use validation::*;
pub use webhook::*;

/// Windows Server generation of a failover cluster. Ordered oldest first, so `<` means "older".
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum OsGeneration {
    Ws2003,
    Ws2008,
    Ws2008r2,
    Ws2012,
    Ws2012r2,
    Ws2016,
    Ws2019,
    Ws2022,
    Ws2025,
}

impl OsGeneration {
    pub const ALL: [OsGeneration; 9] = [
        OsGeneration::Ws2003,
        OsGeneration::Ws2008,
        OsGeneration::Ws2008r2,
        OsGeneration::Ws2012,
        OsGeneration::Ws2012r2,
        OsGeneration::Ws2016,
        OsGeneration::Ws2019,
        OsGeneration::Ws2022,
        OsGeneration::Ws2025,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OsGeneration::Ws2003 => "ws2003",
            OsGeneration::Ws2008 => "ws2008",
            OsGeneration::Ws2008r2 => "ws2008r2",
            OsGeneration::Ws2012 => "ws2012",
            OsGeneration::Ws2012r2 => "ws2012r2",
            OsGeneration::Ws2016 => "ws2016",
            OsGeneration::Ws2019 => "ws2019",
            OsGeneration::Ws2022 => "ws2022",
            OsGeneration::Ws2025 => "ws2025",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

impl std::fmt::Display for OsGeneration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest name (cluster, node, group, resource, share, principal) the API accepts.
pub const MAX_NAME_LEN: usize = 255;
/// Longest free text (descriptions).
pub const MAX_TEXT_LEN: usize = 4096;
/// Longest file-system path. Windows long paths reach 32k UTF-16 units.
pub const MAX_PATH_LEN: usize = 32_767;

/// Reads a struct only from a JSON object. serde's derive also reads a struct from an array of
/// its fields in order, so `"thresholds": []` would mean "every default"; no client means that,
/// and the spec says object. For fields whose every member has a default, where an array would
/// otherwise pass.
pub(crate) fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    from_object(
        serde_json::Value::deserialize(deserializer)?,
        "a JSON object",
    )
}

/// [`object`] for an optional field: `null` is `None`.
pub(crate) fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Null => Ok(None),
        value => from_object(value, "a JSON object or null").map(Some),
    }
}

/// `T` read from `value` when it is an object; otherwise an error saying what was `expected`.
fn from_object<T: serde::de::DeserializeOwned, E: serde::de::Error>(
    value: serde_json::Value,
    expected: &'static str,
) -> Result<T, E> {
    if !value.is_object() {
        return Err(E::invalid_type(
            serde::de::Unexpected::Other(json_kind(&value)),
            &expected,
        ));
    }
    T::deserialize(value).map_err(E::custom)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// A registered failover cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cluster {
    pub id: Uuid,
    /// Unique name, e.g. `FS-OLD`.
    pub name: String,
    pub os: OsGeneration,
    pub description: String,
    /// How often its agents read it for a new snapshot, in seconds; absent means the server's
    /// `discovery_interval`, 0 turns periodic discovery off for this cluster.
    #[serde(default)]
    pub discovery_interval_seconds: Option<u64>,
    /// Bumped by every change of the cluster record; the ETag is derived from it.
    pub version: i64,
    /// Number of the newest inventory snapshot, if any was imported.
    pub latest_snapshot: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The longest discovery interval a cluster may have: a year. Longer means "never", which is 0.
pub const MAX_DISCOVERY_INTERVAL_SECONDS: u64 = 365 * 24 * 3600;

/// Adds an error when a cluster's own discovery interval is past [`MAX_DISCOVERY_INTERVAL_SECONDS`].
pub fn check_discovery_interval(errors: &mut Vec<FieldError>, field: &str, seconds: Option<u64>) {
    if seconds.is_some_and(|s| s > MAX_DISCOVERY_INTERVAL_SECONDS) {
        errors.push(FieldError::new(
            field,
            format!(
                "must be at most {MAX_DISCOVERY_INTERVAL_SECONDS} (a year); 0 turns periodic \
                 discovery off"
            ),
        ));
    }
}

impl Cluster {
    pub fn etag(&self) -> String {
        format!("\"v{}\"", self.version)
    }
}

/// Body of `POST /v1/clusters`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCluster {
    #[schema(value_type = Name)]
    pub name: String,
    pub os: OsGeneration,
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: String,
    /// Its own discovery interval in seconds (0: no periodic discovery); absent: the server's.
    #[serde(default)]
    #[schema(maximum = 31536000)]
    pub discovery_interval_seconds: Option<u64>,
}

/// Body of `PATCH /v1/clusters/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClusterPatch {
    #[schema(value_type = Option<Name>)]
    pub name: Option<String>,
    pub os: Option<OsGeneration>,
    #[schema(max_length = 4096)]
    pub description: Option<String>,
    /// Its own discovery interval in seconds (0: no periodic discovery); `null` goes back to
    /// the server's `discovery_interval`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, maximum = 31536000)]
    pub discovery_interval_seconds: Option<Option<u64>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value: `null` is an answer of
/// its own in a patch, clearing what is set.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Metadata of one immutable inventory snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotInfo {
    pub cluster_id: Uuid,
    /// 1, 2, 3... per cluster.
    pub number: i64,
    /// `sha256:` of the canonical document; identical content has the same hash.
    pub content_hash: String,
    pub counts: InventoryCounts,
    pub created_at: DateTime<Utc>,
    /// Name of the token that imported it.
    pub created_by: String,
}

/// A snapshot with its full canonical document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Snapshot {
    #[serde(flatten)]
    pub info: SnapshotInfo,
    pub inventory: InventoryDocument,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryCounts {
    pub nodes: i64,
    pub networks: i64,
    pub disks: i64,
    pub groups: i64,
    pub resources: i64,
    pub shares: i64,
    pub permissions: i64,
}

/// A group as currently inventoried (from the newest snapshot), without its children.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupSummary {
    pub id: Uuid,
    pub cluster_id: Uuid,
    pub cluster_name: String,
    pub name: String,
    pub owner_node: Option<String>,
    pub state: ResourceState,
    pub resource_count: i64,
    pub share_count: i64,
}

/// A group with its resources and their dependencies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupDetail {
    #[serde(flatten)]
    pub group: GroupSummary,
    pub resources: Vec<Resource>,
}

/// Page parameters as a client sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageParams {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// One page of a list, with the cursor of the next page when there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next: Option<String>,
}

/// Role of an API token; each role can do what the lower ones can.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Body of `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[schema(value_type = Name)]
    pub name: String,
    pub role: Role,
    /// Lifetime in seconds, up to ten years; absent means the token does not expire.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 315360000)]
    pub ttl_seconds: Option<i64>,
}

/// Answer to a token creation: the secret is shown here once and never again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer secret. Absent when an `Idempotency-Key` replay answers: only its hash is kept.
    pub token: Option<String>,
}

/// Outcome of an audited call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Success,
    Denied,
    Failure,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Success => "success",
            AuditOutcome::Denied => "denied",
            AuditOutcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(AuditOutcome::Success),
            "denied" => Some(AuditOutcome::Denied),
            "failure" => Some(AuditOutcome::Failure),
            _ => None,
        }
    }
}

/// Which audit records to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<AuditOutcome>,
}

/// One audit record: who did what to which target, from where, when, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Increasing sequence number.
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Token name, or `anonymous` when no valid token was given.
    pub actor: String,
    /// e.g. `cluster.create`, `inventory.import`, `token.revoke`.
    pub action: String,
    /// e.g. `cluster:FS-OLD`.
    pub target: String,
    pub source: Option<String>,
    pub outcome: AuditOutcome,
    /// Short, human text: the error title on failure.
    pub detail: Option<String>,
}

/// What the service layer appends to the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAudit {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub source: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
}
