//! The CSV rules: Client for Microsoft Networks and File and Printer Sharing bound on the CSV
//! network, and free space on every CSV volume.

use super::{
    CSV_FREE_SPACE, CSV_NETWORK_BINDINGS, bytes, csv_network_identified, finding, no_csv_network,
    no_networks, predates, ps,
};
use crate::model::facts::{ConfigFacts, CsvVolumeFacts};
use crate::validation::{Finding, Thresholds, Verdict};

pub(in crate::validation) fn csv_network_bindings(facts: &ConfigFacts) -> Finding {
    let rule = CSV_NETWORK_BINDINGS;
    // Older clusters had no CSV, and turning both off on the heartbeat network was the advice.
    if let Some(older) = predates(rule, facts, "CSV") {
        return older;
    }
    if facts.networks.is_empty() {
        return no_networks(rule);
    }
    let Some(csv) = facts.csv_network() else {
        return no_csv_network(rule, facts);
    };
    let components = [
        (
            "Client for Microsoft Networks",
            csv.client_for_microsoft_networks,
        ),
        ("File and Printer Sharing", csv.file_and_printer_sharing),
    ];
    let mut evidence = vec![csv_network_identified(csv)];
    for (component, on) in components {
        evidence.push(match on {
            Some(true) => format!("{component} is on for {} on every node", csv.name),
            Some(false) => format!("{component} is off for {} on at least one node", csv.name),
            None => format!(
                "whether {component} is on for {} was not reported",
                csv.name
            ),
        });
    }
    let interfaces = format!("Get-ClusterNetworkInterface -Network {}", ps(&csv.name));
    if components.iter().any(|(_, on)| *on == Some(false)) {
        return finding(
            rule,
            Verdict::Fail,
            evidence,
            Some(format!(
                "CSV reaches its volumes over SMB, so Client for Microsoft Networks and File and \
                 Printer Sharing must be on for the CSV network's adapter on every node, unlike \
                 the heartbeat networks of older clusters, where they were often turned off. On \
                 Windows Server 2012 and later:\n{interfaces} | ForEach-Object {{ \
                 Enable-NetAdapterBinding -CimSession ([string]$_.Node) -Name ([string]$_.Adapter) \
                 -ComponentID ms_msclient, ms_server }}\nOn Windows Server 2008 R2, tick both in \
                 the properties of that adapter on each node."
            )),
        );
    }
    if components.iter().any(|(_, on)| on.is_none()) {
        return finding(
            rule,
            Verdict::Unknown,
            evidence,
            Some(format!(
                "See the bindings (Windows Server 2012 and later):\n{interfaces} | ForEach-Object \
                 {{ Get-NetAdapterBinding -CimSession ([string]$_.Node) -Name \
                 ([string]$_.Adapter) -ComponentID ms_msclient, ms_server }}"
            )),
        );
    }
    finding(rule, Verdict::Pass, evidence, None)
}

pub(in crate::validation) fn csv_free_space(
    facts: &ConfigFacts,
    thresholds: &Thresholds,
) -> Vec<Finding> {
    let rule = CSV_FREE_SPACE;
    if let Some(older) = predates(rule, facts, "CSV") {
        return vec![older];
    }
    if facts.csv_volumes.is_empty() {
        return vec![finding(
            rule,
            Verdict::Unknown,
            vec!["no CSV volume was reported; the cluster may have none".into()],
            Some(
                "List the CSV volumes:\nGet-ClusterSharedVolume | ft Name, State, OwnerNode".into(),
            ),
        )];
    }
    facts
        .csv_volumes
        .iter()
        .map(|v| volume_free_space(v, thresholds))
        .collect()
}

fn volume_free_space(volume: &CsvVolumeFacts, thresholds: &Thresholds) -> Finding {
    let at = if volume.path.is_empty() {
        volume.name.clone()
    } else {
        format!("{} ({})", volume.name, volume.path)
    };
    let show = format!(
        "Get-ClusterSharedVolume {} | ForEach-Object {{ $_.SharedVolumeInfo }} | ft \
         FriendlyVolumeName, @{{ n = 'FreeGB'; e = {{ [int64]($_.Partition.FreeSpace / 1GB) }} }}, \
         @{{ n = 'SizeGB'; e = {{ [int64]($_.Partition.Size / 1GB) }} }}",
        ps(&volume.name)
    );
    let (verdict, evidence, remedy) = if volume.size_bytes <= 0
        || volume.free_bytes < 0
        || volume.free_bytes > volume.size_bytes
    {
        (
            Verdict::Unknown,
            vec![format!(
                "{at}: a size of {} bytes with {} bytes free was reported, which cannot be judged",
                volume.size_bytes, volume.free_bytes
            )],
            Some(format!("See the space with:\n{show}")),
        )
    } else {
        let percent = volume.free_bytes as f64 * 100.0 / volume.size_bytes as f64;
        let verdict = if percent < thresholds.csv_free_fail_percent {
            Verdict::Fail
        } else if percent < thresholds.csv_free_warn_percent {
            Verdict::Warn
        } else {
            Verdict::Pass
        };
        // Tenths rounded down in integers, so a volume just under a threshold never reads as at it.
        let tenths = i128::from(volume.free_bytes) * 1000 / i128::from(volume.size_bytes);
        let evidence = vec![
            format!(
                "{at}: {} free of {} ({}.{}%)",
                bytes(volume.free_bytes),
                bytes(volume.size_bytes),
                tenths / 10,
                tenths % 10
            ),
            format!(
                "warns under {}% free, fails under {}%",
                thresholds.csv_free_warn_percent, thresholds.csv_free_fail_percent
            ),
        ];
        let remedy = (verdict != Verdict::Pass).then(|| {
            format!(
                "Virtual machines stop, or cannot start, when their CSV volume runs out of space. \
                 Free space on {at}, e.g. by moving virtual machines or their snapshots to another \
                 volume, or extend the volume. Dynamically expanding virtual disks grow into the \
                 free space; fixed-size ones do not. See the space with:\n{show}"
            )
        });
        (verdict, evidence, remedy)
    };
    Finding {
        rule: CSV_FREE_SPACE.id.to_string(),
        title: format!("Free space on CSV volume {}", volume.name),
        verdict,
        evidence,
        remedy,
    }
}
