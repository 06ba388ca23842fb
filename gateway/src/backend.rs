//! The backend: one generic unary gRPC call over any tower service.
//!
//! A [`Backend`] is a boxed, cloneable gRPC transport. Built from a tonic [`Channel`] it is a
//! pooled HTTP/2 connection to a remote server (connected lazily, so the gateway starts while
//! the backend is down); built from any other service (for example the server's own tonic
//! `Routes`) it calls the gRPC service in memory, with no socket. The codec is
//! [`DynamicCodec`], so no method needs generated client code.

mod codec;

use std::{fmt, time::Duration};

use base64::Engine;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::uri::PathAndQuery;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use tonic::{
    Status,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tower::util::BoxCloneSyncService;

pub use codec::{DynamicCodec, DynamicDecoder, DynamicEncoder};

use crate::error::{BackendError, Error};

/// A boxed error, as tonic's transport traits use it.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The shape every backend transport is boxed into.
///
/// Its error is a [`Status`]: a transport failure (connection refused, reset, timeout) is
/// logged in full where it happens and becomes a status with a generic message, so no address
/// or OS error reaches clients. (A boxed `dyn Error` here would also trip a rustc limitation:
/// futures holding it cannot be proven `Send` inside axum handlers.)
pub type GrpcService = BoxCloneSyncService<
    http::Request<tonic::body::Body>,
    http::Response<tonic::body::Body>,
    Status,
>;

/// Where gRPC calls go.
#[derive(Clone)]
pub struct Backend {
    service: GrpcService,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend").finish_non_exhaustive()
    }
}

impl Backend {
    /// A backend reached through a tonic channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self::from_service(channel)
    }

    /// A lazily connected channel to `uri` (`http://host:port`). A connection attempt gives up
    /// after `connect_timeout`, so calls to a dead backend fail fast with `UNAVAILABLE`.
    ///
    /// # Errors
    /// When `uri` is not a valid URI.
    pub fn connect_lazy(uri: &str, connect_timeout: Duration) -> Result<Self, Error> {
        let endpoint = Endpoint::from_shared(uri.to_owned())
            .map_err(|e| Error::InvalidArgument(format!("invalid backend URI {uri:?}: {e}")))?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true);
        Ok(Self::from_channel(endpoint.connect_lazy()))
    }

    /// A backend that is any HTTP/2 gRPC service, such as tonic's `Routes` for in-process
    /// calls.
    pub fn from_service<S, B>(service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Response = http::Response<B>>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        S::Error: Into<BoxError>,
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let service = tower::ServiceBuilder::new()
            .map_err(|e: S::Error| transport_status(e.into()))
            .map_response(|r: http::Response<B>| r.map(tonic::body::Body::new))
            .service(service);
        Self {
            service: BoxCloneSyncService::new(service),
        }
    }

    /// The boxed transport, for other generated clients (reflection, health).
    pub fn grpc_service(&self) -> GrpcService {
        self.service.clone()
    }

    /// Calls the unary method at `path` (`/package.Service/Method`), decoding the answer as
    /// `output`. Fails with the status the backend answered, or one tonic made from a
    /// transport failure.
    pub fn unary(
        &self,
        path: PathAndQuery,
        request: tonic::Request<DynamicMessage>,
        output: MessageDescriptor,
    ) -> BoxFuture<'static, Result<tonic::Response<DynamicMessage>, Status>> {
        let mut grpc = tonic::client::Grpc::new(self.service.clone());
        // Boxed as `Send` here, where the service type is concrete: left to inference inside
        // axum's handler bounds, rustc fails to prove the future `Send` (a higher-ranked
        // lifetime limitation with `dyn Error` conversions).
        Box::pin(async move {
            grpc.ready().await.map_err(|e| transport_status(e.into()))?;
            grpc.unary(request, path, DynamicCodec::new(output)).await
        })
    }

    /// Asks the backend's `grpc.health.v1.Health/Check` about the whole server.
    ///
    /// Fails with the status of the call (including `UNIMPLEMENTED` when the backend has no
    /// health service).
    pub fn health(&self) -> BoxFuture<'static, Result<ServingStatus, Status>> {
        let mut client = HealthClient::new(self.service.clone());
        Box::pin(async move {
            let response = client
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await?;
            Ok(response.into_inner().status())
        })
    }
}

/// A transport failure as a status: the code tonic would pick (`UNAVAILABLE` for a refused
/// connection, `CANCELLED` for tonic's own timeout), a generic message, the details logged.
fn transport_status(error: BoxError) -> Status {
    let status = match error.downcast::<Status>() {
        // Already a status (another layer mapped it): keep it.
        Ok(status) => return *status,
        Err(error) => {
            let status = Status::from_error(error);
            tracing::warn!(code = ?status.code(), error = %status, "backend transport failure");
            status
        }
    };
    let message = match status.code() {
        tonic::Code::Unavailable => "the backend is unavailable",
        tonic::Code::Cancelled => "the backend call was cancelled",
        _ => "the backend call failed",
    };
    Status::new(status.code(), message)
}

/// `google.rpc.Status`, as carried in the `grpc-status-details-bin` trailer. Declared here
/// because no dependency generates it and only its outer shape is needed.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

/// Turns a failed call's status into the gateway error, its details rendered as JSON: as the
/// message when `pool` knows the type, else as `{"@type", "value": base64}`.
pub fn status_error(status: Status, pool: &DescriptorPool, options: &SerializeOptions) -> Error {
    let details = decode_details(status.details(), pool, options);
    BackendError { status, details }.into()
}

fn decode_details(
    bytes: &[u8],
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> Vec<serde_json::Value> {
    if bytes.is_empty() {
        return Vec::new();
    }
    let Ok(status) = RpcStatus::decode(bytes) else {
        tracing::debug!("grpc-status-details-bin is not a google.rpc.Status; dropped");
        return Vec::new();
    };
    status
        .details
        .iter()
        .map(|any| any_json(any, pool, options))
        .collect()
}

fn any_json(
    any: &prost_types::Any,
    pool: &DescriptorPool,
    options: &SerializeOptions,
) -> serde_json::Value {
    let type_name = any.type_url.rsplit('/').next().unwrap_or_default();
    let decoded = pool
        .get_message_by_name(type_name)
        .and_then(|desc| DynamicMessage::decode(desc, any.value.as_slice()).ok())
        .and_then(|msg| {
            msg.serialize_with_options(serde_json::value::Serializer, options)
                .ok()
        });
    let mut object = serde_json::Map::new();
    object.insert("@type".to_owned(), any.type_url.clone().into());
    match decoded {
        Some(serde_json::Value::Object(fields)) => object.extend(fields),
        // Well-known types with a non-object JSON form nest it under "value", as proto3 JSON
        // does for `Any`.
        Some(other) => {
            object.insert("value".to_owned(), other);
        }
        None => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&any.value);
            object.insert("value".to_owned(), b64.into());
        }
    }
    serde_json::Value::Object(object)
}
