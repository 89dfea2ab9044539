//! The `powershell` driver: the FailoverClusters cmdlets, run on a cluster node.
//!
//! Each operation is one script sent on the standard input of
//! `powershell.exe -NoProfile -NonInteractive -Command -`, whose last output line is the answer as
//! `ConvertTo-Json -Compress`. Process execution sits behind [`Shell`], so tests feed recorded
//! output and check the exact script.
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
//! Limits: needs Windows PowerShell 3.0 or later (for `ConvertTo-Json`) and the FailoverClusters
//! module, so Windows Server 2008 and 2008 R2 nodes need WMF 3.0+, and a Windows Server 2003
//! cluster (no module at all) gets `Unsupported` everywhere. Shares come from `Get-SmbShare` on
//! 2012 and later and from WMI `Win32_ClusterShare` before (without caching mode and flags, which
//! WMI does not expose). The Cluster Migration Wizard has no cmdlet on any version, so
//! `migrate_group` is `Unsupported`: run the wizard by hand. IPsec facts are not collected.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use tokio::io::AsyncWriteExt;

use super::{
    ClusterDriver, ConfigFacts, CsvVolumeFacts, DiskReplacement, DriverError, ErrorKind,
    GroupOutcome, HbaFacts, MigrationReport, NetworkFacts, NodeFacts, PerfSnapshot, QuorumFacts,
    QuorumType, ResourceError, ResourceOutcome, normalize_drive_letter,
};
use ferry_core::model::{
    Access, AceType, CachingMode, Disk, Group, InventoryDocument, Network, NetworkRole, Node,
    OsGeneration, Permission, Processor, Properties, Resource, ResourceKind, ResourceState, Share,
};

// ---- the shell ----------------------------------------------------------------------------------

/// What a script run produced.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShellOutput {
    /// Exit code; `None` when the process was killed by a signal.
    pub status: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs one PowerShell script and returns what it printed.
#[async_trait]
pub trait Shell: Send + Sync {
    async fn run(&self, script: &str) -> Result<ShellOutput, DriverError>;
}

/// Runs scripts in a child process, the script on its standard input.
#[derive(Debug, Clone)]
pub struct ProcessShell {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl ProcessShell {
    /// `powershell.exe -NoProfile -NonInteractive -Command -`, ten minutes per script.
    pub fn powershell() -> ProcessShell {
        ProcessShell::new(
            "powershell.exe",
            ["-NoProfile", "-NonInteractive", "-Command", "-"],
        )
    }

    pub fn new<I, S>(program: impl Into<PathBuf>, args: I) -> ProcessShell
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ProcessShell {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            timeout: Duration::from_secs(600),
        }
    }

    /// Kills the process and fails with `Timeout` past this.
    pub fn with_timeout(mut self, timeout: Duration) -> ProcessShell {
        self.timeout = timeout;
        self
    }
}

#[async_trait]
impl Shell for ProcessShell {
    async fn run(&self, script: &str) -> Result<ShellOutput, DriverError> {
        let mut child = tokio::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => DriverError::Unsupported(format!(
                    "{} is not installed here: the powershell driver runs on a Windows cluster node",
                    self.program.display()
                )),
                _ => DriverError::Failed(format!("cannot start {}: {e}", self.program.display())),
            })?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let bytes = script.as_bytes().to_vec();
        // Written concurrently with reading the output, so a chatty script cannot fill a pipe and
        // deadlock against us.
        let writer = async move {
            let written = stdin.write_all(&bytes).await;
            drop(stdin);
            written
        };
        let run = async {
            let (written, output) = tokio::join!(writer, child.wait_with_output());
            let output =
                output.map_err(|e| DriverError::Failed(format!("waiting for powershell: {e}")))?;
            if let Err(e) = written
                && output.status.success()
            {
                return Err(DriverError::Failed(format!(
                    "could not send the script to powershell: {e}"
                )));
            }
            Ok(ShellOutput {
                status: output.status.code(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        };
        tokio::time::timeout(self.timeout, run).await.map_err(|_| {
            DriverError::Timeout(format!(
                "powershell did not finish within {} s",
                self.timeout.as_secs()
            ))
        })?
    }
}

// ---- script text --------------------------------------------------------------------------------

/// A PowerShell expression for the string `value` that nothing in it can escape from.
///
/// Printable ASCII goes into single-quoted literals with `'` doubled; every other character
/// becomes `[char]0xHHHH` (UTF-16 units), joined with `+` inside parentheses and started with a
/// string so that `+` concatenates.
pub fn ps_quote(value: &str) -> String {
    let plain = |c: char| (' '..='~').contains(&c);
    if value.chars().all(plain) {
        return format!("'{}'", value.replace('\'', "''"));
    }
    let mut parts: Vec<String> = Vec::new();
    let mut run = String::new();
    for c in value.chars() {
        if plain(c) {
            run.push(c);
            continue;
        }
        if !run.is_empty() {
            parts.push(format!("'{}'", run.replace('\'', "''")));
            run.clear();
        }
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units) {
            parts.push(format!("[char]0x{unit:04X}"));
        }
    }
    if !run.is_empty() {
        parts.push(format!("'{}'", run.replace('\'', "''")));
    }
    if !parts[0].starts_with('\'') {
        parts.insert(0, "''".into());
    }
    format!("({})", parts.join(" + "))
}

const HEAD: &str = "$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
try {
  Import-Module FailoverClusters
";

const TAIL: &str = "} catch {
  $e = $_
  $r = [pscustomobject]@{ Category = [string]$e.CategoryInfo.Category; Id = [string]$e.FullyQualifiedErrorId; Message = [string]$e.Exception.Message }
  [Console]::Error.WriteLine('FERRY-ERROR ' + ($r | ConvertTo-Json -Compress))
  exit 1
}

";

/// The full script around an operation's body: preferences, the `try` block, the error record.
pub fn wrap(body: &str) -> String {
    let mut script = String::from(HEAD);
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        script.push_str("  ");
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(TAIL);
    script
}

const FN_RESOURCE: &str = "function ConvertTo-FerryResource($r) {
  $parameters = @{}
  foreach ($p in @($r | Get-ClusterParameter)) { $parameters[[string]$p.Name] = [string]$p.Value }
  [pscustomobject]@{ Name = [string]$r.Name; ResourceType = [string]$r.ResourceType; State = [string]$r.State; OwnerGroup = [string]$r.OwnerGroup.Name; Dependency = [string]($r | Get-ClusterResourceDependency).DependencyExpression; Parameters = $parameters }
}
";

const FN_SHARES_SMB: &str = "function Get-FerryShares($scope) {
  foreach ($s in @(Get-SmbShare -ScopeName $scope | Where-Object { -not $_.Special })) {
    $access = @(Get-SmbShareAccess -Name $s.Name -ScopeName $scope | ForEach-Object { [pscustomobject]@{ Account = [string]$_.AccountName; Type = [string]$_.AccessControlType; Right = [string]$_.AccessRight } })
    [pscustomobject]@{ Name = [string]$s.Name; Path = [string]$s.Path; Description = [string]$s.Description; CachingMode = [string]$s.CachingMode; AccessBased = ([string]$s.FolderEnumerationMode -eq 'AccessBased'); ContinuouslyAvailable = [bool]$s.ContinuouslyAvailable; EncryptData = [bool]$s.EncryptData; UserLimit = [int64]$s.ConcurrentUserLimit; Access = $access }
  }
}
";

