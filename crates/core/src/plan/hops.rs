//! The hop table: which cluster-to-cluster moves the migration wizards accept, and what each one
//! loses. Kept as data, not code, so an operator can correct a row from configuration when a
//! field report contradicts it, without a new release.

use serde::{Deserialize, Serialize};

use crate::model::{OsGeneration, ResourceKind};

/// What the migration wizard of `to` does with a group coming from a cluster of `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopRule {
    pub from: OsGeneration,
    pub to: OsGeneration,
    /// Whether the wizard on `to` offers `from` as a source at all.
    pub accepted: bool,
    /// Service pack the source cluster must run, e.g. `SP2`; checked by preflight, because
    /// registered clusters do not record their service pack.
    #[serde(default)]
    pub min_source_service_pack: Option<String>,
    /// Resource kinds the wizard reports as migrated but does not carry over.
    #[serde(default)]
    pub loses: Vec<ResourceKind>,
    /// Where the row comes from, shown to operators next to every decision it drives. It starts
    /// with a short reference (`KB 983840`), optionally followed by `: ` and detail; messages
    /// quote only the short reference.
    pub source: String,
}

impl HopRule {
    /// A hop the planner may take without losing anything.
    pub fn is_lossless(&self) -> bool {
        self.accepted && self.loses.is_empty()
    }

    /// The short reference of [`HopRule::source`], for one-line messages.
    pub fn reference(&self) -> &str {
        self.source
            .split_once(": ")
            .map_or(self.source.as_str(), |(reference, _)| reference)
            .trim()
    }
}

/// Every known hop. A pair without a row is not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HopTable {
    pub rules: Vec<HopRule>,
}

const KB_983840: &str = "KB 983840: Not all resources are migrated from a Windows Server \
2003-based failover cluster to a Windows Server 2008 R2-based failover cluster; field notes \
2011-03-09 (Clustered File Share Migration, Windows Server 2003 to Windows Server 2008 R2)";

const WS2008_FROM_2003: &str = "Migrating Cluster Settings from Windows Server 2003 to Windows \
Server 2008 Step-by-Step Guide (Microsoft): the Migrate a Cluster Wizard takes 2003 server \
clusters; field notes 2011-03-09: it works from 2003 to 2008";

const WS2008R2_FROM_2008: &str = "KB 983840: a 2008 interim is its recommended workaround; field \
notes 2011-03-09: it works from 2008 to 2008 R2";

const WS2008R2_FROM_2008R2: &str = "Migrating Clustered Services and Applications to Windows \
Server 2008 R2 Step-by-Step Guide (Microsoft): the Migrate a Cluster Wizard takes 2003, 2008 and \
2008 R2 clusters";

const WS2012_PATHS: &str = "Migration Paths for Migrating to a Failover Cluster Running Windows \
Server 2012 (Microsoft): sources Windows Server 2008 SP2, Windows Server 2008 R2 SP1 and Windows \
Server 2012, File Server migrated from each";

const WS2012R2_COPY_ROLES: &str = "Migrate Cluster Roles to Windows Server 2012 R2 (Microsoft): \
the Copy Cluster Roles Wizard; ferry encodes only the next-generation and same-generation hops";

const COPY_ROLES_NEXT: &str = "Copy Cluster Roles Wizard (Microsoft, Failover Cluster Manager \
2012 R2 and later): ferry assumes the one-generation reach (N-1 to N) that Cluster Operating \
System Rolling Upgrade documents; wider hops need an operator row";

