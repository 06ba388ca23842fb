//! Where the API's descriptors come from: the embedded article contract, an encoded
//! `FileDescriptorSet` file, or the backend's gRPC server reflection.
//!
//! Every path keeps the raw descriptor bytes until prost-reflect decodes them, because
//! decoding into `prost_types` and re-encoding drops the `google.api.http` extension the
//! routes come from.

use std::{
    collections::{HashMap, HashSet},
    path::Path,
};

use prost::Message;
use prost_reflect::DescriptorPool;
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, ServerReflectionResponse,
    server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
    server_reflection_response::MessageResponse,
};

use crate::backend::Backend;

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

/// The article contract compiled into this binary.
///
/// # Errors
/// Only if the embedded bytes are corrupt, which the build prevents.
pub fn embedded() -> Result<DescriptorPool, DescriptorError> {
    Ok(DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET)?)
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

/// Reads every service's files (and their imports) from the backend's
/// `grpc.reflection.v1.ServerReflection` service.
///
/// # Errors
/// When reflection is not served, or returns files whose imports cannot all be found.
pub async fn from_reflection(backend: &Backend) -> Result<DescriptorPool, DescriptorError> {
    let mut client = ServerReflectionClient::new(backend.grpc_service());

    let answers = round(
        &mut client,
        vec![MessageRequest::ListServices(String::new())],
    )
    .await?;
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
        for answer in round(&mut client, requests).await? {
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

/// One reflection stream: sends `requests`, returns the answers in order.
async fn round(
    client: &mut ServerReflectionClient<crate::backend::GrpcService>,
    requests: Vec<MessageRequest>,
) -> Result<Vec<MessageResponse>, DescriptorError> {
    let count = requests.len();
    let stream = tokio_stream::iter(requests.into_iter().map(|r| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r),
    }));
    let mut responses = client.server_reflection_info(stream).await?.into_inner();
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