const FN_SHARES_WMI: &str = "function Get-FerryShares($scope) {
  $security = @{}
  foreach ($x in @(Get-WmiObject -Class Win32_LogicalShareSecuritySetting -ComputerName $scope)) { $security[[string]$x.Name] = $x }
  foreach ($s in @(Get-WmiObject -Class Win32_ClusterShare -ComputerName $scope | Where-Object { $_.ServerName -eq $scope -and ($_.Type -band 0x80000000) -eq 0 })) {
    $access = @()
    $x = $security[[string]$s.ShareName]
    if ($null -ne $x) { $access = @($x.GetSecurityDescriptor().Descriptor.DACL | ForEach-Object { [pscustomobject]@{ Account = ([string]$_.Trustee.Domain + '\\' + [string]$_.Trustee.Name); Type = [int]$_.AceType; Right = [int64]$_.AccessMask } }) }
    [pscustomobject]@{ Name = [string]$s.ShareName; Path = [string]$s.Path; Description = [string]$s.Description; Access = $access }
  }
}
";

const FN_GROUP: &str = "function ConvertTo-FerryGroup($g) {
  $resources = @($g | Get-ClusterResource)
  $names = @($resources | Where-Object { [string]$_.ResourceType -eq 'Network Name' } | ForEach-Object { [string]($_ | Get-ClusterParameter -Name DnsName).Value })
  $shares = @(foreach ($n in $names) { Get-FerryShares $n })
  [pscustomobject]@{ Name = [string]$g.Name; OwnerNode = [string]$g.OwnerNode; State = [string]$g.State; Resources = @($resources | ForEach-Object { ConvertTo-FerryResource $_ }); Shares = $shares }
}
";

const ROLE_GROUPS: &str = "@(Get-ClusterGroup | Where-Object { $_.Name -ne 'Cluster Group' -and $_.Name -ne 'Available Storage' } | ForEach-Object { ConvertTo-FerryGroup $_ })";

const NETWORKS: &str = "$networks = @(Get-ClusterNetwork | ForEach-Object { [pscustomobject]@{ Name = [string]$_.Name; Role = [int]$_.Role; Metric = [int64]$_.Metric; AutoMetric = [bool]$_.AutoMetric; Address = [string]$_.Address; Mask = [string]$_.AddressMask } })";

const CSV_VOLUMES: &str = "$csv = @(Get-ClusterSharedVolume | ForEach-Object { $v = $_; $_.SharedVolumeInfo | ForEach-Object { [pscustomobject]@{ Resource = [string]$v.Name; Path = [string]$_.FriendlyVolumeName; TotalMB = [int64]($_.Partition.Size / 1MB); FreeMB = [int64]($_.Partition.FreeSpace / 1MB) } } })";

/// Builds the script of every operation for one OS generation. Pure: tests check the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scripts {
    pub os: OsGeneration,
}

impl Scripts {
    fn smb(&self) -> bool {
        self.os >= OsGeneration::Ws2012
    }

    fn has_csv(&self) -> bool {
        self.os >= OsGeneration::Ws2008r2
    }

    fn group_functions(&self) -> String {
        let shares = if self.smb() {
            FN_SHARES_SMB
        } else {
            FN_SHARES_WMI
        };
        format!("{FN_RESOURCE}{shares}{FN_GROUP}")
    }

    pub fn list_groups(&self) -> String {
        wrap(&format!(
            "{}$groups = {ROLE_GROUPS}\n$groups | ConvertTo-Json -Depth 8 -Compress\n",
            self.group_functions()
        ))
    }

    pub fn inventory(&self) -> String {
        let csv = if self.has_csv() {
            CSV_VOLUMES
        } else {
            "$csv = @()"
        };
        wrap(&format!(
            "{functions}$nodes = @(Get-ClusterNode | ForEach-Object {{ $cpu = @(Get-WmiObject -Class Win32_Processor -ComputerName $_.Name)[0]; [pscustomobject]@{{ Name = [string]$_.Name; State = [string]$_.State; Vendor = [string]$cpu.Manufacturer; Model = [string]$cpu.Name }} }})
{NETWORKS}
$disks = @(Get-WmiObject -Namespace 'root\\MSCluster' -Class MSCluster_Resource | Where-Object {{ $_.Type -eq 'Physical Disk' }} | ForEach-Object {{ $r = $_; $r.GetRelated('MSCluster_Disk') | ForEach-Object {{ $_.GetRelated('MSCluster_DiskPartition') }} | ForEach-Object {{ [pscustomobject]@{{ Resource = [string]$r.Name; Path = [string]$_.Path; TotalMB = [int64]$_.TotalSize; FreeMB = [int64]$_.FreeSpace }} }} }})
{csv}
$groups = {ROLE_GROUPS}
[pscustomobject]@{{ Nodes = $nodes; Networks = $networks; Disks = $disks; Csv = $csv; Groups = $groups }} | ConvertTo-Json -Depth 8 -Compress
",
            functions = self.group_functions(),
        ))
    }

    fn group_state(&self, group: &str, action: &str) -> String {
        wrap(&format!(
            "$name = {group}
$group = Get-ClusterGroup -Name $name
$before = @{{}}
foreach ($r in @($group | Get-ClusterResource)) {{ $before[[string]$r.Name] = [string]$r.State }}
$err = $null
{action}
$group = Get-ClusterGroup -Name $name
$resources = @($group | Get-ClusterResource | ForEach-Object {{ [pscustomobject]@{{ Name = [string]$_.Name; ResourceType = [string]$_.ResourceType; Before = $before[[string]$_.Name]; State = [string]$_.State }} }})
[pscustomobject]@{{ Name = [string]$group.Name; OwnerNode = [string]$group.OwnerNode; State = [string]$group.State; Error = $err; Resources = $resources }} | ConvertTo-Json -Depth 4 -Compress
",
            group = ps_quote(group),
        ))
    }

    pub fn offline_group(&self, group: &str) -> String {
        self.group_state(group, "$null = Stop-ClusterGroup -Name $name")
    }

    /// A failed start is caught so that the per-resource states still come back.
    pub fn online_group(&self, group: &str) -> String {
        self.group_state(
            group,
            "try { $null = Start-ClusterGroup -Name $name } catch { $err = [string]$_.Exception.Message }",
        )
    }

    pub fn add_disk_resource(&self, group: &str, disk: &str) -> String {
        wrap(&format!(
            "{FN_RESOURCE}$groupName = {group}
$diskName = {disk}
$null = Get-ClusterGroup -Name $groupName
$r = Get-ClusterResource | Where-Object {{ $_.Name -eq $diskName }}
if ($null -eq $r) {{ $r = Get-ClusterAvailableDisk | Where-Object {{ $_.Name -eq $diskName }} | Add-ClusterDisk }}
if ($null -eq $r) {{ Write-Error -Message ('No cluster disk or available disk is named ' + $diskName) -Category ObjectNotFound }}
if ([string]$r.ResourceType -ne 'Physical Disk') {{ Write-Error -Message ($diskName + ' is not a physical disk') -Category InvalidType }}
$owner = [string]$r.OwnerGroup.Name
if ($owner -ne $groupName -and $owner -ne 'Available Storage') {{ Write-Error -Message ($diskName + ' already belongs to group ' + $owner) -Category ResourceExists }}
if ($owner -ne $groupName) {{ $null = Move-ClusterResource -Name $diskName -Group $groupName }}
ConvertTo-FerryResource (Get-ClusterResource -Name $diskName) | ConvertTo-Json -Depth 4 -Compress
",
            group = ps_quote(group),
            disk = ps_quote(disk),
        ))
    }

