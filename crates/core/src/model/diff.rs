//! Exact diff of two inventory documents, down to single permission entries and dependencies.
//!
//! Migrations are verified against these diffs, so every difference between the two documents is
//! reported exactly once, on the smallest item that holds it: a permission entry is never also a
//! field change of its share, a dependency never also a field change of its resource, and a whole
//! removed or added group or share is one change carrying its children in `before` or `after`.
//!
//! Items are matched by key, case-insensitively like the validator compares Windows names; a
//! case-only difference of a name is still a difference of the document and is reported as a field
//! change. Nothing here depends on the order of the input lists.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::inventory::{
    AceType, Disk, Group, InventoryDocument, Network, Node, Permission, Processor, Properties,
    Resource, Share,
};

/// A diff between two snapshots of one cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDiff {
    pub cluster_id: Uuid,
    pub from: i64,
    pub to: i64,
    #[serde(flatten)]
    pub diff: InventoryDiff,
}

/// The differences between two inventory documents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InventoryDiff {
    pub summary: DiffSummary,
    /// Sorted by `kind` (in the order [`ItemKind`] lists them), then by `path`.
    pub changes: Vec<Change>,
}

impl InventoryDiff {
    /// True when the two documents have the same content.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Number of changes of each op; they add up to `changes.len()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiffSummary {
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub renamed: usize,
}

impl DiffSummary {
    pub fn of(changes: &[Change]) -> Self {
        let mut summary = Self::default();
        for change in changes {
            match change.op {
                ChangeOp::Added => summary.added += 1,
                ChangeOp::Removed => summary.removed += 1,
                ChangeOp::Changed => summary.changed += 1,
                ChangeOp::Renamed => summary.renamed += 1,
            }
        }
        summary
    }
}

/// What a change is about. The declaration order is the order of the changes in a diff.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Node,
    Network,
    Disk,
    Group,
    Resource,
    /// One `depends_on` entry of a resource.
    Dependency,
    Share,
    /// One permission entry of a share.
    Permission,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChangeOp {
    Added,
    Removed,
    Changed,
    /// Only shares: one removed and one added in the same group with the same folder.
    Renamed,
}

/// One difference. `before` is set for `removed`, `after` for `added`; `fields` for `changed`
/// and `renamed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Change {
    pub kind: ItemKind,
    pub op: ChangeOp,
    /// Address of the item, e.g. `groups/FS1/shares/Data$/permissions/CORP\Finance:allow` or
    /// `groups/FS1/resources/File Server/depends_on/Disk F:`. Names are spelled as in the newer
    /// document (the older one for a removal); `%` and `/` inside a name are written `%25` and
    /// `%2F`, so the address splits unambiguously on `/`. Unique within a diff of valid documents.
    pub path: String,
    /// The item's own key, unescaped, as in the last segment of `path`: the node, network, group,
    /// resource or share name, the disk resource, the resource depended on for a dependency, and
    /// `principal:type` for a permission.
    pub name: String,
    /// The group this item is or belongs to.
    pub group: Option<String>,
    /// The resource this item is or belongs to (resources and dependencies).
    pub resource: Option<String>,
    /// The share this item is or belongs to (shares and permissions); its new name when renamed.
    pub share: Option<String>,
    /// The share's old name, for `renamed`.
    pub renamed_from: Option<String>,
    /// For `changed` and `renamed`: each differing field, in declaration order. Empty otherwise.
    pub fields: Vec<FieldChange>,
    /// For `removed`: the whole item with its children, lists in canonical order.
    pub before: Option<Value>,
    /// For `added`: the whole item with its children, lists in canonical order.
    pub after: Option<Value>,
}

/// One differing field of an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct FieldChange {
    /// The field's JSON name within the item; nested fields and keys of free-form maps are joined
    /// with dots: `access`, `processor.model`, `facts.ntlm`, `properties.Name`.
    pub field: String,
    /// The old JSON value; absent (not `null`) when a map key did not exist.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub from: Option<Value>,
    /// The new JSON value; absent (not `null`) when a map key no longer exists.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present_value"
    )]
    pub to: Option<Value>,
}

/// Keeps an explicit `null` as `Some(Null)`: only a missing key means "did not exist".
fn present_value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Every difference between `from` (older) and `to` (newer).
pub fn diff_inventories(from: &InventoryDocument, to: &InventoryDocument) -> InventoryDiff {
    let mut out = Vec::new();
    // Snapshots compared are usually identical or nearly so: one deep comparison is far cheaper
    // than matching every item.
    if from != to {
        // Destructured so that a new top-level list cannot be silently left out of the diff.
        let InventoryDocument {
            nodes,
            networks,
            disks,
            groups,
        } = from;
        let root = Scope::default();
        diff_leaves(&mut out, &root, nodes, &to.nodes);
        diff_leaves(&mut out, &root, networks, &to.networks);
        diff_leaves(&mut out, &root, disks, &to.disks);
        diff_groups(&mut out, &root, groups, &to.groups);
        // Within one kind, paths are unique for valid documents; the rest only keeps the order
        // total when duplicates slipped in.
        out.sort_by(|a, b| {
            (a.kind, &a.path, a.op)
                .cmp(&(b.kind, &b.path, b.op))
                .then_with(|| json_text(a).cmp(&json_text(b)))
        });
    }
    InventoryDiff {
        summary: DiffSummary::of(&out),
        changes: out,
    }
}

/// Where an item sits: its address and the names of the group, resource and share around it.
#[derive(Default)]
struct Scope<'a> {
    path: String,
    group: Option<&'a str>,
    resource: Option<&'a str>,
    share: Option<&'a str>,
}

impl<'a> Scope<'a> {
    /// The scope of the item `name` in `collection` below this one.
    fn enter(&self, collection: &str, name: &str) -> Scope<'a> {
        let mut path = String::with_capacity(self.path.len() + collection.len() + name.len() + 2);
        if !self.path.is_empty() {
            path.push_str(&self.path);
            path.push('/');
        }
        path.push_str(collection);
        path.push('/');
        for c in name.chars() {
            match c {
                '%' => path.push_str("%25"),
                '/' => path.push_str("%2F"),
                c => path.push(c),
            }
        }
        Scope {
            path,
            group: self.group,
            resource: self.resource,
            share: self.share,
        }
    }

    fn change(&self, kind: ItemKind, op: ChangeOp, name: &str) -> Change {
        Change {
            kind,
            op,
            path: self.path.clone(),
            name: name.to_owned(),
            group: self.group.map(str::to_owned),
            resource: self.resource.map(str::to_owned),
            share: self.share.map(str::to_owned),
            renamed_from: None,
            fields: Vec::new(),
            before: None,
            after: None,
        }
    }

    fn removed(&self, kind: ItemKind, name: &str, item: Value) -> Change {
        Change {
            before: Some(item),
            ..self.change(kind, ChangeOp::Removed, name)
        }
    }

    fn added(&self, kind: ItemKind, name: &str, item: Value) -> Change {
        Change {
            after: Some(item),
            ..self.change(kind, ChangeOp::Added, name)
        }
    }

    fn changed(&self, kind: ItemKind, name: &str, fields: Vec<FieldChange>) -> Change {
        Change {
            fields,
            ..self.change(kind, ChangeOp::Changed, name)
        }
    }
}

