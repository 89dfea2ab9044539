//! Reading a successful step's report into the group: the source preflight's scan becomes the
//! context later actions need and the baseline of the shares; a target's inventory is checked
//! for the disk and drive letter the group will take; a verification scan is compared with the
//! baseline.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Inputs, Transition};
use crate::model::{
    InventoryDocument, JobStep, ResourceKind, ResourceState, Share, StepAction, VerificationReport,
    compare_shares,
};
use crate::plan::StepKind;

/// What a share scan reports, as far as verification needs it.
#[derive(Debug)]
pub(super) struct ScanReport {
    shares: Vec<Share>,
    resources: Vec<ScannedResource>,
}

impl<'de> Deserialize<'de> for ScanReport {
    /// Each scanned share is a `Share` plus what the agent found on disk (`acl`, `acl_error`);
    /// `Share` refuses unknown fields, so those are set aside first.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            shares: Vec<serde_json::Map<String, serde_json::Value>>,
            #[serde(default)]
            resources: Vec<ScannedResource>,
        }
        let raw = Raw::deserialize(d)?;
        let shares = raw
            .shares
            .into_iter()
            .map(|mut share| {
                share.remove("acl");
                share.remove("acl_error");
                Share::deserialize(serde_json::Value::Object(share))
                    .map_err(serde::de::Error::custom)
            })
            .collect::<Result<_, _>>()?;
        Ok(ScanReport {
            shares,
            resources: raw.resources,
        })
    }
}

#[derive(Debug, Deserialize)]
struct ScannedResource {
    name: String,
    kind: ResourceKind,
    state: ResourceState,
}

/// Reads a successful step's report into the group; `Err` when a check in it failed.
pub(super) fn interpret(
    t: &mut Transition,
    step: &JobStep,
    report: &serde_json::Value,
    baseline: &mut Option<Vec<Share>>,
    inputs: &Inputs<'_>,
) -> Result<(), String> {
    let source = t.group.route.first().cloned().unwrap_or_default();
    match step.action {
        StepAction::Run(StepKind::Preflight) if step.cluster == source => {
            let scan: ScanReport = parse(report)?;
            let disk = scan
                .resources
                .iter()
                .find(|r| r.kind == ResourceKind::PhysicalDisk)
                .map(|r| r.name.clone());
            t.group.context.source_disk = disk;
            t.group.context.drive_letter = drive_letter_of(&scan.shares);
            t.group.context.baseline_shares = scan.shares.len() as u32;
            t.group.context.share_depth = share_depth(&scan.shares);
            if let Some(depth) = inputs.request.skeleton_depth
                && depth < t.group.context.share_depth
            {
                return Err(format!(
                    "share folders reach {} levels below the drive root; skeleton_depth {depth} \
                     would leave them missing on the interim, so its shares could not come \
                     online: use skeleton_depth {} or more (or leave it out)",
                    t.group.context.share_depth - 1,
                    t.group.context.share_depth
                ));
            }
            if t.group.context.drive_letter.is_none() && !scan.shares.is_empty() {
                return Err("the group's shares have no drive letter in their paths".into());
            }
            *baseline = Some(scan.shares.clone());
            t.baseline = Some(scan.shares);
            Ok(())
        }
        StepAction::Run(StepKind::Preflight) => {
            let inventory: InventoryDocument = parse(report)?;
            let last = t.group.route.last().cloned().unwrap_or_default();
            if step.cluster == last {
                if let Some(source_disk) = &t.group.context.source_disk {
                    let wanted = inputs.request.target_disk(source_disk);
                    let Some(disk) = inventory.disks.iter().find(|d| d.resource == wanted) else {
                        return Err(format!(
                            "disk `{wanted}` holding the data of `{source_disk}` is not presented \
                             to {}; present the LUN or set disk_mapping",
                            step.cluster
                        ));
                    };
                    let owner = inventory.groups.iter().find(|g| {
                        g.resources.iter().any(|r| {
                            r.kind == ResourceKind::PhysicalDisk && r.name == disk.resource
                        })
                    });
                    if disk.csv || owner.is_some() {
                        return Err(format!(
                            "disk `{wanted}` on {} is {}; set disk_mapping to the disk the LUN of \
                             `{source_disk}` was presented as",
                            step.cluster,
                            match owner {
                                Some(group) => format!("in use by group `{}`", group.name),
                                None => "a Cluster Shared Volume".to_owned(),
                            }
                        ));
                    }
                }
            } else if let Some(letter) = &t.group.context.drive_letter {
                // The interim's prepared disk takes the source's letter.
                let taken = inventory.disks.iter().find(|d| {
                    d.drive_letter
                        .as_deref()
                        .is_some_and(|l| l.eq_ignore_ascii_case(letter))
                });
                if let Some(disk) = taken
                    && inventory.groups.iter().any(|g| {
                        g.name != t.group.name
                            && g.resources.iter().any(|r| {
                                r.kind == ResourceKind::PhysicalDisk && r.name == disk.resource
                            })
                    })
                {
                    return Err(format!(
                        "drive {letter} is taken on {} by disk `{}` of another group",
                        step.cluster, disk.resource
                    ));
                }
            }
            Ok(())
        }
        StepAction::Run(StepKind::PrepareInterimDisk) => {
            #[derive(Deserialize)]
            struct Prepared {
                resource: String,
            }
            let disk: Prepared = parse(report)?;
            t.group.context.interim_disk = Some(disk.resource);
            Ok(())
        }
        StepAction::Run(StepKind::VerifyInterim | StepKind::VerifyTarget)
        | StepAction::VerifySource => {
            let scan: ScanReport = parse(report)?;
            let expected = baseline.as_deref().unwrap_or_default();
            let mut verification = verify(expected, &scan, &step.cluster, inputs.now);
            if t.group.losses.contains(&ResourceKind::FileShare)
                && step.action != StepAction::VerifySource
            {
                verification.lost = std::mem::take(&mut verification.missing);
                verification.passed = verification.changed.is_empty()
                    && verification.unexpected.is_empty()
                    && verification.network_name_online;
            }
            let passed = verification.passed;
            let summary = format!(
                "{} of {} shares identical on {}{}",
                verification.identical,
                verification.expected,
                step.cluster,
                if verification.network_name_online {
                    ""
                } else {
                    ", network name not online"
                }
            );
            t.group.verification = Some(verification);
            if passed { Ok(()) } else { Err(summary) }
        }
        _ => Ok(()),
    }
}

