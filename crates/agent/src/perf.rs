//! Linux disk counters: `/proc/diskstats` read twice and turned into per-device rates, the
//! Linux side of the field notes' Physical Disk counters (reads/s, writes/s, transfers/s,
//! bytes/s, latency, queue length). Batching and sending belong to the agent's session loop.
//!
//! Format (Documentation/ABI/testing/procfs-diskstats): `major minor name` then, per device,
//! reads completed, reads merged, sectors read, ms reading, writes completed, writes merged,
//! sectors written, ms writing, I/Os in progress, ms doing I/O, weighted ms doing I/O; 4.18 adds
//! four discard fields and 5.5 two flush fields. Sectors are 512 bytes whatever the device.
//! Kernels before 2.6.25 listed partitions with only four fields (reads, sectors read, writes,
//! sectors written); those lines parse, with the time fields zero.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `/proc/diskstats` counts 512-byte sectors, whatever the device's sector size.
pub const SECTOR_BYTES: u64 = 512;

/// One device's line of `/proc/diskstats`: cumulative counters since boot (or since the device
/// appeared). Fields newer kernels add are `None` on older ones.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DiskCounters {
    pub major: u32,
    pub minor: u32,
    pub name: String,
    pub reads_completed: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub ms_reading: u64,
    pub writes_completed: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub ms_writing: u64,
    /// A gauge, not a counter: it may go down.
    pub ios_in_progress: u64,
    pub ms_doing_io: u64,
    pub weighted_ms: u64,
    pub discards_completed: Option<u64>,
    pub discards_merged: Option<u64>,
    pub sectors_discarded: Option<u64>,
    pub ms_discarding: Option<u64>,
    pub flushes_completed: Option<u64>,
    pub ms_flushing: Option<u64>,
}

/// The `/proc/diskstats` format.
pub struct DiskStats;

impl DiskStats {
    /// Parses the whole file. Blank lines are ignored and fields past the ones known are
    /// tolerated; a line with fewer than the eleven classic counters (other than the old
    /// four-counter partition line) or a field that is not a number is refused, the message
    /// naming the line.
    pub fn parse(text: &str) -> Result<Vec<DiskCounters>, String> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                parse_line(line).map_err(|e| format!("diskstats line {}: {e}: {:?}", i + 1, line))
            })
            .collect()
    }

    /// Reads and parses a diskstats file; a malformed file is `InvalidData`.
    pub fn read(path: &Path) -> io::Result<Vec<DiskCounters>> {
        let text = std::fs::read_to_string(path)?;
        Self::parse(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }
}

fn parse_line(line: &str) -> Result<DiskCounters, String> {
    let mut fields = line.split_whitespace();
    let mut id = |what: &str| -> Result<u32, String> {
        let f = fields.next().ok_or_else(|| format!("no {what} number"))?;
        f.parse()
            .map_err(|_| format!("{what} number {f:?} is not a number"))
    };
    let major = id("major")?;
    let minor = id("minor")?;
    let name = fields.next().ok_or("no device name")?.to_owned();
    let stats = fields
        .enumerate()
        .map(|(i, f)| {
            f.parse::<u64>()
                .map_err(|_| format!("counter {} ({f:?}) is not a number", i + 1))
        })
        .collect::<Result<Vec<u64>, String>>()?;
    let at = |i: usize| stats.get(i).copied();
    let mut c = DiskCounters {
        major,
        minor,
        name,
        ..DiskCounters::default()
    };
    match stats.len() {
        4 => {
            c.reads_completed = stats[0];
            c.sectors_read = stats[1];
            c.writes_completed = stats[2];
            c.sectors_written = stats[3];
        }
        n if n >= 11 => {
            c.reads_completed = stats[0];
            c.reads_merged = stats[1];
            c.sectors_read = stats[2];
            c.ms_reading = stats[3];
            c.writes_completed = stats[4];
            c.writes_merged = stats[5];
            c.sectors_written = stats[6];
            c.ms_writing = stats[7];
            c.ios_in_progress = stats[8];
            c.ms_doing_io = stats[9];
            c.weighted_ms = stats[10];
            c.discards_completed = at(11);
            c.discards_merged = at(12);
            c.sectors_discarded = at(13);
            c.ms_discarding = at(14);
            c.flushes_completed = at(15);
            c.ms_flushing = at(16);
        }
        n => return Err(format!("{n} counters, expected 4 or at least 11")),
    }
    Ok(c)
}

