//! Ferry: a control plane that moves clustered file-server roles between failover clusters.
//!
//! See `ARCHITECTURE.md` for the map of the code.

pub mod agent;
pub mod auth;
pub mod cli_jobs;
pub mod client;
pub mod config;
pub mod demo;
pub mod error;
pub mod gateway;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod model;
pub mod perf;
pub mod plan;
pub mod scheduler;
pub mod server;
pub mod service;
pub mod sim;
pub mod store;
pub mod validation;
pub mod webhooks;