/// One item matched across the two documents by its key.
enum Matched<'a, T> {
    Both(&'a T, &'a T),
    Removed(&'a T),
    Added(&'a T),
}

/// Matches the items of two lists by key, in key order, in O(n log n).
///
/// Valid documents have unique keys. Should a list hold duplicates anyway, they are paired in
/// order of their JSON text (which starts with the exact name), so the result still does not
/// depend on input order.
fn pair_up<'a, T: Serialize, K: Ord>(
    from: &'a [T],
    to: &'a [T],
    key: impl Fn(&T) -> K,
) -> Vec<Matched<'a, T>> {
    let mut keyed: Vec<(K, bool, &'a T)> = from
        .iter()
        .map(|t| (key(t), false, t))
        .chain(to.iter().map(|t| (key(t), true, t)))
        .collect();
    // Stable, so within one key every `from` item precedes every `to` item.
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut out = Vec::with_capacity(keyed.len());
    let mut rest = keyed.as_slice();
    while let Some((first, _)) = rest.split_first() {
        let run = rest.iter().take_while(|k| k.0 == first.0).count();
        let (same, tail) = rest.split_at(run);
        rest = tail;
        match same {
            [(_, false, a), (_, true, b)] => out.push(Matched::Both(*a, *b)),
            [(_, false, a)] => out.push(Matched::Removed(*a)),
            [(_, true, b)] => out.push(Matched::Added(*b)),
            _ => {
                let mut a: Vec<&T> = same.iter().filter(|k| !k.1).map(|k| k.2).collect();
                let mut b: Vec<&T> = same.iter().filter(|k| k.1).map(|k| k.2).collect();
                a.sort_by_cached_key(json_text);
                b.sort_by_cached_key(json_text);
                for i in 0..a.len().max(b.len()) {
                    out.push(match (a.get(i), b.get(i)) {
                        (Some(a), Some(b)) => Matched::Both(*a, *b),
                        (Some(a), None) => Matched::Removed(*a),
                        (None, Some(b)) => Matched::Added(*b),
                        (None, None) => unreachable!("i is below the longer length"),
                    });
                }
            }
        }
    }
    out
}

/// Windows names compare case-insensitively; this is the validator's rule.
fn fold(name: &str) -> String {
    name.to_lowercase()
}

fn json<T: Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).expect("inventory items serialize")
}

fn json_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("inventory items serialize")
}

/// An item without children of its own: matched by key, then compared field by field.
trait Leaf: Serialize + PartialEq {
    const KIND: ItemKind;
    const COLLECTION: &'static str;
    type Key: Ord;
    fn key(&self) -> Self::Key;
    /// The last segment of the item's path, unescaped.
    fn name(&self) -> Cow<'_, str>;
    fn fields(&self, to: &Self) -> Vec<FieldChange>;
}

fn diff_leaves<T: Leaf>(out: &mut Vec<Change>, scope: &Scope<'_>, from: &[T], to: &[T]) {
    for matched in pair_up(from, to, T::key) {
        match matched {
            Matched::Both(a, b) => {
                if a == b {
                    continue;
                }
                let fields = a.fields(b);
                if !fields.is_empty() {
                    let name = b.name();
                    let at = scope.enter(T::COLLECTION, &name);
                    out.push(at.changed(T::KIND, &name, fields));
                }
            }
            Matched::Removed(a) => {
                let name = a.name();
                let at = scope.enter(T::COLLECTION, &name);
                out.push(at.removed(T::KIND, &name, json(a)));
            }
            Matched::Added(b) => {
                let name = b.name();
                let at = scope.enter(T::COLLECTION, &name);
                out.push(at.added(T::KIND, &name, json(b)));
            }
        }
    }
}

fn group_scope<'a>(root: &Scope<'a>, name: &'a str) -> Scope<'a> {
    Scope {
        group: Some(name),
        ..root.enter("groups", name)
    }
}

fn resource_scope<'a>(group: &Scope<'a>, name: &'a str) -> Scope<'a> {
    Scope {
        resource: Some(name),
        ..group.enter("resources", name)
    }
}

fn share_scope<'a>(group: &Scope<'a>, name: &'a str) -> Scope<'a> {
    Scope {
        share: Some(name),
        ..group.enter("shares", name)
    }
}

fn diff_groups<'a>(out: &mut Vec<Change>, root: &Scope<'a>, from: &'a [Group], to: &'a [Group]) {
    for matched in pair_up(from, to, |g| fold(&g.name)) {
        match matched {
            Matched::Both(a, b) => {
                if a == b {
                    continue;
                }
                let scope = group_scope(root, &b.name);
                let fields = group_fields(a, b);
                if !fields.is_empty() {
                    out.push(scope.changed(ItemKind::Group, &b.name, fields));
                }
                diff_resources(out, &scope, &a.resources, &b.resources);
                diff_shares(out, &scope, &a.shares, &b.shares);
            }
            // Its resources and shares travel inside `before`/`after`, not as changes of their own.
            Matched::Removed(a) => {
                let item = json(&canonical_group(a));
                out.push(group_scope(root, &a.name).removed(ItemKind::Group, &a.name, item));
            }
            Matched::Added(b) => {
                let item = json(&canonical_group(b));
                out.push(group_scope(root, &b.name).added(ItemKind::Group, &b.name, item));
            }
        }
    }
}

fn diff_resources<'a>(
    out: &mut Vec<Change>,
    group: &Scope<'a>,
    from: &'a [Resource],
    to: &'a [Resource],
) {
    for matched in pair_up(from, to, |r| fold(&r.name)) {
        match matched {
            Matched::Both(a, b) => {
                if a == b {
                    continue;
                }
                let scope = resource_scope(group, &b.name);
                let fields = resource_fields(a, b);
                if !fields.is_empty() {
                    out.push(scope.changed(ItemKind::Resource, &b.name, fields));
                }
                diff_dependencies(out, &scope, &b.name, &a.depends_on, &b.depends_on);
            }
            Matched::Removed(a) => {
                let item = json(&canonical_resource(a));
                out.push(resource_scope(group, &a.name).removed(ItemKind::Resource, &a.name, item));
            }
            Matched::Added(b) => {
                let item = json(&canonical_resource(b));
                out.push(resource_scope(group, &b.name).added(ItemKind::Resource, &b.name, item));
            }
        }
    }
}

