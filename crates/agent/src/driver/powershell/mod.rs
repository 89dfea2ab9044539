//! The `powershell` driver: the FailoverClusters cmdlets, run on a cluster node.
//!
//! Each operation is one script sent on the standard input of
//! `powershell.exe -NoProfile -NonInteractive -Command -`, whose last output line is the answer as
//! `ConvertTo-Json -Compress`. Process execution sits behind [`Shell`], so tests feed recorded
//! output and check the exact script.
//!
//! The layers, one file each: `shell` runs a script and reads its answer or its error,
//! `scripts` builds the text of every operation's script, `parse` turns the answers into model
//! and report types, and this module is the driver that strings them together.
//!
//! Script rules, and why:
//! - Every value from outside (group, resource, disk names...) goes through [`ps_quote`]: a
//!   single-quoted literal, quotes doubled. Non-ASCII and control characters become `[char]`
//!   codes, so the script is pure ASCII: `powershell.exe` decodes its standard input with the
//!   console code page, which would garble `Финансы`, and Unicode quote marks (`’`) close a
//!   single-quoted string in PowerShell.
//! - `-Command -` reads standard input like an interactive console: a multi-line block runs only
//!   when a blank line closes it. The body therefore sits in one `try {}` block with no blank line
//!   inside, and the script ends with a blank line.
//! - Failures leave as one `FERRY-ERROR {json}` line on standard error (category, error id,
//!   message) and exit code 1, which [`map_failure`] turns into a [`DriverError`] kind.
//! - Cmdlet enums are cast to `[string]` so that the JSON does not depend on enum numbering; the
//!   parser still accepts numbers, and both a bare object and an array (`ConvertTo-Json` returns a
//!   bare object for a single item, and Windows PowerShell 5.1 sometimes wraps arrays as
//!   `{"value": [...], "Count": n}`).
//!
//! Paths: tasks name Windows paths, which this driver takes as given ([`super::PathsAsGiven`]).
//! By default its agent may touch the cluster's disks ([`default_roots`]): each lettered cluster
//! disk's drive (`F:\`), the same drives through the administrative shares of the cluster's nodes
//! (`\\NODE\F$\`, by node name and by address), and `C:\ClusterStorage\` when the cluster has
//! CSV volumes (Windows mounts them there on every node; the inventory does not carry their
//! folder names). Another cluster's shares, such as the source a skeleton copy reads
//! (`\\OLD\F$\`), are not this cluster's to know: list them with `--allow-path`. The agent
//! compares these as text, case-insensitively, before it opens anything (see [`crate::confine`]).
//!
//! Limits: needs Windows PowerShell 3.0 or later (for `ConvertTo-Json`) and the FailoverClusters
//! module, so Windows Server 2008 and 2008 R2 nodes need WMF 3.0+, and a Windows Server 2003
//! cluster (no module at all) gets `Unsupported` everywhere. Shares come from `Get-SmbShare` on
//! 2012 and later and from WMI `Win32_ClusterShare` before (without caching mode and flags, which
//! WMI does not expose). The Cluster Migration Wizard has no cmdlet on any version, so
//! `migrate_group` is `Unsupported`: run the wizard by hand. IPsec facts are not collected.

mod parse;
mod scripts;
mod shell;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    ClusterDriver, ConfigFacts, DiskReplacement, DriverError, GroupOutcome, MigrationReport,
    PerfSnapshot, normalize_drive_letter,
};
use ferry_core::model::{Disk, Group, InventoryDocument, OsGeneration, Resource};

pub use parse::{
    json_many, parse_config_facts, parse_dependency_expression, parse_disk, parse_disk_replacement,
    parse_group_outcome, parse_groups, parse_inventory, parse_removed, parse_resource,
};
pub use scripts::{Scripts, ps_quote, wrap};
pub use shell::{ProcessShell, Shell, ShellOutput, map_failure, parse_output};

/// The folders an agent of the cluster described by `inventory` may touch by default: each
/// lettered disk's drive root, the same drives through every node's administrative share (by
/// name, and by address when it has one), and `C:\ClusterStorage\` when there are CSV volumes.
pub fn default_roots(inventory: &InventoryDocument) -> Vec<PathBuf> {
    let mut letters: Vec<char> = inventory
        .disks
        .iter()
        .filter_map(|d| d.drive_letter.as_deref())
        .filter_map(|l| normalize_drive_letter(l).ok())
        .filter_map(|l| l.chars().next())
        .collect();
    letters.sort_unstable();
    letters.dedup();
    let mut hosts: Vec<&str> = inventory
        .nodes
        .iter()
        .flat_map(|n| [n.name.as_str(), n.address.as_str()])
        .filter(|h| !h.trim().is_empty())
        .collect();
    hosts.dedup();
    let mut roots: Vec<PathBuf> = letters
        .iter()
        .map(|l| PathBuf::from(format!("{l}:\\")))
        .collect();
    for host in hosts {
        roots.extend(
            letters
                .iter()
                .map(|l| PathBuf::from(format!("\\\\{host}\\{l}$\\"))),
        );
    }
    if inventory.disks.iter().any(|d| d.csv) {
        roots.push(PathBuf::from("C:\\ClusterStorage\\"));
    }
    roots
}