    pub fn remove_resource(&self, group: &str, resource: &str) -> String {
        wrap(&format!(
            "$groupName = {group}
$resourceName = {resource}
$null = Get-ClusterGroup -Name $groupName
$r = Get-ClusterResource | Where-Object {{ $_.Name -eq $resourceName }}
$removed = $false
if ($null -ne $r) {{
  $owner = [string]$r.OwnerGroup.Name
  if ($owner -ne $groupName) {{ Write-Error -Message ('Resource ' + $resourceName + ' belongs to group ' + $owner) -Category ResourceExists }}
  if ([string]$r.State -ne 'Offline' -and [string]$r.State -ne 'Failed') {{ Write-Error -Message ('Resource ' + $resourceName + ' is ' + [string]$r.State + ': take it offline first') -Category ResourceBusy }}
  $null = Remove-ClusterResource -Name $resourceName -Force
  $removed = $true
}}
[pscustomobject]@{{ Removed = $removed }} | ConvertTo-Json -Compress
",
            group = ps_quote(group),
            resource = ps_quote(resource),
        ))
    }

    /// The dependency expression is built here (`[A] and [B]`) and quoted as a whole; names
    /// holding brackets cannot be written in that grammar and are refused before any script.
    pub fn set_dependencies(
        &self,
        group: &str,
        resource: &str,
        depends_on: &[String],
    ) -> Result<String, DriverError> {
        if let Some(bad) = depends_on.iter().find(|d| d.contains(['[', ']'])) {
            return Err(DriverError::Unsupported(format!(
                "resource name `{bad}` contains a bracket, which a cluster dependency expression \
                 cannot hold"
            )));
        }
        let expression = depends_on
            .iter()
            .map(|d| format!("[{d}]"))
            .collect::<Vec<_>>()
            .join(" and ");
        Ok(wrap(&format!(
            "{FN_RESOURCE}$groupName = {group}
$resourceName = {resource}
$expression = {expression}
$r = Get-ClusterResource -Name $resourceName
if ([string]$r.OwnerGroup.Name -ne $groupName) {{ Write-Error -Message ('Group ' + $groupName + ' has no resource named ' + $resourceName) -Category ObjectNotFound }}
$null = Set-ClusterResourceDependency -Resource $resourceName -Dependency $expression
ConvertTo-FerryResource (Get-ClusterResource -Name $resourceName) | ConvertTo-Json -Depth 4 -Compress
",
            group = ps_quote(group),
            resource = ps_quote(resource),
            expression = ps_quote(&expression),
        )))
    }

    /// Changes the letter of the disk's volume on the node that owns it, through WMI
    /// `Win32_Volume` (the Storage module only exists from 2012 on).
    pub fn assign_drive_letter(&self, disk: &str, letter: &str) -> String {
        wrap(&format!(
            "$diskName = {disk}
$letter = {letter}
$r = Get-WmiObject -Namespace 'root\\MSCluster' -Class MSCluster_Resource | Where-Object {{ $_.Name -eq $diskName }}
if ($null -eq $r) {{ Write-Error -Message ('No cluster disk is named ' + $diskName) -Category ObjectNotFound }}
$part = @($r.GetRelated('MSCluster_Disk') | ForEach-Object {{ $_.GetRelated('MSCluster_DiskPartition') }})[0]
if ($null -eq $part) {{ Write-Error -Message ('Disk ' + $diskName + ' has no partition') -Category ObjectNotFound }}
$path = [string]$part.Path
if ($path -ne $letter) {{
  $node = [string](Get-ClusterResource -Name $diskName).OwnerNode
  $volumes = @(Get-WmiObject -Class Win32_Volume -ComputerName $node)
  $taken = @($volumes | Where-Object {{ $_.DriveLetter -eq $letter }})
  if ($taken.Count -gt 0) {{ Write-Error -Message ('Drive letter ' + $letter + ' is already used on ' + $node) -Category ResourceExists }}
  $volume = $volumes | Where-Object {{ $_.DeviceID -eq ('\\\\?\\Volume' + [string]$part.VolumeGuid + '\\') }}
  if ($null -eq $volume) {{ Write-Error -Message ('No volume found for disk ' + $diskName) -Category ObjectNotFound }}
  $volume.DriveLetter = $letter
  $null = $volume.Put()
  $path = $letter
}}
[pscustomobject]@{{ Resource = $diskName; Path = $path; TotalMB = [int64]$part.TotalSize; FreeMB = [int64]$part.FreeSpace }} | ConvertTo-Json -Compress
",
            disk = ps_quote(disk),
            letter = ps_quote(letter),
        ))
    }

    /// Sets `$path` to `$letter` on the volume of `$part` (a `MSCluster_DiskPartition` of disk
    /// `$diskName`) unless it already is: `Set-Partition` from 2012 on, WMI `Win32_Volume` before
    /// (the Storage module does not exist on 2008). The letter must be free on the owner node.
    fn set_letter(&self) -> String {
        let change = if self.smb() {
            "  if ($null -ne (Get-Partition -CimSession $node -DriveLetter $letter.Substring(0, 1) -ErrorAction SilentlyContinue)) { Write-Error -Message ('Drive letter ' + $letter + ' is already used on ' + $node) -Category ResourceExists }
  $partition = @(Get-Partition -CimSession $node | Where-Object { $_.AccessPaths -contains ('\\\\?\\Volume' + [string]$part.VolumeGuid + '\\') })[0]
  if ($null -eq $partition) { Write-Error -Message ('No partition found for disk ' + $diskName) -Category ObjectNotFound }
  $partition | Set-Partition -NewDriveLetter $letter.Substring(0, 1)
"
        } else {
            "  $volumes = @(Get-WmiObject -Class Win32_Volume -ComputerName $node)
  $taken = @($volumes | Where-Object { $_.DriveLetter -eq $letter })
  if ($taken.Count -gt 0) { Write-Error -Message ('Drive letter ' + $letter + ' is already used on ' + $node) -Category ResourceExists }
  $volume = $volumes | Where-Object { $_.DeviceID -eq ('\\\\?\\Volume' + [string]$part.VolumeGuid + '\\') }
  if ($null -eq $volume) { Write-Error -Message ('No volume found for disk ' + $diskName) -Category ObjectNotFound }
  $volume.DriveLetter = $letter
  $null = $volume.Put()
"
        };
        format!(
            "$path = [string]$part.Path
if ($path -ne $letter) {{
  $node = [string](Get-ClusterResource -Name $diskName).OwnerNode
{change}  $path = $letter
}}
"
        )
    }

    /// Picks a disk of `Available Storage` (the one already lettered `letter`, else an unlettered
    /// one, else any) and letters it. A letter on a disk some group owns is refused.
    pub fn prepare_disk(&self, letter: &str) -> String {
        wrap(&format!(
            "$letter = {letter}
$disks = @(Get-WmiObject -Namespace 'root\\MSCluster' -Class MSCluster_Resource | Where-Object {{ $_.Type -eq 'Physical Disk' }} | ForEach-Object {{ $w = $_; $w.GetRelated('MSCluster_Disk') | ForEach-Object {{ $_.GetRelated('MSCluster_DiskPartition') }} | ForEach-Object {{ [pscustomobject]@{{ Resource = [string]$w.Name; Group = [string](Get-ClusterResource -Name $w.Name).OwnerGroup.Name; Path = [string]$_.Path; Part = $_ }} }} }})
$disk = @($disks | Where-Object {{ $_.Path -eq $letter }})[0]
if ($null -ne $disk -and $disk.Group -ne 'Available Storage') {{ Write-Error -Message ('Drive letter ' + $letter + ' is taken by disk ' + $disk.Resource + ' of group ' + $disk.Group) -Category ResourceExists }}
if ($null -eq $disk) {{
  $free = @($disks | Where-Object {{ $_.Group -eq 'Available Storage' }})
  $disk = @($free | Where-Object {{ $_.Path -notmatch '^[A-Za-z]:$' }})[0]
  if ($null -eq $disk) {{ $disk = $free[0] }}
  if ($null -eq $disk) {{ Write-Error -Message 'No disk is in Available Storage: present a spare LUN to the cluster and add it to its storage' -Category ObjectNotFound }}
}}
$diskName = $disk.Resource
$part = $disk.Part
{set_letter}[pscustomobject]@{{ Resource = $diskName; Path = $path; TotalMB = [int64]$part.TotalSize; FreeMB = [int64]$part.FreeSpace }} | ConvertTo-Json -Compress
",
            letter = ps_quote(letter),
            set_letter = self.set_letter(),
        ))
    }

