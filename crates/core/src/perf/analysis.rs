//! The cluster-wide questions one node cannot answer, as pure functions over step series.
//!
//! Two independent parts:
//! - [`find_redirected`] spots Cluster Shared Volumes that ran in redirected I/O mode, from per-node
//!   disk counters, the CSV redirected counters and (as evidence only) the storage server's view.
//! - [`place`] / [`balance`] plan where file-server groups go so every node keeps its headroom.
//!
//! Nothing here does I/O or panics: missing samples, mismatched vector lengths and odd values
//! all degrade to "unknown" rather than to an error.

use serde::Serialize;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------------------------
// Part 1: redirected I/O detection
// ---------------------------------------------------------------------------------------------

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

/// Whole numbers for real loads, one decimal for the near-zero ones that make the case.
fn format_rate(value: f64) -> String {
    if value.abs() >= 10.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.1}");
        text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
    }
}

/// Rounded down: "100.0%" would claim the other nodes did no I/O at all when they still did a little.
fn format_share_pct(share_pct: f64) -> String {
    format!("{:.1}", (share_pct * 10.0).floor() / 10.0)
}

// ---------------------------------------------------------------------------------------------
// Part 2: load balance and placement
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeCapacity {
    pub node: String,
    /// p95 of the node's transfers/s over the chosen range (what it already carries), summed over its volumes.
    pub baseline_p95: f64,
    /// Configured capacity in transfers/s.
    pub capacity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GroupDemand {
    pub group: String,
    /// p95 transfers/s the group put on its source cluster.
    pub p95: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacementRequest {
    pub nodes: Vec<NodeCapacity>,
    pub groups: Vec<GroupDemand>,
    /// Percent of capacity that must stay free on every node, 0..100 (clamped, see [`place`]).
    pub headroom_pct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct NodeBalance {
    pub node: String,
    /// Usable capacity: non-finite or negative configured capacity reads as 0.
    pub capacity: f64,
    /// Baseline load: negative or non-finite reads as 0.
    pub baseline_p95: f64,
    /// capacity * (1 - headroom/100)
    pub limit: f64,
    pub placed: f64,
    /// baseline + placed
    pub planned: f64,
    /// Percent of capacity still free after placement (0 for a node without capacity).
    pub headroom_pct: f64,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Assignment {
    pub group: String,
    pub node: String,
    pub p95: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Placement {
    /// In placement order (largest group first).
    pub assignments: Vec<Assignment>,
    /// Sorted by node name.
    pub nodes: Vec<NodeBalance>,
    /// Groups that fit on no node under the limit, largest first.
    pub unplaced: Vec<GroupDemand>,
    /// True when every group was placed with every node at or under its limit.
    pub fits: bool,
    /// The reasoning: a first line stating the rule, one line per node already over its limit,
    /// then one line per group (where it went, or why it fits nowhere).
    pub reasoning: Vec<String>,
}

/// Plans where the groups go: largest group first (p95 descending, ties by name), each onto the
/// node that keeps the most room (limit − planned) after taking it, among nodes where it fits
/// under the limit; ties by node name.
///
/// Headroom is clamped to 0..=100 (NaN counts as 0): a negative reserve would plan nodes past
/// their capacity and one above 100 would make every limit negative. Negative or non-finite
/// demands and baselines count as 0; a node whose capacity is not a positive finite number takes
/// nothing. A group that fits nowhere stays unplaced rather than overloading a node, so the
/// plan never makes an overload worse.
pub fn place(request: &PlacementRequest) -> Placement {
    let headroom = clamp_headroom(request.headroom_pct);
    let mut nodes = balance(&request.nodes, headroom);
    let mut groups: Vec<GroupDemand> = request
        .groups
        .iter()
        .map(|group| GroupDemand {
            group: group.group.clone(),
            p95: sanitize_load(group.p95),
        })
        .collect();
    groups.sort_by(|a, b| b.p95.total_cmp(&a.p95).then_with(|| a.group.cmp(&b.group)));

    let mut reasoning = vec![format!(
        "Rule: largest group first (p95 descending, ties by name), each onto the node that keeps \
         the most room (limit − planned) after it, where limit = capacity × (1 − {headroom}% \
         headroom); ties by node name."
    )];
    for node in nodes.iter().filter(|node| node.planned > node.limit) {
        reasoning.push(format!(
            "{} already carries {}/s, over its {}/s limit",
            node.node,
            format_rate(node.baseline_p95),
            format_rate(node.limit)
        ));
    }

    let mut assignments = Vec::new();
    let mut unplaced = Vec::new();
    for group in groups {
        let target = nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.takes_load() && node.planned + group.p95 <= node.limit)
            .max_by(|(_, a), (_, b)| {
                a.room()
                    .total_cmp(&b.room())
                    .then_with(|| b.node.cmp(&a.node))
            })
            .map(|(index, _)| index);
        match target.and_then(|index| nodes.get_mut(index)) {
            Some(node) => {
                node.take(&group);
                reasoning.push(format!(
                    "{} ({}/s) → {}: the most room after it ({}/s of {}/s limit)",
                    group.group,
                    format_rate(group.p95),
                    node.node,
                    format_rate(node.room()),
                    format_rate(node.limit)
                ));
                assignments.push(Assignment {
                    group: group.group,
                    node: node.node.clone(),
                    p95: group.p95,
                });
            }
            None => {
                reasoning.push(unplaced_reason(&group, &nodes));
                unplaced.push(group);
            }
        }
    }

    let fits = unplaced.is_empty() && nodes.iter().all(|node| node.planned <= node.limit);
    Placement {
        assignments,
        nodes,
        unplaced,
        fits,
        reasoning,
    }
}

fn unplaced_reason(group: &GroupDemand, nodes: &[NodeBalance]) -> String {
    let roomiest = nodes
        .iter()
        .filter(|node| node.takes_load())
        .max_by(|a, b| {
            a.room()
                .total_cmp(&b.room())
                .then_with(|| b.node.cmp(&a.node))
        });
    let why = match roomiest {
        Some(node) => format!(
            "largest free room was {}/s ({})",
            format_rate(node.room()),
            node.node
        ),
        None => "no node has usable capacity".to_string(),
    };
    format!(
        "{} ({}/s) → unplaced: fits on no node under its limit; {why}",
        group.group,
        format_rate(group.p95)
    )
}

/// Balance of nodes alone (no groups): each node's baseline against capacity and headroom.
/// Headroom is clamped as in [`place`]; the result is sorted by node name.
pub fn balance(nodes: &[NodeCapacity], headroom_pct: f64) -> Vec<NodeBalance> {
    let headroom = clamp_headroom(headroom_pct);
    let mut balances: Vec<NodeBalance> = nodes
        .iter()
        .map(|node| NodeBalance::before_placement(node, headroom))
        .collect();
    balances.sort_by(|a, b| a.node.cmp(&b.node));
    balances
}

impl NodeBalance {
    fn before_placement(node: &NodeCapacity, headroom_pct: f64) -> Self {
        let capacity = sanitize_load(node.capacity);
        let baseline = sanitize_load(node.baseline_p95);
        Self {
            node: node.node.clone(),
            capacity,
            baseline_p95: baseline,
            limit: capacity * (1.0 - headroom_pct / 100.0),
            placed: 0.0,
            planned: baseline,
            headroom_pct: free_pct(capacity, baseline),
            groups: Vec::new(),
        }
    }

    fn takes_load(&self) -> bool {
        self.capacity > 0.0
    }

    fn room(&self) -> f64 {
        self.limit - self.planned
    }

    fn take(&mut self, group: &GroupDemand) {
        self.placed += group.p95;
        self.planned = self.baseline_p95 + self.placed;
        self.headroom_pct = free_pct(self.capacity, self.planned);
        self.groups.push(group.group.clone());
    }
}

fn clamp_headroom(headroom_pct: f64) -> f64 {
    if headroom_pct.is_nan() {
        0.0
    } else {
        headroom_pct.clamp(0.0, 100.0)
    }
}

fn sanitize_load(value: f64) -> f64 {
    if value.is_finite() && value > 0.0 {
        value
    } else {
        0.0
    }
}

fn free_pct(capacity: f64, planned: f64) -> f64 {
    if capacity > 0.0 {
        (capacity - planned) / capacity * 100.0
    } else {
        0.0
    }
}

/// Nearest-rank p95: the ceil(0.95·n)-th smallest value; None for no values.
pub fn p95(values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(crate::perf::chunk::p95_of_sorted(&sorted))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP_MS: i64 = 60_000;
    const T0: i64 = 1_700_000_000_000;

    /// A tiny deterministic LCG so the tests see realistic jitter without a dependency.
    struct Jitter(u64);

    impl Jitter {
        /// A factor within ±1%.
        fn factor(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
            1.0 + (unit * 2.0 - 1.0) * 0.01
        }
    }

    /// Per node (transfers/s, redirected/s) at a step, before jitter.
    type Shape = fn(usize) -> [(f64, f64); 2];

    /// Two nodes with ±1% jitter; storage sees the jittered node sum. Without counters the
    /// redirected vectors stay empty, which also exercises "missing means None".
    fn two_nodes(step_count: usize, with_counters: bool, shape: Shape) -> VolumeSteps {
        let mut jitter = Jitter(42);
        let mut nodes = vec![
            NodeSteps {
                node: "node1".into(),
                transfers: vec![],
                redirected: vec![],
            },
            NodeSteps {
                node: "node2".into(),
                transfers: vec![],
                redirected: vec![],
            },
        ];
        let mut storage = Vec::new();
        for step in 0..step_count {
            let mut sum = 0.0;
            for (node, (transfers, redirected)) in nodes.iter_mut().zip(shape(step)) {
                let transfers = transfers * jitter.factor();
                sum += transfers;
                node.transfers.push(Some(transfers));
                if with_counters {
                    node.redirected.push(Some(redirected * jitter.factor()));
                }
            }
            storage.push(Some(sum * jitter.factor()));
        }
        VolumeSteps {
            volume: "CSV1".into(),
            step_ms: STEP_MS,
            times: (0..step_count as i64).map(|i| T0 + i * STEP_MS).collect(),
            nodes,
            storage: Some(storage),
        }
    }

    const NORMAL: [(f64, f64); 2] = [(867.0, 0.0), (715.0, 0.0)];
    const NODE1_COORDINATES: [(f64, f64); 2] = [(1582.0, 0.0), (0.3, 715.0)];
    const NODE2_COORDINATES: [(f64, f64); 2] = [(0.3, 867.0), (1582.0, 0.0)];

    fn field_note(step: usize) -> [(f64, f64); 2] {
        if (30..60).contains(&step) {
            NODE1_COORDINATES
        } else {
            NORMAL
        }
    }

    fn find(steps: &VolumeSteps) -> Vec<RedirectedInterval> {
        find_redirected(steps, &RedirectThresholds::default())
    }

    fn time(step: usize) -> i64 {
        T0 + step as i64 * STEP_MS
    }

    fn spans(intervals: &[RedirectedInterval]) -> Vec<(String, i64, i64, usize)> {
        intervals
            .iter()
            .map(|i| (i.coordinator.clone(), i.start_ms, i.end_ms, i.steps))
            .collect()
    }

    fn close(actual: f64, expected: f64, tolerance_pct: f64) -> bool {
        (actual - expected).abs() <= expected.abs() * tolerance_pct / 100.0
    }

    #[test]
    fn defaults_match_the_documented_thresholds() {
        let t = RedirectThresholds::default();
        assert_eq!(t.redirected_min, 1.0);
        assert_eq!(t.coordinator_share_pct, 95.0);
        assert_eq!(t.near_zero_pct, 2.0);
        assert_eq!(t.active_pct, 10.0);
        assert_eq!(t.idle_below, 5.0);
    }

    #[test]
    fn field_note_with_counters_finds_one_interval_on_node1() {
        let steps = two_nodes(90, true, field_note);
        let found = find(&steps);
        assert_eq!(
            spans(&found),
            vec![("node1".into(), time(30), time(59) + STEP_MS, 30)]
        );
        let interval = &found[0];
        assert_eq!(interval.volume, "CSV1");
        let evidence = &interval.evidence;
        assert_eq!(evidence.signal, "both");
        assert!(evidence.coordinator_share_pct > 99.9);
        assert!(close(evidence.node_sum, 1582.3, 1.0));
        assert!(close(evidence.storage.unwrap(), 1582.3, 2.0));
        assert!(close(evidence.redirected, 715.0, 1.0));
        let node2 = &evidence.nodes[1];
        assert_eq!(node2.node, "node2");
        assert!(close(node2.before.unwrap(), 715.0, 1.0));
        assert!(close(node2.during, 0.3, 1.0));
        assert!(close(node2.redirected, 715.0, 1.0));
        let node1 = &evidence.nodes[0];
        assert!(close(node1.before.unwrap(), 867.0, 1.0));
        assert!(close(node1.during, 1582.0, 1.0));
        assert!(
            evidence.summary.starts_with("node2's I/O fell from 71"),
            "{}",
            evidence.summary
        );
        assert!(
            evidence
                .summary
                .contains("to 0.3/s and its redirected counters show 71")
        );
        assert!(
            evidence
                .summary
                .contains("while node1 carried 99.9% of 158"),
            "{}",
            evidence.summary
        );
        assert!(evidence.summary.contains("storage server saw 15"));
    }

    #[test]
    fn field_note_without_counters_finds_the_same_interval_by_funnelling() {
        let steps = two_nodes(90, false, field_note);
        let found = find(&steps);
        assert_eq!(
            spans(&found),
            vec![("node1".into(), time(30), time(59) + STEP_MS, 30)]
        );
        let evidence = &found[0].evidence;
        assert_eq!(evidence.signal, "funnelled");
        assert_eq!(evidence.redirected, 0.0);
        assert!(!evidence.summary.contains("redirected counters"));
    }

    #[test]
    fn ramps_and_node2_stopping_first_are_not_redirection() {
        fn ramps(step: usize) -> [(f64, f64); 2] {
            let step = step as f64;
            let node2 = if step < 10.0 {
                715.0 * step / 10.0
            } else if step < 70.0 {
                715.0
            } else {
                (715.0 * (80.0 - step) / 10.0).max(0.0)
            };
            let node1 = if step < 70.0 {
                867.0
            } else {
                (867.0 * (90.0 - step) / 20.0).max(0.0)
            };
            [(node1, 0.0), (node2, 0.0)]
        }
        assert_eq!(find(&two_nodes(100, true, ramps)), vec![]);
        assert_eq!(find(&two_nodes(100, false, ramps)), vec![]);
    }

    #[test]
    fn workload_stopping_on_one_node_is_not_redirection() {
        fn node2_stops(step: usize) -> [(f64, f64); 2] {
            if step < 30 {
                NORMAL
            } else {
                [(867.0, 0.0), (0.0, 0.0)]
            }
        }
        assert_eq!(find(&two_nodes(60, false, node2_stops)), vec![]);
    }

    #[test]
    fn redirection_from_the_first_step_needs_counters() {
        fn starts_redirected(step: usize) -> [(f64, f64); 2] {
            if step < 20 { NODE1_COORDINATES } else { NORMAL }
        }
        let found = find(&two_nodes(60, true, starts_redirected));
        assert_eq!(
            spans(&found),
            vec![("node1".into(), time(0), time(19) + STEP_MS, 20)]
        );
        assert_eq!(found[0].evidence.signal, "redirected_counters");
        assert!(found[0].evidence.nodes.iter().all(|n| n.before.is_none()));
        assert!(
            found[0]
                .evidence
                .summary
                .starts_with("node2's I/O was 0.3/s and its redirected counters show 7"),
            "{}",
            found[0].evidence.summary
        );

        assert_eq!(find(&two_nodes(60, false, starts_redirected)), vec![]);
    }

    #[test]
    fn two_separate_intervals() {
        fn twice(step: usize) -> [(f64, f64); 2] {
            if (20..30).contains(&step) || (45..55).contains(&step) {
                NODE1_COORDINATES
            } else {
                NORMAL
            }
        }
        let expected = vec![
            ("node1".into(), time(20), time(29) + STEP_MS, 10),
            ("node1".into(), time(45), time(54) + STEP_MS, 10),
        ];
        assert_eq!(spans(&find(&two_nodes(70, true, twice))), expected);
        assert_eq!(spans(&find(&two_nodes(70, false, twice))), expected);
    }

    #[test]
    fn coordinator_change_starts_a_new_interval() {
        fn moves(step: usize) -> [(f64, f64); 2] {
            match step {
                20..30 => NODE1_COORDINATES,
                30..40 => NODE2_COORDINATES,
                _ => NORMAL,
            }
        }
        let expected = vec![
            ("node1".into(), time(20), time(29) + STEP_MS, 10),
            ("node2".into(), time(30), time(39) + STEP_MS, 10),
        ];
        let with_counters = find(&two_nodes(60, true, moves));
        assert_eq!(spans(&with_counters), expected);
        // The second interval still compares against the run before the first one.
        assert!(close(
            with_counters[1].evidence.nodes[0].before.unwrap(),
            867.0,
            1.0
        ));
        assert_eq!(spans(&find(&two_nodes(60, false, moves))), expected);
    }

    #[test]
    fn idle_volume_is_never_redirected() {
        fn idle(step: usize) -> [(f64, f64); 2] {
            if step < 30 {
                [(2.0, 0.0), (1.5, 0.0)]
            } else {
                [(3.0, 0.0), (0.0, 0.0)]
            }
        }
        assert_eq!(find(&two_nodes(60, true, idle)), vec![]);
        assert_eq!(find(&two_nodes(60, false, idle)), vec![]);
    }

    #[test]
    fn a_new_workload_after_an_idle_period_is_not_funnelling() {
        fn restart_on_node1(step: usize) -> [(f64, f64); 2] {
            match step {
                0..20 => [(400.0, 0.0), (400.0, 0.0)],
                20..25 => [(1.0, 0.0), (1.0, 0.0)],
                _ => [(900.0, 0.0), (0.0, 0.0)],
            }
        }
        assert_eq!(find(&two_nodes(40, false, restart_on_node1)), vec![]);
    }

    #[test]
    fn redirected_counters_fire_even_on_an_idle_volume() {
        fn quiet_but_redirected(step: usize) -> [(f64, f64); 2] {
            if step == 3 {
                [(2.0, 0.0), (0.0, 2.0)]
            } else {
                [(1.0, 0.0), (1.0, 0.0)]
            }
        }
        let found = find(&two_nodes(6, true, quiet_but_redirected));
        assert_eq!(
            spans(&found),
            vec![("node1".into(), time(3), time(3) + STEP_MS, 1)]
        );
    }

    #[test]
    fn a_gap_step_splits_the_interval_but_keeps_the_reference() {
        for with_counters in [true, false] {
            let mut steps = two_nodes(90, with_counters, field_note);
            for node in &mut steps.nodes {
                node.transfers[45] = None;
                if with_counters {
                    node.redirected[45] = None;
                }
            }
            assert_eq!(
                spans(&find(&steps)),
                vec![
                    ("node1".into(), time(30), time(44) + STEP_MS, 15),
                    ("node1".into(), time(46), time(59) + STEP_MS, 14),
                ],
                "with_counters: {with_counters}"
            );
        }
    }

    #[test]
    fn samples_missing_past_a_short_vector_count_as_none() {
        let mut steps = two_nodes(90, true, field_note);
        for node in &mut steps.nodes {
            node.transfers.truncate(45);
            node.redirected.truncate(45);
        }
        steps.storage = Some(vec![Some(1.0); 3]);
        let found = find(&steps);
        assert_eq!(
            spans(&found),
            vec![("node1".into(), time(30), time(44) + STEP_MS, 15)]
        );
        assert_eq!(found[0].evidence.storage, None);
    }

    #[test]
    fn mismatched_lengths_do_not_panic() {
        let mut jitter = Jitter(7);
        for times_len in [0usize, 1, 7, 40] {
            for (a, b, c) in [
                (0usize, 3usize, 50usize),
                (40, 0, 1),
                (5, 60, 0),
                (60, 60, 60),
            ] {
                let mut values = |len: usize, scale: f64| -> Vec<Option<f64>> {
                    (0..len)
                        .map(|i| (i % 4 != 0).then(|| scale * jitter.factor()))
                        .collect()
                };
                let steps = VolumeSteps {
                    volume: "v".into(),
                    step_ms: STEP_MS,
                    times: (0..times_len as i64).map(time_of).collect(),
                    nodes: vec![
                        NodeSteps {
                            node: "a".into(),
                            transfers: values(a, 1000.0),
                            redirected: values(c, 3.0),
                        },
                        NodeSteps {
                            node: "b".into(),
                            transfers: values(b, 0.1),
                            redirected: values(a, 0.0),
                        },
                    ],
                    storage: Some(values(b, 900.0)),
                };
                for interval in find(&steps) {
                    assert!(interval.start_ms < interval.end_ms);
                    assert!(interval.steps > 0);
                }
            }
        }

        fn time_of(step: i64) -> i64 {
            T0 + step * STEP_MS
        }
    }

    #[test]
    fn empty_and_degenerate_inputs_find_nothing() {
        let empty = VolumeSteps {
            volume: "v".into(),
            step_ms: STEP_MS,
            times: vec![],
            nodes: vec![],
            storage: None,
        };
        assert_eq!(find(&empty), vec![]);
        let no_nodes = VolumeSteps {
            times: vec![T0, T0 + STEP_MS],
            ..empty.clone()
        };
        assert_eq!(find(&no_nodes), vec![]);
        let all_none = VolumeSteps {
            nodes: vec![NodeSteps {
                node: "a".into(),
                transfers: vec![None, None],
                redirected: vec![None, None],
            }],
            ..no_nodes
        };
        assert_eq!(find(&all_none), vec![]);
    }

    #[test]
    fn a_single_node_with_counters_and_extreme_times_does_not_overflow() {
        let steps = VolumeSteps {
            volume: "v".into(),
            step_ms: i64::MAX,
            times: vec![i64::MAX - 1],
            nodes: vec![NodeSteps {
                node: "solo".into(),
                transfers: vec![Some(100.0)],
                redirected: vec![Some(50.0)],
            }],
            storage: None,
        };
        let found = find(&steps);
        assert_eq!(
            spans(&found),
            vec![("solo".into(), i64::MAX - 1, i64::MAX, 1)]
        );
        assert_eq!(found[0].evidence.summary, "solo carried 100.0% of 100/s");
    }

    #[test]
    fn rates_are_formatted_for_reading() {
        assert_eq!(format_rate(1582.3), "1582");
        assert_eq!(format_rate(0.4), "0.4");
        assert_eq!(format_rate(0.0), "0");
        assert_eq!(format_rate(5.0), "5");
        assert_eq!(format_share_pct(99.98), "99.9");
        assert_eq!(format_share_pct(100.0), "100.0");
    }

    // --- Part 2 ---

    fn node(name: &str, baseline_p95: f64, capacity: f64) -> NodeCapacity {
        NodeCapacity {
            node: name.into(),
            baseline_p95,
            capacity,
        }
    }

    fn group(name: &str, p95: f64) -> GroupDemand {
        GroupDemand {
            group: name.into(),
            p95,
        }
    }

    fn fitting_request() -> PlacementRequest {
        PlacementRequest {
            nodes: vec![
                node("node1", 1000.0, 3000.0),
                node("node2", 400.0, 3000.0),
                node("node3", 200.0, 2000.0),
            ],
            groups: vec![
                group("FS12", 420.0),
                group("FS7", 900.0),
                group("FS9", 300.0),
                group("FS3", 300.0),
            ],
            headroom_pct: 20.0,
        }
    }

    fn assigned(placement: &Placement) -> Vec<(&str, &str)> {
        placement
            .assignments
            .iter()
            .map(|a| (a.group.as_str(), a.node.as_str()))
            .collect()
    }

    #[test]
    fn placement_that_fits_puts_each_group_where_most_room_remains() {
        let placement = place(&fitting_request());
        // Rooms before: node1 1400, node2 2000, node3 1400 (limits 2400, 2400, 1600).
        assert_eq!(
            assigned(&placement),
            vec![
                ("FS7", "node2"),
                ("FS12", "node1"),
                ("FS3", "node3"),
                // node2 and node3 would both keep 800/s: the name decides.
                ("FS9", "node2"),
            ]
        );
        assert!(placement.fits);
        assert!(placement.unplaced.is_empty());
        let node2 = &placement.nodes[1];
        assert_eq!(node2.node, "node2");
        assert_eq!(node2.placed, 1200.0);
        assert_eq!(node2.planned, 1600.0);
        assert_eq!(node2.limit, 2400.0);
        assert!((node2.headroom_pct - 140.0 / 3.0).abs() < 1e-9);
        assert_eq!(node2.groups, vec!["FS7", "FS9"]);
        let node3 = &placement.nodes[2];
        assert_eq!(node3.node, "node3");
        assert_eq!(node3.placed, 300.0);
        assert_eq!(node3.planned, 500.0);
        assert_eq!(node3.limit, 1600.0);
        assert_eq!(node3.headroom_pct, 75.0);
        assert_eq!(node3.groups, vec!["FS3"]);
        assert_eq!(placement.reasoning.len(), 5);
        assert!(placement.reasoning[0].starts_with("Rule:"));
        assert_eq!(
            placement.reasoning[1],
            "FS7 (900/s) → node2: the most room after it (1100/s of 2400/s limit)"
        );
        assert_eq!(
            placement.reasoning[2],
            "FS12 (420/s) → node1: the most room after it (980/s of 2400/s limit)"
        );
    }

    #[test]
    fn a_group_too_big_for_any_node_stays_unplaced() {
        let mut request = fitting_request();
        request.groups.push(group("FSbig", 5000.0));
        let placement = place(&request);
        assert!(!placement.fits);
        assert_eq!(placement.unplaced, vec![group("FSbig", 5000.0)]);
        assert!(placement.assignments.iter().all(|a| a.group != "FSbig"));
        assert_eq!(
            placement.reasoning[1],
            "FSbig (5000/s) → unplaced: fits on no node under its limit; largest free room was \
             2000/s (node2)"
        );
        // The others are placed exactly as without it.
        assert_eq!(assigned(&placement), assigned(&place(&fitting_request())));
    }

    #[test]
    fn unplaced_groups_are_listed_largest_first() {
        let request = PlacementRequest {
            nodes: vec![node("n", 0.0, 100.0)],
            groups: vec![group("small", 200.0), group("large", 300.0)],
            headroom_pct: 0.0,
        };
        let placement = place(&request);
        assert_eq!(
            placement.unplaced,
            vec![group("large", 300.0), group("small", 200.0)]
        );
    }

    #[test]
    fn placement_is_deterministic_and_ignores_input_order() {
        let request = fitting_request();
        let mut shuffled = request.clone();
        shuffled.nodes.reverse();
        shuffled.groups.rotate_left(2);
        let first = place(&request);
        assert_eq!(first, place(&request));
        assert_eq!(first, place(&shuffled));
    }

    #[test]
    fn a_baseline_over_the_limit_means_it_does_not_fit() {
        let request = PlacementRequest {
            nodes: vec![node("hot", 2600.0, 3000.0), node("cool", 0.0, 3000.0)],
            groups: vec![group("FS1", 100.0)],
            headroom_pct: 20.0,
        };
        let placement = place(&request);
        assert_eq!(assigned(&placement), vec![("FS1", "cool")]);
        assert!(!placement.fits);
        assert!(
            placement
                .reasoning
                .contains(&"hot already carries 2600/s, over its 2400/s limit".to_string())
        );
    }

    #[test]
    fn nodes_without_capacity_take_nothing_and_bad_demands_count_as_zero() {
        let request = PlacementRequest {
            nodes: vec![
                node("zero", 0.0, 0.0),
                node("negative", 0.0, -10.0),
                node("infinite", 0.0, f64::INFINITY),
            ],
            groups: vec![group("FS1", -5.0), group("FS2", f64::INFINITY)],
            headroom_pct: 10.0,
        };
        let placement = place(&request);
        assert!(placement.assignments.is_empty());
        assert_eq!(
            placement.unplaced,
            vec![group("FS1", 0.0), group("FS2", 0.0)]
        );
        assert!(placement.reasoning[1].ends_with("no node has usable capacity"));

        let with_room = PlacementRequest {
            nodes: vec![node("zero", 0.0, 0.0), node("real", 10.0, 100.0)],
            ..request
        };
        let placement = place(&with_room);
        assert_eq!(assigned(&placement), vec![("FS1", "real"), ("FS2", "real")]);
        assert!(placement.fits);
        assert_eq!(placement.nodes[0].planned, 10.0);
    }

    #[test]
    fn empty_request_fits() {
        let placement = place(&PlacementRequest {
            nodes: vec![],
            groups: vec![],
            headroom_pct: 20.0,
        });
        assert!(placement.fits);
        assert_eq!(placement.reasoning.len(), 1);
    }

    #[test]
    fn headroom_sets_the_limit_and_is_clamped() {
        let nodes = [node("b", 500.0, 2000.0), node("a", 100.0, 1000.0)];
        let balances = balance(&nodes, 25.0);
        assert_eq!(balances[0].node, "a");
        let b = &balances[1];
        assert_eq!(b.limit, 1500.0);
        assert_eq!(b.planned, 500.0);
        assert_eq!(b.placed, 0.0);
        assert_eq!(b.headroom_pct, 75.0);
        assert!(b.groups.is_empty());

        assert_eq!(balance(&nodes, -10.0)[1].limit, 2000.0);
        assert_eq!(balance(&nodes, 150.0)[1].limit, 0.0);
        assert_eq!(balance(&nodes, f64::NAN)[1].limit, 2000.0);
        assert_eq!(balance(&[node("x", 5.0, 0.0)], 20.0)[0].headroom_pct, 0.0);
    }

    #[test]
    fn p95_uses_nearest_rank() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(p95(&hundred), Some(95.0));
        assert_eq!(p95(&[5.0]), Some(5.0));
        assert_eq!(p95(&[]), None);
        let mut unsorted = hundred.clone();
        unsorted.reverse();
        unsorted.swap(3, 70);
        assert_eq!(p95(&unsorted), Some(95.0));
        // ceil(0.95 * 20) = 19 exactly, not 20 through rounding.
        let twenty: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(p95(&twenty), Some(19.0));
        assert_eq!(p95(&[3.0, 1.0]), Some(3.0));
    }
}
