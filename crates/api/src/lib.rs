//! Ferry's transports: REST (`http`), gRPC (`grpc`), the agents' stream (`gateway`), the metrics
//! both record, and webhook delivery. Every one of them calls the service only.

pub mod gateway;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod webhooks;
