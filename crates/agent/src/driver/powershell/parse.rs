//! Turning the scripts' JSON answers into model and report types. The answers come from
//! `ConvertTo-Json`, so every parser accepts what it does to shapes: a bare object for a single
//! item, enums as names or numbers, Windows PowerShell 5.1's `{"value": [...], "Count": n}`.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::driver::{
    ConfigFacts, CsvVolumeFacts, DiskReplacement, DriverError, ErrorKind, GroupOutcome, HbaFacts,
    NetworkFacts, NodeFacts, QuorumFacts, QuorumType, ResourceError, ResourceOutcome,
    normalize_drive_letter,
};
use ferry_core::model::{
    Access, AceType, CachingMode, Disk, Group, InventoryDocument, Network, NetworkRole, Node,
    OsGeneration, Permission, Processor, Properties, Resource, ResourceKind, ResourceState, Share,
};

/// The values of a JSON answer that may be missing, a bare object, an array, or Windows
/// PowerShell 5.1's `{"value": [...], "Count": n}` wrapping of an array.
pub fn json_many(value: Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        Value::Object(mut map)
            if map.len() == 2 && map.contains_key("Count") && map.contains_key("value") =>
        {
            match map.remove("value") {
                Some(Value::Array(items)) => items,
                Some(other) => vec![other],
                None => Vec::new(),
            }
        }
        other => vec![other],
    }
}

fn de_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    json_many(value)
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
        .collect()
}

/// A state from its name, or from the number of `ClusterGroupState`/`ClusterResourceState`.
fn parse_state(value: &Value, group: bool) -> ResourceState {
    match value {
        Value::String(s) => match s.as_str() {
            "Online" => ResourceState::Online,
            "Offline" => ResourceState::Offline,
            "Failed" => ResourceState::Failed,
            "PartialOnline" => ResourceState::PartialOnline,
            "Pending" | "OnlinePending" | "OfflinePending" | "Initializing" => {
                ResourceState::Pending
            }
            _ => ResourceState::Unknown,
        },
        Value::Number(n) => match (group, n.as_i64()) {
            (true, Some(0)) | (false, Some(2)) => ResourceState::Online,
            (true, Some(1)) | (false, Some(3)) => ResourceState::Offline,
            (true, Some(2)) | (false, Some(4)) => ResourceState::Failed,
            (true, Some(3)) => ResourceState::PartialOnline,
            (true, Some(4)) | (false, Some(1 | 128..=130)) => ResourceState::Pending,
            _ => ResourceState::Unknown,
        },
        _ => ResourceState::Unknown,
    }
}

fn resource_kind(resource_type: &str) -> ResourceKind {
    match resource_type {
        "Network Name" | "Distributed Network Name" => ResourceKind::NetworkName,
        "IP Address" | "IPv6 Address" | "IPv6 Tunnel Address" => ResourceKind::IpAddress,
        "Physical Disk" => ResourceKind::PhysicalDisk,
        "File Server" | "Scale Out File Server" => ResourceKind::FileServer,
        "File Share" => ResourceKind::FileShare,
        _ => ResourceKind::Generic,
    }
}