/// A dependency as an item of its own, for `before` and `after`.
fn dependency_json(resource: &str, depends_on: &str) -> Value {
    serde_json::json!({ "resource": resource, "depends_on": depends_on })
}

fn diff_dependencies(
    out: &mut Vec<Change>,
    scope: &Scope<'_>,
    owner: &str,
    from: &[String],
    to: &[String],
) {
    for matched in pair_up(from, to, |d| fold(d)) {
        match matched {
            // The same edge, its target spelled in another case.
            Matched::Both(a, b) => {
                if a != b {
                    let fields = vec![FieldChange {
                        field: "depends_on".to_owned(),
                        from: Some(json(a)),
                        to: Some(json(b)),
                    }];
                    let at = scope.enter("depends_on", b);
                    out.push(at.changed(ItemKind::Dependency, b, fields));
                }
            }
            Matched::Removed(a) => {
                let at = scope.enter("depends_on", a);
                out.push(at.removed(ItemKind::Dependency, a, dependency_json(owner, a)));
            }
            Matched::Added(b) => {
                let at = scope.enter("depends_on", b);
                out.push(at.added(ItemKind::Dependency, b, dependency_json(owner, b)));
            }
        }
    }
}

fn diff_shares<'a>(out: &mut Vec<Change>, group: &Scope<'a>, from: &'a [Share], to: &'a [Share]) {
    let mut removed: Vec<&Share> = Vec::new();
    let mut added: Vec<&Share> = Vec::new();
    for matched in pair_up(from, to, |s| fold(&s.name)) {
        match matched {
            Matched::Both(a, b) => diff_share(out, group, a, b, false),
            Matched::Removed(a) => removed.push(a),
            Matched::Added(b) => added.push(b),
        }
    }
    // A share that disappears while another appears on the same folder of the same group was
    // renamed: pairing them keeps its permissions diffed entry by entry instead of wholesale.
    for matched in pair_up(&removed, &added, |s| fold(&s.path)) {
        match matched {
            Matched::Both(a, b) => diff_share(out, group, a, b, true),
            // Its permissions travel inside `before`/`after`, not as changes of their own.
            Matched::Removed(a) => {
                let item = json(&canonical_share(a));
                out.push(share_scope(group, &a.name).removed(ItemKind::Share, &a.name, item));
            }
            Matched::Added(b) => {
                let item = json(&canonical_share(b));
                out.push(share_scope(group, &b.name).added(ItemKind::Share, &b.name, item));
            }
        }
    }
}

fn diff_share<'a>(
    out: &mut Vec<Change>,
    group: &Scope<'a>,
    a: &'a Share,
    b: &'a Share,
    renamed: bool,
) {
    if a == b {
        return;
    }
    let scope = share_scope(group, &b.name);
    let fields = share_fields(a, b);
    if renamed {
        out.push(Change {
            renamed_from: Some(a.name.clone()),
            fields,
            ..scope.change(ItemKind::Share, ChangeOp::Renamed, &b.name)
        });
    } else if !fields.is_empty() {
        out.push(scope.changed(ItemKind::Share, &b.name, fields));
    }
    if a.permissions != b.permissions {
        diff_leaves(out, &scope, &a.permissions, &b.permissions);
    }
}

// Items reported whole are put in canonical order, so that `before` and `after` do not depend on
// the order the reporter listed their children in. Ties (only possible in invalid documents) are
// broken by content for the same reason.

fn canonical_group(group: &Group) -> Group {
    let mut group = group.clone();
    group
        .resources
        .sort_by(|a, b| by_name_then_content(&a.name, a, &b.name, b));
    for resource in &mut group.resources {
        resource.depends_on.sort();
    }
    group
        .shares
        .sort_by(|a, b| by_name_then_content(&a.name, a, &b.name, b));
    for share in &mut group.shares {
        share.permissions.sort();
    }
    group
}

fn by_name_then_content<T: Serialize>(a_name: &str, a: &T, b_name: &str, b: &T) -> Ordering {
    a_name
        .cmp(b_name)
        .then_with(|| json_text(a).cmp(&json_text(b)))
}

fn canonical_resource(resource: &Resource) -> Resource {
    let mut resource = resource.clone();
    resource.depends_on.sort();
    resource
}

fn canonical_share(share: &Share) -> Share {
    let mut share = share.clone();
    share.permissions.sort();
    share
}

/// Collects the differing fields of two matched items.
#[derive(Default)]
struct Fields(Vec<FieldChange>);

impl Fields {
    fn field<T: PartialEq + Serialize + ?Sized>(&mut self, field: &str, from: &T, to: &T) {
        if from != to {
            self.0.push(FieldChange {
                field: field.to_owned(),
                from: Some(json(from)),
                to: Some(json(to)),
            });
        }
    }

    /// One field per differing key, so a changed fact does not drown in the whole map.
    fn map(&mut self, field: &str, from: &Properties, to: &Properties) {
        if from == to {
            return;
        }
        let keys: BTreeSet<&String> = from.keys().chain(to.keys()).collect();
        for key in keys {
            let (a, b) = (from.get(key), to.get(key));
            if a != b {
                self.0.push(FieldChange {
                    field: format!("{field}.{key}"),
                    from: a.cloned(),
                    to: b.cloned(),
                });
            }
        }
    }
}

// The field lists below destructure each item exhaustively: a field added to a type cannot be
// forgotten here, it breaks the build until it is either compared or declared a child item.

impl Leaf for Node {
    const KIND: ItemKind = ItemKind::Node;
    const COLLECTION: &'static str = "nodes";
    type Key = String;

    fn key(&self) -> String {
        fold(&self.name)
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.name)
    }

    fn fields(&self, to: &Self) -> Vec<FieldChange> {
        let Node {
            name,
            address,
            processor: Processor { vendor, model },
            facts,
        } = self;
        let mut f = Fields::default();
        f.field("name", name, &to.name);
        f.field("address", address, &to.address);
        f.field("processor.vendor", vendor, &to.processor.vendor);
        f.field("processor.model", model, &to.processor.model);
        f.map("facts", facts, &to.facts);
        f.0
    }
}

impl Leaf for Network {
    const KIND: ItemKind = ItemKind::Network;
    const COLLECTION: &'static str = "networks";
    type Key = String;

    fn key(&self) -> String {
        fold(&self.name)
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.name)
    }

    fn fields(&self, to: &Self) -> Vec<FieldChange> {
        let Network {
            name,
            role,
            metric,
            subnet,
        } = self;
        let mut f = Fields::default();
        f.field("name", name, &to.name);
        f.field("role", role, &to.role);
        f.field("metric", metric, &to.metric);
        f.field("subnet", subnet, &to.subnet);
        f.0
    }
}

