use super::quorum::SHOW_QUORUM;
use super::*;
use crate::model::facts::{HbaFacts, QuorumFacts, QuorumType};
use crate::validation::Thresholds;
use crate::validation::fixture::{GIB, healthy, network, node, volume};

fn with(change: impl FnOnce(&mut ConfigFacts)) -> ConfigFacts {
    let mut facts = healthy();
    change(&mut facts);
    facts
}

fn network_mut<'a>(facts: &'a mut ConfigFacts, name: &str) -> &'a mut NetworkFacts {
    facts
        .networks
        .iter_mut()
        .find(|n| n.name == name)
        .expect("fixture network")
}

#[track_caller]
fn assert_verdict(f: &Finding, rule: Rule, verdict: Verdict) {
    assert_eq!(f.rule, rule.id, "{f:#?}");
    assert_eq!(f.verdict, verdict, "{f:#?}");
    assert!(!f.evidence.is_empty(), "{f:#?}");
    match verdict {
        Verdict::Pass => assert_eq!(f.remedy, None, "{f:#?}"),
        Verdict::Warn | Verdict::Fail => assert!(f.remedy.is_some(), "{f:#?}"),
        Verdict::Unknown => {}
    }
}

#[track_caller]
fn assert_evidence(f: &Finding, text: &str) {
    assert!(
        f.evidence.iter().any(|e| e.contains(text)),
        "no evidence contains {text:?}: {f:#?}"
    );
}

#[track_caller]
fn assert_remedy(f: &Finding, text: &str) {
    let remedy = f.remedy.as_deref().unwrap_or_default();
    assert!(remedy.contains(text), "remedy lacks {text:?}: {f:#?}");
}

fn quorum(quorum_type: QuorumType, node_count: u32) -> Finding {
    quorum_configuration(&with(|f| {
        f.quorum = Some(QuorumFacts {
            quorum_type,
            node_count,
        })
    }))
}

// ---- helpers --------------------------------------------------------------------------------

#[test]
fn powershell_strings_escape_what_would_end_or_expand_them() {
    assert_eq!(ps("Cluster Network"), "\"Cluster Network\"");
    assert_eq!(ps("a\"b$c`d"), "\"a`\"b`$c``d\"");
    assert_eq!(ps("\u{201C}x\u{201D}"), "\"`\u{201C}x`\u{201D}\"");
}

#[test]
fn sizes_read_in_binary_units() {
    assert_eq!(bytes(512), "512 B");
    assert_eq!(bytes(20 << 20), "20.0 MiB");
    assert_eq!(bytes(1536 * GIB), "1.5 TiB");
}

// ---- network_count --------------------------------------------------------------------------

#[test]
fn two_or_more_cluster_networks_pass() {
    let f = network_count(&healthy());
    assert_verdict(&f, NETWORK_COUNT, Verdict::Pass);
    assert_evidence(&f, "cluster networks (4): Client (client, metric 10100)");
    assert_evidence(&f, "not counted, closed to cluster traffic: iSCSI");
}

#[test]
fn one_cluster_network_warns_and_iscsi_does_not_count() {
    let facts = with(|f| {
        f.networks
            .retain(|n| n.name == "Client" || n.name == "iSCSI")
    });
    let f = network_count(&facts);
    assert_verdict(&f, NETWORK_COUNT, Verdict::Warn);
    assert_evidence(&f, "cluster networks (1): Client");
    assert_remedy(&f, LIST_NETWORKS);

    let facts = with(|f| f.networks.retain(|n| n.name == "iSCSI"));
    let f = network_count(&facts);
    assert_verdict(&f, NETWORK_COUNT, Verdict::Warn);
    assert_evidence(&f, "cluster networks (0): none");
}

#[test]
fn no_networks_reported_is_unknown() {
    let f = network_count(&with(|f| f.networks.clear()));
    assert_verdict(&f, NETWORK_COUNT, Verdict::Unknown);
    assert_evidence(&f, "no cluster networks were reported");
}

// ---- csv_network_metric ---------------------------------------------------------------------

#[test]
fn csv_network_with_the_lowest_metric_passes() {
    let f = csv_network_metric(&healthy());
    assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Pass);
    assert_evidence(
        &f,
        "Cluster-CSV carries CSV traffic (CSV role), metric 1000",
    );
    assert_evidence(&f, "the next is LiveMigration (1100)");
}