/// Names in a dependency expression such as `([A] or [B]) and [C]`. OR alternatives are kept as
/// plain dependencies: the model has only AND.
pub fn parse_dependency_expression(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find('[') {
        let Some(len) = rest[start + 1..].find(']') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        if !name.is_empty() && !names.iter().any(|n: &String| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
        rest = &rest[start + 2 + len..];
    }
    names
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsResource {
    name: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    state: Value,
    #[serde(default)]
    dependency: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        Value::String(s) => matches!(s.as_str(), "1" | "True" | "true"),
        _ => false,
    }
}

impl PsResource {
    fn into_resource(self) -> Resource {
        let kind = resource_kind(&self.resource_type);
        let parameters = self.parameters.unwrap_or_default();
        let mut properties: Properties = parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        properties.insert("resource_type".into(), Value::String(self.resource_type));
        let mut alias = |from: &str, to: &str| {
            if let Some(v) = parameters.get(from) {
                properties.insert(to.into(), v.clone());
            }
        };
        match kind {
            ResourceKind::NetworkName => {
                alias("DnsName", "dns_name");
                if let Some(v) = parameters.get("RequireKerberos") {
                    properties.insert("require_kerberos".into(), Value::Bool(truthy(v)));
                }
            }
            ResourceKind::IpAddress => {
                alias("Address", "address");
                alias("SubnetMask", "subnet_mask");
            }
            ResourceKind::PhysicalDisk => {
                properties.insert("disk".into(), Value::String(self.name.clone()));
                if let Some(sig) = parameters.get("DiskSignature") {
                    let text = match sig {
                        Value::String(s) => {
                            s.parse::<u64>().map_or(s.clone(), |n| format!("{n:08X}"))
                        }
                        other => other.to_string(),
                    };
                    properties.insert("signature".into(), Value::String(text));
                }
            }
            ResourceKind::FileShare => {
                alias("ShareName", "share_name");
                alias("Path", "path");
            }
            _ => {}
        }
        Resource {
            name: self.name,
            kind,
            state: parse_state(&self.state, false),
            properties,
            depends_on: self
                .dependency
                .as_deref()
                .map(parse_dependency_expression)
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsAce {
    account: String,
    #[serde(default)]
    r#type: Value,
    #[serde(default)]
    right: Value,
}

/// Share rights from `Get-SmbShareAccess` names or from a WMI access mask.
fn access_of(right: &Value) -> Option<Access> {
    const WRITE_DAC_OR_OWNER: i64 = 0x000C_0000;
    const WRITE_OR_DELETE: i64 = 0x0001_0006;
    match right {
        Value::String(s) => match s.as_str() {
            "Full" => Some(Access::Full),
            "Change" => Some(Access::Change),
            "Read" => Some(Access::Read),
            _ => None,
        },
        Value::Number(n) => {
            let mask = n.as_i64()?;
            Some(if mask & WRITE_DAC_OR_OWNER == WRITE_DAC_OR_OWNER {
                Access::Full
            } else if mask & WRITE_OR_DELETE != 0 {
                Access::Change
            } else {
                Access::Read
            })
        }
        _ => None,
    }
}

impl PsAce {
    fn into_permission(self) -> Option<Permission> {
        let ace_type = match &self.r#type {
            Value::String(s) if s == "Deny" => AceType::Deny,
            Value::Number(n) if n.as_i64() == Some(1) => AceType::Deny,
            _ => AceType::Allow,
        };
        let access = access_of(&self.right)?;
        // WMI gives `\Everyone` for well-known principals without a domain.
        let principal = self.account.trim_start_matches('\\').to_string();
        Some(Permission {
            principal,
            ace_type,
            access,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsShare {
    name: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    caching_mode: Option<String>,
    #[serde(default)]
    access_based: Option<bool>,
    #[serde(default)]
    continuously_available: Option<bool>,
    #[serde(default)]
    encrypt_data: Option<bool>,
    #[serde(default)]
    user_limit: Option<i64>,
    #[serde(default, deserialize_with = "de_many")]
    access: Vec<PsAce>,
}

impl PsShare {
    fn into_share(self) -> Share {
        let caching = match self.caching_mode.as_deref() {
            Some("Documents") => CachingMode::Documents,
            Some("Programs") => CachingMode::Programs,
            Some("None") => CachingMode::None,
            Some("BranchCache") => CachingMode::BranchCache,
            _ => CachingMode::Manual,
        };
        let mut permissions: Vec<Permission> = Vec::new();
        for ace in self.access {
            let name = ace.account.clone();
            match ace.into_permission() {
                Some(p) => {
                    let duplicate = permissions.iter().any(|q| {
                        q.principal.eq_ignore_ascii_case(&p.principal) && q.ace_type == p.ace_type
                    });
                    if !duplicate {
                        permissions.push(p);
                    }
                }
                None => tracing::warn!(
                    share = %self.name,
                    principal = %name,
                    "share permission with custom rights cannot be represented; skipped"
                ),
            }
        }
        Share {
            name: self.name,
            path: self.path,
            description: self.description.unwrap_or_default(),
            permissions,
            caching,
            access_based_enumeration: self.access_based.unwrap_or(false),
            continuous_availability: self.continuously_available.unwrap_or(false),
            encrypt_data: self.encrypt_data.unwrap_or(false),
            user_limit: self.user_limit.filter(|n| *n > 0),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsGroup {
    name: String,
    #[serde(default)]
    owner_node: Option<String>,
    #[serde(default)]
    state: Value,
    #[serde(default, deserialize_with = "de_many")]
    resources: Vec<PsResource>,
    #[serde(default, deserialize_with = "de_many")]
    shares: Vec<PsShare>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl PsGroup {
    fn into_group(self) -> Group {
        Group {
            name: self.name,
            owner_node: non_empty(self.owner_node),
            state: parse_state(&self.state, true),
            resources: self
                .resources
                .into_iter()
                .map(PsResource::into_resource)
                .collect(),
            shares: self.shares.into_iter().map(PsShare::into_share).collect(),
        }
    }
}

fn parse_json<T: DeserializeOwned>(value: Value, what: &str) -> Result<T, DriverError> {
    serde_json::from_value(value)
        .map_err(|e| DriverError::Failed(format!("unexpected {what} from powershell: {e}")))
}

fn parse_many<T: DeserializeOwned>(value: Value, what: &str) -> Result<Vec<T>, DriverError> {
    json_many(value)
        .into_iter()
        .map(|v| parse_json(v, what))
        .collect()
}

/// The resource of the `add_disk_resource` and `set_dependencies` answers.
pub fn parse_resource(value: Value) -> Result<Resource, DriverError> {
    Ok(parse_json::<PsResource>(value, "resource")?.into_resource())
}

/// Whether the `remove_resource` or `remove_group` script deleted something.
pub fn parse_removed(value: Value) -> Result<bool, DriverError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Removed {
        removed: bool,
    }
    Ok(parse_json::<Removed>(value, "removal result")?.removed)
}

/// Groups from the answer of the `list_groups` script.
pub fn parse_groups(value: Value) -> Result<Vec<Group>, DriverError> {
    Ok(parse_many::<PsGroup>(value, "group list")?
        .into_iter()
        .map(PsGroup::into_group)
        .collect())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsGroupState {
    name: String,
    #[serde(default)]
    owner_node: Option<String>,
    #[serde(default)]
    state: Value,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, deserialize_with = "de_many")]
    resources: Vec<PsResourceState>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsResourceState {
    name: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    before: Value,
    #[serde(default)]
    state: Value,
}

/// The outcome of an offline (`online == false`) or online script.
///
/// Windows does not say why a resource failed (that is in the cluster log), so the message
/// carries the state and the error of `Start-ClusterGroup`. A failed network name is taken as
/// transient, per the first field note (under Kerberos it may take two onlines), and resources
/// that merely did not start are as transient as the failures they wait on.
pub fn parse_group_outcome(value: Value, online: bool) -> Result<GroupOutcome, DriverError> {
    let parsed: PsGroupState = parse_json(value, "group state")?;
    let goal = if online {
        ResourceState::Online
    } else {
        ResourceState::Offline
    };
    let suffix = parsed
        .error
        .as_deref()
        .filter(|e| !e.trim().is_empty())
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    let rows: Vec<(PsResourceState, ResourceKind, ResourceState, ResourceState)> = parsed
        .resources
        .into_iter()
        .map(|r| {
            let kind = resource_kind(&r.resource_type);
            let before = parse_state(&r.before, false);
            let after = parse_state(&r.state, false);
            (r, kind, before, after)
        })
        .collect();
    let failed_kinds: Vec<ErrorKind> = rows
        .iter()
        .filter(|(_, _, _, after)| *after == ResourceState::Failed)
        .map(|(_, kind, _, _)| {
            if online && *kind == ResourceKind::NetworkName {
                ErrorKind::Transient
            } else {
                ErrorKind::Failed
            }
        })
        .collect();
    // Resources that merely did not start are as transient as the failures they wait on.
    let waiting_kind = if failed_kinds.iter().all(|k| *k == ErrorKind::Transient) {
        ErrorKind::Transient
    } else {
        ErrorKind::Failed
    };
    let resources = rows
        .into_iter()
        .map(|(r, kind, before, after)| {
            let error = (after != goal).then(|| {
                let error_kind = if after == ResourceState::Failed {
                    if online && kind == ResourceKind::NetworkName {
                        ErrorKind::Transient
                    } else {
                        ErrorKind::Failed
                    }
                } else {
                    waiting_kind
                };
                ResourceError {
                    kind: error_kind,
                    message: format!(
                        "resource {} is {} after {}{suffix}",
                        r.name,
                        after.as_str(),
                        if online {
                            "Start-ClusterGroup"
                        } else {
                            "Stop-ClusterGroup"
                        }
                    ),
                }
            });
            ResourceOutcome {
                resource: r.name,
                kind,
                state: after,
                changed: before != after,
                error,
            }
        })
        .collect();
    Ok(GroupOutcome {
        group: parsed.name,
        owner_node: non_empty(parsed.owner_node),
        state: parse_state(&parsed.state, true),
        resources,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsPartition {
    resource: String,
    #[serde(default)]
    path: String,
    #[serde(default, rename = "TotalMB")]
    total_mb: i64,
    #[serde(default, rename = "FreeMB")]
    free_mb: i64,
}

const MB: i64 = 1 << 20;

fn disk_of(p: &PsPartition, csv: bool) -> Disk {
    Disk {
        resource: p.resource.clone(),
        drive_letter: if csv {
            None
        } else {
            normalize_drive_letter(&p.path).ok()
        },
        size_bytes: p.total_mb.max(0) * MB,
        free_bytes: p.free_mb.clamp(0, p.total_mb.max(0)) * MB,
        csv,
    }
}

/// The disk of the `assign_drive_letter` answer.
pub fn parse_disk(value: Value) -> Result<Disk, DriverError> {
    let p: PsPartition = parse_json(value, "disk")?;
    Ok(disk_of(&p, false))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsReplacement {
    resource: String,
    #[serde(default, deserialize_with = "de_many")]
    removed: Vec<String>,
    #[serde(default, deserialize_with = "de_many")]
    repointed: Vec<String>,
}

/// The answer of `replace_disk_resource`; PowerShell prints a one-element array as its element.
pub fn parse_disk_replacement(value: Value) -> Result<DiskReplacement, DriverError> {
    let r: PsReplacement = parse_json(value, "disk replacement")?;
    Ok(DiskReplacement {
        resource: r.resource,
        removed: r.removed,
        repointed: r.repointed,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsNetwork {
    name: String,
    #[serde(default)]
    role: i64,
    #[serde(default)]
    metric: i64,
    #[serde(default)]
    auto_metric: Option<bool>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    mask: String,
}

fn cidr(address: &str, mask: &str) -> String {
    if address.is_empty() {
        return String::new();
    }
    let bits: Option<u32> = mask
        .split('.')
        .map(|o| o.parse::<u8>().ok().map(|o| o.count_ones()))
        .sum();
    match bits {
        Some(bits) if mask.split('.').count() == 4 => format!("{address}/{bits}"),
        _ => address.to_string(),
    }
}

/// Roles from the cluster's `Role` (0 none, 1 cluster only, 3 cluster and client) and the
/// conventions of the third field note: CSV traffic takes the cluster network with the lowest
/// metric, and networks are named after their purpose.
fn network_roles(networks: &[PsNetwork]) -> Vec<NetworkRole> {
    let named = |n: &PsNetwork, words: &[&str]| {
        let lower = n.name.to_lowercase();
        words.iter().any(|w| lower.contains(w))
    };
    let csv = networks
        .iter()
        .filter(|n| n.role == 1 && !named(n, &["live", "migration"]))
        .min_by_key(|n| n.metric)
        .map(|n| n.name.clone());
    networks
        .iter()
        .map(|n| match n.role {
            0 => NetworkRole::Iscsi,
            1 if named(n, &["live", "migration"]) => NetworkRole::LiveMigration,
            1 if csv.as_deref() == Some(n.name.as_str()) => NetworkRole::Csv,
            1 => NetworkRole::Cluster,
            _ if named(n, &["manage"]) => NetworkRole::Management,
            _ => NetworkRole::Client,
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsNode {
    name: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    model: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsInventory {
    #[serde(default, deserialize_with = "de_many")]
    nodes: Vec<PsNode>,
    #[serde(default, deserialize_with = "de_many")]
    networks: Vec<PsNetwork>,
    #[serde(default, deserialize_with = "de_many")]
    disks: Vec<PsPartition>,
    #[serde(default, deserialize_with = "de_many")]
    csv: Vec<PsPartition>,
    #[serde(default, deserialize_with = "de_many")]
    groups: Vec<PsGroup>,
}

/// The inventory from the answer of the `inventory` script.
pub fn parse_inventory(value: Value) -> Result<InventoryDocument, DriverError> {
    let inv: PsInventory = parse_json(value, "inventory")?;
    let roles = network_roles(&inv.networks);
    let mut disks: Vec<Disk> = Vec::new();
    for p in &inv.csv {
        if !disks.iter().any(|d| d.resource == p.resource) {
            disks.push(disk_of(p, true));
        }
    }
    // A disk with several partitions is listed once, by its first partition.
    for p in &inv.disks {
        if !disks.iter().any(|d| d.resource == p.resource) {
            disks.push(disk_of(p, false));
        }
    }
    Ok(InventoryDocument {
        nodes: inv
            .nodes
            .into_iter()
            .map(|n| Node {
                address: n.name.clone(),
                name: n.name,
                processor: Processor {
                    vendor: n.vendor,
                    model: n.model,
                },
                facts: n
                    .state
                    .map(|s| ("state".to_string(), Value::String(s)))
                    .into_iter()
                    .collect(),
            })
            .collect(),
        networks: inv
            .networks
            .iter()
            .zip(roles)
            .map(|(n, role)| Network {
                name: n.name.clone(),
                role,
                metric: n.metric,
                subnet: cidr(&n.address, &n.mask),
            })
            .collect(),
        disks,
        groups: inv.groups.into_iter().map(PsGroup::into_group).collect(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsNodeFacts {
    name: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    model: String,
    #[serde(default, deserialize_with = "de_many")]
    switches: Vec<String>,
    #[serde(default)]
    ntlm_send: Option<i64>,
    #[serde(default)]
    ntlm_receive: Option<i64>,
    #[serde(default, deserialize_with = "de_many")]
    hbas: Vec<PsHba>,
    /// One value per virtual machine on the node; none when Hyper-V's cmdlets are absent.
    #[serde(default, deserialize_with = "de_many")]
    processor_compatibility: Vec<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsHba {
    #[serde(default)]
    model: String,
    #[serde(default)]
    driver_version: String,
    #[serde(default)]
    firmware_version: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsBinding {
    network: String,
    #[serde(default)]
    component: String,
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsFacts {
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default, deserialize_with = "de_many")]
    networks: Vec<PsNetwork>,
    #[serde(default, deserialize_with = "de_many")]
    nodes: Vec<PsNodeFacts>,
    #[serde(default, deserialize_with = "de_many")]
    bindings: Vec<PsBinding>,
    #[serde(default, deserialize_with = "de_many")]
    csv: Vec<PsPartition>,
    #[serde(default)]
    quorum: Option<String>,
    #[serde(default)]
    live_migration_qos: Option<bool>,
}

/// Configuration facts from the answer of the `config_facts` script.
pub fn parse_config_facts(value: Value, os: OsGeneration) -> Result<ConfigFacts, DriverError> {
    let facts: PsFacts = parse_json(value, "configuration facts")?;
    let roles = network_roles(&facts.networks);
    // A binding is enabled on a network only if it is enabled on every node's adapter there.
    let binding = |network: &str, component: &str| -> Option<bool> {
        let found: Vec<bool> = facts
            .bindings
            .iter()
            .filter(|b| b.network == network && b.component.eq_ignore_ascii_case(component))
            .map(|b| b.enabled)
            .collect();
        (!found.is_empty()).then(|| found.iter().all(|e| *e))
    };
    let networks = facts
        .networks
        .iter()
        .zip(roles)
        .map(|(n, role)| NetworkFacts {
            name: n.name.clone(),
            role,
            metric: n.metric,
            auto_metric: n.auto_metric,
            subnet: cidr(&n.address, &n.mask),
            ipsec_enabled: None,
            client_for_microsoft_networks: binding(&n.name, "ms_msclient"),
            file_and_printer_sharing: binding(&n.name, "ms_server"),
        })
        .collect();
    let node_count = facts.nodes.len() as u32;
    let quorum_type = match facts.quorum.as_deref() {
        Some("NodeMajority") => Some(QuorumType::NodeMajority),
        Some("NodeAndDiskMajority") => Some(QuorumType::NodeAndDiskMajority),
        Some("NodeAndFileShareMajority") => Some(QuorumType::NodeAndFileShareMajority),
        Some("DiskOnly") => Some(QuorumType::DiskOnly),
        Some("Majority") => Some(QuorumType::Majority),
        Some(q) if !q.is_empty() => Some(QuorumType::Unknown),
        _ => None,
    };
    Ok(ConfigFacts {
        cluster: non_empty(facts.cluster),
        os: Some(os),
        networks,
        nodes: facts
            .nodes
            .into_iter()
            .map(|n| NodeFacts {
                name: n.name,
                processor: Processor {
                    vendor: n.vendor,
                    model: n.model,
                },
                virtual_switches: n.switches,
                // 2 is "deny all" for both policies; an absent value allows NTLM.
                ntlm_enabled: Some(n.ntlm_send != Some(2) && n.ntlm_receive != Some(2)),
                hbas: n
                    .hbas
                    .into_iter()
                    .map(|h| HbaFacts {
                        model: h.model,
                        driver_version: h.driver_version,
                        firmware_version: h.firmware_version,
                    })
                    .collect(),
                // A node without virtual machines says nothing about the setting; one VM without
                // it is enough to fail a migration to a different processor model.
                processor_compatibility: (!n.processor_compatibility.is_empty())
                    .then(|| n.processor_compatibility.iter().all(|on| *on)),
            })
            .collect(),
        csv_volumes: facts
            .csv
            .iter()
            .map(|p| CsvVolumeFacts {
                name: p.resource.clone(),
                path: p.path.clone(),
                size_bytes: p.total_mb.max(0) * MB,
                free_bytes: p.free_mb.max(0) * MB,
            })
            .collect(),
        quorum: quorum_type.map(|quorum_type| QuorumFacts {
            quorum_type,
            node_count,
        }),
        live_migration_qos: facts.live_migration_qos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_expressions_parse() {
        assert_eq!(
            parse_dependency_expression("([FS1 Name]) and ([Cluster Disk 1])"),
            vec!["FS1 Name", "Cluster Disk 1"]
        );
        assert_eq!(
            parse_dependency_expression("([A] or [B]) and [a]"),
            vec!["A", "B"]
        );
        assert!(parse_dependency_expression("").is_empty());
    }

    #[test]
    fn masks_map_to_access() {
        assert_eq!(access_of(&Value::from(2032127)), Some(Access::Full));
        assert_eq!(access_of(&Value::from(1245631)), Some(Access::Change));
        assert_eq!(access_of(&Value::from(1179817)), Some(Access::Read));
        assert_eq!(access_of(&Value::from("Custom")), None);
    }

    #[test]
    fn subnets_become_cidr() {
        assert_eq!(cidr("10.0.1.0", "255.255.255.0"), "10.0.1.0/24");
        assert_eq!(cidr("10.0.0.0", "255.255.0.0"), "10.0.0.0/16");
        assert_eq!(cidr("", ""), "");
    }

    #[test]
    fn processor_compatibility_and_live_migration_qos_parse_when_present() {
        let facts = parse_config_facts(
            serde_json::json!({
                "Nodes": [
                    {"Name": "N1", "ProcessorCompatibility": [true, true]},
                    {"Name": "N2", "ProcessorCompatibility": [true, false]},
                    {"Name": "N3", "ProcessorCompatibility": true},
                    {"Name": "N4", "ProcessorCompatibility": []},
                    {"Name": "N5"}
                ],
                "LiveMigrationQos": false
            }),
            OsGeneration::Ws2016,
        )
        .unwrap();
        let compatibility: Vec<Option<bool>> = facts
            .nodes
            .iter()
            .map(|n| n.processor_compatibility)
            .collect();
        assert_eq!(
            compatibility,
            [Some(true), Some(false), Some(true), None, None]
        );
        assert_eq!(facts.live_migration_qos, Some(false));

        // An older agent's answer, or a cluster without the SMB bandwidth cmdlets.
        let older = parse_config_facts(
            serde_json::json!({"Nodes": {"Name": "N1"}, "LiveMigrationQos": null}),
            OsGeneration::Ws2008r2,
        )
        .unwrap();
        assert_eq!(older.nodes[0].processor_compatibility, None);
        assert_eq!(older.live_migration_qos, None);
    }
}