/// One device's activity over an interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRates {
    pub device: String,
    pub reads_per_sec: f64,
    pub writes_per_sec: f64,
    /// Reads plus writes, as Windows' Disk Transfers/sec.
    pub transfers_per_sec: f64,
    pub read_bytes_per_sec: f64,
    pub write_bytes_per_sec: f64,
    /// Milliseconds per completed read or write over the interval; 0 without I/O.
    pub avg_latency_ms: f64,
    /// The average number of requests in flight (weighted I/O time over elapsed time).
    pub queue_depth: f64,
}

impl DeviceRates {
    /// The rates as samples, one per counter.
    pub fn samples(&self, at: DateTime<Utc>) -> Vec<PerfSample> {
        [
            (Counter::ReadsPerSec, self.reads_per_sec),
            (Counter::WritesPerSec, self.writes_per_sec),
            (Counter::TransfersPerSec, self.transfers_per_sec),
            (Counter::ReadBytesPerSec, self.read_bytes_per_sec),
            (Counter::WriteBytesPerSec, self.write_bytes_per_sec),
            (Counter::AvgLatencyMs, self.avg_latency_ms),
            (Counter::QueueDepth, self.queue_depth),
        ]
        .into_iter()
        .map(|(counter, value)| PerfSample {
            at,
            device: self.device.clone(),
            counter,
            value,
        })
        .collect()
    }
}

/// Rates per device between two snapshots taken `elapsed` apart, in the order of `after`.
/// A device without a baseline (it appeared) is left out, and so is one whose counters went
/// backwards (a wrap of a 32-bit counter, a driver reset, a different device under the same
/// name): its next interval counts again. A zero `elapsed` gives nothing.
pub fn rates(
    before: &[DiskCounters],
    after: &[DiskCounters],
    elapsed: Duration,
) -> Vec<DeviceRates> {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return Vec::new();
    }
    let before: HashMap<&str, &DiskCounters> =
        before.iter().map(|c| (c.name.as_str(), c)).collect();
    after
        .iter()
        .filter_map(|a| {
            let b = before.get(a.name.as_str())?;
            if (a.major, a.minor) != (b.major, b.minor) {
                return None;
            }
            let reads = a.reads_completed.checked_sub(b.reads_completed)?;
            let writes = a.writes_completed.checked_sub(b.writes_completed)?;
            let sectors_read = a.sectors_read.checked_sub(b.sectors_read)?;
            let sectors_written = a.sectors_written.checked_sub(b.sectors_written)?;
            let ms_reading = a.ms_reading.checked_sub(b.ms_reading)?;
            let ms_writing = a.ms_writing.checked_sub(b.ms_writing)?;
            let weighted_ms = a.weighted_ms.checked_sub(b.weighted_ms)?;
            let ios = reads + writes;
            Some(DeviceRates {
                device: a.name.clone(),
                reads_per_sec: reads as f64 / secs,
                writes_per_sec: writes as f64 / secs,
                transfers_per_sec: ios as f64 / secs,
                read_bytes_per_sec: (sectors_read * SECTOR_BYTES) as f64 / secs,
                write_bytes_per_sec: (sectors_written * SECTOR_BYTES) as f64 / secs,
                avg_latency_ms: if ios == 0 {
                    0.0
                } else {
                    (ms_reading + ms_writing) as f64 / ios as f64
                },
                queue_depth: weighted_ms as f64 / (secs * 1000.0),
            })
        })
        .collect()
}

pub use ferry_core::perf::Counter;

/// One counter reading of one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfSample {
    pub at: DateTime<Utc>,
    pub device: String,
    pub counter: Counter,
    pub value: f64,
}

/// Which devices a sampler reports.
///
/// The default skips `loop*`, `ram*` and `zram*`: memory and file-backed devices, not storage
/// a share lives on. It keeps `dm-*` and `md*`, because LVM volumes and multipath maps are
/// exactly what file shares sit on (for a multipath LUN the `dm-*` device is the whole
/// picture and each `sd*` one path), and it keeps partitions, which are often the volume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    /// Devices whose name starts with one of these are skipped.
    pub skip_prefixes: Vec<String>,
    /// Skip partitions (devices with a `partition` file in sysfs).
    pub skip_partitions: bool,
    /// When not empty, only these device names are reported.
    pub only: Vec<String>,
}