#[test]
fn a_storage_network_with_a_lower_metric_does_not_matter() {
    let facts = with(|f| network_mut(f, "iSCSI").metric = 10);
    assert_verdict(
        &csv_network_metric(&facts),
        CSV_NETWORK_METRIC,
        Verdict::Pass,
    );
}

#[test]
fn a_network_with_a_lower_metric_warns_with_the_notes_commands() {
    let facts = with(|f| network_mut(f, "LiveMigration").metric = 1000);
    let f = csv_network_metric(&facts);
    assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Warn);
    assert_evidence(
        &f,
        "LiveMigration (live migration) has metric 1000, equal to Cluster-CSV's 1000",
    );
    assert_remedy(&f, "Get-ClusterNetwork | ft Name, Metric, AutoMetric, Role");
    assert_remedy(&f, "( Get-ClusterNetwork \"Cluster-CSV\" ).Metric=900");

    // Below the note's 900 already: the metric suggested goes lower still.
    let facts = with(|f| network_mut(f, "Management").metric = 500);
    let f = csv_network_metric(&facts);
    assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Warn);
    assert_evidence(&f, "Management (management) has metric 500, lower than");
    assert_remedy(&f, "( Get-ClusterNetwork \"Cluster-CSV\" ).Metric=499");
}

#[test]
fn without_a_csv_role_the_lowest_cluster_network_is_judged() {
    let facts = with(|f| {
        f.networks = vec![
            network("Public", NetworkRole::Client, 900, "10.0.1.0/24"),
            network("Private", NetworkRole::Cluster, 1000, "10.0.3.0/24"),
            network("Backup", NetworkRole::Cluster, 1200, "10.0.6.0/24"),
        ]
    });
    let f = csv_network_metric(&facts);
    assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Warn);
    assert_evidence(&f, "no network has the CSV role; Private");
    assert_evidence(
        &f,
        "Public (client) has metric 900, lower than Private's 1000",
    );
    assert_remedy(&f, "( Get-ClusterNetwork \"Private\" ).Metric=899");
}

#[test]
fn no_csv_network_to_judge_is_unknown() {
    let facts = with(|f| {
        f.networks
            .retain(|n| matches!(n.role, NetworkRole::Client | NetworkRole::Management))
    });
    let f = csv_network_metric(&facts);
    assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Unknown);
    assert_evidence(&f, "the CSV network is unknown");
    let f = csv_network_metric(&with(|f| f.networks.clear()));
    assert_verdict(&f, CSV_NETWORK_METRIC, Verdict::Unknown);
}

#[test]
fn csv_rules_have_nothing_to_check_before_2008_r2() {
    let facts = with(|f| {
        f.os = Some(OsGeneration::Ws2008);
        network_mut(f, "Client").metric = 1;
        network_mut(f, "Cluster-CSV").file_and_printer_sharing = Some(false);
        f.csv_volumes.clear();
    });
    for f in [
        csv_network_metric(&facts),
        csv_network_bindings(&facts),
        live_migration_network(&facts),
        live_migration_ipsec(&facts),
    ]
    .into_iter()
    .chain(csv_free_space(&facts, &Thresholds::default()))
    {
        assert_eq!(f.verdict, Verdict::Pass, "{f:#?}");
        assert_evidence(&f, "came with Windows Server 2008 R2");
    }
}

// ---- live_migration_network -----------------------------------------------------------------

#[test]
fn a_dedicated_live_migration_network_passes() {
    let f = live_migration_network(&healthy());
    assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Pass);
    assert_evidence(
        &f,
        "LiveMigration (live migration, metric 1100) is dedicated",
    );
}

#[test]
fn without_a_dedicated_network_a_qos_policy_passes() {
    let facts = with(|f| {
        f.networks.retain(|n| n.role != NetworkRole::LiveMigration);
        f.live_migration_qos = Some(true);
    });
    let f = live_migration_network(&facts);
    assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Pass);
    assert_evidence(&f, "no network is dedicated to live migration");
    assert_evidence(&f, "an SMB bandwidth limit caps live migration traffic");
}

