//! The disk workload model of a simulated cluster, reproducing the second field note's experiment.
//!
//! Workloads (VMs, or the clients of a file server) run on nodes against volumes. A node's disk
//! counters show the I/O it sends to the storage itself; the storage server shows the sum of
//! everything. When a CSV volume is in redirected mode, the other nodes send their I/O over the
//! network to the coordinator: their disk counters drop to near zero, the coordinator carries the
//! sum, and their CSV redirected counters show what was rerouted.
//!
//! Values are a pure function of the model, the seed and the time: the same inputs always give
//! the same numbers, so tests and the demo can replay any instant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use ferry_protocol::report::perf::{PerfSnapshot, PerfSource, VolumeCounters};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfModel {
    /// Name the storage server's counters are reported under.
    pub storage_server: String,
    /// Length in seconds of the repeating scenario (ramps up, steady, ramps down); 0 runs every
    /// workload steadily at full load.
    pub cycle_secs: u64,
    /// Relative amplitude of the per-second noise, e.g. `0.01` for ±1 %.
    pub noise: f64,
    /// The share of the nodes' I/O the storage server counts: below 1 where its cache absorbs
    /// or coalesces some (the second field note saw 1505 against the nodes' 867 + 715).
    #[serde(default = "full_share")]
    pub storage_share: f64,
    pub volumes: Vec<PerfVolume>,
    pub workloads: Vec<Workload>,
}

fn full_share() -> f64 {
    1.0
}

