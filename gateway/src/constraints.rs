//! Field constraints stated in the descriptors with the `articles.options.rules` option
//! (`proto/articles/options.proto`) and with `google.api.field_behavior` (AIP-203: REQUIRED,
//! OUTPUT_ONLY), and their check on a request message.
//!
//! The same rules feed the OpenAPI document (`minimum`, `maximum`, `minLength`, `maxLength`),
//! so what the spec states is what the gateway enforces: a request message that breaks a rule
//! is answered 400 INVALID_ARGUMENT naming the field, before the backend is called.
//!
//! The rules are read once at start ([`Constraints::from_pool`]); a pool without the option
//! (any API that does not import it) yields an empty set, and checking is then free.
//! A field with presence (`optional`, message fields) is checked only when set; any other
//! field always, its default value included; each element of a repeated field on its own.

use std::collections::{HashMap, HashSet};

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

/// The full name of the extension of `google.protobuf.FieldOptions` that holds the rules.
pub const RULES_EXTENSION: &str = "articles.options.rules";

/// The full name of the extension of `google.protobuf.FieldOptions` that says a field's
/// behavior (`google/api/field_behavior.proto`).
pub const FIELD_BEHAVIOR_EXTENSION: &str = "google.api.field_behavior";

/// What `google.api.field_behavior` says of a field, as far as the gateway acts on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Behavior {
    /// REQUIRED: a request must set it (a non-default value, a set message, a non-empty
    /// list); a response always has it.
    pub required: bool,
    /// OUTPUT_ONLY: the server sets it; a request that sets it is refused.
    pub output_only: bool,
    /// IMMUTABLE: set on creation, never changed after (documented; the backend enforces it).
    pub immutable: bool,
}

impl Behavior {
    /// The behavior stated on `field` (none when the pool lacks the extension).
    pub fn of(field: &FieldDescriptor) -> Self {
        let Some(ext) = field
            .parent_pool()
            .get_extension_by_name(FIELD_BEHAVIOR_EXTENSION)
        else {
            return Self::default();
        };
        let options = field.options();
        if !options.has_extension(&ext) {
            return Self::default();
        }
        let value = options.get_extension(&ext);
        let stated = |number: i32| {
            value
                .as_list()
                .is_some_and(|items| items.iter().any(|v| v.as_enum_number() == Some(number)))
        };
        // google.api.FieldBehavior's numbers.
        Self {
            required: stated(2),
            output_only: stated(3),
            immutable: stated(5),
        }
    }

    fn is_stated(self) -> bool {
        self.required || self.output_only
    }
}

/// The constraints on one field's value (`articles.options.FieldRules`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FieldRules {
    /// Integer fields: the smallest value allowed.
    pub minimum: Option<i64>,
    /// Integer fields: the largest value allowed.
    pub maximum: Option<i64>,
    /// String fields: the fewest characters allowed.
    pub min_length: Option<u32>,
    /// String fields: the most characters allowed.
    pub max_length: Option<u32>,
}

impl FieldRules {
    /// The rules stated on `field`, or `None` when it has none (or the pool lacks the option).
    pub fn of(field: &FieldDescriptor) -> Option<Self> {
        let ext = field.parent_pool().get_extension_by_name(RULES_EXTENSION)?;
        let options = field.options();
        if !options.has_extension(&ext) {
            return None;
        }
        let value = options.get_extension(&ext);
        let rules = value.as_message()?;
        let int = |name: &str| {
            let f = rules.descriptor().get_field_by_name(name)?;
            if !rules.has_field(&f) {
                return None;
            }
            rules.get_field(&f).as_i64()
        };
        let uint = |name: &str| {
            let f = rules.descriptor().get_field_by_name(name)?;
            if !rules.has_field(&f) {
                return None;
            }
            rules.get_field(&f).as_u32()
        };
        let found = Self {
            minimum: int("minimum"),
            maximum: int("maximum"),
            min_length: uint("min_length"),
            max_length: uint("max_length"),
        };
        (found != Self::default()).then_some(found)
    }

