//! Cluster configuration validation: the checks of the third field note (HAVM cluster
//! configuration recommendations) judged against the [`ConfigFacts`] an agent gathers.
//!
//! Pure: no I/O, the same facts always give the same findings. Every rule gives one [`Finding`]
//! (the CSV free-space rule one per volume) with the evidence it rests on and, when something is
//! to be done, a remedy quoting the PowerShell of the field note where it gives one.
//!
//! Facts a driver could not tell (`None`, or nothing reported) make a rule [`Verdict::Unknown`],
//! never a pass: an operator must not read silence as health.

mod rules;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::facts::ConfigFacts;

/// How a rule judged the cluster.
///
/// Ordered by severity, mildest first: `Pass < Unknown < Warn < Fail`, so the worst of several
/// verdicts is their maximum. `Unknown` ranks below `Warn` because it names no known problem,
/// but above `Pass` because nothing was confirmed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The configuration follows the recommendation.
    Pass,
    /// The facts the rule needs were not reported.
    Unknown,
    /// Something to address; the cluster works, but not as recommended or supported.
    Warn,
    /// Live migration or CSV will fail until this is fixed.
    Fail,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Unknown => "unknown",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pass" => Verdict::Pass,
            "unknown" => Verdict::Unknown,
            "warn" => Verdict::Warn,
            "fail" => Verdict::Fail,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one rule found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Finding {
    /// Stable id of the rule, one of [`RULES`], e.g. `csv_network_metric`.
    pub rule: String,
    /// Human title; the CSV free-space rule names the volume in it.
    pub title: String,
    pub verdict: Verdict,
    /// The facts the verdict rests on, one statement each: nodes, networks, values.
    pub evidence: Vec<String>,
    /// What to do, with the PowerShell to run; for an unknown verdict, how to find out. Absent
    /// when there is nothing to do.
    pub remedy: Option<String>,
}

/// Limits of the rules that compare against a number.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// A CSV volume with less free space than this share of its size warns.
    #[schema(minimum = 0, maximum = 100)]
    pub csv_free_warn_percent: f64,
    /// A CSV volume with less free space than this share of its size fails; at most the
    /// warning's.
    #[schema(minimum = 0, maximum = 100)]
    pub csv_free_fail_percent: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            csv_free_warn_percent: 20.0,
            csv_free_fail_percent: 10.0,
        }
    }
}

/// Every rule as `(id, title)`, in the order [`evaluate`] reports them.
pub const RULES: &[(&str, &str)] = &[
    (rules::NETWORK_COUNT.id, rules::NETWORK_COUNT.title),
    (
        rules::CSV_NETWORK_METRIC.id,
        rules::CSV_NETWORK_METRIC.title,
    ),
    (
        rules::LIVE_MIGRATION_NETWORK.id,
        rules::LIVE_MIGRATION_NETWORK.title,
    ),
    (rules::PROCESSOR_VENDOR.id, rules::PROCESSOR_VENDOR.title),
    (rules::PROCESSOR_MODEL.id, rules::PROCESSOR_MODEL.title),
    (
        rules::VIRTUAL_SWITCH_NAMES.id,
        rules::VIRTUAL_SWITCH_NAMES.title,
    ),
    (rules::NTLM_ENABLED.id, rules::NTLM_ENABLED.title),
    (rules::HBA_CONSISTENCY.id, rules::HBA_CONSISTENCY.title),
    (
        rules::CSV_NETWORK_BINDINGS.id,
        rules::CSV_NETWORK_BINDINGS.title,
    ),
    (rules::CSV_FREE_SPACE.id, rules::CSV_FREE_SPACE.title),
    (
        rules::QUORUM_CONFIGURATION.id,
        rules::QUORUM_CONFIGURATION.title,
    ),
    (
        rules::LIVE_MIGRATION_IPSEC.id,
        rules::LIVE_MIGRATION_IPSEC.title,
    ),
];

/// Judges `facts` by every rule, in the order of [`RULES`]: one finding per rule, except
/// `csv_free_space`, which gives one per CSV volume (or a single one when there is none to judge).
pub fn evaluate(facts: &ConfigFacts, thresholds: &Thresholds) -> Vec<Finding> {
    let mut findings = vec![
        rules::network_count(facts),
        rules::csv_network_metric(facts),
        rules::live_migration_network(facts),
        rules::processor_vendor(facts),
        rules::processor_model(facts),
        rules::virtual_switch_names(facts),
        rules::ntlm_enabled(facts),
        rules::hba_consistency(facts),
        rules::csv_network_bindings(facts),
    ];
    findings.extend(rules::csv_free_space(facts, thresholds));
    findings.push(rules::quorum_configuration(facts));
    findings.push(rules::live_migration_ipsec(facts));
    findings
}

