//! Domain <-> protobuf translation. Domain to protobuf cannot fail; protobuf to domain checks what
//! the wire format cannot express (required enums, JSON-compatible values) and names the bad field
//! the way REST does, so the service layer's own validation stays the one source of truth.

use chrono::{DateTime, Utc};
use prost_types::value::Kind;

use crate::pb;
use ferry_core::error::{Error, Result};
use ferry_core::model::PageParams;
use ferry_core::model::diff::SnapshotDiff;
use ferry_core::model::diff::{Change, ChangeOp, DiffSummary, FieldChange, ItemKind};
use ferry_core::model::{
    Access, AceType, AgentState, AuditOutcome, AuditRecord, CachingMode, Cluster, ClusterPatch,
    CreatedToken, Disk, Group, GroupDetail, GroupSummary, InventoryCounts, InventoryDocument,
    Network, NetworkRole, NewCluster, NewToken, Node, OsGeneration, Permission, Processor,
    Properties, Resource, ResourceKind, ResourceState, Role, Share, Snapshot, SnapshotInfo,
    TaskState, TokenInfo,
};

// ---- enums --------------------------------------------------------------------------------------

/// Maps a domain enum onto its protobuf twin, and, given a parser name, back. Both directions come
/// from one list, so a variant cannot be mapped one way only; the `match`es are exhaustive, so a
/// new domain variant fails to compile until the proto has it too.
macro_rules! enum_pair {
    ($domain:ident => $pb:ident { $($d:ident => $p:ident),+ $(,)? }) => {
        impl From<$domain> for pb::$pb {
            fn from(value: $domain) -> Self {
                match value {
                    $($domain::$d => pb::$pb::$p),+
                }
            }
        }
    };
    ($domain:ident => $pb:ident, $parse:ident { $($d:ident => $p:ident),+ $(,)? }) => {
        enum_pair!($domain => $pb { $($d => $p),+ });

        /// The domain value of a required enum field; UNSPECIFIED and unknown numbers are refused.
        fn $parse(value: i32) -> Result<$domain, Bad> {
            match pb::$pb::try_from(value) {
                $(Ok(pb::$pb::$p) => Ok($domain::$d),)+
                Ok(pb::$pb::Unspecified) => Err(Bad::new(format!(
                    "must be set: {} is not a value",
                    pb::$pb::Unspecified.as_str_name()
                ))),
                Err(_) => Err(Bad::new(format!("{value} is not a known {}", stringify!($pb)))),
            }
        }
    };
}

enum_pair!(OsGeneration => OsGeneration, parse_os {
    Ws2003 => Ws2003,
    Ws2008 => Ws2008,
    Ws2008r2 => Ws2008r2,
    Ws2012 => Ws2012,
    Ws2012r2 => Ws2012r2,
    Ws2016 => Ws2016,
    Ws2019 => Ws2019,
    Ws2022 => Ws2022,
    Ws2025 => Ws2025,
});

enum_pair!(NetworkRole => NetworkRole, parse_network_role {
    Client => Client,
    Management => Management,
    Cluster => Cluster,
    Csv => Csv,
    LiveMigration => LiveMigration,
    Iscsi => Iscsi,
});

enum_pair!(ResourceState => ResourceState, parse_resource_state {
    Online => Online,
    Offline => Offline,
    Failed => Failed,
    Pending => Pending,
    PartialOnline => PartialOnline,
    Unknown => Unknown,
});

enum_pair!(ResourceKind => ResourceKind, parse_resource_kind {
    NetworkName => NetworkName,
    IpAddress => IpAddress,
    PhysicalDisk => PhysicalDisk,
    FileServer => FileServer,
    FileShare => FileShare,
    Generic => Generic,
});

enum_pair!(AceType => AceType, parse_ace_type { Allow => Allow, Deny => Deny });

enum_pair!(Access => Access, parse_access { Read => Read, Change => Change, Full => Full });

