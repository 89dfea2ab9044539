use super::*;
use crate::plan::hops::HopRule;
use OsGeneration::*;

fn cluster(name: &str, os: OsGeneration) -> ClusterRef {
    ClusterRef {
        name: name.to_owned(),
        os,
    }
}

fn request(source: &str, target: &str) -> RouteRequest {
    RouteRequest {
        source: source.to_owned(),
        target: target.to_owned(),
        interim: None,
        allow_lossy: false,
    }
}

fn path(route: &Route) -> Vec<&str> {
    let mut names = vec![route.hops[0].from_cluster.as_str()];
    names.extend(route.hops.iter().map(|hop| hop.to_cluster.as_str()));
    names
}

fn fleet() -> Vec<ClusterRef> {
    vec![
        cluster("OLD", Ws2003),
        cluster("MID", Ws2008),
        cluster("NEW", Ws2008r2),
        cluster("W12", Ws2012),
        cluster("W12R2", Ws2012r2),
    ]
}

#[test]
fn ws2003_to_ws2008r2_goes_through_the_ws2008_interim() {
    let route = plan_route(&request("OLD", "NEW"), &fleet(), &HopTable::builtin()).expect("route");
    assert_eq!(path(&route), ["OLD", "MID", "NEW"]);
    assert!(!route.lossy);
    assert!(route.losses.is_empty());
    assert_eq!(
        route.refused_direct.as_deref(),
        Some("ws2003 -> ws2008r2 loses file_share resources (KB 983840)")
    );
    assert_eq!(route.interims().collect::<Vec<_>>(), ["MID"]);
    assert_eq!(route.hops[0].from_os, Ws2003);
    assert_eq!(route.hops[1].to_os, Ws2008r2);
    assert!(route.hops[1].rule_source.starts_with("KB 983840"));
}

#[test]
fn a_lossless_direct_hop_is_taken_directly() {
    let route = plan_route(&request("MID", "NEW"), &fleet(), &HopTable::builtin()).expect("route");
    assert_eq!(path(&route), ["MID", "NEW"]);
    assert_eq!(route.refused_direct, None);
    assert_eq!(route.interims().count(), 0);
}

#[test]
fn the_service_pack_requirement_travels_with_the_hop() {
    let route = plan_route(&request("MID", "W12"), &fleet(), &HopTable::builtin()).expect("route");
    assert_eq!(path(&route), ["MID", "W12"]);
    assert_eq!(
        route.hops[0].min_source_service_pack.as_deref(),
        Some("SP2")
    );
}

#[test]
fn ws2003_to_ws2012_needs_a_ws2008_interim_because_the_wizard_refuses_2003() {
    let route = plan_route(&request("OLD", "W12"), &fleet(), &HopTable::builtin()).expect("route");
    assert_eq!(path(&route), ["OLD", "MID", "W12"]);
    let refusal = route.refused_direct.expect("direct refused");
    assert!(
        refusal.starts_with("the migration wizard does not take ws2003 -> ws2012 (Migration Paths"),
        "{refusal}"
    );
}

#[test]
fn longer_routes_chain_through_several_interims() {
    let route =
        plan_route(&request("OLD", "W12R2"), &fleet(), &HopTable::builtin()).expect("route");
    assert_eq!(path(&route), ["OLD", "MID", "W12", "W12R2"]);
    assert_eq!(
        route.refused_direct.as_deref(),
        Some("the hop table has no ws2003 -> ws2012r2 row")
    );
}

#[test]
fn equal_routes_are_broken_by_cluster_name_not_registration_order() {
    let mut clusters = vec![
        cluster("OLD", Ws2003),
        cluster("ZULU", Ws2008),
        cluster("ALPHA", Ws2008),
        cluster("NEW", Ws2008r2),
    ];
    let table = HopTable::builtin();
    let first = plan_route(&request("OLD", "NEW"), &clusters, &table).expect("route");
    clusters.reverse();
    let second = plan_route(&request("OLD", "NEW"), &clusters, &table).expect("route");
    assert_eq!(path(&first), ["OLD", "ALPHA", "NEW"]);
    assert_eq!(first, second);
}

