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

fn resource_mut<'a>(doc: &'a mut InventoryDocument, group: &str, name: &str) -> &'a mut Resource {
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
    share_mut(doc, "FS2", "Home")
        .permissions
        .push(perm("Everyone", AceType::Allow, Access::Read));
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
