//! The `buf.validate` rules stated on a descriptor, read by extension name from the
//! descriptor's own pool (so whatever version of `validate.proto` the API was compiled with),
//! as prost-reflect values: what the OpenAPI generator turns into JSON Schema keywords.

use prost_reflect::{DynamicMessage, FieldDescriptor, MessageDescriptor, ReflectMessage, Value};

/// The extension of `google.protobuf.FieldOptions` holding a field's rules.
pub const FIELD_EXTENSION: &str = "buf.validate.field";
/// The extension of `google.protobuf.MessageOptions` holding a message's rules.
pub const MESSAGE_EXTENSION: &str = "buf.validate.message";
/// The extension of `google.protobuf.OneofOptions` holding a oneof's rules.
pub const ONEOF_EXTENSION: &str = "buf.validate.oneof";

/// The `buf.validate.FieldRules` of `field`, when it states any.
pub fn of_field(field: &FieldDescriptor) -> Option<FieldRules> {
    let ext = field.parent_pool().get_extension_by_name(FIELD_EXTENSION)?;
    let options = field.options();
    if !options.has_extension(&ext) {
        return None;
    }
    options
        .get_extension(&ext)
        .as_message()
        .cloned()
        .map(FieldRules)
}

/// Whether `message` states any `buf.validate` rule: on itself, a oneof or a field.
pub fn has_rules(message: &MessageDescriptor) -> bool {
    let pool = message.parent_pool();
    let stated = |options: DynamicMessage, name: &str| {
        pool.get_extension_by_name(name)
            .is_some_and(|ext| options.has_extension(&ext))
    };
    stated(message.options(), MESSAGE_EXTENSION)
        || message
            .oneofs()
            .any(|o| stated(o.options(), ONEOF_EXTENSION))
        || message
            .fields()
            .any(|f| stated(f.options(), FIELD_EXTENSION))
}

/// The `message` of every CEL rule (`cel`) stated on a message or field of `pool`, by rule id:
/// protovalidate reports a message-level rule by id alone.
pub fn cel_messages(
    pool: &prost_reflect::DescriptorPool,
) -> std::collections::HashMap<String, String> {
    let mut out = std::collections::HashMap::new();
    let mut collect = |rules: &DynamicMessage| {
        let Some(Value::List(list)) = get(rules, "cel") else {
            return;
        };
        for rule in list.iter().filter_map(Value::as_message) {
            let text = |name: &str| get(rule, name).and_then(|v| v.as_str().map(str::to_owned));
            if let (Some(id), Some(message)) = (text("id"), text("message")) {
                out.entry(id).or_insert(message);
            }
        }
    };
    let message_ext = pool.get_extension_by_name(MESSAGE_EXTENSION);
    let field_ext = pool.get_extension_by_name(FIELD_EXTENSION);
    for message in pool.all_messages() {
        if let Some(ext) = &message_ext {
            let options = message.options();
            if options.has_extension(ext)
                && let Some(rules) = options.get_extension(ext).as_message()
            {
                collect(rules);
            }
        }
        if let Some(ext) = &field_ext {
            for field in message.fields() {
                let options = field.options();
                if options.has_extension(ext)
                    && let Some(rules) = options.get_extension(ext).as_message()
                {
                    collect(rules);
                }
            }
        }
    }
    out
}

/// Whether a oneof must have one of its fields set (`(buf.validate.oneof).required`).
pub fn oneof_required(oneof: &prost_reflect::OneofDescriptor) -> bool {
    let pool = oneof.parent_message().parent_pool();
    let Some(ext) = pool.get_extension_by_name(ONEOF_EXTENSION) else {
        return false;
    };
    let options = oneof.options();
    options.has_extension(&ext)
        && options
            .get_extension(&ext)
            .as_message()
            .and_then(|m| get(m, "required"))
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
}

/// One field's `buf.validate.FieldRules`.
#[derive(Debug, Clone)]
pub struct FieldRules(DynamicMessage);

impl FieldRules {
    /// `required: true`: the field must be set (a non-default value without presence).
    pub fn required(&self) -> bool {
        get(&self.0, "required").and_then(|v| v.as_bool()) == Some(true)
    }

    /// The rules of the field's type, when set: the `type` oneof's member (`int32`, `string`,
    /// `repeated`, `map`, ...) with its name.
    pub fn typed(&self) -> Option<(String, TypeRules)> {
        let oneof = self.0.descriptor().oneofs().find(|o| o.name() == "type")?;
        let field = oneof.fields().find(|f| self.0.has_field(f))?;
        let value = self.0.get_field(&field);
        let rules = value.as_message()?.clone();
        Some((field.name().to_owned(), TypeRules(rules)))
    }
}

/// The rules of one type (`buf.validate.Int32Rules`, `StringRules`, `RepeatedRules`, ...).
#[derive(Debug, Clone)]
pub struct TypeRules(DynamicMessage);

impl TypeRules {
    /// The value of the rule `name` (`gte`, `max_len`, `in`, `email`, ...), when set.
    pub fn get(&self, name: &str) -> Option<Value> {
        get(&self.0, name)
    }

    /// The nested field rules `name` (`items` of repeated, `keys`/`values` of map), when set.
    pub fn nested(&self, name: &str) -> Option<FieldRules> {
        match self.get(name)? {
            Value::Message(m) => Some(FieldRules(m)),
            _ => None,
        }
    }
}

/// The value of field `name` of `message` when it is set (a non-empty list for repeated).
fn get(message: &DynamicMessage, name: &str) -> Option<Value> {
    let field = message.descriptor().get_field_by_name(name)?;
    message
        .has_field(&field)
        .then(|| message.get_field(&field).into_owned())
}