#[test]
fn neither_a_dedicated_network_nor_a_qos_policy_warns() {
    let facts = with(|f| {
        f.networks.retain(|n| n.role != NetworkRole::LiveMigration);
        f.live_migration_qos = Some(false);
    });
    let f = live_migration_network(&facts);
    assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Warn);
    assert_evidence(&f, "no SMB bandwidth limit");
    assert_remedy(&f, "Set-SmbBandwidthLimit -Category LiveMigration");

    // An unconfirmed QoS policy does not excuse the missing network.
    let facts = with(|f| {
        f.networks.retain(|n| n.role != NetworkRole::LiveMigration);
        f.live_migration_qos = None;
    });
    let f = live_migration_network(&facts);
    assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Warn);
    assert_evidence(&f, "was not reported");
}

#[test]
fn no_networks_leave_the_live_migration_network_unknown() {
    let f = live_migration_network(&with(|f| f.networks.clear()));
    assert_verdict(&f, LIVE_MIGRATION_NETWORK, Verdict::Unknown);
}

// ---- live_migration_ipsec -------------------------------------------------------------------

#[test]
fn no_ipsec_on_the_live_migration_network_passes() {
    let f = live_migration_ipsec(&healthy());
    assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Pass);
    assert_evidence(
        &f,
        "IPsec is off on the live migration network LiveMigration (10.0.4.0/24)",
    );
}

#[test]
fn ipsec_on_the_live_migration_network_warns() {
    let facts = with(|f| network_mut(f, "LiveMigration").ipsec_enabled = Some(true));
    let f = live_migration_ipsec(&facts);
    assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Warn);
    assert_evidence(
        &f,
        "IPsec is on for the live migration network LiveMigration",
    );
    assert_remedy(&f, "exempt LiveMigration (10.0.4.0/24)");
}

#[test]
fn ipsec_not_reported_or_no_live_migration_network_is_unknown() {
    let facts = with(|f| network_mut(f, "LiveMigration").ipsec_enabled = None);
    let f = live_migration_ipsec(&facts);
    assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Unknown);
    assert_evidence(&f, "was not reported");

    let facts = with(|f| f.networks.retain(|n| n.role != NetworkRole::LiveMigration));
    let f = live_migration_ipsec(&facts);
    assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Unknown);
    assert_evidence(&f, "no network is dedicated to live migration");

    let f = live_migration_ipsec(&with(|f| f.networks.clear()));
    assert_verdict(&f, LIVE_MIGRATION_IPSEC, Verdict::Unknown);
}

// ---- processor_vendor -----------------------------------------------------------------------

#[test]
fn one_processor_manufacturer_passes() {
    let f = processor_vendor(&healthy());
    assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Pass);
    assert_evidence(&f, "manufacturer GenuineIntel on HV-n1, HV-n2");
}

#[test]
fn different_processor_manufacturers_fail() {
    let facts = with(|f| {
        f.nodes[1].processor.vendor = "AuthenticAMD".into();
        f.nodes[1].processor_compatibility = Some(true);
    });
    let f = processor_vendor(&facts);
    assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Fail);
    assert_evidence(&f, "manufacturer AuthenticAMD on HV-n2");
    assert_evidence(&f, "manufacturer GenuineIntel on HV-n1");
    assert_remedy(&f, "Remove-ClusterNode");

    // A known difference fails even when a third node could not tell.
    let facts = with(|f| {
        f.nodes[1].processor.vendor = "AuthenticAMD".into();
        let mut third = node("HV-n3");
        third.processor.vendor = String::new();
        f.nodes.push(third);
    });
    let f = processor_vendor(&facts);
    assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Fail);
    assert_evidence(&f, "processor manufacturer not reported for HV-n3");
}

#[test]
fn an_unreported_processor_manufacturer_is_unknown() {
    let facts = with(|f| f.nodes[1].processor.vendor = " ".into());
    let f = processor_vendor(&facts);
    assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Unknown);
    assert_evidence(&f, "processor manufacturer not reported for HV-n2");
    assert_remedy(&f, "Win32_Processor -ComputerName \"HV-n2\"");

    let f = processor_vendor(&with(|f| f.nodes.clear()));
    assert_verdict(&f, PROCESSOR_VENDOR, Verdict::Unknown);
    assert_evidence(&f, "no nodes were reported");
}

// ---- processor_model ------------------------------------------------------------------------

#[test]
fn one_processor_model_passes_without_compatibility() {
    let f = processor_model(&healthy());
    assert_verdict(&f, PROCESSOR_MODEL, Verdict::Pass);
    assert_evidence(
        &f,
        "model Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz on HV-n1, HV-n2",
    );
}

