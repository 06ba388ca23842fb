//! A rule violation as the `grpc-status-details-bin` a gRPC client reads: an encoded
//! `google.rpc.Status` whose one detail is a `google.rpc.BadRequest` listing each field.
//! The messages are declared here: the contract does not import `google/rpc`, so no generated
//! code exists for them, and only these fields are needed.

use articles_gateway::constraints::Violations;
use prost::Message;

/// `violations` as an encoded `google.rpc.Status` whose one detail is a `google.rpc.BadRequest`
/// listing them, for the `grpc-status-details-bin` trailer.
pub(crate) fn status_details(code: tonic::Code, message: &str, violations: &Violations) -> Vec<u8> {
    let bad_request = BadRequest {
        field_violations: violations
            .0
            .iter()
            .map(|v| FieldViolation {
                field: v.field.clone(),
                description: v.description.clone(),
            })
            .collect(),
    };
    RpcStatus {
        code: code as i32,
        message: message.to_owned(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/google.rpc.BadRequest".to_owned(),
            value: bad_request.encode_to_vec(),
        }],
    }
    .encode_to_vec()
}

// `google/rpc/status.proto` and `error_details.proto`, as far as used here: the contract does
// not import them, so no generated code exists for them.

#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
    #[prost(message, repeated, tag = "3")]
    details: Vec<prost_types::Any>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct BadRequest {
    #[prost(message, repeated, tag = "1")]
    field_violations: Vec<FieldViolation>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct FieldViolation {
    #[prost(string, tag = "1")]
    field: String,
    #[prost(string, tag = "2")]
    description: String,
}