impl Leaf for Disk {
    const KIND: ItemKind = ItemKind::Disk;
    const COLLECTION: &'static str = "disks";
    type Key = String;

    fn key(&self) -> String {
        fold(&self.resource)
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Borrowed(&self.resource)
    }

    fn fields(&self, to: &Self) -> Vec<FieldChange> {
        let Disk {
            resource,
            drive_letter,
            size_bytes,
            free_bytes,
            csv,
        } = self;
        let mut f = Fields::default();
        f.field("resource", resource, &to.resource);
        f.field("drive_letter", drive_letter, &to.drive_letter);
        f.field("size_bytes", size_bytes, &to.size_bytes);
        f.field("free_bytes", free_bytes, &to.free_bytes);
        f.field("csv", csv, &to.csv);
        f.0
    }
}

impl Leaf for Permission {
    const KIND: ItemKind = ItemKind::Permission;
    const COLLECTION: &'static str = "permissions";
    type Key = (String, AceType);

    fn key(&self) -> (String, AceType) {
        (fold(&self.principal), self.ace_type)
    }

    fn name(&self) -> Cow<'_, str> {
        Cow::Owned(format!("{}:{}", self.principal, self.ace_type.as_str()))
    }

    fn fields(&self, to: &Self) -> Vec<FieldChange> {
        // The type is part of the key, so matched entries always share it.
        let Permission {
            principal,
            ace_type: _,
            access,
        } = self;
        let mut f = Fields::default();
        f.field("principal", principal, &to.principal);
        f.field("access", access, &to.access);
        f.0
    }
}

fn group_fields(a: &Group, b: &Group) -> Vec<FieldChange> {
    let Group {
        name,
        owner_node,
        state,
        resources: _,
        shares: _,
    } = a;
    let mut f = Fields::default();
    f.field("name", name, &b.name);
    f.field("owner_node", owner_node, &b.owner_node);
    f.field("state", state, &b.state);
    f.0
}

fn resource_fields(a: &Resource, b: &Resource) -> Vec<FieldChange> {
    let Resource {
        name,
        kind,
        state,
        properties,
        depends_on: _,
    } = a;
    let mut f = Fields::default();
    f.field("name", name, &b.name);
    f.field("kind", kind, &b.kind);
    f.field("state", state, &b.state);
    f.map("properties", properties, &b.properties);
    f.0
}

