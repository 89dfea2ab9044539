//! Load balance and placement: where file-server groups go so every node keeps its headroom,
//! from each node's baseline p95 and capacity and each group's p95 demand.

use serde::Serialize;
use utoipa::ToSchema;

use super::format_rate;

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
