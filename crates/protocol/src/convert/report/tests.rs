use prost::Message;
use serde_json::json;

use super::*;
use ferry_core::model::{
    Access, AceType, CachingMode, Disk, Group, NetworkRole, OsGeneration, Permission, Resource,
    ResourceKind, ResourceState, Share,
};

fn action(value: serde_json::Value) -> Action {
    serde_json::from_value(value).unwrap()
}

/// The path of a report from an executor to `GET /v1/tasks/{id}`: the executor's JSON, read
/// as the report of `action`, encoded, decoded on the server and written back as JSON, must
/// be exactly what the executor's struct serializes to.
fn round_trip(action: Action, report: TaskReport, expected: serde_json::Value) {
    assert_eq!(
        TaskReport::from_json(&action, expected.clone()).unwrap(),
        report,
        "{} report read from its JSON",
        action.kind()
    );
    let message = report_to_pb(&action, expected.clone()).unwrap();
    assert_eq!(message, Report::from(report.clone()));
    let bytes = pb::Succeeded {
        report: Some(message),
    }
    .encode_to_vec();
    let decoded = pb::Succeeded::decode(bytes.as_slice()).unwrap();
    assert_eq!(report_json(decoded).unwrap(), expected, "{}", action.kind());
}

fn share() -> Share {
    Share {
        name: "Data$".into(),
        path: "F:\\Shares\\Data".into(),
        description: "hidden".into(),
        permissions: vec![
            Permission {
                principal: "CORP\\Finance".into(),
                ace_type: AceType::Allow,
                access: Access::Change,
            },
            Permission {
                principal: "Everyone".into(),
                ace_type: AceType::Deny,
                access: Access::Full,
            },
        ],
        caching: CachingMode::None,
        access_based_enumeration: true,
        continuous_availability: false,
        encrypt_data: true,
        user_limit: Some(20),
    }
}

fn resource() -> Resource {
    Resource {
        name: "Disk F:".into(),
        kind: ResourceKind::PhysicalDisk,
        state: ResourceState::Offline,
        properties: [
            ("disk".to_string(), json!("Cluster Disk 2")),
            ("signature".to_string(), json!(3_735_928_559_u64)),
            ("drive_letter".to_string(), json!("F:")),
            ("ratio".to_string(), json!(0.25)),
            ("flags".to_string(), json!([true, null, {"n": -3}])),
        ]
        .into_iter()
        .collect(),
        depends_on: vec!["Name".into(), "IP".into()],
    }
}

fn disk(letter: Option<&str>) -> Disk {
    Disk {
        resource: "Cluster Disk 2".into(),
        drive_letter: letter.map(Into::into),
        size_bytes: 1 << 40,
        free_bytes: 1 << 30,
        csv: letter.is_none(),
    }
}

#[test]
fn skeleton_reports_round_trip() {
    let report = SkeletonReport {
        dirs_created: 12,
        dirs_existing: 3,
        skipped_links: 2,
        files_skipped: 40,
        xattrs_copied: 7,
        xattrs_unsupported: 1,
        errors: vec!["a/b: open: permission denied".into()],
        error_count: 0,
        verification: Verification {
            checked: 15,
            missing: vec![],
            extra: vec!["extra/dir".into()],
            passed: true,
            missing_count: 0,
            extra_count: 1,
            errors: vec![],
            error_count: 0,
        },
        elapsed_ms: 1234,
    };
    let expected = serde_json::to_value(&report).unwrap();
    round_trip(
        action(
            json!({"action": "skeleton_copy", "source": "/s", "destination": "/d",
            "depth": 2, "log_path": ""}),
        ),
        TaskReport::Skeleton(report),
        expected,
    );
}