    /// Moves the disk into the group, letters it, rewrites every dependency expression naming
    /// one of the group's other physical disks to name it instead, then deletes those disks.
    /// Every check comes before the first change. The disk must already be a cluster resource or
    /// an available disk: a Physical Disk resource needs the disk's signature, which
    /// `Add-ClusterDisk` fills in and a bare `Add-ClusterResource` does not.
    pub fn replace_disk_resource(
        &self,
        group: &str,
        disk: &str,
        letter: &str,
    ) -> Result<String, DriverError> {
        if disk.contains(['[', ']']) {
            return Err(DriverError::Unsupported(format!(
                "disk name `{disk}` contains a bracket, which a cluster dependency expression \
                 cannot hold"
            )));
        }
        Ok(wrap(&format!(
            "$groupName = {group}
$diskName = {disk}
$letter = {letter}
$null = Get-ClusterGroup -Name $groupName
$r = Get-ClusterResource | Where-Object {{ $_.Name -eq $diskName }}
if ($null -eq $r) {{ $r = Get-ClusterAvailableDisk | Where-Object {{ $_.Name -eq $diskName }} | Add-ClusterDisk }}
if ($null -eq $r) {{ Write-Error -Message ('No cluster disk or available disk is named ' + $diskName) -Category ObjectNotFound }}
if ([string]$r.ResourceType -ne 'Physical Disk') {{ Write-Error -Message ($diskName + ' is not a physical disk') -Category InvalidType }}
$owner = [string]$r.OwnerGroup.Name
if ($owner -ne $groupName -and $owner -ne 'Available Storage') {{ Write-Error -Message ('Disk ' + $diskName + ' belongs to group ' + $owner + ', not ' + $groupName) -Category ResourceExists }}
$others = @(Get-ClusterGroup -Name $groupName | Get-ClusterResource | Where-Object {{ [string]$_.ResourceType -eq 'Physical Disk' -and $_.Name -ne $diskName }})
foreach ($o in $others) {{ if ([string]$o.State -ne 'Offline' -and [string]$o.State -ne 'Failed') {{ Write-Error -Message ('Disk resource ' + [string]$o.Name + ' of group ' + $groupName + ' is ' + [string]$o.State + ': take the group offline first') -Category ResourceBusy }} }}
if ($owner -ne $groupName) {{ $null = Move-ClusterResource -Name $diskName -Group $groupName }}
$part = @((Get-WmiObject -Namespace 'root\\MSCluster' -Class MSCluster_Resource | Where-Object {{ $_.Name -eq $diskName }}).GetRelated('MSCluster_Disk') | ForEach-Object {{ $_.GetRelated('MSCluster_DiskPartition') }})[0]
if ($null -eq $part) {{ Write-Error -Message ('Disk ' + $diskName + ' has no partition') -Category ObjectNotFound }}
{set_letter}$removed = @($others | ForEach-Object {{ [string]$_.Name }})
$repointed = @()
foreach ($d in @(Get-ClusterGroup -Name $groupName | Get-ClusterResource | Where-Object {{ $_.Name -ne $diskName }})) {{
  $expression = [string]($d | Get-ClusterResourceDependency).DependencyExpression
  $changed = $false
  foreach ($n in $removed) {{ $token = '[' + $n + ']'; if ($expression.Contains($token)) {{ $expression = $expression.Replace($token, '[' + $diskName + ']'); $changed = $true }} }}
  if ($changed) {{ $null = Set-ClusterResourceDependency -Resource $d.Name -Dependency $expression; $repointed += [string]$d.Name }}
}}
foreach ($n in $removed) {{ $null = Remove-ClusterResource -Name $n -Force }}
[pscustomobject]@{{ Resource = $diskName; Removed = $removed; Repointed = $repointed }} | ConvertTo-Json -Compress
",
            group = ps_quote(group),
            disk = ps_quote(disk),
            letter = ps_quote(letter),
            set_letter = self.set_letter(),
        )))
    }

    pub fn remove_group(&self, group: &str) -> String {
        wrap(&format!(
            "$groupName = {group}
$g = Get-ClusterGroup | Where-Object {{ $_.Name -eq $groupName }}
$removed = $false
if ($null -ne $g) {{
  $online = @($g | Get-ClusterResource | Where-Object {{ [string]$_.State -ne 'Offline' -and [string]$_.State -ne 'Failed' }})
  if ($online.Count -gt 0) {{ Write-Error -Message ('Group ' + $groupName + ' is online (resource ' + [string]$online[0].Name + ' is ' + [string]$online[0].State + '): take it offline first') -Category ResourceBusy }}
  $null = Remove-ClusterGroup -Name $groupName -RemoveResources -Force
  $removed = $true
}}
[pscustomobject]@{{ Removed = $removed }} | ConvertTo-Json -Compress
",
            group = ps_quote(group),
        ))
    }

    pub fn config_facts(&self) -> String {
        let switches = if self.os >= OsGeneration::Ws2012 {
            "root\\virtualization\\v2"
        } else {
            "root\\virtualization"
        };
        let bindings = if self.os >= OsGeneration::Ws2012 {
            "$bindings = @(Get-ClusterNetworkInterface | ForEach-Object { $i = $_; Get-NetAdapterBinding -CimSession ([string]$i.Node) -Name ([string]$i.Adapter) -ComponentID ms_msclient,ms_server -ErrorAction SilentlyContinue | ForEach-Object { [pscustomobject]@{ Network = [string]$i.Network; Node = [string]$i.Node; Component = [string]$_.ComponentID; Enabled = [bool]$_.Enabled } } })"
        } else {
            "$bindings = @()"
        };
        let csv = if self.has_csv() {
            CSV_VOLUMES
        } else {
            "$csv = @()"
        };
        wrap(&format!(
            "{NETWORKS}
$hyperv = [bool](Get-Command Get-VMProcessor -ErrorAction SilentlyContinue)
$nodes = @(Get-ClusterNode | ForEach-Object {{
  $n = [string]$_.Name
  $cpu = @(Get-WmiObject -Class Win32_Processor -ComputerName $n)[0]
  $switches = @(Get-WmiObject -Namespace '{switches}' -Class Msvm_VirtualSwitch -ComputerName $n -ErrorAction SilentlyContinue | ForEach-Object {{ [string]$_.ElementName }})
  $reg = [wmiclass]('\\\\' + $n + '\\root\\default:StdRegProv')
  $lsa = 'SYSTEM\\CurrentControlSet\\Control\\Lsa\\MSV1_0'
  $send = $reg.GetDWORDValue(2147483650, $lsa, 'RestrictSendingNTLMTraffic').uValue
  $receive = $reg.GetDWORDValue(2147483650, $lsa, 'RestrictReceivingNTLMTraffic').uValue
  $hbas = @(Get-WmiObject -Namespace 'root\\WMI' -Class MSFC_FCAdapterHBAAttributes -ComputerName $n -ErrorAction SilentlyContinue | ForEach-Object {{ [pscustomobject]@{{ Model = [string]$_.Model; DriverVersion = [string]$_.DriverVersion; FirmwareVersion = [string]$_.FirmwareVersion }} }})
  $compat = @(if ($hyperv) {{ Get-VM -ComputerName $n -ErrorAction SilentlyContinue | Get-VMProcessor -ErrorAction SilentlyContinue | ForEach-Object {{ [bool]$_.CompatibilityForMigrationEnabled }} }})
  [pscustomobject]@{{ Name = $n; Vendor = [string]$cpu.Manufacturer; Model = [string]$cpu.Name; Switches = $switches; NtlmSend = $send; NtlmReceive = $receive; Hbas = $hbas; ProcessorCompatibility = $compat }}
}})
{bindings}
{csv}
$lmQos = if (Get-Command Get-SmbBandwidthLimit -ErrorAction SilentlyContinue) {{ @(Get-SmbBandwidthLimit -Category LiveMigration -ErrorAction SilentlyContinue).Count -gt 0 }} else {{ $null }}
[pscustomobject]@{{ Cluster = [string](Get-Cluster).Name; Networks = $networks; Nodes = $nodes; Bindings = $bindings; Csv = $csv; Quorum = [string](Get-ClusterQuorum).QuorumType; LiveMigrationQos = $lmQos }} | ConvertTo-Json -Depth 6 -Compress
"
        ))
    }
}