/// Drives a real cluster through PowerShell on one of its nodes.
#[derive(Clone)]
pub struct PowerShellDriver {
    shell: Arc<dyn Shell>,
    scripts: Scripts,
}

impl std::fmt::Debug for PowerShellDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerShellDriver")
            .field("os", &self.scripts.os)
            .finish()
    }
}

impl PowerShellDriver {
    /// `os` is the cluster's generation; it picks the share and CSV commands.
    pub fn new(shell: Arc<dyn Shell>, os: OsGeneration) -> PowerShellDriver {
        PowerShellDriver {
            shell,
            scripts: Scripts { os },
        }
    }

    /// The driver over a local `powershell.exe`.
    pub fn local(os: OsGeneration) -> PowerShellDriver {
        PowerShellDriver::new(Arc::new(ProcessShell::powershell()), os)
    }

    pub fn scripts(&self) -> Scripts {
        self.scripts
    }

    fn supported(&self) -> Result<(), DriverError> {
        if self.scripts.os == OsGeneration::Ws2003 {
            return Err(DriverError::Unsupported(
                "Windows Server 2003 clusters have no FailoverClusters PowerShell module; use \
                 cluster.exe or an inventory import for them"
                    .into(),
            ));
        }
        Ok(())
    }

    async fn run(&self, op: &str, script: String) -> Result<Value, DriverError> {
        self.supported()?;
        tracing::debug!(op, bytes = script.len(), "running powershell script");
        let output = self.shell.run(&script).await?;
        let failed = output.status != Some(0)
            || output
                .stderr
                .lines()
                .any(|l| l.trim_start().starts_with("FERRY-ERROR "));
        if failed {
            let error = map_failure(&output);
            tracing::debug!(op, error = %error, "powershell script failed");
            return Err(error);
        }
        if !output.stderr.trim().is_empty() {
            tracing::warn!(op, stderr = %output.stderr.trim(), "powershell wrote to stderr");
        }
        parse_output(&output.stdout)
    }
}

