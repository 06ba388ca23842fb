//! Tonic codecs for `prost_reflect::DynamicMessage`, so one generic client (and, in tests, one
//! generic server) can speak any method known only from its descriptors: [`DynamicCodec`];
//! [`RawCodec`], the gateway's client, which keeps each answer as its wire bytes (written as
//! JSON straight from them, `crate::transcode::wire`); and [`StreamCodec`] for request streams
//! that may have to be aborted.

use bytes::{Buf as _, Bytes};
use prost::Message;
use prost_reflect::{DynamicMessage, MessageDescriptor};
use tonic::{
    Status,
    codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

/// Encodes any `DynamicMessage` and decodes messages of one type.
#[derive(Debug, Clone)]
pub struct DynamicCodec {
    decode_as: MessageDescriptor,
}

impl DynamicCodec {
    /// A codec that decodes incoming messages as `decode_as` (the method's output type on a
    /// client, its input type on a server).
    pub fn new(decode_as: MessageDescriptor) -> Self {
        Self { decode_as }
    }
}

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.decode_as.clone())
    }
}

/// The encoding half of [`DynamicCodec`].
#[derive(Debug, Clone, Copy)]
pub struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the message failed: {e}")))
    }
}

/// The decoding half of [`DynamicCodec`].
#[derive(Debug, Clone)]
pub struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding {} failed: {e}", self.0.full_name())))
    }
}

/// Encodes any `DynamicMessage`; decodes nothing: each answer stays its bytes, whose type the
/// caller knows.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = DynamicMessage;
    type Decode = Bytes;
    type Encoder = DynamicEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// The decoding half of [`RawCodec`] and [`StreamCodec`]: the message's bytes, not copied
/// (tonic hands over a buffer of exactly one message).
#[derive(Debug, Clone, Copy)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Self::Error> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// A codec for a request stream that the gateway may have to abort (a bad message in the
/// middle of a client stream): an `Err` item fails its encoding, so the transport resets the
/// HTTP/2 stream with INTERNAL_ERROR. Dropping the call would reset it with CANCEL, which a
/// tonic server reads as the clean end of its request stream: the messages before the bad one
/// would pass for a complete request.
/// Its answers stay bytes, as [`RawCodec`]'s.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamCodec;

impl Codec for StreamCodec {
    type Encode = Result<DynamicMessage, Status>;
    type Decode = Bytes;
    type Encoder = StreamEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        StreamEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

/// The encoding half of [`StreamCodec`].
#[derive(Debug, Clone, Copy)]
pub struct StreamEncoder;

impl Encoder for StreamEncoder {
    type Item = Result<DynamicMessage, Status>;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Self::Error> {
        DynamicEncoder.encode(item?, dst)
    }
}
