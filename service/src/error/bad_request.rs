//! A rule violation as the `grpc-status-details-bin` a gRPC client reads: an encoded
//! `google.rpc.Status` whose one detail is a `google.rpc.BadRequest` listing each field, built
//! with `tonic-types` (the contract does not import `google/rpc`).

use articles_gateway::constraints::Violations;
use tonic_types::{ErrorDetails, FieldViolation, StatusExt as _};

/// `violations` as an encoded `google.rpc.Status` whose one detail is a `google.rpc.BadRequest`
/// listing them, for the `grpc-status-details-bin` trailer.
pub(crate) fn status_details(code: tonic::Code, message: &str, violations: &Violations) -> Vec<u8> {
    let details = ErrorDetails::with_bad_request(
        violations
            .0
            .iter()
            .map(|v| FieldViolation::new(v.field.clone(), v.description.clone()))
            .collect::<Vec<_>>(),
    );
    tonic::Status::with_error_details(code, message, details)
        .details()
        .to_vec()
}
