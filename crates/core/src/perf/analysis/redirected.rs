//! Redirected I/O detection: which Cluster Shared Volumes ran in redirected I/O mode and when,
//! from per-node disk counters, the CSV redirected counters and (as evidence only) the storage
//! server's view.

use serde::Serialize;
use utoipa::ToSchema;

use super::format_rate;

/// One volume's counters on a regular time grid (`times[i]` is the start of step i, steps are `step_ms` long).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VolumeSteps {
    pub volume: String,
    pub step_ms: i64,
    pub times: Vec<i64>,
    pub nodes: Vec<NodeSteps>,
    /// The storage server's transfers/s for this volume per step, when known.
    pub storage: Option<Vec<Option<f64>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeSteps {
    pub node: String,
    /// Disk transfers/s this node sent to the volume itself, per step (None: no sample in that step).
    pub transfers: Vec<Option<f64>>,
    /// CSV redirected reads/s + writes/s of this node, per step (None: no sample).
    pub redirected: Vec<Option<f64>>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RedirectThresholds {
    /// A node whose redirected counters reach this (per second) counts as redirecting. Default 1.0.
    pub redirected_min: f64,
    /// The coordinator carries at least this share (percent) of the node sum. Default 95.0.
    pub coordinator_share_pct: f64,
    /// A node at or below this share (percent) of the node sum is "near zero". Default 2.0.
    pub near_zero_pct: f64,
    /// A node counts as active when its share is at least this (percent) in the reference period. Default 10.0.
    pub active_pct: f64,
    /// Ignore steps whose node sum is below this (transfers/s): idle volumes are never "redirected". Default 5.0.
    pub idle_below: f64,
}

impl Default for RedirectThresholds {
    fn default() -> Self {
        Self {
            redirected_min: 1.0,
            coordinator_share_pct: 95.0,
            near_zero_pct: 2.0,
            active_pct: 10.0,
            idle_below: 5.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RedirectedInterval {
    pub volume: String,
    pub coordinator: String,
    /// Start of the first redirected step.
    pub start_ms: i64,
    /// End (exclusive) of the last redirected step: its time + `step_ms` (saturating).
    pub end_ms: i64,
    pub steps: usize,
    pub evidence: RedirectEvidence,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RedirectEvidence {
    /// Which signal found it: "redirected_counters" (the CSV counters were non-zero), "funnelled"
    /// (one node carried the others' I/O) or "both" (each signal fired on at least one step).
    pub signal: String,
    /// Mean share (percent) of the node sum the coordinator carried during the interval.
    pub coordinator_share_pct: f64,
    /// Mean node sum during the interval.
    pub node_sum: f64,
    /// Mean storage transfers/s during the interval (None when storage unknown).
    pub storage: Option<f64>,
    /// Mean redirected I/O/s summed over the non-coordinator nodes during the interval.
    pub redirected: f64,
    /// Per node: mean transfers/s in the reference period just before the interval and during it.
    pub nodes: Vec<NodeEvidence>,
    /// A one-sentence human explanation naming the numbers.
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeEvidence {
    pub node: String,
    /// Mean transfers/s in the reference period; None when there was no reference or no sample.
    pub before: Option<f64>,
    /// Mean transfers/s during the interval; 0 when the node had no sample at all.
    pub during: f64,
    /// Mean redirected I/O/s during the interval; 0 when the node had no sample at all.
    pub redirected: f64,
}

const SIGNAL_COUNTERS: &str = "redirected_counters";
const SIGNAL_FUNNELLED: &str = "funnelled";
const SIGNAL_BOTH: &str = "both";

/// Few enough steps that a slow drift in the workload does not leak into the comparison, enough
/// that one noisy sample does not decide it.
const REFERENCE_STEPS: usize = 5;

/// When I/O is funnelled through the coordinator its own counters must rise by roughly what the
/// others lost; half of it leaves room for caching and noise yet rejects "node2's workload stopped".
const COORDINATOR_RISE_FRACTION: f64 = 0.5;

/// Finds the intervals in which `steps.volume` ran in redirected I/O mode.
///
/// Intervals are maximal runs of consecutive redirected steps with the same coordinator, in time
/// order. Samples past the end of a shorter vector count as missing; values past `times.len()` are
/// ignored.
///
/// Two deliberate readings of the reference-period rule:
/// - Steps without any transfers sample carry no information, so they neither extend nor break
///   the reference run (a single lost sample must not blind rule B for a whole interval).
/// - An idle step discards the reference: the workload demonstrably stopped, so a later workload
///   that runs on one node only must not be mistaken for funnelling against the old one.
pub fn find_redirected(steps: &VolumeSteps, t: &RedirectThresholds) -> Vec<RedirectedInterval> {
    let grid: Vec<Step> = (0..steps.times.len())
        .map(|index| Step::at(steps, index))
        .collect();
    let node_count = steps.nodes.len();

    let mut intervals = Vec::new();
    let mut open: Option<IntervalBuilder> = None;
    let mut reference_window: Vec<usize> = Vec::with_capacity(REFERENCE_STEPS + 1);
    // Set once a redirected step follows the window, so the next normal step starts a fresh run
    // while the interval itself keeps comparing against the run from before it.
    let mut reference_run_ended = false;

    for (index, step) in grid.iter().enumerate() {
        let reference = Reference::from_window(&grid, &reference_window, node_count);
        match classify(step, reference.as_ref(), t) {
            StepKind::Redirected {
                coordinator,
                counters,
                funnelled,
            } => {
                reference_run_ended = true;
                let continues = open
                    .as_ref()
                    .is_some_and(|builder| builder.coordinator == coordinator);
                if !continues {
                    if let Some(finished) = open.take() {
                        intervals.push(finished.finish(steps, t));
                    }
                    open = Some(IntervalBuilder::new(
                        step.time_ms,
                        coordinator,
                        reference,
                        node_count,
                    ));
                }
                if let Some(builder) = open.as_mut() {
                    builder.add(step, counters, funnelled);
                }
            }
            StepKind::Gap => {
                if let Some(finished) = open.take() {
                    intervals.push(finished.finish(steps, t));
                }
            }
            StepKind::Idle => {
                if let Some(finished) = open.take() {
                    intervals.push(finished.finish(steps, t));
                }
                reference_window.clear();
                reference_run_ended = false;
            }
            StepKind::Normal => {
                if let Some(finished) = open.take() {
                    intervals.push(finished.finish(steps, t));
                }
                if reference_run_ended {
                    reference_window.clear();
                    reference_run_ended = false;
                }
                reference_window.push(index);
                if reference_window.len() > REFERENCE_STEPS {
                    reference_window.remove(0);
                }
            }
        }
    }
    if let Some(finished) = open.take() {
        intervals.push(finished.finish(steps, t));
    }
    intervals
}

/// One grid step with every vector already resolved, so missing samples are plain `None`s.
struct Step {
    time_ms: i64,
    transfers: Vec<Option<f64>>,
    redirected: Vec<Option<f64>>,
    node_sum: f64,
    storage: Option<f64>,
}

fn sample_at(values: &[Option<f64>], index: usize) -> Option<f64> {
    values.get(index).copied().flatten()
}

impl Step {
    fn at(steps: &VolumeSteps, index: usize) -> Self {
        let transfers: Vec<Option<f64>> = steps
            .nodes
            .iter()
            .map(|node| sample_at(&node.transfers, index))
            .collect();
        let redirected = steps
            .nodes
            .iter()
            .map(|node| sample_at(&node.redirected, index))
            .collect();
        let node_sum = transfers.iter().flatten().sum();
        Self {
            time_ms: steps.times.get(index).copied().unwrap_or_default(),
            transfers,
            redirected,
            node_sum,
            storage: steps
                .storage
                .as_deref()
                .and_then(|storage| sample_at(storage, index)),
        }
    }

    fn share_pct(&self, value: f64) -> Option<f64> {
        (self.node_sum > 0.0).then(|| value / self.node_sum * 100.0)
    }

    /// Ties go to the earlier node so the choice never depends on anything but the input.
    fn busiest_node(&self) -> Option<usize> {
        let mut busiest: Option<(usize, f64)> = None;
        for (node, value) in self.transfers.iter().enumerate() {
            let Some(value) = *value else { continue };
            if busiest.is_none_or(|(_, best)| value > best) {
                busiest = Some((node, value));
            }
        }
        busiest.map(|(node, _)| node)
    }
}

/// Mean load per node over the reference run.
#[derive(Clone)]
struct Reference {
    node_means: Vec<Option<f64>>,
    node_sum_mean: f64,
}

impl Reference {
    fn from_window(grid: &[Step], window: &[usize], node_count: usize) -> Option<Self> {
        let steps: Vec<&Step> = window.iter().filter_map(|&index| grid.get(index)).collect();
        let node_sum_mean = mean_of(steps.iter().map(|step| step.node_sum))?;
        let node_means = (0..node_count)
            .map(|node| {
                mean_of(
                    steps
                        .iter()
                        .filter_map(|step| step.transfers.get(node).copied().flatten()),
                )
            })
            .collect();
        Some(Self {
            node_means,
            node_sum_mean,
        })
    }

    fn mean_of_node(&self, node: usize) -> Option<f64> {
        self.node_means.get(node).copied().flatten()
    }

    fn share_pct(&self, value: f64) -> Option<f64> {
        (self.node_sum_mean > 0.0).then(|| value / self.node_sum_mean * 100.0)
    }
}

fn mean_of(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut mean = Mean::default();
    values.for_each(|value| mean.add(value));
    mean.value()
}

#[derive(Debug, Clone, Copy, Default)]
struct Mean {
    total: f64,
    count: usize,
}

impl Mean {
    fn add(&mut self, value: f64) {
        self.total += value;
        self.count += 1;
    }

    fn value(&self) -> Option<f64> {
        (self.count > 0).then(|| self.total / self.count as f64)
    }
}

enum StepKind {
    Redirected {
        coordinator: usize,
        counters: bool,
        funnelled: bool,
    },
    /// No transfers sample at all: nothing to judge, and no coordinator could be named.
    Gap,
    Idle,
    Normal,
}

fn classify(step: &Step, reference: Option<&Reference>, t: &RedirectThresholds) -> StepKind {
    let Some(busiest) = step.busiest_node() else {
        return StepKind::Gap;
    };
    let counters = step
        .redirected
        .iter()
        .flatten()
        .any(|&value| value >= t.redirected_min);
    let is_idle = step.node_sum < t.idle_below;
    let funnelled_to = if is_idle {
        None
    } else {
        reference.and_then(|reference| funnelled_coordinator(step, reference, t))
    };
    if counters || funnelled_to.is_some() {
        return StepKind::Redirected {
            coordinator: funnelled_to.unwrap_or(busiest),
            counters,
            funnelled: funnelled_to.is_some(),
        };
    }
    if is_idle {
        StepKind::Idle
    } else {
        StepKind::Normal
    }
}

/// Rule B: the node that now carries (nearly) everything, provided it picked up what the
/// previously active nodes dropped. A node with no sample now or in the reference is unknown,
/// never "near zero" nor "active".
fn funnelled_coordinator(
    step: &Step,
    reference: &Reference,
    t: &RedirectThresholds,
) -> Option<usize> {
    let (coordinator, coordinator_now) =
        step.transfers
            .iter()
            .enumerate()
            .find_map(|(node, value)| {
                let value = (*value)?;
                let share = step.share_pct(value)?;
                (share >= t.coordinator_share_pct).then_some((node, value))
            })?;
    let coordinator_before = reference.mean_of_node(coordinator)?;

    let mut lost = 0.0;
    let mut any_dropped = false;
    for (node, now) in step.transfers.iter().enumerate() {
        if node == coordinator {
            continue;
        }
        let (Some(now), Some(before)) = (*now, reference.mean_of_node(node)) else {
            continue;
        };
        let was_active = reference
            .share_pct(before)
            .is_some_and(|share| share >= t.active_pct);
        let is_near_zero = step
            .share_pct(now)
            .is_some_and(|share| share <= t.near_zero_pct);
        if was_active && is_near_zero {
            lost += before - now;
            any_dropped = true;
        }
    }
    let rise = coordinator_now - coordinator_before;
    (any_dropped && rise >= COORDINATOR_RISE_FRACTION * lost).then_some(coordinator)
}

struct IntervalBuilder {
    start_ms: i64,
    last_ms: i64,
    coordinator: usize,
    reference: Option<Reference>,
    steps: usize,
    counters_fired: bool,
    funnelled_fired: bool,
    coordinator_share: Mean,
    node_sum: Mean,
    storage: Mean,
    redirected_elsewhere: Mean,
    node_transfers: Vec<Mean>,
    node_redirected: Vec<Mean>,
}

impl IntervalBuilder {
    fn new(
        start_ms: i64,
        coordinator: usize,
        reference: Option<Reference>,
        node_count: usize,
    ) -> Self {
        Self {
            start_ms,
            last_ms: start_ms,
            coordinator,
            reference,
            steps: 0,
            counters_fired: false,
            funnelled_fired: false,
            coordinator_share: Mean::default(),
            node_sum: Mean::default(),
            storage: Mean::default(),
            redirected_elsewhere: Mean::default(),
            node_transfers: vec![Mean::default(); node_count],
            node_redirected: vec![Mean::default(); node_count],
        }
    }

    fn add(&mut self, step: &Step, counters: bool, funnelled: bool) {
        self.last_ms = step.time_ms;
        self.steps += 1;
        self.counters_fired |= counters;
        self.funnelled_fired |= funnelled;
        if let Some(share) = step
            .transfers
            .get(self.coordinator)
            .copied()
            .flatten()
            .and_then(|value| step.share_pct(value))
        {
            self.coordinator_share.add(share);
        }
        self.node_sum.add(step.node_sum);
        if let Some(storage) = step.storage {
            self.storage.add(storage);
        }
        let redirected_elsewhere: f64 = step
            .redirected
            .iter()
            .enumerate()
            .filter(|(node, _)| *node != self.coordinator)
            .filter_map(|(_, value)| *value)
            .sum();
        self.redirected_elsewhere.add(redirected_elsewhere);
        for (mean, value) in self.node_transfers.iter_mut().zip(&step.transfers) {
            if let Some(value) = value {
                mean.add(*value);
            }
        }
        for (mean, value) in self.node_redirected.iter_mut().zip(&step.redirected) {
            if let Some(value) = value {
                mean.add(*value);
            }
        }
    }

    fn finish(self, steps: &VolumeSteps, t: &RedirectThresholds) -> RedirectedInterval {
        let node_name = |node: usize| {
            steps
                .nodes
                .get(node)
                .map(|node| node.node.clone())
                .unwrap_or_default()
        };
        let nodes: Vec<NodeEvidence> = (0..self.node_transfers.len())
            .map(|node| NodeEvidence {
                node: node_name(node),
                before: self
                    .reference
                    .as_ref()
                    .and_then(|reference| reference.mean_of_node(node)),
                during: self
                    .node_transfers
                    .get(node)
                    .and_then(Mean::value)
                    .unwrap_or_default(),
                redirected: self
                    .node_redirected
                    .get(node)
                    .and_then(Mean::value)
                    .unwrap_or_default(),
            })
            .collect();
        let signal = match (self.counters_fired, self.funnelled_fired) {
            (true, true) => SIGNAL_BOTH,
            (true, false) => SIGNAL_COUNTERS,
            _ => SIGNAL_FUNNELLED,
        };
        let coordinator = node_name(self.coordinator);
        let coordinator_share_pct = self.coordinator_share.value().unwrap_or_default();
        let node_sum = self.node_sum.value().unwrap_or_default();
        let storage = self.storage.value();
        let summary = summarize(
            &coordinator,
            self.coordinator,
            coordinator_share_pct,
            node_sum,
            storage,
            &nodes,
            t,
        );
        RedirectedInterval {
            volume: steps.volume.clone(),
            coordinator,
            start_ms: self.start_ms,
            end_ms: self.last_ms.saturating_add(steps.step_ms),
            steps: self.steps,
            evidence: RedirectEvidence {
                signal: signal.to_string(),
                coordinator_share_pct,
                node_sum,
                storage,
                redirected: self.redirected_elsewhere.value().unwrap_or_default(),
                nodes,
                summary,
            },
        }
    }
}

/// Names only the nodes that explain the verdict (those that dropped or show redirected I/O), so
/// the sentence stays readable on clusters with many idle nodes.
fn summarize(
    coordinator: &str,
    coordinator_index: usize,
    coordinator_share_pct: f64,
    node_sum: f64,
    storage: Option<f64>,
    nodes: &[NodeEvidence],
    t: &RedirectThresholds,
) -> String {
    let others: Vec<&NodeEvidence> = nodes
        .iter()
        .enumerate()
        .filter(|(index, _)| *index != coordinator_index)
        .map(|(_, node)| node)
        .collect();
    let dropped_or_redirecting = |node: &&NodeEvidence| {
        node.before.is_some_and(|before| node.during < before)
            || node.redirected >= t.redirected_min
    };
    let telling: Vec<&NodeEvidence> = if others.iter().any(dropped_or_redirecting) {
        others.into_iter().filter(dropped_or_redirecting).collect()
    } else {
        others
    };
    let clauses: Vec<String> = telling
        .iter()
        .map(|node| {
            let mut clause = match node.before {
                Some(before) if node.during < before => format!(
                    "{}'s I/O fell from {} to {}/s",
                    node.node,
                    format_rate(before),
                    format_rate(node.during)
                ),
                _ => format!("{}'s I/O was {}/s", node.node, format_rate(node.during)),
            };
            if node.redirected >= t.redirected_min {
                clause.push_str(&format!(
                    " and its redirected counters show {}/s",
                    format_rate(node.redirected)
                ));
            }
            clause
        })
        .collect();
    let carried = format!(
        "{coordinator} carried {}% of {}/s",
        format_share_pct(coordinator_share_pct),
        format_rate(node_sum)
    );
    let mut summary = if clauses.is_empty() {
        carried
    } else {
        format!("{} while {carried}", clauses.join(", "))
    };
    if let Some(storage) = storage {
        summary.push_str(&format!(
            " and the storage server saw {}/s",
            format_rate(storage)
        ));
    }
    summary
}

/// Rounded down: "100.0%" would claim the other nodes did no I/O at all when they still did a little.
fn format_share_pct(share_pct: f64) -> String {
    format!("{:.1}", (share_pct * 10.0).floor() / 10.0)
}

#[cfg(test)]
mod tests;
