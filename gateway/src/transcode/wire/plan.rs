//! Plans: each message type a route can answer with, compiled once from its descriptor into
//! what writing it needs (its fields by number, each with its JSON keys already rendered, its
//! kind, its presence and its oneof), so writing a message looks nothing up in the pool.
//!
//! Types are compiled once per [`Plans`] however many routes answer with them, and recursive
//! types point at themselves by index.

use std::{collections::HashMap, sync::Arc};

use prost_reflect::{EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor};

/// Every compiled type of a route table.
#[derive(Debug, Default)]
pub struct Plans {
    pub(super) messages: Vec<MessagePlan>,
    pub(super) enums: Vec<EnumPlan>,
}

/// How to write one message type: a handle on the shared [`Plans`].
#[derive(Debug, Clone)]
pub struct Plan {
    pub(super) plans: Arc<Plans>,
    pub(super) root: usize,
}

/// Compiles types into one [`Plans`], each type once.
#[derive(Debug, Default)]
pub struct PlansBuilder {
    plans: Plans,
    messages: HashMap<String, usize>,
    enums: HashMap<String, usize>,
}

impl PlansBuilder {
    /// The index of `message`'s plan, compiled (with every type it reaches) if new.
    pub fn add(&mut self, message: &MessageDescriptor) -> usize {
        if let Some(&index) = self.messages.get(message.full_name()) {
            return index;
        }
        let index = self.plans.messages.len();
        // Reserved before the fields are compiled, so a field of this very type finds it.
        self.plans.messages.push(MessagePlan {
            shape: Shape::Unsupported,
        });
        self.messages.insert(message.full_name().to_owned(), index);
        let shape = self.shape(message);
        self.plans.messages[index].shape = shape;
        index
    }

    /// Every plan compiled so far, to hand out as [`Plan`]s.
    pub fn finish(self) -> Arc<Plans> {
        Arc::new(self.plans)
    }

    fn shape(&mut self, message: &MessageDescriptor) -> Shape {
        match message.full_name() {
            "google.protobuf.Timestamp" => return Shape::Timestamp,
            "google.protobuf.Duration" => return Shape::Duration,
            "google.protobuf.Empty" => return Shape::Empty,
            "google.protobuf.DoubleValue" => return Shape::Wrapper(Scalar::Double),
            "google.protobuf.FloatValue" => return Shape::Wrapper(Scalar::Float),
            "google.protobuf.Int64Value" => return Shape::Wrapper(Scalar::Int64),
            "google.protobuf.UInt64Value" => return Shape::Wrapper(Scalar::Uint64),
            "google.protobuf.Int32Value" => return Shape::Wrapper(Scalar::Int32),
            "google.protobuf.UInt32Value" => return Shape::Wrapper(Scalar::Uint32),
            "google.protobuf.BoolValue" => return Shape::Wrapper(Scalar::Bool),
            "google.protobuf.StringValue" => return Shape::Wrapper(Scalar::String),
            "google.protobuf.BytesValue" => return Shape::Wrapper(Scalar::Bytes),
            // Any needs the pool at write time, Struct, Value and ListValue have rules of
            // their own (non-finite numbers are errors), FieldMask renames its paths: rare in
            // answers, so they stay prost-reflect's.
            "google.protobuf.Any"
            | "google.protobuf.Struct"
            | "google.protobuf.Value"
            | "google.protobuf.ListValue"
            | "google.protobuf.FieldMask" => return Shape::Unsupported,
            _ => {}
        }
        // Extensions are written after the fields by prost-reflect; groups have a wire form
        // of their own.
        if message.extensions().len() > 0 || message.fields().any(|f| f.is_group()) {
            return Shape::Unsupported;
        }
        let mut oneofs = HashMap::new();
        let mut fields: Vec<FieldPlan> = message
            .fields()
            .map(|field| {
                let oneof = field.containing_oneof().map(|o| {
                    let next = oneofs.len();
                    *oneofs.entry(o.full_name().to_owned()).or_insert(next)
                });
                self.field(&field, oneof)
            })
            .collect();
        fields.sort_by_key(|f| f.number);
        let max = fields.last().map_or(0, |f| f.number);
        let direct = (max <= DIRECT_LOOKUP_MAX).then(|| {
            let mut slots = vec![NO_FIELD; max as usize + 1];
            for (index, field) in fields.iter().enumerate() {
                slots[field.number as usize] = index as u32;
            }
            slots.into_boxed_slice()
        });
        Shape::Fields(Fields {
            fields: fields.into_boxed_slice(),
            direct,
            oneofs: oneofs.len(),
        })
    }

