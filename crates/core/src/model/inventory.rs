//! The inventory document: one cluster's nodes, networks, disks, groups, resources and shares,
//! imported whole and kept as immutable snapshots.
//!
//! A document is validated, then put in canonical form (every list sorted by its key) so that the
//! same content always hashes the same, whatever order the reporter listed it in.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::{InventoryCounts, MAX_NAME_LEN, MAX_PATH_LEN, MAX_TEXT_LEN};

/// A whole cluster inventory, as imported with `PUT /v1/clusters/{id}/inventory`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InventoryDocument {
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub networks: Vec<Network>,
    #[serde(default)]
    pub disks: Vec<Disk>,
    #[serde(default)]
    pub groups: Vec<Group>,
}

impl InventoryDocument {
    /// The inventory without what storage checks do not need: networks, shares, and every
    /// group resource but its disks. When `disks` (resource names) or `drive_letters` name
    /// any, only those disks and the groups owning them are kept.
    pub fn storage_view(mut self, disks: &[String], drive_letters: &[String]) -> Self {
        self.networks.clear();
        for group in &mut self.groups {
            group.shares.clear();
            group
                .resources
                .retain(|r| r.kind == ResourceKind::PhysicalDisk);
        }
        if disks.is_empty() && drive_letters.is_empty() {
            return self;
        }
        self.disks.retain(|disk| {
            disks.iter().any(|d| d.eq_ignore_ascii_case(&disk.resource))
                || disk
                    .drive_letter
                    .as_deref()
                    .is_some_and(|l| drive_letters.iter().any(|w| w.eq_ignore_ascii_case(l)))
        });
        let kept = &self.disks;
        self.groups.retain(|group| {
            group.resources.iter().any(|r| {
                kept.iter()
                    .any(|d| d.resource.eq_ignore_ascii_case(&r.name))
            })
        });
        self
    }
}

/// Free-form facts and properties: string keys, any JSON value, kept sorted.
pub type Properties = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[schema(value_type = Name)]
    pub name: String,
    /// Host name or IP address the node answers on.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub address: String,
    #[serde(default, deserialize_with = "super::object")]
    pub processor: Processor,
    /// Free-form configuration facts (driver versions, NTLM, switch names...).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub facts: Properties,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Processor {
    #[serde(default)]
    #[schema(max_length = 255)]
    pub vendor: String,
    #[serde(default)]
    #[schema(max_length = 255)]
    pub model: String,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NetworkRole {
    Client,
    Management,
    Cluster,
    Csv,
    LiveMigration,
    Iscsi,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[schema(value_type = Name)]
    pub name: String,
    pub role: NetworkRole,
    /// Lower metric means higher priority.
    #[schema(minimum = 0)]
    pub metric: i64,
    /// CIDR, e.g. `10.0.1.0/24`.
    #[serde(default)]
    #[schema(max_length = 255)]
    pub subnet: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// Name of the physical disk resource, e.g. `Cluster Disk 1`.
    #[schema(value_type = Name)]
    pub resource: String,
    /// `F:`; absent for a CSV volume or an unassigned disk.
    #[serde(default)]
    #[schema(value_type = Option<DriveLetter>)]
    pub drive_letter: Option<String>,
    #[schema(minimum = 0)]
    pub size_bytes: i64,
    #[schema(minimum = 0)]
    pub free_bytes: i64,
    #[serde(default)]
    pub csv: bool,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceState {
    Online,
    Offline,
    Failed,
    Pending,
    PartialOnline,
    Unknown,
}

impl ResourceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceState::Online => "online",
            ResourceState::Offline => "offline",
            ResourceState::Failed => "failed",
            ResourceState::Pending => "pending",
            ResourceState::PartialOnline => "partial_online",
            ResourceState::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ResourceState::Online,
            ResourceState::Offline,
            ResourceState::Failed,
            ResourceState::Pending,
            ResourceState::PartialOnline,
            ResourceState::Unknown,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Group {
    #[schema(value_type = Name)]
    pub name: String,
    #[serde(default)]
    pub owner_node: Option<String>,
    pub state: ResourceState,
    #[serde(default)]
    pub resources: Vec<Resource>,
    #[serde(default)]
    pub shares: Vec<Share>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    NetworkName,
    IpAddress,
    PhysicalDisk,
    FileServer,
    FileShare,
    Generic,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::NetworkName => "network_name",
            ResourceKind::IpAddress => "ip_address",
            ResourceKind::PhysicalDisk => "physical_disk",
            ResourceKind::FileServer => "file_server",
            ResourceKind::FileShare => "file_share",
            ResourceKind::Generic => "generic",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            ResourceKind::NetworkName,
            ResourceKind::IpAddress,
            ResourceKind::PhysicalDisk,
            ResourceKind::FileServer,
            ResourceKind::FileShare,
            ResourceKind::Generic,
        ]
        .into_iter()
        .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resource {
    #[schema(value_type = Name)]
    pub name: String,
    pub kind: ResourceKind,
    pub state: ResourceState,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub properties: Properties,
    /// Names of resources of the same group this one depends on.
    #[serde(default)]
    pub depends_on: Vec<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AceType {
    Allow,
    Deny,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    Change,
    Full,
}

impl AceType {
    pub fn as_str(self) -> &'static str {
        match self {
            AceType::Allow => "allow",
            AceType::Deny => "deny",
        }
    }
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Change => "change",
            Access::Full => "full",
        }
    }
}

