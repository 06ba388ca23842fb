//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`) serving the ORIGINAL descriptor
//! bytes.
//!
//! Hand-written, checked against tonic-reflection 0.14.9: its service keeps the original bytes
//! of each file (re-encoding them through `prost_types` would drop extension options such as
//! `google.api.http`, which the REST gateway reads over reflection), but it answers
//! `FileContainingExtension` with NOT_FOUND and
//! `AllExtensionNumbersOfType` with an empty list, and answers a file without the files it
//! depends on; clients that resolve custom options by extension number (protoreflect-based
//! ones such as grpcurl's `describe`) need both queries, and
//! `v1_extension_queries_find_google_api_http` pins them. Only the generated protocol types and
//! server traits of tonic-reflection are used.
//!
//! The protocol logic lives in [`Index`] over small local enums; the two protocol versions are
//! thin, macro-generated adapters around it (their generated types are structurally identical).

use std::{
    collections::{BTreeSet, HashMap},
    sync::Arc,
};

use prost::Message;
use prost_reflect::DescriptorPool;

use crate::error::StartError;

type Result<T, E = StartError> = std::result::Result<T, E>;

/// A `FileDescriptorSet` read only as far as the raw bytes of each file.
#[derive(Clone, PartialEq, prost::Message)]
struct RawFileDescriptorSet {
    #[prost(bytes = "vec", repeated, tag = "1")]
    file: Vec<Vec<u8>>,
}

/// A `FileDescriptorProto` read only as far as its name.
#[derive(Clone, PartialEq, prost::Message)]
struct RawFileName {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
}

