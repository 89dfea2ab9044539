//! Typed task reports: the executors' serde reports <-> the `Succeeded.report` messages.
//!
//! The agent reads its executor's JSON as the report of the task's action
//! ([`TaskReport::from_json`]) and sends the message (`Report::from`); the server reads the
//! message back ([`report_json`]) into the same JSON. Both directions go through [`TaskReport`],
//! whose variants are the executors' own structs, so the JSON shape has one definition: theirs.

use super::{Bad, each, parse_network_role, parse_os, parse_resource_kind, parse_resource_state};
use crate::pb;
use crate::pb::succeeded::Report;
use crate::report::TaskReport;
use crate::report::actions::{
    AclSummary, EchoReport, GroupRemovedReport, RemovedReport, ScannedResource, ScannedShare,
    ShareScanReport,
};
use crate::report::driver::{
    DiskReplacement, ErrorKind, GroupOutcome, MigrationReport, MigrationStatus, ResourceError,
    ResourceMigration, ResourceOutcome,
};
use crate::report::skeleton::{SkeletonReport, Verification};
use ferry_core::model::facts::{
    ConfigFacts, CsvVolumeFacts, HbaFacts, NetworkFacts, NodeFacts, QuorumFacts, QuorumType,
};
use ferry_core::model::{Action, InventoryDocument, Processor, TaskError};

enum_pair!(ErrorKind => DriverErrorKind, parse_driver_error_kind {
    NotFound => NotFound,
    Conflict => Conflict,
    Transient => Transient,
    Failed => Failed,
    Timeout => Timeout,
    Unsupported => Unsupported,
});

enum_pair!(MigrationStatus => MigrationStatus, parse_migration_status {
    Migrated => Migrated,
    Lost => Lost,
});

enum_pair!(QuorumType => QuorumType, parse_quorum_type {
    NodeMajority => NodeMajority,
    NodeAndDiskMajority => NodeAndDiskMajority,
    NodeAndFileShareMajority => NodeAndFileShareMajority,
    DiskOnly => DiskOnly,
    Majority => Majority,
    Unknown => Unknown,
});

/// The agent's side: an executor's JSON report as the message for `action`. A report that does not
/// fit its action is the executor's bug; it fails the task rather than sending something the
/// server would misread.
pub fn report_to_pb(action: &Action, value: serde_json::Value) -> Result<Report, TaskError> {
    TaskReport::from_json(action, value)
        .map(Report::from)
        .map_err(|e| TaskError {
            kind: "bad_result".into(),
            message: format!(
                "the executor's report is not a {} report: {e}",
                action.kind()
            ),
            retryable: false,
        })
}

/// The server's side: the JSON to store for a success, or why it cannot be read, naming the field
/// at fault. An empty `report` is a kind this server does not know (or none at all).
pub fn report_json(succeeded: pb::Succeeded) -> Result<serde_json::Value, String> {
    let report = succeeded
        .report
        .ok_or_else(|| Bad::new("must be a report this server knows").field("report"))
        .and_then(|report| task_report(report).map_err(|bad| bad.field("report")))
        .map_err(|bad| format!("{}: {}", bad.path(), bad.message))?;
    report
        .to_json()
        .map_err(|e| format!("report: cannot be written as JSON: {e}"))
}

// ---- domain to protobuf ---------------------------------------------------------------------------

impl From<TaskReport> for Report {
    fn from(report: TaskReport) -> Self {
        match report {
            TaskReport::Skeleton(r) => Report::Skeleton(r.into()),
            TaskReport::ShareScan(r) => Report::ShareScan(r.into()),
            TaskReport::Groups(groups) => Report::Groups(pb::GroupList {
                groups: groups.into_iter().map(Into::into).collect(),
            }),
            TaskReport::GroupOutcome(r) => Report::GroupOutcome(r.into()),
            TaskReport::Migration(r) => Report::Migration(r.into()),
            TaskReport::Resource(r) => Report::Resource(r.into()),
            TaskReport::Removed(r) => Report::Removed(pb::ResourceRemoved {
                group: r.group,
                resource: r.resource,
                removed: r.removed,
            }),
            TaskReport::Disk(r) => Report::Disk(r.into()),
            TaskReport::Facts(r) => Report::Facts(r.into()),
            TaskReport::Echo(r) => Report::Echo(pb::EchoReport {
                text: r.text,
                slept_ms: r.slept_ms,
            }),
            TaskReport::Inventory(r) => Report::Inventory(r.into()),
            TaskReport::DiskReplacement(r) => Report::DiskReplacement(pb::DiskReplacement {
                resource: r.resource,
                removed: r.removed,
                repointed: r.repointed,
            }),
            TaskReport::GroupRemoved(r) => {
                Report::GroupRemoved(pb::GroupRemoved { removed: r.removed })
            }
        }
    }
}