#[test]
fn different_models_with_compatibility_on_everywhere_pass() {
    let facts = with(|f| {
        f.nodes[1].processor.model = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz".into();
        for n in &mut f.nodes {
            n.processor_compatibility = Some(true);
        }
    });
    let f = processor_model(&facts);
    assert_verdict(&f, PROCESSOR_MODEL, Verdict::Pass);
    assert_evidence(
        &f,
        "model Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz on HV-n2",
    );
    assert_evidence(&f, "processor compatibility is on for every node");
}

#[test]
fn different_models_without_compatibility_warn() {
    let facts = with(|f| {
        f.nodes[1].processor.model = "Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz".into();
        f.nodes[0].processor_compatibility = Some(false);
        f.nodes[1].processor_compatibility = None;
    });
    let f = processor_model(&facts);
    assert_verdict(&f, PROCESSOR_MODEL, Verdict::Warn);
    assert_evidence(&f, "processor compatibility is off on HV-n1");
    assert_evidence(&f, "processor compatibility was not reported for HV-n2");
    assert_remedy(
        &f,
        "Set-VMProcessor -VMName \"<vm>\" -CompatibilityForMigrationEnabled $true",
    );
}

#[test]
fn an_unreported_processor_model_is_unknown() {
    let facts = with(|f| f.nodes[0].processor.model = String::new());
    let f = processor_model(&facts);
    assert_verdict(&f, PROCESSOR_MODEL, Verdict::Unknown);
    assert_evidence(&f, "processor model not reported for HV-n1");
    let f = processor_model(&with(|f| f.nodes.clear()));
    assert_verdict(&f, PROCESSOR_MODEL, Verdict::Unknown);
}

// ---- virtual_switch_names -------------------------------------------------------------------

#[test]
fn identical_switch_names_pass_in_any_order() {
    let f = virtual_switch_names(&healthy());
    assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Pass);
    assert_evidence(
        &f,
        "every node (HV-n1, HV-n2) has the virtual switches External-Client, Internal-Cluster",
    );
    let facts = with(|f| f.nodes[1].virtual_switches.reverse());
    assert_verdict(
        &virtual_switch_names(&facts),
        VIRTUAL_SWITCH_NAMES,
        Verdict::Pass,
    );
}

#[test]
fn different_switch_names_fail() {
    let facts =
        with(|f| f.nodes[1].virtual_switches = vec!["External-Client".into(), "Internal".into()]);
    let f = virtual_switch_names(&facts);
    assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Fail);
    assert_evidence(
        &f,
        "HV-n1 has External-Client, Internal-Cluster; lacks Internal",
    );
    assert_evidence(
        &f,
        "HV-n2 has External-Client, Internal; lacks Internal-Cluster",
    );
    assert_remedy(&f, "Rename-VMSwitch");
    assert_remedy(&f, "Get-VMSwitch -ComputerName \"HV-n1\", \"HV-n2\"");

    let facts = with(|f| f.nodes[1].virtual_switches.clear());
    let f = virtual_switch_names(&facts);
    assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Fail);
    assert_evidence(
        &f,
        "HV-n2 has no virtual switch; lacks External-Client, Internal-Cluster",
    );
}

#[test]
fn no_switches_anywhere_is_unknown() {
    let facts = with(|f| {
        for n in &mut f.nodes {
            n.virtual_switches.clear();
        }
    });
    let f = virtual_switch_names(&facts);
    assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Unknown);
    assert_evidence(
        &f,
        "no virtual switch was reported on any node (HV-n1, HV-n2)",
    );
    let f = virtual_switch_names(&with(|f| f.nodes.clear()));
    assert_verdict(&f, VIRTUAL_SWITCH_NAMES, Verdict::Unknown);
}

// ---- ntlm_enabled ---------------------------------------------------------------------------

#[test]
fn ntlm_everywhere_passes() {
    let f = ntlm_enabled(&healthy());
    assert_verdict(&f, NTLM_ENABLED, Verdict::Pass);
    assert_evidence(&f, "NTLM is enabled on HV-n1, HV-n2");
}