/// One share permission entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// `DOMAIN\\group`, `Everyone`, `BUILTIN\\Administrators`...
    #[schema(value_type = Name)]
    pub principal: String,
    #[serde(rename = "type")]
    pub ace_type: AceType,
    pub access: Access,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CachingMode {
    #[default]
    Manual,
    Documents,
    Programs,
    None,
    BranchCache,
}

/// Which shares to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShareFilter {
    /// Case-insensitive prefix of the share name.
    pub name_prefix: Option<String>,
    /// Shares with a permission entry for this principal (case-insensitive, exact).
    pub principal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Share {
    /// Share name; `Data$` is hidden. Unique within its group.
    #[schema(value_type = Name)]
    pub name: String,
    /// Folder shared, e.g. `F:\\Shares\\Finance`. Shares may nest.
    #[schema(
        min_length = 1,
        max_length = 32767,
        pattern = "[^\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]"
    )]
    pub path: String,
    #[serde(default)]
    #[schema(max_length = 4096)]
    pub description: String,
    #[serde(default)]
    pub permissions: Vec<Permission>,
    #[serde(default)]
    pub caching: CachingMode,
    #[serde(default)]
    pub access_based_enumeration: bool,
    #[serde(default)]
    pub continuous_availability: bool,
    #[serde(default)]
    pub encrypt_data: bool,
    /// Maximum concurrent users; absent means unlimited.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub user_limit: Option<i64>,
}

/// One problem found in a request body, addressed by a JSON-path-like location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// e.g. `groups[2].shares[17].permissions[0].principal`.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The rule of [`check_name`] as a regular expression (ECMA-262 and Python agree on it): no
/// control character (Unicode `Cc`, what `char::is_control` means) anywhere, and at least one
/// character that is neither a control character nor white space (Unicode `White_Space`, what
/// `str::trim` strips).
pub const NAME_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\u0000-\u001F\u007F-\u009F\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000][^\u0000-\u001F\u007F-\u009F]*$";

/// The OpenAPI schema `Name`: what [`check_name`] accepts, from the same constants. Fields
/// checked by `check_name` say `#[schema(value_type = Name)]`, so a client generated from the
/// spec refuses what the server would.
pub struct Name;

impl utoipa::PartialSchema for Name {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_NAME_LEN))
            .pattern(Some(NAME_PATTERN))
            .description(Some(format!(
                "A name (cluster, node, group, resource, share, disk, principal): not blank, no \
                 control characters, at most {MAX_NAME_LEN} characters."
            )))
            .into()
    }
}

impl ToSchema for Name {
    fn name() -> std::borrow::Cow<'static, str> {
        "Name".into()
    }
}

/// The OpenAPI schema `DriveLetter`: what [`valid_drive_letter`] accepts.
pub struct DriveLetter;

impl utoipa::PartialSchema for DriveLetter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        pattern_schema("^[A-Za-z]:$", "A drive letter with its colon, e.g. `F:`.")
    }
}

/// A string schema of one pattern: the spec's side of a rule the server checks in code.
pub fn pattern_schema(
    pattern: &str,
    description: &str,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .into()
}

impl ToSchema for DriveLetter {
    fn name() -> std::borrow::Cow<'static, str> {
        "DriveLetter".into()
    }
}

