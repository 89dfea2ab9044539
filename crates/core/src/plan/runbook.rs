//! The per-group runbook: the steps of the field notes' procedure, generated from a route.
//!
//! For a route with one interim the steps are the field notes' thirteen, with "online on the
//! target" and "verify the target" kept apart so each is one durable step with its own retries:
//!
//! | phase    | steps |
//! | -------- | ----- |
//! | prepare  | preflight (per cluster), prepare interim disk, skeleton copy, migrate to interim, swap interim disk |
//! | cutover  | offline source, online interim, verify interim, migrate to target, offline interim, attach target disk, online target, verify target |
//! | cleanup  | clean up interim |
//!
//! A direct route has no interim to prepare. Its wizard run reads the configuration from the
//! source while the source stays online, so it happens before the window: only offline source,
//! attach target disk, online target and verify target cost downtime.
//!
//! A route with several interims repeats the interim's part per interim: every interim gets its
//! disk and skeleton before the window, and during the cutover each further interim is migrated
//! to from the one before it while that one is online (the wizard needs the group online to take
//! its file shares along, which is why interims exist), swapped, and brought online and verified
//! before the previous interim goes offline. Each extra interim lengthens the downtime by those
//! steps; `cutover_estimate` shows by how much.
//!
//! Every step acts on one cluster, so a preflight runs on each cluster the group touches.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::route::{ClusterRole, Route};

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Validation report, agent connected, drive letter free (interim), source service pack.
    Preflight,
    /// A small disk on the interim with the drive letter of the source share drive.
    PrepareInterimDisk,
    /// Directories only, `skeleton_depth` levels, no junctions, logged and verified.
    SkeletonCopy,
    /// The wizard, run on the interim, copies the group's configuration from the previous cluster.
    MigrateToInterim,
    /// The migrated disk resource is replaced by the prepared disk in the file server's dependency.
    SwapInterimDisk,
    OfflineSource,
    OnlineInterim,
    /// Every share and the network name online, compared with the source inventory.
    VerifyInterim,
    /// The wizard, run on the target, copies the group's configuration from the previous cluster.
    MigrateToTarget,
    OfflineInterim,
    /// The disk with the real data joins the group; the migrated disk resource goes.
    AttachTargetDisk,
    OnlineTarget,
    /// Every share and the network name online, compared with the source inventory.
    VerifyTarget,
    /// The migrated group and the prepared disk leave the interim.
    CleanupInterim,
}

impl StepKind {
    /// The field notes' two-hop runbook in order (with `VerifyTarget` split from `OnlineTarget`).
    pub const ALL: [StepKind; 14] = [
        StepKind::Preflight,
        StepKind::PrepareInterimDisk,
        StepKind::SkeletonCopy,
        StepKind::MigrateToInterim,
        StepKind::SwapInterimDisk,
        StepKind::OfflineSource,
        StepKind::OnlineInterim,
        StepKind::VerifyInterim,
        StepKind::MigrateToTarget,
        StepKind::OfflineInterim,
        StepKind::AttachTargetDisk,
        StepKind::OnlineTarget,
        StepKind::VerifyTarget,
        StepKind::CleanupInterim,
    ];

    /// How a step is retried unless configured otherwise.
    pub fn default_retry(self) -> RetryPolicy {
        match self {
            // The field notes: under Kerberos the network name fails its first online and comes
            // up on the second; a third attempt covers a slow DC.
            StepKind::OnlineInterim | StepKind::OnlineTarget => RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_secs(15),
                max_backoff: Duration::from_secs(60),
                multiplier: 2.0,
            },
            // A failed check means the state is wrong, and looking again will not fix it.
            StepKind::Preflight | StepKind::VerifyInterim | StepKind::VerifyTarget => {
                RetryPolicy::once()
            }
            // The wizard is the slowest and least idempotent call: one retry, after a pause.
            StepKind::MigrateToInterim | StepKind::MigrateToTarget => RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_secs(30),
                max_backoff: Duration::from_secs(30),
                multiplier: 1.0,
            },
            // Cluster operations that check before they act, so retrying is safe.
            StepKind::PrepareInterimDisk
            | StepKind::SkeletonCopy
            | StepKind::SwapInterimDisk
            | StepKind::OfflineSource
            | StepKind::OfflineInterim
            | StepKind::AttachTargetDisk
            | StepKind::CleanupInterim => RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_secs(10),
                max_backoff: Duration::from_secs(60),
                multiplier: 2.0,
            },
        }
    }

    /// What reverses the step on its own cluster during a rollback, if anything needs to.
    pub fn undo(self) -> Option<Undo> {
        match self {
            StepKind::PrepareInterimDisk => Some(Undo::RemovePreparedDisk),
            StepKind::MigrateToInterim | StepKind::MigrateToTarget => {
                Some(Undo::DeleteMigratedGroup)
            }
            StepKind::SwapInterimDisk => Some(Undo::RestoreMigratedDisk),
            // The rollback the design promises: the group goes back online on the source.
            StepKind::OfflineSource => Some(Undo::OnlineGroup),
            StepKind::OnlineInterim | StepKind::OnlineTarget => Some(Undo::OfflineGroup),
            // The data disk must be released before the source can bring it online again.
            StepKind::AttachTargetDisk => Some(Undo::DetachDataDisk),
            // Checks change nothing; the skeleton goes with the prepared disk; a rollback returns
            // to the source, so an offline interim stays offline; cleanup runs after the cutover
            // succeeded and has nothing to return to.
            StepKind::Preflight
            | StepKind::SkeletonCopy
            | StepKind::VerifyInterim
            | StepKind::VerifyTarget
            | StepKind::OfflineInterim
            | StepKind::CleanupInterim => None,
        }
    }
}

