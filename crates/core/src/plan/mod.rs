//! Planning a migration: which clusters a group passes through (`route`), by the rules of the
//! hop table (`hops`), with which steps (`runbook`), and when the downtime may happen
//! (`window`).
//!
//! This is pure core on purpose: plain functions over plain data, no store, no clock, no
//! network. The scheduler reads what it needs from the store, asks these functions, and stores
//! the answer, so every decision can be tested exhaustively here, replayed from its inputs, and
//! shown to an operator before anything touches a cluster.

pub mod hops;
pub mod route;
pub mod runbook;
pub mod window;

pub use hops::{HopRule, HopTable};
pub use route::{ClusterRef, ClusterRole, Hop, Route, RouteError, RouteRequest, plan_route};
pub use runbook::{
    Phase, RetryPolicy, RunbookOptions, StepEstimates, StepKind, StepSpec, Undo, cutover_estimate,
    runbook,
};
pub use window::{CutoverWindow, MAX_WINDOW, WindowFit, fits};