/// Checks a name: not blank, no control characters, not over [`MAX_NAME_LEN`].
pub fn check_name(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.trim().is_empty() {
        errors.push(FieldError::new(field, "must not be empty"));
    } else if value.chars().count() > MAX_NAME_LEN {
        errors.push(FieldError::new(
            field,
            format!("must be at most {MAX_NAME_LEN} characters"),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

pub fn check_text(errors: &mut Vec<FieldError>, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
}

fn check_unique<'a>(
    errors: &mut Vec<FieldError>,
    list: &str,
    what: &str,
    names: impl Iterator<Item = &'a str>,
) {
    let mut seen = HashSet::new();
    for (i, name) in names.enumerate() {
        // Windows names (nodes, resources, shares) compare case-insensitively.
        if !seen.insert(name.to_lowercase()) {
            errors.push(FieldError::new(
                format!("{list}[{i}]"),
                format!("duplicate {what} `{name}`"),
            ));
        }
    }
}

pub(crate) fn valid_drive_letter(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 2 && b[0].is_ascii_alphabetic() && b[1] == b':'
}

impl InventoryDocument {
    /// Every problem of the document at once, so one round trip fixes them all.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let at = format!("nodes[{i}]");
            check_name(&mut errors, &format!("{at}.name"), &node.name);
            check_text(
                &mut errors,
                &format!("{at}.address"),
                &node.address,
                MAX_NAME_LEN,
            );
            check_text(
                &mut errors,
                &format!("{at}.processor.vendor"),
                &node.processor.vendor,
                MAX_NAME_LEN,
            );
            check_text(
                &mut errors,
                &format!("{at}.processor.model"),
                &node.processor.model,
                MAX_NAME_LEN,
            );
        }
        check_unique(
            &mut errors,
            "nodes",
            "node",
            self.nodes.iter().map(|n| n.name.as_str()),
        );
        for (i, net) in self.networks.iter().enumerate() {
            let at = format!("networks[{i}]");
            check_name(&mut errors, &format!("{at}.name"), &net.name);
            check_text(
                &mut errors,
                &format!("{at}.subnet"),
                &net.subnet,
                MAX_NAME_LEN,
            );
            if net.metric < 0 {
                errors.push(FieldError::new(
                    format!("{at}.metric"),
                    "must not be negative",
                ));
            }
        }
        check_unique(
            &mut errors,
            "networks",
            "network",
            self.networks.iter().map(|n| n.name.as_str()),
        );
        for (i, disk) in self.disks.iter().enumerate() {
            let at = format!("disks[{i}]");
            check_name(&mut errors, &format!("{at}.resource"), &disk.resource);
            if let Some(letter) = &disk.drive_letter
                && !valid_drive_letter(letter)
            {
                errors.push(FieldError::new(
                    format!("{at}.drive_letter"),
                    "must be a letter followed by a colon, e.g. `F:`",
                ));
            }
            if disk.size_bytes < 0 {
                errors.push(FieldError::new(
                    format!("{at}.size_bytes"),
                    "must not be negative",
                ));
            }
            if disk.free_bytes < 0 || disk.free_bytes > disk.size_bytes {
                errors.push(FieldError::new(
                    format!("{at}.free_bytes"),
                    "must be between 0 and size_bytes",
                ));
            }
        }
        check_unique(
            &mut errors,
            "disks",
            "disk",
            self.disks.iter().map(|d| d.resource.as_str()),
        );
        let node_names: HashSet<String> =
            self.nodes.iter().map(|n| n.name.to_lowercase()).collect();
        for (g, group) in self.groups.iter().enumerate() {
            let at = format!("groups[{g}]");
            check_name(&mut errors, &format!("{at}.name"), &group.name);
            if let Some(owner) = &group.owner_node
                && !self.nodes.is_empty()
                && !node_names.contains(&owner.to_lowercase())
            {
                errors.push(FieldError::new(
                    format!("{at}.owner_node"),
                    format!("names node `{owner}`, which is not in `nodes`"),
                ));
            }
            validate_resources(&mut errors, &at, &group.resources);
            validate_shares(&mut errors, &at, &group.shares);
        }
        check_unique(
            &mut errors,
            "groups",
            "group",
            self.groups.iter().map(|g| g.name.as_str()),
        );
        errors
    }

    /// Sorts every list by its key so equal content has one representation.
    pub fn canonicalize(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.networks.sort_by(|a, b| a.name.cmp(&b.name));
        self.disks.sort_by(|a, b| a.resource.cmp(&b.resource));
        self.groups.sort_by(|a, b| a.name.cmp(&b.name));
        for group in &mut self.groups {
            group.resources.sort_by(|a, b| a.name.cmp(&b.name));
            for resource in &mut group.resources {
                resource.depends_on.sort();
                resource.depends_on.dedup();
            }
            group.shares.sort_by(|a, b| a.name.cmp(&b.name));
            for share in &mut group.shares {
                share.permissions.sort();
                share.permissions.dedup();
            }
        }
    }

    /// The canonical JSON text and its `sha256:` hash. Call after [`Self::canonicalize`].
    pub fn canonical_json(&self) -> (String, String) {
        let text = serde_json::to_string(self).expect("inventory serializes");
        let hash = format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())));
        (text, hash)
    }

    pub fn counts(&self) -> InventoryCounts {
        let mut counts = InventoryCounts {
            nodes: self.nodes.len() as i64,
            networks: self.networks.len() as i64,
            disks: self.disks.len() as i64,
            groups: self.groups.len() as i64,
            ..Default::default()
        };
        for group in &self.groups {
            counts.resources += group.resources.len() as i64;
            counts.shares += group.shares.len() as i64;
            counts.permissions += group
                .shares
                .iter()
                .map(|s| s.permissions.len() as i64)
                .sum::<i64>();
        }
        counts
    }
}