#[async_trait]
impl ClusterDriver for PowerShellDriver {
    fn driver_name(&self) -> &'static str {
        "powershell"
    }

    async fn list_groups(&self) -> Result<Vec<Group>, DriverError> {
        parse_groups(self.run("list_groups", self.scripts.list_groups()).await?)
    }

    async fn inventory(&self) -> Result<InventoryDocument, DriverError> {
        parse_inventory(self.run("inventory", self.scripts.inventory()).await?)
    }

    async fn offline_group(&self, group: &str) -> Result<GroupOutcome, DriverError> {
        let value = self
            .run("offline_group", self.scripts.offline_group(group))
            .await?;
        parse_group_outcome(value, false)
    }

    async fn online_group(&self, group: &str) -> Result<GroupOutcome, DriverError> {
        let value = self
            .run("online_group", self.scripts.online_group(group))
            .await?;
        parse_group_outcome(value, true)
    }

    /// The Cluster Migration Wizard (2008 R2) and Copy Cluster Roles (2012 and later) are GUI
    /// wizards with no cmdlet or documented API behind them, so there is no script to run.
    async fn migrate_group(
        &self,
        source_cluster: &str,
        group: &str,
    ) -> Result<MigrationReport, DriverError> {
        self.supported()?;
        Err(DriverError::Unsupported(format!(
            "migrating group {group} from {source_cluster} needs the Cluster Migration Wizard \
             (Copy Cluster Roles on 2012 and later), which has no PowerShell cmdlet: run it in \
             Failover Cluster Manager on this cluster, then continue the job"
        )))
    }

    async fn add_disk_resource(&self, group: &str, disk: &str) -> Result<Resource, DriverError> {
        let value = self
            .run(
                "add_disk_resource",
                self.scripts.add_disk_resource(group, disk),
            )
            .await?;
        parse_resource(value)
    }

    async fn remove_resource(&self, group: &str, resource: &str) -> Result<bool, DriverError> {
        let value = self
            .run(
                "remove_resource",
                self.scripts.remove_resource(group, resource),
            )
            .await?;
        parse_removed(value)
    }

    async fn set_dependencies(
        &self,
        group: &str,
        resource: &str,
        depends_on: &[String],
    ) -> Result<Resource, DriverError> {
        let script = self.scripts.set_dependencies(group, resource, depends_on)?;
        let value = self.run("set_dependencies", script).await?;
        parse_resource(value)
    }

    async fn assign_drive_letter(&self, disk: &str, letter: &str) -> Result<Disk, DriverError> {
        let letter = normalize_drive_letter(letter)?;
        let value = self
            .run(
                "assign_drive_letter",
                self.scripts.assign_drive_letter(disk, &letter),
            )
            .await?;
        parse_disk(value)
    }

    async fn prepare_disk(&self, letter: &str) -> Result<Disk, DriverError> {
        let letter = normalize_drive_letter(letter)?;
        let value = self
            .run("prepare_disk", self.scripts.prepare_disk(&letter))
            .await?;
        parse_disk(value)
    }

    async fn replace_disk_resource(
        &self,
        group: &str,
        disk: &str,
        letter: &str,
    ) -> Result<DiskReplacement, DriverError> {
        let letter = normalize_drive_letter(letter)?;
        let script = self.scripts.replace_disk_resource(group, disk, &letter)?;
        let value = self.run("replace_disk_resource", script).await?;
        parse_disk_replacement(value)
    }

    async fn remove_group(&self, group: &str) -> Result<bool, DriverError> {
        // The core groups hold the cluster itself; no runbook step means them.
        if ["Cluster Group", "Available Storage"]
            .iter()
            .any(|core| core.eq_ignore_ascii_case(group.trim()))
        {
            return Err(DriverError::Conflict(format!(
                "{group} is a core cluster group and cannot be removed"
            )));
        }
        let value = self
            .run("remove_group", self.scripts.remove_group(group))
            .await?;
        parse_removed(value)
    }

    async fn config_facts(&self) -> Result<ConfigFacts, DriverError> {
        let value = self
            .run("config_facts", self.scripts.config_facts())
            .await?;
        parse_config_facts(value, self.scripts.os)
    }

    /// No cluster counters yet: a Windows agent sends none (the agent's own sampler reads Linux
    /// `/proc/diskstats`); PhysicalDisk and Cluster CSV File System counters through
    /// `Get-Counter` belong here.
    async fn perf_counters(&self, _at: DateTime<Utc>) -> Result<Option<PerfSnapshot>, DriverError> {
        Ok(None)
    }

    /// The cluster's disks as [`default_roots`] lists them, from a fresh inventory: a disk
    /// lettered since the last task counts, one moved away no longer does.
    async fn default_roots(&self) -> Result<Vec<PathBuf>, DriverError> {
        Ok(default_roots(&self.inventory().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_core::model::{Disk, Node};

    #[test]
    fn default_roots_are_the_lettered_disks_by_drive_and_admin_share() {
        let disk = |letter: Option<&str>, csv: bool| Disk {
            resource: "Cluster Disk".into(),
            drive_letter: letter.map(Into::into),
            size_bytes: 1,
            free_bytes: 1,
            csv,
        };
        let node = |name: &str, address: &str| Node {
            name: name.into(),
            address: address.into(),
            processor: Default::default(),
            facts: Default::default(),
        };
        let inventory = InventoryDocument {
            nodes: vec![node("N1", "10.0.0.1"), node("N2", "")],
            disks: vec![
                disk(Some("g:"), false),
                disk(Some("F:"), false),
                disk(None, false),
            ],
            ..Default::default()
        };
        let roots: Vec<String> = default_roots(&inventory)
            .iter()
            .map(|r| r.display().to_string())
            .collect();
        assert_eq!(
            roots,
            [
                "F:\\",
                "G:\\",
                "\\\\N1\\F$\\",
                "\\\\N1\\G$\\",
                "\\\\10.0.0.1\\F$\\",
                "\\\\10.0.0.1\\G$\\",
                "\\\\N2\\F$\\",
                "\\\\N2\\G$\\",
            ]
        );
        let with_csv = InventoryDocument {
            disks: vec![disk(None, true)],
            ..Default::default()
        };
        assert_eq!(
            default_roots(&with_csv),
            [PathBuf::from("C:\\ClusterStorage\\")]
        );
        assert!(default_roots(&InventoryDocument::default()).is_empty());
    }
}