enum_pair!(CachingMode => CachingMode, parse_caching_mode {
    Manual => Manual,
    Documents => Documents,
    Programs => Programs,
    None => None,
    BranchCache => BranchCache,
});

enum_pair!(Role => Role, parse_role { Viewer => Viewer, Operator => Operator, Admin => Admin });

enum_pair!(AuditOutcome => AuditOutcome, parse_audit_outcome {
    Success => Success,
    Denied => Denied,
    Failure => Failure,
});

enum_pair!(ItemKind => ItemKind {
    Node => Node,
    Network => Network,
    Disk => Disk,
    Group => Group,
    Resource => Resource,
    Dependency => Dependency,
    Share => Share,
    Permission => Permission,
});

enum_pair!(ChangeOp => ChangeOp {
    Added => Added,
    Removed => Removed,
    Changed => Changed,
    Renamed => Renamed,
});

enum_pair!(AgentState => AgentState {
    Connected => Connected,
    Disconnected => Disconnected,
    Down => Down,
    Revoked => Revoked,
});

enum_pair!(TaskState => TaskState {
    Pending => Pending,
    Assigned => Assigned,
    Running => Running,
    Succeeded => Succeeded,
    Failed => Failed,
    Lost => Lost,
    Cancelled => Cancelled,
});

/// REST defaults an absent `caching` to manual; proto3 cannot tell absent from UNSPECIFIED, so
/// UNSPECIFIED gets the same default rather than an error.
fn parse_caching(value: i32) -> Result<CachingMode, Bad> {
    if value == pb::CachingMode::Unspecified as i32 {
        Ok(CachingMode::default())
    } else {
        parse_caching_mode(value)
    }
}

// Declared after `enum_pair!`: a macro is only in scope in modules declared after it.
mod agents;
mod report;
pub use agents::{
    action, created_join_token, enroll_request, new_join_token, task_assignment, task_progress,
    task_ref, task_ref_to_pb, task_result,
};
pub use report::report_to_pb;
pub mod discoveries;
pub mod jobs;
pub mod perf;
pub mod validations;

// ---- field paths --------------------------------------------------------------------------------

/// A conversion failure deep inside a message. The path is collected on the way out, innermost
/// segment first, so the happy path of a large inventory builds no path strings at all.
#[derive(Debug)]
struct Bad {
    segments: Vec<Segment>,
    message: String,
}

#[derive(Debug)]
enum Segment {
    Field(&'static str),
    Key(String),
    Index(usize),
}

impl Bad {
    fn new(message: impl Into<String>) -> Self {
        Self {
            segments: Vec::new(),
            message: message.into(),
        }
    }

    fn field(mut self, name: &'static str) -> Self {
        self.segments.push(Segment::Field(name));
        self
    }

    fn index(mut self, i: usize) -> Self {
        self.segments.push(Segment::Index(i));
        self
    }

    fn key(mut self, key: &str) -> Self {
        self.segments.push(Segment::Key(key.to_string()));
        self
    }

    /// `groups[0].resources[2].properties.Name`, the notation of the service's own validation.
    fn path(&self) -> String {
        let mut out = String::new();
        for segment in self.segments.iter().rev() {
            match segment {
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
                Segment::Field(name) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(name);
                }
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
            }
        }
        out
    }
}

impl From<Bad> for Error {
    fn from(bad: Bad) -> Self {
        Error::invalid_field(bad.path(), bad.message)
    }
}

/// Converts each item, adding its index to the path of a failure.
fn each<P, D>(items: Vec<P>, convert: impl Fn(P) -> Result<D, Bad>) -> Result<Vec<D>, Bad> {
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| convert(item).map_err(|bad| bad.index(i)))
        .collect()
}

// ---- scalars ------------------------------------------------------------------------------------

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        // chrono encodes a leap second as nanos >= 1e9; protobuf does not allow that.
        nanos: at.timestamp_subsec_nanos().min(999_999_999) as i32,
    }
}

