//! What a request message must meet, read from its descriptors: `buf.validate`
//! (protovalidate) field, oneof and message rules, CEL included, and `google.api.field_behavior`
//! (AIP-203: REQUIRED, OUTPUT_ONLY); and the check of a request message against them.
//!
//! The `buf.validate` rules are evaluated by the `prost-protovalidate` crate over the
//! prost-reflect descriptors, whatever their source (embedded, file, reflection): the
//! extensions are recognised by number and name, so a pool that holds
//! `buf/validate/validate.proto` (every descriptor set built from protos using the rules does)
//! is enough. The crate was chosen over a hand-written checker because it covers every
//! standard rule and CEL, and claims the whole protovalidate conformance suite (2854 of 2854
//! cases in its repository's README); its published types crate needs a system `protoc` to
//! build, so the workspace patches that build script to protox (`vendor/`). Its cost per
//! message: one clone of the request message (the crate validates a `DynamicMessage` it owns)
//! plus the evaluation; messages with no rule anywhere in them are not handed to it at all.
//!
//! Each broken rule is a [`FieldViolation`] (the field path and a description); every one of a
//! message is listed ([`Violations`]), for a `google.rpc.BadRequest` detail. The same rules
//! feed the OpenAPI document ([`rules`]), so what the spec states is what the gateway enforces.
//! A gRPC backend must still validate: its gRPC callers do not come through here.

pub mod rules;
mod wording;

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::Arc,
};

use prost_protovalidate::Validator;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};

pub use wording::describe;

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

/// One broken rule: the field (its path from the request message, as protovalidate spells it:
/// `filter.title`, `items[0]`, `labels["k"]`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path; empty for a rule of the whole message (a message CEL rule).
    pub field: String,
    /// What the value breaks, such as `must be at most 200 characters (got 201)`.
    pub description: String,
}

impl fmt::Display for FieldViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "invalid request: {}", self.description)
        } else {
            write!(
                f,
                "invalid value for field {:?}: {}",
                self.field, self.description
            )
        }
    }
}

/// Every broken rule of one request message: field_behavior's in field order, then
/// protovalidate's in its order (message rules first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Violations(pub Vec<FieldViolation>);

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{v}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violations {}

/// Every rule of a descriptor pool, resolved once.
#[derive(Clone, Default)]
pub struct Constraints {
    /// Stated behaviors by the field's full name.
    behaviors: HashMap<String, Behavior>,
    /// Messages that hold a stated behavior, directly or in a nested message.
    behavior_messages: HashSet<String>,
    /// Messages with `buf.validate` rules, directly or in a nested message, whose rules
    /// compile; only these are handed to the validator.
    validated: HashSet<String>,
    /// The protovalidate evaluator, with every message of `validated` compiled.
    validator: Option<Arc<Validator>>,
    /// The messages of CEL rules by id, for the violations the crate reports by id alone.
    cel_messages: HashMap<String, String>,
}

impl fmt::Debug for Constraints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Constraints")
            .field("behaviors", &self.behaviors.len())
            .field("validated", &self.validated)
            .finish_non_exhaustive()
    }
}

impl Constraints {
    /// Reads the rules of every message in `pool`, and compiles the `buf.validate` ones.
    ///
    /// A message whose rules do not compile (a bad regular expression or CEL expression) is
    /// logged and left to the backend, which must validate anyway: the gateway cannot enforce
    /// a rule it cannot read, and refusing every call would be worse.
    pub fn from_pool(pool: &DescriptorPool) -> Self {
        let mut behaviors = HashMap::new();
        for message in pool.all_messages() {
            for field in message.fields() {
                let behavior = Behavior::of(&field);
                if behavior.is_stated() {
                    behaviors.insert(field.full_name().to_owned(), behavior);
                }
            }
        }
        let behavior_messages = holding(pool, |m| {
            m.fields().any(|f| behaviors.contains_key(f.full_name()))
        });
        let ruled = holding(pool, rules::has_rules);
        let (validator, validated) = if ruled.is_empty() {
            (None, HashSet::new())
        } else {
            let validator = Validator::new();
            let mut validated = HashSet::new();
            for name in ruled {
                let Some(message) = pool.get_message_by_name(&name) else {
                    continue;
                };
                // Validating an empty message compiles (and caches) its rules.
                match validator.validate(&DynamicMessage::new(message)) {
                    Ok(()) | Err(prost_protovalidate::Error::Validation(_)) => {
                        validated.insert(name);
                    }
                    Err(e) => {
                        tracing::warn!(
                            message = name,
                            error = %e,
                            "buf.validate rules that do not compile: left to the backend"
                        );
                    }
                }
            }
            (Some(Arc::new(validator)), validated)
        };
        Self {
            behaviors,
            behavior_messages,
            validated,
            validator,
            cel_messages: rules::cel_messages(pool),
        }
    }

    /// Whether no field has rules or a stated behavior.
    pub fn is_empty(&self) -> bool {
        self.behaviors.is_empty() && self.validated.is_empty()
    }

