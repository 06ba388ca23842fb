//! Where the API's descriptors come from: an encoded `FileDescriptorSet` compiled into the
//! binary ([`from_bytes`]) or in a file, or the backend's gRPC server reflection (`grpc.reflection.v1`,
//! else `v1alpha`, which grpcio-reflection and many Go and Java servers still serve alone);
//! and the standard types added to all of them ([`with_standard_types`]).
//!
//! Every path keeps the raw descriptor bytes until prost-reflect decodes them, because
//! decoding into `prost_types` and re-encoding drops the `google.api.http` extension the
//! routes come from.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use http::uri::PathAndQuery;
use prost::Message;
use prost_reflect::DescriptorPool;
use tonic::Code;
use tonic_prost::ProstCodec;
// The v1 messages are wire-identical to v1alpha's (same fields, same numbers): one set of
// types speaks both versions, only the method path differs.
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, ServerReflectionResponse, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse,
};

use crate::backend::{Backend, GrpcService};

/// The reflection methods, newest first.
const REFLECTION_PATHS: [&str; 2] = [
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// Why descriptors could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DescriptorError {
    /// The descriptor set file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not a valid descriptor set (or file).
    #[error("invalid descriptors: {0}")]
    Invalid(#[from] prost_reflect::DescriptorError),
    /// A reflection call failed.
    #[error("server reflection failed: {0}")]
    Reflection(#[from] tonic::Status),
    /// The reflection answers do not form a complete set of files.
    #[error("server reflection: {0}")]
    Incomplete(String),
}

/// An encoded `google.protobuf.FileDescriptorSet` held in memory (one compiled into the
/// binary, as `articles-gateway` holds the article contract's).
///
/// # Errors
/// When the bytes are not a complete descriptor set.
pub fn from_bytes(bytes: &[u8]) -> Result<DescriptorPool, DescriptorError> {
    Ok(DescriptorPool::decode(bytes)?)
}

/// An encoded `google.protobuf.FileDescriptorSet` (as written by `protoc
/// --descriptor_set_out --include_imports` or `buf build -o`).
///
/// # Errors
/// When the file is unreadable or not a complete descriptor set.
pub fn from_file(path: &Path) -> Result<DescriptorPool, DescriptorError> {
    let bytes = std::fs::read(path).map_err(|source| DescriptorError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Ok(DescriptorPool::decode(bytes.as_slice())?)
}

/// Adds the standard types to `pool`: `google.rpc.Status`, the `google.rpc` error details
/// and the well-known types, each file unless the pool already has one of that name.
///
/// Backends answer error details (`DebugInfo`, `BadRequest`, ...) that their own descriptors
/// rarely import, and a detail whose type the pool does not know can only be shown as base64.
/// A file that clashes with the pool's own (the same type under another file name) is left
/// out: the pool's definition wins.
pub fn with_standard_types(mut pool: DescriptorPool) -> DescriptorPool {
    let standard =
        match prost_types::FileDescriptorSet::decode(articles_proto::STANDARD_DESCRIPTOR_SET) {
            Ok(set) => set,
            // The bytes are compiled into the binary by build.rs; a failure here is a build bug,
            // and the pool still works without them.
            Err(e) => {
                tracing::error!(error = %e, "the embedded standard descriptors are corrupt");
                return pool;
            }
        };
    // Imports come first in the set, so each file finds its dependencies already added.
    for file in standard.file {
        if pool.get_file_by_name(file.name()).is_some() {
            continue;
        }
        let name = file.name().to_owned();
        if let Err(e) = pool.add_file_descriptor_proto(file) {
            tracing::debug!(file = name, error = %e, "standard file not added");
        }
    }
    pool
}

/// Reads every service's files (and their imports) from the backend's server reflection:
/// `grpc.reflection.v1.ServerReflection`, or `grpc.reflection.v1alpha` when v1 is not served.
///
/// # Errors
/// When reflection is not served, or returns files whose imports cannot all be found.
pub async fn from_reflection(backend: &Backend) -> Result<DescriptorPool, DescriptorError> {
    let service = backend.grpc_service();
    let list = || vec![MessageRequest::ListServices(String::new())];
    let (path, answers) = match round(&service, REFLECTION_PATHS[0], list()).await {
        Err(DescriptorError::Reflection(status)) if status.code() == Code::Unimplemented => {
            tracing::debug!("grpc.reflection.v1 is not served; trying v1alpha");
            let answers = round(&service, REFLECTION_PATHS[1], list()).await?;
            (REFLECTION_PATHS[1], answers)
        }
        other => (REFLECTION_PATHS[0], other?),
    };
    let mut services = Vec::new();
    for answer in answers {
        if let MessageResponse::ListServicesResponse(list) = answer {
            services.extend(list.service.into_iter().map(|s| s.name));
        }
    }
    // The reflection service describes itself; it has no HTTP rules to read.
    services.retain(|s| !s.starts_with("grpc.reflection."));
    tracing::debug!(?services, "services listed by reflection");

    // File name -> (raw bytes, imports).
    let mut files: HashMap<String, (Vec<u8>, Vec<String>)> = HashMap::new();
    let mut requests: Vec<MessageRequest> = services
        .into_iter()
        .map(MessageRequest::FileContainingSymbol)
        .collect();
    let mut asked: HashSet<String> = HashSet::new();
    while !requests.is_empty() {
        for answer in round(&service, path, requests).await? {
            match answer {
                MessageResponse::FileDescriptorResponse(found) => {
                    for bytes in found.file_descriptor_proto {
                        // Decoded only to read the name and imports; the raw bytes are kept.
                        let file = prost_types::FileDescriptorProto::decode(bytes.as_slice())
                            .map_err(|e| {
                                DescriptorError::Incomplete(format!("undecodable file: {e}"))
                            })?;
                        let name = file.name().to_owned();
                        files.entry(name).or_insert((bytes, file.dependency));
                    }
                }
                MessageResponse::ErrorResponse(e) => {
                    return Err(DescriptorError::Incomplete(format!(
                        "the server answered error {}: {}",
                        e.error_code, e.error_message
                    )));
                }
                _ => {}
            }
        }
        let missing: Vec<String> = files
            .values()
            .flat_map(|(_, deps)| deps.iter())
            .filter(|d| !files.contains_key(*d))
            .cloned()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if let Some(again) = missing.iter().find(|m| asked.contains(*m)) {
            return Err(DescriptorError::Incomplete(format!(
                "the server does not provide the imported file {again}"
            )));
        }
        asked.extend(missing.iter().cloned());
        requests = missing
            .into_iter()
            .map(MessageRequest::FileByFilename)
            .collect();
    }

    // Add files imports first: prost-reflect resolves each file against those already added.
    let mut pool = DescriptorPool::new();
    let mut added = HashSet::new();
    let mut names: Vec<&String> = files.keys().collect();
    names.sort();
    for name in names {
        add_with_imports(&mut pool, name, &files, &mut added, &mut Vec::new())?;
    }
    Ok(pool)
}

fn add_with_imports(
    pool: &mut DescriptorPool,
    name: &str,
    files: &HashMap<String, (Vec<u8>, Vec<String>)>,
    added: &mut HashSet<String>,
    visiting: &mut Vec<String>,
) -> Result<(), DescriptorError> {
    if added.contains(name) {
        return Ok(());
    }
    if visiting.iter().any(|v| v == name) {
        return Err(DescriptorError::Incomplete(format!(
            "import cycle through {name}"
        )));
    }
    let (bytes, deps) = files
        .get(name)
        .ok_or_else(|| DescriptorError::Incomplete(format!("missing file {name}")))?;
    visiting.push(name.to_owned());
    for dep in deps {
        add_with_imports(pool, dep, files, added, visiting)?;
    }
    visiting.pop();
    pool.decode_file_descriptor_proto(bytes.as_slice())?;
    added.insert(name.to_owned());
    Ok(())
}

/// One reflection stream on the method at `path`: sends `requests`, returns the answers in
/// order.
async fn round(
    service: &GrpcService,
    path: &'static str,
    requests: Vec<MessageRequest>,
) -> Result<Vec<MessageResponse>, DescriptorError> {
    let count = requests.len();
    let stream = tokio_stream::iter(requests.into_iter().map(|r| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r),
    }));
    let mut grpc = tonic::client::Grpc::new(service.clone());
    grpc.ready()
        .await
        .map_err(|e| DescriptorError::Reflection(tonic::Status::unavailable(e.to_string())))?;
    let codec: ProstCodec<ServerReflectionRequest, ServerReflectionResponse> =
        ProstCodec::default();
    let mut responses = grpc
        .streaming(
            tonic::Request::new(stream),
            PathAndQuery::from_static(path),
            codec,
        )
        .await?
        .into_inner();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match responses.message().await? {
            Some(ServerReflectionResponse {
                message_response: Some(r),
                ..
            }) => out.push(r),
            Some(_) => {}
            None => break,
        }
    }
    Ok(out)
}
