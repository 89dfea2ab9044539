use uuid::Uuid;

use super::*;
use ferry_core::error::ErrorCode;
use ferry_core::model::{Action, Reported, TaskOutcome};

fn share_with(caching: i32, ace: i32) -> pb::Share {
    pb::Share {
        name: "Data".into(),
        path: "F:\\Data".into(),
        caching,
        permissions: vec![
            pb::Permission {
                principal: "Everyone".into(),
                r#type: pb::AceType::Allow as i32,
                access: pb::Access::Read as i32,
            },
            pb::Permission {
                principal: "CORP\\Finance".into(),
                r#type: ace,
                access: pb::Access::Full as i32,
            },
        ],
        ..Default::default()
    }
}

fn document_with(share: pb::Share) -> pb::InventoryDocument {
    pb::InventoryDocument {
        groups: vec![
            pb::Group {
                name: "FS0".into(),
                state: pb::ResourceState::Online as i32,
                ..Default::default()
            },
            pb::Group {
                name: "FS1".into(),
                state: pb::ResourceState::Online as i32,
                shares: vec![share],
                ..Default::default()
            },
        ],
        ..Default::default()
    }
}

#[test]
fn unspecified_enums_name_their_field() {
    let err = inventory_document(document_with(share_with(0, 0))).unwrap_err();
    assert_eq!(err.code, ErrorCode::Validation);
    assert_eq!(
        err.fields[0].field,
        "groups[1].shares[0].permissions[1].type"
    );
    assert!(
        err.message.contains("ACE_TYPE_UNSPECIFIED"),
        "{}",
        err.message
    );

    let err = inventory_document(document_with(share_with(0, 99))).unwrap_err();
    assert_eq!(
        err.fields[0].field,
        "groups[1].shares[0].permissions[1].type"
    );
    assert!(err.message.contains("99"), "{}", err.message);

    let err = new_cluster(&pb::CreateClusterRequest {
        name: "c".into(),
        ..Default::default()
    })
    .unwrap_err();
    assert_eq!(err.fields[0].field, "os");
}

#[test]
fn unspecified_caching_means_manual_like_an_absent_rest_field() {
    let doc = inventory_document(document_with(share_with(0, pb::AceType::Deny as i32))).unwrap();
    assert_eq!(doc.groups[1].shares[0].caching, CachingMode::Manual);
}

#[test]
fn documents_round_trip() {
    let json = serde_json::json!({
        "nodes": [{
            "name": "N1",
            "address": "10.0.0.1",
            "processor": {"vendor": "GenuineIntel", "model": "Xeon"},
            "facts": {
                "ntlm": true,
                "nic": {"driver": "1.2", "queues": 8},
                "list": [1, 2.5, null, "x"],
                "big": -9_007_199_254_740_992i64
            }
        }],
        "networks": [
            {"name": "Client", "role": "live_migration", "metric": 100, "subnet": "10.0.0.0/24"}
        ],
        "disks": [{
            "resource": "Cluster Disk 1",
            "drive_letter": "F:",
            "size_bytes": 10,
            "free_bytes": 5,
            "csv": false
        }],
        "groups": [{
            "name": "FS1",
            "owner_node": "N1",
            "state": "partial_online",
            "resources": [
                {"name": "Disk F:", "kind": "physical_disk", "state": "online",
                 "properties": {"DiskSignature": 1234}, "depends_on": []},
                {"name": "FS", "kind": "file_server", "state": "online",
                 "depends_on": ["Disk F:"]}
            ],
            "shares": [{
                "name": "Data$",
                "path": "F:\\Data",
                "description": "d",
                "permissions": [{"principal": "Everyone", "type": "deny", "access": "change"}],
                "caching": "branch_cache",
                "access_based_enumeration": true,
                "continuous_availability": true,
                "encrypt_data": true,
                "user_limit": 7
            }]
        }]
    });
    let doc: InventoryDocument = serde_json::from_value(json).unwrap();
    let back = inventory_document(pb::InventoryDocument::from(doc.clone())).unwrap();
    assert_eq!(back, doc);
    assert_eq!(
        back.canonical_json(),
        doc.canonical_json(),
        "same hash over both transports"
    );
}

#[test]
fn values_must_be_json() {
    let mut facts = prost_types::Struct::default();
    facts.fields.insert(
        "bad".into(),
        prost_types::Value {
            kind: Some(Kind::NumberValue(f64::NAN)),
        },
    );
    facts
        .fields
        .insert("empty".into(), prost_types::Value { kind: None });
    let doc = pb::InventoryDocument {
        nodes: vec![pb::Node {
            name: "N1".into(),
            facts: Some(facts),
            ..Default::default()
        }],
        ..Default::default()
    };
    let err = inventory_document(doc).unwrap_err();
    // BTreeMap order: `bad` is met first.
    assert_eq!(err.fields[0].field, "nodes[0].facts.bad");
}

