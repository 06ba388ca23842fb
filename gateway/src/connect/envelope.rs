//! Connect's stream framing: each message in an envelope of one flags byte (`0x01`: the
//! message is compressed; `0x02`: it is the end of the response stream) and a 4-byte
//! big-endian length. Close to gRPC's length prefix, but the end of a stream is a JSON message
//! of its own rather than HTTP trailers, which is what lets Connect stream over HTTP/1.1.
//!
//! The reader holds at most one envelope's bytes, and refuses one whose announced length is
//! over the limit before reading it, so a client cannot make the gateway buffer more than
//! the body limit per message.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

use crate::error::Error;

/// The flag of a compressed message.
pub(super) const COMPRESSED: u8 = 0x01;
/// The flag of the end-of-stream message.
pub(super) const END_STREAM: u8 = 0x02;

const PREFIX: usize = 5;

/// `payload` in an envelope with `flags`.
pub(super) fn frame(flags: u8, payload: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(PREFIX + payload.len());
    out.put_u8(flags);
    // A message over 4 GiB cannot come from a backend read within --max-response-bytes.
    out.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    out.put_slice(payload);
    out.freeze()
}

/// One envelope read from a request.
#[derive(Debug)]
pub(super) struct Envelope {
    pub(super) flags: u8,
    pub(super) payload: Bytes,
}

/// Cuts a request body into envelopes as its bytes arrive.
#[derive(Debug)]
pub(super) struct Reader {
    buffer: BytesMut,
    limit: usize,
}

impl Reader {
    /// A reader of envelopes of at most `limit` bytes each.
    pub(super) fn new(limit: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            limit,
        }
    }

    /// Takes in more of the body.
    pub(super) fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next whole envelope, if its bytes are in.
    ///
    /// # Errors
    /// [`Error::PayloadTooLarge`] for an envelope announcing more than the limit.
    pub(super) fn next(&mut self) -> Result<Option<Envelope>, Error> {
        let Some(prefix) = self.buffer.get(..PREFIX) else {
            return Ok(None);
        };
        let flags = prefix[0];
        let length = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]);
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > self.limit {
            return Err(Error::PayloadTooLarge { limit: self.limit });
        }
        if self.buffer.len() < PREFIX + length {
            // Room for the rest of it, once: the limit bounds it.
            self.buffer.reserve(PREFIX + length - self.buffer.len());
            return Ok(None);
        }
        self.buffer.advance(PREFIX);
        let payload = self.buffer.split_to(length).freeze();
        Ok(Some(Envelope { flags, payload }))
    }

    /// Whether bytes of an unfinished envelope are left (at the end of the body: truncated).
    pub(super) fn has_partial(&self) -> bool {
        !self.buffer.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_cut_however_the_bytes_arrive() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&frame(0, b"one"));
        wire.extend_from_slice(&frame(COMPRESSED, b""));
        wire.extend_from_slice(&frame(0, b"three"));
        let mut reader = Reader::new(16);
        let mut seen = Vec::new();
        for byte in wire {
            reader.push(&[byte]);
            while let Ok(Some(envelope)) = reader.next() {
                seen.push((envelope.flags, envelope.payload));
            }
        }
        assert_eq!(
            seen,
            [
                (0, Bytes::from_static(b"one")),
                (COMPRESSED, Bytes::new()),
                (0, Bytes::from_static(b"three"))
            ]
        );
        assert!(!reader.has_partial());
    }

    #[test]
    fn an_envelope_over_the_limit_is_refused_from_its_prefix() {
        let mut reader = Reader::new(4);
        reader.push(&[0, 0, 0, 0, 5]);
        assert!(matches!(
            reader.next(),
            Err(Error::PayloadTooLarge { limit: 4 })
        ));
    }
}