impl HopTable {
    /// The table as documented. Only hops with a citation are listed; anything else is refused
    /// until an operator adds a row for it.
    pub fn builtin() -> HopTable {
        use OsGeneration::*;
        let keeps = |from, to, source: &str| HopRule {
            from,
            to,
            accepted: true,
            min_source_service_pack: None,
            loses: Vec::new(),
            source: source.to_owned(),
        };
        let keeps_from_sp = |from, to, service_pack: &str, source: &str| HopRule {
            min_source_service_pack: Some(service_pack.to_owned()),
            ..keeps(from, to, source)
        };
        let rules = vec![
            // The 2008 wizard was built for 2003 server clusters; file shares come across.
            keeps(Ws2003, Ws2008, WS2008_FROM_2003),
            // The second leg of KB 983840's workaround; file shares come across.
            keeps(Ws2008, Ws2008r2, WS2008R2_FROM_2008),
            // Same generation: hardware refresh, supported by the 2008 R2 wizard.
            keeps(Ws2008r2, Ws2008r2, WS2008R2_FROM_2008R2),
            // The reason interims exist: the 2008 R2 wizard offers 2003 sources, reports
            // success, and drops every file share resource.
            HopRule {
                from: Ws2003,
                to: Ws2008r2,
                accepted: true,
                min_source_service_pack: None,
                loses: vec![ResourceKind::FileShare],
                source: KB_983840.to_owned(),
            },
            // The 2012 wizard no longer lists 2003 clusters as a source.
            HopRule {
                from: Ws2003,
                to: Ws2012,
                accepted: false,
                min_source_service_pack: None,
                loses: Vec::new(),
                source: WS2012_PATHS.to_owned(),
            },
            // The 2012 wizard takes 2008 only from SP2 on.
            keeps_from_sp(Ws2008, Ws2012, "SP2", WS2012_PATHS),
            // ... and 2008 R2 only from SP1 on.
            keeps_from_sp(Ws2008r2, Ws2012, "SP1", WS2012_PATHS),
            // Same generation: no service pack to require.
            keeps(Ws2012, Ws2012, WS2012_PATHS),
            // From 2012 R2 on the wizard is called Copy Cluster Roles.
            keeps(Ws2012, Ws2012r2, WS2012R2_COPY_ROLES),
            keeps(Ws2012r2, Ws2012r2, WS2012R2_COPY_ROLES),
            // Each later generation: one step up, or the same generation.
            keeps(Ws2012r2, Ws2016, COPY_ROLES_NEXT),
            keeps(Ws2016, Ws2016, COPY_ROLES_NEXT),
            keeps(Ws2016, Ws2019, COPY_ROLES_NEXT),
            keeps(Ws2019, Ws2019, COPY_ROLES_NEXT),
            keeps(Ws2019, Ws2022, COPY_ROLES_NEXT),
            keeps(Ws2022, Ws2022, COPY_ROLES_NEXT),
            keeps(Ws2022, Ws2025, COPY_ROLES_NEXT),
            keeps(Ws2025, Ws2025, COPY_ROLES_NEXT),
        ];
        HopTable { rules }
    }

    /// The table with operator rows applied: a row for a pair already present replaces it, any
    /// other row is added. Later overrides win over earlier ones for the same pair.
    pub fn with_overrides(mut self, overrides: Vec<HopRule>) -> HopTable {
        for rule in overrides {
            match self
                .rules
                .iter_mut()
                .find(|existing| existing.from == rule.from && existing.to == rule.to)
            {
                Some(existing) => *existing = rule,
                None => self.rules.push(rule),
            }
        }
        self
    }

    /// The row for a pair, if the table has one.
    pub fn rule(&self, from: OsGeneration, to: OsGeneration) -> Option<&HopRule> {
        self.rules.iter().find(|r| r.from == from && r.to == to)
    }

