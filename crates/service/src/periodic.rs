//! Work on a timer that the replicas sharing a database do once per period between them rather
//! than once each: every replica ticks, and the first to claim a period in the store does that
//! period's work. A replica that dies holding a claim costs at most one period; nobody waits for
//! it to come back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use uuid::Uuid;

use crate::Service;

/// What is done once per period across the replicas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duty {
    /// Expired task leases become lost attempts; silent agents are marked down.
    Reap,
    /// Landed perf batches are merged into chunks and rollups.
    PerfCompaction,
    /// Perf points past their retention are deleted.
    PerfRetention,
    /// Clusters due for a periodic discovery get one.
    DiscoverySchedule,
}

impl Duty {
    pub const ALL: [Duty; 4] = [
        Duty::Reap,
        Duty::PerfCompaction,
        Duty::PerfRetention,
        Duty::DiscoverySchedule,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Duty::Reap => "reap",
            Duty::PerfCompaction => "perf_compaction",
            Duty::PerfRetention => "perf_retention",
            Duty::DiscoverySchedule => "discovery_schedule",
        }
    }
}

/// This replica's name in the claims, and how many periods of each duty it has done.
pub(crate) struct Periods {
    replica: String,
    runs: [AtomicU64; Duty::ALL.len()],
}

impl Default for Periods {
    fn default() -> Self {
        Self {
            replica: format!("{}-{}", std::process::id(), Uuid::now_v7()),
            runs: Default::default(),
        }
    }
}

impl Service {
    /// Whether this replica does `duty` for the period starting now. The claim lasts nine tenths
    /// of `period`: a replica whose timer fires a little early still gets its next period, and
    /// no two replicas do the work closer together than that. Callers claim first thing after
    /// their timer fires, so the work before the claim does not eat into that tenth.
    ///
    /// A store that cannot be reached answers false, and the period is skipped: the work it
    /// would have done waits for the next.
    pub async fn claim_period(&self, duty: Duty, period: Duration) -> bool {
        match self
            .store
            .claim_period(duty.as_str(), &self.periods.replica, period.mul_f64(0.9))
            .await
        {
            Ok(true) => {
                self.periods.runs[duty as usize].fetch_add(1, Ordering::Relaxed);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::warn!(duty = duty.as_str(), error = %e, "could not claim a period; skipping it");
                false
            }
        }
    }

    /// How many periods of each duty this replica has done since it started.
    pub fn periods_done(&self) -> Vec<(Duty, u64)> {
        Duty::ALL
            .iter()
            .map(|&duty| {
                (
                    duty,
                    self.periods.runs[duty as usize].load(Ordering::Relaxed),
                )
            })
            .collect()
    }
}