#[test]
fn leap_seconds_stay_valid_timestamps() {
    let at = DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap();
    assert_eq!(timestamp(at).nanos, 999_999_999);
}

#[test]
fn actions_round_trip() {
    let name = |s: &str| s.to_owned();
    let actions = [
        Action::SkeletonCopy {
            source: name("D:\\Data"),
            destination: name("\\\\interim\\F$"),
            depth: 3,
            log_path: name("C:\\skeleton.log"),
        },
        Action::ShareScan { group: name("FS1") },
        Action::ListGroups {},
        Action::OfflineGroup { group: name("FS1") },
        Action::OnlineGroup { group: name("FS1") },
        Action::MigrateGroup {
            source_cluster: name("FS-OLD"),
            group: name("FS1"),
        },
        Action::AddDiskResource {
            group: name("FS1"),
            disk: name("Cluster Disk 2"),
            drive_letter: name("F:"),
        },
        Action::RemoveResource {
            group: name("FS1"),
            resource: name("Disk F:"),
        },
        Action::SetDependency {
            group: name("FS1"),
            resource: name("FS"),
            depends_on: vec![name("Disk F:"), name("Name")],
        },
        Action::AssignDriveLetter {
            disk: name("Cluster Disk 2"),
            drive_letter: name("F:"),
        },
        Action::GatherFacts {},
        Action::Echo {
            text: name("hi"),
            sleep_ms: 5,
        },
        Action::ReadInventory {},
        Action::ReadStorage {
            disks: vec![name("Cluster Disk 2")],
            drive_letters: vec![name("F:")],
        },
        Action::PrepareDisk {
            drive_letter: name("F:"),
        },
        Action::ReplaceDiskResource {
            group: name("FS1"),
            disk: name("Cluster Disk 3"),
            drive_letter: name("F:"),
        },
        Action::RemoveGroup { group: name("FS1") },
    ];
    for a in actions {
        assert_eq!(action(Some(a.clone().into()), "action").unwrap(), a);
    }
    for missing in [None, Some(pb::Action { kind: None })] {
        let err = action(missing, "action").unwrap_err();
        assert_eq!(err.fields[0].field, "action");
    }
}

#[test]
fn agent_reports_are_checked() {
    let task = pb::TaskRef {
        task_id: Uuid::now_v7().to_string(),
        attempt: 1,
        generation: 2,
    };
    let result = |outcome| pb::TaskResult {
        task: Some(task.clone()),
        outcome,
        final_progress: None,
    };
    let (parsed, outcome, progress) = task_result(result(Some(
        pb::task_result::Outcome::Succeeded(pb::Succeeded {
            report: Some(pb::succeeded::Report::Echo(pb::EchoReport {
                text: "a".into(),
                slept_ms: 1,
            })),
        }),
    )))
    .unwrap();
    assert_eq!((parsed.attempt, parsed.generation), (1, 2));
    assert_eq!(progress, None);
    assert_eq!(
        outcome,
        Reported::Outcome(TaskOutcome::Succeeded(
            serde_json::json!({"text": "a", "slept_ms": 1})
        ))
    );
    // A report kind from a newer agent decodes as an empty oneof.
    let (_, outcome, _) = task_result(result(Some(pb::task_result::Outcome::Succeeded(
        pb::Succeeded { report: None },
    ))))
    .unwrap();
    assert!(
        matches!(&outcome, Reported::Outcome(TaskOutcome::Failed(e)) if e.kind == "bad_result"
            && !e.retryable && e.message.contains("report: must be a report")),
        "{outcome:?}"
    );
    assert_eq!(
        task_result(result(None)).unwrap_err().fields[0].field,
        "outcome"
    );
    let bad = pb::TaskResult {
        task: Some(pb::TaskRef {
            task_id: "nope".into(),
            ..task.clone()
        }),
        outcome: None,
        final_progress: None,
    };
    assert_eq!(
        task_result(bad).unwrap_err().fields[0].field,
        "task.task_id"
    );
}

#[test]
fn empty_page_fields_mean_defaults() {
    assert_eq!(page(0, String::new()), PageParams::default());
    assert_eq!(
        page(5, "abc".into()),
        PageParams {
            limit: Some(5),
            cursor: Some("abc".into())
        }
    );
}
