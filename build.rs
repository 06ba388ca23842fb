//! Compiles `proto/` with protox (pure Rust: no system `protoc`).
//!
//! Two outputs land in `OUT_DIR`:
//! - the Rust code (prost messages, tonic client and server) for every package, and
//! - `descriptor_set.bin`, the encoded `FileDescriptorSet` with imports and source info.
//!
//! The descriptor bytes are written exactly as protox encodes them. Decoding them into
//! `prost_types` and re-encoding would drop the `google.api.http` extension (prost keeps
//! no unknown fields), and the gateway reads its routes from that extension.

use std::{env, fs, path::PathBuf};

const PROTO_ROOT: &str = "proto";
const PROTOS: &[&str] = &["article/v1/article.proto"];

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

    tonic_prost_build::configure()
        .include_file("protos.rs")
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
