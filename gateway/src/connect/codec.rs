//! Connect's two codecs for protobuf (`proto`: the message's bytes as the backend reads them;
//! `json`: proto3 JSON, read and written as REST bodies are, with the gateway's JSON options),
//! and its one message compression beside `identity`: `gzip`, bounded when inflated.
//!
//! The backend is always called uncompressed and answers uncompressed (the gateway never offers
//! it `grpc-accept-encoding`), so compression is between the client and the gateway alone.

use std::io::{Read as _, Write as _};

use bytes::Bytes;
use prost_reflect::{DynamicMessage, MessageDescriptor};

use crate::{calls::Calls, error::Error, transcode};

/// A message codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    /// Binary protobuf.
    Proto,
    /// Canonical proto3 JSON.
    Json,
}

impl Codec {
    /// The codec of a name (`proto`, `json`), as a content type's suffix or GET's `encoding`.
    pub(super) fn named(name: &str) -> Option<Self> {
        match name {
            "proto" => Some(Self::Proto),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    /// The codec of a unary content type's essence (any case).
    pub(super) fn of_unary(essence: &str) -> Option<Self> {
        essence
            .to_ascii_lowercase()
            .strip_prefix("application/")
            .and_then(Self::named)
    }

    /// The codec of a streaming content type's essence (any case).
    pub(super) fn of_stream(essence: &str) -> Option<Self> {
        essence
            .to_ascii_lowercase()
            .strip_prefix("application/connect+")
            .and_then(Self::named)
    }

    /// A unary answer's content type.
    pub(super) fn unary_content_type(self) -> &'static str {
        match self {
            Self::Proto => "application/proto",
            Self::Json => "application/json",
        }
    }

    /// A stream answer's content type.
    pub(super) fn stream_content_type(self) -> &'static str {
        match self {
            Self::Proto => "application/connect+proto",
            Self::Json => "application/connect+json",
        }
    }

    /// A request message of type `input`.
    pub(super) fn decode(
        self,
        input: MessageDescriptor,
        bytes: &[u8],
        calls: &Calls,
    ) -> Result<DynamicMessage, Error> {
        match self {
            Self::Proto => DynamicMessage::decode(input.clone(), bytes).map_err(|e| {
                Error::InvalidArgument(format!(
                    "the request is not a valid {} message: {e}",
                    input.full_name()
                ))
            }),
            Self::Json => transcode::message_from_json(input, bytes, &calls.request),
        }
    }

    /// A response message of type `output` in this codec, from its wire bytes.
    pub(super) fn encode(
        self,
        output: &MessageDescriptor,
        wire: Bytes,
        calls: &Calls,
    ) -> Result<Bytes, Error> {
        match self {
            // The backend's bytes as they are: nothing to gain from decoding them.
            Self::Proto => Ok(wire),
            Self::Json => {
                let message =
                    transcode::decode(output, &wire).map_err(|e| Error::Internal(e.to_string()))?;
                transcode::to_json(&message, None, &calls.json.serialize_options())
                    .map(Bytes::from)
                    .map_err(|e| Error::Internal(e.to_string()))
            }
        }
    }
}

/// A message compression the gateway reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Compression {
    Identity,
    Gzip,
}

/// What the gateway names when it refuses an encoding, and offers in `*-Accept-Encoding`.
pub(super) const SUPPORTED: &str = "gzip";

impl Compression {
    /// The compression a `Connect-Content-Encoding` or GET's `compression` names (absent:
    /// identity).
    ///
    /// # Errors
    /// Connect's `unimplemented`, naming the supported ones, for any other.
    pub(super) fn named(name: Option<&str>) -> Result<Self, Error> {
        match name.map(str::trim) {
            None | Some("" | "identity") => Ok(Self::Identity),
            Some(name) if name.eq_ignore_ascii_case("gzip") => Ok(Self::Gzip),
            Some(other) => Err(Error::Unimplemented(format!(
                "unsupported compression {other:?}: supported are {SUPPORTED} and identity"
            ))),
        }
    }

    /// The preferred compression of an `*-Accept-Encoding` list the gateway supports.
    pub(super) fn accepted(list: Option<&str>) -> Self {
        let gzip = list.is_some_and(|list| {
            list.split(',').any(|item| {
                item.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .eq_ignore_ascii_case("gzip")
            })
        });
        if gzip { Self::Gzip } else { Self::Identity }
    }

    /// `data` inflated, at most `limit` bytes of it.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] past `limit`; [`Error::InvalidArgument`] for bytes that are
    /// not gzip.
    pub(super) fn decompress(self, data: Bytes, limit: usize) -> Result<Bytes, Error> {
        match self {
            Self::Identity => Ok(data),
            Self::Gzip => {
                let mut out = Vec::new();
                let reader = flate2::read::GzDecoder::new(&data[..]);
                // One byte past the limit tells "at the limit" from "over it".
                let taken = reader
                    .take(u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|e| Error::InvalidArgument(format!("invalid gzip data: {e}")))?;
                if taken > limit {
                    return Err(Error::PayloadTooLarge { limit });
                }
                Ok(Bytes::from(out))
            }
        }
    }

    /// `data` compressed.
    pub(super) fn compress(self, data: &[u8]) -> Bytes {
        match self {
            Self::Identity => Bytes::copy_from_slice(data),
            Self::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                // Writing to a Vec cannot fail.
                let _ = encoder.write_all(data);
                Bytes::from(encoder.finish().unwrap_or_default())
            }
        }
    }

    /// Its name in headers.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Gzip => "gzip",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_inflated_within_the_limit_only() {
        let data = vec![b'a'; 10_000];
        let packed = Compression::Gzip.compress(&data);
        assert!(packed.len() < 200);
        assert_eq!(
            Compression::Gzip
                .decompress(packed.clone(), 10_000)
                .ok()
                .map(|b| b.len()),
            Some(10_000)
        );
        assert!(matches!(
            Compression::Gzip.decompress(packed, 9_999),
            Err(Error::PayloadTooLarge { limit: 9_999 })
        ));
        assert!(
            Compression::Gzip
                .decompress(Bytes::from_static(b"not gzip"), 10)
                .is_err()
        );
    }

    #[test]
    fn codecs_come_from_content_types() {
        assert_eq!(Codec::of_unary("application/json"), Some(Codec::Json));
        assert_eq!(Codec::of_unary("application/proto"), Some(Codec::Proto));
        assert_eq!(
            Codec::of_stream("application/connect+proto"),
            Some(Codec::Proto)
        );
        assert_eq!(Codec::of_stream("application/connect+thrift"), None);
        assert_eq!(Compression::accepted(Some("br, gzip")), Compression::Gzip);
        assert_eq!(Compression::accepted(Some("br")), Compression::Identity);
        assert_eq!(Compression::accepted(None), Compression::Identity);
    }
}
