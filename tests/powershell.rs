//! The `powershell` driver without Windows: the exact script of every operation, parsing of
//! recorded `ConvertTo-Json` output, escaping of hostile names, and error mapping.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferry::agent::confine::{Confinement, RootsOrigin};
use ferry::agent::driver::powershell::{
    PowerShellDriver, Scripts, Shell, ShellOutput, json_many, map_failure, parse_output, ps_quote,
};
use ferry::agent::driver::{ClusterDriver, DriverError, ErrorKind, QuorumType};
use ferry::model::{
    Access, AceType, CachingMode, NetworkRole, OsGeneration, ResourceKind, ResourceState,
};
use serde_json::json;

// ---- a shell that replays recorded output -------------------------------------------------------

#[derive(Default)]
struct FakeShell {
    replies: Mutex<VecDeque<ShellOutput>>,
    scripts: Mutex<Vec<String>>,
}

impl FakeShell {
    fn new(replies: Vec<ShellOutput>) -> Arc<FakeShell> {
        Arc::new(FakeShell {
            replies: Mutex::new(replies.into()),
            scripts: Mutex::default(),
        })
    }

    fn scripts(&self) -> Vec<String> {
        self.scripts.lock().unwrap().clone()
    }
}

#[async_trait]
impl Shell for FakeShell {
    async fn run(&self, script: &str) -> Result<ShellOutput, DriverError> {
        self.scripts.lock().unwrap().push(script.to_string());
        Ok(self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .expect("the test recorded an answer for every script"))
    }
}

fn ok(stdout: &str) -> ShellOutput {
    ShellOutput {
        status: Some(0),
        stdout: stdout.to_string(),
        stderr: String::new(),
    }
}

fn failure(stderr: &str) -> ShellOutput {
    ShellOutput {
        status: Some(1),
        stdout: String::new(),
        stderr: stderr.to_string(),
    }
}

fn driver(os: OsGeneration, replies: Vec<ShellOutput>) -> (PowerShellDriver, Arc<FakeShell>) {
    let shell = FakeShell::new(replies);
    (PowerShellDriver::new(shell.clone(), os), shell)
}

// ---- the expected script text -------------------------------------------------------------------

const HEAD: &str = r#"$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
try {
  Import-Module FailoverClusters
"#;

const TAIL: &str = r#"} catch {
  $e = $_
  $r = [pscustomobject]@{ Category = [string]$e.CategoryInfo.Category; Id = [string]$e.FullyQualifiedErrorId; Message = [string]$e.Exception.Message }
  [Console]::Error.WriteLine('FERRY-ERROR ' + ($r | ConvertTo-Json -Compress))
  exit 1
}

"#;

const FN_RESOURCE: &str = r#"function ConvertTo-FerryResource($r) {
  $parameters = @{}
  foreach ($p in @($r | Get-ClusterParameter)) { $parameters[[string]$p.Name] = [string]$p.Value }
  [pscustomobject]@{ Name = [string]$r.Name; ResourceType = [string]$r.ResourceType; State = [string]$r.State; OwnerGroup = [string]$r.OwnerGroup.Name; Dependency = [string]($r | Get-ClusterResourceDependency).DependencyExpression; Parameters = $parameters }
}
"#;

const FN_SHARES_SMB: &str = r#"function Get-FerryShares($scope) {
  foreach ($s in @(Get-SmbShare -ScopeName $scope | Where-Object { -not $_.Special })) {
    $access = @(Get-SmbShareAccess -Name $s.Name -ScopeName $scope | ForEach-Object { [pscustomobject]@{ Account = [string]$_.AccountName; Type = [string]$_.AccessControlType; Right = [string]$_.AccessRight } })
    [pscustomobject]@{ Name = [string]$s.Name; Path = [string]$s.Path; Description = [string]$s.Description; CachingMode = [string]$s.CachingMode; AccessBased = ([string]$s.FolderEnumerationMode -eq 'AccessBased'); ContinuouslyAvailable = [bool]$s.ContinuouslyAvailable; EncryptData = [bool]$s.EncryptData; UserLimit = [int64]$s.ConcurrentUserLimit; Access = $access }
  }
}
"#;

