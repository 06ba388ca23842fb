//! Compiles `proto/` with protox (pure Rust: no system `protoc`).
//!
//! Three outputs land in `OUT_DIR`:
//! - the Rust code (prost messages, tonic client and server) for every package,
//! - `descriptor_set.bin`, the encoded `FileDescriptorSet` with imports and source info, and
//! - `standard_set.bin`, the standard types every gRPC API may use without shipping them
//!   (`google.rpc.Status`, its error details, the well-known types), for the gateway to add
//!   to whatever descriptors it is given.
//!
//! The descriptor bytes are written exactly as protox encodes them. Decoding them into
//! `prost_types` and re-encoding would drop the `google.api.http` extension (prost keeps
//! no unknown fields), and the gateway reads its routes from that extension.

use std::{env, fs, path::PathBuf};

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &["article/v1/article.proto"];
/// The standard types; protox carries the `google/protobuf` files itself.
const STANDARD: &[&str] = &[
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
    "google/api/httpbody.proto",
    "google/protobuf/any.proto",
    "google/protobuf/duration.proto",
    "google/protobuf/empty.proto",
    "google/protobuf/field_mask.proto",
    "google/protobuf/struct.proto",
    "google/protobuf/timestamp.proto",
    "google/protobuf/wrappers.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(PROTOS)?;

    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("descriptor_set.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    let mut standard = protox::Compiler::new([PROTO_ROOT])?;
    standard.include_imports(true);
    standard.open_files(STANDARD)?;
    fs::write(
        out_dir.join("standard_set.bin"),
        standard.encode_file_descriptor_set(),
    )?;

    // buf/validate/validate.proto only annotates the contract (its rules are read from the
    // descriptors at run time); its Rust types come from prost-protovalidate-types, so no code
    // is generated for it here.
    let mut set = compiler.file_descriptor_set();
    set.file.retain(|f| f.package() != "buf.validate");
    tonic_prost_build::configure()
        .include_file("protos.rs")
        .compile_fds(set)?;
    Ok(())
}