impl Default for DeviceFilter {
    fn default() -> Self {
        Self {
            skip_prefixes: ["loop", "ram", "zram"].map(String::from).to_vec(),
            skip_partitions: false,
            only: Vec::new(),
        }
    }
}

/// Samples `/proc/diskstats`: each call reads it, and from the second call on returns the
/// rates since the previous one as samples (seven per device).
pub struct DiskstatsSampler {
    path: PathBuf,
    last: Option<(Instant, Vec<DiskCounters>)>,
    filter: DeviceFilter,
    sysfs_block: PathBuf,
    partitions: HashMap<String, bool>,
}

impl Default for DiskstatsSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl DiskstatsSampler {
    /// Samples `/proc/diskstats` with the default filter.
    pub fn new() -> Self {
        Self::with_path("/proc/diskstats")
    }

    pub fn with_path(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            last: None,
            filter: DeviceFilter::default(),
            sysfs_block: PathBuf::from("/sys/class/block"),
            partitions: HashMap::new(),
        }
    }

    pub fn with_filter(mut self, filter: DeviceFilter) -> Self {
        self.filter = filter;
        self
    }

    /// Where partitions are recognised (`<dir>/<device>/partition`); for tests.
    pub fn with_sysfs_block(mut self, dir: impl Into<PathBuf>) -> Self {
        self.sysfs_block = dir.into();
        self.partitions.clear();
        self
    }

    /// Reads the counters; the first call only primes the sampler and returns nothing.
    pub fn sample(&mut self) -> io::Result<Vec<PerfSample>> {
        let text = std::fs::read_to_string(&self.path)?;
        self.sample_text(&text, Instant::now(), Utc::now())
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", self.path.display()),
                )
            })
    }

    /// [`Self::sample`] on text already read at `now`. A malformed text leaves the previous
    /// snapshot in place.
    pub fn sample_text(
        &mut self,
        text: &str,
        now: Instant,
        at: DateTime<Utc>,
    ) -> Result<Vec<PerfSample>, String> {
        let mut counters = DiskStats::parse(text)?;
        counters.retain(|c| self.wanted(&c.name));
        let samples = match &self.last {
            Some((then, before)) => rates(before, &counters, now.saturating_duration_since(*then))
                .iter()
                .flat_map(|r| r.samples(at))
                .collect(),
            None => Vec::new(),
        };
        self.last = Some((now, counters));
        Ok(samples)
    }

    fn wanted(&mut self, name: &str) -> bool {
        let f = &self.filter;
        if !f.only.is_empty() {
            return f.only.iter().any(|o| o == name);
        }
        if f.skip_prefixes.iter().any(|p| name.starts_with(p.as_str())) {
            return false;
        }
        if f.skip_partitions {
            let dir = &self.sysfs_block;
            let partition = *self
                .partitions
                .entry(name.to_owned())
                .or_insert_with(|| dir.join(name).join("partition").exists());
            return !partition;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
   7       0 loop0 10 0 20 1 0 0 0 0 0 1 1 0 0 0 0 0 0
   8       0 sda 1000 10 8000 500 2000 20 16000 1500 0 3000 4000
   8       1 sda1 900 10 7000 450 1900 20 15000 1400 0 2900 3800 0 0 0 0
 253       0 dm-0 50 0 400 30 60 0 480 40 0 70 70 0 0 0 0 0 0
";
    const AFTER: &str = "\
   7       0 loop0 20 0 40 2 0 0 0 0 0 2 2 0 0 0 0 0 0
   8       0 sda 1200 12 12096 800 2600 25 36480 2400 3 4500 6400
   8       1 sda1 900 10 7000 450 1900 20 15000 1400 0 2900 3800 0 0 0 0
 253       0 dm-0 10 0 80 5 10 0 80 5 0 10 10 0 0 0 0 0 0
 259       0 nvme0n1 1 0 8 1 0 0 0 0 0 1 1 0 0 0 0 0 0
";

    #[test]
    fn parses_every_generation_of_the_format() {
        let c = DiskStats::parse(BEFORE).unwrap();
        assert_eq!(c.len(), 4);
        let sda = &c[1];
        assert_eq!((sda.major, sda.minor, sda.name.as_str()), (8, 0, "sda"));
        assert_eq!(
            (
                sda.reads_completed,
                sda.sectors_read,
                sda.ms_reading,
                sda.weighted_ms
            ),
            (1000, 8000, 500, 4000)
        );
        assert_eq!(sda.discards_completed, None);
        assert_eq!(c[2].discards_completed, Some(0));
        assert_eq!(c[2].flushes_completed, None);
        assert_eq!(c[0].ms_flushing, Some(0));

        // 2.6-era partition line: reads, sectors read, writes, sectors written.
        let old = DiskStats::parse("   3    1 hda1 35486 38030 38030 304240\n").unwrap();
        assert_eq!(
            (
                old[0].reads_completed,
                old[0].sectors_read,
                old[0].writes_completed,
                old[0].sectors_written
            ),
            (35486, 38030, 38030, 304240)
        );
        // Fields a future kernel adds are tolerated.
        let future =
            DiskStats::parse("8 0 sdb 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\n")
                .unwrap();
        assert_eq!(future[0].ms_flushing, Some(17));
        assert!(DiskStats::parse("\n\n").unwrap().is_empty());
    }

    #[test]
    fn refuses_malformed_lines_naming_them() {
        let e =
            DiskStats::parse("8 0 sda 1 2 3 4 5 6 7 8 9 10 11\n8 16 sdb 1 2 x 4 5 6 7 8 9 10 11\n")
                .unwrap_err();
        assert!(
            e.contains("line 2") && e.contains("sdb") && e.contains("\"x\""),
            "{e}"
        );
        let e = DiskStats::parse("8 0 sda 1 2 3 4 5 6 7\n").unwrap_err();
        assert!(e.contains("line 1") && e.contains("7 counters"), "{e}");
        let e = DiskStats::parse("eight 0 sda 1 2 3 4\n").unwrap_err();
        assert!(e.contains("major"), "{e}");
        assert!(
            DiskStats::parse("8 0\n")
                .unwrap_err()
                .contains("no device name")
        );
        assert!(DiskStats::parse("8 0 sda -1 2 3 4\n").is_err());
    }

    #[test]
    fn known_deltas_give_exact_rates() {
        let before = DiskStats::parse(BEFORE).unwrap();
        let after = DiskStats::parse(AFTER).unwrap();
        let r = rates(&before, &after, Duration::from_secs(2));
        let names: Vec<&str> = r.iter().map(|r| r.device.as_str()).collect();
        // dm-0 went backwards (reset): skipped. nvme0n1 appeared: no baseline yet.
        assert_eq!(names, ["loop0", "sda", "sda1"]);
        let sda = &r[1];
        assert_eq!(
            *sda,
            DeviceRates {
                device: "sda".into(),
                reads_per_sec: 100.0,
                writes_per_sec: 300.0,
                transfers_per_sec: 400.0,
                read_bytes_per_sec: 1_048_576.0,
                write_bytes_per_sec: 5_242_880.0,
                avg_latency_ms: 1.5,
                queue_depth: 1.2,
            }
        );
        let idle = &r[2];
        assert_eq!(
            (
                idle.transfers_per_sec,
                idle.avg_latency_ms,
                idle.queue_depth
            ),
            (0.0, 0.0, 0.0)
        );
        assert!(rates(&before, &after, Duration::ZERO).is_empty());
    }

    #[test]
    fn a_device_that_appears_counts_from_its_second_interval() {
        let before = DiskStats::parse(BEFORE).unwrap();
        let mid = DiskStats::parse(AFTER).unwrap();
        let mut after = mid.clone();
        for c in &mut after {
            c.reads_completed += 10;
        }
        let r1 = rates(&before, &mid, Duration::from_secs(1));
        assert!(
            !r1.iter()
                .any(|r| r.device == "nvme0n1" || r.device == "dm-0")
        );
        let r2 = rates(&mid, &after, Duration::from_secs(1));
        let nvme = r2.iter().find(|r| r.device == "nvme0n1").unwrap();
        assert_eq!(nvme.reads_per_sec, 10.0);
        assert!(r2.iter().any(|r| r.device == "dm-0"));
        // A different device under a known name is not compared with the old one.
        let mut renumbered = after.clone();
        renumbered[1].minor = 16;
        assert!(
            !rates(&after, &renumbered, Duration::from_secs(1))
                .iter()
                .any(|r| r.device == "sda")
        );
    }

    #[test]
    fn the_sampler_primes_then_reports_filtered_samples() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sda1")).unwrap();
        std::fs::write(dir.path().join("sda1/partition"), "1\n").unwrap();
        let t0 = Instant::now();
        let at = Utc::now();

        let mut s = DiskstatsSampler::with_path("/nonexistent");
        assert!(s.sample().is_err());
        assert!(s.sample_text(BEFORE, t0, at).unwrap().is_empty());
        let samples = s
            .sample_text(AFTER, t0 + Duration::from_secs(2), at)
            .unwrap();
        // loop0 is skipped by default; sda and sda1 report; dm-0 reset; nvme0n1 is new.
        let devices: std::collections::BTreeSet<&str> =
            samples.iter().map(|s| s.device.as_str()).collect();
        assert_eq!(devices.into_iter().collect::<Vec<_>>(), ["sda", "sda1"]);
        assert_eq!(samples.len(), 14);
        let q = samples
            .iter()
            .find(|x| x.device == "sda" && x.counter == Counter::QueueDepth)
            .unwrap();
        assert_eq!((q.value, q.at), (1.2, at));

        let mut s = DiskstatsSampler::with_path("/nonexistent")
            .with_sysfs_block(dir.path())
            .with_filter(DeviceFilter {
                skip_partitions: true,
                ..DeviceFilter::default()
            });
        s.sample_text(BEFORE, t0, at).unwrap();
        let samples = s
            .sample_text(AFTER, t0 + Duration::from_secs(2), at)
            .unwrap();
        assert!(samples.iter().all(|x| x.device == "sda"));
        // A malformed read keeps the previous snapshot.
        assert!(s.sample_text("8 0 sda x\n", t0, at).is_err());
        let again = s
            .sample_text(AFTER, t0 + Duration::from_secs(4), at)
            .unwrap();
        let devices: std::collections::BTreeSet<&str> =
            again.iter().map(|s| s.device.as_str()).collect();
        assert_eq!(
            devices.into_iter().collect::<Vec<_>>(),
            ["dm-0", "nvme0n1", "sda"]
        );

        let mut s = DiskstatsSampler::with_path("/nonexistent").with_filter(DeviceFilter {
            only: vec!["dm-0".into()],
            ..DeviceFilter::default()
        });
        s.sample_text(AFTER, t0, at).unwrap();
        let samples = s
            .sample_text(AFTER, t0 + Duration::from_secs(1), at)
            .unwrap();
        assert_eq!(samples.len(), 7);
        assert!(samples.iter().all(|x| x.device == "dm-0" && x.value == 0.0));
    }

    #[test]
    fn counters_serialize_in_snake_case() {
        for c in Counter::ALL {
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        let s = PerfSample {
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            device: "sda".into(),
            counter: Counter::RedirectedWritesPerSec,
            value: 2.5,
        };
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["counter"], "redirected_writes_per_sec");
        assert_eq!(serde_json::from_value::<PerfSample>(json).unwrap(), s);
    }

    #[test]
    fn reads_the_real_proc_diskstats() {
        let path = Path::new("/proc/diskstats");
        let Ok(text) = std::fs::read_to_string(path) else {
            eprintln!("notice: no /proc/diskstats here; skipping");
            return;
        };
        let devices = DiskStats::parse(&text).unwrap();
        if text.trim().is_empty() {
            eprintln!("notice: /proc/diskstats is empty here (a container?)");
        } else {
            assert!(!devices.is_empty());
        }
        let mut s = DiskstatsSampler::new().with_filter(DeviceFilter {
            skip_prefixes: Vec::new(),
            ..DeviceFilter::default()
        });
        assert!(s.sample().unwrap().is_empty());
        std::thread::sleep(Duration::from_millis(20));
        let samples = s.sample().unwrap();
        assert!(
            samples
                .iter()
                .all(|x| x.value.is_finite() && x.value >= 0.0)
        );
    }
}