// ---- output parsing -----------------------------------------------------------------------------

/// The values of a JSON answer that may be missing, a bare object, an array, or Windows
/// PowerShell 5.1's `{"value": [...], "Count": n}` wrapping of an array.
pub fn json_many(value: Value) -> Vec<Value> {
    match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        Value::Object(mut map)
            if map.len() == 2 && map.contains_key("Count") && map.contains_key("value") =>
        {
            match map.remove("value") {
                Some(Value::Array(items)) => items,
                Some(other) => vec![other],
                None => Vec::new(),
            }
        }
        other => vec![other],
    }
}

fn de_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    json_many(value)
        .into_iter()
        .map(|v| serde_json::from_value(v).map_err(serde::de::Error::custom))
        .collect()
}

/// The answer of a script: its last non-empty output line, as JSON (`null` when there is none).
pub fn parse_output(stdout: &str) -> Result<Value, DriverError> {
    let line = stdout
        .trim_start_matches('\u{feff}')
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty());
    match line {
        None => Ok(Value::Null),
        Some(line) => serde_json::from_str(line.trim_start_matches('\u{feff}')).map_err(|e| {
            DriverError::Failed(format!(
                "powershell printed something that is not JSON ({e}): {line}"
            ))
        }),
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorRecord {
    #[serde(default)]
    category: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    message: String,
}

/// Turns a failed run into an error: the `FERRY-ERROR` record when the script wrote one (its
/// category decides the kind), else the exit code and standard error text.
pub fn map_failure(output: &ShellOutput) -> DriverError {
    let record = output
        .stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("FERRY-ERROR "))
        .filter_map(|json| serde_json::from_str::<ErrorRecord>(json).ok())
        .next_back();
    if let Some(record) = record {
        let id = record.id.as_str();
        let kind = if id.contains("CommandNotFoundException")
            || id.starts_with("Modules_ModuleNotFound")
        {
            ErrorKind::Unsupported
        } else {
            match record.category.as_str() {
                "ObjectNotFound" => ErrorKind::NotFound,
                "ResourceExists" | "ResourceBusy" => ErrorKind::Conflict,
                "ResourceUnavailable" | "ConnectionError" => ErrorKind::Transient,
                "OperationTimeout" => ErrorKind::Timeout,
                "NotImplemented" | "NotInstalled" => ErrorKind::Unsupported,
                _ => ErrorKind::Failed,
            }
        };
        let message = if id.is_empty() {
            record.message
        } else {
            format!("{} ({id})", record.message)
        };
        return DriverError::new(kind, message);
    }
    let text = if output.stderr.trim().is_empty() {
        output.stdout.trim()
    } else {
        output.stderr.trim()
    };
    let status = output
        .status
        .map_or_else(|| "was killed".to_string(), |c| format!("exited with {c}"));
    DriverError::Failed(format!("powershell {status}: {text}"))
}

/// A state from its name, or from the number of `ClusterGroupState`/`ClusterResourceState`.
fn parse_state(value: &Value, group: bool) -> ResourceState {
    match value {
        Value::String(s) => match s.as_str() {
            "Online" => ResourceState::Online,
            "Offline" => ResourceState::Offline,
            "Failed" => ResourceState::Failed,
            "PartialOnline" => ResourceState::PartialOnline,
            "Pending" | "OnlinePending" | "OfflinePending" | "Initializing" => {
                ResourceState::Pending
            }
            _ => ResourceState::Unknown,
        },
        Value::Number(n) => match (group, n.as_i64()) {
            (true, Some(0)) | (false, Some(2)) => ResourceState::Online,
            (true, Some(1)) | (false, Some(3)) => ResourceState::Offline,
            (true, Some(2)) | (false, Some(4)) => ResourceState::Failed,
            (true, Some(3)) => ResourceState::PartialOnline,
            (true, Some(4)) | (false, Some(1 | 128..=130)) => ResourceState::Pending,
            _ => ResourceState::Unknown,
        },
        _ => ResourceState::Unknown,
    }
}

fn resource_kind(resource_type: &str) -> ResourceKind {
    match resource_type {
        "Network Name" | "Distributed Network Name" => ResourceKind::NetworkName,
        "IP Address" | "IPv6 Address" | "IPv6 Tunnel Address" => ResourceKind::IpAddress,
        "Physical Disk" => ResourceKind::PhysicalDisk,
        "File Server" | "Scale Out File Server" => ResourceKind::FileServer,
        "File Share" => ResourceKind::FileShare,
        _ => ResourceKind::Generic,
    }
}