#[test]
fn share_scan_reports_round_trip() {
    let report = ShareScanReport {
        group: "FS1".into(),
        shares: vec![
            ScannedShare {
                share: share(),
                acl: Some(AclSummary {
                    path: "/sim/disks/2/Shares/Data".into(),
                    uid: 1000,
                    gid: 100,
                    mode: 0o755,
                    posix_acl_entries: Some(5),
                }),
                acl_error: None,
            },
            ScannedShare {
                share: Share {
                    user_limit: None,
                    permissions: vec![],
                    ..share()
                },
                acl: None,
                acl_error: Some("no disk of FS-OLD has drive G:".into()),
            },
        ],
        resources: vec![
            ScannedResource {
                name: "FS1 Network Name".into(),
                kind: ResourceKind::NetworkName,
                state: ResourceState::Online,
            },
            ScannedResource {
                name: "Cluster Disk 2".into(),
                kind: ResourceKind::PhysicalDisk,
                state: ResourceState::Failed,
            },
        ],
    };
    let expected = serde_json::to_value(&report).unwrap();
    assert_eq!(expected["resources"][0]["kind"], "network_name");
    assert_eq!(expected["resources"][0]["state"], "online");
    round_trip(
        action(json!({"action": "share_scan", "group": "FS1"})),
        TaskReport::ShareScan(report),
        expected,
    );
    // A scan of an agent that predates `resources` still reads.
    let old = json!({"group": "FS1", "shares": []});
    let TaskReport::ShareScan(read) = TaskReport::from_json(
        &action(json!({"action": "share_scan", "group": "FS1"})),
        old,
    )
    .unwrap() else {
        panic!("a share scan is read as a share scan report");
    };
    assert!(read.resources.is_empty());
}

#[test]
fn inventories_round_trip() {
    let document = InventoryDocument {
        nodes: vec![ferry_core::model::Node {
            name: "MID-n1".into(),
            address: "10.0.0.11".into(),
            processor: Processor {
                vendor: "GenuineIntel".into(),
                model: "Xeon".into(),
            },
            facts: [("ntlm_enabled".to_string(), json!(true))]
                .into_iter()
                .collect(),
        }],
        networks: vec![ferry_core::model::Network {
            name: "Public".into(),
            role: NetworkRole::Client,
            metric: 1000,
            subnet: "10.0.0.0/24".into(),
        }],
        disks: vec![disk(Some("F:")), disk(None)],
        groups: vec![Group {
            name: "FS1".into(),
            owner_node: Some("MID-n1".into()),
            state: ResourceState::Offline,
            resources: vec![resource()],
            shares: vec![share()],
        }],
    };
    let expected = serde_json::to_value(&document).unwrap();
    round_trip(
        action(json!({"action": "read_inventory"})),
        TaskReport::Inventory(document.clone()),
        expected,
    );
    // The server keeps an inventory typed; any other report arrives as its JSON.
    let message = pb::Succeeded {
        report: Some(Report::from(TaskReport::Inventory(document.clone()))),
    };
    assert_eq!(
        read_report(message).unwrap(),
        Reported::Inventory(Box::new(document))
    );
    let echo = pb::Succeeded {
        report: Some(Report::Echo(pb::EchoReport {
            text: "a".into(),
            slept_ms: 2,
        })),
    };
    assert_eq!(
        read_report(echo).unwrap(),
        Reported::Outcome(TaskOutcome::Succeeded(json!({"text": "a", "slept_ms": 2})))
    );
    assert!(read_report(pb::Succeeded { report: None }).is_err());
    round_trip(
        action(json!({"action": "read_inventory"})),
        TaskReport::Inventory(InventoryDocument::default()),
        serde_json::to_value(InventoryDocument::default()).unwrap(),
    );
}

#[test]
fn prepared_disks_round_trip() {
    let expected = serde_json::to_value(disk(Some("F:"))).unwrap();
    assert_eq!(expected["resource"], "Cluster Disk 2");
    round_trip(
        action(json!({"action": "prepare_disk", "drive_letter": "F:"})),
        TaskReport::Disk(disk(Some("F:"))),
        expected,
    );
}

#[test]
fn disk_replacements_round_trip() {
    let action = action(json!({"action": "replace_disk_resource", "group": "FS1",
        "disk": "Cluster Disk 3", "drive_letter": "F:"}));
    let swapped = DiskReplacement {
        resource: "Cluster Disk 3".into(),
        removed: vec!["Cluster Disk 1 (1)".into()],
        repointed: vec!["FS1 File Server".into(), "FS1 Share01".into()],
    };
    round_trip(
        action.clone(),
        TaskReport::DiskReplacement(swapped),
        json!({"resource": "Cluster Disk 3", "removed": ["Cluster Disk 1 (1)"],
            "repointed": ["FS1 File Server", "FS1 Share01"]}),
    );
    // A second run: nothing removed, nothing re-pointed.
    round_trip(
        action,
        TaskReport::DiskReplacement(DiskReplacement {
            resource: "Cluster Disk 3".into(),
            ..DiskReplacement::default()
        }),
        json!({"resource": "Cluster Disk 3", "removed": [], "repointed": []}),
    );
}