const FN_SHARES_WMI: &str = r#"function Get-FerryShares($scope) {
  $security = @{}
  foreach ($x in @(Get-WmiObject -Class Win32_LogicalShareSecuritySetting -ComputerName $scope)) { $security[[string]$x.Name] = $x }
  foreach ($s in @(Get-WmiObject -Class Win32_ClusterShare -ComputerName $scope | Where-Object { $_.ServerName -eq $scope -and ($_.Type -band 0x80000000) -eq 0 })) {
    $access = @()
    $x = $security[[string]$s.ShareName]
    if ($null -ne $x) { $access = @($x.GetSecurityDescriptor().Descriptor.DACL | ForEach-Object { [pscustomobject]@{ Account = ([string]$_.Trustee.Domain + '\' + [string]$_.Trustee.Name); Type = [int]$_.AceType; Right = [int64]$_.AccessMask } }) }
    [pscustomobject]@{ Name = [string]$s.ShareName; Path = [string]$s.Path; Description = [string]$s.Description; Access = $access }
  }
}
"#;

const FN_GROUP: &str = r#"function ConvertTo-FerryGroup($g) {
  $resources = @($g | Get-ClusterResource)
  $names = @($resources | Where-Object { [string]$_.ResourceType -eq 'Network Name' } | ForEach-Object { [string]($_ | Get-ClusterParameter -Name DnsName).Value })
  $shares = @(foreach ($n in $names) { Get-FerryShares $n })
  [pscustomobject]@{ Name = [string]$g.Name; OwnerNode = [string]$g.OwnerNode; State = [string]$g.State; Resources = @($resources | ForEach-Object { ConvertTo-FerryResource $_ }); Shares = $shares }
}
"#;

const ROLE_GROUPS: &str = r#"$groups = @(Get-ClusterGroup | Where-Object { $_.Name -ne 'Cluster Group' -and $_.Name -ne 'Available Storage' } | ForEach-Object { ConvertTo-FerryGroup $_ })
"#;

const NETWORKS: &str = r#"$networks = @(Get-ClusterNetwork | ForEach-Object { [pscustomobject]@{ Name = [string]$_.Name; Role = [int]$_.Role; Metric = [int64]$_.Metric; AutoMetric = [bool]$_.AutoMetric; Address = [string]$_.Address; Mask = [string]$_.AddressMask } })
"#;

const CSV: &str = r#"$csv = @(Get-ClusterSharedVolume | ForEach-Object { $v = $_; $_.SharedVolumeInfo | ForEach-Object { [pscustomobject]@{ Resource = [string]$v.Name; Path = [string]$_.FriendlyVolumeName; TotalMB = [int64]($_.Partition.Size / 1MB); FreeMB = [int64]($_.Partition.FreeSpace / 1MB) } } })
"#;

/// The script around a body, indented two spaces inside the `try` block.
fn wrapped(body: &str) -> String {
    let mut script = HEAD.to_string();
    for line in body.lines() {
        script.push_str("  ");
        script.push_str(line);
        script.push('\n');
    }
    script.push_str(TAIL);
    script
}

fn group_state_body(name: &str, action: &str) -> String {
    format!(
        r#"$name = {name}
$group = Get-ClusterGroup -Name $name
$before = @{{}}
foreach ($r in @($group | Get-ClusterResource)) {{ $before[[string]$r.Name] = [string]$r.State }}
$err = $null
{action}
$group = Get-ClusterGroup -Name $name
$resources = @($group | Get-ClusterResource | ForEach-Object {{ [pscustomobject]@{{ Name = [string]$_.Name; ResourceType = [string]$_.ResourceType; Before = $before[[string]$_.Name]; State = [string]$_.State }} }})
[pscustomobject]@{{ Name = [string]$group.Name; OwnerNode = [string]$group.OwnerNode; State = [string]$group.State; Error = $err; Resources = $resources }} | ConvertTo-Json -Depth 4 -Compress
"#
    )
}

// ---- list groups --------------------------------------------------------------------------------

/// One group, so `ConvertTo-Json` printed a bare object rather than an array; its shares likewise.
/// Windows PowerShell escapes `'` as \u0027 and leaves Cyrillic as is.
const ONE_GROUP: &str = r#"{"Name":"FS01","OwnerNode":"NEW-n1","State":"Online","Resources":[{"Name":"FS01 IP Address","ResourceType":"IP Address","State":"Online","OwnerGroup":"FS01","Dependency":"","Parameters":{"Address":"10.0.1.50","SubnetMask":"255.255.255.0","EnableDhcp":"0"}},{"Name":"FS01 Network Name","ResourceType":"Network Name","State":"Online","OwnerGroup":"FS01","Dependency":"[FS01 IP Address]","Parameters":{"DnsName":"FS01","RequireKerberos":"1"}},{"Name":"Cluster Disk 1","ResourceType":"Physical Disk","State":"Online","OwnerGroup":"FS01","Dependency":"","Parameters":{"DiskSignature":"2882400001"}},{"Name":"FS01 File Server","ResourceType":"File Server","State":"Failed","OwnerGroup":"FS01","Dependency":"([FS01 Network Name]) and ([Cluster Disk 1])","Parameters":{}}],"Shares":{"Name":"Финансы","Path":"F:\\Shares\\Финансы","Description":"Finance\u0027s files","CachingMode":"Documents","AccessBased":true,"ContinuouslyAvailable":false,"EncryptData":true,"UserLimit":0,"Access":[{"Account":"Everyone","Type":"Allow","Right":"Read"},{"Account":"CONTOSO\\Contractors","Type":"Deny","Right":"Change"},{"Account":"BUILTIN\\Administrators","Type":"Allow","Right":"Full"},{"Account":"CONTOSO\\Odd","Type":"Allow","Right":"Custom"}]}}"#;

#[tokio::test]
async fn list_groups_sends_the_exact_script_and_parses_a_single_group() {
    let (d, shell) = driver(
        OsGeneration::Ws2012r2,
        vec![ok(&format!("\u{feff}{ONE_GROUP}\r\n"))],
    );
    let groups = d.list_groups().await.unwrap();
    let expected = wrapped(&format!(
        "{FN_RESOURCE}{FN_SHARES_SMB}{FN_GROUP}{ROLE_GROUPS}$groups | ConvertTo-Json -Depth 8 -Compress\n"
    ));
    assert_eq!(shell.scripts(), vec![expected]);

    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    assert_eq!(g.name, "FS01");
    assert_eq!(g.owner_node.as_deref(), Some("NEW-n1"));
    assert_eq!(g.state, ResourceState::Online);
    let kinds: Vec<ResourceKind> = g.resources.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ResourceKind::IpAddress,
            ResourceKind::NetworkName,
            ResourceKind::PhysicalDisk,
            ResourceKind::FileServer
        ]
    );
    let ip = &g.resources[0];
    assert_eq!(ip.properties["address"], "10.0.1.50");
    assert_eq!(ip.properties["Address"], "10.0.1.50");
    assert_eq!(ip.properties["resource_type"], "IP Address");
    assert!(ip.depends_on.is_empty());
    let name = &g.resources[1];
    assert_eq!(name.properties["dns_name"], "FS01");
    assert_eq!(name.properties["require_kerberos"], true);
    assert_eq!(name.depends_on, ["FS01 IP Address"]);
    let disk = &g.resources[2];
    assert_eq!(disk.properties["signature"], "ABCDEF01");
    assert_eq!(disk.properties["disk"], "Cluster Disk 1");
    let server = &g.resources[3];
    assert_eq!(server.state, ResourceState::Failed);
    assert_eq!(server.depends_on, ["FS01 Network Name", "Cluster Disk 1"]);

    assert_eq!(g.shares.len(), 1);
    let share = &g.shares[0];
    assert_eq!(share.name, "Финансы");
    assert_eq!(share.path, "F:\\Shares\\Финансы");
    assert_eq!(share.description, "Finance's files");
    assert_eq!(share.caching, CachingMode::Documents);
    assert!(share.access_based_enumeration);
    assert!(share.encrypt_data);
    assert!(!share.continuous_availability);
    assert_eq!(share.user_limit, None);
    // The `Custom` right has no model equivalent and is left out.
    let perms: Vec<(&str, AceType, Access)> = share
        .permissions
        .iter()
        .map(|p| (p.principal.as_str(), p.ace_type, p.access))
        .collect();
    assert_eq!(
        perms,
        [
            ("Everyone", AceType::Allow, Access::Read),
            ("CONTOSO\\Contractors", AceType::Deny, Access::Change),
            ("BUILTIN\\Administrators", AceType::Allow, Access::Full),
        ]
    );
}

#[tokio::test]
async fn list_groups_parses_arrays_wrapped_arrays_numbers_and_nothing() {
    // Two groups: an array. The second group's resources come in Windows PowerShell 5.1's
    // `{"value": [...], "Count": n}` wrapping, with numeric states.
    let two = r#"[{"Name":"FS01","OwnerNode":"N1","State":"PartialOnline","Resources":[],"Shares":[]},{"Name":"FS02","OwnerNode":"","State":1,"Resources":{"value":[{"Name":"FS02 Network Name","ResourceType":"Network Name","State":4,"Dependency":null,"Parameters":null},{"Name":"X","ResourceType":"Generic Service","State":129}],"Count":2},"Shares":null}]"#;
    let (d, _) = driver(OsGeneration::Ws2016, vec![ok(two), ok(""), ok("\r\n")]);
    let groups = d.list_groups().await.unwrap();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].state, ResourceState::PartialOnline);
    assert_eq!(groups[1].state, ResourceState::Offline);
    assert_eq!(groups[1].owner_node, None);
    assert_eq!(groups[1].resources.len(), 2);
    assert_eq!(groups[1].resources[0].state, ResourceState::Failed);
    assert_eq!(groups[1].resources[1].kind, ResourceKind::Generic);
    assert_eq!(groups[1].resources[1].state, ResourceState::Pending);
    assert_eq!(
        groups[1].resources[1].properties["resource_type"],
        "Generic Service"
    );
    // No role group at all: ConvertTo-Json prints nothing.
    assert!(d.list_groups().await.unwrap().is_empty());
    assert!(d.list_groups().await.unwrap().is_empty());
}

#[tokio::test]
async fn list_groups_before_2012_reads_shares_from_wmi() {
    let recorded = r#"{"Name":"FS01","OwnerNode":"OLD-n1","State":"Online","Resources":[],"Shares":[{"Name":"Data$","Path":"F:\\Data","Description":"","Access":[{"Account":"\\Everyone","Type":0,"Right":1179817},{"Account":"CONTOSO\\Finance Users","Type":0,"Right":1245631},{"Account":"BUILTIN\\Administrators","Type":0,"Right":2032127},{"Account":"CONTOSO\\Interns","Type":1,"Right":2032127}]}]}"#;
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![ok(recorded)]);
    let groups = d.list_groups().await.unwrap();
    let expected = wrapped(&format!(
        "{FN_RESOURCE}{FN_SHARES_WMI}{FN_GROUP}{ROLE_GROUPS}$groups | ConvertTo-Json -Depth 8 -Compress\n"
    ));
    assert_eq!(shell.scripts(), vec![expected]);
    let share = &groups[0].shares[0];
    assert_eq!(share.name, "Data$");
    assert_eq!(share.caching, CachingMode::Manual);
    let perms: Vec<(&str, AceType, Access)> = share
        .permissions
        .iter()
        .map(|p| (p.principal.as_str(), p.ace_type, p.access))
        .collect();
    assert_eq!(
        perms,
        [
            ("Everyone", AceType::Allow, Access::Read),
            ("CONTOSO\\Finance Users", AceType::Allow, Access::Change),
            ("BUILTIN\\Administrators", AceType::Allow, Access::Full),
            ("CONTOSO\\Interns", AceType::Deny, Access::Full),
        ]
    );
}