/// The worst verdict of `findings` (see [`Verdict`] for the order); `Unknown` when there are
/// none, since nothing was judged.
pub fn overall(findings: &[Finding]) -> Verdict {
    findings
        .iter()
        .map(|f| f.verdict)
        .max()
        .unwrap_or(Verdict::Unknown)
}

/// Facts of a healthy Windows Server 2012 R2 Hyper-V cluster of two nodes that passes every rule;
/// tests change one fact at a time.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::model::facts::{
        ConfigFacts, CsvVolumeFacts, HbaFacts, NetworkFacts, NodeFacts, QuorumFacts, QuorumType,
    };
    use crate::model::{NetworkRole, OsGeneration, Processor};

    pub(crate) const GIB: i64 = 1 << 30;

    pub(crate) fn network(
        name: &str,
        role: NetworkRole,
        metric: i64,
        subnet: &str,
    ) -> NetworkFacts {
        NetworkFacts {
            name: name.into(),
            role,
            metric,
            auto_metric: Some(true),
            subnet: subnet.into(),
            ipsec_enabled: Some(false),
            client_for_microsoft_networks: Some(true),
            file_and_printer_sharing: Some(true),
        }
    }

    pub(crate) fn node(name: &str) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            processor: Processor {
                vendor: "GenuineIntel".into(),
                model: "Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz".into(),
            },
            virtual_switches: vec!["External-Client".into(), "Internal-Cluster".into()],
            ntlm_enabled: Some(true),
            hbas: vec![HbaFacts {
                model: "Emulex LPe16002B".into(),
                driver_version: "11.2.139.0".into(),
                firmware_version: "11.2.156.27".into(),
            }],
            processor_compatibility: Some(false),
        }
    }

    pub(crate) fn volume(name: &str, size_bytes: i64, free_bytes: i64) -> CsvVolumeFacts {
        CsvVolumeFacts {
            name: name.into(),
            path: format!("C:\\ClusterStorage\\{name}"),
            size_bytes,
            free_bytes,
        }
    }

    pub(crate) fn healthy() -> ConfigFacts {
        ConfigFacts {
            cluster: Some("HV".into()),
            os: Some(OsGeneration::Ws2012r2),
            networks: vec![
                network("Client", NetworkRole::Client, 10100, "10.0.1.0/24"),
                network("Management", NetworkRole::Management, 10000, "10.0.2.0/24"),
                network("Cluster-CSV", NetworkRole::Csv, 1000, "10.0.3.0/24"),
                network(
                    "LiveMigration",
                    NetworkRole::LiveMigration,
                    1100,
                    "10.0.4.0/24",
                ),
                network("iSCSI", NetworkRole::Iscsi, 10200, "10.0.5.0/24"),
            ],
            nodes: vec![node("HV-n1"), node("HV-n2")],
            csv_volumes: vec![volume("Volume1", 1000 * GIB, 400 * GIB)],
            quorum: Some(QuorumFacts {
                quorum_type: QuorumType::Majority,
                node_count: 2,
            }),
            live_migration_qos: Some(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::healthy;
    use super::*;
    use crate::model::facts::{QuorumFacts, QuorumType};

    fn finding(verdict: Verdict) -> Finding {
        Finding {
            rule: "network_count".into(),
            title: "t".into(),
            verdict,
            evidence: vec![],
            remedy: None,
        }
    }

    #[test]
    fn verdicts_order_by_severity() {
        assert!(Verdict::Pass < Verdict::Unknown);
        assert!(Verdict::Unknown < Verdict::Warn);
        assert!(Verdict::Warn < Verdict::Fail);
    }

    #[test]
    fn overall_is_the_worst_verdict() {
        let of = |verdicts: &[Verdict]| {
            overall(&verdicts.iter().map(|v| finding(*v)).collect::<Vec<_>>())
        };
        assert_eq!(of(&[Verdict::Pass, Verdict::Pass]), Verdict::Pass);
        assert_eq!(of(&[Verdict::Pass, Verdict::Unknown]), Verdict::Unknown);
        assert_eq!(
            of(&[Verdict::Unknown, Verdict::Warn, Verdict::Pass]),
            Verdict::Warn
        );
        assert_eq!(
            of(&[Verdict::Fail, Verdict::Warn, Verdict::Unknown]),
            Verdict::Fail
        );
        assert_eq!(of(&[]), Verdict::Unknown);
    }

    #[test]
    fn a_healthy_cluster_passes_every_rule_in_order() {
        let findings = evaluate(&healthy(), &Thresholds::default());
        let ids: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        let expected: Vec<&str> = RULES.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, expected);
        for f in &findings {
            assert_eq!(f.verdict, Verdict::Pass, "{f:?}");
            assert!(!f.evidence.is_empty(), "{f:?}");
            assert_eq!(f.remedy, None, "{f:?}");
        }
        assert_eq!(overall(&findings), Verdict::Pass);
    }

    #[test]
    fn rule_ids_are_unique_and_titles_set() {
        let mut ids: Vec<&str> = RULES.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len());
        assert_eq!(RULES.len(), 12);
        assert!(RULES.iter().all(|(id, title)| !id.is_empty()
            && !title.is_empty()
            && id.chars().all(|c| c.is_ascii_lowercase() || c == '_')));
    }

    #[test]
    fn facts_nobody_reported_are_unknown_never_pass() {
        let findings = evaluate(&ConfigFacts::default(), &Thresholds::default());
        let ids: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
        let expected: Vec<&str> = RULES.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, expected);
        for f in &findings {
            assert_eq!(f.verdict, Verdict::Unknown, "{f:?}");
            assert!(!f.evidence.is_empty(), "{f:?}");
        }
        assert_eq!(overall(&findings), Verdict::Unknown);
    }

    #[test]
    fn every_volume_gets_its_own_finding_in_place() {
        let mut facts = healthy();
        facts.csv_volumes.push(fixture::volume(
            "Volume2",
            100 * fixture::GIB,
            5 * fixture::GIB,
        ));
        let findings = evaluate(&facts, &Thresholds::default());
        let csv: Vec<(usize, Verdict)> = findings
            .iter()
            .enumerate()
            .filter(|(_, f)| f.rule == "csv_free_space")
            .map(|(k, f)| (k, f.verdict))
            .collect();
        assert_eq!(csv, [(9, Verdict::Pass), (10, Verdict::Fail)]);
        assert_eq!(findings[11].rule, "quorum_configuration");
        assert_eq!(overall(&findings), Verdict::Fail);
    }

    #[test]
    fn one_problem_sets_the_overall_verdict() {
        let mut facts = healthy();
        facts.quorum = Some(QuorumFacts {
            quorum_type: QuorumType::DiskOnly,
            node_count: 2,
        });
        assert_eq!(
            overall(&evaluate(&facts, &Thresholds::default())),
            Verdict::Warn
        );
        facts.nodes[1].ntlm_enabled = Some(false);
        assert_eq!(
            overall(&evaluate(&facts, &Thresholds::default())),
            Verdict::Fail
        );
    }

    #[test]
    fn thresholds_default_and_deserialize_partially() {
        assert_eq!(
            Thresholds::default(),
            Thresholds {
                csv_free_warn_percent: 20.0,
                csv_free_fail_percent: 10.0,
            }
        );
        let partial: Thresholds =
            serde_json::from_value(serde_json::json!({"csv_free_warn_percent": 30.0})).unwrap();
        assert_eq!(partial.csv_free_warn_percent, 30.0);
        assert_eq!(partial.csv_free_fail_percent, 10.0);
        let empty: Thresholds = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(empty, Thresholds::default());
        assert!(
            serde_json::from_value::<Thresholds>(serde_json::json!({"csv_free_percent": 5}))
                .is_err()
        );
    }

    #[test]
    fn findings_serialize_with_snake_case_verdicts() {
        let f = Finding {
            rule: "ntlm_enabled".into(),
            title: "NTLM enabled on every node".into(),
            verdict: Verdict::Fail,
            evidence: vec!["NTLM is restricted on HV-n2".into()],
            remedy: Some("fix it".into()),
        };
        let value = serde_json::to_value(&f).unwrap();
        assert_eq!(value["verdict"], "fail");
        assert_eq!(serde_json::from_value::<Finding>(value).unwrap(), f);
        for v in [
            Verdict::Pass,
            Verdict::Unknown,
            Verdict::Warn,
            Verdict::Fail,
        ] {
            assert_eq!(serde_json::to_value(v).unwrap(), v.as_str());
            assert_eq!(v.to_string(), v.as_str());
        }
    }
}
