//! Ferry: a control plane that moves clustered file-server roles between failover clusters.
//!
//! See `ARCHITECTURE.md` for the map of the code.

pub mod auth;
pub mod config;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod model;
pub mod server;
pub mod service;
pub mod store;
