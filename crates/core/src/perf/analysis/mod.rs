//! The cluster-wide questions one node cannot answer, as pure functions over step series.
//!
//! Two independent parts, one file each:
//! - [`find_redirected`] (`redirected.rs`) spots Cluster Shared Volumes that ran in redirected
//!   I/O mode, from per-node disk counters, the CSV redirected counters and (as evidence only)
//!   the storage server's view.
//! - [`place`] / [`balance`] (`placement.rs`) plan where file-server groups go so every node
//!   keeps its headroom.
//!
//! The parts are private modules re-exported here, so callers name `perf::analysis::...` and
//! never depend on which file a type lives in.
//!
//! Nothing here does I/O or panics: missing samples, mismatched vector lengths and odd values
//! all degrade to "unknown" rather than to an error.

mod placement;
mod redirected;

pub use placement::{
    Assignment, GroupDemand, NodeBalance, NodeCapacity, Placement, PlacementRequest, balance, p95,
    place,
};
pub use redirected::{
    NodeEvidence, NodeSteps, RedirectEvidence, RedirectThresholds, RedirectedInterval, VolumeSteps,
    find_redirected,
};

/// Whole numbers for real loads, one decimal for the near-zero ones that make the case. Shared
/// so a redirected interval's summary and a placement's reasoning print a rate the same way.
fn format_rate(value: f64) -> String {
    if value.abs() >= 10.0 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.1}");
        text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
    }
}