// ---- inventory ----------------------------------------------------------------------------------

#[tokio::test]
async fn inventory_sends_the_exact_script_and_parses_the_document() {
    let recorded = r#"{"Nodes":[{"Name":"NEW-n1","State":"Up","Vendor":"GenuineIntel","Model":"Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz"},{"Name":"NEW-n2","State":"Up","Vendor":"GenuineIntel","Model":"Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz"}],"Networks":[{"Name":"Client","Role":3,"Metric":10100,"AutoMetric":true,"Address":"10.0.1.0","Mask":"255.255.255.0"},{"Name":"Management","Role":3,"Metric":10000,"AutoMetric":true,"Address":"10.0.2.0","Mask":"255.255.255.0"},{"Name":"Cluster-CSV","Role":1,"Metric":1000,"AutoMetric":true,"Address":"10.0.3.0","Mask":"255.255.255.0"},{"Name":"LiveMigration","Role":1,"Metric":900,"AutoMetric":false,"Address":"10.0.4.0","Mask":"255.255.255.0"},{"Name":"iSCSI","Role":0,"Metric":10200,"AutoMetric":true,"Address":"10.0.5.0","Mask":"255.255.255.0"}],"Disks":[{"Resource":"Cluster Disk 1","Path":"F:","TotalMB":102400,"FreeMB":51200},{"Resource":"Cluster Disk 1","Path":"\\\\?\\Volume{1}","TotalMB":10,"FreeMB":5},{"Resource":"Cluster Disk 2","Path":"C:\\ClusterStorage\\Volume1","TotalMB":2097152,"FreeMB":838861}],"Csv":{"Resource":"Cluster Disk 2","Path":"C:\\ClusterStorage\\Volume1","TotalMB":2097152,"FreeMB":838861},"Groups":[]}"#;
    let (d, shell) = driver(OsGeneration::Ws2012r2, vec![ok(recorded)]);
    let doc = d.inventory().await.unwrap();
    let expected = wrapped(&format!(
        r#"{FN_RESOURCE}{FN_SHARES_SMB}{FN_GROUP}$nodes = @(Get-ClusterNode | ForEach-Object {{ $cpu = @(Get-WmiObject -Class Win32_Processor -ComputerName $_.Name)[0]; [pscustomobject]@{{ Name = [string]$_.Name; State = [string]$_.State; Vendor = [string]$cpu.Manufacturer; Model = [string]$cpu.Name }} }})
{NETWORKS}$disks = @(Get-WmiObject -Namespace 'root\MSCluster' -Class MSCluster_Resource | Where-Object {{ $_.Type -eq 'Physical Disk' }} | ForEach-Object {{ $r = $_; $r.GetRelated('MSCluster_Disk') | ForEach-Object {{ $_.GetRelated('MSCluster_DiskPartition') }} | ForEach-Object {{ [pscustomobject]@{{ Resource = [string]$r.Name; Path = [string]$_.Path; TotalMB = [int64]$_.TotalSize; FreeMB = [int64]$_.FreeSpace }} }} }})
{CSV}{ROLE_GROUPS}[pscustomobject]@{{ Nodes = $nodes; Networks = $networks; Disks = $disks; Csv = $csv; Groups = $groups }} | ConvertTo-Json -Depth 8 -Compress
"#
    ));
    assert_eq!(shell.scripts(), vec![expected]);
    assert!(doc.validate().is_empty(), "{:?}", doc.validate());
    assert_eq!(doc.nodes.len(), 2);
    assert_eq!(doc.nodes[0].processor.vendor, "GenuineIntel");
    assert_eq!(doc.nodes[0].facts["state"], "Up");
    let roles: Vec<(&str, NetworkRole, &str)> = doc
        .networks
        .iter()
        .map(|n| (n.name.as_str(), n.role, n.subnet.as_str()))
        .collect();
    assert_eq!(
        roles,
        [
            ("Client", NetworkRole::Client, "10.0.1.0/24"),
            ("Management", NetworkRole::Management, "10.0.2.0/24"),
            ("Cluster-CSV", NetworkRole::Csv, "10.0.3.0/24"),
            ("LiveMigration", NetworkRole::LiveMigration, "10.0.4.0/24"),
            ("iSCSI", NetworkRole::Iscsi, "10.0.5.0/24"),
        ]
    );
    assert_eq!(doc.disks.len(), 2);
    let csv = doc.disks.iter().find(|d| d.csv).unwrap();
    assert_eq!(csv.resource, "Cluster Disk 2");
    assert_eq!(csv.drive_letter, None);
    let plain = doc.disks.iter().find(|d| !d.csv).unwrap();
    assert_eq!(plain.drive_letter.as_deref(), Some("F:"));
    assert_eq!(plain.size_bytes, 100 << 30);
    assert_eq!(plain.free_bytes, 50 << 30);
}