/// The reversal of a step, run on the step's cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Undo {
    RemovePreparedDisk,
    DeleteMigratedGroup,
    RestoreMigratedDisk,
    OnlineGroup,
    OfflineGroup,
    DetachDataDisk,
}

/// When a step runs: prepare before the window, cutover inside it (downtime), cleanup after.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Prepare,
    Cutover,
    Cleanup,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub multiplier: f64,
}

impl RetryPolicy {
    /// A single attempt.
    pub fn once() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 1,
            initial_backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
            multiplier: 1.0,
        }
    }

    /// The pause before attempt `attempt` (1-based): none before the first, `initial_backoff`
    /// before the second, then growing by `multiplier`, never above `max_backoff`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(attempt - 2).unwrap_or(i32::MAX);
        let seconds = self.initial_backoff.as_secs_f64() * self.multiplier.powi(exponent);
        Duration::try_from_secs_f64(seconds)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// Whether attempt `attempt` (1-based) may still run.
    pub fn allows(&self, attempt: u32) -> bool {
        attempt >= 1 && attempt <= self.max_attempts.max(1)
    }
}

/// One step of one group's runbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSpec {
    pub kind: StepKind,
    pub phase: Phase,
    /// The cluster whose agent runs the step.
    pub cluster: String,
    pub role: ClusterRole,
    /// The other cluster of the step: where the wizard or the skeleton copy reads from.
    pub peer: Option<String>,
    /// Directory levels of a skeleton copy; only on `SkeletonCopy`.
    pub skeleton_depth: Option<u32>,
    pub estimate: Duration,
    pub retry: RetryPolicy,
    pub undo: Option<Undo>,
}

/// Expected duration of each kind of step, for windows and progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepEstimates {
    pub preflight: Duration,
    pub prepare_interim_disk: Duration,
    pub skeleton_copy: Duration,
    pub migrate: Duration,
    pub swap_interim_disk: Duration,
    pub offline: Duration,
    pub online: Duration,
    pub verify: Duration,
    pub attach_target_disk: Duration,
    pub cleanup_interim: Duration,
}

impl Default for StepEstimates {
    /// Rough figures for a group of a few hundred shares; the skeleton copy and the verification
    /// grow with the share count, so jobs should pass measured figures.
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        StepEstimates {
            preflight: minutes(2),
            prepare_interim_disk: minutes(5),
            skeleton_copy: minutes(15),
            migrate: minutes(10),
            swap_interim_disk: minutes(3),
            offline: minutes(2),
            // Room for the second online the Kerberos note predicts.
            online: minutes(4),
            verify: minutes(5),
            attach_target_disk: minutes(5),
            cleanup_interim: minutes(5),
        }
    }
}