/// Proto3 strings cannot be absent; empty means "not given", as an absent header or query
/// parameter does in REST.
pub fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

pub fn page(limit: u32, cursor: String) -> PageParams {
    PageParams {
        limit: (limit != 0).then_some(limit),
        cursor: non_empty(cursor),
    }
}

// ---- JSON values --------------------------------------------------------------------------------

/// Numbers travel as doubles (protobuf has no other JSON number); integers beyond 2^53 lose
/// precision, which the proto documents.
fn value_to_pb(value: &serde_json::Value) -> prost_types::Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => Kind::NullValue(prost_types::NullValue::NullValue as i32),
        J::Bool(b) => Kind::BoolValue(*b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s.clone()),
        J::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(value_to_pb).collect(),
        }),
        J::Object(map) => Kind::StructValue(prost_types::Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), value_to_pb(v)))
                .collect(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

fn struct_to_pb(map: &Properties) -> prost_types::Struct {
    prost_types::Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), value_to_pb(v)))
            .collect(),
    }
}

fn value_from_pb(value: prost_types::Value) -> Result<serde_json::Value, Bad> {
    use serde_json::Value as J;
    Ok(match value.kind {
        None => {
            return Err(Bad::new(
                "a google.protobuf.Value must have one of its kinds set",
            ));
        }
        Some(Kind::NullValue(_)) => J::Null,
        Some(Kind::BoolValue(b)) => J::Bool(b),
        Some(Kind::NumberValue(n)) => number_from_pb(n)?,
        Some(Kind::StringValue(s)) => J::String(s),
        Some(Kind::ListValue(list)) => J::Array(each(list.values, value_from_pb)?),
        Some(Kind::StructValue(s)) => J::Object(struct_from_pb(s)?.into_iter().collect()),
    })
}

/// Whole numbers come back as JSON integers: `5`, not `5.0`, so a document imported over gRPC
/// hashes the same as the same document imported over REST.
fn number_from_pb(n: f64) -> Result<serde_json::Value, Bad> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.is_finite() && n.fract() == 0.0 && n.abs() <= EXACT {
        return Ok(serde_json::Value::from(n as i64));
    }
    serde_json::Number::from_f64(n)
        .map(serde_json::Value::Number)
        .ok_or_else(|| Bad::new("must be a finite number: JSON has no NaN or infinity"))
}

fn struct_from_pb(s: prost_types::Struct) -> Result<Properties, Bad> {
    s.fields
        .into_iter()
        .map(|(k, v)| match value_from_pb(v) {
            Ok(v) => Ok((k, v)),
            Err(bad) => Err(bad.key(&k)),
        })
        .collect()
}

fn optional_struct_from_pb(s: Option<prost_types::Struct>) -> Result<Properties, Bad> {
    s.map(struct_from_pb)
        .transpose()
        .map(Option::unwrap_or_default)
}

// ---- clusters -----------------------------------------------------------------------------------

impl From<Cluster> for pb::Cluster {
    fn from(c: Cluster) -> Self {
        pb::Cluster {
            etag: c.etag(),
            id: c.id.to_string(),
            name: c.name,
            os: pb::OsGeneration::from(c.os) as i32,
            description: c.description,
            version: c.version,
            latest_snapshot: c.latest_snapshot,
            created_at: Some(timestamp(c.created_at)),
            updated_at: Some(timestamp(c.updated_at)),
            discovery_interval_seconds: c.discovery_interval_seconds,
        }
    }
}

pub fn new_cluster(request: &pb::CreateClusterRequest) -> Result<NewCluster> {
    Ok(NewCluster {
        name: request.name.clone(),
        os: parse_os(request.os).map_err(|bad| bad.field("os"))?,
        description: request.description.clone(),
        discovery_interval_seconds: request.discovery_interval_seconds,
    })
}

