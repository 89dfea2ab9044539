//! Compiles the gRPC API (public calls, migration jobs and the agent protocol) from `proto/` and
//! writes its descriptor set for server reflection.

use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    // The contract lives at the workspace root, beside the crates that speak it.
    let proto = PathBuf::from("../../proto");
    println!("cargo:rerun-if-changed={}", proto.display());
    println!("cargo:rerun-if-env-changed=PROTOC");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // No protoc is installed here, so the vendored one is the default; `PROTOC` still wins for
    // builders that must use their own. The path goes through the config: `set_var` is unsafe
    // in edition 2024, and a global would leak into other build steps.
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);

    // The well-known types (Timestamp, Struct) come from the vendored include directory, so the
    // build does not depend on a system protobuf installation.
    let well_known = protoc_bin_vendored::include_path()?;
    tonic_prost_build::configure()
        // The generated `XClient::connect(url)` helper would collide with the agent protocol's
        // `Connect` method; clients are built with `XClient::new(channel)` instead.
        .build_transport(false)
        .file_descriptor_set_path(out_dir.join("ferry_descriptor.bin"))
        .compile_with_config(
            config,
            &[
                proto.join("ferry/v1/inventory.proto"),
                proto.join("ferry/v1/agent.proto"),
                proto.join("ferry/v1/jobs.proto"),
                proto.join("ferry/v1/perf.proto"),
                proto.join("ferry/v1/validations.proto"),
            ],
            &[proto.clone(), well_known],
        )?;
    Ok(())
}