#[test]
fn a_missing_interim_is_named_with_the_kb() {
    let clusters = vec![cluster("OLD", Ws2003), cluster("NEW", Ws2008r2)];
    let err = plan_route(&request("OLD", "NEW"), &clusters, &HopTable::builtin())
        .expect_err("no interim");
    assert_eq!(
        err.to_string(),
        "no ws2008 cluster is registered to act as interim for ws2003 -> ws2008r2; see KB 983840"
    );
    assert_eq!(
        err,
        RouteError::NoInterimRegistered {
            from_os: Ws2003,
            to_os: Ws2008r2,
            missing: vec![Ws2008],
            see: Some("KB 983840".to_owned()),
        }
    );
}

#[test]
fn several_missing_interims_are_all_named() {
    let clusters = vec![cluster("OLD", Ws2003), cluster("NEW", Ws2012r2)];
    let err = plan_route(&request("OLD", "NEW"), &clusters, &HopTable::builtin())
        .expect_err("no interims");
    assert_eq!(
        err.to_string(),
        "no ws2008 cluster and no ws2012 cluster are registered to act as interims for ws2003 -> ws2012r2"
    );
}

#[test]
fn the_missing_interim_is_the_one_not_yet_registered() {
    let clusters = vec![
        cluster("OLD", Ws2003),
        cluster("MID", Ws2008),
        cluster("NEW", Ws2012r2),
    ];
    let err =
        plan_route(&request("OLD", "NEW"), &clusters, &HopTable::builtin()).expect_err("no ws2012");
    assert_eq!(
        err.to_string(),
        "no ws2012 cluster is registered to act as interim for ws2003 -> ws2012r2"
    );
}

#[test]
fn a_lossy_direct_hop_is_taken_only_when_allowed_and_nothing_better_exists() {
    let clusters = vec![cluster("OLD", Ws2003), cluster("NEW", Ws2008r2)];
    let table = HopTable::builtin();
    let req = RouteRequest {
        allow_lossy: true,
        ..request("OLD", "NEW")
    };
    let route = plan_route(&req, &clusters, &table).expect("lossy route");
    assert!(route.lossy);
    assert_eq!(route.losses, vec![ResourceKind::FileShare]);
    assert_eq!(path(&route), ["OLD", "NEW"]);
    assert_eq!(route.hops[0].loses, vec![ResourceKind::FileShare]);

    let with_interim = plan_route(&req, &fleet(), &table).expect("lossless route");
    assert!(!with_interim.lossy);
    assert_eq!(path(&with_interim), ["OLD", "MID", "NEW"]);
}

#[test]
fn a_lossy_hop_with_no_lossless_alternative_is_refused_unless_allowed() {
    // An operator table that has forgotten the ws2008 interim entirely.
    let table = HopTable {
        rules: vec![HopRule {
            from: Ws2003,
            to: Ws2008r2,
            accepted: true,
            min_source_service_pack: None,
            loses: vec![ResourceKind::FileShare],
            source: "KB 983840: lossy".to_owned(),
        }],
    };
    let clusters = vec![cluster("OLD", Ws2003), cluster("NEW", Ws2008r2)];
    let err = plan_route(&request("OLD", "NEW"), &clusters, &table).expect_err("lossy");
    assert_eq!(
        err.to_string(),
        "ws2003 -> ws2008r2 loses file_share resources (KB 983840) and no lossless route exists; allow a lossy migration to accept the loss"
    );
}

#[test]
fn a_downgrade_has_no_route() {
    let err =
        plan_route(&request("NEW", "OLD"), &fleet(), &HopTable::builtin()).expect_err("downgrade");
    assert_eq!(
        err.to_string(),
        "no route from `NEW` (ws2008r2) to `OLD` (ws2003): the hop table accepts no chain of hops between these generations"
    );
    let lossy = RouteRequest {
        allow_lossy: true,
        ..request("NEW", "OLD")
    };
    assert!(matches!(
        plan_route(&lossy, &fleet(), &HopTable::builtin()),
        Err(RouteError::NoRoute { .. })
    ));
}

#[test]
fn source_equal_to_target_is_refused() {
    let err = plan_route(&request("OLD", "OLD"), &fleet(), &HopTable::builtin()).expect_err("same");
    assert_eq!(
        err.to_string(),
        "source and target are the same cluster `OLD`; a migration needs two clusters"
    );
}

