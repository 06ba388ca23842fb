//! Tonic codecs for `prost_reflect::DynamicMessage`, so one generic client (and, in tests, one
//! generic server) can speak any method known only from its descriptors: [`DynamicCodec`],
//! and [`StreamCodec`] for request streams that may have to be aborted.

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

/// A codec for a request stream that the gateway may have to abort (a bad message in the
/// middle of a client stream): an `Err` item fails its encoding, so the transport resets the
/// HTTP/2 stream with INTERNAL_ERROR. Dropping the call would reset it with CANCEL, which a
/// tonic server reads as the clean end of its request stream: the messages before the bad one
/// would pass for a complete request.
#[derive(Debug, Clone)]
pub struct StreamCodec {
    decode_as: MessageDescriptor,
}

impl StreamCodec {
    /// A codec decoding answers as `decode_as`.
    pub fn new(decode_as: MessageDescriptor) -> Self {
        Self { decode_as }
    }
}

impl Codec for StreamCodec {
    type Encode = Result<DynamicMessage, Status>;
    type Decode = DynamicMessage;
    type Encoder = StreamEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        StreamEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        DynamicDecoder(self.decode_as.clone())
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
