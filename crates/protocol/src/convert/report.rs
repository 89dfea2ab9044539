//! Typed task reports: the executors' serde reports <-> the `Succeeded.report` messages.
//!
//! The agent reads its executor's JSON as the report of the task's action
//! ([`TaskReport::from_json`]) and sends the message (`Report::from`); the server reads the
//! message back ([`read_report`]) into the same JSON, or keeps an inventory typed. Both
//! directions go through [`TaskReport`], whose variants are the executors' own structs, so the
//! JSON shape has one definition: theirs.

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
use ferry_core::model::{Action, InventoryDocument, Processor, Reported, TaskError, TaskOutcome};

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

/// The JSON [`read_report`] stores for a success, inventories included, or why it cannot be
/// read, naming the field at fault. An empty `report` is a kind this server does not know.
#[cfg(test)]
pub fn report_json(succeeded: pb::Succeeded) -> Result<serde_json::Value, String> {
    decode(succeeded)?
        .to_json()
        .map_err(|e| format!("report: cannot be written as JSON: {e}"))
}

/// The server's side, keeping an inventory typed: a discovery imports it as it arrived instead
/// of writing a large cluster to JSON and reading it back. Every other report is its JSON.
pub fn read_report(succeeded: pb::Succeeded) -> Result<Reported, String> {
    match decode(succeeded)? {
        TaskReport::Inventory(document) => Ok(Reported::Inventory(Box::new(document))),
        report => report
            .to_json()
            .map(|value| Reported::Outcome(TaskOutcome::Succeeded(value)))
            .map_err(|e| format!("report: cannot be written as JSON: {e}")),
    }
}

/// The typed report of a success, or why it cannot be read, naming the field at fault.
fn decode(succeeded: pb::Succeeded) -> Result<TaskReport, String> {
    succeeded
        .report
        .ok_or_else(|| Bad::new("must be a report this server knows").field("report"))
        .and_then(|report| task_report(report).map_err(|bad| bad.field("report")))
        .map_err(|bad| format!("{}: {}", bad.path(), bad.message))
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
mod tests;