#[test]
fn unknown_names_are_refused_with_their_role() {
    let table = HopTable::builtin();
    let err = plan_route(&request("GONE", "NEW"), &fleet(), &table).expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown source cluster `GONE`: no registered cluster has that name"
    );
    let err = plan_route(&request("OLD", "GONE"), &fleet(), &table).expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown target cluster `GONE`: no registered cluster has that name"
    );
    let req = RouteRequest {
        interim: Some("GONE".to_owned()),
        ..request("OLD", "NEW")
    };
    let err = plan_route(&req, &fleet(), &table).expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown interim cluster `GONE`: no registered cluster has that name"
    );
}

#[test]
fn duplicate_registrations_are_refused() {
    let mut clusters = fleet();
    clusters.push(cluster("MID", Ws2012));
    let err =
        plan_route(&request("OLD", "NEW"), &clusters, &HopTable::builtin()).expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        "cluster name `MID` is registered more than once; cluster names must be unique"
    );
}

#[test]
fn an_explicit_interim_forces_its_path() {
    let mut clusters = fleet();
    clusters.push(cluster("AAA", Ws2008));
    let req = RouteRequest {
        interim: Some("MID".to_owned()),
        ..request("OLD", "NEW")
    };
    let route = plan_route(&req, &clusters, &HopTable::builtin()).expect("route");
    assert_eq!(path(&route), ["OLD", "MID", "NEW"]);
    assert_eq!(
        route.refused_direct.as_deref(),
        Some("ws2003 -> ws2008r2 loses file_share resources (KB 983840)")
    );
}

#[test]
fn an_explicit_interim_on_a_fine_direct_hop_says_it_was_requested() {
    let mut clusters = fleet();
    clusters.push(cluster("W12B", Ws2012));
    let req = RouteRequest {
        interim: Some("W12B".to_owned()),
        ..request("W12", "W12R2")
    };
    let route = plan_route(&req, &clusters, &HopTable::builtin()).expect("route");
    assert_eq!(path(&route), ["W12", "W12B", "W12R2"]);
    assert_eq!(
        route.refused_direct.as_deref(),
        Some("interim `W12B` was requested")
    );
}

#[test]
fn an_explicit_interim_must_be_a_third_cluster() {
    let table = HopTable::builtin();
    let req = RouteRequest {
        interim: Some("OLD".to_owned()),
        ..request("OLD", "NEW")
    };
    assert_eq!(
        plan_route(&req, &fleet(), &table)
            .expect_err("endpoint")
            .to_string(),
        "interim cluster `OLD` is also the source; an interim must be a third cluster"
    );
    let req = RouteRequest {
        interim: Some("NEW".to_owned()),
        ..request("OLD", "NEW")
    };
    assert_eq!(
        plan_route(&req, &fleet(), &table)
            .expect_err("endpoint")
            .to_string(),
        "interim cluster `NEW` is also the target; an interim must be a third cluster"
    );
}

#[test]
fn an_explicit_interim_must_be_accepted_on_both_hops() {
    let table = HopTable::builtin();
    let req = RouteRequest {
        interim: Some("W12".to_owned()),
        ..request("OLD", "NEW")
    };
    let err = plan_route(&req, &fleet(), &table).expect_err("refused hop");
    assert!(
        err.to_string().starts_with(
            "the migration wizard does not take ws2003 -> ws2012 (`OLD` -> `W12`): refused by Migration Paths"
        ),
        "{err}"
    );
    let req = RouteRequest {
        interim: Some("NEW".to_owned()),
        ..request("MID", "W12R2")
    };
    let err = plan_route(&req, &fleet(), &table).expect_err("no row");
    assert_eq!(
        err.to_string(),
        "the migration wizard does not take ws2008r2 -> ws2012r2 (`NEW` -> `W12R2`): the hop table has no row for it"
    );
}