    /// Why `value` (one element of the field) breaks these rules, if it does.
    fn violation(&self, value: &Value) -> Option<String> {
        let number = match value {
            Value::I32(n) => Some(i128::from(*n)),
            Value::I64(n) => Some(i128::from(*n)),
            Value::U32(n) => Some(i128::from(*n)),
            Value::U64(n) => Some(i128::from(*n)),
            _ => None,
        };
        if let Some(n) = number {
            if let Some(min) = self.minimum
                && n < i128::from(min)
            {
                return Some(format!("must be at least {min} (got {n})"));
            }
            if let Some(max) = self.maximum
                && n > i128::from(max)
            {
                return Some(format!("must be at most {max} (got {n})"));
            }
        }
        if let Value::String(text) = value {
            let chars = text.chars().count();
            if let Some(min) = self.min_length
                && chars < min as usize
            {
                return Some(if min == 1 {
                    "must not be empty".to_owned()
                } else {
                    format!("must be at least {min} characters (got {chars})")
                });
            }
            if let Some(max) = self.max_length
                && chars > max as usize
            {
                return Some(format!("must be at most {max} characters (got {chars})"));
            }
        }
        None
    }
}

/// A broken rule: the field (dotted proto path from the request message) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value for field {field:?}: {reason}")]
pub struct Violation {
    /// The field, as a dotted proto path (`filter.title`).
    pub field: String,
    /// What the value breaks, such as `must be at least 1 (got 0)`.
    pub reason: String,
}

/// Every rule of a descriptor pool, by field, resolved once.
#[derive(Debug, Clone, Default)]
pub struct Constraints {
    /// Rules by the field's full name.
    rules: HashMap<String, FieldRules>,
    /// Stated behaviors by the field's full name.
    behaviors: HashMap<String, Behavior>,
    /// Messages that hold a ruled field, directly or in a nested message.
    relevant: HashSet<String>,
}

impl Constraints {
    /// Reads the rules of every field in `pool`.
    pub fn from_pool(pool: &DescriptorPool) -> Self {
        let mut rules = HashMap::new();
        let mut behaviors = HashMap::new();
        for message in pool.all_messages() {
            for field in message.fields() {
                if let Some(r) = FieldRules::of(&field) {
                    rules.insert(field.full_name().to_owned(), r);
                }
                let behavior = Behavior::of(&field);
                if behavior.is_stated() {
                    behaviors.insert(field.full_name().to_owned(), behavior);
                }
            }
        }
        let mut relevant: HashSet<String> = pool
            .all_messages()
            .filter(|m| {
                m.fields().any(|f| {
                    rules.contains_key(f.full_name()) || behaviors.contains_key(f.full_name())
                })
            })
            .map(|m| m.full_name().to_owned())
            .collect();
        // A message is relevant when a field's message type is: grows by at least one name
        // per round, so it ends within as many rounds as there are messages.
        for _ in 0..pool.all_messages().len() {
            let before = relevant.len();
            for message in pool.all_messages() {
                let holds = message.fields().any(|f| match f.kind() {
                    Kind::Message(m) => relevant.contains(m.full_name()),
                    _ => false,
                });
                if holds {
                    relevant.insert(message.full_name().to_owned());
                }
            }
            if relevant.len() == before {
                break;
            }
        }
        Self {
            rules,
            behaviors,
            relevant,
        }
    }

