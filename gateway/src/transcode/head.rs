//! A check of a request's head alone, once its route (so its method) is known and before a
//! byte of its body is read or decompressed.
//!
//! Only what embeds the gateway knows which requests its backend will refuse from their
//! headers (a write without a valid token, say). Without telling the gateway, such a request
//! has its body read, decompressed (a compression bomb costs up to `--body-limit`), parsed and
//! encoded, only for the backend to refuse it from the same headers. A [`HeadCheck`] refuses
//! it first, with the status the backend would have answered. The backend must still check:
//! its gRPC callers do not come through here.

use std::{fmt, sync::Arc};

use http::HeaderMap;
use prost_reflect::MethodDescriptor;

use crate::error::{BackendError, Error};

/// The check's signature: the method the route calls and the request's headers; an `Err` is
/// answered as if the backend had answered it.
type Check = dyn Fn(&MethodDescriptor, &HeaderMap) -> Result<(), tonic::Status> + Send + Sync;

/// A check of a request's head before its body is read ([`crate::GatewayBuilder::head_check`]).
#[derive(Clone)]
pub struct HeadCheck(Arc<Check>);

impl fmt::Debug for HeadCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeadCheck")
    }
}

impl HeadCheck {
    /// Wraps `check`.
    pub fn new(
        check: impl Fn(&MethodDescriptor, &HeaderMap) -> Result<(), tonic::Status>
        + Send
        + Sync
        + 'static,
    ) -> Self {
        Self(Arc::new(check))
    }

    /// Runs the check.
    ///
    /// # Errors
    /// The refusal, as the backend's status would be answered (its code mapped by the one
    /// table in [`crate::error`]).
    pub fn run(&self, method: &MethodDescriptor, headers: &HeaderMap) -> Result<(), Error> {
        (self.0)(method, headers).map_err(|status| {
            BackendError {
                code: status.code(),
                message: status.message().to_owned(),
                details: Vec::new(),
                headers: HeaderMap::new(),
                trailers: HeaderMap::new(),
            }
            .into()
        })
    }
}