#[tokio::test]
async fn inventory_on_ws2008_has_no_csv_command() {
    let (d, shell) = driver(
        OsGeneration::Ws2008,
        vec![ok(r#"{"Nodes":[],"Groups":[]}"#)],
    );
    let doc = d.inventory().await.unwrap();
    assert!(doc.nodes.is_empty() && doc.disks.is_empty());
    let script = &shell.scripts()[0];
    assert!(script.contains("\n  $csv = @()\n"));
    assert!(!script.contains("Get-ClusterSharedVolume"));
    assert!(script.contains(FN_SHARES_WMI.lines().nth(3).unwrap()));
}

// ---- what the agent may touch ------------------------------------------------------------------

/// Without `--allow-path`, an agent on a Windows node may touch the cluster's disks: the driver
/// reads them from a fresh inventory (one script), and the agent compares a task's drive or UNC
/// path with them as text before anything opens it.
#[tokio::test]
async fn default_roots_are_the_cluster_disks_by_drive_and_by_admin_share() {
    let recorded = r#"{"Nodes":[{"Name":"NEW-n1","State":"Up","Vendor":"GenuineIntel","Model":"Xeon"},{"Name":"NEW-n2","State":"Up","Vendor":"GenuineIntel","Model":"Xeon"}],"Networks":[],"Disks":[{"Resource":"Cluster Disk 1","Path":"F:","TotalMB":102400,"FreeMB":51200},{"Resource":"Cluster Disk 2","Path":"C:\\ClusterStorage\\Volume1","TotalMB":2097152,"FreeMB":838861}],"Csv":{"Resource":"Cluster Disk 2","Path":"C:\\ClusterStorage\\Volume1","TotalMB":2097152,"FreeMB":838861},"Groups":[]}"#;
    let (d, shell) = driver(OsGeneration::Ws2012r2, vec![ok(recorded)]);
    let roots = d.default_roots().await.unwrap();
    assert_eq!(shell.scripts().len(), 1);
    assert!(shell.scripts()[0].contains("Get-ClusterNode"));
    let shown: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    assert_eq!(
        shown,
        [
            "F:\\",
            "\\\\NEW-n1\\F$\\",
            "\\\\NEW-n2\\F$\\",
            "C:\\ClusterStorage\\"
        ]
    );
    let confinement = Confinement::new(roots, RootsOrigin::Driver, None);
    for allowed in [
        "F:\\",
        "f:\\Shares\\Finance",
        "\\\\new-n2\\f$\\Shares",
        "C:\\ClusterStorage\\Volume1\\VMs",
    ] {
        assert_eq!(
            confinement.check_windows_text(Path::new(allowed)),
            Ok(()),
            "{allowed}"
        );
    }
    for refused in [
        "C:\\Windows",
        "C:\\ClusterStorageX",
        "E:\\",
        "\\\\NEW-n1\\C$\\Windows",
        "\\\\OLD\\F$\\",
        "\\\\NEW-n1\\F$\\..\\..\\C$",
        "\\\\.\\PhysicalDrive0",
        "F:\\Shares:stream",
        "F:Shares",
    ] {
        let rule = confinement
            .check_windows_text(Path::new(refused))
            .unwrap_err();
        assert!(!rule.is_empty(), "{refused}");
    }

    // A 2003 cluster has no module: the driver cannot say, and the task fails rather than go
    // anywhere.
    let (old, _) = driver(OsGeneration::Ws2003, vec![]);
    assert_eq!(
        old.default_roots().await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
}

// ---- offline and online -------------------------------------------------------------------------

#[tokio::test]
async fn offline_sends_the_exact_script_and_reports_each_resource() {
    let recorded = r#"{"Name":"FS01","OwnerNode":"OLD-n1","State":"Offline","Error":null,"Resources":[{"Name":"FS01 IP Address","ResourceType":"IP Address","Before":"Online","State":"Offline"},{"Name":"Cluster Disk 1","ResourceType":"Physical Disk","Before":"Offline","State":"Offline"}]}"#;
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![ok(recorded)]);
    let outcome = d.offline_group("FS01").await.unwrap();
    assert_eq!(
        shell.scripts(),
        vec![wrapped(&group_state_body(
            "'FS01'",
            "$null = Stop-ClusterGroup -Name $name"
        ))]
    );
    assert_eq!(outcome.state, ResourceState::Offline);
    assert!(outcome.resources[0].changed);
    assert!(!outcome.resources[1].changed);
    assert!(outcome.failures().next().is_none());
    assert!(outcome.into_result().is_ok());
}

#[tokio::test]
async fn online_reports_a_failed_network_name_as_transient() {
    // The Kerberos note: the network name fails its first online, its dependents stay offline.
    let recorded = r#"{"Name":"FS01","OwnerNode":"INT-n1","State":3,"Error":"The group could not be brought online.","Resources":[{"Name":"FS01 IP Address","ResourceType":"IP Address","Before":3,"State":2},{"Name":"FS01 Network Name","ResourceType":"Network Name","Before":3,"State":4},{"Name":"FS01 File Server","ResourceType":"File Server","Before":3,"State":3}]}"#;
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![ok(recorded)]);
    let outcome = d.online_group("FS01").await.unwrap();
    assert_eq!(
        shell.scripts(),
        vec![wrapped(&group_state_body(
            "'FS01'",
            "try { $null = Start-ClusterGroup -Name $name } catch { $err = [string]$_.Exception.Message }"
        ))]
    );
    assert_eq!(outcome.state, ResourceState::PartialOnline);
    let by_name = |n: &str| outcome.resources.iter().find(|r| r.resource == n).unwrap();
    assert!(by_name("FS01 IP Address").error.is_none());
    let name = by_name("FS01 Network Name");
    assert_eq!(name.state, ResourceState::Failed);
    assert_eq!(name.error.as_ref().unwrap().kind, ErrorKind::Transient);
    assert!(
        name.error
            .as_ref()
            .unwrap()
            .message
            .contains("could not be brought online")
    );
    assert_eq!(
        by_name("FS01 File Server").error.as_ref().unwrap().kind,
        ErrorKind::Transient
    );
    let err = outcome.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
}

#[tokio::test]
async fn online_reports_a_failed_disk_as_failed() {
    let recorded = r#"{"Name":"FS01","OwnerNode":"N1","State":"Failed","Error":"failed","Resources":{"Name":"Cluster Disk 1 (1)","ResourceType":"Physical Disk","Before":"Offline","State":"Failed"}}"#;
    let (d, _) = driver(OsGeneration::Ws2012, vec![ok(recorded)]);
    let err = d
        .online_group("FS01")
        .await
        .unwrap()
        .into_result()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("Cluster Disk 1 (1)"), "{err}");
}

// ---- disks, resources, dependencies -------------------------------------------------------------

#[tokio::test]
async fn add_disk_resource_sends_the_exact_script() {
    let recorded = r#"{"Name":"Cluster Disk 3","ResourceType":"Physical Disk","State":"Offline","OwnerGroup":"FS01","Dependency":"","Parameters":{"DiskSignature":"16"}}"#;
    let (d, shell) = driver(OsGeneration::Ws2008, vec![ok(recorded)]);
    let r = d.add_disk_resource("FS01", "Cluster Disk 3").await.unwrap();
    let expected = wrapped(&format!(
        r#"{FN_RESOURCE}$groupName = 'FS01'
$diskName = 'Cluster Disk 3'
$null = Get-ClusterGroup -Name $groupName
$r = Get-ClusterResource | Where-Object {{ $_.Name -eq $diskName }}
if ($null -eq $r) {{ $r = Get-ClusterAvailableDisk | Where-Object {{ $_.Name -eq $diskName }} | Add-ClusterDisk }}
if ($null -eq $r) {{ Write-Error -Message ('No cluster disk or available disk is named ' + $diskName) -Category ObjectNotFound }}
if ([string]$r.ResourceType -ne 'Physical Disk') {{ Write-Error -Message ($diskName + ' is not a physical disk') -Category InvalidType }}
$owner = [string]$r.OwnerGroup.Name
if ($owner -ne $groupName -and $owner -ne 'Available Storage') {{ Write-Error -Message ($diskName + ' already belongs to group ' + $owner) -Category ResourceExists }}
if ($owner -ne $groupName) {{ $null = Move-ClusterResource -Name $diskName -Group $groupName }}
ConvertTo-FerryResource (Get-ClusterResource -Name $diskName) | ConvertTo-Json -Depth 4 -Compress
"#
    ));
    assert_eq!(shell.scripts(), vec![expected]);
    assert_eq!(r.kind, ResourceKind::PhysicalDisk);
    assert_eq!(r.state, ResourceState::Offline);
    assert_eq!(r.properties["signature"], "00000010");
}

#[tokio::test]
async fn remove_resource_sends_the_exact_script_and_reports_removal() {
    let (d, shell) = driver(
        OsGeneration::Ws2008r2,
        vec![ok(r#"{"Removed":true}"#), ok(r#"{"Removed":false}"#)],
    );
    assert!(
        d.remove_resource("FS01", "Cluster Disk 1 (1)")
            .await
            .unwrap()
    );
    assert!(
        !d.remove_resource("FS01", "Cluster Disk 1 (1)")
            .await
            .unwrap()
    );
    let expected = wrapped(
        r#"$groupName = 'FS01'
$resourceName = 'Cluster Disk 1 (1)'
$null = Get-ClusterGroup -Name $groupName
$r = Get-ClusterResource | Where-Object { $_.Name -eq $resourceName }
$removed = $false
if ($null -ne $r) {
  $owner = [string]$r.OwnerGroup.Name
  if ($owner -ne $groupName) { Write-Error -Message ('Resource ' + $resourceName + ' belongs to group ' + $owner) -Category ResourceExists }
  if ([string]$r.State -ne 'Offline' -and [string]$r.State -ne 'Failed') { Write-Error -Message ('Resource ' + $resourceName + ' is ' + [string]$r.State + ': take it offline first') -Category ResourceBusy }
  $null = Remove-ClusterResource -Name $resourceName -Force
  $removed = $true
}
[pscustomobject]@{ Removed = $removed } | ConvertTo-Json -Compress
"#,
    );
    assert_eq!(shell.scripts(), vec![expected.clone(), expected]);
}

#[tokio::test]
async fn set_dependencies_sends_the_exact_script() {
    let recorded = r#"{"Name":"FS01 File Server","ResourceType":"File Server","State":"Offline","OwnerGroup":"FS01","Dependency":"([FS01 Network Name]) and ([Cluster Disk 3])","Parameters":{}}"#;
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![ok(recorded)]);
    let r = d
        .set_dependencies(
            "FS01",
            "FS01 File Server",
            &["FS01 Network Name".into(), "Cluster Disk 3".into()],
        )
        .await
        .unwrap();
    let expected = wrapped(&format!(
        r#"{FN_RESOURCE}$groupName = 'FS01'
$resourceName = 'FS01 File Server'
$expression = '[FS01 Network Name] and [Cluster Disk 3]'
$r = Get-ClusterResource -Name $resourceName
if ([string]$r.OwnerGroup.Name -ne $groupName) {{ Write-Error -Message ('Group ' + $groupName + ' has no resource named ' + $resourceName) -Category ObjectNotFound }}
$null = Set-ClusterResourceDependency -Resource $resourceName -Dependency $expression
ConvertTo-FerryResource (Get-ClusterResource -Name $resourceName) | ConvertTo-Json -Depth 4 -Compress
"#
    ));
    assert_eq!(shell.scripts(), vec![expected]);
    assert_eq!(r.depends_on, ["FS01 Network Name", "Cluster Disk 3"]);

    // A bracket cannot be written in a dependency expression: refused before any script runs.
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![]);
    let err = d
        .set_dependencies("FS01", "FS01 File Server", &["Disk [1]".into()])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(shell.scripts().is_empty());
}

