//! The agent action each step runs, built from the request and what earlier steps put in the
//! group's context (the drive letter, the disks, the baseline of the source's shares).

use crate::model::{Action, JobGroup, JobRequest, JobStep, Share, StepAction, snake};
use crate::plan::{StepKind, Undo};

/// The agent action of a step, from what earlier steps learned.
pub(super) fn action_for(
    group: &JobGroup,
    step: &JobStep,
    request: &JobRequest,
    baseline: Option<&[Share]>,
) -> Result<Action, String> {
    let name = group.name.clone();
    let ctx = &group.context;
    let letter = || {
        ctx.drive_letter
            .clone()
            .ok_or_else(|| "the source preflight did not find the shares' drive letter".to_owned())
    };
    let source = group.route.first().cloned().unwrap_or_default();
    Ok(match step.action {
        StepAction::Run(kind) => match kind {
            StepKind::Preflight if step.cluster == source => Action::ShareScan { group: name },
            // Only the disk the step checks, so the report does not grow with the groups
            // already there.
            StepKind::Preflight if step.cluster == *group.route.last().unwrap_or(&source) => {
                Action::ReadStorage {
                    disks: ctx
                        .source_disk
                        .as_deref()
                        .map(|disk| request.target_disk(disk).to_owned())
                        .into_iter()
                        .collect(),
                    drive_letters: Vec::new(),
                }
            }
            StepKind::Preflight => Action::ReadStorage {
                disks: Vec::new(),
                drive_letters: ctx.drive_letter.iter().cloned().collect(),
            },
            StepKind::PrepareInterimDisk => Action::PrepareDisk {
                drive_letter: letter()?,
            },
            StepKind::SkeletonCopy => {
                let letter = letter()?;
                let peer = step.peer.clone().unwrap_or_else(|| source.clone());
                let drive = letter.trim_end_matches(':');
                Action::SkeletonCopy {
                    source: format!("\\\\{peer}\\{drive}$\\"),
                    destination: format!("{letter}\\"),
                    // Deep enough for every share's folder unless the operator chose a depth
                    // (which the preflight checked).
                    depth: request
                        .skeleton_depth
                        .unwrap_or_else(|| request.skeleton_depth().max(ctx.share_depth)),
                    log_path: format!("skeleton-{}.log", file_safe(&group.name)),
                }
            }
            StepKind::MigrateToInterim | StepKind::MigrateToTarget => Action::MigrateGroup {
                source_cluster: step
                    .peer
                    .clone()
                    .ok_or("the runbook names no cluster to migrate from")?,
                group: name,
            },
            StepKind::SwapInterimDisk => Action::ReplaceDiskResource {
                group: name,
                disk: ctx
                    .interim_disk
                    .clone()
                    .ok_or("no disk was prepared on the interim")?,
                drive_letter: letter()?,
            },
            StepKind::AttachTargetDisk => {
                let source_disk = ctx
                    .source_disk
                    .clone()
                    .ok_or("the source preflight found no disk resource in the group")?;
                Action::ReplaceDiskResource {
                    group: name,
                    disk: request.target_disk(&source_disk).to_owned(),
                    drive_letter: letter()?,
                }
            }
            StepKind::OfflineSource | StepKind::OfflineInterim => {
                Action::OfflineGroup { group: name }
            }
            StepKind::OnlineInterim | StepKind::OnlineTarget => Action::OnlineGroup { group: name },
            StepKind::VerifyInterim | StepKind::VerifyTarget => {
                if baseline.is_none() {
                    return Err("no baseline of the source's shares was taken".into());
                }
                Action::ShareScan { group: name }
            }
            StepKind::CleanupInterim => Action::RemoveGroup { group: name },
        },
        StepAction::Undo(undo) => match undo {
            Undo::OnlineGroup => Action::OnlineGroup { group: name },
            Undo::OfflineGroup => Action::OfflineGroup { group: name },
            // The migrated group goes whole, its disk resource with it, which releases the data
            // disk for the source.
            Undo::DetachDataDisk | Undo::DeleteMigratedGroup => Action::RemoveGroup { group: name },
            Undo::RemovePreparedDisk | Undo::RestoreMigratedDisk => {
                return Err(format!("{} is not undone by a rollback", snake(&undo)));
            }
        },
        StepAction::VerifySource => {
            if baseline.is_none() {
                return Err("no baseline of the source's shares was taken".into());
            }
            Action::ShareScan { group: name }
        }
    })
}

fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}
