//! Ferry's wire protocol, the one layer both the server and the agent speak: the code generated
//! from `proto/ferry/v1/`, the conversions between its messages and the core's types, the typed
//! reports tasks answer with, and the agent protocol's constants. It depends on the core only;
//! neither side's code is reachable from here.

use std::ops::RangeInclusive;

pub mod convert;
pub mod report;

/// The code generated from the proto: messages, clients and server traits.
#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod pb {
    tonic::include_proto!("ferry.v1");

    /// Descriptors of `ferry.v1` and its imports, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ferry_descriptor");
}

/// Versions of the agent protocol this build speaks, on either side of the stream.
pub const PROTOCOL_VERSIONS: RangeInclusive<u32> = 1..=1;

/// Metadata naming the agent on `AgentService/Connect`.
pub const AGENT_ID_METADATA: &str = "x-ferry-agent-id";
