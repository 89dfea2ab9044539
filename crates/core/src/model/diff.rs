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

    /// The changes counted by groups, shares, permission entries and the rest.
    pub fn change_summary(&self) -> ChangeSummary {
        ChangeSummary::of(&self.changes)
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
            summary.count(change.op);
        }
        summary
    }

    fn count(&mut self, op: ChangeOp) {
        match op {
            ChangeOp::Added => self.added += 1,
            ChangeOp::Removed => self.removed += 1,
            ChangeOp::Changed => self.changed += 1,
            ChangeOp::Renamed => self.renamed += 1,
        }
    }
}

/// A diff counted by what a person looks at first: groups, shares and permission entries, and
/// everything else (nodes, networks, disks, resources, dependencies) together. A whole added or
/// removed group or share counts once, as in the diff itself, not once per child.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChangeSummary {
    pub groups: DiffSummary,
    pub shares: DiffSummary,
    pub permissions: DiffSummary,
    pub other: DiffSummary,
}

impl ChangeSummary {
    pub fn of(changes: &[Change]) -> Self {
        let mut summary = Self::default();
        for change in changes {
            let counts = match change.kind {
                ItemKind::Group => &mut summary.groups,
                ItemKind::Share => &mut summary.shares,
                ItemKind::Permission => &mut summary.permissions,
                _ => &mut summary.other,
            };
            counts.count(change.op);
        }
        summary
    }

    /// One line, e.g. `groups +1 -0 ~0, shares +3 -0 ~1, permission entries +5 -2 ~0, other
    /// +0 -0 ~0` (renamed shares count as changed here).
    pub fn line(&self) -> String {
        let part = |name: &str, c: &DiffSummary| {
            format!(
                "{name} +{} -{} ~{}",
                c.added,
                c.removed,
                c.changed + c.renamed
            )
        };
        [
            part("groups", &self.groups),
            part("shares", &self.shares),
            part("permission entries", &self.permissions),
            part("other", &self.other),
        ]
        .join(", ")
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
mod tests;