impl From<SkeletonReport> for pb::SkeletonReport {
    fn from(r: SkeletonReport) -> Self {
        let v = r.verification;
        pb::SkeletonReport {
            dirs_created: r.dirs_created,
            dirs_existing: r.dirs_existing,
            skipped_links: r.skipped_links,
            files_skipped: r.files_skipped,
            xattrs_copied: r.xattrs_copied,
            xattrs_unsupported: r.xattrs_unsupported,
            errors: r.errors,
            error_count: r.error_count,
            verification: Some(pb::SkeletonVerification {
                checked: v.checked,
                missing: v.missing,
                extra: v.extra,
                passed: v.passed,
                missing_count: v.missing_count,
                extra_count: v.extra_count,
                errors: v.errors,
                error_count: v.error_count,
            }),
            elapsed_ms: r.elapsed_ms,
        }
    }
}

impl From<ShareScanReport> for pb::ShareScanReport {
    fn from(r: ShareScanReport) -> Self {
        pb::ShareScanReport {
            group: r.group,
            shares: r
                .shares
                .into_iter()
                .map(|s| pb::ScannedShare {
                    share: Some(s.share.into()),
                    acl: s.acl.map(|a| pb::AclSummary {
                        path: a.path,
                        uid: a.uid,
                        gid: a.gid,
                        mode: a.mode,
                        posix_acl_entries: a.posix_acl_entries,
                    }),
                    acl_error: s.acl_error,
                })
                .collect(),
            resources: r
                .resources
                .into_iter()
                .map(|r| pb::ScannedResource {
                    name: r.name,
                    kind: pb::ResourceKind::from(r.kind) as i32,
                    state: pb::ResourceState::from(r.state) as i32,
                })
                .collect(),
        }
    }
}

impl From<GroupOutcome> for pb::GroupOutcome {
    fn from(o: GroupOutcome) -> Self {
        pb::GroupOutcome {
            group: o.group,
            owner_node: o.owner_node,
            state: pb::ResourceState::from(o.state) as i32,
            resources: o
                .resources
                .into_iter()
                .map(|r| pb::ResourceOutcome {
                    resource: r.resource,
                    kind: pb::ResourceKind::from(r.kind) as i32,
                    state: pb::ResourceState::from(r.state) as i32,
                    changed: r.changed,
                    error: r.error.map(|e| pb::ResourceError {
                        kind: pb::DriverErrorKind::from(e.kind) as i32,
                        message: e.message,
                    }),
                })
                .collect(),
        }
    }
}

impl From<MigrationReport> for pb::MigrationReport {
    fn from(r: MigrationReport) -> Self {
        pb::MigrationReport {
            group: r.group,
            source_cluster: r.source_cluster,
            source_os: r.source_os.map(|os| pb::OsGeneration::from(os) as i32),
            target_os: r.target_os.map(|os| pb::OsGeneration::from(os) as i32),
            already_present: r.already_present,
            resources: r
                .resources
                .into_iter()
                .map(|m| pb::ResourceMigration {
                    resource: m.resource,
                    kind: pb::ResourceKind::from(m.kind) as i32,
                    status: pb::MigrationStatus::from(m.status) as i32,
                    target_name: m.target_name,
                    reason: m.reason,
                })
                .collect(),
            shares_migrated: r.shares_migrated,
            shares_lost: r.shares_lost,
        }
    }
}

impl From<ConfigFacts> for pb::ConfigFacts {
    fn from(f: ConfigFacts) -> Self {
        pb::ConfigFacts {
            cluster: f.cluster,
            os: f.os.map(|os| pb::OsGeneration::from(os) as i32),
            networks: f
                .networks
                .into_iter()
                .map(|n| pb::NetworkFacts {
                    name: n.name,
                    role: pb::NetworkRole::from(n.role) as i32,
                    metric: n.metric,
                    auto_metric: n.auto_metric,
                    subnet: n.subnet,
                    ipsec_enabled: n.ipsec_enabled,
                    client_for_microsoft_networks: n.client_for_microsoft_networks,
                    file_and_printer_sharing: n.file_and_printer_sharing,
                })
                .collect(),
            nodes: f
                .nodes
                .into_iter()
                .map(|n| pb::NodeFacts {
                    name: n.name,
                    processor: Some(pb::Processor {
                        vendor: n.processor.vendor,
                        model: n.processor.model,
                    }),
                    virtual_switches: n.virtual_switches,
                    ntlm_enabled: n.ntlm_enabled,
                    hbas: n
                        .hbas
                        .into_iter()
                        .map(|h| pb::HbaFacts {
                            model: h.model,
                            driver_version: h.driver_version,
                            firmware_version: h.firmware_version,
                        })
                        .collect(),
                    processor_compatibility: n.processor_compatibility,
                })
                .collect(),
            csv_volumes: f
                .csv_volumes
                .into_iter()
                .map(|v| pb::CsvVolumeFacts {
                    name: v.name,
                    path: v.path,
                    size_bytes: v.size_bytes,
                    free_bytes: v.free_bytes,
                })
                .collect(),
            quorum: f.quorum.map(|q| pb::QuorumFacts {
                quorum_type: pb::QuorumType::from(q.quorum_type) as i32,
                node_count: q.node_count,
            }),
            live_migration_qos: f.live_migration_qos,
        }
    }
}

