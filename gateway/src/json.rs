//! How messages are written as JSON: the one set of options the transcoder and the OpenAPI
//! generator share, so the spec documents exactly the bytes the gateway sends.

/// Field naming in JSON output. Input always accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum JsonNames {
    /// The proto field names (`create_time`), as the tutorial's Python world uses them.
    #[default]
    Proto,
    /// proto3 JSON's lowerCamelCase names (`createTime`).
    Camel,
}

/// How messages are written as JSON: field names, and whether fields at their default value
/// appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonOptions {
    /// Field naming of the output.
    pub names: JsonNames,
    /// Whether fields holding their default value are written (`{"articles": []}`).
    pub emit_defaults: bool,
}

impl Default for JsonOptions {
    fn default() -> Self {
        Self {
            names: JsonNames::Proto,
            emit_defaults: true,
        }
    }
}

impl JsonOptions {
    /// The prost-reflect serializer options for these settings. 64-bit integers are strings
    /// and enums are names, as canonical proto3 JSON requires.
    pub fn serialize_options(&self) -> prost_reflect::SerializeOptions {
        prost_reflect::SerializeOptions::new()
            .use_proto_field_name(self.names == JsonNames::Proto)
            .skip_default_fields(!self.emit_defaults)
            .stringify_64_bit_integers(true)
            .use_enum_numbers(false)
    }

    /// The name a field has in the output.
    pub fn field_name<'a>(&self, field: &'a prost_reflect::FieldDescriptor) -> &'a str {
        match self.names {
            JsonNames::Proto => field.name(),
            JsonNames::Camel => field.json_name(),
        }
    }
}