    fn field(&mut self, field: &FieldDescriptor, oneof: Option<usize>) -> FieldPlan {
        let cardinality = if field.is_map() {
            match field.kind() {
                Kind::Message(entry) => {
                    let key = match scalar(&entry.map_entry_key_field().kind()) {
                        Some(key) => key,
                        // Map keys are integral, bool or string: the pool checked it.
                        None => Scalar::String,
                    };
                    let value = self.value(&entry.map_entry_value_field().kind());
                    Cardinality::Map { key, value }
                }
                _ => Cardinality::Single,
            }
        } else if field.is_list() {
            Cardinality::List
        } else {
            Cardinality::Single
        };
        FieldPlan {
            number: field.number(),
            proto_key: key(field.name()),
            json_key: key(field.json_name()),
            value: self.value(&field.kind()),
            cardinality,
            presence: field.supports_presence(),
            oneof,
        }
    }

    fn value(&mut self, kind: &Kind) -> Value {
        match kind {
            Kind::Message(message) => Value::Message(self.add(message)),
            Kind::Enum(e) => Value::Enum(self.add_enum(e)),
            other => Value::Scalar(scalar(other).unwrap_or(Scalar::Bytes)),
        }
    }

    fn add_enum(&mut self, e: &EnumDescriptor) -> usize {
        if let Some(&index) = self.enums.get(e.full_name()) {
            return index;
        }
        let mut names: Vec<(i32, Box<[u8]>)> = Vec::new();
        // With aliases, a number's last name is the one written (as prost-reflect does).
        for value in e.values() {
            match names.iter_mut().find(|(n, _)| *n == value.number()) {
                Some(slot) => slot.1 = quoted(value.name()),
                None => names.push((value.number(), quoted(value.name()))),
            }
        }
        names.sort_by_key(|(n, _)| *n);
        let index = self.plans.enums.len();
        self.plans.enums.push(EnumPlan {
            names: names.into_boxed_slice(),
            null: e.full_name() == "google.protobuf.NullValue",
            default: e.default_value().number(),
        });
        self.enums.insert(e.full_name().to_owned(), index);
        index
    }
}

impl Plans {
    /// A handle writing the type at `index` (from [`PlansBuilder::add`]).
    pub fn plan(self: &Arc<Self>, index: usize) -> Plan {
        Plan {
            plans: Arc::clone(self),
            root: index,
        }
    }
}

/// Field numbers up to this are found by index; larger ones by binary search.
const DIRECT_LOOKUP_MAX: u32 = 255;
pub(super) const NO_FIELD: u32 = u32::MAX;

#[derive(Debug)]
pub(super) struct MessagePlan {
    pub(super) shape: Shape,
}

#[derive(Debug)]
pub(super) enum Shape {
    /// An ordinary message.
    Fields(Fields),
    /// A wrapper type: written as its `value` field alone.
    Wrapper(Scalar),
    Timestamp,
    Duration,
    Empty,
    /// Left to prost-reflect.
    Unsupported,
}

#[derive(Debug)]
pub(super) struct Fields {
    /// By field number, as prost-reflect writes them.
    pub(super) fields: Box<[FieldPlan]>,
    /// Field number -> index in `fields` (or [`NO_FIELD`]), when the numbers are small.
    pub(super) direct: Option<Box<[u32]>>,
    /// How many oneofs (proto3 `optional` ones included) the fields belong to.
    pub(super) oneofs: usize,
}

