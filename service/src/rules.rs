//! The contract's request rules, checked by the service itself: gRPC callers do not pass
//! through the gateway, so every request is held to the `buf.validate` and
//! `google.api.field_behavior` annotations of `proto/article/v1/article.proto`, read from the
//! same descriptors and checked by the same code as the gateway's
//! ([`articles_gateway::constraints`]). The rules live only in the proto: one way to say a
//! rule, the same answer over REST and gRPC. The JSONL import holds each line to the rules of
//! `CreateArticleRequest`.
//!
//! A violation answers INVALID_ARGUMENT naming every broken field, with a `google.rpc.BadRequest`
//! detail listing them (see `error.rs`). Checking costs one encode and decode of the request into a
//! `DynamicMessage`: small next to the database write or read each request makes.

use std::sync::LazyLock;

use articles_gateway::constraints::Constraints;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, ReflectMessage};

use crate::error::{Error, Result};

/// The article descriptors and their rules, read once.
struct Rules {
    pool: DescriptorPool,
    constraints: Constraints,
}

static RULES: LazyLock<Option<Rules>> = LazyLock::new(|| {
    match DescriptorPool::decode(articles_proto::FILE_DESCRIPTOR_SET) {
        Ok(pool) => Some(Rules {
            constraints: Constraints::from_pool(&pool),
            pool,
        }),
        // The bytes are compiled into the binary by the proto crate's build script, which
        // checks them; a failure here is a build bug, logged on every check below.
        Err(e) => {
            tracing::error!(error = %e, "the embedded article descriptors are corrupt");
            None
        }
    }
});

/// Checks `request`, a message of the type `name` (`article.v1.CreateArticleRequest`), against
/// the contract's rules.
///
/// # Errors
/// [`Error::InvalidFields`] listing every broken rule; [`Error::Config`] if the embedded
/// descriptors lack the message (a build bug).
pub fn check(name: &str, request: &impl Message) -> Result<()> {
    let Some(rules) = RULES.as_ref() else {
        return Err(Error::Config(
            "the embedded article descriptors are corrupt".into(),
        ));
    };
    let Some(descriptor) = rules.pool.get_message_by_name(name) else {
        return Err(Error::Config(format!("no message {name} in the contract")));
    };
    let dynamic = DynamicMessage::decode(descriptor, request.encode_to_vec().as_slice())
        .map_err(|e| Error::Config(format!("{name} does not decode as itself: {e}")))?;
    debug_assert_eq!(dynamic.descriptor().full_name(), name);
    rules
        .constraints
        .check(&dynamic)
        .map_err(Error::InvalidFields)
}

#[cfg(test)]
mod tests {
    use articles_proto::article::v1 as pb;

    use super::*;

    fn create(title: &str, content: &str) -> Result<()> {
        check(
            "article.v1.CreateArticleRequest",
            &pb::CreateArticleRequest {
                title: title.to_owned(),
                content: content.to_owned(),
            },
        )
    }

    #[test]
    fn title_length_counts_characters_not_bytes() {
        assert!(create(&"é".repeat(200), "c").is_ok());
        let err = create(&"é".repeat(201), "c").map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("title must be at most 200 characters (got 201)".to_owned())
        );
    }

    #[test]
    fn blank_text_and_every_broken_field_are_named() {
        let err = create("   ", "\u{3000}\n").map_err(|e| e.to_string());
        let Err(message) = err else {
            panic!("blank text accepted");
        };
        assert!(message.starts_with("title "), "{message}");
        assert!(message.contains("; content "), "{message}");
    }

    #[test]
    fn content_is_limited_in_bytes() {
        let max = "a".repeat(4_186_112);
        assert!(create("t", &max).is_ok());
        let err = create("t", &format!("{max}é")).map_err(|e| e.to_string());
        assert_eq!(
            err,
            Err("content must be at most 4186112 bytes of UTF-8 (got 4186114)".to_owned())
        );
    }
}
