//! Response messages written as proto3 JSON straight from their protobuf wire bytes, by a
//! [`Plan`] compiled from the descriptors at start.
//!
//! Hand-written because no crate does it: prost-reflect reads the bytes into a
//! `DynamicMessage` (a map of boxed values, one allocation per string and per message) and
//! then serializes that through serde, which was about a fifth of the gateway's instructions per
//! request. Here a message is read once: its fields are located on the wire (a short list of
//! spans), then written in field-number order, each value decoded from its span as it is
//! written.
//!
//! The bytes written are prost-reflect's, byte for byte (the tests compare both on generated
//! messages, canonical and not): fields in number order, last value wins for a scalar and
//! for a oneof, packed and unpacked lists both read, unknown fields skipped, defaults written
//! or not as [`Options`] say. What this does not cover is handed back as [`Fallback`] and the
//! caller decodes a `DynamicMessage` as before: `Any`, `Struct`, `Value`, `ListValue`,
//! `FieldMask`, groups and extensions, a singular message sent twice (its parts must be
//! merged), timestamps and durations out of range, and anything malformed (prost-reflect then
//! gives the error).

mod escape;
mod plan;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use prost::encoding::decode_varint;

pub use plan::{Plan, Plans, PlansBuilder};

use plan::{
    Cardinality, EnumPlan, FIXED32, FIXED64, FieldPlan, Fields, LEN, Scalar, Shape, VARINT, Value,
};

/// How the JSON is written: the same choices as prost-reflect's `SerializeOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Proto field names (`create_time`) rather than JSON names (`createTime`).
    pub proto_names: bool,
    /// Fields without presence written even at their default value.
    pub emit_defaults: bool,
    /// Enums as numbers rather than names.
    pub enum_numbers: bool,
    /// 64-bit integers as strings.
    pub stringify_64: bool,
}

/// The message is one the plan leaves to prost-reflect (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fallback;

/// How deep messages nest before the slow path (and its recursion limit) takes over.
const MAX_DEPTH: usize = 100;

/// Appends the JSON of the message `bytes` encode.
///
/// # Errors
/// [`Fallback`] when the message needs prost-reflect; `out` then holds a partial write.
pub fn write(
    plan: &Plan,
    bytes: &[u8],
    options: &Options,
    out: &mut Vec<u8>,
) -> Result<(), Fallback> {
    Writer {
        plans: &plan.plans,
        options,
        spans: Vec::new(),
        winners: Vec::new(),
    }
    .message(plan.root, bytes, out, 0)
}

/// Appends the JSON of one field of the message `bytes` encode (a rule's `response_body`): a
/// singular message field's message (its defaults when absent), or a repeated message field's
/// list. Other kinds of field are left to prost-reflect.
///
/// # Errors
/// [`Fallback`] as for [`write`].
pub fn write_field(
    plan: &Plan,
    number: u32,
    bytes: &[u8],
    options: &Options,
    out: &mut Vec<u8>,
) -> Result<(), Fallback> {
    let mut writer = Writer {
        plans: &plan.plans,
        options,
        spans: Vec::new(),
        winners: Vec::new(),
    };
    let Shape::Fields(fields) = &writer.plans.messages[plan.root].shape else {
        return Err(Fallback);
    };
    let index = fields.find(number).ok_or(Fallback)?;
    let field = &fields.fields[index];
    // A oneof member's value depends on which member came last: left to prost-reflect.
    let (Value::Message(inner), cardinality, None) = (field.value, field.cardinality, field.oneof)
    else {
        return Err(Fallback);
    };
    writer.scan(fields, bytes)?;
    let spans = std::mem::take(&mut writer.spans);
    let mut matching = spans.iter().filter(|s| s.field as usize == index);
    match cardinality {
        Cardinality::Single => match (matching.next(), matching.next()) {
            (None, _) => writer.message(inner, &[], out, 1),
            (Some(span), None) => writer.message(inner, &bytes[span.range()], out, 1),
            (Some(_), Some(_)) => Err(Fallback),
        },
        Cardinality::List => {
            out.push(b'[');
            for (i, span) in matching.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                writer.message(inner, &bytes[span.range()], out, 1)?;
            }
            out.push(b']');
            Ok(())
        }
        Cardinality::Map { .. } => Err(Fallback),
    }
}