#[tokio::test]
async fn assign_drive_letter_sends_the_exact_script() {
    let (d, shell) = driver(
        OsGeneration::Ws2008r2,
        vec![ok(
            r#"{"Resource":"Cluster Disk 3","Path":"F:","TotalMB":1024,"FreeMB":1000}"#,
        )],
    );
    let disk = d.assign_drive_letter("Cluster Disk 3", "f").await.unwrap();
    let expected = wrapped(
        r#"$diskName = 'Cluster Disk 3'
$letter = 'F:'
$r = Get-WmiObject -Namespace 'root\MSCluster' -Class MSCluster_Resource | Where-Object { $_.Name -eq $diskName }
if ($null -eq $r) { Write-Error -Message ('No cluster disk is named ' + $diskName) -Category ObjectNotFound }
$part = @($r.GetRelated('MSCluster_Disk') | ForEach-Object { $_.GetRelated('MSCluster_DiskPartition') })[0]
if ($null -eq $part) { Write-Error -Message ('Disk ' + $diskName + ' has no partition') -Category ObjectNotFound }
$path = [string]$part.Path
if ($path -ne $letter) {
  $node = [string](Get-ClusterResource -Name $diskName).OwnerNode
  $volumes = @(Get-WmiObject -Class Win32_Volume -ComputerName $node)
  $taken = @($volumes | Where-Object { $_.DriveLetter -eq $letter })
  if ($taken.Count -gt 0) { Write-Error -Message ('Drive letter ' + $letter + ' is already used on ' + $node) -Category ResourceExists }
  $volume = $volumes | Where-Object { $_.DeviceID -eq ('\\?\Volume' + [string]$part.VolumeGuid + '\') }
  if ($null -eq $volume) { Write-Error -Message ('No volume found for disk ' + $diskName) -Category ObjectNotFound }
  $volume.DriveLetter = $letter
  $null = $volume.Put()
  $path = $letter
}
[pscustomobject]@{ Resource = $diskName; Path = $path; TotalMB = [int64]$part.TotalSize; FreeMB = [int64]$part.FreeSpace } | ConvertTo-Json -Compress
"#,
    );
    assert_eq!(shell.scripts(), vec![expected]);
    assert_eq!(disk.drive_letter.as_deref(), Some("F:"));
    assert_eq!(disk.size_bytes, 1 << 30);

    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![]);
    let err = d
        .assign_drive_letter("Cluster Disk 3", "F1")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(shell.scripts().is_empty());
}

// ---- runbook disk and group operations -----------------------------------------------------------

const WMI_LETTER: &str = r#"$path = [string]$part.Path
if ($path -ne $letter) {
  $node = [string](Get-ClusterResource -Name $diskName).OwnerNode
  $volumes = @(Get-WmiObject -Class Win32_Volume -ComputerName $node)
  $taken = @($volumes | Where-Object { $_.DriveLetter -eq $letter })
  if ($taken.Count -gt 0) { Write-Error -Message ('Drive letter ' + $letter + ' is already used on ' + $node) -Category ResourceExists }
  $volume = $volumes | Where-Object { $_.DeviceID -eq ('\\?\Volume' + [string]$part.VolumeGuid + '\') }
  if ($null -eq $volume) { Write-Error -Message ('No volume found for disk ' + $diskName) -Category ObjectNotFound }
  $volume.DriveLetter = $letter
  $null = $volume.Put()
  $path = $letter
}
"#;

const PARTITION_LETTER: &str = r#"$path = [string]$part.Path
if ($path -ne $letter) {
  $node = [string](Get-ClusterResource -Name $diskName).OwnerNode
  if ($null -ne (Get-Partition -CimSession $node -DriveLetter $letter.Substring(0, 1) -ErrorAction SilentlyContinue)) { Write-Error -Message ('Drive letter ' + $letter + ' is already used on ' + $node) -Category ResourceExists }
  $partition = @(Get-Partition -CimSession $node | Where-Object { $_.AccessPaths -contains ('\\?\Volume' + [string]$part.VolumeGuid + '\') })[0]
  if ($null -eq $partition) { Write-Error -Message ('No partition found for disk ' + $diskName) -Category ObjectNotFound }
  $partition | Set-Partition -NewDriveLetter $letter.Substring(0, 1)
  $path = $letter
}
"#;

fn prepare_disk_body(set_letter: &str) -> String {
    format!(
        r#"$letter = 'F:'
$disks = @(Get-WmiObject -Namespace 'root\MSCluster' -Class MSCluster_Resource | Where-Object {{ $_.Type -eq 'Physical Disk' }} | ForEach-Object {{ $w = $_; $w.GetRelated('MSCluster_Disk') | ForEach-Object {{ $_.GetRelated('MSCluster_DiskPartition') }} | ForEach-Object {{ [pscustomobject]@{{ Resource = [string]$w.Name; Group = [string](Get-ClusterResource -Name $w.Name).OwnerGroup.Name; Path = [string]$_.Path; Part = $_ }} }} }})
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
"#
    )
}

#[tokio::test]
async fn prepare_disk_sends_the_exact_script_per_generation() {
    let recorded = r#"{"Resource":"Cluster Disk 4","Path":"F:","TotalMB":50,"FreeMB":40}"#;
    // 2008 has no Storage module: the letter goes through Win32_Volume.
    let (d, shell) = driver(OsGeneration::Ws2008, vec![ok(recorded)]);
    let disk = d.prepare_disk("f").await.unwrap();
    assert_eq!(
        shell.scripts(),
        vec![wrapped(&prepare_disk_body(WMI_LETTER))]
    );
    assert_eq!(disk.resource, "Cluster Disk 4");
    assert_eq!(disk.drive_letter.as_deref(), Some("F:"));
    assert_eq!(disk.size_bytes, 50 << 20);
    // 2012 and later: Set-Partition.
    let (d, shell) = driver(OsGeneration::Ws2019, vec![ok(recorded)]);
    d.prepare_disk("F:").await.unwrap();
    assert_eq!(
        shell.scripts(),
        vec![wrapped(&prepare_disk_body(PARTITION_LETTER))]
    );
    // The script's refusals keep their kind.
    let (d, _) = driver(
        OsGeneration::Ws2008,
        vec![failure(&record(
            "ResourceExists",
            "Microsoft.PowerShell.Commands.WriteErrorException",
            "Drive letter F: is taken by disk Cluster Disk 1 of group FS02",
        ))],
    );
    let err = d.prepare_disk("F:").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.message().contains("FS02"), "{err}");
    let (d, shell) = driver(OsGeneration::Ws2008, vec![]);
    assert_eq!(
        d.prepare_disk("FF").await.unwrap_err().kind(),
        ErrorKind::Failed
    );
    assert!(shell.scripts().is_empty());
}

#[tokio::test]
async fn replace_disk_resource_sends_the_exact_script_and_parses_the_lists() {
    // One removed resource prints as a bare string, no repointed ones as an empty array.
    let (d, shell) = driver(
        OsGeneration::Ws2008r2,
        vec![
            ok(
                r#"{"Resource":"Cluster Disk 3","Removed":"Cluster Disk 1 (1)","Repointed":["FS01 File Server","FS01 Share01"]}"#,
            ),
            ok(r#"{"Resource":"Cluster Disk 3","Removed":[],"Repointed":null}"#),
        ],
    );
    let swap = d
        .replace_disk_resource("FS01", "Cluster Disk 3", "f:")
        .await
        .unwrap();
    assert_eq!(swap.resource, "Cluster Disk 3");
    assert_eq!(swap.removed, ["Cluster Disk 1 (1)"]);
    assert_eq!(swap.repointed, ["FS01 File Server", "FS01 Share01"]);
    let again = d
        .replace_disk_resource("FS01", "Cluster Disk 3", "F:")
        .await
        .unwrap();
    assert!(again.removed.is_empty() && again.repointed.is_empty());
    let expected = wrapped(&format!(
        r#"$groupName = 'FS01'
$diskName = 'Cluster Disk 3'
$letter = 'F:'
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
$part = @((Get-WmiObject -Namespace 'root\MSCluster' -Class MSCluster_Resource | Where-Object {{ $_.Name -eq $diskName }}).GetRelated('MSCluster_Disk') | ForEach-Object {{ $_.GetRelated('MSCluster_DiskPartition') }})[0]
if ($null -eq $part) {{ Write-Error -Message ('Disk ' + $diskName + ' has no partition') -Category ObjectNotFound }}
{WMI_LETTER}$removed = @($others | ForEach-Object {{ [string]$_.Name }})
$repointed = @()
foreach ($d in @(Get-ClusterGroup -Name $groupName | Get-ClusterResource | Where-Object {{ $_.Name -ne $diskName }})) {{
  $expression = [string]($d | Get-ClusterResourceDependency).DependencyExpression
  $changed = $false
  foreach ($n in $removed) {{ $token = '[' + $n + ']'; if ($expression.Contains($token)) {{ $expression = $expression.Replace($token, '[' + $diskName + ']'); $changed = $true }} }}
  if ($changed) {{ $null = Set-ClusterResourceDependency -Resource $d.Name -Dependency $expression; $repointed += [string]$d.Name }}
}}
foreach ($n in $removed) {{ $null = Remove-ClusterResource -Name $n -Force }}
[pscustomobject]@{{ Resource = $diskName; Removed = $removed; Repointed = $repointed }} | ConvertTo-Json -Compress
"#
    ));
    assert_eq!(shell.scripts(), vec![expected.clone(), expected]);

    // A bracket cannot be written in the rewritten dependency expressions.
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![]);
    let err = d
        .replace_disk_resource("FS01", "Disk [3]", "F:")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(shell.scripts().is_empty());
}

#[tokio::test]
async fn remove_group_sends_the_exact_script_and_refuses_core_groups() {
    let (d, shell) = driver(
        OsGeneration::Ws2008,
        vec![
            ok(r#"{"Removed":true}"#),
            ok(r#"{"Removed":false}"#),
            failure(&record(
                "ResourceBusy",
                "Microsoft.PowerShell.Commands.WriteErrorException",
                "Group FS01 is online (resource FS01 Network Name is Online): take it offline first",
            )),
        ],
    );
    assert!(d.remove_group("FS01").await.unwrap());
    assert!(!d.remove_group("FS01").await.unwrap());
    let err = d.remove_group("FS01").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let expected = wrapped(
        r#"$groupName = 'FS01'
$g = Get-ClusterGroup | Where-Object { $_.Name -eq $groupName }
$removed = $false
if ($null -ne $g) {
  $online = @($g | Get-ClusterResource | Where-Object { [string]$_.State -ne 'Offline' -and [string]$_.State -ne 'Failed' })
  if ($online.Count -gt 0) { Write-Error -Message ('Group ' + $groupName + ' is online (resource ' + [string]$online[0].Name + ' is ' + [string]$online[0].State + '): take it offline first') -Category ResourceBusy }
  $null = Remove-ClusterGroup -Name $groupName -RemoveResources -Force
  $removed = $true
}
[pscustomobject]@{ Removed = $removed } | ConvertTo-Json -Compress
"#,
    );
    assert_eq!(
        shell.scripts(),
        vec![expected.clone(), expected.clone(), expected]
    );

    let (d, shell) = driver(OsGeneration::Ws2008, vec![]);
    for core in ["Cluster Group", "available storage"] {
        assert_eq!(
            d.remove_group(core).await.unwrap_err().kind(),
            ErrorKind::Conflict
        );
    }
    assert!(shell.scripts().is_empty());
}

// ---- configuration facts ------------------------------------------------------------------------

fn facts_body(switches: &str, bindings: &str, csv: &str) -> String {
    format!(
        r#"{NETWORKS}$hyperv = [bool](Get-Command Get-VMProcessor -ErrorAction SilentlyContinue)
$nodes = @(Get-ClusterNode | ForEach-Object {{
  $n = [string]$_.Name
  $cpu = @(Get-WmiObject -Class Win32_Processor -ComputerName $n)[0]
  $switches = @(Get-WmiObject -Namespace '{switches}' -Class Msvm_VirtualSwitch -ComputerName $n -ErrorAction SilentlyContinue | ForEach-Object {{ [string]$_.ElementName }})
  $reg = [wmiclass]('\\' + $n + '\root\default:StdRegProv')
  $lsa = 'SYSTEM\CurrentControlSet\Control\Lsa\MSV1_0'
  $send = $reg.GetDWORDValue(2147483650, $lsa, 'RestrictSendingNTLMTraffic').uValue
  $receive = $reg.GetDWORDValue(2147483650, $lsa, 'RestrictReceivingNTLMTraffic').uValue
  $hbas = @(Get-WmiObject -Namespace 'root\WMI' -Class MSFC_FCAdapterHBAAttributes -ComputerName $n -ErrorAction SilentlyContinue | ForEach-Object {{ [pscustomobject]@{{ Model = [string]$_.Model; DriverVersion = [string]$_.DriverVersion; FirmwareVersion = [string]$_.FirmwareVersion }} }})
  $compat = @(if ($hyperv) {{ Get-VM -ComputerName $n -ErrorAction SilentlyContinue | Get-VMProcessor -ErrorAction SilentlyContinue | ForEach-Object {{ [bool]$_.CompatibilityForMigrationEnabled }} }})
  [pscustomobject]@{{ Name = $n; Vendor = [string]$cpu.Manufacturer; Model = [string]$cpu.Name; Switches = $switches; NtlmSend = $send; NtlmReceive = $receive; Hbas = $hbas; ProcessorCompatibility = $compat }}
}})
{bindings}
{csv}$lmQos = if (Get-Command Get-SmbBandwidthLimit -ErrorAction SilentlyContinue) {{ @(Get-SmbBandwidthLimit -Category LiveMigration -ErrorAction SilentlyContinue).Count -gt 0 }} else {{ $null }}
[pscustomobject]@{{ Cluster = [string](Get-Cluster).Name; Networks = $networks; Nodes = $nodes; Bindings = $bindings; Csv = $csv; Quorum = [string](Get-ClusterQuorum).QuorumType; LiveMigrationQos = $lmQos }} | ConvertTo-Json -Depth 6 -Compress
"#
    )
}

#[tokio::test]
async fn config_facts_send_the_exact_script_and_parse() {
    let recorded = r#"{"Cluster":"NEW","Networks":[{"Name":"Client","Role":3,"Metric":10100,"AutoMetric":true,"Address":"10.0.1.0","Mask":"255.255.255.0"},{"Name":"Cluster-CSV","Role":1,"Metric":1000,"AutoMetric":true,"Address":"10.0.3.0","Mask":"255.255.255.0"},{"Name":"Live Migration","Role":1,"Metric":1100,"AutoMetric":true,"Address":"10.0.4.0","Mask":"255.255.255.0"}],"Nodes":[{"Name":"NEW-n1","Vendor":"GenuineIntel","Model":"Xeon","Switches":"External","NtlmSend":null,"NtlmReceive":0,"Hbas":{"Model":"QLE2562","DriverVersion":"9.1.9.25","FirmwareVersion":"5.06.03"}},{"Name":"NEW-n2","Vendor":"AuthenticAMD","Model":"EPYC","Switches":[],"NtlmSend":2,"NtlmReceive":null,"Hbas":[]}],"Bindings":[{"Network":"Cluster-CSV","Node":"NEW-n1","Component":"ms_msclient","Enabled":true},{"Network":"Cluster-CSV","Node":"NEW-n2","Component":"ms_msclient","Enabled":true},{"Network":"Cluster-CSV","Node":"NEW-n1","Component":"ms_server","Enabled":true},{"Network":"Cluster-CSV","Node":"NEW-n2","Component":"ms_server","Enabled":false}],"Csv":[{"Resource":"Cluster Disk 2","Path":"C:\\ClusterStorage\\Volume1","TotalMB":2048,"FreeMB":20}],"Quorum":"NodeAndDiskMajority"}"#;
    let (d, shell) = driver(OsGeneration::Ws2012r2, vec![ok(recorded)]);
    let facts = d.config_facts().await.unwrap();
    let bindings = r#"$bindings = @(Get-ClusterNetworkInterface | ForEach-Object { $i = $_; Get-NetAdapterBinding -CimSession ([string]$i.Node) -Name ([string]$i.Adapter) -ComponentID ms_msclient,ms_server -ErrorAction SilentlyContinue | ForEach-Object { [pscustomobject]@{ Network = [string]$i.Network; Node = [string]$i.Node; Component = [string]$_.ComponentID; Enabled = [bool]$_.Enabled } } })"#;
    assert_eq!(
        shell.scripts(),
        vec![wrapped(&facts_body(
            r"root\virtualization\v2",
            bindings,
            CSV
        ))]
    );
    assert_eq!(facts.cluster.as_deref(), Some("NEW"));
    assert_eq!(facts.os, Some(OsGeneration::Ws2012r2));
    let csv = facts.csv_network().unwrap();
    assert_eq!(csv.name, "Cluster-CSV");
    assert_eq!(csv.client_for_microsoft_networks, Some(true));
    assert_eq!(csv.file_and_printer_sharing, Some(false));
    assert_eq!(
        facts.live_migration_network().unwrap().name,
        "Live Migration"
    );
    assert_eq!(facts.networks[0].client_for_microsoft_networks, None);
    assert_eq!(facts.nodes[0].virtual_switches, ["External"]);
    assert_eq!(facts.nodes[0].ntlm_enabled, Some(true));
    assert_eq!(facts.nodes[1].ntlm_enabled, Some(false));
    assert_eq!(facts.nodes[0].hbas[0].firmware_version, "5.06.03");
    assert_ne!(facts.nodes[0].processor, facts.nodes[1].processor);
    assert_eq!(facts.csv_volumes[0].free_bytes, 20 << 20);
    let quorum = facts.quorum.unwrap();
    assert_eq!(quorum.quorum_type, QuorumType::NodeAndDiskMajority);
    assert_eq!(quorum.node_count, 2);
}

#[tokio::test]
async fn config_facts_before_2012_use_the_old_namespaces() {
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![ok(r#"{"Quorum":"Weird"}"#)]);
    let facts = d.config_facts().await.unwrap();
    assert_eq!(
        shell.scripts(),
        vec![wrapped(&facts_body(
            r"root\virtualization",
            "$bindings = @()",
            CSV
        ))]
    );
    assert_eq!(facts.quorum.unwrap().quorum_type, QuorumType::Unknown);
}

// ---- what the driver cannot do ------------------------------------------------------------------

#[tokio::test]
async fn migration_and_counters_are_not_scripted() {
    let (d, shell) = driver(OsGeneration::Ws2008r2, vec![]);
    let err = d.migrate_group("OLD", "FS01").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert!(err.message().contains("Migration Wizard"), "{err}");
    assert_eq!(d.perf_counters(chrono::Utc::now()).await.unwrap(), None);
    assert!(shell.scripts().is_empty());
    assert_eq!(d.driver_name(), "powershell");
}

#[tokio::test]
async fn ws2003_clusters_are_unsupported() {
    let (d, shell) = driver(OsGeneration::Ws2003, vec![]);
    assert_eq!(
        d.list_groups().await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert_eq!(
        d.online_group("FS01").await.unwrap_err().kind(),
        ErrorKind::Unsupported
    );
    assert!(shell.scripts().is_empty());
}

// ---- escaping -----------------------------------------------------------------------------------

/// Evaluates what `ps_quote` produces the way PowerShell would: single-quoted literals with `''`
/// for a quote, `[char]0xHHHH` units, joined by ` + ` inside parentheses. Panics on anything
/// else, so any text that could break out of the literal fails the test.
fn eval_quoted(expr: &str) -> String {
    fn literal(s: &str) -> (String, &str) {
        let mut out = String::new();
        let mut rest = s.strip_prefix('\'').expect("literal starts with a quote");
        loop {
            let end = rest.find('\'').expect("literal is closed");
            out.push_str(&rest[..end]);
            rest = &rest[end + 1..];
            match rest.strip_prefix('\'') {
                Some(after) => {
                    out.push('\'');
                    rest = after;
                }
                None => return (out, rest),
            }
        }
    }
    if !expr.starts_with('(') {
        let (value, rest) = literal(expr);
        assert!(rest.is_empty(), "text after the literal: {rest}");
        return value;
    }
    let mut units: Vec<u16> = Vec::new();
    let mut rest = &expr[1..];
    loop {
        if rest.starts_with('\'') {
            let (value, after) = literal(rest);
            units.extend(value.encode_utf16());
            rest = after;
        } else {
            let after = rest.strip_prefix("[char]0x").expect("a [char] code");
            let hex = &after[..4];
            units.push(u16::from_str_radix(hex, 16).unwrap());
            rest = &after[4..];
        }
        if let Some(after) = rest.strip_prefix(" + ") {
            rest = after;
        } else {
            assert_eq!(rest, ")", "expression ends with a parenthesis");
            break;
        }
    }
    String::from_utf16(&units).unwrap()
}

const HOSTILE: &[&str] = &[
    "'; Remove-Item C:\\ -Recurse #",
    "$(evil)",
    "${env:USERNAME}",
    "`$x` and `n",
    "\"double\" quotes",
    "Финансы",
    "共有",
    "it’s ‘curly’ ‚low‛",
    "line\nbreak\r\n\n",
    "tab\there",
    "emoji 😀",
    "''''",
    "",
    "a'b''c",
    "@{x=1}; & calc.exe",
];

#[test]
fn quoting_round_trips_hostile_names_as_pure_ascii() {
    for value in HOSTILE {
        let quoted = ps_quote(value);
        assert!(quoted.is_ascii(), "{quoted}");
        assert!(!quoted.contains('"') || value.contains('"'));
        assert!(!quoted.contains('\n') && !quoted.contains('\r'));
        assert_eq!(eval_quoted(&quoted), *value, "{quoted}");
    }
    assert_eq!(
        ps_quote("'; Remove-Item C:\\ -Recurse #"),
        "'''; Remove-Item C:\\ -Recurse #'"
    );
    assert_eq!(ps_quote("$(evil)"), "'$(evil)'");
    assert_eq!(ps_quote("`$x`"), "'`$x`'");
    assert_eq!(
        ps_quote("Финансы"),
        "('' + [char]0x0424 + [char]0x0438 + [char]0x043D + [char]0x0430 + [char]0x043D + [char]0x0441 + [char]0x044B)"
    );
    assert_eq!(ps_quote("it’s"), "('it' + [char]0x2019 + 's')");
}

#[tokio::test]
async fn hostile_names_stay_inside_their_literals_in_every_script() {
    let recorded_group = r#"{"Name":"x","State":"Offline","Resources":[]}"#;
    let recorded_resource = r#"{"Name":"x","ResourceType":"Physical Disk","State":"Offline"}"#;
    for name in HOSTILE {
        let (d, shell) = driver(
            OsGeneration::Ws2019,
            vec![
                ok(recorded_group),
                ok(recorded_group),
                ok(recorded_resource),
                ok(r#"{"Removed":false}"#),
                ok(recorded_resource),
                ok(r#"{"Resource":"x","Path":"G:","TotalMB":1,"FreeMB":1}"#),
                ok(r#"{"Removed":false}"#),
                ok(r#"{"Resource":"x","Removed":[],"Repointed":[]}"#),
            ],
        );
        d.offline_group(name).await.unwrap();
        d.online_group(name).await.unwrap();
        d.add_disk_resource(name, name).await.unwrap();
        d.remove_resource(name, name).await.unwrap();
        d.set_dependencies(name, name, &[name.to_string()])
            .await
            .unwrap();
        d.assign_drive_letter(name, "G:").await.unwrap();
        d.remove_group(name).await.unwrap();
        d.replace_disk_resource(name, "Cluster Disk 3", "G:")
            .await
            .unwrap();
        let quoted = ps_quote(name);
        for script in shell.scripts() {
            assert!(script.is_ascii());
            // No double-quoted (expanding) strings: a `"` only ever appears inside a literal.
            assert!(name.contains('"') || !script.contains('"'), "{script}");
            // The body has no blank line: `-Command -` would run a half block.
            let body = script.trim_end_matches('\n');
            assert!(!body.contains("\n\n"), "blank line in {script}");
            assert!(script.ends_with("}\n\n"));
            assert!(script.contains(&quoted), "{quoted} not in {script}");
        }
    }
}

// ---- errors -------------------------------------------------------------------------------------

fn record(category: &str, id: &str, message: &str) -> String {
    let json = json!({ "Category": category, "Id": id, "Message": message });
    format!("FERRY-ERROR {json}\r\n")
}

#[test]
fn error_records_map_to_kinds() {
    let cases = [
        (
            "ObjectNotFound",
            "ClusterObjectNotFound,Microsoft.FailoverClusters.PowerShell.GetClusterGroupCommand",
            ErrorKind::NotFound,
        ),
        ("ResourceExists", "", ErrorKind::Conflict),
        ("ResourceBusy", "", ErrorKind::Conflict),
        ("ResourceUnavailable", "", ErrorKind::Transient),
        ("ConnectionError", "", ErrorKind::Transient),
        ("OperationTimeout", "", ErrorKind::Timeout),
        ("NotInstalled", "", ErrorKind::Unsupported),
        (
            "ObjectNotFound",
            "CommandNotFoundException",
            ErrorKind::Unsupported,
        ),
        (
            "ResourceUnavailable",
            "Modules_ModuleNotFound,Microsoft.PowerShell.Commands.ImportModuleCommand",
            ErrorKind::Unsupported,
        ),
        ("InvalidOperation", "", ErrorKind::Failed),
        ("NotSpecified", "", ErrorKind::Failed),
    ];
    for (category, id, kind) in cases {
        let err = map_failure(&failure(&record(
            category,
            id,
            "The cluster group 'FS9' was not found.",
        )));
        assert_eq!(err.kind(), kind, "{category} {id}");
        assert!(
            err.message()
                .starts_with("The cluster group 'FS9' was not found.")
        );
        if !id.is_empty() {
            assert!(err.message().contains(id));
        }
    }
}

#[tokio::test]
async fn failures_become_driver_errors_with_the_stderr_text() {
    let not_found = failure(&format!(
        "some noise\r\n{}",
        record(
            "ObjectNotFound",
            "ClusterObjectNotFound",
            "The cluster group 'FS9' was not found."
        )
    ));
    let crashed = ShellOutput {
        status: Some(-1),
        stdout: String::new(),
        stderr: "powershell.exe : The term 'Get-ClusterGroup' is not recognized".into(),
    };
    // Exit 0 with an error record still fails.
    let sneaky = ShellOutput {
        status: Some(0),
        stdout: "{}".into(),
        stderr: record("ResourceBusy", "", "busy"),
    };
    let killed = ShellOutput {
        status: None,
        stdout: "partial".into(),
        stderr: String::new(),
    };
    let garbage = ok("WARNING: something\r\nnot json at all");
    let (d, _) = driver(
        OsGeneration::Ws2012r2,
        vec![not_found, crashed, sneaky, killed, garbage],
    );
    let err = d.online_group("FS9").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.message().contains("FS9"));
    let err = d.online_group("FS9").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("exited with -1"), "{err}");
    assert!(err.message().contains("is not recognized"), "{err}");
    let err = d.remove_resource("FS9", "x").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    let err = d.list_groups().await.unwrap_err();
    assert!(err.message().contains("was killed"), "{err}");
    assert!(err.message().contains("partial"), "{err}");
    let err = d.list_groups().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Failed);
    assert!(err.message().contains("not JSON"), "{err}");
}

#[test]
fn output_helpers_handle_the_json_shapes() {
    assert_eq!(parse_output("").unwrap(), serde_json::Value::Null);
    assert_eq!(parse_output("\u{feff}[1]\r\n\r\n").unwrap(), json!([1]));
    assert_eq!(parse_output("noise\n{\"a\":1}\n").unwrap(), json!({"a": 1}));
    assert_eq!(json_many(json!(null)), Vec::<serde_json::Value>::new());
    assert_eq!(json_many(json!({"a": 1})), vec![json!({"a": 1})]);
    assert_eq!(json_many(json!([1, 2])), vec![json!(1), json!(2)]);
    assert_eq!(
        json_many(json!({"value": [1, 2], "Count": 2})),
        vec![json!(1), json!(2)]
    );
    // Exactly the ConvertTo-Json text of one object with those two names is left alone only when
    // it has other properties too.
    assert_eq!(
        json_many(json!({"value": 1, "Count": 2, "Name": "x"})).len(),
        1
    );
}

// ---- the real process shell ---------------------------------------------------------------------

#[cfg(unix)]
#[tokio::test]
async fn process_shell_pipes_the_script_and_reports_exit_and_streams() {
    use ferry::agent::driver::powershell::ProcessShell;
    use std::time::Duration;

    let sh = ProcessShell::new("sh", ["-s"]);
    let out = sh
        .run("echo 'out Финансы'\necho err >&2\nexit 3\n")
        .await
        .unwrap();
    assert_eq!(out.status, Some(3));
    assert_eq!(out.stdout, "out Финансы\n");
    assert_eq!(out.stderr, "err\n");

    // A big script and a big answer do not deadlock on the pipes.
    let big = format!(
        "cat >/dev/null <<'EOF'\n{}\nEOF\nhead -c 300000 /dev/zero | tr '\\0' x\n",
        "y".repeat(300_000)
    );
    let out = sh.run(&big).await.unwrap();
    assert_eq!(out.status, Some(0));
    assert_eq!(out.stdout.len(), 300_000);

    let slow = ProcessShell::new("sh", ["-s"]).with_timeout(Duration::from_millis(200));
    let err = slow.run("sleep 5\n").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);

    let missing = ProcessShell::new("/nonexistent/powershell.exe", ["-Command", "-"]);
    let err = missing.run("exit 0").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

#[test]
fn scripts_are_pure_functions_of_their_inputs() {
    let s = Scripts {
        os: OsGeneration::Ws2022,
    };
    assert_eq!(s.online_group("FS01"), s.online_group("FS01"));
    assert_ne!(s.online_group("FS01"), s.online_group("FS02"));
}