/// Names in a dependency expression such as `([A] or [B]) and [C]`. OR alternatives are kept as
/// plain dependencies: the model has only AND.
pub fn parse_dependency_expression(expression: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expression;
    while let Some(start) = rest.find('[') {
        let Some(len) = rest[start + 1..].find(']') else {
            break;
        };
        let name = &rest[start + 1..start + 1 + len];
        if !name.is_empty() && !names.iter().any(|n: &String| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
        rest = &rest[start + 2 + len..];
    }
    names
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsResource {
    name: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    state: Value,
    #[serde(default)]
    dependency: Option<String>,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_i64().is_some_and(|n| n != 0),
        Value::String(s) => matches!(s.as_str(), "1" | "True" | "true"),
        _ => false,
    }
}

impl PsResource {
    fn into_resource(self) -> Resource {
        let kind = resource_kind(&self.resource_type);
        let parameters = self.parameters.unwrap_or_default();
        let mut properties: Properties = parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        properties.insert("resource_type".into(), Value::String(self.resource_type));
        let mut alias = |from: &str, to: &str| {
            if let Some(v) = parameters.get(from) {
                properties.insert(to.into(), v.clone());
            }
        };
        match kind {
            ResourceKind::NetworkName => {
                alias("DnsName", "dns_name");
                if let Some(v) = parameters.get("RequireKerberos") {
                    properties.insert("require_kerberos".into(), Value::Bool(truthy(v)));
                }
            }
            ResourceKind::IpAddress => {
                alias("Address", "address");
                alias("SubnetMask", "subnet_mask");
            }
            ResourceKind::PhysicalDisk => {
                properties.insert("disk".into(), Value::String(self.name.clone()));
                if let Some(sig) = parameters.get("DiskSignature") {
                    let text = match sig {
                        Value::String(s) => {
                            s.parse::<u64>().map_or(s.clone(), |n| format!("{n:08X}"))
                        }
                        other => other.to_string(),
                    };
                    properties.insert("signature".into(), Value::String(text));
                }
            }
            ResourceKind::FileShare => {
                alias("ShareName", "share_name");
                alias("Path", "path");
            }
            _ => {}
        }
        Resource {
            name: self.name,
            kind,
            state: parse_state(&self.state, false),
            properties,
            depends_on: self
                .dependency
                .as_deref()
                .map(parse_dependency_expression)
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsAce {
    account: String,
    #[serde(default)]
    r#type: Value,
    #[serde(default)]
    right: Value,
}

/// Share rights from `Get-SmbShareAccess` names or from a WMI access mask.
fn access_of(right: &Value) -> Option<Access> {
    const WRITE_DAC_OR_OWNER: i64 = 0x000C_0000;
    const WRITE_OR_DELETE: i64 = 0x0001_0006;
    match right {
        Value::String(s) => match s.as_str() {
            "Full" => Some(Access::Full),
            "Change" => Some(Access::Change),
            "Read" => Some(Access::Read),
            _ => None,
        },
        Value::Number(n) => {
            let mask = n.as_i64()?;
            Some(if mask & WRITE_DAC_OR_OWNER == WRITE_DAC_OR_OWNER {
                Access::Full
            } else if mask & WRITE_OR_DELETE != 0 {
                Access::Change
            } else {
                Access::Read
            })
        }
        _ => None,
    }
}

impl PsAce {
    fn into_permission(self) -> Option<Permission> {
        let ace_type = match &self.r#type {
            Value::String(s) if s == "Deny" => AceType::Deny,
            Value::Number(n) if n.as_i64() == Some(1) => AceType::Deny,
            _ => AceType::Allow,
        };
        let access = access_of(&self.right)?;
        // WMI gives `\Everyone` for well-known principals without a domain.
        let principal = self.account.trim_start_matches('\\').to_string();
        Some(Permission {
            principal,
            ace_type,
            access,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsShare {
    name: String,
    #[serde(default)]
    path: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    caching_mode: Option<String>,
    #[serde(default)]
    access_based: Option<bool>,
    #[serde(default)]
    continuously_available: Option<bool>,
    #[serde(default)]
    encrypt_data: Option<bool>,
    #[serde(default)]
    user_limit: Option<i64>,
    #[serde(default, deserialize_with = "de_many")]
    access: Vec<PsAce>,
}

impl PsShare {
    fn into_share(self) -> Share {
        let caching = match self.caching_mode.as_deref() {
            Some("Documents") => CachingMode::Documents,
            Some("Programs") => CachingMode::Programs,
            Some("None") => CachingMode::None,
            Some("BranchCache") => CachingMode::BranchCache,
            _ => CachingMode::Manual,
        };
        let mut permissions: Vec<Permission> = Vec::new();
        for ace in self.access {
            let name = ace.account.clone();
            match ace.into_permission() {
                Some(p) => {
                    let duplicate = permissions.iter().any(|q| {
                        q.principal.eq_ignore_ascii_case(&p.principal) && q.ace_type == p.ace_type
                    });
                    if !duplicate {
                        permissions.push(p);
                    }
                }
                None => tracing::warn!(
                    share = %self.name,
                    principal = %name,
                    "share permission with custom rights cannot be represented; skipped"
                ),
            }
        }
        Share {
            name: self.name,
            path: self.path,
            description: self.description.unwrap_or_default(),
            permissions,
            caching,
            access_based_enumeration: self.access_based.unwrap_or(false),
            continuous_availability: self.continuously_available.unwrap_or(false),
            encrypt_data: self.encrypt_data.unwrap_or(false),
            user_limit: self.user_limit.filter(|n| *n > 0),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsGroup {
    name: String,
    #[serde(default)]
    owner_node: Option<String>,
    #[serde(default)]
    state: Value,
    #[serde(default, deserialize_with = "de_many")]
    resources: Vec<PsResource>,
    #[serde(default, deserialize_with = "de_many")]
    shares: Vec<PsShare>,
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl PsGroup {
    fn into_group(self) -> Group {
        Group {
            name: self.name,
            owner_node: non_empty(self.owner_node),
            state: parse_state(&self.state, true),
            resources: self
                .resources
                .into_iter()
                .map(PsResource::into_resource)
                .collect(),
            shares: self.shares.into_iter().map(PsShare::into_share).collect(),
        }
    }
}

fn parse_json<T: DeserializeOwned>(value: Value, what: &str) -> Result<T, DriverError> {
    serde_json::from_value(value)
        .map_err(|e| DriverError::Failed(format!("unexpected {what} from powershell: {e}")))
}

fn parse_many<T: DeserializeOwned>(value: Value, what: &str) -> Result<Vec<T>, DriverError> {
    json_many(value)
        .into_iter()
        .map(|v| parse_json(v, what))
        .collect()
}

/// Groups from the answer of the `list_groups` script.
pub fn parse_groups(value: Value) -> Result<Vec<Group>, DriverError> {
    Ok(parse_many::<PsGroup>(value, "group list")?
        .into_iter()
        .map(PsGroup::into_group)
        .collect())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsGroupState {
    name: String,
    #[serde(default)]
    owner_node: Option<String>,
    #[serde(default)]
    state: Value,
    #[serde(default)]
    error: Option<String>,
    #[serde(default, deserialize_with = "de_many")]
    resources: Vec<PsResourceState>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsResourceState {
    name: String,
    #[serde(default)]
    resource_type: String,
    #[serde(default)]
    before: Value,
    #[serde(default)]
    state: Value,
}

/// The outcome of an offline (`online == false`) or online script.
///
/// Windows does not say why a resource failed (that is in the cluster log), so the message
/// carries the state and the error of `Start-ClusterGroup`. A failed network name is taken as
/// transient, per the first field note (under Kerberos it may take two onlines), and resources
/// that merely did not start are as transient as the failures they wait on.
pub fn parse_group_outcome(value: Value, online: bool) -> Result<GroupOutcome, DriverError> {
    let parsed: PsGroupState = parse_json(value, "group state")?;
    let goal = if online {
        ResourceState::Online
    } else {
        ResourceState::Offline
    };
    let suffix = parsed
        .error
        .as_deref()
        .filter(|e| !e.trim().is_empty())
        .map(|e| format!(": {e}"))
        .unwrap_or_default();
    let rows: Vec<(PsResourceState, ResourceKind, ResourceState, ResourceState)> = parsed
        .resources
        .into_iter()
        .map(|r| {
            let kind = resource_kind(&r.resource_type);
            let before = parse_state(&r.before, false);
            let after = parse_state(&r.state, false);
            (r, kind, before, after)
        })
        .collect();
    let failed_kinds: Vec<ErrorKind> = rows
        .iter()
        .filter(|(_, _, _, after)| *after == ResourceState::Failed)
        .map(|(_, kind, _, _)| {
            if online && *kind == ResourceKind::NetworkName {
                ErrorKind::Transient
            } else {
                ErrorKind::Failed
            }
        })
        .collect();
    // Resources that merely did not start are as transient as the failures they wait on.
    let waiting_kind = if failed_kinds.iter().all(|k| *k == ErrorKind::Transient) {
        ErrorKind::Transient
    } else {
        ErrorKind::Failed
    };
    let resources = rows
        .into_iter()
        .map(|(r, kind, before, after)| {
            let error = (after != goal).then(|| {
                let error_kind = if after == ResourceState::Failed {
                    if online && kind == ResourceKind::NetworkName {
                        ErrorKind::Transient
                    } else {
                        ErrorKind::Failed
                    }
                } else {
                    waiting_kind
                };
                ResourceError {
                    kind: error_kind,
                    message: format!(
                        "resource {} is {} after {}{suffix}",
                        r.name,
                        after.as_str(),
                        if online {
                            "Start-ClusterGroup"
                        } else {
                            "Stop-ClusterGroup"
                        }
                    ),
                }
            });
            ResourceOutcome {
                resource: r.name,
                kind,
                state: after,
                changed: before != after,
                error,
            }
        })
        .collect();
    Ok(GroupOutcome {
        group: parsed.name,
        owner_node: non_empty(parsed.owner_node),
        state: parse_state(&parsed.state, true),
        resources,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsPartition {
    resource: String,
    #[serde(default)]
    path: String,
    #[serde(default, rename = "TotalMB")]
    total_mb: i64,
    #[serde(default, rename = "FreeMB")]
    free_mb: i64,
}

const MB: i64 = 1 << 20;

fn disk_of(p: &PsPartition, csv: bool) -> Disk {
    Disk {
        resource: p.resource.clone(),
        drive_letter: if csv {
            None
        } else {
            normalize_drive_letter(&p.path).ok()
        },
        size_bytes: p.total_mb.max(0) * MB,
        free_bytes: p.free_mb.clamp(0, p.total_mb.max(0)) * MB,
        csv,
    }
}

/// The disk of the `assign_drive_letter` answer.
pub fn parse_disk(value: Value) -> Result<Disk, DriverError> {
    let p: PsPartition = parse_json(value, "disk")?;
    Ok(disk_of(&p, false))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsReplacement {
    resource: String,
    #[serde(default, deserialize_with = "de_many")]
    removed: Vec<String>,
    #[serde(default, deserialize_with = "de_many")]
    repointed: Vec<String>,
}

/// The answer of `replace_disk_resource`; PowerShell prints a one-element array as its element.
pub fn parse_disk_replacement(value: Value) -> Result<DiskReplacement, DriverError> {
    let r: PsReplacement = parse_json(value, "disk replacement")?;
    Ok(DiskReplacement {
        resource: r.resource,
        removed: r.removed,
        repointed: r.repointed,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsNetwork {
    name: String,
    #[serde(default)]
    role: i64,
    #[serde(default)]
    metric: i64,
    #[serde(default)]
    auto_metric: Option<bool>,
    #[serde(default)]
    address: String,
    #[serde(default)]
    mask: String,
}

fn cidr(address: &str, mask: &str) -> String {
    if address.is_empty() {
        return String::new();
    }
    let bits: Option<u32> = mask
        .split('.')
        .map(|o| o.parse::<u8>().ok().map(|o| o.count_ones()))
        .sum();
    match bits {
        Some(bits) if mask.split('.').count() == 4 => format!("{address}/{bits}"),
        _ => address.to_string(),
    }
}

/// Roles from the cluster's `Role` (0 none, 1 cluster only, 3 cluster and client) and the
/// conventions of the third field note: CSV traffic takes the cluster network with the lowest
/// metric, and networks are named after their purpose.
fn network_roles(networks: &[PsNetwork]) -> Vec<NetworkRole> {
    let named = |n: &PsNetwork, words: &[&str]| {
        let lower = n.name.to_lowercase();
        words.iter().any(|w| lower.contains(w))
    };
    let csv = networks
        .iter()
        .filter(|n| n.role == 1 && !named(n, &["live", "migration"]))
        .min_by_key(|n| n.metric)
        .map(|n| n.name.clone());
    networks
        .iter()
        .map(|n| match n.role {
            0 => NetworkRole::Iscsi,
            1 if named(n, &["live", "migration"]) => NetworkRole::LiveMigration,
            1 if csv.as_deref() == Some(n.name.as_str()) => NetworkRole::Csv,
            1 => NetworkRole::Cluster,
            _ if named(n, &["manage"]) => NetworkRole::Management,
            _ => NetworkRole::Client,
        })
        .collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsNode {
    name: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    model: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsInventory {
    #[serde(default, deserialize_with = "de_many")]
    nodes: Vec<PsNode>,
    #[serde(default, deserialize_with = "de_many")]
    networks: Vec<PsNetwork>,
    #[serde(default, deserialize_with = "de_many")]
    disks: Vec<PsPartition>,
    #[serde(default, deserialize_with = "de_many")]
    csv: Vec<PsPartition>,
    #[serde(default, deserialize_with = "de_many")]
    groups: Vec<PsGroup>,
}

/// The inventory from the answer of the `inventory` script.
pub fn parse_inventory(value: Value) -> Result<InventoryDocument, DriverError> {
    let inv: PsInventory = parse_json(value, "inventory")?;
    let roles = network_roles(&inv.networks);
    let mut disks: Vec<Disk> = Vec::new();
    for p in &inv.csv {
        if !disks.iter().any(|d| d.resource == p.resource) {
            disks.push(disk_of(p, true));
        }
    }
    // A disk with several partitions is listed once, by its first partition.
    for p in &inv.disks {
        if !disks.iter().any(|d| d.resource == p.resource) {
            disks.push(disk_of(p, false));
        }
    }
    Ok(InventoryDocument {
        nodes: inv
            .nodes
            .into_iter()
            .map(|n| Node {
                address: n.name.clone(),
                name: n.name,
                processor: Processor {
                    vendor: n.vendor,
                    model: n.model,
                },
                facts: n
                    .state
                    .map(|s| ("state".to_string(), Value::String(s)))
                    .into_iter()
                    .collect(),
            })
            .collect(),
        networks: inv
            .networks
            .iter()
            .zip(roles)
            .map(|(n, role)| Network {
                name: n.name.clone(),
                role,
                metric: n.metric,
                subnet: cidr(&n.address, &n.mask),
            })
            .collect(),
        disks,
        groups: inv.groups.into_iter().map(PsGroup::into_group).collect(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsNodeFacts {
    name: String,
    #[serde(default)]
    vendor: String,
    #[serde(default)]
    model: String,
    #[serde(default, deserialize_with = "de_many")]
    switches: Vec<String>,
    #[serde(default)]
    ntlm_send: Option<i64>,
    #[serde(default)]
    ntlm_receive: Option<i64>,
    #[serde(default, deserialize_with = "de_many")]
    hbas: Vec<PsHba>,
    /// One value per virtual machine on the node; none when Hyper-V's cmdlets are absent.
    #[serde(default, deserialize_with = "de_many")]
    processor_compatibility: Vec<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsHba {
    #[serde(default)]
    model: String,
    #[serde(default)]
    driver_version: String,
    #[serde(default)]
    firmware_version: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsBinding {
    network: String,
    #[serde(default)]
    component: String,
    #[serde(default)]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PsFacts {
    #[serde(default)]
    cluster: Option<String>,
    #[serde(default, deserialize_with = "de_many")]
    networks: Vec<PsNetwork>,
    #[serde(default, deserialize_with = "de_many")]
    nodes: Vec<PsNodeFacts>,
    #[serde(default, deserialize_with = "de_many")]
    bindings: Vec<PsBinding>,
    #[serde(default, deserialize_with = "de_many")]
    csv: Vec<PsPartition>,
    #[serde(default)]
    quorum: Option<String>,
    #[serde(default)]
    live_migration_qos: Option<bool>,
}

/// Configuration facts from the answer of the `config_facts` script.
pub fn parse_config_facts(value: Value, os: OsGeneration) -> Result<ConfigFacts, DriverError> {
    let facts: PsFacts = parse_json(value, "configuration facts")?;
    let roles = network_roles(&facts.networks);
    // A binding is enabled on a network only if it is enabled on every node's adapter there.
    let binding = |network: &str, component: &str| -> Option<bool> {
        let found: Vec<bool> = facts
            .bindings
            .iter()
            .filter(|b| b.network == network && b.component.eq_ignore_ascii_case(component))
            .map(|b| b.enabled)
            .collect();
        (!found.is_empty()).then(|| found.iter().all(|e| *e))
    };
    let networks = facts
        .networks
        .iter()
        .zip(roles)
        .map(|(n, role)| NetworkFacts {
            name: n.name.clone(),
            role,
            metric: n.metric,
            auto_metric: n.auto_metric,
            subnet: cidr(&n.address, &n.mask),
            ipsec_enabled: None,
            client_for_microsoft_networks: binding(&n.name, "ms_msclient"),
            file_and_printer_sharing: binding(&n.name, "ms_server"),
        })
        .collect();
    let node_count = facts.nodes.len() as u32;
    let quorum_type = match facts.quorum.as_deref() {
        Some("NodeMajority") => Some(QuorumType::NodeMajority),
        Some("NodeAndDiskMajority") => Some(QuorumType::NodeAndDiskMajority),
        Some("NodeAndFileShareMajority") => Some(QuorumType::NodeAndFileShareMajority),
        Some("DiskOnly") => Some(QuorumType::DiskOnly),
        Some("Majority") => Some(QuorumType::Majority),
        Some(q) if !q.is_empty() => Some(QuorumType::Unknown),
        _ => None,
    };
    Ok(ConfigFacts {
        cluster: non_empty(facts.cluster),
        os: Some(os),
        networks,
        nodes: facts
            .nodes
            .into_iter()
            .map(|n| NodeFacts {
                name: n.name,
                processor: Processor {
                    vendor: n.vendor,
                    model: n.model,
                },
                virtual_switches: n.switches,
                // 2 is "deny all" for both policies; an absent value allows NTLM.
                ntlm_enabled: Some(n.ntlm_send != Some(2) && n.ntlm_receive != Some(2)),
                hbas: n
                    .hbas
                    .into_iter()
                    .map(|h| HbaFacts {
                        model: h.model,
                        driver_version: h.driver_version,
                        firmware_version: h.firmware_version,
                    })
                    .collect(),
                // A node without virtual machines says nothing about the setting; one VM without
                // it is enough to fail a migration to a different processor model.
                processor_compatibility: (!n.processor_compatibility.is_empty())
                    .then(|| n.processor_compatibility.iter().all(|on| *on)),
            })
            .collect(),
        csv_volumes: facts
            .csv
            .iter()
            .map(|p| CsvVolumeFacts {
                name: p.resource.clone(),
                path: p.path.clone(),
                size_bytes: p.total_mb.max(0) * MB,
                free_bytes: p.free_mb.max(0) * MB,
            })
            .collect(),
        quorum: quorum_type.map(|quorum_type| QuorumFacts {
            quorum_type,
            node_count,
        }),
        live_migration_qos: facts.live_migration_qos,
    })
}

// ---- the driver ---------------------------------------------------------------------------------

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
        Ok(parse_json::<PsResource>(value, "resource")?.into_resource())
    }

    async fn remove_resource(&self, group: &str, resource: &str) -> Result<bool, DriverError> {
        let value = self
            .run(
                "remove_resource",
                self.scripts.remove_resource(group, resource),
            )
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Removed {
            removed: bool,
        }
        Ok(parse_json::<Removed>(value, "removal result")?.removed)
    }

    async fn set_dependencies(
        &self,
        group: &str,
        resource: &str,
        depends_on: &[String],
    ) -> Result<Resource, DriverError> {
        let script = self.scripts.set_dependencies(group, resource, depends_on)?;
        let value = self.run("set_dependencies", script).await?;
        Ok(parse_json::<PsResource>(value, "resource")?.into_resource())
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
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Removed {
            removed: bool,
        }
        Ok(parse_json::<Removed>(value, "removal result")?.removed)
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes_and_encodes_non_ascii() {
        assert_eq!(ps_quote("FS01"), "'FS01'");
        assert_eq!(ps_quote(""), "''");
        assert_eq!(ps_quote("it's"), "'it''s'");
        assert_eq!(ps_quote("Ж"), "('' + [char]0x0416)");
        assert_eq!(ps_quote("aЖb"), "('a' + [char]0x0416 + 'b')");
        assert_eq!(ps_quote("’"), "('' + [char]0x2019)");
        assert_eq!(ps_quote("a\nb"), "('a' + [char]0x000A + 'b')");
        assert_eq!(ps_quote("😀"), "('' + [char]0xD83D + [char]0xDE00)");
    }

    #[test]
    fn dependency_expressions_parse() {
        assert_eq!(
            parse_dependency_expression("([FS1 Name]) and ([Cluster Disk 1])"),
            vec!["FS1 Name", "Cluster Disk 1"]
        );
        assert_eq!(
            parse_dependency_expression("([A] or [B]) and [a]"),
            vec!["A", "B"]
        );
        assert!(parse_dependency_expression("").is_empty());
    }

    #[test]
    fn masks_map_to_access() {
        assert_eq!(access_of(&Value::from(2032127)), Some(Access::Full));
        assert_eq!(access_of(&Value::from(1245631)), Some(Access::Change));
        assert_eq!(access_of(&Value::from(1179817)), Some(Access::Read));
        assert_eq!(access_of(&Value::from("Custom")), None);
    }

    #[test]
    fn subnets_become_cidr() {
        assert_eq!(cidr("10.0.1.0", "255.255.255.0"), "10.0.1.0/24");
        assert_eq!(cidr("10.0.0.0", "255.255.0.0"), "10.0.0.0/16");
        assert_eq!(cidr("", ""), "");
    }

    #[test]
    fn processor_compatibility_and_live_migration_qos_parse_when_present() {
        let facts = parse_config_facts(
            serde_json::json!({
                "Nodes": [
                    {"Name": "N1", "ProcessorCompatibility": [true, true]},
                    {"Name": "N2", "ProcessorCompatibility": [true, false]},
                    {"Name": "N3", "ProcessorCompatibility": true},
                    {"Name": "N4", "ProcessorCompatibility": []},
                    {"Name": "N5"}
                ],
                "LiveMigrationQos": false
            }),
            OsGeneration::Ws2016,
        )
        .unwrap();
        let compatibility: Vec<Option<bool>> = facts
            .nodes
            .iter()
            .map(|n| n.processor_compatibility)
            .collect();
        assert_eq!(
            compatibility,
            [Some(true), Some(false), Some(true), None, None]
        );
        assert_eq!(facts.live_migration_qos, Some(false));

        // An older agent's answer, or a cluster without the SMB bandwidth cmdlets.
        let older = parse_config_facts(
            serde_json::json!({"Nodes": {"Name": "N1"}, "LiveMigrationQos": null}),
            OsGeneration::Ws2008r2,
        )
        .unwrap();
        assert_eq!(older.nodes[0].processor_compatibility, None);
        assert_eq!(older.live_migration_qos, None);
    }
}