/// Where one field's value lies in a message's bytes.
#[derive(Debug, Clone, Copy)]
struct Span {
    /// Index in the message plan's fields.
    field: u32,
    wire_type: u8,
    start: u32,
    end: u32,
}

impl Span {
    fn range(&self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

struct Writer<'a> {
    plans: &'a Plans,
    options: &'a Options,
    /// The spans of the messages being written, innermost last (a stack, reused).
    spans: Vec<Span>,
    /// Each open message's oneofs: the field that was set last (a stack, reused).
    winners: Vec<u32>,
}

impl Writer<'_> {
    fn message(
        &mut self,
        index: usize,
        bytes: &[u8],
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Fallback> {
        if depth > MAX_DEPTH {
            return Err(Fallback);
        }
        let plans = self.plans;
        match &plans.messages[index].shape {
            Shape::Fields(fields) => self.fields(fields, bytes, out, depth),
            Shape::Wrapper(scalar) => {
                let value = last_field(bytes, 1, scalar.wire_type())?;
                match value {
                    Some(value) => self.scalar(*scalar, value, out),
                    None => {
                        scalar_default(*scalar, self.options, out);
                        Ok(())
                    }
                }
            }
            Shape::Timestamp => timestamp(bytes, out),
            Shape::Duration => duration(bytes, out),
            Shape::Empty => {
                out.extend_from_slice(b"{}");
                Ok(())
            }
            Shape::Unsupported => Err(Fallback),
        }
    }

    /// Pushes the spans of `bytes`' known fields, and its oneof winners, on the stacks.
    fn scan(&mut self, fields: &Fields, bytes: &[u8]) -> Result<(), Fallback> {
        let len = u32::try_from(bytes.len()).map_err(|_| Fallback)?;
        let winners = self.winners.len();
        self.winners.resize(winners + fields.oneofs, plan::NO_FIELD);
        let mut rest = bytes;
        while !rest.is_empty() {
            let key = decode_varint(&mut rest).map_err(|_| Fallback)?;
            let wire_type = (key & 7) as u8;
            let number = u32::try_from(key >> 3).map_err(|_| Fallback)?;
            let value = take_value(wire_type, &mut rest)?;
            // The value ends where the rest begins; both fit in `len`.
            let end = len - rest.len() as u32;
            let start = end - value.len() as u32;
            self.push(fields, number, wire_type, start, end, winners)?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        fields: &Fields,
        number: u32,
        wire_type: u8,
        start: u32,
        end: u32,
        winners: usize,
    ) -> Result<(), Fallback> {
        let Some(index) = fields.find(number) else {
            return Ok(());
        };
        let field = &fields.fields[index];
        let expected = match field.value {
            Value::Scalar(scalar) => scalar.wire_type(),
            Value::Enum(_) => VARINT,
            Value::Message(_) => LEN,
        };
        let packed =
            matches!(field.cardinality, Cardinality::List) && wire_type == LEN && expected != LEN;
        if wire_type != expected && !packed {
            return Err(Fallback);
        }
        if let Some(oneof) = field.oneof {
            self.winners[winners + oneof] = index as u32;
        }
        self.spans.push(Span {
            field: index as u32,
            wire_type,
            start,
            end,
        });
        Ok(())
    }

    fn fields(
        &mut self,
        fields: &Fields,
        bytes: &[u8],
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Fallback> {
        let base = self.spans.len();
        let winners = self.winners.len();
        self.scan(fields, bytes)?;
        // Stable, so each field's spans stay in wire order; usually already sorted.
        if !self.spans[base..].is_sorted_by_key(|s| s.field) {
            self.spans[base..].sort_by_key(|s| s.field);
        }
        let top = self.spans.len();
        let options = *self.options;
        out.push(b'{');
        let mut first = true;
        let mut at = base;
        for (index, field) in fields.fields.iter().enumerate() {
            let from = at;
            while at < top && self.spans[at].field as usize == index {
                at += 1;
            }
            let (from, to) = (from, at);
            if let Some(oneof) = field.oneof
                && self.winners[winners + oneof] != index as u32
            {
                continue;
            }
            let key = if options.proto_names {
                &field.proto_key
            } else {
                &field.json_key
            };
            match field.cardinality {
                Cardinality::Single => {
                    if from == to {
                        if field.presence || !options.emit_defaults {
                            continue;
                        }
                        open(&mut first, key, out);
                        self.default(field, out);
                        continue;
                    }
                    let span = self.spans[to - 1];
                    let value = &bytes[span.range()];
                    if let Value::Message(inner) = field.value {
                        if to - from > 1 {
                            return Err(Fallback);
                        }
                        open(&mut first, key, out);
                        self.message(inner, value, out, depth + 1)?;
                        continue;
                    }
                    if !field.presence && !options.emit_defaults && self.is_default(field, value)? {
                        continue;
                    }
                    open(&mut first, key, out);
                    self.value(field.value, value, out)?;
                }
                Cardinality::List => {
                    let empty = (from..to).all(|i| {
                        self.spans[i].start == self.spans[i].end && is_packed(field, &self.spans[i])
                    });
                    if empty && !options.emit_defaults {
                        continue;
                    }
                    open(&mut first, key, out);
                    out.push(b'[');
                    let mut first_item = true;
                    for i in from..to {
                        let span = self.spans[i];
                        let value = &bytes[span.range()];
                        if is_packed(field, &span) {
                            self.packed(field.value, value, &mut first_item, out)?;
                        } else {
                            if !first_item {
                                out.push(b',');
                            }
                            first_item = false;
                            match field.value {
                                Value::Message(inner) => {
                                    self.message(inner, value, out, depth + 1)?;
                                }
                                other => self.value(other, value, out)?,
                            }
                        }
                    }
                    out.push(b']');
                }
                Cardinality::Map {
                    key: key_kind,
                    value: value_kind,
                } => {
                    if from == to && !options.emit_defaults {
                        continue;
                    }
                    open(&mut first, key, out);
                    let entries: Vec<Span> = self.spans[from..to].to_vec();
                    self.map(key_kind, value_kind, &entries, bytes, out, depth)?;
                }
            }
        }
        out.push(b'}');
        self.spans.truncate(base);
        self.winners.truncate(winners);
        Ok(())
    }

    /// A map's entries: each key once, with its last value (prost-reflect's order is a hash
    /// map's, so any order is as good; this one is the keys' first appearance).
    fn map(
        &mut self,
        key_kind: Scalar,
        value_kind: Value,
        entries: &[Span],
        bytes: &[u8],
        out: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), Fallback> {
        let value_wire = match value_kind {
            Value::Scalar(scalar) => scalar.wire_type(),
            Value::Enum(_) => VARINT,
            Value::Message(_) => LEN,
        };
        let mut rendered: Vec<(Vec<u8>, Option<&[u8]>)> = Vec::with_capacity(entries.len());
        let mut seen = std::collections::HashMap::new();
        for span in entries {
            let entry = &bytes[span.range()];
            let key = last_field(entry, 1, key_kind.wire_type())?;
            let value = last_field(entry, 2, value_wire)?;
            let mut text = Vec::new();
            self.map_key(key_kind, key, &mut text)?;
            match seen.get(&text) {
                Some(&i) => {
                    let slot: &mut (Vec<u8>, Option<&[u8]>) = &mut rendered[i];
                    slot.1 = value;
                }
                None => {
                    seen.insert(text.clone(), rendered.len());
                    rendered.push((text, value));
                }
            }
        }
        out.push(b'{');
        for (i, (key, value)) in rendered.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(key);
            out.push(b':');
            match (value_kind, value) {
                (Value::Message(inner), value) => {
                    self.message(inner, value.unwrap_or_default(), out, depth + 1)?;
                }
                (other, Some(value)) => self.value(other, value, out)?,
                (Value::Scalar(scalar), None) => scalar_default(scalar, self.options, out),
                (Value::Enum(e), None) => {
                    self.enum_value(&self.plans.enums[e], self.plans.enums[e].default, out);
                }
            }
        }
        out.push(b'}');
        Ok(())
    }

    fn map_key(&self, kind: Scalar, key: Option<&[u8]>, out: &mut Vec<u8>) -> Result<(), Fallback> {
        if kind == Scalar::String {
            let text = std::str::from_utf8(key.unwrap_or_default()).map_err(|_| Fallback)?;
            escape::string(text, out);
            return Ok(());
        }
        // Every other key kind is written as its number (or `true`) in quotes.
        out.push(b'"');
        let options = Options {
            stringify_64: false,
            ..*self.options
        };
        match key {
            Some(key) => self.scalar_with(kind, key, &options, out)?,
            None => scalar_default(kind, &options, out),
        }
        out.push(b'"');
        Ok(())
    }

    fn packed(
        &self,
        value: Value,
        mut bytes: &[u8],
        first: &mut bool,
        out: &mut Vec<u8>,
    ) -> Result<(), Fallback> {
        let wire = match value {
            Value::Scalar(scalar) => scalar.wire_type(),
            Value::Enum(_) => VARINT,
            Value::Message(_) => return Err(Fallback),
        };
        while !bytes.is_empty() {
            // A packed run holds varints or fixed-size values, never lengths.
            if wire == LEN {
                return Err(Fallback);
            }
            let item = take_value(wire, &mut bytes)?;
            if !*first {
                out.push(b',');
            }
            *first = false;
            self.value(value, item, out)?;
        }
        Ok(())
    }

    fn value(&self, value: Value, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Fallback> {
        match value {
            Value::Scalar(scalar) => self.scalar(scalar, bytes, out),
            Value::Enum(e) => {
                let number = varint(bytes)? as i32;
                self.enum_value(&self.plans.enums[e], number, out);
                Ok(())
            }
            // Messages are written by the caller, which knows the depth.
            Value::Message(_) => Err(Fallback),
        }
    }

    fn enum_value(&self, plan: &EnumPlan, number: i32, out: &mut Vec<u8>) {
        if plan.null {
            out.extend_from_slice(b"null");
        } else if self.options.enum_numbers {
            out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
        } else if let Some(name) = plan.name(number) {
            out.extend_from_slice(name);
        } else {
            out.extend_from_slice(itoa::Buffer::new().format(number).as_bytes());
        }
    }

    fn scalar(&self, scalar: Scalar, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Fallback> {
        self.scalar_with(scalar, bytes, self.options, out)
    }

    fn scalar_with(
        &self,
        scalar: Scalar,
        bytes: &[u8],
        options: &Options,
        out: &mut Vec<u8>,
    ) -> Result<(), Fallback> {
        let mut numbers = itoa::Buffer::new();
        match scalar {
            Scalar::Int32 => {
                out.extend_from_slice(numbers.format(varint(bytes)? as i32).as_bytes());
            }
            Scalar::Uint32 => {
                out.extend_from_slice(numbers.format(varint(bytes)? as u32).as_bytes());
            }
            Scalar::Sint32 => {
                let raw = varint(bytes)? as u32;
                let value = ((raw >> 1) as i32) ^ -((raw & 1) as i32);
                out.extend_from_slice(numbers.format(value).as_bytes());
            }
            Scalar::Fixed32 => {
                out.extend_from_slice(numbers.format(u32::from_le_bytes(fixed(bytes)?)).as_bytes());
            }
            Scalar::Sfixed32 => {
                out.extend_from_slice(numbers.format(i32::from_le_bytes(fixed(bytes)?)).as_bytes());
            }
            Scalar::Int64 => wide(numbers.format(varint(bytes)? as i64), options, out),
            Scalar::Uint64 => wide(numbers.format(varint(bytes)?), options, out),
            Scalar::Sint64 => {
                let raw = varint(bytes)?;
                let value = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
                wide(numbers.format(value), options, out);
            }
            Scalar::Fixed64 => wide(
                numbers.format(u64::from_le_bytes(fixed(bytes)?)),
                options,
                out,
            ),
            Scalar::Sfixed64 => wide(
                numbers.format(i64::from_le_bytes(fixed(bytes)?)),
                options,
                out,
            ),
            Scalar::Bool => out.extend_from_slice(if varint(bytes)? != 0 {
                b"true"
            } else {
                b"false"
            }),
            Scalar::Float => {
                let single = f32::from_le_bytes(fixed(bytes)?);
                float(f64::from(single), Some(single), out);
            }
            Scalar::Double => float(f64::from_le_bytes(fixed(bytes)?), None, out),
            Scalar::String => {
                let text = std::str::from_utf8(bytes).map_err(|_| Fallback)?;
                escape::string(text, out);
            }
            Scalar::Bytes => {
                out.push(b'"');
                let at = out.len();
                let size = base64::encoded_len(bytes.len(), true).ok_or(Fallback)?;
                out.resize(at + size, 0);
                base64::engine::general_purpose::STANDARD
                    .encode_slice(bytes, &mut out[at..])
                    .map_err(|_| Fallback)?;
                out.push(b'"');
            }
        }
        Ok(())
    }

    /// Whether a field without presence holds its default (then it is not written).
    fn is_default(&self, field: &FieldPlan, bytes: &[u8]) -> Result<bool, Fallback> {
        Ok(match field.value {
            Value::Scalar(Scalar::Float) => f32::from_le_bytes(fixed(bytes)?) == 0.0,
            Value::Scalar(Scalar::Double) => f64::from_le_bytes(fixed(bytes)?) == 0.0,
            Value::Scalar(Scalar::Fixed32 | Scalar::Sfixed32) => fixed::<4>(bytes)? == [0; 4],
            Value::Scalar(Scalar::Fixed64 | Scalar::Sfixed64) => fixed::<8>(bytes)? == [0; 8],
            Value::Scalar(Scalar::String | Scalar::Bytes) => bytes.is_empty(),
            // 32-bit kinds compare their truncated value, as the decoded value would.
            Value::Scalar(Scalar::Int32 | Scalar::Uint32 | Scalar::Sint32) => {
                varint(bytes)? as u32 == 0
            }
            Value::Scalar(_) => varint(bytes)? == 0,
            Value::Enum(e) => varint(bytes)? as i32 == self.plans.enums[e].default,
            Value::Message(_) => false,
        })
    }

    /// The default value of an unset field without presence.
    fn default(&self, field: &FieldPlan, out: &mut Vec<u8>) {
        match field.value {
            Value::Scalar(scalar) => scalar_default(scalar, self.options, out),
            Value::Enum(e) => {
                self.enum_value(&self.plans.enums[e], self.plans.enums[e].default, out);
            }
            // Message fields have presence: never written when unset.
            Value::Message(_) => out.extend_from_slice(b"null"),
        }
    }
}

fn open(first: &mut bool, key: &[u8], out: &mut Vec<u8>) {
    if !*first {
        out.push(b',');
    }
    *first = false;
    out.extend_from_slice(key);
}

fn is_packed(field: &FieldPlan, span: &Span) -> bool {
    span.wire_type == LEN
        && !matches!(
            field.value,
            Value::Message(_) | Value::Scalar(Scalar::String | Scalar::Bytes)
        )
}

fn scalar_default(scalar: Scalar, options: &Options, out: &mut Vec<u8>) {
    out.extend_from_slice(match scalar {
        Scalar::Int64 | Scalar::Uint64 | Scalar::Sint64 | Scalar::Fixed64 | Scalar::Sfixed64
            if options.stringify_64 =>
        {
            b"\"0\""
        }
        Scalar::Double | Scalar::Float => b"0.0",
        Scalar::Bool => b"false",
        Scalar::String | Scalar::Bytes => b"\"\"",
        _ => b"0",
    });
}

fn wide(digits: &str, options: &Options, out: &mut Vec<u8>) {
    if options.stringify_64 {
        out.push(b'"');
        out.extend_from_slice(digits.as_bytes());
        out.push(b'"');
    } else {
        out.extend_from_slice(digits.as_bytes());
    }
}

/// A float as serde_json writes it (its shortest round-trip form), and the non-finite values
/// as proto3 JSON's strings.
fn float(value: f64, single: Option<f32>, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if value == f64::INFINITY {
        out.extend_from_slice(b"\"Infinity\"");
    } else if value == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-Infinity\"");
    } else {
        // Writing a finite number into a Vec cannot fail.
        let _ = match single {
            Some(single) => serde_json::to_writer(&mut *out, &single),
            None => serde_json::to_writer(&mut *out, &value),
        };
    }
}

fn varint(mut bytes: &[u8]) -> Result<u64, Fallback> {
    decode_varint(&mut bytes).map_err(|_| Fallback)
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], Fallback> {
    bytes.try_into().map_err(|_| Fallback)
}

/// Takes one value of wire type `wire` off the front of `rest`: a varint's bytes, a fixed
/// value's, or a length-delimited value's payload. Groups and unknown wire types fall back.
fn take_value<'a>(wire: u8, rest: &mut &'a [u8]) -> Result<&'a [u8], Fallback> {
    let size = match wire {
        VARINT => {
            let before = *rest;
            decode_varint(rest).map_err(|_| Fallback)?;
            return Ok(&before[..before.len() - rest.len()]);
        }
        FIXED64 => 8,
        FIXED32 => 4,
        LEN => usize::try_from(decode_varint(rest).map_err(|_| Fallback)?).map_err(|_| Fallback)?,
        _ => return Err(Fallback),
    };
    let (value, tail) = rest.split_at_checked(size).ok_or(Fallback)?;
    *rest = tail;
    Ok(value)
}