    /// The row for a pair when the wizard accepts it.
    pub fn accepted(&self, from: OsGeneration, to: OsGeneration) -> Option<&HopRule> {
        self.rule(from, to).filter(|r| r.accepted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use OsGeneration::*;

    fn row(from: OsGeneration, to: OsGeneration) -> HopRule {
        HopTable::builtin()
            .rule(from, to)
            .cloned()
            .unwrap_or_else(|| panic!("no builtin row {from} -> {to}"))
    }

    #[test]
    fn ws2003_to_ws2008_keeps_file_shares() {
        let rule = row(Ws2003, Ws2008);
        assert!(rule.is_lossless());
        assert!(rule.source.contains("2003 to 2008"));
    }

    #[test]
    fn ws2008_to_ws2008r2_keeps_file_shares() {
        let rule = row(Ws2008, Ws2008r2);
        assert!(rule.is_lossless());
        assert!(rule.source.contains("KB 983840"));
    }

    #[test]
    fn ws2003_to_ws2008r2_is_accepted_but_loses_file_shares() {
        let rule = row(Ws2003, Ws2008r2);
        assert!(rule.accepted);
        assert_eq!(rule.loses, vec![ResourceKind::FileShare]);
        assert!(!rule.is_lossless());
        assert_eq!(rule.reference(), "KB 983840");
    }

    #[test]
    fn the_reference_is_the_text_before_the_first_colon_or_all_of_it() {
        let mut rule = row(Ws2003, Ws2008);
        assert!(rule.reference().starts_with("Migrating Cluster Settings"));
        assert!(rule.reference().ends_with("(Microsoft)"));
        rule.source = "our lab, 2026-11".to_owned();
        assert_eq!(rule.reference(), "our lab, 2026-11");
    }

    #[test]
    fn the_2012_wizard_accepts_only_2008_sp2_2008r2_sp1_and_2012() {
        let ws2008 = row(Ws2008, Ws2012);
        assert!(ws2008.is_lossless());
        assert_eq!(ws2008.min_source_service_pack.as_deref(), Some("SP2"));
        let ws2008r2 = row(Ws2008r2, Ws2012);
        assert!(ws2008r2.is_lossless());
        assert_eq!(ws2008r2.min_source_service_pack.as_deref(), Some("SP1"));
        let ws2012 = row(Ws2012, Ws2012);
        assert!(ws2012.is_lossless());
        assert_eq!(ws2012.min_source_service_pack, None);
        assert!(!row(Ws2003, Ws2012).accepted);
        let table = HopTable::builtin();
        assert!(table.accepted(Ws2003, Ws2012).is_none());
        let sources: Vec<_> = table
            .rules
            .iter()
            .filter(|r| r.to == Ws2012 && r.accepted)
            .map(|r| r.from)
            .collect();
        assert_eq!(sources, vec![Ws2008, Ws2008r2, Ws2012]);
    }

    #[test]
    fn every_later_generation_is_reachable_one_step_at_a_time() {
        let table = HopTable::builtin();
        for pair in OsGeneration::ALL[3..].windows(2) {
            assert!(
                table
                    .accepted(pair[0], pair[1])
                    .is_some_and(HopRule::is_lossless),
                "{} -> {}",
                pair[0],
                pair[1]
            );
        }
    }

    #[test]
    fn no_builtin_row_goes_back_a_generation() {
        for rule in HopTable::builtin().rules {
            assert!(rule.from <= rule.to, "{} -> {}", rule.from, rule.to);
        }
    }

    #[test]
    fn every_builtin_row_is_unique_and_cited() {
        let table = HopTable::builtin();
        for (i, rule) in table.rules.iter().enumerate() {
            assert!(!rule.source.trim().is_empty());
            assert!(
                !table.rules[..i]
                    .iter()
                    .any(|r| r.from == rule.from && r.to == rule.to),
                "duplicate row {} -> {}",
                rule.from,
                rule.to
            );
        }
    }

    #[test]
    fn an_unlisted_pair_is_not_accepted() {
        let table = HopTable::builtin();
        assert!(table.rule(Ws2008r2, Ws2003).is_none());
        assert!(table.accepted(Ws2008r2, Ws2003).is_none());
    }

    #[test]
    fn an_override_replaces_the_row_for_its_pair() {
        let fixed = HopRule {
            from: Ws2003,
            to: Ws2008r2,
            accepted: true,
            min_source_service_pack: None,
            loses: Vec::new(),
            source: "lab test 2026-11".to_owned(),
        };
        let builtin = HopTable::builtin();
        let table = builtin.clone().with_overrides(vec![fixed.clone()]);
        assert_eq!(table.rules.len(), builtin.rules.len());
        assert_eq!(table.rule(Ws2003, Ws2008r2), Some(&fixed));
    }

    #[test]
    fn an_override_for_a_new_pair_is_added_and_the_last_one_wins() {
        let first = HopRule {
            from: Ws2008r2,
            to: Ws2012r2,
            accepted: true,
            min_source_service_pack: Some("SP1".to_owned()),
            loses: Vec::new(),
            source: "first".to_owned(),
        };
        let second = HopRule {
            source: "second".to_owned(),
            ..first.clone()
        };
        let builtin = HopTable::builtin();
        let table = builtin.clone().with_overrides(vec![first, second.clone()]);
        assert_eq!(table.rules.len(), builtin.rules.len() + 1);
        assert_eq!(table.rule(Ws2008r2, Ws2012r2), Some(&second));
    }

    #[test]
    fn rules_deserialize_from_operator_config() {
        let json = r#"{"rules": [
            {"from": "ws2003", "to": "ws2008r2", "accepted": true,
             "loses": ["file_share", "generic"], "source": "our lab"},
            {"from": "ws2008", "to": "ws2012", "accepted": true,
             "min_source_service_pack": "SP2", "source": "docs"}
        ]}"#;
        let table: HopTable = serde_json::from_str(json).expect("valid table");
        assert_eq!(
            table.rules[0].loses,
            vec![ResourceKind::FileShare, ResourceKind::Generic]
        );
        assert_eq!(
            table.rules[1].min_source_service_pack.as_deref(),
            Some("SP2")
        );
        assert!(table.rules[1].loses.is_empty());
    }

    #[test]
    fn a_row_without_a_citation_or_with_a_typo_is_rejected() {
        let uncited = r#"{"from": "ws2003", "to": "ws2008", "accepted": true}"#;
        assert!(serde_json::from_str::<HopRule>(uncited).is_err());
        let typo = r#"{"from": "ws2003", "to": "ws2008", "accepted": true, "source": "x",
                       "lose": ["file_share"]}"#;
        assert!(serde_json::from_str::<HopRule>(typo).is_err());
        let unknown_os = r#"{"from": "ws2000", "to": "ws2008", "accepted": true, "source": "x"}"#;
        assert!(serde_json::from_str::<HopRule>(unknown_os).is_err());
    }
}