#[test]
fn ntlm_restricted_on_a_node_fails() {
    let facts = with(|f| f.nodes[1].ntlm_enabled = Some(false));
    let f = ntlm_enabled(&facts);
    assert_verdict(&f, NTLM_ENABLED, Verdict::Fail);
    assert_evidence(&f, "NTLM is restricted on HV-n2");
    assert_remedy(&f, "-Name RestrictSendingNTLMTraffic -Value 0");
    assert_remedy(&f, r"HKLM:\SYSTEM\CurrentControlSet\Control\Lsa\MSV1_0");

    let facts = with(|f| {
        f.nodes[0].ntlm_enabled = None;
        f.nodes[1].ntlm_enabled = Some(false);
    });
    let f = ntlm_enabled(&facts);
    assert_verdict(&f, NTLM_ENABLED, Verdict::Fail);
    assert_evidence(&f, "was not reported for HV-n1");
}

#[test]
fn ntlm_not_reported_is_unknown() {
    let facts = with(|f| f.nodes[0].ntlm_enabled = None);
    let f = ntlm_enabled(&facts);
    assert_verdict(&f, NTLM_ENABLED, Verdict::Unknown);
    assert_evidence(&f, "whether NTLM is enabled was not reported for HV-n1");
    assert_remedy(&f, "RestrictReceivingNTLMTraffic");
    let f = ntlm_enabled(&with(|f| f.nodes.clear()));
    assert_verdict(&f, NTLM_ENABLED, Verdict::Unknown);
}

// ---- hba_consistency ------------------------------------------------------------------------

fn hba(model: &str, driver: &str, firmware: &str) -> HbaFacts {
    HbaFacts {
        model: model.into(),
        driver_version: driver.into(),
        firmware_version: firmware.into(),
    }
}

#[test]
fn identical_hbas_pass_in_any_order() {
    let f = hba_consistency(&healthy());
    assert_verdict(&f, HBA_CONSISTENCY, Verdict::Pass);
    assert_evidence(
        &f,
        "Emulex LPe16002B driver 11.2.139.0 firmware 11.2.156.27 on HV-n1, HV-n2",
    );
    let facts = with(|f| {
        let second = hba("QLogic QLE2562", "9.1.9.25", "5.06.03");
        f.nodes[0].hbas.push(second.clone());
        f.nodes[1].hbas.insert(0, second);
    });
    assert_verdict(&hba_consistency(&facts), HBA_CONSISTENCY, Verdict::Pass);
}

#[test]
fn different_hbas_warn() {
    let facts =
        with(|f| f.nodes[1].hbas = vec![hba("Emulex LPe16002B", "11.2.139.0", "11.4.204.20")]);
    let f = hba_consistency(&facts);
    assert_verdict(&f, HBA_CONSISTENCY, Verdict::Warn);
    assert_evidence(&f, "firmware 11.2.156.27 on HV-n1");
    assert_evidence(&f, "firmware 11.4.204.20 on HV-n2");
    assert_remedy(&f, "MSFC_FCAdapterHBAAttributes");

    let facts = with(|f| f.nodes[1].hbas.clear());
    let f = hba_consistency(&facts);
    assert_verdict(&f, HBA_CONSISTENCY, Verdict::Warn);
    assert_evidence(&f, "no HBA on HV-n2");
}

#[test]
fn no_hbas_anywhere_is_unknown() {
    let facts = with(|f| {
        for n in &mut f.nodes {
            n.hbas.clear();
        }
    });
    let f = hba_consistency(&facts);
    assert_verdict(&f, HBA_CONSISTENCY, Verdict::Unknown);
    assert_evidence(&f, "no HBA was reported on any node (HV-n1, HV-n2)");
    let f = hba_consistency(&with(|f| f.nodes.clear()));
    assert_verdict(&f, HBA_CONSISTENCY, Verdict::Unknown);
}

// ---- csv_network_bindings -------------------------------------------------------------------

#[test]
fn smb_bindings_on_the_csv_network_pass() {
    let f = csv_network_bindings(&healthy());
    assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Pass);
    assert_evidence(&f, "Client for Microsoft Networks is on for Cluster-CSV");
    assert_evidence(&f, "File and Printer Sharing is on for Cluster-CSV");
}

#[test]
fn smb_bindings_off_on_the_csv_network_fail() {
    let facts = with(|f| network_mut(f, "Cluster-CSV").file_and_printer_sharing = Some(false));
    let f = csv_network_bindings(&facts);
    assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Fail);
    assert_evidence(&f, "File and Printer Sharing is off for Cluster-CSV");
    assert_remedy(&f, "Get-ClusterNetworkInterface -Network \"Cluster-CSV\"");
    assert_remedy(&f, "Enable-NetAdapterBinding");
    assert_remedy(&f, "-ComponentID ms_msclient, ms_server");

    let facts = with(|f| {
        let csv = network_mut(f, "Cluster-CSV");
        csv.client_for_microsoft_networks = Some(false);
        csv.file_and_printer_sharing = None;
    });
    let f = csv_network_bindings(&facts);
    assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Fail);
    assert_evidence(&f, "Client for Microsoft Networks is off for Cluster-CSV");
    assert_evidence(
        &f,
        "whether File and Printer Sharing is on for Cluster-CSV was not",
    );
}