impl StepEstimates {
    pub fn for_kind(&self, kind: StepKind) -> Duration {
        match kind {
            StepKind::Preflight => self.preflight,
            StepKind::PrepareInterimDisk => self.prepare_interim_disk,
            StepKind::SkeletonCopy => self.skeleton_copy,
            StepKind::MigrateToInterim | StepKind::MigrateToTarget => self.migrate,
            StepKind::SwapInterimDisk => self.swap_interim_disk,
            StepKind::OfflineSource | StepKind::OfflineInterim => self.offline,
            StepKind::OnlineInterim | StepKind::OnlineTarget => self.online,
            StepKind::VerifyInterim | StepKind::VerifyTarget => self.verify,
            StepKind::AttachTargetDisk => self.attach_target_disk,
            StepKind::CleanupInterim => self.cleanup_interim,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunbookOptions {
    /// Directory levels the skeleton copy replicates; the field notes used 2 (`/lev:2`), enough
    /// to reach every shared folder in their trees.
    pub skeleton_depth: u32,
    pub estimates: StepEstimates,
}

impl Default for RunbookOptions {
    fn default() -> Self {
        RunbookOptions {
            skeleton_depth: 2,
            estimates: StepEstimates::default(),
        }
    }
}

/// The steps that move one group along `route`, in the order they run. An empty route (which the
/// planner never returns) gives no steps.
pub fn runbook(route: &Route, opts: &RunbookOptions) -> Vec<StepSpec> {
    use Phase::{Cleanup, Cutover, Prepare};
    use StepKind::*;

    let (Some(first), Some(last)) = (route.hops.first(), route.hops.last()) else {
        return Vec::new();
    };
    let source = first.from_cluster.as_str();
    let interims: Vec<&str> = route.interims().collect();
    let mut steps = Steps {
        opts,
        source,
        target: last.to_cluster.as_str(),
        list: Vec::new(),
    };

    steps.on_source(Preflight, Prepare);
    for interim in &interims {
        steps.on_interim(Preflight, Prepare, interim, None);
    }
    steps.on_target(Preflight, Prepare, None);

    let Some((first_interim, later_interims)) = interims.split_first() else {
        steps.on_target(MigrateToTarget, Prepare, Some(source));
        steps.on_source(OfflineSource, Cutover);
        steps.finish_on_target();
        return steps.list;
    };

    for interim in &interims {
        steps.on_interim(PrepareInterimDisk, Prepare, interim, None);
        steps.on_interim(SkeletonCopy, Prepare, interim, Some(source));
    }
    steps.on_interim(MigrateToInterim, Prepare, first_interim, Some(source));
    steps.on_interim(SwapInterimDisk, Prepare, first_interim, None);

    steps.on_source(OfflineSource, Cutover);
    steps.on_interim(OnlineInterim, Cutover, first_interim, None);
    steps.on_interim(VerifyInterim, Cutover, first_interim, None);
    let mut previous = *first_interim;
    for interim in later_interims {
        steps.on_interim(MigrateToInterim, Cutover, interim, Some(previous));
        steps.on_interim(SwapInterimDisk, Cutover, interim, None);
        steps.on_interim(OfflineInterim, Cutover, previous, None);
        steps.on_interim(OnlineInterim, Cutover, interim, None);
        steps.on_interim(VerifyInterim, Cutover, interim, None);
        previous = interim;
    }
    steps.on_target(MigrateToTarget, Cutover, Some(previous));
    steps.on_interim(OfflineInterim, Cutover, previous, None);
    steps.finish_on_target();

    for interim in &interims {
        steps.on_interim(CleanupInterim, Cleanup, interim, None);
    }
    steps.list
}

/// Expected downtime: the estimates of the cutover steps added up.
pub fn cutover_estimate(steps: &[StepSpec]) -> Duration {
    steps
        .iter()
        .filter(|step| step.phase == Phase::Cutover)
        .map(|step| step.estimate)
        .sum()
}

struct Steps<'a> {
    opts: &'a RunbookOptions,
    source: &'a str,
    target: &'a str,
    list: Vec<StepSpec>,
}

impl Steps<'_> {
    fn on_source(&mut self, kind: StepKind, phase: Phase) {
        let source = self.source;
        self.push(kind, phase, source, ClusterRole::Source, None);
    }

    fn on_interim(&mut self, kind: StepKind, phase: Phase, interim: &str, peer: Option<&str>) {
        self.push(kind, phase, interim, ClusterRole::Interim, peer);
    }

    fn on_target(&mut self, kind: StepKind, phase: Phase, peer: Option<&str>) {
        let target = self.target;
        self.push(kind, phase, target, ClusterRole::Target, peer);
    }

    /// The target's half of every cutover, however the group got there.
    fn finish_on_target(&mut self) {
        for kind in [
            StepKind::AttachTargetDisk,
            StepKind::OnlineTarget,
            StepKind::VerifyTarget,
        ] {
            self.on_target(kind, Phase::Cutover, None);
        }
    }

    fn push(
        &mut self,
        kind: StepKind,
        phase: Phase,
        cluster: &str,
        role: ClusterRole,
        peer: Option<&str>,
    ) {
        self.list.push(StepSpec {
            kind,
            phase,
            cluster: cluster.to_owned(),
            role,
            peer: peer.map(str::to_owned),
            skeleton_depth: (kind == StepKind::SkeletonCopy).then_some(self.opts.skeleton_depth),
            estimate: self.opts.estimates.for_kind(kind),
            retry: kind.default_retry(),
            undo: kind.undo(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::OsGeneration;
    use crate::plan::route::Hop;
    use proptest::prelude::*;

    /// A route through the named clusters; the generations do not matter to the runbook.
    fn route_through(names: &[&str]) -> Route {
        let hops = names
            .windows(2)
            .map(|pair| Hop {
                from_cluster: pair[0].to_owned(),
                to_cluster: pair[1].to_owned(),
                from_os: OsGeneration::Ws2008,
                to_os: OsGeneration::Ws2008r2,
                loses: Vec::new(),
                min_source_service_pack: None,
                rule_source: "test".to_owned(),
            })
            .collect();
        Route {
            hops,
            lossy: false,
            losses: Vec::new(),
            refused_direct: None,
        }
    }

    fn outline(steps: &[StepSpec]) -> Vec<(StepKind, Phase, &str, Option<&str>)> {
        steps
            .iter()
            .map(|s| (s.kind, s.phase, s.cluster.as_str(), s.peer.as_deref()))
            .collect()
    }

    #[test]
    fn the_two_hop_runbook_is_the_field_notes_procedure() {
        use Phase::*;
        use StepKind::*;
        let steps = runbook(
            &route_through(&["OLD", "MID", "NEW"]),
            &RunbookOptions::default(),
        );
        assert_eq!(
            outline(&steps),
            vec![
                (Preflight, Prepare, "OLD", None),
                (Preflight, Prepare, "MID", None),
                (Preflight, Prepare, "NEW", None),
                (PrepareInterimDisk, Prepare, "MID", None),
                (SkeletonCopy, Prepare, "MID", Some("OLD")),
                (MigrateToInterim, Prepare, "MID", Some("OLD")),
                (SwapInterimDisk, Prepare, "MID", None),
                (OfflineSource, Cutover, "OLD", None),
                (OnlineInterim, Cutover, "MID", None),
                (VerifyInterim, Cutover, "MID", None),
                (MigrateToTarget, Cutover, "NEW", Some("MID")),
                (OfflineInterim, Cutover, "MID", None),
                (AttachTargetDisk, Cutover, "NEW", None),
                (OnlineTarget, Cutover, "NEW", None),
                (VerifyTarget, Cutover, "NEW", None),
                (CleanupInterim, Cleanup, "MID", None),
            ]
        );
        let mut kinds: Vec<StepKind> = steps.iter().map(|s| s.kind).collect();
        kinds.dedup();
        assert_eq!(kinds, StepKind::ALL);
    }

    #[test]
    fn the_one_hop_runbook_migrates_before_the_window_and_has_no_interim_steps() {
        use Phase::*;
        use StepKind::*;
        let steps = runbook(&route_through(&["OLD", "NEW"]), &RunbookOptions::default());
        assert_eq!(
            outline(&steps),
            vec![
                (Preflight, Prepare, "OLD", None),
                (Preflight, Prepare, "NEW", None),
                (MigrateToTarget, Prepare, "NEW", Some("OLD")),
                (OfflineSource, Cutover, "OLD", None),
                (AttachTargetDisk, Cutover, "NEW", None),
                (OnlineTarget, Cutover, "NEW", None),
                (VerifyTarget, Cutover, "NEW", None),
            ]
        );
        assert!(steps.iter().all(|s| s.role != ClusterRole::Interim));
    }

    #[test]
    fn each_further_interim_repeats_migrate_swap_online_verify_during_the_cutover() {
        use Phase::*;
        use StepKind::*;
        let steps = runbook(
            &route_through(&["S", "A", "B", "T"]),
            &RunbookOptions::default(),
        );
        let cutover: Vec<_> = outline(&steps)
            .into_iter()
            .filter(|step| step.1 == Cutover)
            .collect();
        assert_eq!(
            cutover,
            vec![
                (OfflineSource, Cutover, "S", None),
                (OnlineInterim, Cutover, "A", None),
                (VerifyInterim, Cutover, "A", None),
                (MigrateToInterim, Cutover, "B", Some("A")),
                (SwapInterimDisk, Cutover, "B", None),
                (OfflineInterim, Cutover, "A", None),
                (OnlineInterim, Cutover, "B", None),
                (VerifyInterim, Cutover, "B", None),
                (MigrateToTarget, Cutover, "T", Some("B")),
                (OfflineInterim, Cutover, "B", None),
                (AttachTargetDisk, Cutover, "T", None),
                (OnlineTarget, Cutover, "T", None),
                (VerifyTarget, Cutover, "T", None),
            ]
        );
        let skeletons: Vec<_> = steps
            .iter()
            .filter(|s| s.kind == SkeletonCopy)
            .map(|s| (s.phase, s.cluster.as_str(), s.peer.as_deref()))
            .collect();
        assert_eq!(
            skeletons,
            [(Prepare, "A", Some("S")), (Prepare, "B", Some("S"))]
        );
        let cleanups: Vec<_> = steps
            .iter()
            .filter(|s| s.phase == Cleanup)
            .map(|s| s.cluster.as_str())
            .collect();
        assert_eq!(cleanups, ["A", "B"]);
    }

    #[test]
    fn an_empty_route_has_no_steps() {
        assert!(runbook(&route_through(&[]), &RunbookOptions::default()).is_empty());
    }

    #[test]
    fn the_skeleton_depth_is_set_on_the_skeleton_copy_only() {
        let route = route_through(&["OLD", "MID", "NEW"]);
        let default = runbook(&route, &RunbookOptions::default());
        let deeper = runbook(
            &route,
            &RunbookOptions {
                skeleton_depth: 4,
                ..RunbookOptions::default()
            },
        );
        for (steps, depth) in [(default, 2), (deeper, 4)] {
            for step in steps {
                let expected = (step.kind == StepKind::SkeletonCopy).then_some(depth);
                assert_eq!(step.skeleton_depth, expected, "{:?}", step.kind);
            }
        }
    }

    #[test]
    fn the_cutover_estimate_adds_up_the_cutover_steps_only() {
        let opts = RunbookOptions::default();
        let minutes = |m: u64| Duration::from_secs(60 * m);
        let two_hops = runbook(&route_through(&["OLD", "MID", "NEW"]), &opts);
        // offline 2, online 4, verify 5, migrate 10, offline 2, attach 5, online 4, verify 5
        assert_eq!(cutover_estimate(&two_hops), minutes(37));
        let one_hop = runbook(&route_through(&["OLD", "NEW"]), &opts);
        // offline 2, attach 5, online 4, verify 5
        assert_eq!(cutover_estimate(&one_hop), minutes(16));
        assert_eq!(cutover_estimate(&[]), Duration::ZERO);
    }

    #[test]
    fn estimates_come_from_the_options() {
        let opts = RunbookOptions {
            estimates: StepEstimates {
                skeleton_copy: Duration::from_secs(3600),
                ..StepEstimates::default()
            },
            ..RunbookOptions::default()
        };
        let steps = runbook(&route_through(&["OLD", "MID", "NEW"]), &opts);
        let skeleton = steps
            .iter()
            .find(|s| s.kind == StepKind::SkeletonCopy)
            .expect("skeleton step");
        assert_eq!(skeleton.estimate, Duration::from_secs(3600));
    }

    #[test]
    fn onlines_get_three_attempts_for_the_kerberos_first_failure() {
        for kind in [StepKind::OnlineInterim, StepKind::OnlineTarget] {
            assert_eq!(kind.default_retry().max_attempts, 3);
        }
    }

    #[test]
    fn checks_run_once_and_cluster_operations_two_or_three_times() {
        for kind in StepKind::ALL {
            let attempts = kind.default_retry().max_attempts;
            match kind {
                StepKind::Preflight | StepKind::VerifyInterim | StepKind::VerifyTarget => {
                    assert_eq!(attempts, 1, "{kind:?}")
                }
                _ => assert!((2..=3).contains(&attempts), "{kind:?}"),
            }
        }
    }

    #[test]
    fn a_rolled_back_cutover_brings_the_source_back_and_frees_the_data_disk() {
        assert_eq!(StepKind::OfflineSource.undo(), Some(Undo::OnlineGroup));
        assert_eq!(
            StepKind::AttachTargetDisk.undo(),
            Some(Undo::DetachDataDisk)
        );
        assert_eq!(StepKind::OnlineTarget.undo(), Some(Undo::OfflineGroup));
        assert_eq!(
            StepKind::MigrateToTarget.undo(),
            Some(Undo::DeleteMigratedGroup)
        );
        assert_eq!(StepKind::VerifyTarget.undo(), None);
        let steps = runbook(
            &route_through(&["OLD", "MID", "NEW"]),
            &RunbookOptions::default(),
        );
        let offline = steps
            .iter()
            .find(|s| s.kind == StepKind::OfflineSource)
            .expect("offline step");
        assert_eq!(
            (offline.cluster.as_str(), offline.undo),
            ("OLD", Some(Undo::OnlineGroup))
        );
    }

    #[test]
    fn backoff_starts_after_the_first_attempt_and_grows_to_its_cap() {
        let policy = StepKind::OnlineTarget.default_retry();
        assert_eq!(policy.backoff(0), Duration::ZERO);
        assert_eq!(policy.backoff(1), Duration::ZERO);
        assert_eq!(policy.backoff(2), Duration::from_secs(15));
        assert_eq!(policy.backoff(3), Duration::from_secs(30));
        assert_eq!(policy.backoff(4), Duration::from_secs(60));
        assert_eq!(policy.backoff(5), Duration::from_secs(60));
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(60));
        assert!(policy.allows(3));
        assert!(!policy.allows(4));
        assert!(!policy.allows(0));
        assert!(RetryPolicy::once().allows(1));
        assert!(!RetryPolicy::once().allows(2));
    }

    #[test]
    fn step_kinds_and_phases_serialize_in_snake_case() {
        let json = serde_json::to_string(&StepKind::PrepareInterimDisk).expect("json");
        assert_eq!(json, "\"prepare_interim_disk\"");
        let json = serde_json::to_string(&Phase::Cutover).expect("json");
        assert_eq!(json, "\"cutover\"");
        let back: StepKind = serde_json::from_str("\"verify_target\"").expect("kind");
        assert_eq!(back, StepKind::VerifyTarget);
    }

    proptest! {
        #[test]
        fn backoff_never_shrinks_and_never_passes_its_cap(
            initial_ms in 0u64..100_000,
            cap_ms in 0u64..1_000_000,
            multiplier in 1.0f64..10.0,
            attempt in 1u32..200,
        ) {
            let policy = RetryPolicy {
                max_attempts: 5,
                initial_backoff: Duration::from_millis(initial_ms),
                max_backoff: Duration::from_millis(cap_ms),
                multiplier,
            };
            prop_assert!(policy.backoff(attempt) <= policy.max_backoff);
            prop_assert!(policy.backoff(attempt) <= policy.backoff(attempt + 1));
        }

        /// Walks the steps and tracks where the group is online: it is never online on two
        /// clusters at once, every wizard run reads from where the group is, and the runbook
        /// ends with the group online only on the target.
        #[test]
        fn the_group_is_online_in_exactly_one_place_and_ends_on_the_target(interims in 0usize..5) {
            let mut names = vec!["S".to_owned()];
            names.extend((0..interims).map(|i| format!("I{i}")));
            names.push("T".to_owned());
            let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let steps = runbook(&route_through(&name_refs), &RunbookOptions::default());

            let mut online: Vec<&str> = vec!["S"];
            let mut phase = Phase::Prepare;
            for step in &steps {
                prop_assert!(step.phase >= phase, "phases go forward");
                phase = step.phase;
                match step.kind {
                    StepKind::OfflineSource | StepKind::OfflineInterim => {
                        prop_assert_eq!(online.clone(), vec![step.cluster.as_str()]);
                        online.clear();
                    }
                    StepKind::OnlineInterim | StepKind::OnlineTarget => {
                        online.push(step.cluster.as_str());
                        prop_assert!(online.len() <= 1, "online twice: {:?}", online);
                    }
                    StepKind::MigrateToInterim | StepKind::MigrateToTarget => {
                        let peer = step.peer.as_deref().expect("a wizard run has a source");
                        prop_assert_eq!(online.clone(), vec![peer]);
                    }
                    StepKind::VerifyInterim | StepKind::VerifyTarget => {
                        prop_assert_eq!(online.clone(), vec![step.cluster.as_str()]);
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(online, vec!["T"]);
            let last_cutover = steps.iter().rev().find(|s| s.phase == Phase::Cutover);
            prop_assert_eq!(last_cutover.map(|s| s.kind), Some(StepKind::VerifyTarget));
            let cleanups = steps.iter().filter(|s| s.kind == StepKind::CleanupInterim).count();
            prop_assert_eq!(cleanups, interims);
        }
    }
}