impl Fields {
    /// The index of the field numbered `number`, if the message has one.
    pub(super) fn find(&self, number: u32) -> Option<usize> {
        match &self.direct {
            Some(slots) => match slots.get(number as usize) {
                Some(&i) if i != NO_FIELD => Some(i as usize),
                _ => None,
            },
            None => self.fields.binary_search_by_key(&number, |f| f.number).ok(),
        }
    }
}

#[derive(Debug)]
pub(super) struct FieldPlan {
    pub(super) number: u32,
    /// `"name":`, with the proto name and with the JSON name.
    pub(super) proto_key: Box<[u8]>,
    pub(super) json_key: Box<[u8]>,
    pub(super) value: Value,
    pub(super) cardinality: Cardinality,
    /// Written only when set (messages, proto3 `optional`, oneof members, proto2 fields).
    pub(super) presence: bool,
    /// The index of its oneof among the message's.
    pub(super) oneof: Option<usize>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Cardinality {
    Single,
    List,
    Map { key: Scalar, value: Value },
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Value {
    Scalar(Scalar),
    /// Index in [`Plans::enums`].
    Enum(usize),
    /// Index in [`Plans::messages`].
    Message(usize),
}

#[derive(Debug)]
pub(super) struct EnumPlan {
    /// Each number's name, quoted, by number.
    pub(super) names: Box<[(i32, Box<[u8]>)]>,
    /// `google.protobuf.NullValue`, written `null`.
    pub(super) null: bool,
    /// The number of the first value: the default.
    pub(super) default: i32,
}

impl EnumPlan {
    pub(super) fn name(&self, number: i32) -> Option<&[u8]> {
        self.names
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .map(|i| &*self.names[i].1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scalar {
    Double,
    Float,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
}

impl Scalar {
    /// The wire type of one value.
    pub(super) fn wire_type(self) -> u8 {
        match self {
            Self::Int32
            | Self::Int64
            | Self::Uint32
            | Self::Uint64
            | Self::Sint32
            | Self::Sint64
            | Self::Bool => VARINT,
            Self::Double | Self::Fixed64 | Self::Sfixed64 => FIXED64,
            Self::Float | Self::Fixed32 | Self::Sfixed32 => FIXED32,
            Self::String | Self::Bytes => LEN,
        }
    }
}

pub(super) const VARINT: u8 = 0;
pub(super) const FIXED64: u8 = 1;
pub(super) const LEN: u8 = 2;
pub(super) const FIXED32: u8 = 5;

fn scalar(kind: &Kind) -> Option<Scalar> {
    Some(match kind {
        Kind::Double => Scalar::Double,
        Kind::Float => Scalar::Float,
        Kind::Int32 => Scalar::Int32,
        Kind::Int64 => Scalar::Int64,
        Kind::Uint32 => Scalar::Uint32,
        Kind::Uint64 => Scalar::Uint64,
        Kind::Sint32 => Scalar::Sint32,
        Kind::Sint64 => Scalar::Sint64,
        Kind::Fixed32 => Scalar::Fixed32,
        Kind::Fixed64 => Scalar::Fixed64,
        Kind::Sfixed32 => Scalar::Sfixed32,
        Kind::Sfixed64 => Scalar::Sfixed64,
        Kind::Bool => Scalar::Bool,
        Kind::String => Scalar::String,
        Kind::Bytes => Scalar::Bytes,
        Kind::Message(_) | Kind::Enum(_) => return None,
    })
}

/// `"name":` as JSON.
fn key(name: &str) -> Box<[u8]> {
    let mut out = quoted(name).into_vec();
    out.push(b':');
    out.into_boxed_slice()
}

fn quoted(text: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(text.len() + 2);
    super::escape::string(text, &mut out);
    out.into_boxed_slice()
}