// ---- protobuf to domain ---------------------------------------------------------------------------

fn task_report(report: Report) -> Result<TaskReport, Bad> {
    Ok(match report {
        Report::Skeleton(r) => TaskReport::Skeleton(skeleton(r)),
        Report::ShareScan(r) => {
            TaskReport::ShareScan(share_scan(r).map_err(|bad| bad.field("share_scan"))?)
        }
        Report::Groups(list) => TaskReport::Groups(
            each(list.groups, super::group).map_err(|bad| bad.field("groups").field("groups"))?,
        ),
        Report::GroupOutcome(o) => {
            TaskReport::GroupOutcome(group_outcome(o).map_err(|bad| bad.field("group_outcome"))?)
        }
        Report::Migration(r) => {
            TaskReport::Migration(migration(r).map_err(|bad| bad.field("migration"))?)
        }
        Report::Resource(r) => {
            TaskReport::Resource(super::resource(r).map_err(|bad| bad.field("resource"))?)
        }
        Report::Removed(r) => TaskReport::Removed(RemovedReport {
            group: r.group,
            resource: r.resource,
            removed: r.removed,
        }),
        Report::Disk(d) => TaskReport::Disk(super::disk(d)),
        Report::Facts(f) => TaskReport::Facts(facts(f).map_err(|bad| bad.field("facts"))?),
        Report::Echo(r) => TaskReport::Echo(EchoReport {
            text: r.text,
            slept_ms: r.slept_ms,
        }),
        Report::Inventory(d) => {
            TaskReport::Inventory(inventory(d).map_err(|bad| bad.field("inventory"))?)
        }
        Report::DiskReplacement(r) => TaskReport::DiskReplacement(DiskReplacement {
            resource: r.resource,
            removed: r.removed,
            repointed: r.repointed,
        }),
        Report::GroupRemoved(r) => {
            TaskReport::GroupRemoved(GroupRemovedReport { removed: r.removed })
        }
    })
}

/// The cluster's inventory as `read_inventory` reports it; the same document as an import.
fn inventory(d: pb::InventoryDocument) -> Result<InventoryDocument, Bad> {
    Ok(InventoryDocument {
        nodes: each(d.nodes, super::node).map_err(|bad| bad.field("nodes"))?,
        networks: each(d.networks, super::network).map_err(|bad| bad.field("networks"))?,
        disks: d.disks.into_iter().map(super::disk).collect(),
        groups: each(d.groups, super::group).map_err(|bad| bad.field("groups"))?,
    })
}

fn skeleton(r: pb::SkeletonReport) -> SkeletonReport {
    // Only a passed verification makes a success, so a missing one cannot be read as passed.
    let v = r.verification.unwrap_or_default();
    SkeletonReport {
        dirs_created: r.dirs_created,
        dirs_existing: r.dirs_existing,
        skipped_links: r.skipped_links,
        files_skipped: r.files_skipped,
        xattrs_copied: r.xattrs_copied,
        xattrs_unsupported: r.xattrs_unsupported,
        errors: r.errors,
        error_count: r.error_count,
        verification: Verification {
            checked: v.checked,
            missing: v.missing,
            extra: v.extra,
            passed: v.passed,
            missing_count: v.missing_count,
            extra_count: v.extra_count,
            errors: v.errors,
            error_count: v.error_count,
        },
        elapsed_ms: r.elapsed_ms,
    }
}

fn share_scan(r: pb::ShareScanReport) -> Result<ShareScanReport, Bad> {
    Ok(ShareScanReport {
        group: r.group,
        shares: each(r.shares, |s| {
            let share = s
                .share
                .ok_or_else(|| Bad::new("is required").field("share"))?;
            Ok(ScannedShare {
                share: super::share(share).map_err(|bad| bad.field("share"))?,
                acl: s.acl.map(|a| AclSummary {
                    path: a.path,
                    uid: a.uid,
                    gid: a.gid,
                    mode: a.mode,
                    posix_acl_entries: a.posix_acl_entries,
                }),
                acl_error: s.acl_error,
            })
        })
        .map_err(|bad| bad.field("shares"))?,
        resources: each(r.resources, |r| {
            Ok(ScannedResource {
                kind: parse_resource_kind(r.kind).map_err(|bad| bad.field("kind"))?,
                state: parse_resource_state(r.state).map_err(|bad| bad.field("state"))?,
                name: r.name,
            })
        })
        .map_err(|bad| bad.field("resources"))?,
    })
}