#[test]
fn an_explicit_interim_must_not_lose_anything_even_when_lossy_is_allowed() {
    let clusters = vec![
        cluster("OLD", Ws2003),
        cluster("R2", Ws2008r2),
        cluster("W12", Ws2012),
    ];
    let req = RouteRequest {
        interim: Some("R2".to_owned()),
        allow_lossy: true,
        ..request("OLD", "W12")
    };
    let err = plan_route(&req, &clusters, &HopTable::builtin()).expect_err("lossy interim");
    assert_eq!(
        err.to_string(),
        "ws2003 -> ws2008r2 (`OLD` -> `R2`) loses file_share resources (KB 983840); every hop of a route through an interim must lose nothing"
    );
}

#[test]
fn an_operator_override_changes_the_plan() {
    let table = HopTable::builtin().with_overrides(vec![HopRule {
        from: Ws2003,
        to: Ws2008r2,
        accepted: true,
        min_source_service_pack: None,
        loses: Vec::new(),
        source: "hotfix lab test".to_owned(),
    }]);
    let route = plan_route(&request("OLD", "NEW"), &fleet(), &table).expect("route");
    assert_eq!(path(&route), ["OLD", "NEW"]);
    assert_eq!(route.hops[0].rule_source, "hotfix lab test");
}

/// The planner over random hop tables and fleets, checked against a brute-force search.
mod properties {
    use super::super::*;
    use crate::plan::hops::HopRule;
    use proptest::prelude::*;

    const GENERATIONS: [OsGeneration; 5] = [
        OsGeneration::Ws2003,
        OsGeneration::Ws2008,
        OsGeneration::Ws2008r2,
        OsGeneration::Ws2012,
        OsGeneration::Ws2012r2,
    ];

    /// What a random table says about one pair of generations.
    #[derive(Debug, Clone, Copy)]
    enum Row {
        Absent,
        Refused,
        Keeps,
        Loses,
    }

    fn table() -> impl Strategy<Value = HopTable> {
        let row = prop_oneof![
            3 => Just(Row::Absent),
            1 => Just(Row::Refused),
            3 => Just(Row::Keeps),
            2 => Just(Row::Loses),
        ];
        prop_oneof![
            1 => Just(HopTable::builtin()),
            3 => proptest::collection::vec(row, GENERATIONS.len() * GENERATIONS.len()).prop_map(
                |rows| {
                    let mut rules = Vec::new();
                    for (i, row) in rows.into_iter().enumerate() {
                        let from = GENERATIONS[i / GENERATIONS.len()];
                        let to = GENERATIONS[i % GENERATIONS.len()];
                        let (accepted, loses) = match row {
                            Row::Absent => continue,
                            Row::Refused => (false, Vec::new()),
                            Row::Keeps => (true, Vec::new()),
                            Row::Loses => (true, vec![ResourceKind::FileShare]),
                        };
                        rules.push(HopRule {
                            from,
                            to,
                            accepted,
                            min_source_service_pack: None,
                            loses,
                            source: format!("row {i}"),
                        });
                    }
                    HopTable { rules }
                }
            ),
        ]
    }

    fn clusters() -> impl Strategy<Value = Vec<ClusterRef>> {
        proptest::collection::vec(0..GENERATIONS.len(), 2..=6).prop_map(|generations| {
            generations
                .into_iter()
                .enumerate()
                .map(|(i, g)| ClusterRef {
                    name: format!("C{i}"),
                    os: GENERATIONS[g],
                })
                .collect()
        })
    }

    fn case() -> impl Strategy<Value = (HopTable, Vec<ClusterRef>, RouteRequest)> {
        (table(), clusters(), any::<bool>()).prop_flat_map(|(table, clusters, allow_lossy)| {
            let n = clusters.len();
            (Just(table), Just(clusters), 0..n, 1..n, Just(allow_lossy)).prop_map(
                move |(table, clusters, source, step, allow_lossy)| {
                    let target = (source + step) % n;
                    let req = RouteRequest {
                        source: clusters[source].name.clone(),
                        target: clusters[target].name.clone(),
                        interim: None,
                        allow_lossy,
                    };
                    (table, clusters, req)
                },
            )
        })
    }

