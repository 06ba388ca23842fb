//! `google.protobuf.FloatValue` and `DoubleValue` holding NaN or an infinity, written as
//! proto3 JSON's `"NaN"`, `"Infinity"` and `"-Infinity"` by prost-reflect's serializer.
//!
//! prost-reflect writes a `float` or `double` field's non-finite values as those strings, but
//! hands a wrapper's value to the serializer as a bare number, which serde_json writes as
//! `null`: the value is lost, where proto3 JSON keeps it. prost-reflect has no hook for it, and
//! serde_json's `Formatter` is never shown a non-finite number (it is only asked for a
//! `null`), so the serializer prost-reflect is given is wrapped in [`ProtoFloats`], which
//! passes everything through except non-finite floats, written as those strings instead. That
//! changes nothing else: prost-reflect refuses a non-finite number in a
//! `google.protobuf.Value` before it reaches the serializer, so the only non-finite floats it
//! ever serializes are the wrappers'.

use std::fmt::Display;

use serde::ser::{self, Serialize, Serializer};

/// A serializer (or one of its compound serializers) that writes non-finite floats as proto3
/// JSON's strings and passes everything else to the one it wraps.
pub(crate) struct ProtoFloats<S>(pub(crate) S);

/// A value to be serialized through [`ProtoFloats`], whatever serializer it is given: what
/// keeps the nested values of compound ones wrapped too.
struct Wrapped<'a, T: ?Sized>(&'a T);

impl<T: Serialize + ?Sized> Serialize for Wrapped<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(ProtoFloats(serializer))
    }
}

/// proto3 JSON's spelling of a non-finite float; `None` for a finite one.
fn spelling(value: f64) -> Option<&'static str> {
    if value.is_nan() {
        Some("NaN")
    } else if value == f64::INFINITY {
        Some("Infinity")
    } else if value == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

macro_rules! pass {
    ($($name:ident($ty:ty)),* $(,)?) => {
        $(fn $name(self, v: $ty) -> Result<S::Ok, S::Error> {
            self.0.$name(v)
        })*
    };
}

impl<S: Serializer> Serializer for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = ProtoFloats<S::SerializeSeq>;
    type SerializeTuple = ProtoFloats<S::SerializeTuple>;
    type SerializeTupleStruct = ProtoFloats<S::SerializeTupleStruct>;
    type SerializeTupleVariant = ProtoFloats<S::SerializeTupleVariant>;
    type SerializeMap = ProtoFloats<S::SerializeMap>;
    type SerializeStruct = ProtoFloats<S::SerializeStruct>;
    type SerializeStructVariant = ProtoFloats<S::SerializeStructVariant>;

    pass!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        match spelling(f64::from(v)) {
            Some(text) => self.0.serialize_str(text),
            None => self.0.serialize_f32(v),
        }
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        match spelling(v) {
            Some(text) => self.0.serialize_str(text),
            None => self.0.serialize_f64(v),
        }
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Wrapped(value))
    }

    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }

    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Wrapped(value))
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Wrapped(value))
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(ProtoFloats)
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(ProtoFloats)
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(ProtoFloats)
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(ProtoFloats)
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(ProtoFloats)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(ProtoFloats)
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(ProtoFloats)
    }

    fn collect_str<T: Display + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        self.0.collect_str(value)
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

impl<S: ser::SerializeSeq> ser::SerializeSeq for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Wrapped(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTuple> ser::SerializeTuple for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_element(&Wrapped(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleStruct> ser::SerializeTupleStruct for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Wrapped(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeTupleVariant> ser::SerializeTupleVariant for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_field(&Wrapped(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeMap> ser::SerializeMap for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        self.0.serialize_key(&Wrapped(key))
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        self.0.serialize_value(&Wrapped(value))
    }

    fn serialize_entry<K: Serialize + ?Sized, V: Serialize + ?Sized>(
        &mut self,
        key: &K,
        value: &V,
    ) -> Result<(), S::Error> {
        self.0.serialize_entry(&Wrapped(key), &Wrapped(value))
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStruct> ser::SerializeStruct for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Wrapped(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

impl<S: ser::SerializeStructVariant> ser::SerializeStructVariant for ProtoFloats<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), S::Error> {
        self.0.serialize_field(key, &Wrapped(value))
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
        self.0.skip_field(key)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.0.end()
    }
}

#[cfg(test)]
mod tests {
    use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions, Value};

    use super::*;

    fn wrapper(pool: &DescriptorPool, name: &str, value: Value) -> DynamicMessage {
        let Some(desc) = pool.get_message_by_name(name) else {
            panic!("{name} is a standard type");
        };
        let mut message = DynamicMessage::new(desc);
        message.set_field_by_name("value", value);
        message
    }

    #[test]
    fn non_finite_wrappers_are_written_as_strings_into_bytes_and_trees() {
        let pool = crate::descriptors::with_standard_types(DescriptorPool::new());
        let options = SerializeOptions::new();
        let cases = [
            (
                "google.protobuf.DoubleValue",
                Value::F64(f64::NAN),
                "\"NaN\"",
            ),
            (
                "google.protobuf.DoubleValue",
                Value::F64(f64::NEG_INFINITY),
                "\"-Infinity\"",
            ),
            (
                "google.protobuf.FloatValue",
                Value::F32(f32::INFINITY),
                "\"Infinity\"",
            ),
            ("google.protobuf.FloatValue", Value::F32(1.5), "1.5"),
        ];
        for (name, value, want) in cases {
            let message = wrapper(&pool, name, value);
            let mut out = Vec::new();
            let written = message.serialize_with_options(
                ProtoFloats(&mut serde_json::Serializer::new(&mut out)),
                &options,
            );
            assert!(written.is_ok(), "{name}");
            assert_eq!(String::from_utf8_lossy(&out), want, "{name}");
            let tree = message
                .serialize_with_options(ProtoFloats(serde_json::value::Serializer), &options)
                .ok();
            assert_eq!(tree.map(|t| t.to_string()).as_deref(), Some(want), "{name}");
        }
    }
}