#[test]
fn smb_bindings_not_reported_are_unknown() {
    let facts = with(|f| network_mut(f, "Cluster-CSV").client_for_microsoft_networks = None);
    let f = csv_network_bindings(&facts);
    assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Unknown);
    assert_remedy(&f, "Get-NetAdapterBinding");

    let facts = with(|f| {
        f.networks
            .retain(|n| !matches!(n.role, NetworkRole::Csv | NetworkRole::Cluster))
    });
    let f = csv_network_bindings(&facts);
    assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Unknown);
    assert_evidence(&f, "the CSV network is unknown");

    let f = csv_network_bindings(&with(|f| f.networks.clear()));
    assert_verdict(&f, CSV_NETWORK_BINDINGS, Verdict::Unknown);
}

// ---- csv_free_space -------------------------------------------------------------------------

fn free_space(free_gib: i64, thresholds: &Thresholds) -> Finding {
    let facts = with(|f| f.csv_volumes = vec![volume("Volume1", 1000 * GIB, free_gib * GIB)]);
    let mut findings = csv_free_space(&facts, thresholds);
    assert_eq!(findings.len(), 1);
    findings.remove(0)
}

#[test]
fn enough_free_space_passes() {
    let f = free_space(400, &Thresholds::default());
    assert_verdict(&f, CSV_FREE_SPACE, Verdict::Pass);
    assert_eq!(f.title, "Free space on CSV volume Volume1");
    assert_evidence(
        &f,
        r"Volume1 (C:\ClusterStorage\Volume1): 400.0 GiB free of 1000.0 GiB (40.0%)",
    );
    assert_evidence(&f, "warns under 20% free, fails under 10%");
    // Exactly at the threshold is not under it.
    assert_verdict(
        &free_space(200, &Thresholds::default()),
        CSV_FREE_SPACE,
        Verdict::Pass,
    );
}

#[test]
fn free_space_under_the_warning_threshold_warns() {
    let f = free_space(199, &Thresholds::default());
    assert_verdict(&f, CSV_FREE_SPACE, Verdict::Warn);
    assert_evidence(&f, "(19.9%)");
    assert_remedy(&f, "Get-ClusterSharedVolume \"Volume1\"");
    assert_verdict(
        &free_space(100, &Thresholds::default()),
        CSV_FREE_SPACE,
        Verdict::Warn,
    );
}

#[test]
fn free_space_under_the_failure_threshold_fails() {
    let f = free_space(99, &Thresholds::default());
    assert_verdict(&f, CSV_FREE_SPACE, Verdict::Fail);
    assert_evidence(&f, "(9.9%)");
    assert_verdict(
        &free_space(0, &Thresholds::default()),
        CSV_FREE_SPACE,
        Verdict::Fail,
    );
}

#[test]
fn thresholds_are_configurable() {
    let strict = Thresholds {
        csv_free_warn_percent: 50.0,
        csv_free_fail_percent: 30.0,
    };
    assert_verdict(&free_space(400, &strict), CSV_FREE_SPACE, Verdict::Warn);
    assert_verdict(&free_space(299, &strict), CSV_FREE_SPACE, Verdict::Fail);
    let f = free_space(400, &strict);
    assert_evidence(&f, "warns under 50% free, fails under 30%");
}

#[test]
fn every_volume_is_judged_on_its_own() {
    let facts = with(|f| {
        f.csv_volumes = vec![
            volume("Volume1", 1000 * GIB, 500 * GIB),
            volume("Volume2", 100 * GIB, 15 * GIB),
            volume("Volume3", 100 * GIB, 5 * GIB),
        ]
    });
    let findings = csv_free_space(&facts, &Thresholds::default());
    let judged: Vec<(&str, Verdict)> = findings
        .iter()
        .map(|f| (f.title.as_str(), f.verdict))
        .collect();
    assert_eq!(
        judged,
        [
            ("Free space on CSV volume Volume1", Verdict::Pass),
            ("Free space on CSV volume Volume2", Verdict::Warn),
            ("Free space on CSV volume Volume3", Verdict::Fail),
        ]
    );
    assert!(findings.iter().all(|f| f.rule == "csv_free_space"));
}