fn share_fields(a: &Share, b: &Share) -> Vec<FieldChange> {
    let Share {
        name,
        path,
        description,
        permissions: _,
        caching,
        access_based_enumeration,
        continuous_availability,
        encrypt_data,
        user_limit,
    } = a;
    let mut f = Fields::default();
    f.field("name", name, &b.name);
    f.field("path", path, &b.path);
    f.field("description", description, &b.description);
    f.field("caching", caching, &b.caching);
    f.field(
        "access_based_enumeration",
        access_based_enumeration,
        &b.access_based_enumeration,
    );
    f.field(
        "continuous_availability",
        continuous_availability,
        &b.continuous_availability,
    );
    f.field("encrypt_data", encrypt_data, &b.encrypt_data);
    f.field("user_limit", user_limit, &b.user_limit);
    f.0
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::model::inventory::{Access, NetworkRole, ResourceKind, ResourceState};

    fn perm(principal: &str, ace_type: AceType, access: Access) -> Permission {
        Permission {
            principal: principal.to_owned(),
            ace_type,
            access,
        }
    }

    fn share(name: &str, path: &str, permissions: Vec<Permission>) -> Share {
        Share {
            name: name.to_owned(),
            path: path.to_owned(),
            description: String::new(),
            permissions,
            caching: Default::default(),
            access_based_enumeration: false,
            continuous_availability: false,
            encrypt_data: false,
            user_limit: None,
        }
    }

    fn resource(name: &str, kind: ResourceKind, depends_on: &[&str]) -> Resource {
        Resource {
            name: name.to_owned(),
            kind,
            state: ResourceState::Online,
            properties: Properties::new(),
            depends_on: depends_on.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    fn group(name: &str, resources: Vec<Resource>, shares: Vec<Share>) -> Group {
        Group {
            name: name.to_owned(),
            owner_node: Some("N1".to_owned()),
            state: ResourceState::Online,
            resources,
            shares,
        }
    }

    fn node(name: &str) -> Node {
        Node {
            name: name.to_owned(),
            address: format!("{}.corp.example", name.to_lowercase()),
            processor: Processor {
                vendor: "GenuineIntel".to_owned(),
                model: "Xeon Gold 6338".to_owned(),
            },
            facts: Properties::from([
                ("ntlm".to_owned(), json!("v2")),
                ("nic_driver".to_owned(), json!("1.2.3")),
            ]),
        }
    }

    /// A small but complete cluster: two groups, dependencies, nested shares, several ACEs.
    fn base() -> InventoryDocument {
        let mut name = resource(
            "Name: FS1",
            ResourceKind::NetworkName,
            &["IP Address 10.0.1.5"],
        );
        name.properties.insert("Name".to_owned(), json!("FS1"));
        let fs1 = group(
            "FS1",
            vec![
                name,
                resource("IP Address 10.0.1.5", ResourceKind::IpAddress, &[]),
                resource("Cluster Disk 1", ResourceKind::PhysicalDisk, &[]),
                resource(
                    "File Server",
                    ResourceKind::FileServer,
                    &["Name: FS1", "Cluster Disk 1"],
                ),
            ],
            vec![
                share(
                    "Public",
                    r"F:\Public",
                    vec![
                        perm("Everyone", AceType::Allow, Access::Read),
                        perm(r"CORP\Finance", AceType::Allow, Access::Change),
                        perm(r"BUILTIN\Administrators", AceType::Allow, Access::Full),
                    ],
                ),
                share(
                    "Shares",
                    r"F:\Shares",
                    vec![perm("Everyone", AceType::Allow, Access::Read)],
                ),
                share(
                    "Finance",
                    r"F:\Shares\Finance",
                    vec![perm(r"CORP\Finance", AceType::Allow, Access::Full)],
                ),
            ],
        );
        let fs2 = group(
            "FS2",
            vec![resource("Cluster Disk 2", ResourceKind::PhysicalDisk, &[])],
            vec![share(
                "Home",
                r"G:\Home",
                vec![perm(r"CORP\Domain Users", AceType::Allow, Access::Change)],
            )],
        );
        InventoryDocument {
            nodes: vec![node("N1"), node("N2")],
            networks: vec![
                Network {
                    name: "Client".to_owned(),
                    role: NetworkRole::Client,
                    metric: 100,
                    subnet: "10.0.1.0/24".to_owned(),
                },
                Network {
                    name: "Heartbeat".to_owned(),
                    role: NetworkRole::Cluster,
                    metric: 200,
                    subnet: "10.0.2.0/24".to_owned(),
                },
            ],
            disks: vec![Disk {
                resource: "Cluster Disk 1".to_owned(),
                drive_letter: Some("F:".to_owned()),
                size_bytes: 1_000_000,
                free_bytes: 400_000,
                csv: false,
            }],
            groups: vec![fs1, fs2],
        }
    }

    fn group_mut<'a>(doc: &'a mut InventoryDocument, name: &str) -> &'a mut Group {
        doc.groups.iter_mut().find(|g| g.name == name).unwrap()
    }

    fn share_mut<'a>(doc: &'a mut InventoryDocument, group: &str, name: &str) -> &'a mut Share {
        group_mut(doc, group)
            .shares
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap()
    }

    fn resource_mut<'a>(
        doc: &'a mut InventoryDocument,
        group: &str,
        name: &str,
    ) -> &'a mut Resource {
        group_mut(doc, group)
            .resources
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap()
    }

    /// Reverses every list, so nothing is in canonical order any more.
    fn shuffled(mut doc: InventoryDocument) -> InventoryDocument {
        doc.nodes.reverse();
        doc.networks.reverse();
        doc.disks.reverse();
        doc.groups.reverse();
        for g in &mut doc.groups {
            g.resources.reverse();
            for r in &mut g.resources {
                r.depends_on.reverse();
            }
            g.shares.reverse();
            for s in &mut g.shares {
                s.permissions.reverse();
            }
        }
        doc
    }

    fn expect(kind: ItemKind, op: ChangeOp, path: &str, name: &str) -> Change {
        Change {
            kind,
            op,
            path: path.to_owned(),
            name: name.to_owned(),
            group: None,
            resource: None,
            share: None,
            renamed_from: None,
            fields: Vec::new(),
            before: None,
            after: None,
        }
    }

    fn in_group(mut c: Change, group: &str) -> Change {
        c.group = Some(group.to_owned());
        c
    }

    fn in_share(c: Change, group: &str, share: &str) -> Change {
        let mut c = in_group(c, group);
        c.share = Some(share.to_owned());
        c
    }

    fn in_resource(c: Change, group: &str, resource: &str) -> Change {
        let mut c = in_group(c, group);
        c.resource = Some(resource.to_owned());
        c
    }

    fn field(field: &str, from: Value, to: Value) -> FieldChange {
        FieldChange {
            field: field.to_owned(),
            from: Some(from),
            to: Some(to),
        }
    }

    fn with_fields(mut c: Change, fields: Vec<FieldChange>) -> Change {
        c.fields = fields;
        c
    }

    /// Checks the changes and that the summary counts them.
    fn assert_diff(from: &InventoryDocument, to: &InventoryDocument, expected: Vec<Change>) {
        let diff = diff_inventories(from, to);
        assert_eq!(diff.changes, expected);
        assert_eq!(diff.summary, DiffSummary::of(&expected));
    }

    #[test]
    fn identical_documents_have_no_changes() {
        let diff = diff_inventories(&base(), &base());
        assert_eq!(diff, InventoryDiff::default());
        assert!(diff.is_empty());
        assert_eq!(
            diff_inventories(&base(), &shuffled(base())),
            InventoryDiff::default()
        );
    }

    #[test]
    fn permission_added() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public").permissions.push(perm(
            r"CORP\Audit",
            AceType::Allow,
            Access::Read,
        ));
        let mut c = in_share(
            expect(
                ItemKind::Permission,
                ChangeOp::Added,
                r"groups/FS1/shares/Public/permissions/CORP\Audit:allow",
                r"CORP\Audit:allow",
            ),
            "FS1",
            "Public",
        );
        c.after = Some(json!({"principal": r"CORP\Audit", "type": "allow", "access": "read"}));
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn permission_access_changed() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public").permissions[0].access = Access::Full;
        let c = in_share(
            expect(
                ItemKind::Permission,
                ChangeOp::Changed,
                "groups/FS1/shares/Public/permissions/Everyone:allow",
                "Everyone:allow",
            ),
            "FS1",
            "Public",
        );
        let c = with_fields(c, vec![field("access", json!("read"), json!("full"))]);
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn permission_removed() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public")
            .permissions
            .retain(|p| p.principal != r"CORP\Finance");
        let mut c = in_share(
            expect(
                ItemKind::Permission,
                ChangeOp::Removed,
                r"groups/FS1/shares/Public/permissions/CORP\Finance:allow",
                r"CORP\Finance:allow",
            ),
            "FS1",
            "Public",
        );
        c.before = Some(json!({"principal": r"CORP\Finance", "type": "allow", "access": "change"}));
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn deny_entry_added_next_to_allow_of_the_same_principal() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public").permissions.push(perm(
            r"CORP\Finance",
            AceType::Deny,
            Access::Full,
        ));
        let mut c = in_share(
            expect(
                ItemKind::Permission,
                ChangeOp::Added,
                r"groups/FS1/shares/Public/permissions/CORP\Finance:deny",
                r"CORP\Finance:deny",
            ),
            "FS1",
            "Public",
        );
        c.after = Some(json!({"principal": r"CORP\Finance", "type": "deny", "access": "full"}));
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn principal_case_change_is_a_field_change_of_the_entry() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public").permissions[1].principal = r"corp\finance".to_owned();
        let c = in_share(
            expect(
                ItemKind::Permission,
                ChangeOp::Changed,
                r"groups/FS1/shares/Public/permissions/corp\finance:allow",
                r"corp\finance:allow",
            ),
            "FS1",
            "Public",
        );
        let c = with_fields(
            c,
            vec![field(
                "principal",
                json!(r"CORP\Finance"),
                json!(r"corp\finance"),
            )],
        );
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn share_renamed_on_the_same_path() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public").name = "Public2".to_owned();
        let mut c = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Renamed,
                "groups/FS1/shares/Public2",
                "Public2",
            ),
            "FS1",
            "Public2",
        );
        c.renamed_from = Some("Public".to_owned());
        c.fields = vec![field("name", json!("Public"), json!("Public2"))];
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn share_renamed_with_a_permission_change_and_another_field() {
        let mut to = base();
        let s = share_mut(&mut to, "FS1", "Public");
        s.name = "Öffentlich".to_owned();
        s.path = r"f:\public".to_owned();
        s.permissions[0].access = Access::Change;
        let mut rename = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Renamed,
                "groups/FS1/shares/Öffentlich",
                "Öffentlich",
            ),
            "FS1",
            "Öffentlich",
        );
        rename.renamed_from = Some("Public".to_owned());
        rename.fields = vec![
            field("name", json!("Public"), json!("Öffentlich")),
            field("path", json!(r"F:\Public"), json!(r"f:\public")),
        ];
        let p = in_share(
            expect(
                ItemKind::Permission,
                ChangeOp::Changed,
                "groups/FS1/shares/Öffentlich/permissions/Everyone:allow",
                "Everyone:allow",
            ),
            "FS1",
            "Öffentlich",
        );
        let p = with_fields(p, vec![field("access", json!("read"), json!("change"))]);
        assert_diff(&base(), &to, vec![rename, p]);
    }

    #[test]
    fn renames_pair_deterministically_when_several_shares_share_a_path() {
        let mut from = base();
        let fs2 = group_mut(&mut from, "FS2");
        fs2.shares = vec![
            share("B", r"G:\Same", vec![]),
            share("A", r"G:\Same", vec![]),
            share("C", r"G:\Same", vec![]),
        ];
        let mut to = base();
        group_mut(&mut to, "FS2").shares = vec![
            share("Y", r"G:\Same", vec![]),
            share("X", r"G:\Same", vec![]),
        ];
        let renamed = |old: &str, new: &str| {
            let mut c = in_share(
                expect(
                    ItemKind::Share,
                    ChangeOp::Renamed,
                    &format!("groups/FS2/shares/{new}"),
                    new,
                ),
                "FS2",
                new,
            );
            c.renamed_from = Some(old.to_owned());
            c.fields = vec![field("name", json!(old), json!(new))];
            c
        };
        let mut gone = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Removed,
                "groups/FS2/shares/C",
                "C",
            ),
            "FS2",
            "C",
        );
        gone.before = Some(json(&share("C", r"G:\Same", vec![])));
        let expected = vec![gone, renamed("A", "X"), renamed("B", "Y")];
        assert_diff(&from, &to, expected.clone());
        assert_diff(&shuffled(from), &shuffled(to), expected);
    }

    #[test]
    fn share_path_changed_is_a_field_change_not_a_rename() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public").path = r"H:\Public".to_owned();
        let c = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Changed,
                "groups/FS1/shares/Public",
                "Public",
            ),
            "FS1",
            "Public",
        );
        let c = with_fields(
            c,
            vec![field("path", json!(r"F:\Public"), json!(r"H:\Public"))],
        );
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn nested_share_changes_alone() {
        let mut to = base();
        let s = share_mut(&mut to, "FS1", "Finance");
        s.description = "Finance department".to_owned();
        s.access_based_enumeration = true;
        s.permissions[0].access = Access::Change;
        let c = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Changed,
                "groups/FS1/shares/Finance",
                "Finance",
            ),
            "FS1",
            "Finance",
        );
        let c = with_fields(
            c,
            vec![
                field("description", json!(""), json!("Finance department")),
                field("access_based_enumeration", json!(false), json!(true)),
            ],
        );
        let p = in_share(
            expect(
                ItemKind::Permission,
                ChangeOp::Changed,
                r"groups/FS1/shares/Finance/permissions/CORP\Finance:allow",
                r"CORP\Finance:allow",
            ),
            "FS1",
            "Finance",
        );
        let p = with_fields(p, vec![field("access", json!("full"), json!("change"))]);
        assert_diff(&base(), &to, vec![c, p]);
    }

    #[test]
    fn share_with_only_permission_changes_has_no_share_change() {
        let mut to = base();
        let s = share_mut(&mut to, "FS1", "Shares");
        s.permissions.clear();
        s.permissions
            .push(perm("Everyone", AceType::Deny, Access::Read));
        let diff = diff_inventories(&base(), &to);
        let kinds: Vec<_> = diff.changes.iter().map(|c| (c.kind, c.op)).collect();
        assert_eq!(
            kinds,
            vec![
                (ItemKind::Permission, ChangeOp::Removed),
                (ItemKind::Permission, ChangeOp::Added),
            ]
        );
        assert_eq!(
            diff.changes[0].path,
            "groups/FS1/shares/Shares/permissions/Everyone:allow"
        );
        assert_eq!(
            diff.changes[1].path,
            "groups/FS1/shares/Shares/permissions/Everyone:deny"
        );
    }

    #[test]
    fn hidden_and_unicode_shares_added() {
        let mut to = base();
        let data = share(
            "Data$",
            r"F:\Data",
            vec![perm(r"CORP\Domain Admins", AceType::Allow, Access::Full)],
        );
        let fin = share(
            "Финансы",
            r"F:\Отделы\Финансы",
            vec![
                perm(r"CORP\Бухгалтерия", AceType::Allow, Access::Change),
                perm("Everyone", AceType::Deny, Access::Full),
            ],
        );
        // Listed out of order: `after` must still be canonical.
        let mut fin_listed = fin.clone();
        fin_listed.permissions.reverse();
        group_mut(&mut to, "FS1").shares.push(fin_listed);
        group_mut(&mut to, "FS1").shares.push(data.clone());
        let mut fin_sorted = fin;
        fin_sorted.permissions.sort();
        let mut a = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Added,
                "groups/FS1/shares/Data$",
                "Data$",
            ),
            "FS1",
            "Data$",
        );
        a.after = Some(json(&data));
        let mut b = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Added,
                "groups/FS1/shares/Финансы",
                "Финансы",
            ),
            "FS1",
            "Финансы",
        );
        b.after = Some(json(&fin_sorted));
        assert_diff(&base(), &to, vec![a, b]);
    }

    #[test]
    fn share_removed_is_one_change_with_its_permissions_inside() {
        let mut to = base();
        group_mut(&mut to, "FS1")
            .shares
            .retain(|s| s.name != "Public");
        let diff = diff_inventories(&base(), &to);
        assert_eq!(diff.changes.len(), 1);
        let c = &diff.changes[0];
        assert_eq!((c.kind, c.op), (ItemKind::Share, ChangeOp::Removed));
        assert_eq!(c.path, "groups/FS1/shares/Public");
        let mut public = share_mut(&mut base(), "FS1", "Public").clone();
        public.permissions.sort();
        assert_eq!(c.before, Some(json(&public)));
        assert_eq!(c.after, None);
    }

    #[test]
    fn dependency_added_and_removed() {
        let mut to = base();
        resource_mut(&mut to, "FS1", "File Server").depends_on =
            vec!["Name: FS1".to_owned(), "IP Address 10.0.1.5".to_owned()];
        let mut added = in_resource(
            expect(
                ItemKind::Dependency,
                ChangeOp::Added,
                "groups/FS1/resources/File Server/depends_on/IP Address 10.0.1.5",
                "IP Address 10.0.1.5",
            ),
            "FS1",
            "File Server",
        );
        added.after = Some(json!({"resource": "File Server", "depends_on": "IP Address 10.0.1.5"}));
        let mut removed = in_resource(
            expect(
                ItemKind::Dependency,
                ChangeOp::Removed,
                "groups/FS1/resources/File Server/depends_on/Cluster Disk 1",
                "Cluster Disk 1",
            ),
            "FS1",
            "File Server",
        );
        removed.before = Some(json!({"resource": "File Server", "depends_on": "Cluster Disk 1"}));
        assert_diff(&base(), &to, vec![removed, added]);
    }

    #[test]
    fn dependency_target_spelled_in_another_case() {
        let mut to = base();
        resource_mut(&mut to, "FS1", "File Server").depends_on[1] = "CLUSTER DISK 1".to_owned();
        let c = in_resource(
            expect(
                ItemKind::Dependency,
                ChangeOp::Changed,
                "groups/FS1/resources/File Server/depends_on/CLUSTER DISK 1",
                "CLUSTER DISK 1",
            ),
            "FS1",
            "File Server",
        );
        let c = with_fields(
            c,
            vec![field(
                "depends_on",
                json!("Cluster Disk 1"),
                json!("CLUSTER DISK 1"),
            )],
        );
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn resource_property_changed_added_and_removed() {
        let mut to = base();
        let r = resource_mut(&mut to, "FS1", "Name: FS1");
        r.properties.insert("Name".to_owned(), json!("FS1-NEW"));
        r.properties.insert("DnsName".to_owned(), json!(null));
        r.state = ResourceState::Failed;
        let mut from = base();
        resource_mut(&mut from, "FS1", "Name: FS1")
            .properties
            .insert("RegisterAllProvidersIP".to_owned(), json!(1));
        let c = in_resource(
            expect(
                ItemKind::Resource,
                ChangeOp::Changed,
                "groups/FS1/resources/Name: FS1",
                "Name: FS1",
            ),
            "FS1",
            "Name: FS1",
        );
        let c = with_fields(
            c,
            vec![
                field("state", json!("online"), json!("failed")),
                FieldChange {
                    field: "properties.DnsName".to_owned(),
                    from: None,
                    to: Some(json!(null)),
                },
                field("properties.Name", json!("FS1"), json!("FS1-NEW")),
                FieldChange {
                    field: "properties.RegisterAllProvidersIP".to_owned(),
                    from: Some(json!(1)),
                    to: None,
                },
            ],
        );
        assert_diff(&from, &to, vec![c]);
    }

    #[test]
    fn resource_added_and_removed_carry_their_dependencies() {
        let mut to = base();
        let fs1 = group_mut(&mut to, "FS1");
        fs1.resources.retain(|r| r.name != "File Server");
        fs1.resources.push(resource(
            "Print/Scan 1",
            ResourceKind::Generic,
            &["Name: FS1", "Cluster Disk 1"],
        ));
        let diff = diff_inventories(&base(), &to);
        let got: Vec<_> = diff
            .changes
            .iter()
            .map(|c| (c.kind, c.op, c.path.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    ItemKind::Resource,
                    ChangeOp::Removed,
                    "groups/FS1/resources/File Server"
                ),
                (
                    ItemKind::Resource,
                    ChangeOp::Added,
                    "groups/FS1/resources/Print%2FScan 1"
                ),
            ]
        );
        assert_eq!(diff.changes[1].name, "Print/Scan 1");
        assert_eq!(
            diff.changes[1].after.as_ref().unwrap()["depends_on"],
            json!(["Cluster Disk 1", "Name: FS1"])
        );
    }

    #[test]
    fn group_added_and_removed_are_single_changes() {
        let mut to = base();
        to.groups.retain(|g| g.name != "FS2");
        let fs3 = group(
            "FS3",
            vec![
                resource("Name: FS3", ResourceKind::NetworkName, &[]),
                resource("Cluster Disk 3", ResourceKind::PhysicalDisk, &[]),
            ],
            vec![
                share("Zeta", r"H:\Zeta", vec![]),
                share(
                    "Alpha",
                    r"H:\Alpha",
                    vec![
                        perm("Everyone", AceType::Allow, Access::Read),
                        perm(r"CORP\IT", AceType::Allow, Access::Full),
                    ],
                ),
            ],
        );
        to.groups.push(fs3.clone());
        let mut fs3_canonical = InventoryDocument {
            groups: vec![fs3],
            ..Default::default()
        };
        fs3_canonical.canonicalize();
        let mut removed = in_group(
            expect(ItemKind::Group, ChangeOp::Removed, "groups/FS2", "FS2"),
            "FS2",
        );
        removed.before = Some(json(&base().groups[1]));
        let mut added = in_group(
            expect(ItemKind::Group, ChangeOp::Added, "groups/FS3", "FS3"),
            "FS3",
        );
        added.after = Some(json(&fs3_canonical.groups[0]));
        assert_diff(&base(), &to, vec![removed, added]);
    }

    #[test]
    fn group_fields_changed() {
        let mut to = base();
        let g = group_mut(&mut to, "FS2");
        g.owner_node = None;
        g.state = ResourceState::PartialOnline;
        let c = in_group(
            expect(ItemKind::Group, ChangeOp::Changed, "groups/FS2", "FS2"),
            "FS2",
        );
        let c = with_fields(
            c,
            vec![
                field("owner_node", json!("N1"), json!(null)),
                field("state", json!("online"), json!("partial_online")),
            ],
        );
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn node_fact_changed_and_added() {
        let mut to = base();
        to.nodes[1].facts.insert("ntlm".to_owned(), json!("v1"));
        to.nodes[1]
            .facts
            .insert("smb_signing".to_owned(), json!({"required": true}));
        let c = expect(ItemKind::Node, ChangeOp::Changed, "nodes/N2", "N2");
        let c = with_fields(
            c,
            vec![
                field("facts.ntlm", json!("v2"), json!("v1")),
                FieldChange {
                    field: "facts.smb_signing".to_owned(),
                    from: None,
                    to: Some(json!({"required": true})),
                },
            ],
        );
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn network_metric_changed() {
        let mut to = base();
        to.networks[0].metric = 150;
        let c = expect(
            ItemKind::Network,
            ChangeOp::Changed,
            "networks/Client",
            "Client",
        );
        let c = with_fields(c, vec![field("metric", json!(100), json!(150))]);
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn disk_free_bytes_changed() {
        let mut to = base();
        to.disks[0].free_bytes = 123;
        let c = expect(
            ItemKind::Disk,
            ChangeOp::Changed,
            "disks/Cluster Disk 1",
            "Cluster Disk 1",
        );
        let c = with_fields(c, vec![field("free_bytes", json!(400_000), json!(123))]);
        assert_diff(&base(), &to, vec![c]);
    }

    #[test]
    fn case_only_rename_of_a_share_is_a_name_change() {
        let mut to = base();
        share_mut(&mut to, "FS1", "Public").name = "PUBLIC".to_owned();
        let c = in_share(
            expect(
                ItemKind::Share,
                ChangeOp::Changed,
                "groups/FS1/shares/PUBLIC",
                "PUBLIC",
            ),
            "FS1",
            "PUBLIC",
        );
        let c = with_fields(c, vec![field("name", json!("Public"), json!("PUBLIC"))]);
        assert_diff(&base(), &to, vec![c]);
    }

    /// Many kinds of change at once, to check order and counts.
    fn busy_change(doc: &mut InventoryDocument) {
        doc.nodes.push(node("N3"));
        doc.networks.retain(|n| n.name != "Heartbeat");
        doc.disks[0].csv = true;
        group_mut(doc, "FS2").state = ResourceState::Offline;
        share_mut(doc, "FS1", "Public").name = "Pub".to_owned();
        share_mut(doc, "FS1", "Pub").permissions[2].access = Access::Read;
        share_mut(doc, "FS1", "Shares").encrypt_data = true;
        share_mut(doc, "FS2", "Home").permissions.push(perm(
            "Everyone",
            AceType::Allow,
            Access::Read,
        ));
        resource_mut(doc, "FS1", "File Server").depends_on.clear();
        resource_mut(doc, "FS2", "Cluster Disk 2").state = ResourceState::Failed;
    }

    #[test]
    fn order_and_summary() {
        let mut to = base();
        busy_change(&mut to);
        let diff = diff_inventories(&base(), &to);
        let got: Vec<_> = diff
            .changes
            .iter()
            .map(|c| (c.kind, c.op, c.path.as_str()))
            .collect();
        use ChangeOp::*;
        use ItemKind::*;
        assert_eq!(
            got,
            vec![
                (Node, Added, "nodes/N3"),
                (Network, Removed, "networks/Heartbeat"),
                (ItemKind::Disk, Changed, "disks/Cluster Disk 1"),
                (ItemKind::Group, Changed, "groups/FS2"),
                (
                    ItemKind::Resource,
                    Changed,
                    "groups/FS2/resources/Cluster Disk 2"
                ),
                (
                    Dependency,
                    Removed,
                    "groups/FS1/resources/File Server/depends_on/Cluster Disk 1"
                ),
                (
                    Dependency,
                    Removed,
                    "groups/FS1/resources/File Server/depends_on/Name: FS1"
                ),
                (ItemKind::Share, Renamed, "groups/FS1/shares/Pub"),
                (ItemKind::Share, Changed, "groups/FS1/shares/Shares"),
                (
                    ItemKind::Permission,
                    Changed,
                    r"groups/FS1/shares/Pub/permissions/BUILTIN\Administrators:allow"
                ),
                (
                    ItemKind::Permission,
                    Added,
                    "groups/FS2/shares/Home/permissions/Everyone:allow"
                ),
            ]
        );
        assert_eq!(
            diff.summary,
            DiffSummary {
                added: 2,
                removed: 3,
                changed: 5,
                renamed: 1,
            }
        );
        let s = diff.summary;
        assert_eq!(
            s.added + s.removed + s.changed + s.renamed,
            diff.changes.len()
        );
    }

    #[test]
    fn input_order_does_not_matter() {
        let mut to = base();
        busy_change(&mut to);
        let expected = diff_inventories(&base(), &to);
        assert!(!expected.is_empty());
        assert_eq!(diff_inventories(&shuffled(base()), &to), expected);
        assert_eq!(diff_inventories(&base(), &shuffled(to.clone())), expected);
        assert_eq!(diff_inventories(&shuffled(base()), &shuffled(to)), expected);
    }

    #[test]
    fn group_names_with_slashes_are_escaped_in_paths() {
        let mut from = base();
        group_mut(&mut from, "FS2").name = "Sales/50%".to_owned();
        let mut to = from.clone();
        group_mut(&mut to, "Sales/50%").state = ResourceState::Offline;
        let diff = diff_inventories(&from, &to);
        assert_eq!(diff.changes.len(), 1);
        assert_eq!(diff.changes[0].path, "groups/Sales%2F50%25");
        assert_eq!(diff.changes[0].name, "Sales/50%");
        assert_eq!(diff.changes[0].group.as_deref(), Some("Sales/50%"));
    }

    #[test]
    fn diff_round_trips_through_json_keeping_absent_and_null_apart() {
        let mut to = base();
        busy_change(&mut to);
        to.nodes[0]
            .facts
            .insert("gone_soon".to_owned(), json!(null));
        let diff = diff_inventories(&base(), &to);
        let text = serde_json::to_string(&diff).unwrap();
        assert!(
            text.contains(r#"{"field":"facts.gone_soon","to":null}"#),
            "{text}"
        );
        assert!(
            text.contains(r#""kind":"permission","op":"added""#),
            "{text}"
        );
        let back: InventoryDiff = serde_json::from_str(&text).unwrap();
        assert_eq!(back, diff);
    }

    #[test]
    fn openapi_schema_describes_a_change() {
        let schema = serde_json::to_value(<Change as utoipa::PartialSchema>::schema()).unwrap();
        for field in [
            "kind", "op", "path", "name", "group", "share", "fields", "before",
        ] {
            assert!(schema["properties"][field].is_object(), "{field}: {schema}");
        }
    }

    /// 500 groups x 200 shares x 3 permissions, as a large file-server cluster.
    fn large() -> InventoryDocument {
        let groups = (0..500)
            .map(|g| {
                let shares = (0..200)
                    .map(|s| {
                        share(
                            &format!("Share{s:03}$"),
                            &format!(r"F:\Groups\{g}\Share{s}"),
                            vec![
                                perm("Everyone", AceType::Allow, Access::Read),
                                perm(&format!(r"CORP\Team{s}"), AceType::Allow, Access::Change),
                                perm(r"CORP\Guests", AceType::Deny, Access::Full),
                            ],
                        )
                    })
                    .collect();
                let resources = vec![
                    resource(&format!("Name: FS{g}"), ResourceKind::NetworkName, &[]),
                    resource(
                        &format!("File Server {g}"),
                        ResourceKind::FileServer,
                        &[&format!("Name: FS{g}")],
                    ),
                ];
                group(&format!("FS{g:03}"), resources, shares)
            })
            .collect();
        InventoryDocument {
            nodes: vec![node("N1"), node("N2")],
            groups,
            ..Default::default()
        }
    }

    #[test]
    fn large_documents_diff_exactly() {
        let from = large();
        let mut to = large();
        // Touch every share, so no shortcut skips any of the work.
        for g in &mut to.groups {
            for s in &mut g.shares {
                s.permissions[1].access = Access::Full;
            }
        }
        let diff = diff_inventories(&from, &to);
        assert_eq!(diff.summary.changed, 100_000);
        assert_eq!(diff.changes.len(), 100_000);
        assert_eq!(diff_inventories(&shuffled(from.clone()), &to), diff);
        let mut touched = from.clone();
        touched.groups[250].shares[100].description = "x".to_owned();
        assert_eq!(diff_inventories(&from, &touched).changes.len(), 1);
    }
}