#[test]
fn group_removals_round_trip() {
    for removed in [true, false] {
        round_trip(
            action(json!({"action": "remove_group", "group": "FS1"})),
            TaskReport::GroupRemoved(GroupRemovedReport { removed }),
            json!({"removed": removed}),
        );
    }
}

#[test]
fn group_lists_round_trip() {
    let groups = vec![
        Group {
            name: "FS1".into(),
            owner_node: Some("N1".into()),
            state: ResourceState::Online,
            resources: vec![resource()],
            shares: vec![share()],
        },
        Group {
            name: "FS2".into(),
            owner_node: None,
            state: ResourceState::PartialOnline,
            resources: vec![],
            shares: vec![],
        },
    ];
    let expected = serde_json::to_value(&groups).unwrap();
    round_trip(
        action(json!({"action": "list_groups"})),
        TaskReport::Groups(groups),
        expected,
    );
    // An empty cluster is still a list, not a missing report.
    round_trip(
        action(json!({"action": "list_groups"})),
        TaskReport::Groups(vec![]),
        json!([]),
    );
}

#[test]
fn group_outcomes_round_trip() {
    let outcome = GroupOutcome {
        group: "FS1".into(),
        owner_node: Some("N2".into()),
        state: ResourceState::Online,
        resources: vec![
            ResourceOutcome {
                resource: "Name".into(),
                kind: ResourceKind::NetworkName,
                state: ResourceState::Online,
                changed: true,
                error: None,
            },
            // Not what a success carries today, but the message must not lose it.
            ResourceOutcome {
                resource: "IP".into(),
                kind: ResourceKind::IpAddress,
                state: ResourceState::Failed,
                changed: false,
                error: Some(ResourceError {
                    kind: ErrorKind::Transient,
                    message: "Kerberos first online".into(),
                }),
            },
        ],
    };
    let expected = serde_json::to_value(&outcome).unwrap();
    for kind in ["offline_group", "online_group"] {
        round_trip(
            action(json!({"action": kind, "group": "FS1"})),
            TaskReport::GroupOutcome(outcome.clone()),
            expected.clone(),
        );
    }
}

#[test]
fn migration_reports_round_trip() {
    let report = MigrationReport {
        group: "FS1".into(),
        source_cluster: "FS-OLD".into(),
        source_os: Some(OsGeneration::Ws2008r2),
        target_os: None,
        already_present: false,
        resources: vec![
            ResourceMigration {
                resource: "Name".into(),
                kind: ResourceKind::NetworkName,
                status: MigrationStatus::Migrated,
                target_name: Some("Name (1)".into()),
                reason: None,
            },
            ResourceMigration {
                resource: "Generic".into(),
                kind: ResourceKind::Generic,
                status: MigrationStatus::Lost,
                target_name: None,
                reason: Some("generic resources do not migrate".into()),
            },
        ],
        shares_migrated: vec!["Data$".into()],
        shares_lost: vec!["Old".into()],
    };
    let expected = serde_json::to_value(&report).unwrap();
    round_trip(
        action(json!({"action": "migrate_group", "source_cluster": "FS-OLD", "group": "FS1"})),
        TaskReport::Migration(report),
        expected,
    );
}

#[test]
fn resources_round_trip() {
    let expected = serde_json::to_value(resource()).unwrap();
    round_trip(
        action(json!({"action": "add_disk_resource", "group": "FS1",
            "disk": "Cluster Disk 2", "drive_letter": "F:"})),
        TaskReport::Resource(resource()),
        expected.clone(),
    );
    round_trip(
        action(
            json!({"action": "set_dependency", "group": "FS1", "resource": "Disk F:",
            "depends_on": ["Name"]}),
        ),
        TaskReport::Resource(resource()),
        expected,
    );
}

#[test]
fn removals_round_trip() {
    for removed in [true, false] {
        let report = RemovedReport {
            group: "FS1".into(),
            resource: "Disk F:".into(),
            removed,
        };
        round_trip(
            action(json!({"action": "remove_resource", "group": "FS1",
                "resource": "Disk F:"})),
            TaskReport::Removed(report),
            json!({"group": "FS1", "resource": "Disk F:", "removed": removed}),
        );
    }
}

#[test]
fn disks_round_trip() {
    for letter in [Some("F:"), None] {
        let expected = serde_json::to_value(disk(letter)).unwrap();
        round_trip(
            action(
                json!({"action": "assign_drive_letter", "disk": "Cluster Disk 2",
                "drive_letter": "F:"}),
            ),
            TaskReport::Disk(disk(letter)),
            expected,
        );
    }
}