fn parse<T: serde::de::DeserializeOwned>(report: &serde_json::Value) -> Result<T, String> {
    T::deserialize(report).map_err(|e| format!("the agent's report could not be read: {e}"))
}

/// Skeleton levels that create every share's folder: `F:\\A\\B` needs 3 (root, A, B).
fn share_depth(shares: &[Share]) -> u32 {
    shares
        .iter()
        .map(|s| {
            let below_drive = s
                .path
                .split_once(':')
                .map_or(s.path.as_str(), |(_, rest)| rest);
            below_drive.split('\\').filter(|c| !c.is_empty()).count() as u32 + 1
        })
        .max()
        .unwrap_or(1)
}

/// The drive most of the shares live on, e.g. `F:`.
fn drive_letter_of(shares: &[Share]) -> Option<String> {
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for share in shares {
        if let Some((drive, _)) = share.path.split_once(':')
            && drive.len() == 1
            && drive.chars().all(|c| c.is_ascii_alphabetic())
        {
            *counts
                .entry(format!("{}:", drive.to_ascii_uppercase()))
                .or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(letter, n)| (*n, std::cmp::Reverse(letter.clone())))
        .map(|(letter, _)| letter)
}

/// Compares the scanned shares with the baseline: same names, paths, permissions and flags, and
/// the group's network name online.
pub(super) fn verify(
    expected: &[Share],
    scan: &ScanReport,
    cluster: &str,
    at: DateTime<Utc>,
) -> VerificationReport {
    let compared = compare_shares(expected, &scan.shares);
    let mut report = VerificationReport {
        cluster: cluster.to_owned(),
        expected: expected.len() as u32,
        identical: compared.identical,
        missing: compared.missing,
        changed: compared.changed,
        unexpected: compared.unexpected,
        at,
        ..VerificationReport::default()
    };
    let names: Vec<&ScannedResource> = scan
        .resources
        .iter()
        .filter(|r| r.kind == ResourceKind::NetworkName)
        .collect();
    report.network_name_online =
        !names.is_empty() && names.iter().all(|r| r.state == ResourceState::Online);
    report.passed = report.missing.is_empty()
        && report.changed.is_empty()
        && report.unexpected.is_empty()
        && report.network_name_online;
    report
}