    /// Checks `message` against the rules.
    ///
    /// # Errors
    /// Every broken rule. A field missing although REQUIRED is named once, by field_behavior,
    /// not again by each `buf.validate` rule its empty value breaks.
    pub fn check(&self, message: &DynamicMessage) -> Result<(), Violations> {
        if self.is_empty() {
            return Ok(());
        }
        let mut found = Vec::new();
        self.check_behaviors(message, "", &mut found);
        let missing: HashSet<String> = found.iter().map(|v| v.field.clone()).collect();
        if let Some(validator) = &self.validator
            && self.validated.contains(message.descriptor().full_name())
        {
            match validator.validate(message) {
                Ok(()) => {}
                Err(prost_protovalidate::Error::Validation(e)) => {
                    found.extend(
                        e.violations()
                            .iter()
                            .map(|v| FieldViolation {
                                field: v.field_path(),
                                description: match self.cel_messages.get(v.rule_id()) {
                                    Some(text) if v.message().is_empty() => text.clone(),
                                    _ => describe(v),
                                },
                            })
                            .filter(|v| !missing.contains(&v.field)),
                    );
                }
                // A CEL expression that fails at run time (no such overload, ...): the rule
                // is the API's fault, not the client's; the backend decides.
                Err(e) => {
                    tracing::warn!(error = %e, "buf.validate evaluation failed; left to the backend");
                }
            }
        }
        if found.is_empty() {
            Ok(())
        } else {
            Err(Violations(found))
        }
    }

    fn check_behaviors(
        &self,
        message: &DynamicMessage,
        prefix: &str,
        out: &mut Vec<FieldViolation>,
    ) {
        let descriptor: MessageDescriptor = message.descriptor();
        if !self.behavior_messages.contains(descriptor.full_name()) {
            return;
        }
        for field in descriptor.fields() {
            // Without presence, "set" is a value other than the default (prost-reflect's
            // `has_field`), as AIP-203 reads REQUIRED for proto3 scalars.
            let set = message.has_field(&field);
            let path = format!("{prefix}{}", field.name());
            if let Some(behavior) = self.behaviors.get(field.full_name()) {
                let reason = if behavior.required && !set {
                    Some("is required")
                } else if behavior.output_only && set {
                    Some("is output only: the server sets it")
                } else {
                    None
                };
                if let Some(reason) = reason {
                    out.push(FieldViolation {
                        field: path.clone(),
                        description: reason.to_owned(),
                    });
                }
            }
            if !set {
                continue;
            }
            let value = message.get_field(&field);
            let items: &[Value] = match &*value {
                Value::List(items) => items,
                // Map values are not checked for behaviors: AIP-203 names fields, not entries.
                Value::Map(_) => continue,
                single => std::slice::from_ref(single),
            };
            for (i, item) in items.iter().enumerate() {
                if let Value::Message(inner) = item {
                    let inner_path = if field.is_list() {
                        format!("{path}[{i}].")
                    } else {
                        format!("{path}.")
                    };
                    // Nesting depth is bounded before the check (`transcode::depth`).
                    self.check_behaviors(inner, &inner_path, out);
                }
            }
        }
    }
}

/// The full names of the messages of `pool` for which `direct` holds, or that hold one of
/// them in a message field (list and map values included), at any depth.
fn holding(pool: &DescriptorPool, direct: impl Fn(&MessageDescriptor) -> bool) -> HashSet<String> {
    let mut found: HashSet<String> = pool
        .all_messages()
        .filter(|m| direct(m))
        .map(|m| m.full_name().to_owned())
        .collect();
    if found.is_empty() {
        return found;
    }
    // Grows by at least one name per round, so it ends within as many rounds as there are
    // messages.
    for _ in 0..pool.all_messages().len() {
        let before = found.len();
        for message in pool.all_messages() {
            let holds = message.fields().any(|f| match f.kind() {
                Kind::Message(m) => found.contains(m.full_name()),
                _ => false,
            });
            if holds {
                found.insert(message.full_name().to_owned());
            }
        }
        if found.len() == before {
            break;
        }
    }
    found
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
    fn article_violations_name_the_field_and_the_rule() {
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
        assert_eq!(
            check("article.v1.ArticleListRequest", r#"{"page_size": -1}"#),
            Err("invalid value for field \"page_size\": must not be negative (got -1)".to_owned())
        );
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
        // A missing REQUIRED field is named once, not again by its length rule.
        assert_eq!(
            check("article.v1.CreateArticleRequest", r#"{"content": "c"}"#),
            Err("invalid value for field \"title\": is required".to_owned())
        );
    }

    #[test]
    fn the_contract_ships_the_validate_proto_the_validator_was_built_with() {
        let file = |pool: &DescriptorPool| {
            let Some(f) = pool.get_file_by_name("buf/validate/validate.proto") else {
                panic!("no buf/validate/validate.proto");
            };
            let mut proto = f.file_descriptor_proto().clone();
            proto.source_code_info = None;
            proto
        };
        assert_eq!(
            file(&pool()),
            file(&prost_protovalidate::types::DESCRIPTOR_POOL)
        );
    }

    #[test]
    fn whitespace_is_the_unicode_white_space_set() {
        let pool = pool();
        let c = Constraints::from_pool(&pool);
        let create = |title: &str| {
            let json = serde_json::json!({"title": title, "content": "c"}).to_string();
            c.check(&message(&pool, "article.v1.CreateArticleRequest", &json))
        };
        // Every White_Space code point alone is blank, as Rust's `char::is_whitespace` says.
        for ws in (0..=0x10FFFF_u32)
            .filter_map(char::from_u32)
            .filter(|c| c.is_whitespace())
        {
            assert!(create(&format!("{ws}{ws}")).is_err(), "U+{:04X}", ws as u32);
        }
        // U+FEFF (which JavaScript's trim() removes) and U+200B are not whitespace.
        assert!(create("\u{feff}").is_ok());
        assert!(create("\u{200b}").is_ok());
        assert!(create(" a ").is_ok());
    }
}
