//! The node side of Ferry: executors that do real work on a node, and drivers that talk to the
//! failover cluster. The agent session loop dials the server and hands tasks to these.

pub mod confine;
pub mod driver;
pub mod exec;
pub mod perf;
pub mod reports;
pub mod session;
pub mod skeleton;
pub mod state;

/// Receives progress of long work. Implementations must be cheap: executors call it often.
pub trait Progress: Send + Sync {
    /// `done` of `total` units (directories, shares...), with a short human message.
    fn report(&self, done: u64, total: Option<u64>, message: &str);
}

/// Discards progress (tests, and callers that only want the result).
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&self, _done: u64, _total: Option<u64>, _message: &str) {}
}