/// What a reflection request asks (version independent).
#[derive(Debug, Clone, Copy)]
enum Query<'a> {
    FileByFilename(&'a str),
    FileContainingSymbol(&'a str),
    FileContainingExtension {
        containing_type: &'a str,
        number: i32,
    },
    AllExtensionNumbersOfType(&'a str),
    ListServices,
    Empty,
}

/// What the answer is (version independent).
#[derive(Debug)]
enum Answer {
    Files(Vec<Vec<u8>>),
    ExtensionNumbers {
        base_type_name: String,
        numbers: Vec<i32>,
    },
    Services(Vec<String>),
    Error {
        code: tonic::Code,
        message: String,
    },
}

/// The descriptors served, indexed for the reflection queries.
#[derive(Debug, Default)]
struct Index {
    /// File name -> its original encoded `FileDescriptorProto`.
    files: HashMap<String, Vec<u8>>,
    /// File name -> names of its direct dependencies.
    dependencies: HashMap<String, Vec<String>>,
    /// Fully-qualified symbol (service, method, message, field, enum, value, extension) -> file.
    symbols: HashMap<String, String>,
    /// (extended message, field number) -> file declaring the extension.
    extensions: HashMap<(String, i32), String>,
    /// Extended message -> extension numbers.
    extension_numbers: HashMap<String, BTreeSet<i32>>,
    /// Services listed by `list_services`.
    services: Vec<String>,
}

impl Index {
    fn build(descriptor_sets: &[&[u8]], services: Vec<String>) -> Result<Self> {
        let mut index = Self {
            services,
            ..Self::default()
        };
        let mut pool = DescriptorPool::new();
        for set in descriptor_sets {
            let raw = RawFileDescriptorSet::decode(*set)
                .map_err(|e| StartError::Descriptor(e.to_string()))?;
            for file in raw.file {
                let name = RawFileName::decode(file.as_slice())
                    .map_err(|e| StartError::Descriptor(e.to_string()))?
                    .name
                    .unwrap_or_default();
                if index.files.contains_key(&name) {
                    continue; // the same well-known file shipped by two sets
                }
                pool.decode_file_descriptor_proto(file.as_slice())
                    .map_err(|e| StartError::Descriptor(format!("{name}: {e}")))?;
                index.files.insert(name, file);
            }
        }
        for file in pool.files() {
            index.dependencies.insert(
                file.name().to_owned(),
                file.dependencies().map(|d| d.name().to_owned()).collect(),
            );
        }
        let mut add = |symbol: &str, file: &str| {
            index.symbols.insert(symbol.to_owned(), file.to_owned());
        };
        for service in pool.services() {
            let file = service.parent_file();
            add(service.full_name(), file.name());
            for method in service.methods() {
                add(method.full_name(), file.name());
            }
        }
        for message in pool.all_messages() {
            let file = message.parent_file();
            add(message.full_name(), file.name());
            for field in message.fields() {
                add(field.full_name(), file.name());
            }
            for oneof in message.oneofs() {
                add(oneof.full_name(), file.name());
            }
        }
        for enum_ in pool.all_enums() {
            let file = enum_.parent_file();
            add(enum_.full_name(), file.name());
            for value in enum_.values() {
                add(value.full_name(), file.name());
            }
        }
        for ext in pool.all_extensions() {
            let file = ext.parent_file();
            add(ext.full_name(), file.name());
            let extendee = ext.containing_message().full_name().to_owned();
            let number = i32::try_from(ext.number()).unwrap_or(i32::MAX);
            index
                .extensions
                .insert((extendee.clone(), number), file.name().to_owned());
            index
                .extension_numbers
                .entry(extendee)
                .or_default()
                .insert(number);
        }
        Ok(index)
    }

    /// The file and its transitive dependencies, the file first, each once.
    fn file_with_dependencies(&self, name: &str) -> Option<Vec<Vec<u8>>> {
        self.files.get(name)?;
        let mut order = Vec::new();
        let mut stack = vec![name.to_owned()];
        let mut seen = BTreeSet::new();
        while let Some(next) = stack.pop() {
            if !seen.insert(next.clone()) {
                continue;
            }
            if let Some(deps) = self.dependencies.get(&next) {
                stack.extend(deps.iter().rev().cloned());
            }
            order.push(next);
        }
        Some(
            order
                .iter()
                .filter_map(|n| self.files.get(n).cloned())
                .collect(),
        )
    }

    fn answer(&self, query: Query<'_>) -> Answer {
        let not_found = |message: String| Answer::Error {
            code: tonic::Code::NotFound,
            message,
        };
        match query {
            Query::FileByFilename(name) => self.file_with_dependencies(name).map_or_else(
                || not_found(format!("file {name:?} not found")),
                Answer::Files,
            ),
            Query::FileContainingSymbol(symbol) => {
                let symbol = symbol.trim_start_matches('.');
                self.symbols
                    .get(symbol)
                    .and_then(|file| self.file_with_dependencies(file))
                    .map_or_else(
                        || not_found(format!("symbol {symbol:?} not found")),
                        Answer::Files,
                    )
            }
            Query::FileContainingExtension {
                containing_type,
                number,
            } => {
                let key = (containing_type.trim_start_matches('.').to_owned(), number);
                self.extensions
                    .get(&key)
                    .and_then(|file| self.file_with_dependencies(file))
                    .map_or_else(
                        || {
                            not_found(format!(
                                "extension {number} of {containing_type:?} not found"
                            ))
                        },
                        Answer::Files,
                    )
            }
            Query::AllExtensionNumbersOfType(type_name) => {
                let type_name = type_name.trim_start_matches('.');
                if !self.symbols.contains_key(type_name) {
                    return not_found(format!("type {type_name:?} not found"));
                }
                Answer::ExtensionNumbers {
                    base_type_name: type_name.to_owned(),
                    numbers: self
                        .extension_numbers
                        .get(type_name)
                        .map(|n| n.iter().copied().collect())
                        .unwrap_or_default(),
                }
            }
            Query::ListServices => Answer::Services(self.services.clone()),
            Query::Empty => Answer::Error {
                code: tonic::Code::InvalidArgument,
                message: "empty reflection request".to_owned(),
            },
        }
    }
}

/// The reflection service, ready to be turned into the v1 and v1alpha servers.
#[derive(Debug, Clone)]
pub struct Reflection {
    index: Arc<Index>,
}

impl Reflection {
    /// Indexes `descriptor_sets` (encoded `FileDescriptorSet`s, served byte for byte) and lists
    /// `services`.
    ///
    /// # Errors
    /// [`StartError::Descriptor`] when a set does not decode or resolve.
    pub fn new(descriptor_sets: &[&[u8]], services: Vec<String>) -> Result<Self> {
        Ok(Self {
            index: Arc::new(Index::build(descriptor_sets, services)?),
        })
    }

    /// The article contract, health and reflection itself, listing their services.
    ///
    /// # Errors
    /// [`StartError::Descriptor`] if the compiled-in sets are inconsistent (a build bug).
    pub fn for_article_service() -> Result<Self> {
        Self::new(
            &[
                articles_proto::FILE_DESCRIPTOR_SET,
                tonic_health::pb::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
                tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
            ],
            vec![
                articles_proto::ARTICLE_SERVICE.to_owned(),
                "grpc.health.v1.Health".to_owned(),
                "grpc.reflection.v1.ServerReflection".to_owned(),
                "grpc.reflection.v1alpha.ServerReflection".to_owned(),
            ],
        )
    }

    /// The `grpc.reflection.v1.ServerReflection` server.
    pub fn v1(&self) -> v1::ServerReflectionServer<ReflectionV1> {
        v1::ServerReflectionServer::new(ReflectionV1 {
            index: Arc::clone(&self.index),
        })
    }

    /// The `grpc.reflection.v1alpha.ServerReflection` server.
    pub fn v1alpha(&self) -> v1alpha::ServerReflectionServer<ReflectionV1alpha> {
        v1alpha::ServerReflectionServer::new(ReflectionV1alpha {
            index: Arc::clone(&self.index),
        })
    }
}

/// Generates the adapter of one protocol version around [`Index`].
macro_rules! reflection_version {
    ($version:ident, $service:ident) => {
        /// The generated types of this protocol version.
        pub mod $version {
            pub use tonic_reflection::pb::$version::server_reflection_server::ServerReflectionServer;
        }

        #[doc = concat!("The `grpc.reflection.", stringify!($version), ".ServerReflection` service.")]
        #[derive(Debug, Clone)]
        pub struct $service {
            index: Arc<Index>,
        }

        impl $service {
            fn respond(
                index: &Index,
                request: tonic_reflection::pb::$version::ServerReflectionRequest,
            ) -> tonic_reflection::pb::$version::ServerReflectionResponse {
                use tonic_reflection::pb::$version::{
                    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse,
                    ListServiceResponse, ServerReflectionResponse, ServiceResponse,
                    server_reflection_request::MessageRequest,
                    server_reflection_response::MessageResponse,
                };
                let query = match &request.message_request {
                    Some(MessageRequest::FileByFilename(name)) => Query::FileByFilename(name),
                    Some(MessageRequest::FileContainingSymbol(symbol)) => {
                        Query::FileContainingSymbol(symbol)
                    }
                    Some(MessageRequest::FileContainingExtension(ext)) => {
                        Query::FileContainingExtension {
                            containing_type: &ext.containing_type,
                            number: ext.extension_number,
                        }
                    }
                    Some(MessageRequest::AllExtensionNumbersOfType(name)) => {
                        Query::AllExtensionNumbersOfType(name)
                    }
                    Some(MessageRequest::ListServices(_)) => Query::ListServices,
                    None => Query::Empty,
                };
                let message_response = match index.answer(query) {
                    Answer::Files(files) => {
                        MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                            file_descriptor_proto: files,
                        })
                    }
                    Answer::ExtensionNumbers {
                        base_type_name,
                        numbers,
                    } => MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                        base_type_name,
                        extension_number: numbers,
                    }),
                    Answer::Services(names) => {
                        MessageResponse::ListServicesResponse(ListServiceResponse {
                            service: names
                                .into_iter()
                                .map(|name| ServiceResponse { name })
                                .collect(),
                        })
                    }
                    Answer::Error { code, message } => {
                        MessageResponse::ErrorResponse(ErrorResponse {
                            error_code: code as i32,
                            error_message: message,
                        })
                    }
                };
                ServerReflectionResponse {
                    valid_host: request.host.clone(),
                    original_request: Some(request),
                    message_response: Some(message_response),
                }
            }
        }

        #[tonic::async_trait]
        impl tonic_reflection::pb::$version::server_reflection_server::ServerReflection
            for $service
        {
            type ServerReflectionInfoStream = std::pin::Pin<
                Box<
                    dyn futures::Stream<
                            Item = Result<
                                tonic_reflection::pb::$version::ServerReflectionResponse,
                                tonic::Status,
                            >,
                        > + Send,
                >,
            >;

            async fn server_reflection_info(
                &self,
                request: tonic::Request<
                    tonic::Streaming<tonic_reflection::pb::$version::ServerReflectionRequest>,
                >,
            ) -> Result<tonic::Response<Self::ServerReflectionInfoStream>, tonic::Status> {
                use futures::StreamExt as _;
                let index = Arc::clone(&self.index);
                let responses = request
                    .into_inner()
                    .map(move |request| request.map(|request| Self::respond(&index, request)));
                Ok(tonic::Response::new(Box::pin(responses)))
            }
        }
    };
}