/// The last value of field `number` in a small message (a map entry, a wrapper, a timestamp),
/// checked against the wire type it must have.
fn last_field(bytes: &[u8], number: u64, wire_type: u8) -> Result<Option<&[u8]>, Fallback> {
    let mut rest = bytes;
    let mut found = None;
    while !rest.is_empty() {
        let key = decode_varint(&mut rest).map_err(|_| Fallback)?;
        let wire = (key & 7) as u8;
        let value = take_value(wire, &mut rest)?;
        if key >> 3 == number {
            if wire != wire_type {
                return Err(Fallback);
            }
            found = Some(value);
        }
    }
    Ok(found)
}

/// `seconds` (1) and `nanos` (2) of a Timestamp or Duration.
fn seconds_nanos(bytes: &[u8]) -> Result<(i64, i32), Fallback> {
    let seconds = last_field(bytes, 1, VARINT)?
        .map(varint)
        .transpose()?
        .unwrap_or(0) as i64;
    let nanos = last_field(bytes, 2, VARINT)?
        .map(varint)
        .transpose()?
        .unwrap_or(0) as i32;
    Ok((seconds, nanos))
}

fn timestamp(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Fallback> {
    // RFC 3339's years 1 to 9999, as prost-reflect checks.
    const MIN: i64 = -62_135_596_800;
    const MAX: i64 = 253_402_300_799;
    let (seconds, nanos) = seconds_nanos(bytes)?;
    if !(MIN..=MAX).contains(&seconds) {
        return Err(Fallback);
    }
    write_display(&prost_types::Timestamp { seconds, nanos }, out);
    Ok(())
}

fn duration(bytes: &[u8], out: &mut Vec<u8>) -> Result<(), Fallback> {
    const MAX_SECONDS: u64 = 315_576_000_000;
    const MAX_NANOS: u32 = 999_999_999;
    let (seconds, nanos) = seconds_nanos(bytes)?;
    if seconds.unsigned_abs() > MAX_SECONDS || nanos.unsigned_abs() > MAX_NANOS {
        return Err(Fallback);
    }
    write_display(&prost_types::Duration { seconds, nanos }, out);
    Ok(())
}

/// A value's `Display` as a JSON string (timestamps and durations need no escaping).
fn write_display(value: &impl std::fmt::Display, out: &mut Vec<u8>) {
    use std::io::Write as _;
    out.push(b'"');
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{value}");
    out.push(b'"');
}
