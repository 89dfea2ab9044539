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