reflection_version!(v1, ReflectionV1);
reflection_version!(v1alpha, ReflectionV1alpha);

#[cfg(test)]
mod tests {
    use super::*;

    fn files(answer: Answer) -> Vec<String> {
        match answer {
            Answer::Files(files) => files
                .iter()
                .filter_map(|f| RawFileName::decode(f.as_slice()).ok()?.name)
                .collect(),
            other => panic!("expected files, got {other:?}"),
        }
    }

    #[test]
    fn symbols_resolve_to_files_with_dependencies() -> Result<()> {
        let reflection = Reflection::for_article_service()?;
        let names = files(reflection.index.answer(Query::FileContainingSymbol(
            "article.v1.ArticleService.ArticleList",
        )));
        assert_eq!(
            names.first().map(String::as_str),
            Some("article/v1/article.proto")
        );
        assert!(names.iter().any(|n| n == "google/api/http.proto"));
        assert!(
            names
                .iter()
                .any(|n| n == "google/protobuf/descriptor.proto")
        );
        let names = files(reflection.index.answer(Query::FileContainingExtension {
            containing_type: "google.protobuf.MethodOptions",
            number: 72_295_728,
        }));
        assert_eq!(
            names.first().map(String::as_str),
            Some("google/api/annotations.proto")
        );
        assert!(matches!(
            reflection
                .index
                .answer(Query::FileContainingSymbol("nope.Nope")),
            Answer::Error {
                code: tonic::Code::NotFound,
                ..
            }
        ));
        Ok(())
    }
}