pub fn cluster_patch(request: &pb::UpdateClusterRequest) -> Result<ClusterPatch> {
    Ok(ClusterPatch {
        name: request.name.clone(),
        os: request
            .os
            .map(parse_os)
            .transpose()
            .map_err(|bad| bad.field("os"))?,
        description: request.description.clone(),
        discovery_interval_seconds: match request.discovery_interval {
            None => None,
            Some(pb::update_cluster_request::DiscoveryInterval::DiscoveryIntervalSeconds(s)) => {
                Some(Some(s))
            }
            Some(pb::update_cluster_request::DiscoveryInterval::ServerDiscoveryInterval(true)) => {
                Some(None)
            }
            Some(pb::update_cluster_request::DiscoveryInterval::ServerDiscoveryInterval(false)) => {
                return Err(Bad::new(
                    "must be true when set: it asks for the server's discovery_interval",
                )
                .field("server_discovery_interval")
                .into());
            }
        },
    })
}

// ---- inventory document -------------------------------------------------------------------------

impl From<InventoryDocument> for pb::InventoryDocument {
    fn from(d: InventoryDocument) -> Self {
        pb::InventoryDocument {
            nodes: d.nodes.into_iter().map(Into::into).collect(),
            networks: d.networks.into_iter().map(Into::into).collect(),
            disks: d.disks.into_iter().map(Into::into).collect(),
            groups: d.groups.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Node> for pb::Node {
    fn from(n: Node) -> Self {
        pb::Node {
            name: n.name,
            address: n.address,
            processor: Some(pb::Processor {
                vendor: n.processor.vendor,
                model: n.processor.model,
            }),
            facts: Some(struct_to_pb(&n.facts)),
        }
    }
}

impl From<Network> for pb::Network {
    fn from(n: Network) -> Self {
        pb::Network {
            name: n.name,
            role: pb::NetworkRole::from(n.role) as i32,
            metric: n.metric,
            subnet: n.subnet,
        }
    }
}

impl From<Disk> for pb::Disk {
    fn from(d: Disk) -> Self {
        pb::Disk {
            resource: d.resource,
            drive_letter: d.drive_letter,
            size_bytes: d.size_bytes,
            free_bytes: d.free_bytes,
            csv: d.csv,
        }
    }
}

impl From<Group> for pb::Group {
    fn from(g: Group) -> Self {
        pb::Group {
            name: g.name,
            owner_node: g.owner_node,
            state: pb::ResourceState::from(g.state) as i32,
            resources: g.resources.into_iter().map(Into::into).collect(),
            shares: g.shares.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Resource> for pb::Resource {
    fn from(r: Resource) -> Self {
        pb::Resource {
            name: r.name,
            kind: pb::ResourceKind::from(r.kind) as i32,
            state: pb::ResourceState::from(r.state) as i32,
            properties: Some(struct_to_pb(&r.properties)),
            depends_on: r.depends_on,
        }
    }
}

impl From<Share> for pb::Share {
    fn from(s: Share) -> Self {
        pb::Share {
            name: s.name,
            path: s.path,
            description: s.description,
            permissions: s.permissions.into_iter().map(Into::into).collect(),
            caching: pb::CachingMode::from(s.caching) as i32,
            access_based_enumeration: s.access_based_enumeration,
            continuous_availability: s.continuous_availability,
            encrypt_data: s.encrypt_data,
            user_limit: s.user_limit,
        }
    }
}

impl From<Permission> for pb::Permission {
    fn from(p: Permission) -> Self {
        pb::Permission {
            principal: p.principal,
            r#type: pb::AceType::from(p.ace_type) as i32,
            access: pb::Access::from(p.access) as i32,
        }
    }
}

/// The document of an import. Paths are relative to the document, as in REST, where the document
/// is the whole body.
pub fn inventory_document(d: pb::InventoryDocument) -> Result<InventoryDocument> {
    Ok(InventoryDocument {
        nodes: each(d.nodes, node).map_err(|bad| bad.field("nodes"))?,
        networks: each(d.networks, network).map_err(|bad| bad.field("networks"))?,
        disks: d.disks.into_iter().map(disk).collect(),
        groups: each(d.groups, group).map_err(|bad| bad.field("groups"))?,
    })
}

fn node(n: pb::Node) -> Result<Node, Bad> {
    let processor = n.processor.unwrap_or_default();
    Ok(Node {
        name: n.name,
        address: n.address,
        processor: Processor {
            vendor: processor.vendor,
            model: processor.model,
        },
        facts: optional_struct_from_pb(n.facts).map_err(|bad| bad.field("facts"))?,
    })
}

fn network(n: pb::Network) -> Result<Network, Bad> {
    Ok(Network {
        role: parse_network_role(n.role).map_err(|bad| bad.field("role"))?,
        name: n.name,
        metric: n.metric,
        subnet: n.subnet,
    })
}

fn disk(d: pb::Disk) -> Disk {
    Disk {
        resource: d.resource,
        drive_letter: d.drive_letter,
        size_bytes: d.size_bytes,
        free_bytes: d.free_bytes,
        csv: d.csv,
    }
}

fn group(g: pb::Group) -> Result<Group, Bad> {
    Ok(Group {
        state: parse_resource_state(g.state).map_err(|bad| bad.field("state"))?,
        resources: each(g.resources, resource).map_err(|bad| bad.field("resources"))?,
        shares: each(g.shares, share).map_err(|bad| bad.field("shares"))?,
        name: g.name,
        owner_node: g.owner_node,
    })
}

fn resource(r: pb::Resource) -> Result<Resource, Bad> {
    Ok(Resource {
        kind: parse_resource_kind(r.kind).map_err(|bad| bad.field("kind"))?,
        state: parse_resource_state(r.state).map_err(|bad| bad.field("state"))?,
        properties: optional_struct_from_pb(r.properties).map_err(|bad| bad.field("properties"))?,
        name: r.name,
        depends_on: r.depends_on,
    })
}

fn share(s: pb::Share) -> Result<Share, Bad> {
    Ok(Share {
        caching: parse_caching(s.caching).map_err(|bad| bad.field("caching"))?,
        permissions: each(s.permissions, permission).map_err(|bad| bad.field("permissions"))?,
        name: s.name,
        path: s.path,
        description: s.description,
        access_based_enumeration: s.access_based_enumeration,
        continuous_availability: s.continuous_availability,
        encrypt_data: s.encrypt_data,
        user_limit: s.user_limit,
    })
}

fn permission(p: pb::Permission) -> Result<Permission, Bad> {
    Ok(Permission {
        // REST calls this field `type` too.
        ace_type: parse_ace_type(p.r#type).map_err(|bad| bad.field("type"))?,
        access: parse_access(p.access).map_err(|bad| bad.field("access"))?,
        principal: p.principal,
    })
}

// ---- snapshots and diffs ------------------------------------------------------------------------

impl From<InventoryCounts> for pb::InventoryCounts {
    fn from(c: InventoryCounts) -> Self {
        pb::InventoryCounts {
            nodes: c.nodes,
            networks: c.networks,
            disks: c.disks,
            groups: c.groups,
            resources: c.resources,
            shares: c.shares,
            permissions: c.permissions,
        }
    }
}

impl From<SnapshotInfo> for pb::SnapshotInfo {
    fn from(s: SnapshotInfo) -> Self {
        pb::SnapshotInfo {
            cluster_id: s.cluster_id.to_string(),
            number: s.number,
            content_hash: s.content_hash,
            counts: Some(s.counts.into()),
            created_at: Some(timestamp(s.created_at)),
            created_by: s.created_by,
        }
    }
}

impl From<Snapshot> for pb::Snapshot {
    fn from(s: Snapshot) -> Self {
        pb::Snapshot {
            info: Some(s.info.into()),
            inventory: Some(s.inventory.into()),
        }
    }
}

impl From<SnapshotDiff> for pb::SnapshotDiff {
    fn from(d: SnapshotDiff) -> Self {
        pb::SnapshotDiff {
            cluster_id: d.cluster_id.to_string(),
            from: d.from,
            to: d.to,
            summary: Some(d.diff.summary.into()),
            changes: d.diff.changes.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<DiffSummary> for pb::DiffSummary {
    fn from(s: DiffSummary) -> Self {
        pb::DiffSummary {
            added: s.added as u64,
            removed: s.removed as u64,
            changed: s.changed as u64,
            renamed: s.renamed as u64,
        }
    }
}

impl From<Change> for pb::Change {
    fn from(c: Change) -> Self {
        pb::Change {
            kind: pb::ItemKind::from(c.kind) as i32,
            op: pb::ChangeOp::from(c.op) as i32,
            path: c.path,
            name: c.name,
            group: c.group,
            resource: c.resource,
            share: c.share,
            renamed_from: c.renamed_from,
            fields: c.fields.into_iter().map(Into::into).collect(),
            before: c.before.as_ref().map(value_to_pb),
            after: c.after.as_ref().map(value_to_pb),
        }
    }
}

impl From<FieldChange> for pb::FieldChange {
    fn from(f: FieldChange) -> Self {
        pb::FieldChange {
            field: f.field,
            from: f.from.as_ref().map(value_to_pb),
            to: f.to.as_ref().map(value_to_pb),
        }
    }
}

// ---- groups -------------------------------------------------------------------------------------

impl From<GroupSummary> for pb::GroupSummary {
    fn from(g: GroupSummary) -> Self {
        pb::GroupSummary {
            id: g.id.to_string(),
            cluster_id: g.cluster_id.to_string(),
            cluster_name: g.cluster_name,
            name: g.name,
            owner_node: g.owner_node,
            state: pb::ResourceState::from(g.state) as i32,
            resource_count: g.resource_count,
            share_count: g.share_count,
        }
    }
}

impl From<GroupDetail> for pb::GroupDetail {
    fn from(g: GroupDetail) -> Self {
        pb::GroupDetail {
            group: Some(g.group.into()),
            resources: g.resources.into_iter().map(Into::into).collect(),
        }
    }
}

// ---- tokens and audit ---------------------------------------------------------------------------

impl From<TokenInfo> for pb::TokenInfo {
    fn from(t: TokenInfo) -> Self {
        pb::TokenInfo {
            id: t.id.to_string(),
            name: t.name,
            role: pb::Role::from(t.role) as i32,
            created_at: Some(timestamp(t.created_at)),
            expires_at: t.expires_at.map(timestamp),
            revoked_at: t.revoked_at.map(timestamp),
        }
    }
}

impl From<CreatedToken> for pb::CreatedToken {
    fn from(t: CreatedToken) -> Self {
        pb::CreatedToken {
            info: Some(t.info.into()),
            token: t.token,
        }
    }
}

pub fn new_token(request: &pb::CreateTokenRequest) -> Result<NewToken> {
    Ok(NewToken {
        name: request.name.clone(),
        role: parse_role(request.role).map_err(|bad| bad.field("role"))?,
        ttl_seconds: request.ttl_seconds,
    })
}

impl From<AuditRecord> for pb::AuditRecord {
    fn from(r: AuditRecord) -> Self {
        pb::AuditRecord {
            id: r.id,
            at: Some(timestamp(r.at)),
            actor: r.actor,
            action: r.action,
            target: r.target,
            source: r.source,
            outcome: pb::AuditOutcome::from(r.outcome) as i32,
            detail: r.detail,
        }
    }
}

/// The outcome filter of ListAudit, where UNSPECIFIED means "any".
pub fn audit_outcome_filter(value: i32) -> Result<Option<AuditOutcome>> {
    if value == pb::AuditOutcome::Unspecified as i32 {
        return Ok(None);
    }
    Ok(Some(
        parse_audit_outcome(value).map_err(|bad| bad.field("outcome"))?,
    ))
}

#[cfg(test)]
mod tests;