#[test]
fn unreported_or_impossible_space_is_unknown() {
    let findings = csv_free_space(&with(|f| f.csv_volumes.clear()), &Thresholds::default());
    assert_eq!(findings.len(), 1);
    assert_verdict(&findings[0], CSV_FREE_SPACE, Verdict::Unknown);
    assert_evidence(&findings[0], "no CSV volume was reported");

    for (size, free) in [(0, 0), (100 * GIB, 101 * GIB), (100 * GIB, -1)] {
        let facts = with(|f| f.csv_volumes = vec![volume("Volume1", size, free)]);
        let findings = csv_free_space(&facts, &Thresholds::default());
        assert_verdict(&findings[0], CSV_FREE_SPACE, Verdict::Unknown);
        assert_evidence(&findings[0], "cannot be judged");
    }
}

// ---- quorum_configuration -------------------------------------------------------------------

#[test]
fn dynamic_quorum_passes_any_node_count() {
    for nodes in 1..=6 {
        let f = quorum(QuorumType::Majority, nodes);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Pass);
    }
    assert_evidence(
        &quorum(QuorumType::Majority, 1),
        "a single-node cluster has no node to fail over to",
    );
}

#[test]
fn node_majority_passes_odd_and_warns_even_node_counts() {
    let f = quorum(QuorumType::NodeMajority, 3);
    assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Pass);
    assert_evidence(
        &f,
        "node majority with 3 nodes: 3 votes, quorum needs 2, so the cluster survives the \
         loss of 1 vote",
    );
    let single = quorum(QuorumType::NodeMajority, 1);
    assert_verdict(&single, QUORUM_CONFIGURATION, Verdict::Pass);
    assert_evidence(&single, "survives the loss of 0 votes");

    for nodes in [2, 4] {
        let f = quorum(QuorumType::NodeMajority, nodes);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
        assert_evidence(&f, "an even node count without a witness");
        assert_remedy(&f, "Set-ClusterQuorum -NodeAndDiskMajority");
        assert_remedy(&f, "Set-ClusterQuorum -NodeAndFileShareMajority");
    }
}

#[test]
fn a_witness_passes_even_and_warns_odd_node_counts() {
    for kind in [
        QuorumType::NodeAndDiskMajority,
        QuorumType::NodeAndFileShareMajority,
    ] {
        let f = quorum(kind, 2);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Pass);
        assert_evidence(&f, "with 2 nodes: 3 votes, quorum needs 2");
        assert_verdict(&quorum(kind, 4), QUORUM_CONFIGURATION, Verdict::Pass);

        let f = quorum(kind, 3);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
        assert_evidence(&f, "3 nodes alone would survive the loss of 1 vote");
        assert_remedy(&f, "Set-ClusterQuorum -NodeMajority");

        // One node and a witness: losing the witness stops the only node.
        let f = quorum(kind, 1);
        assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
        assert_evidence(&f, "with 1 node: 2 votes, quorum needs 2");
    }
}

#[test]
fn disk_only_quorum_always_warns() {
    let f = quorum(QuorumType::DiskOnly, 3);
    assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
    assert_evidence(&f, "the quorum disk holds the only vote");
    assert_remedy(&f, "Set-ClusterQuorum -NodeMajority");
    let f = quorum(QuorumType::DiskOnly, 2);
    assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Warn);
    assert_remedy(&f, "Set-ClusterQuorum -NodeAndDiskMajority");
    assert_verdict(
        &quorum(QuorumType::DiskOnly, 1),
        QUORUM_CONFIGURATION,
        Verdict::Warn,
    );
}

#[test]
fn an_unreported_or_unknown_quorum_is_unknown() {
    let f = quorum_configuration(&with(|f| f.quorum = None));
    assert_verdict(&f, QUORUM_CONFIGURATION, Verdict::Unknown);
    assert_remedy(&f, SHOW_QUORUM);
    assert_verdict(
        &quorum(QuorumType::Unknown, 3),
        QUORUM_CONFIGURATION,
        Verdict::Unknown,
    );
    assert_verdict(
        &quorum(QuorumType::NodeMajority, 0),
        QUORUM_CONFIGURATION,
        Verdict::Unknown,
    );
}