    /// Whether no field has rules or a stated behavior.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && self.behaviors.is_empty()
    }

    /// Checks `message` against the rules.
    ///
    /// # Errors
    /// The first [`Violation`], in field order.
    pub fn check(&self, message: &DynamicMessage) -> Result<(), Violation> {
        if self.is_empty() {
            return Ok(());
        }
        self.check_message(message, "")
    }

    fn check_message(&self, message: &DynamicMessage, prefix: &str) -> Result<(), Violation> {
        let descriptor: MessageDescriptor = message.descriptor();
        if !self.relevant.contains(descriptor.full_name()) {
            return Ok(());
        }
        for field in descriptor.fields() {
            // Without presence, "set" is a value other than the default (prost-reflect's
            // `has_field`), as AIP-203 reads REQUIRED for proto3 scalars.
            let set = message.has_field(&field);
            if let Some(behavior) = self.behaviors.get(field.full_name()) {
                let reason = if behavior.required && !set {
                    Some("is required")
                } else if behavior.output_only && set {
                    Some("is output only: the server sets it")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    return Err(Violation {
                        field: format!("{prefix}{}", field.name()),
                        reason: reason.to_owned(),
                    });
                }
            }
            if field.supports_presence() && !set {
                continue;
            }
            let path = format!("{prefix}{}", field.name());
            let value = message.get_field(&field);
            let rules = self.rules.get(field.full_name());
            let items: &[Value] = match &*value {
                Value::List(items) => items,
                // Map values are not checked: no rule can name them.
                Value::Map(_) => continue,
                single => std::slice::from_ref(single),
            };
            for item in items {
                if let Some(reason) = rules.and_then(|r| r.violation(item)) {
                    return Err(Violation {
                        field: path,
                        reason,
                    });
                }
                if let Value::Message(inner) = item {
                    // Nesting depth is bounded by the JSON reader's recursion limit.
                    self.check_message(inner, &format!("{path}."))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> DescriptorPool {
        match DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        }
    }

    fn message(pool: &DescriptorPool, name: &str, json: &str) -> DynamicMessage {
        let Some(desc) = pool.get_message_by_name(name) else {
            panic!("no {name}");
        };
        let mut de = serde_json::Deserializer::from_str(json);
        match DynamicMessage::deserialize(desc, &mut de) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn article_rules_are_read_from_the_descriptors() {
        let pool = pool();
        let Some(title) = pool
            .get_message_by_name("article.v1.CreateArticleRequest")
            .and_then(|m| m.get_field_by_name("title"))
        else {
            panic!("no title field");
        };
        assert_eq!(
            FieldRules::of(&title),
            Some(FieldRules {
                min_length: Some(1),
                max_length: Some(200),
                ..FieldRules::default()
            })
        );
    }

    #[test]
    fn violations_name_the_field_and_the_rule() {
        let pool = pool();
        let c = Constraints::from_pool(&pool);
        let check = |name: &str, json: &str| {
            c.check(&message(&pool, name, json))
                .map_err(|v| v.to_string())
        };
        assert_eq!(
            check("article.v1.ArticleDetailRequest", "{}"),
            Err("invalid value for field \"pk\": must be at least 1 (got 0)".to_owned())
        );
        assert_eq!(
            check("article.v1.ArticleDetailRequest", r#"{"pk": 1}"#),
            Ok(())
        );
        assert_eq!(check("article.v1.ArticleListRequest", "{}"), Ok(()));
        assert!(check("article.v1.ArticleListRequest", r#"{"page_size": -1}"#).is_err());
        let long = format!(r#"{{"title": "{}", "content": "c"}}"#, "é".repeat(201));
        assert_eq!(
            check("article.v1.CreateArticleRequest", &long),
            Err(
                "invalid value for field \"title\": must be at most 200 characters (got 201)"
                    .to_owned()
            )
        );
        let ok = format!(r#"{{"title": "{}", "content": "c"}}"#, "é".repeat(200));
        assert_eq!(check("article.v1.CreateArticleRequest", &ok), Ok(()));
        // `optional` fields are checked only when present.
        assert_eq!(
            check("article.v1.UpdateArticleRequest", r#"{"pk": 2}"#),
            Ok(())
        );
        assert!(
            check(
                "article.v1.UpdateArticleRequest",
                r#"{"pk": 2, "title": ""}"#
            )
            .is_err()
        );
    }
}