impl Default for PerfModel {
    fn default() -> Self {
        Self {
            storage_server: String::new(),
            cycle_secs: 0,
            noise: 0.0,
            storage_share: 1.0,
            volumes: Vec::new(),
            workloads: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerfVolume {
    pub name: String,
    /// A CSV volume is reachable from every node; any other volume only from its owner.
    pub csv: bool,
    /// The CSV coordinator, or the owner node of a plain disk.
    pub coordinator: String,
    #[serde(default)]
    pub redirected: bool,
    /// Latency of a lightly loaded volume.
    pub base_latency_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub name: String,
    pub node: String,
    pub volume: String,
    /// Transfers per second at full load.
    pub iops: f64,
    /// Share of reads among transfers, 0..=1.
    pub read_fraction: f64,
    pub io_bytes: f64,
    /// Within the cycle: when the workload starts, how long it ramps, when it starts to stop.
    pub start_secs: f64,
    pub ramp_secs: f64,
    pub stop_secs: Option<f64>,
}

/// SplitMix64: a full-period mixing of 64 bits, enough for reproducible noise.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Uniform in [-1, 1], fixed for a seed, a key and a second.
fn unit_noise(seed: u64, key: &str, second: i64) -> f64 {
    let h = mix(seed ^ mix(hash_str(key)) ^ mix(second as u64));
    (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[derive(Debug, Clone, Copy, Default)]
struct Io {
    reads: f64,
    writes: f64,
    read_bytes: f64,
    write_bytes: f64,
}

impl Io {
    fn add(&mut self, other: Io) {
        self.reads += other.reads;
        self.writes += other.writes;
        self.read_bytes += other.read_bytes;
        self.write_bytes += other.write_bytes;
    }

    fn scaled(self, f: f64) -> Io {
        Io {
            reads: self.reads * f,
            writes: self.writes * f,
            read_bytes: self.read_bytes * f,
            write_bytes: self.write_bytes * f,
        }
    }

    fn transfers(self) -> f64 {
        self.reads + self.writes
    }
}

impl Workload {
    /// Fraction of full load at `phase` seconds into the cycle.
    fn level(&self, phase: Option<f64>) -> f64 {
        let Some(t) = phase else { return 1.0 };
        let ramp = |x: f64| {
            if self.ramp_secs <= 0.0 {
                if x >= 0.0 { 1.0 } else { 0.0 }
            } else {
                (x / self.ramp_secs).clamp(0.0, 1.0)
            }
        };
        let up = ramp(t - self.start_secs);
        match self.stop_secs {
            Some(stop) if t >= stop => up.min(1.0 - ramp(t - stop)),
            _ => up,
        }
    }

    fn io(&self, phase: Option<f64>) -> Io {
        let t = self.iops * self.level(phase);
        let (reads, writes) = (t * self.read_fraction, t * (1.0 - self.read_fraction));
        Io {
            reads,
            writes,
            read_bytes: reads * self.io_bytes,
            write_bytes: writes * self.io_bytes,
        }
    }
}

impl PerfModel {
    fn phase(&self, at: DateTime<Utc>) -> Option<f64> {
        (self.cycle_secs > 0)
            .then(|| (at.timestamp_millis() as f64 / 1000.0).rem_euclid(self.cycle_secs as f64))
    }

    fn factor(&self, seed: u64, key: &str, second: i64) -> f64 {
        1.0 + self.noise * unit_noise(seed, key, second)
    }

    /// Latency grows with the load on the volume; rerouted I/O adds a network hop.
    fn latency(&self, volume: &PerfVolume, load: f64, extra_ms: f64, noise: f64) -> f64 {
        (volume.base_latency_ms * (1.0 + load / 4000.0) + extra_ms) * noise
    }

    /// Every node's counters for every volume, then the storage server's, at `at`.
    pub fn sample(
        &self,
        seed: u64,
        cluster: &str,
        nodes: &[String],
        at: DateTime<Utc>,
    ) -> PerfSnapshot {
        let phase = self.phase(at);
        let second = at.timestamp();
        let mut counters = Vec::with_capacity(self.volumes.len() * (nodes.len() + 1));
        for volume in &self.volumes {
            let per_node: Vec<Io> =
                nodes
                    .iter()
                    .map(|node| {
                        let mut io = Io::default();
                        for w in self.workloads.iter().filter(|w| {
                            w.volume == volume.name && w.node.eq_ignore_ascii_case(node)
                        }) {
                            io.add(w.io(phase));
                        }
                        io
                    })
                    .collect();
            let mut total = Io::default();
            for io in &per_node {
                total.add(*io);
            }
            let rerouting = volume.redirected || !volume.csv;
            for (node, own) in nodes.iter().zip(&per_node) {
                let coordinator = node.eq_ignore_ascii_case(&volume.coordinator);
                // A plain disk is only mounted on its owner: the others have no counter for it.
                if !volume.csv && !coordinator {
                    continue;
                }
                let (direct, rerouted) = match (rerouting, coordinator) {
                    (false, _) => (*own, Io::default()),
                    (true, true) => (total, Io::default()),
                    (true, false) => (Io::default(), *own),
                };
                let key = format!("{node}|{}", volume.name);
                let f = self.factor(seed, &key, second);
                let direct = direct.scaled(f);
                let rerouted = rerouted.scaled(self.factor(seed, &format!("{key}|r"), second));
                let transfers = direct.transfers();
                let latency = if transfers > 0.0 {
                    let extra = if volume.redirected && coordinator {
                        0.4
                    } else {
                        0.0
                    };
                    let noise = self.factor(seed, &format!("{key}|l"), second);
                    self.latency(volume, total.transfers(), extra, noise)
                } else {
                    0.0
                };
                counters.push(VolumeCounters {
                    node: node.clone(),
                    source: PerfSource::ClusterNode,
                    volume: volume.name.clone(),
                    csv: volume.csv,
                    reads_per_sec: direct.reads,
                    writes_per_sec: direct.writes,
                    transfers_per_sec: transfers,
                    read_bytes_per_sec: direct.read_bytes,
                    write_bytes_per_sec: direct.write_bytes,
                    avg_latency_ms: latency,
                    queue_depth: transfers * latency / 1000.0,
                    redirected_reads_per_sec: rerouted.reads,
                    redirected_writes_per_sec: rerouted.writes,
                });
            }
            let key = format!("{}|{}", self.storage_server, volume.name);
            let seen = total.scaled(self.storage_share * self.factor(seed, &key, second));
            let transfers = seen.transfers();
            let latency = if transfers > 0.0 {
                let noise = self.factor(seed, &format!("{key}|l"), second);
                self.latency(volume, transfers, 0.0, noise)
            } else {
                0.0
            };
            counters.push(VolumeCounters {
                node: self.storage_server.clone(),
                source: PerfSource::StorageServer,
                volume: volume.name.clone(),
                csv: volume.csv,
                reads_per_sec: seen.reads,
                writes_per_sec: seen.writes,
                transfers_per_sec: transfers,
                read_bytes_per_sec: seen.read_bytes,
                write_bytes_per_sec: seen.write_bytes,
                avg_latency_ms: latency,
                queue_depth: transfers * latency / 1000.0,
                redirected_reads_per_sec: 0.0,
                redirected_writes_per_sec: 0.0,
            });
        }
        PerfSnapshot {
            at,
            cluster: cluster.to_string(),
            counters,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experiment(redirected: bool) -> PerfModel {
        PerfModel {
            storage_server: "STOR".into(),
            cycle_secs: 600,
            noise: 0.01,
            storage_share: 1.0,
            volumes: vec![PerfVolume {
                name: "C:\\ClusterStorage\\Volume1".into(),
                csv: true,
                coordinator: "n1".into(),
                redirected,
                base_latency_ms: 2.0,
            }],
            workloads: vec![
                Workload {
                    name: "VM1".into(),
                    node: "n1".into(),
                    volume: "C:\\ClusterStorage\\Volume1".into(),
                    iops: 867.0,
                    read_fraction: 0.6,
                    io_bytes: 8192.0,
                    start_secs: 10.0,
                    ramp_secs: 10.0,
                    stop_secs: Some(570.0),
                },
                Workload {
                    name: "VM2".into(),
                    node: "n2".into(),
                    volume: "C:\\ClusterStorage\\Volume1".into(),
                    iops: 715.0,
                    read_fraction: 0.6,
                    io_bytes: 8192.0,
                    start_secs: 40.0,
                    ramp_secs: 10.0,
                    stop_secs: Some(570.0),
                },
            ],
        }
    }

    /// `secs` into a cycle: 1 800 000 000 is a multiple of the 600 s cycle.
    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn transfers(s: &PerfSnapshot, node: &str) -> f64 {
        s.counters
            .iter()
            .find(|c| c.node == node)
            .unwrap()
            .transfers_per_sec
    }

    #[test]
    fn ramps_follow_the_cycle() {
        let model = experiment(false);
        let nodes = ["n1".to_string(), "n2".to_string()];
        let before = model.sample(1, "C", &nodes, at(5));
        assert_eq!(transfers(&before, "n1"), 0.0);
        assert_eq!(transfers(&before, "STOR"), 0.0);
        let vm1_only = model.sample(1, "C", &nodes, at(30));
        assert!((transfers(&vm1_only, "n1") - 867.0).abs() < 867.0 * 0.011);
        assert_eq!(transfers(&vm1_only, "n2"), 0.0);
        let half = model.sample(1, "C", &nodes, at(15));
        assert!((transfers(&half, "n1") - 433.5).abs() < 10.0);
        let done = model.sample(1, "C", &nodes, at(590));
        assert_eq!(transfers(&done, "STOR"), 0.0);
    }

    #[test]
    fn redirected_io_funnels_node2_through_the_coordinator() {
        let nodes = ["n1".to_string(), "n2".to_string()];
        let mut model = experiment(false);
        model.storage_share = 1505.0 / 1582.0;
        let direct = model.sample(3, "C", &nodes, at(300));
        assert!((transfers(&direct, "n1") - 867.0).abs() < 867.0 * 0.011);
        assert!((transfers(&direct, "n2") - 715.0).abs() < 715.0 * 0.011);
        assert!((transfers(&direct, "STOR") - 1505.0).abs() < 1505.0 * 0.011);
        model.volumes[0].redirected = true;
        let redirected = model.sample(3, "C", &nodes, at(300));
        assert_eq!(transfers(&redirected, "n2"), 0.0);
        assert!((transfers(&redirected, "n1") - 1582.0).abs() < 1582.0 * 0.011);
        let n2 = redirected.counters.iter().find(|c| c.node == "n2").unwrap();
        let rerouted = n2.redirected_reads_per_sec + n2.redirected_writes_per_sec;
        assert!((rerouted - 715.0).abs() < 715.0 * 0.011);
        assert!((transfers(&redirected, "STOR") - 1505.0).abs() < 1505.0 * 0.011);
    }

    #[test]
    fn reads_and_writes_add_up_to_transfers() {
        let s = experiment(false).sample(7, "C", &["n1".into(), "n2".into()], at(300));
        for c in &s.counters {
            assert!((c.reads_per_sec + c.writes_per_sec - c.transfers_per_sec).abs() < 1e-9);
            assert!((c.queue_depth - c.transfers_per_sec * c.avg_latency_ms / 1000.0).abs() < 1e-9);
        }
    }

    #[test]
    fn noise_is_bounded_and_seeded() {
        for second in 0..1000 {
            let u = unit_noise(42, "k", second);
            assert!((-1.0..=1.0).contains(&u));
        }
        assert_eq!(unit_noise(1, "a", 5), unit_noise(1, "a", 5));
        assert_ne!(unit_noise(1, "a", 5), unit_noise(2, "a", 5));
        assert_ne!(unit_noise(1, "a", 5), unit_noise(1, "a", 6));
    }
}
