//! The text of every script: the wrapper around an operation's body, the PowerShell functions
//! the bodies share, and one builder per operation. Pure, so tests check the exact text.

use crate::driver::DriverError;
use ferry_core::model::OsGeneration;

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
}
