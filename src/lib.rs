//! Ferry: a control plane that moves clustered file-server roles between failover clusters.
//!
//! This crate is the composition root: the `ferry` command line, its configuration, the server
//! that wires the layers together, and the demo. The layers themselves are the workspace's crates
//! (see `ARCHITECTURE.md`), re-exported here under their short names.

pub mod cli;
pub mod client;
pub mod config;
pub mod demo;
pub mod server;

pub use ferry_agent as agent;
pub use ferry_api::{gateway, grpc, http, metrics, webhooks};
pub use ferry_core::{advance, error, model, perf, plan, validation};
pub use ferry_protocol as protocol;
pub use ferry_service as service;
pub use ferry_service::{auth, scheduler};
pub use ferry_sim as sim;
pub use ferry_store as store;