    /// The length of the shortest lossless chain of distinct clusters, by trying every one.
    fn brute_force_shortest(
        req: &RouteRequest,
        clusters: &[ClusterRef],
        table: &HopTable,
    ) -> Option<usize> {
        fn walk(
            at: &ClusterRef,
            target: &str,
            clusters: &[ClusterRef],
            table: &HopTable,
            visited: &mut Vec<String>,
            best: &mut Option<usize>,
        ) {
            if at.name == target {
                let hops = visited.len() - 1;
                *best = Some(best.map_or(hops, |b| b.min(hops)));
                return;
            }
            for next in clusters {
                let lossless = table
                    .accepted(at.os, next.os)
                    .is_some_and(|rule| rule.loses.is_empty());
                if lossless && !visited.contains(&next.name) {
                    visited.push(next.name.clone());
                    walk(next, target, clusters, table, visited, best);
                    visited.pop();
                }
            }
        }
        let source = clusters.iter().find(|c| c.name == req.source)?;
        let mut best = None;
        let mut visited = vec![source.name.clone()];
        walk(
            source,
            &req.target,
            clusters,
            table,
            &mut visited,
            &mut best,
        );
        best
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn planned_routes_are_valid_shortest_and_honest((table, clusters, req) in case()) {
            let shortest = brute_force_shortest(&req, &clusters, &table);
            let result = plan_route(&req, &clusters, &table);

            // (d) a lossless route exists, so the planner finds one and loses nothing.
            if shortest.is_some() {
                prop_assert!(result.is_ok(), "{:?}", result);
            }
            let Ok(route) = result else { return Ok(()); };
            if shortest.is_some() {
                prop_assert!(!route.lossy);
            }

            // (e) the hops chain from source to target.
            prop_assert!(!route.hops.is_empty());
            prop_assert_eq!(&route.hops[0].from_cluster, &req.source);
            prop_assert_eq!(&route.hops[route.hops.len() - 1].to_cluster, &req.target);
            for pair in route.hops.windows(2) {
                prop_assert_eq!(&pair[0].to_cluster, &pair[1].from_cluster);
            }

            let os_of = |name: &str| clusters.iter().find(|c| c.name == name).map(|c| c.os);
            for hop in &route.hops {
                // (b) every hop is accepted by the table, as registered.
                let rule = table.accepted(hop.from_os, hop.to_os);
                prop_assert!(rule.is_some(), "{} -> {} not accepted", hop.from_os, hop.to_os);
                prop_assert_eq!(&hop.loses, &rule.expect("checked").loses);
                prop_assert_eq!(os_of(&hop.from_cluster), Some(hop.from_os));
                prop_assert_eq!(os_of(&hop.to_cluster), Some(hop.to_os));
                // (a) a route that is not lossy has no lossy hop.
                if !route.lossy {
                    prop_assert!(hop.loses.is_empty());
                }
            }

            if route.lossy {
                // (f) lossy only when allowed, only direct, and only when nothing better exists.
                prop_assert!(req.allow_lossy);
                prop_assert!(shortest.is_none());
                prop_assert_eq!(route.hops.len(), 1);
                prop_assert!(!route.losses.is_empty());
            } else {
                // (c) no shorter lossless route exists.
                prop_assert_eq!(Some(route.hops.len()), shortest);
                prop_assert!(route.losses.is_empty());
            }
            prop_assert_eq!(route.refused_direct.is_some(), route.hops.len() > 1);
        }

        #[test]
        fn registering_the_named_interims_makes_the_route_possible(
            (table, mut clusters, req) in case()
        ) {
            let req = RouteRequest { allow_lossy: false, ..req };
            if let Err(RouteError::NoInterimRegistered { missing, .. }) =
                plan_route(&req, &clusters, &table)
            {
                prop_assert!(!missing.is_empty());
                for (i, os) in missing.into_iter().enumerate() {
                    clusters.push(ClusterRef { name: format!("NEW{i}"), os });
                }
                let route = plan_route(&req, &clusters, &table);
                prop_assert!(matches!(route, Ok(Route { lossy: false, .. })), "{:?}", route);
            }
        }

        #[test]
        fn the_plan_does_not_depend_on_registration_order(
            (table, clusters, req) in case()
        ) {
            let mut reversed = clusters.clone();
            reversed.reverse();
            prop_assert_eq!(
                plan_route(&req, &clusters, &table),
                plan_route(&req, &reversed, &table)
            );
        }
    }
}
