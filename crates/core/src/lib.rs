//! Ferry's pure core: the domain model, route planning and the runbook, the validation rules,
//! perf series and their analysis, and the scheduler's decision. No I/O and nothing of Ferry's
//! outside this crate: every other crate builds on it.

pub mod advance;
pub mod error;
pub mod model;
pub mod perf;
pub mod plan;
pub mod validation;