fn group_outcome(o: pb::GroupOutcome) -> Result<GroupOutcome, Bad> {
    Ok(GroupOutcome {
        state: parse_resource_state(o.state).map_err(|bad| bad.field("state"))?,
        resources: each(o.resources, |r| {
            Ok(ResourceOutcome {
                kind: parse_resource_kind(r.kind).map_err(|bad| bad.field("kind"))?,
                state: parse_resource_state(r.state).map_err(|bad| bad.field("state"))?,
                error: r
                    .error
                    .map(|e| {
                        Ok::<_, Bad>(ResourceError {
                            kind: parse_driver_error_kind(e.kind)
                                .map_err(|bad| bad.field("kind").field("error"))?,
                            message: e.message,
                        })
                    })
                    .transpose()?,
                resource: r.resource,
                changed: r.changed,
            })
        })
        .map_err(|bad| bad.field("resources"))?,
        group: o.group,
        owner_node: o.owner_node,
    })
}

/// An optional OS generation: absent means unknown, but a value that is there must be one.
fn optional_os(os: Option<i32>) -> Result<Option<ferry_core::model::OsGeneration>, Bad> {
    os.map(parse_os).transpose()
}

fn migration(r: pb::MigrationReport) -> Result<MigrationReport, Bad> {
    Ok(MigrationReport {
        source_os: optional_os(r.source_os).map_err(|bad| bad.field("source_os"))?,
        target_os: optional_os(r.target_os).map_err(|bad| bad.field("target_os"))?,
        resources: each(r.resources, |m| {
            Ok(ResourceMigration {
                kind: parse_resource_kind(m.kind).map_err(|bad| bad.field("kind"))?,
                status: parse_migration_status(m.status).map_err(|bad| bad.field("status"))?,
                resource: m.resource,
                target_name: m.target_name,
                reason: m.reason,
            })
        })
        .map_err(|bad| bad.field("resources"))?,
        group: r.group,
        source_cluster: r.source_cluster,
        already_present: r.already_present,
        shares_migrated: r.shares_migrated,
        shares_lost: r.shares_lost,
    })
}

pub(super) fn facts(f: pb::ConfigFacts) -> Result<ConfigFacts, Bad> {
    Ok(ConfigFacts {
        os: optional_os(f.os).map_err(|bad| bad.field("os"))?,
        networks: each(f.networks, |n| {
            Ok(NetworkFacts {
                role: parse_network_role(n.role).map_err(|bad| bad.field("role"))?,
                name: n.name,
                metric: n.metric,
                auto_metric: n.auto_metric,
                subnet: n.subnet,
                ipsec_enabled: n.ipsec_enabled,
                client_for_microsoft_networks: n.client_for_microsoft_networks,
                file_and_printer_sharing: n.file_and_printer_sharing,
            })
        })
        .map_err(|bad| bad.field("networks"))?,
        nodes: f
            .nodes
            .into_iter()
            .map(|n| {
                let processor = n.processor.unwrap_or_default();
                NodeFacts {
                    name: n.name,
                    processor: Processor {
                        vendor: processor.vendor,
                        model: processor.model,
                    },
                    virtual_switches: n.virtual_switches,
                    ntlm_enabled: n.ntlm_enabled,
                    hbas: n
                        .hbas
                        .into_iter()
                        .map(|h| HbaFacts {
                            model: h.model,
                            driver_version: h.driver_version,
                            firmware_version: h.firmware_version,
                        })
                        .collect(),
                    processor_compatibility: n.processor_compatibility,
                }
            })
            .collect(),
        csv_volumes: f
            .csv_volumes
            .into_iter()
            .map(|v| CsvVolumeFacts {
                name: v.name,
                path: v.path,
                size_bytes: v.size_bytes,
                free_bytes: v.free_bytes,
            })
            .collect(),
        quorum: f
            .quorum
            .map(|q| {
                Ok::<_, Bad>(QuorumFacts {
                    quorum_type: parse_quorum_type(q.quorum_type)
                        .map_err(|bad| bad.field("quorum_type").field("quorum"))?,
                    node_count: q.node_count,
                })
            })
            .transpose()?,
        live_migration_qos: f.live_migration_qos,
        cluster: f.cluster,
    })
}

#[cfg(test)]
mod tests {
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
            TaskReport::Inventory(document),
            expected,
        );
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
}