fn validate_resources(errors: &mut Vec<FieldError>, at: &str, resources: &[Resource]) {
    let names: HashSet<String> = resources.iter().map(|r| r.name.to_lowercase()).collect();
    for (r, resource) in resources.iter().enumerate() {
        let at = format!("{at}.resources[{r}]");
        check_name(errors, &format!("{at}.name"), &resource.name);
        for (d, dep) in resource.depends_on.iter().enumerate() {
            if !names.contains(&dep.to_lowercase()) {
                errors.push(FieldError::new(
                    format!("{at}.depends_on[{d}]"),
                    format!("names resource `{dep}`, which is not in this group"),
                ));
            } else if dep.eq_ignore_ascii_case(&resource.name) {
                errors.push(FieldError::new(
                    format!("{at}.depends_on[{d}]"),
                    "a resource cannot depend on itself",
                ));
            }
        }
    }
    check_unique(
        errors,
        &format!("{at}.resources"),
        "resource",
        resources.iter().map(|r| r.name.as_str()),
    );
}

fn validate_shares(errors: &mut Vec<FieldError>, at: &str, shares: &[Share]) {
    for (s, share) in shares.iter().enumerate() {
        let at = format!("{at}.shares[{s}]");
        check_name(errors, &format!("{at}.name"), &share.name);
        if share.path.trim().is_empty() {
            errors.push(FieldError::new(format!("{at}.path"), "must not be empty"));
        }
        check_text(errors, &format!("{at}.path"), &share.path, MAX_PATH_LEN);
        check_text(
            errors,
            &format!("{at}.description"),
            &share.description,
            MAX_TEXT_LEN,
        );
        if let Some(limit) = share.user_limit
            && limit < 1
        {
            errors.push(FieldError::new(
                format!("{at}.user_limit"),
                "must be at least 1, or absent for unlimited",
            ));
        }
        for (p, perm) in share.permissions.iter().enumerate() {
            check_name(
                errors,
                &format!("{at}.permissions[{p}].principal"),
                &perm.principal,
            );
        }
        let mut seen = HashSet::new();
        for (p, perm) in share.permissions.iter().enumerate() {
            if !seen.insert((perm.principal.to_lowercase(), perm.ace_type)) {
                errors.push(FieldError::new(
                    format!("{at}.permissions[{p}]"),
                    format!(
                        "duplicate {} entry for `{}`: give one entry per principal and type",
                        perm.ace_type.as_str(),
                        perm.principal
                    ),
                ));
            }
        }
    }
    check_unique(
        errors,
        &format!("{at}.shares"),
        "share",
        shares.iter().map(|s| s.name.as_str()),
    );
}

#[cfg(test)]
mod name_rule_tests {
    use super::*;
    use proptest::prelude::*;

    /// Characters near the rule's edges (controls, every kind of white space, invisible but not
    /// white space) mixed with any character at all.
    fn name_char() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::sample::select(vec![
                '\u{0}', '\t', '\n', '\r', '\u{1f}', '\u{7f}', '\u{85}', '\u{9f}', ' ', '\u{a0}',
                '\u{1680}', '\u{2000}', '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}',
                '\u{3000}', '\u{200b}', '\u{feff}', '\u{a1}',
            ]),
            any::<char>(),
            prop::char::range('a', 'z'),
        ]
    }

    proptest! {
        #[test]
        fn the_name_schema_accepts_exactly_what_check_name_accepts(
            chars in prop::collection::vec(name_char(), 0..300)
        ) {
            let name: String = chars.into_iter().collect();
            let pattern = regex::Regex::new(NAME_PATTERN).expect("the pattern compiles");
            let by_schema =
                (1..=MAX_NAME_LEN).contains(&name.chars().count()) && pattern.is_match(&name);
            let mut errors = Vec::new();
            check_name(&mut errors, "name", &name);
            prop_assert_eq!(by_schema, errors.is_empty(), "{:?}: {:?}", name, errors);
        }
    }
}