#[test]
fn config_facts_round_trip() {
    let facts = ConfigFacts {
        cluster: Some("FS-NEW".into()),
        os: Some(OsGeneration::Ws2022),
        networks: vec![NetworkFacts {
            name: "Cluster".into(),
            role: NetworkRole::Csv,
            metric: 900,
            auto_metric: Some(false),
            subnet: "10.0.2.0/24".into(),
            ipsec_enabled: None,
            client_for_microsoft_networks: Some(true),
            file_and_printer_sharing: Some(false),
        }],
        nodes: vec![NodeFacts {
            name: "N1".into(),
            processor: Processor {
                vendor: "GenuineIntel".into(),
                model: "Xeon".into(),
            },
            virtual_switches: vec!["vSwitch".into()],
            ntlm_enabled: None,
            hbas: vec![HbaFacts {
                model: "QLE2692".into(),
                driver_version: "9.4".into(),
                firmware_version: "8.8".into(),
            }],
            processor_compatibility: Some(false),
        }],
        csv_volumes: vec![CsvVolumeFacts {
            name: "Volume1".into(),
            path: "C:\\ClusterStorage\\Volume1".into(),
            size_bytes: 1 << 40,
            free_bytes: 0,
        }],
        quorum: Some(QuorumFacts {
            quorum_type: QuorumType::NodeAndDiskMajority,
            node_count: 3,
        }),
        live_migration_qos: Some(true),
    };
    let gather = action(json!({"action": "gather_facts"}));
    let expected = serde_json::to_value(&facts).unwrap();
    round_trip(gather.clone(), TaskReport::Facts(facts), expected);
    // A driver that could tell nothing.
    let unknown = ConfigFacts::default();
    let expected = serde_json::to_value(&unknown).unwrap();
    round_trip(gather, TaskReport::Facts(unknown), expected);
}

#[test]
fn echoes_round_trip() {
    let report = EchoReport {
        text: "hi".into(),
        slept_ms: 5,
    };
    round_trip(
        action(json!({"action": "echo", "text": "hi", "sleep_ms": 5})),
        TaskReport::Echo(report),
        json!({"text": "hi", "slept_ms": 5}),
    );
}

#[test]
fn a_report_that_does_not_fit_its_action_fails_the_task() {
    let err = report_to_pb(
        &action(json!({"action": "list_groups"})),
        json!({"text": "hi", "slept_ms": 5}),
    )
    .unwrap_err();
    assert_eq!(err.kind, "bad_result");
    assert!(!err.retryable);
    assert!(err.message.contains("not a list_groups report"), "{err:?}");
}

#[test]
fn unreadable_reports_name_the_field_at_fault() {
    assert_eq!(
        report_json(pb::Succeeded { report: None }).unwrap_err(),
        "report: must be a report this server knows"
    );
    let mut outcome = pb::GroupOutcome::from(GroupOutcome {
        group: "FS1".into(),
        owner_node: None,
        state: ResourceState::Online,
        resources: vec![ResourceOutcome {
            resource: "Name".into(),
            kind: ResourceKind::NetworkName,
            state: ResourceState::Online,
            changed: true,
            error: None,
        }],
    });
    outcome.resources[0].kind = 99;
    let why = report_json(pb::Succeeded {
        report: Some(Report::GroupOutcome(outcome)),
    })
    .unwrap_err();
    assert!(
        why.starts_with("report.group_outcome.resources[0].kind: 99 is not a known"),
        "{why}"
    );
    let facts = pb::ConfigFacts {
        quorum: Some(pb::QuorumFacts {
            quorum_type: pb::QuorumType::Unspecified as i32,
            node_count: 1,
        }),
        ..Default::default()
    };
    let why = report_json(pb::Succeeded {
        report: Some(Report::Facts(facts)),
    })
    .unwrap_err();
    assert!(
        why.starts_with("report.facts.quorum.quorum_type: must be set"),
        "{why}"
    );
    let scan = pb::ShareScanReport {
        group: "FS1".into(),
        shares: vec![pb::ScannedShare::default()],
        resources: vec![],
    };
    let why = report_json(pb::Succeeded {
        report: Some(Report::ShareScan(scan)),
    })
    .unwrap_err();
    assert_eq!(why, "report.share_scan.shares[0].share: is required");
}
